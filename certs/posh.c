/* posh: see posh.h. RFC 7711 §3.2 (fingerprints), §3.4 (reference), §4 (use). */
#include "certs/posh.h"
#include "certs/codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

__attribute__((format(printf, 3, 4)))
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* IANA "Hash Function Textual Names" registry entries we use. */
static enum xf_cert_hash hash_by_name(const char *name)
{
    if (strcmp(name, "sha-256") == 0) return XF_HASH_SHA256;
    if (strcmp(name, "sha-384") == 0) return XF_HASH_SHA384;
    if (strcmp(name, "sha-512") == 0) return XF_HASH_SHA512;
    return XF_HASH_NONE;
}

static const char *hash_name(enum xf_cert_hash h)
{
    switch (h) {
    case XF_HASH_SHA256: return "sha-256";
    case XF_HASH_SHA384: return "sha-384";
    case XF_HASH_SHA512: return "sha-512";
    default: return "?";
    }
}

/* 1 if v is a JSON number written with digits only (a non-negative integer,
   whatever its size; yajl does not flag integers that overflow 64 bits). */
static int digits_only(yajl_val v)
{
    const char *r = YAJL_IS_NUMBER(v) ? YAJL_GET_NUMBER(v) : NULL;
    if (!r || !*r)
        return 0;
    for (; *r; r++)
        if (*r < '0' || *r > '9')
            return 0;
    return 1;
}

static int parse_fingerprints(yajl_val arr, struct xf_posh_doc *doc, char *err, size_t errlen)
{
    if (!YAJL_IS_ARRAY(arr)) {
        seterr(err, errlen, "\"fingerprints\" is not an array");
        return XF_POSH_ERR_INVALID;
    }
    if (arr->u.array.len == 0) {
        seterr(err, errlen, "\"fingerprints\" is an empty array");
        return XF_POSH_ERR_INVALID;
    }
    for (size_t i = 0; i < arr->u.array.len; i++) {
        yajl_val o = arr->u.array.values[i];
        if (!YAJL_IS_OBJECT(o)) {
            seterr(err, errlen, "fingerprint entry %zu is not an object", i);
            return XF_POSH_ERR_INVALID;
        }
        for (size_t k = 0; k < o->u.object.len; k++) {
            const char *name = o->u.object.keys[k];
            yajl_val v = o->u.object.values[k];
            enum xf_cert_hash h = hash_by_name(name);
            struct xf_posh_fp fp;
            int n;
            if (h == XF_HASH_NONE || !YAJL_IS_STRING(v)) {
                doc->nskipped++;
                continue;
            }
            n = xf_b64_decode(v->u.string, strlen(v->u.string), fp.digest, sizeof fp.digest);
            if (n < 0 || (size_t)n != xf_cert_hash_len(h)) {
                doc->nskipped++;
                continue;
            }
            if (doc->nfp == XF_POSH_MAX_FP) { /* cannot happen, see posh.h */
                seterr(err, errlen, "more than %d fingerprints", (int)XF_POSH_MAX_FP);
                return XF_POSH_ERR_INVALID;
            }
            fp.hash = h;
            fp.len = (size_t)n;
            doc->fp[doc->nfp++] = fp;
        }
    }
    return 0;
}

int xf_posh_parse(const unsigned char *json, size_t len, struct xf_posh_doc *doc,
                  char *err, size_t errlen)
{
    char ebuf[128];
    char *text;
    yajl_val root, fps = NULL, url = NULL, exp = NULL;
    int r = XF_POSH_ERR_INVALID;

    if (!json || !doc)
        return XF_POSH_ERR_ARG;
    memset(doc, 0, sizeof *doc);
    if (len > XF_POSH_MAX_DOC) {
        seterr(err, errlen, "document larger than %d bytes", XF_POSH_MAX_DOC);
        return XF_POSH_ERR_INVALID;
    }
    if (memchr(json, '\0', len)) {
        seterr(err, errlen, "NUL byte in document");
        return XF_POSH_ERR_JSON;
    }
    if (!(text = malloc(len + 1)))
        return XF_POSH_ERR_ARG;
    memcpy(text, json, len);
    text[len] = '\0';
    ebuf[0] = '\0';
    root = yajl_tree_parse(text, ebuf, sizeof ebuf);
    free(text);
    if (!root) {
        char *nl = strchr(ebuf, '\n');
        if (nl)
            *nl = '\0';
        seterr(err, errlen, "not JSON: %s", ebuf[0] ? ebuf : "parse error");
        return XF_POSH_ERR_JSON;
    }
    if (!YAJL_IS_OBJECT(root)) {
        seterr(err, errlen, "top level is not an object");
        r = XF_POSH_ERR_JSON;
        goto out;
    }
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *k = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i];
        yajl_val *slot = strcmp(k, "fingerprints") == 0 ? &fps
                       : strcmp(k, "url") == 0 ? &url
                       : strcmp(k, "expires") == 0 ? &exp : NULL;
        if (!slot)
            continue;
        if (*slot) {
            seterr(err, errlen, "duplicate \"%s\"", k);
            goto out;
        }
        *slot = v;
    }
    if (fps && url) {
        seterr(err, errlen, "both \"fingerprints\" and \"url\"");
        goto out;
    }
    if (!fps && !url) {
        seterr(err, errlen, "neither \"fingerprints\" nor \"url\"");
        goto out;
    }
    if (!exp) {
        seterr(err, errlen, "no \"expires\"");
        goto out;
    }
    if (YAJL_IS_INTEGER(exp)) {
        if (YAJL_GET_INTEGER(exp) <= 0) {
            seterr(err, errlen, "\"expires\" is %lld (must be > 0)", (long long)YAJL_GET_INTEGER(exp));
            goto out;
        }
        doc->expires = YAJL_GET_INTEGER(exp) > XF_POSH_EXPIRES_MAX ? XF_POSH_EXPIRES_MAX
                                                                  : YAJL_GET_INTEGER(exp);
    } else if (digits_only(exp)) {
        doc->expires = XF_POSH_EXPIRES_MAX; /* a valid integer too large for 64 bits */
    } else {
        seterr(err, errlen, "\"expires\" is not an integer");
        goto out;
    }
    if (url) {
        const char *u = YAJL_GET_STRING(url);
        if (!u || strncasecmp(u, "https://", 8) != 0 || strlen(u) <= 8) {
            seterr(err, errlen, "\"url\" is not an https URL");
            goto out;
        }
        if (strlen(u) >= sizeof doc->url) {
            seterr(err, errlen, "\"url\" too long");
            goto out;
        }
        strcpy(doc->url, u);
        doc->kind = XF_POSH_REFERENCE;
        r = 0;
        goto out;
    }
    r = parse_fingerprints(fps, doc, err, errlen);
    if (r == 0)
        doc->kind = XF_POSH_FINGERPRINTS;
out:
    yajl_tree_free(root);
    if (r != 0) {
        struct xf_posh_doc empty;
        memset(&empty, 0, sizeof empty);
        *doc = empty;
    }
    return r;
}

int xf_posh_match(const struct xf_posh_doc *doc, const mbedtls_x509_crt *leaf,
                  char *reason, size_t rlen)
{
    if (!doc || !leaf || doc->kind != XF_POSH_FINGERPRINTS) {
        seterr(reason, rlen, "not a fingerprints document");
        return XF_POSH_NOMATCH;
    }
    if (doc->nfp == 0) {
        seterr(reason, rlen, "no usable fingerprints (%zu skipped)", doc->nskipped);
        return XF_POSH_NOMATCH;
    }
    for (size_t i = 0; i < doc->nfp; i++) {
        unsigned char d[64];
        int n = xf_cert_digest(leaf, XF_CERT_FULL, doc->fp[i].hash, d, sizeof d);
        if (n > 0 && (size_t)n == doc->fp[i].len && memcmp(d, doc->fp[i].digest, (size_t)n) == 0) {
            seterr(reason, rlen, "fingerprint %zu (%s) matches the certificate", i + 1,
                   hash_name(doc->fp[i].hash));
            return XF_POSH_MATCH;
        }
    }
    seterr(reason, rlen, "none of %zu fingerprints matches the certificate", doc->nfp);
    return XF_POSH_NOMATCH;
}

int xf_posh_check(const struct xf_posh_doc *doc, const mbedtls_x509_crt *leaf,
                  char *reason, size_t rlen)
{
    int t;
    if (xf_posh_match(doc, leaf, reason, rlen) != XF_POSH_MATCH)
        return XF_POSH_NOMATCH;
    t = xf_cert_time_status(leaf);
    if (t == XF_CERT_EXPIRED) {
        seterr(reason, rlen, "fingerprint matches but the certificate has expired");
        return XF_POSH_NOMATCH;
    }
    if (t == XF_CERT_NOT_YET_VALID) {
        seterr(reason, rlen, "fingerprint matches but the certificate is not yet valid");
        return XF_POSH_NOMATCH;
    }
    return XF_POSH_MATCH;
}

/* Copies the finished yajl_gen buffer into out. */
static int gen_finish(yajl_gen g, char *out, size_t outlen)
{
    const unsigned char *buf;
    size_t blen;
    int r = XF_POSH_ERR_ARG;
    if (yajl_gen_get_buf(g, &buf, &blen) == yajl_gen_status_ok && blen + 1 <= outlen) {
        memcpy(out, buf, blen);
        out[blen] = '\0';
        r = (int)blen;
    }
    yajl_gen_free(g);
    return r;
}

#define GEN_STR(g, s) yajl_gen_string((g), (const unsigned char *)(s), strlen(s))

int xf_posh_generate(const mbedtls_x509_crt *leaf, long long expires, char *out, size_t outlen)
{
    return xf_posh_generate_set(&leaf, 1, expires, out, outlen);
}

int xf_posh_generate_set(const mbedtls_x509_crt *const *leaves, size_t n_leaves,
                         long long expires, char *out, size_t outlen)
{
    static const enum xf_cert_hash hashes[] = { XF_HASH_SHA256, XF_HASH_SHA512 };
    yajl_gen g;
    if (!leaves || n_leaves == 0 || !out || expires <= 0)
        return XF_POSH_ERR_ARG;
    for (size_t k = 0; k < n_leaves; k++)
        if (!leaves[k])
            return XF_POSH_ERR_ARG;
    if (!(g = yajl_gen_alloc(NULL)))
        return XF_POSH_ERR_ARG;
    yajl_gen_map_open(g);
    GEN_STR(g, "fingerprints");
    yajl_gen_array_open(g);
    for (size_t k = 0; k < n_leaves; k++) {
        yajl_gen_map_open(g);
        for (size_t i = 0; i < sizeof hashes / sizeof hashes[0]; i++) {
            unsigned char d[64];
            char b64[100];
            int n = xf_cert_digest(leaves[k], XF_CERT_FULL, hashes[i], d, sizeof d);
            if (n < 0 || xf_b64_encode(d, (size_t)n, b64, sizeof b64) < 0) {
                yajl_gen_free(g);
                return XF_POSH_ERR_ARG;
            }
            GEN_STR(g, hash_name(hashes[i]));
            GEN_STR(g, b64);
        }
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    GEN_STR(g, "expires");
    yajl_gen_integer(g, expires);
    yajl_gen_map_close(g);
    return gen_finish(g, out, outlen);
}

int xf_posh_generate_reference(const char *url, long long expires, char *out, size_t outlen)
{
    yajl_gen g;
    if (!url || !out || expires <= 0 || strncasecmp(url, "https://", 8) != 0
        || strlen(url) <= 8 || strlen(url) >= XF_POSH_URL_MAX)
        return XF_POSH_ERR_ARG;
    if (!(g = yajl_gen_alloc(NULL)))
        return XF_POSH_ERR_ARG;
    yajl_gen_map_open(g);
    GEN_STR(g, "url");
    GEN_STR(g, url);
    GEN_STR(g, "expires");
    yajl_gen_integer(g, expires);
    yajl_gen_map_close(g);
    return gen_finish(g, out, outlen);
}
