/*
 * srvorder: XEP-0368 + RFC 2782 target ordering. See srvorder.h for the contract and
 * the decision table.
 */
#include "proxy/srvorder.h"

#include <stdlib.h>
#include <string.h>

struct cand {
    const xf_srv_rec *rec;
    int tls;
    size_t seq;                        /* input order: keeps the sort stable */
};

/* Normalise a host name into out[XF_SRV_HOST_MAX]: lower case, one trailing dot
   dropped, only letters, digits, '-', '_' and '.' (no empty label). 0 or -1. */
static int host_normalise(const char *in, char *out)
{
    size_t n = strnlen(in, XF_SRV_HOST_MAX);
    if (n == XF_SRV_HOST_MAX) return -1;
    if (n && in[n - 1] == '.') n--;
    if (n == 0 || n > XF_SRV_HOST_MAX - 1) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (c == '.') {
            if (i == 0 || in[i - 1] == '.') return -1;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                     c == '_')) {
            return -1;
        }
        out[i] = (char)c;
    }
    out[n] = '\0';
    return 0;
}

static int is_dot(const xf_srv_rec *r)
{
    return r->target[0] == '\0' || (r->target[0] == '.' && r->target[1] == '\0');
}

/* Usable records of a set appended to pool[]: not ".", port != 0, a target that
   is a host name. */
static size_t set_add(const xf_srv_answer *a, int tls, struct cand *pool, size_t np)
{
    if (a->status != XF_SRV_ST_RECORDS || !a->recs) return np;
    size_t n = a->n < XF_SRV_MAX_RECORDS ? a->n : XF_SRV_MAX_RECORDS;
    for (size_t i = 0; i < n; i++) {
        const xf_srv_rec *r = &a->recs[i];
        char tmp[XF_SRV_HOST_MAX];
        if (is_dot(r) || r->port == 0 || host_normalise(r->target, tmp) < 0) continue;
        pool[np] = (struct cand){ r, tls, np };
        np++;
    }
    return np;
}

/* Priority ascending; within one priority weight-0 records first (RFC 2782: "arrange
   all SRV RRs (that have not been ordered yet) in any order, except that all those
   with weight 0 are placed at the beginning of the list"); otherwise input order. */
static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->rec->priority != y->rec->priority)
        return x->rec->priority < y->rec->priority ? -1 : 1;
    int xz = x->rec->weight == 0, yz = y->rec->weight == 0;
    if (xz != yz) return xz ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static uint32_t default_rand(void *ctx, uint32_t bound)
{
    (void)ctx;
    return (uint32_t)((unsigned long)random() % ((unsigned long)bound + 1));
}

static int emit(xf_srv_target *t, const char *host, uint16_t port, int tls,
                uint16_t prio, uint16_t weight, int fallback)
{
    if (host_normalise(host, t->host) < 0) return -1;
    t->port = port;
    t->tls = tls;
    t->priority = prio;
    t->weight = weight;
    t->fallback = fallback;
    return 0;
}

int xf_srv_order(const char *domain, const xf_srv_answer *xmpps, const xf_srv_answer *xmpp,
                 xf_srv_rand_fn rnd, void *ctx, xf_srv_target *out, size_t max)
{
    struct cand pool[2 * XF_SRV_MAX_RECORDS];
    char dom[XF_SRV_HOST_MAX];
    size_t np = 0, nout = 0;

    if (!domain || !xmpps || !xmpp || !out || max == 0 || host_normalise(domain, dom) < 0)
        return XF_SRV_ERR_ARG;
    if (!rnd) rnd = default_rand;
    if (xmpps->status == XF_SRV_ST_FAIL || xmpp->status == XF_SRV_ST_FAIL)
        return XF_SRV_ERR_LOOKUP;

    np = set_add(xmpps, XF_SRV_TLS_DIRECT, pool, np);
    np = set_add(xmpp, XF_SRV_TLS_STARTTLS, pool, np);
    if (np == 0) {
        /* No usable record. Any "." means SRV is in use and says no (RFC 2782,
           XEP-0368 §5); records that were all unusable (port 0, bad names) also
           mean SRV is in use: no fallback either. */
        if (xmpps->status == XF_SRV_ST_RECORDS || xmpp->status == XF_SRV_ST_RECORDS)
            return XF_SRV_NO_SERVICE;
        if (emit(&out[0], dom, XF_SRV_FALLBACK_PORT, XF_SRV_TLS_STARTTLS, 0, 0, 1) < 0)
            return XF_SRV_ERR_ARG;
        return 1;
    }
    qsort(pool, np, sizeof pool[0], cand_cmp);

    /* RFC 2782 weighted selection, one priority group [g, e) at a time. */
    for (size_t g = 0; g < np && nout < max;) {
        size_t e = g;
        while (e < np && pool[e].rec->priority == pool[g].rec->priority) e++;
        while (g < e && nout < max) {
            uint32_t total = 0, r;
            for (size_t i = g; i < e; i++) total += pool[i].rec->weight;
            if (pool[g].rec->weight == 0) {
                r = rnd(ctx, total);           /* weight-0 records own r == 0 */
            } else {
                r = rnd(ctx, total - 1) + 1;   /* none: r in [1, total], exact shares */
            }
            if (r > total) r = total;          /* a broken source never overruns */
            size_t pick = e - 1;
            uint32_t sum = 0;
            for (size_t i = g; i < e; i++) {
                sum += pool[i].rec->weight;
                if (sum >= r) { pick = i; break; }
            }
            struct cand c = pool[pick];
            /* Remove the pick, keeping the order of the rest (weight-0 first). */
            memmove(&pool[g + 1], &pool[g], (pick - g) * sizeof pool[0]);
            g++;
            emit(&out[nout++], c.rec->target, c.rec->port, c.tls, c.rec->priority,
                 c.rec->weight, 0);           /* the name was checked by set_add */
        }
        g = e;
    }
    return nout ? (int)nout : XF_SRV_NO_SERVICE;
}

const char *xf_srv_tls_name(int tls)
{
    return tls == XF_SRV_TLS_DIRECT ? "direct-tls" : "starttls";
}
