/*
 * srvorder: the connection order for an outbound s2s stream to domain D, from the
 * answers to `_xmpps-server._tcp.D` and `_xmpp-server._tcp.D` (XEP-0368 §3: both sets
 * merged into one RFC 2782 ordering; xmpps- targets use direct TLS, xmpp- targets
 * STARTTLS). Pure: no I/O, no allocation; the random source is injected so that tests
 * are deterministic.
 *
 * Decision table (RFC 6120 §3.2, RFC 2782 "." target, XEP-0368 §5):
 *
 *   _xmpps-server     _xmpp-server      result
 *   records           records           both sets merged
 *   records           none / "."        the xmpps set only
 *   none / "."        records           the xmpp set only
 *   "."               none / "."        XF_SRV_NO_SERVICE (XEP-0368: no A/AAAA fallback
 *                                       once "." says SRV is in use)
 *   none              "."               XF_SRV_NO_SERVICE (RFC 2782: decidedly not
 *                                       available; no fallback)
 *   none              none              one candidate: D, port 5269, STARTTLS
 *                                       (RFC 6120 §3.2.2 fallback to D's A/AAAA)
 *   failed (either)   anything          XF_SRV_ERR_LOOKUP: a SERVFAIL or timeout may hide
 *                                       a "." or better targets, and for DNSSEC a bogus
 *                                       answer shows as SERVFAIL (RFC 7673 §3.1: abort)
 *
 * "none" = NXDOMAIN or NODATA. A "." is recognised only as the single record of its
 * set (RFC 2782); a "." among other records is ignored as a malformed record.
 */
#ifndef XF_SRVORDER_H
#define XF_SRVORDER_H

#include <stddef.h>
#include <stdint.h>

#define XF_SRV_HOST_MAX 254            /* 253 characters + NUL */
#define XF_SRV_FALLBACK_PORT 5269
#define XF_SRV_MAX_RECORDS 64          /* per set; more are ignored (logged by the caller) */

/* Status of one SRV lookup, as the DNS adapter reports it. */
enum xf_srv_status {
    XF_SRV_ST_RECORDS = 0,             /* NOERROR with SRV records (a "." included) */
    XF_SRV_ST_NONE = 1,                /* NXDOMAIN or NODATA */
    XF_SRV_ST_FAIL = 2                 /* SERVFAIL, REFUSED, timeout, malformed answer */
};

/* How to speak TLS to a candidate (XEP-0368 §3 rules 2 and 3). */
enum xf_srv_tls { XF_SRV_TLS_DIRECT = 1, XF_SRV_TLS_STARTTLS = 2 };

typedef struct xf_srv_rec {
    uint16_t priority, weight, port;
    char target[XF_SRV_HOST_MAX];      /* as received; one trailing dot allowed; "." or
                                          "" = the RFC 2782 "no service" target */
} xf_srv_rec;

typedef struct xf_srv_answer {
    int status;                        /* enum xf_srv_status */
    const xf_srv_rec *recs;            /* status XF_SRV_ST_RECORDS: n records */
    size_t n;
} xf_srv_answer;

typedef struct xf_srv_target {
    char host[XF_SRV_HOST_MAX];        /* lower case, no trailing dot */
    uint16_t port;
    int tls;                           /* enum xf_srv_tls */
    uint16_t priority, weight;         /* copied from the record (0, 0 for the fallback) */
    int fallback;                      /* 1: RFC 6120 §3.2.2 A/AAAA fallback on 5269 */
} xf_srv_target;

/* Uniform random integer in [0, bound] (bound inclusive, bound <= 64 * 65535).
   ctx is the caller's. */
typedef uint32_t (*xf_srv_rand_fn)(void *ctx, uint32_t bound);

#define XF_SRV_NO_SERVICE   -1         /* "." says the service is not offered */
#define XF_SRV_ERR_LOOKUP   -2         /* a lookup failed: no decision is safe */
#define XF_SRV_ERR_ARG      -3

/* Orders the candidates into out[0..max). Within one priority (ascending), targets
   are drawn per RFC 2782 §"Usage rules": the remaining records are arranged with
   weight-0 ones first, running sums of weights are computed, r is drawn uniformly
   in [0, total], the first record whose running sum >= r is taken, and the draw
   repeats without it. One refinement: r == 0 exists to give weight-0 records their
   "very small chance" (RFC 2782 "Weight"); when no weight-0 record remains, r is
   drawn in [1, total] (rnd(ctx, total - 1) + 1), so that the first record does not
   get that extra slot and every share is exactly weight / total (weights 1:3 ->
   25%:75%, not 40%:60%). xmpps and xmpp records are one pool (XEP-0368 §3
   rule 1). Records with port 0 or an empty/"." target among others are dropped.
   rnd NULL = a random() based source (not for tests).
   Returns the number of candidates written (>= 1; at most max, the rest dropped),
   or XF_SRV_NO_SERVICE, XF_SRV_ERR_LOOKUP, XF_SRV_ERR_ARG (domain NULL/empty/too
   long, an answer NULL, max 0). */
int xf_srv_order(const char *domain, const xf_srv_answer *xmpps, const xf_srv_answer *xmpp,
                 xf_srv_rand_fn rnd, void *ctx, xf_srv_target *out, size_t max);

/* "direct-tls" or "starttls", for logs. */
const char *xf_srv_tls_name(int tls);

#endif
