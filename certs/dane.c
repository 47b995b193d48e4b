/* dane: see dane.h. */
#include "certs/dane.h"
#include "certs/cert.h"
#include "certs/codec.h"
#include "certs/pkix.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int xf_tlsa_parse_rdata(const unsigned char *rdata, size_t len, struct xf_tlsa *out)
{
    if (!rdata || !out || len < 3)
        return XF_TLSA_ERR_SYNTAX;
    if (len - 3 > XF_TLSA_DATA_MAX)
        return XF_TLSA_ERR_SPACE;
    out->usage = rdata[0];
    out->selector = rdata[1];
    out->mtype = rdata[2];
    out->len = len - 3;
    memcpy(out->data, rdata + 3, len - 3);
    return 0;
}

struct acronym { const char *name; int value; };
static const struct acronym USAGES[] = { { "PKIX-TA", 0 }, { "PKIX-EE", 1 }, { "DANE-TA", 2 },
                                         { "DANE-EE", 3 }, { "PrivCert", 255 }, { NULL, 0 } };
static const struct acronym SELECTORS[] = { { "Cert", 0 }, { "SPKI", 1 }, { "PrivSel", 255 }, { NULL, 0 } };
static const struct acronym MTYPES[] = { { "Full", 0 }, { "SHA2-256", 1 }, { "SHA2-512", 2 },
                                         { "PrivMatch", 255 }, { NULL, 0 } };

/* Reads one field (decimal 0..255 or an acronym) at *p; advances past it. */
static int read_field(const char **p, const struct acronym *names)
{
    const char *s = *p, *e;
    size_t len;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s;
    while (*e && *e != ' ' && *e != '\t')
        e++;
    len = (size_t)(e - s);
    if (len == 0)
        return -1;
    *p = e;
    if (isdigit((unsigned char)s[0])) {
        int v = 0;
        if (len > 3)
            return -1;
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)s[i]))
                return -1;
            v = v * 10 + (s[i] - '0');
        }
        return v <= 255 ? v : -1;
    }
    for (const struct acronym *a = names; a->name; a++)
        if (strlen(a->name) == len && strncasecmp(a->name, s, len) == 0)
            return a->value;
    return -1;
}

int xf_tlsa_parse_text(const char *text, struct xf_tlsa *out)
{
    const char *p = text;
    int u, s, m, n;
    size_t rest;
    if (!text || !out)
        return XF_TLSA_ERR_SYNTAX;
    if ((u = read_field(&p, USAGES)) < 0 || (s = read_field(&p, SELECTORS)) < 0
        || (m = read_field(&p, MTYPES)) < 0)
        return XF_TLSA_ERR_SYNTAX;
    rest = strlen(p);
    n = xf_hex_decode(p, rest, out->data, sizeof out->data);
    if (n == XF_CODEC_ERR_SPACE)
        return XF_TLSA_ERR_SPACE;
    if (n <= 0)
        return XF_TLSA_ERR_SYNTAX;  /* RFC 6698 §2.2: the data field is required */
    out->usage = (uint8_t)u;
    out->selector = (uint8_t)s;
    out->mtype = (uint8_t)m;
    out->len = (size_t)n;
    return 0;
}

int xf_tlsa_usable(const struct xf_tlsa *t, const char **why)
{
    const char *w = NULL;
    if (t->usage > 3)
        w = "unknown certificate usage";
    else if (t->selector > 1)
        w = "unknown selector";
    else if (t->mtype > 2)
        w = "unknown matching type";
    else if (t->len == 0)
        w = "empty association data";
    else if (t->mtype == XF_TLSA_MT_SHA256 && t->len != 32)
        w = "SHA2-256 data is not 32 bytes";
    else if (t->mtype == XF_TLSA_MT_SHA512 && t->len != 64)
        w = "SHA2-512 data is not 64 bytes";
    if (why)
        *why = w;
    return w == NULL;
}

static enum xf_cert_hash mtype_hash(uint8_t mtype)
{
    return mtype == XF_TLSA_MT_SHA256 ? XF_HASH_SHA256
         : mtype == XF_TLSA_MT_SHA512 ? XF_HASH_SHA512 : XF_HASH_NONE;
}

/* 1 if record t matches certificate c. */
static int rec_matches(const struct xf_tlsa *t, const mbedtls_x509_crt *c)
{
    unsigned char *buf = malloc(XF_TLSA_DATA_MAX);
    int n, r = 0;
    if (!buf)
        return 0;
    n = xf_cert_digest(c, (enum xf_cert_part)t->selector, mtype_hash(t->mtype), buf, XF_TLSA_DATA_MAX);
    if (n > 0 && (size_t)n == t->len && memcmp(buf, t->data, t->len) == 0)
        r = 1;
    free(buf);
    return r;
}

/* Verify callback context for DANE-TA: the anchor's own validity is ignored. */
struct ta_ctx { const mbedtls_x509_crt *ta; };

static int ta_verify_cb(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    const struct ta_ctx *ctx = p;
    /* Only an anchor above the leaf has its dates waived (the leaf is never its
       own anchor, see dane_ta). */
    if (depth >= 1 && crt->raw.len == ctx->ta->raw.len && memcmp(crt->raw.p, ctx->ta->raw.p, crt->raw.len) == 0)
        *flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
    return 0;
}

/* DANE-TA(2) for one record. Returns 1 and fills why on match, 0 otherwise. */
static int dane_ta(const struct xf_tlsa *t, mbedtls_x509_crt *chain, const char *domain,
                   enum xf_service svc, const char *srv_target, char *why, size_t wlen)
{
    mbedtls_x509_crt anchor;
    const mbedtls_x509_crt *found = NULL;
    struct ta_ctx ctx;
    struct xf_id_verdict id;
    uint32_t flags = 0;
    char ebuf[64];
    int r = 0, idr, vr;

    mbedtls_x509_crt_init(&anchor);
    for (const mbedtls_x509_crt *c = chain->next; c && c->raw.p; c = c->next)
        if (rec_matches(t, c)) {
            found = c;
            break;
        }
    if (found) {
        if (mbedtls_x509_crt_parse_der(&anchor, found->raw.p, found->raw.len) != 0)
            goto out;
    } else if (t->selector == XF_TLSA_SEL_CERT && t->mtype == XF_TLSA_MT_FULL) {
        /* "2 0 0" carries the anchor itself; the server need not send it. */
        if (mbedtls_x509_crt_parse_der(&anchor, t->data, t->len) != 0) {
            snprintf(why, wlen, "DANE-TA data is not a certificate");
            goto out;
        }
    } else {
        snprintf(why, wlen, "DANE-TA: no certificate sent by the peer matches");
        goto out;
    }
    /* The end entity is never its own trust anchor: that would waive its dates
       and every CA rule (a self-signed leaf is what DANE-EE(3) is for). */
    if (anchor.raw.len == chain->raw.len
        && memcmp(anchor.raw.p, chain->raw.p, chain->raw.len) == 0) {
        snprintf(why, wlen, "DANE-TA: the matched anchor is the end-entity certificate itself, "
                            "which is not a trust anchor (publish DANE-EE 3 x x for that)");
        goto out;
    }
    ctx.ta = &anchor;
    vr = mbedtls_x509_crt_verify_with_profile(chain, &anchor, NULL, &mbedtls_x509_crt_profile_default,
                                              NULL, &flags, ta_verify_cb, &ctx);
    if (vr != 0 || flags) {
        snprintf(why, wlen, "DANE-TA anchor matches, but %s",
                 xf_pkix_fail_text(vr, flags, ebuf, sizeof ebuf));
        goto out;
    }
    if (!xf_pkix_leaf_ok(chain, XF_PKIX_ROLE_SERVER, why, wlen))
        goto out;
    idr = xf_identity_check(chain, domain, svc, srv_target, &id);
    if (idr != 1) {
        snprintf(why, wlen, "DANE-TA chain valid, but %.300s", id.reason);
        goto out;
    }
    snprintf(why, wlen, "DANE-TA: chain validates to the matched anchor; %.300s", id.reason);
    r = 1;
out:
    mbedtls_x509_crt_free(&anchor);
    return r;
}

/* PKIX-TA(0) / PKIX-EE(1) for one record (RFC 6698 §2.1.1): the chain must
   validate against `ca` (and pass the name check); then PKIX-EE matches only the
   leaf, and PKIX-TA only a CA certificate on the path mbedTLS actually validated
   (intermediates and the trust anchor, which usually comes from the CA store and
   is not sent by the peer). A certificate the peer sent that is not on that path
   proves nothing. */
static int pkix_usage(const struct xf_tlsa *t, mbedtls_x509_crt *chain, mbedtls_x509_crt *ca,
                      const char *domain, enum xf_service svc, const char *srv_target,
                      char *why, size_t wlen)
{
    struct xf_pkix_verdict *pv;
    const char *name = t->usage == XF_TLSA_PKIX_EE ? "PKIX-EE" : "PKIX-TA";
    int matched = 0, r = 0;
    if (!ca) {
        snprintf(why, wlen, "%s: no CA set to validate against", name);
        return 0;
    }
    if (!(pv = malloc(sizeof *pv))) {
        snprintf(why, wlen, "%s: out of memory", name);
        return 0;
    }
    if (xf_pkix_check(chain, ca, XF_PKIX_ROLE_SERVER, domain, svc, srv_target, pv) != 1) {
        snprintf(why, wlen, "%s: %.300s", name, pv->reason);
        goto out;
    }
    if (t->usage == XF_TLSA_PKIX_EE) {
        matched = rec_matches(t, chain);
    } else {
        for (size_t i = 1; i < pv->npath && !matched; i++)
            matched = rec_matches(t, pv->path[i]);
    }
    if (!matched) {
        snprintf(why, wlen, "%s: chain valid, but no certificate on the validated path matches%s",
                 name, t->usage == XF_TLSA_PKIX_EE ? " (the end entity)" : " (CA certificates)");
        goto out;
    }
    snprintf(why, wlen, "%s matched on the validated path and %.300s", name, pv->reason);
    r = 1;
out:
    free(pv);
    return r;
}

enum xf_dane_result xf_dane_check(const struct xf_tlsa *recs, size_t n,
                                  mbedtls_x509_crt *chain, mbedtls_x509_crt *ca,
                                  const char *domain, enum xf_service svc,
                                  const char *srv_target, struct xf_dane_verdict *v)
{
    /* strongest[usage][selector]: highest usable digest mtype (1 or 2), 0 if none. */
    uint8_t strongest[4][2] = { { 0 } };
    size_t usable = 0, off = 0;
    char why[360];

    memset(v, 0, sizeof *v);
    v->record = -1;
    if (!recs || !chain || !chain->raw.p) {
        v->result = XF_DANE_UNUSABLE;
        snprintf(v->reason, sizeof v->reason, "no records or no certificate");
        return v->result;
    }
    for (size_t i = 0; i < n; i++) {
        if (!xf_tlsa_usable(&recs[i], NULL))
            continue;
        usable++;
        if (recs[i].mtype > strongest[recs[i].usage][recs[i].selector])
            strongest[recs[i].usage][recs[i].selector] = recs[i].mtype;
    }
    if (usable == 0) {
        v->result = XF_DANE_UNUSABLE;
        const char *w = NULL;
        if (n > 0)
            xf_tlsa_usable(&recs[0], &w);
        snprintf(v->reason, sizeof v->reason, "no usable TLSA record (record 1: %s)",
                 w ? w : "none");
        return v->result;
    }
    off = (size_t)snprintf(v->reason, sizeof v->reason, "no usable record matches:");
    for (size_t i = 0; i < n; i++) {
        const struct xf_tlsa *t = &recs[i];
        int m = 0;
        const char *w;
        if (!xf_tlsa_usable(t, &w)) {
            snprintf(why, sizeof why, "unusable (%s)", w);
        } else if (t->mtype != XF_TLSA_MT_FULL && t->mtype != strongest[t->usage][t->selector]) {
            snprintf(why, sizeof why, "ignored: a stronger digest is published for %u %u",
                     t->usage, t->selector);
        } else if (t->usage == XF_TLSA_DANE_EE) {
            m = rec_matches(t, chain);
            snprintf(why, sizeof why, m ? "DANE-EE matches the end-entity %s (names and dates not checked)"
                                        : "DANE-EE: end-entity %s does not match",
                     t->selector == XF_TLSA_SEL_SPKI ? "public key" : "certificate");
        } else if (t->usage == XF_TLSA_DANE_TA) {
            m = dane_ta(t, chain, domain, svc, srv_target, why, sizeof why);
        } else {
            m = pkix_usage(t, chain, ca, domain, svc, srv_target, why, sizeof why);
        }
        if (m) {
            v->result = XF_DANE_MATCH;
            v->record = (int)i;
            snprintf(v->reason, sizeof v->reason, "record %zu (%u %u %u): %.340s", i + 1,
                     t->usage, t->selector, t->mtype, why);
            return v->result;
        }
        if (off < sizeof v->reason)
            off += (size_t)snprintf(v->reason + off, sizeof v->reason - off,
                                    " [%zu %u %u %u: %s]", i + 1, t->usage, t->selector,
                                    t->mtype, why);
    }
    v->result = XF_DANE_NOMATCH;
    return v->result;
}

int xf_dane_generate(const mbedtls_x509_crt *crt, int usage, int selector, int mtype,
                     char *out, size_t outlen)
{
    unsigned char *buf;
    int n, p;
    if (!crt || !out || usage < 0 || usage > 3 || selector < 0 || selector > 1
        || mtype < 0 || mtype > 2)
        return XF_TLSA_ERR_SYNTAX;
    if (!(buf = malloc(XF_TLSA_DATA_MAX)))
        return XF_TLSA_ERR_SPACE;
    n = xf_cert_digest(crt, (enum xf_cert_part)selector, mtype_hash((uint8_t)mtype), buf, XF_TLSA_DATA_MAX);
    p = n < 0 ? -1 : snprintf(out, outlen, "%d %d %d ", usage, selector, mtype);
    if (n < 0 || p < 0 || (size_t)p >= outlen
        || xf_hex_encode(buf, (size_t)n, out + p, outlen - (size_t)p) < 0) {
        free(buf);
        return XF_TLSA_ERR_SPACE;
    }
    free(buf);
    return p + 2 * n;
}
