/*
 * posh_fetch: RFC 7711 (POSH) documents fetched over HTTPS for the outbound path
 * (issue 8 "Verifying peers", spec-digest §5), a libcurl multi handle driven by a
 * worker's libuv loop (curl_multi_socket_action with uv_poll and uv_timer, as in
 * libcurl's multi-uv example). One fetcher per worker, like proxy/dns.h; nothing is
 * shared between threads.
 *
 * What is fetched: https://DOMAIN/.well-known/posh/xmpp-server.json, DOMAIN = the
 * stream `to` (the remote domain), never the SNI or an SRV target (RFC 7711 §3.1,
 * RFC 7712 §5). Bounds:
 *   - HTTPS only, also for redirects (CURLOPT_PROTOCOLS_STR / REDIR_PROTOCOLS_STR
 *     "https"), at most XF_POSH_FETCH_MAX_REDIRS redirects (RFC 7711 §3.3 allows
 *     up to 10; fewer is stricter); the web server is validated by PKIX against the
 *     configured CA file (RFC 2818), no proxy from the environment;
 *   - a body larger than XF_POSH_MAX_DOC (certs/posh.h) is refused;
 *   - the whole fetch, the delegated document included, within timeout_ms.
 * Documents are parsed by certs/posh.h. A reference document (`url`, RFC 7711 §3.4)
 * is followed one level: the document at `url` must be a fingerprints document (a
 * second reference is invalid). The answer is cached per fetcher for the lower of
 * the two `expires` values, capped at ttl_max_s (RFC 7711 §3.3: not HTTP caching);
 * a failure (404, error, invalid document) is cached for err_ttl_s only.
 *
 * Results come back by id (style.md §7): xf_posh_fetch returns an id, its callback
 * gets it back; xf_posh_fetch_cancel(id) guarantees the callback is never called. A
 * callback is never called from inside xf_posh_fetch (a cache hit is delivered on the
 * next loop iteration). Concurrent requests for one domain share one fetch.
 */
#ifndef XF_POSH_FETCH_H
#define XF_POSH_FETCH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "certs/posh.h"

#define XF_POSH_FETCH_MAX_REDIRS 3
#define XF_POSH_FETCH_TIMEOUT_MS 5000     /* default whole-fetch bound */
#define XF_POSH_FETCH_TTL_MAX_S 86400     /* default cap on a document's expires */
#define XF_POSH_FETCH_ERR_TTL_S 30        /* default life of a cached failure */
#define XF_POSH_FETCH_CACHE_MAX 256       /* default cached domains */

typedef struct xf_posh_fetcher xf_posh_fetcher;

typedef struct xf_posh_fetch_conf {
    const char *ca_file;               /* PEM bundle for the web servers; NULL =
                                          libcurl's default (the system bundle) */
    unsigned timeout_ms;               /* whole fetch; 0 = XF_POSH_FETCH_TIMEOUT_MS */
    unsigned ttl_max_s;                /* 0 = XF_POSH_FETCH_TTL_MAX_S */
    unsigned err_ttl_s;                /* 0 = XF_POSH_FETCH_ERR_TTL_S */
    unsigned cache_max;                /* 0 = XF_POSH_FETCH_CACHE_MAX */
    unsigned port;                     /* 0 = 443 (another port: tests only) */
} xf_posh_fetch_conf;

/* What a fetch found. */
enum xf_posh_status {
    XF_POSHF_DOC = 1,                  /* a fingerprints document (doc), perhaps through
                                          one `url` reference (delegated) */
    XF_POSHF_ABSENT,                   /* HTTP 404 (or 410) for the domain's document:
                                          the domain publishes no POSH */
    XF_POSHF_INVALID,                  /* a document that is not valid POSH, a second
                                          reference, or a 404 at the reference's url */
    XF_POSHF_ERROR                     /* the fetch failed: DNS, connect, TLS, timeout,
                                          size bound, an HTTP status other than 200/404 */
};

typedef struct xf_posh_answer {
    int status;                        /* enum xf_posh_status */
    char reason[160];                  /* one line, for the log and the proof reason */
    int delegated;                     /* DOC: the domain's document was a reference */
    long long expires;                 /* DOC: the lower of the two documents' expires */
    const struct xf_posh_doc *doc;     /* DOC: the fingerprints document; else NULL */
    unsigned refs;                     /* private: see xf_posh_answer_ref */
} xf_posh_answer;

/* The answer passed to a callback is borrowed for the call; a caller that wants to
   keep it takes a reference and drops it later (same thread). */
const xf_posh_answer *xf_posh_answer_ref(const xf_posh_answer *a);
void xf_posh_answer_unref(const xf_posh_answer *a);

/* from_cache: 1 when no HTTP request was made for this delivery. Callbacks may start
   and cancel fetches, but must not call xf_posh_fetcher_free. */
typedef void (*xf_posh_cb)(void *ud, uint64_t id, const xf_posh_answer *a, int from_cache);

/* New fetcher on loop. conf NULL = all defaults. NULL on failure with err set.
   curl_global_init must have been called (xf_posh_fetch_global_init). */
xf_posh_fetcher *xf_posh_fetcher_new(uv_loop_t *loop, const xf_posh_fetch_conf *conf,
                                     char *err, size_t errlen);

/* Once per process, before any thread uses libcurl. 0 or -1. */
int xf_posh_fetch_global_init(void);

/* Starts (or joins, or answers from the cache) the fetch of domain's POSH document.
   Returns the id (never 0), or 0 when domain is not a DNS name (see xf_posh_fetch_url)
   or memory ran out; then the callback is never called. */
uint64_t xf_posh_fetch(xf_posh_fetcher *f, const char *domain, xf_posh_cb cb, void *ud);

/* Cancels request id: its callback will not be called. 1 if it was pending, else 0
   (stale ids and 0 are fine). The shared HTTP fetch goes on and fills the cache. */
int xf_posh_fetch_cancel(xf_posh_fetcher *f, uint64_t id);

/* HTTP requests started so far (documents fetched, references included). */
uint64_t xf_posh_fetch_requests(const xf_posh_fetcher *f);

/* Destroys the fetcher: pending requests are cancelled (no callbacks), transfers
   aborted, handles uv_close()d; memory is freed from the last close callback, so the
   loop must run once more. Not from inside an xf_posh_cb. */
void xf_posh_fetcher_free(xf_posh_fetcher *f);

/* ---- pure steps (unit-tested) ---- */

/* "https://DOMAIN/.well-known/posh/xmpp-server.json" (":PORT" after DOMAIN when port
   is neither 0 nor 443) into out. domain must be a DNS name: labels of letters,
   digits, '-' and '_', separated by single dots, no trailing dot, at most 253
   characters; IP literals and anything that would change the URL ('/', '@', ':',
   '?', '#', '%') are refused. 0, or -1 (out untouched beyond a NUL). */
int xf_posh_fetch_url(const char *domain, unsigned port, char *out, size_t outlen);

/* Delegation step (RFC 7711 §3.4) for a parsed document fetched at stage 1 (the
   domain's own) or 2 (the reference's url). *expires receives the lower of itself
   (0 = none yet) and the document's expires. */
enum xf_posh_step {
    XF_POSH_STEP_DONE = 0,             /* fingerprints document: match against it */
    XF_POSH_STEP_FOLLOW = 1,           /* stage 1 reference: fetch doc->url */
    XF_POSH_STEP_INVALID = -1          /* stage 2 reference, or bad arguments */
};
int xf_posh_fetch_step(int stage, const struct xf_posh_doc *doc, long long *expires);

/* Seconds to cache an answer: DOC -> min(expires, ttl_max_s) (at least 1); anything
   else -> err_ttl_s. 0 for ttl values meaning the defaults as in xf_posh_fetch_conf. */
long long xf_posh_fetch_cache_ttl(int status, long long expires, unsigned ttl_max_s,
                                  unsigned err_ttl_s);

#endif
