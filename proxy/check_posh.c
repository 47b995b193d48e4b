/*
 * check_posh: the POSH documents of a domain for `xmppfront check` (proxy/check_int.h),
 * fetched with libcurl's easy API as RFC 7711 §3 says a peer does: HTTPS only (also
 * for redirects, at most 10, §3.3), the web server validated by PKIX, 404 = no POSH,
 * a reference document followed once (§3.4) and the result required to be a
 * fingerprints document. Bodies are bounded (XF_POSH_MAX_DOC), time by the deadline.
 */
#include "proxy/check_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#define POSH_CONNECT_MS 3000

typedef struct body {
    unsigned char *p;
    size_t len;
    int too_big;
} body;

static size_t on_data(char *data, size_t size, size_t nmemb, void *udata)
{
    body *b = udata;
    size_t n = size * nmemb;
    if (b->len + n > XF_POSH_MAX_DOC) {
        b->too_big = 1;
        return 0;                      /* curl aborts with CURLE_WRITE_ERROR */
    }
    unsigned char *q = realloc(b->p, b->len + n + 1);
    if (q == NULL)
        return 0;
    memcpy(q + b->len, data, n);
    b->p = q;
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* The host part of an https URL into host (no port, no brackets). 0 or -1. */
static int url_host(const char *url, char *host, size_t hlen)
{
    const char *p = url + strlen("https://"), *end;
    if (strncmp(url, "https://", 8) != 0)
        return -1;
    if (*p == '[') {
        end = strchr(p, ']');
        p++;
    } else {
        end = p + strcspn(p, ":/?#");
    }
    if (end == NULL || end == p || (size_t)(end - p) >= hlen)
        return -1;
    memcpy(host, p, (size_t)(end - p));
    host[end - p] = '\0';
    return 0;
}

/* One GET. Returns the HTTP status (>= 100) with *b filled, or -1 with why set. */
static long get(const char *url, const char *ca_file, xf_cposh_resolve_fn resolve,
                void *udata, uint64_t deadline, body *b, char *why, size_t wlen)
{
    char host[256], entry[1200], cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *res = NULL;
    long status = -1;
    uint64_t now = xf_check_now_ms();
    if (now >= deadline) {
        snprintf(why, wlen, "no time left to fetch %.200s", url);
        return -1;
    }
    CURL *h = curl_easy_init();
    if (h == NULL) {
        snprintf(why, wlen, "cannot start libcurl");
        return -1;
    }
    if (resolve && url_host(url, host, sizeof(host)) == 0 &&
        resolve(udata, host, entry, sizeof(entry)) == 0)
        res = curl_slist_append(NULL, entry);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(deadline - now));
    /* a web server that drops SYNs must not eat the whole budget */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(deadline - now < POSH_CONNECT_MS ? deadline - now : POSH_CONNECT_MS));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)XF_POSH_MAX_DOC);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "xmppfront-check");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    if (res)
        curl_easy_setopt(h, CURLOPT_RESOLVE, res);
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    } else if (b->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(why, wlen, "%.200s: larger than %d bytes", url, XF_POSH_MAX_DOC);
    } else {
        snprintf(why, wlen, "%.200s: %s", url, cerr[0] ? cerr : curl_easy_strerror(rc));
        /* no web server at all is "no POSH", anything after that is an error */
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
            status = -2;
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(res);
    return status;
}

/* Fetches and parses one document into doc. Returns VALID (parsed), ABSENT, ERROR. */
static int fetch_doc(const char *url, const char *ca_file, xf_cposh_resolve_fn resolve,
                     void *udata, uint64_t deadline, struct xf_posh_doc *doc, char *why,
                     size_t wlen)
{
    body b = { 0 };
    char perr[200];
    int result;
    long st = get(url, ca_file, resolve, udata, deadline, &b, why, wlen);
    if (st == -2) {
        result = XF_PROOF_ABSENT;
    } else if (st < 0) {
        result = XF_PROOF_ERROR;
    } else if (st == 404 || st == 410) {
        snprintf(why, wlen, "%.200s: HTTP %ld (no POSH document)", url, st);
        result = XF_PROOF_ABSENT;
    } else if (st != 200) {
        snprintf(why, wlen, "%.200s: HTTP %ld", url, st);
        result = XF_PROOF_ERROR;
    } else if (xf_posh_parse(b.p ? b.p : (const unsigned char *)"", b.len, doc, perr,
                             sizeof(perr)) != 0) {
        snprintf(why, wlen, "%.150s: not a POSH document: %.200s", url, perr);
        result = XF_PROOF_ERROR;
    } else {
        result = XF_PROOF_VALID;
    }
    free(b.p);
    return result;
}

void xf_cposh_fetch(const char *domain, const char *kind, const char *ca_file,
                    xf_cposh_resolve_fn resolve, void *udata, uint64_t deadline,
                    xf_check_posh *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->url, sizeof(out->url), "https://%s/.well-known/posh/%s.json", domain, kind);
    struct xf_posh_doc *doc = malloc(sizeof(*doc));
    if (doc == NULL) {
        out->result = XF_PROOF_ERROR;
        snprintf(out->why, sizeof(out->why), "out of memory");
        return;
    }
    out->result = fetch_doc(out->url, ca_file, resolve, udata, deadline, doc, out->why,
                            sizeof(out->why));
    if (out->result == XF_PROOF_VALID && doc->kind == XF_POSH_REFERENCE) {
        snprintf(out->via, sizeof(out->via), "%s", doc->url);
        int r = fetch_doc(out->via, ca_file, resolve, udata, deadline, doc, out->why,
                          sizeof(out->why));
        if (r == XF_PROOF_VALID && doc->kind != XF_POSH_FINGERPRINTS) {
            snprintf(out->why, sizeof(out->why), "%.150s refers to %.150s, itself a "
                     "reference (one level only, RFC 7711 §3.4)", out->url, out->via);
            r = XF_PROOF_ERROR;
        } else if (r == XF_PROOF_ABSENT) {
            r = XF_PROOF_ERROR;        /* a reference to nothing is broken, not absent */
            size_t l = strlen(out->why);
            snprintf(out->why + l, sizeof(out->why) - l, " (referenced by %.200s)", out->url);
        }
        out->result = r;
    }
    if (out->result == XF_PROOF_VALID)
        out->doc = doc;
    else
        free(doc);
}
