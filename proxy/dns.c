/*
 * dns: c-ares on libuv. Contract in dns.h.
 *
 * c-ares API use is limited to what both 1.18 (Debian 12) and 1.34 (Debian 13) offer
 * without deprecation: ares_init_options with ARES_OPT_SOCK_STATE_CB, ares_process_fd,
 * ares_timeout, ares_set_servers_ports_csv, ares_cancel-free destruction. Sending is
 * the one difference: ares_send (raw query bytes) where c-ares has nothing newer, and
 * ares_send_dnsrec (deprecation of ares_send in 1.28+) when CMake found it
 * (XF_HAVE_ARES_SEND_DNSREC); in both cases the wire bytes of the query and of the
 * answer go through proxy/dnswire.c, so results are the same.
 */
#include "proxy/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "proxy/log.h"
#include "proxy/metrics.h"

#define DEF_TIMEOUT_MS 2000
#define DEF_TRIES 2
#define DEF_CACHE_MAX 1024
#define DEF_TTL_MAX 300
#define DEF_NEG_TTL_MAX 60

enum { KIND_SRV = 1, KIND_A_AAAA = 2, KIND_TLSA = 3 };

struct query;

/* One c-ares question of a query (SRV: one; A/AAAA: two). The c-ares callback
   argument; lives inside its query. */
struct sub {
    struct query *q;
    uint16_t qtype;
    int done;
    xf_dns_result res;
};

struct query {
    struct query *next, *prev;
    xf_dns *dns;
    uint64_t id;
    xf_dns_cb cb;                      /* NULL once cancelled */
    void *udata;
    int kind;
    int outstanding;                   /* c-ares questions in flight */
    int submitting;                    /* inside xf_dns_query_*: never deliver there */
    size_t nsub;
    struct sub sub[2];                 /* SRV, TLSA: one; A/AAAA: two */
    char name[XF_DNS_NAME_MAX];
};

struct sock {
    struct sock *next;
    xf_dns *dns;
    ares_socket_t fd;
    int closing;
    uv_poll_t poll;
};

struct cache_ent {
    char name[XF_DNS_NAME_MAX];
    uint16_t qtype;
    uint64_t expires;                  /* uv_now() ms */
    xf_dns_result res;
};

struct xf_dns {
    uv_loop_t *loop;
    ares_channel channel;
    uv_timer_t timer;                  /* c-ares timeouts */
    uv_timer_t deliver;                /* answers ready without the network */
    struct sock *socks;
    struct query *queries;             /* every live query */
    uint64_t next_id;
    struct cache_ent *cache;
    size_t n_cache, cache_max;
    int no_cache;
    unsigned ttl_max_s, neg_ttl_max_s;
    int closing;
    int handles;                       /* open libuv handles; free at 0 after closing */
    int ad_trusted;                    /* every resolver is on loopback (dns.h) */
};

static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;
static int g_init_rc;
static void lib_init(void) { g_init_rc = ares_library_init(ARES_LIB_INIT_ALL); }

/* ---- AD trust ----------------------------------------------------------------- */

/* 1 if the address text a (no port, no brackets; an IPv6 zone "%eth0" is ignored) is
   127.0.0.0/8 or ::1. */
static int addr_loopback(const char *a, size_t len)
{
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, a, len);
    buf[len] = '\0';
    char *pct = strchr(buf, '%');
    if (pct) *pct = '\0';
    if (inet_pton(AF_INET, buf, bin) == 1) return bin[0] == 127;
    if (inet_pton(AF_INET6, buf, bin) == 1) {
        static const unsigned char one[16] = { [15] = 1 };
        return memcmp(bin, one, 16) == 0;
    }
    return 0;
}

/* One server spec: "IPv4", "IPv4:port", "IPv6", "[IPv6]", "[IPv6]:port". */
static int server_loopback(const char *s)
{
    if (!s) return 0;
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        return e ? addr_loopback(s + 1, (size_t)(e - s - 1)) : 0;
    }
    const char *c = strchr(s, ':');
    if (c && strchr(c + 1, ':')) return addr_loopback(s, strlen(s));   /* bare IPv6 */
    return addr_loopback(s, c ? (size_t)(c - s) : strlen(s));
}

int xf_dns_servers_loopback(const char *const *servers, size_t n, size_t *first_bad)
{
    if (first_bad) *first_bad = n;
    if (!servers || n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!server_loopback(servers[i])) {
            if (first_bad) *first_bad = i;
            return 0;
        }
    return 1;
}

int xf_dns_resolvconf_loopback(const char *path, char *bad, size_t badlen)
{
    char line[512];
    int n = 0, ok = 1;
    if (bad && badlen) bad[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) {
        if (bad) snprintf(bad, badlen, "%s unreadable", path);
        return 0;
    }
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (strncmp(p, "nameserver", 10) != 0 || (p[10] != ' ' && p[10] != '\t')) continue;
        p += 10;
        while (*p == ' ' || *p == '\t') p++;
        size_t l = strcspn(p, " \t\r\n#;");
        if (l == 0) continue;
        n++;
        if (ok && !addr_loopback(p, l)) {
            ok = 0;
            if (bad) snprintf(bad, badlen, "%.*s", (int)(l < 64 ? l : 64), p);
        }
    }
    fclose(f);
    if (n == 0 && bad) snprintf(bad, badlen, "no nameserver in %s", path);
    return n > 0 && ok;
}

int xf_dns_ad_trusted(const xf_dns *dns) { return dns ? dns->ad_trusted : 0; }

/* Logs a change of the AD trust (the first channel logs "not trusted" once; workers
   share one decision). */
static void log_trust(int trusted, const char *why)
{
    static atomic_int last = -1;     /* -1: nothing logged yet; else the last state */
    int prev = atomic_exchange(&last, trusted);
    if (prev == trusted || (prev == -1 && trusted)) return;
    if (!trusted)
        xf_warn("dns: resolver %s is not on loopback: the AD bit is not trusted, every "
                "answer counts as DNSSEC-insecure (no DANE; PKIX and POSH only)", why);
    else
        xf_info("dns: every resolver is on loopback: the AD bit is trusted (DANE enabled)");
}

/* ---- handles ------------------------------------------------------------------ */

static void dns_maybe_free(xf_dns *dns)
{
    if (!dns->closing || dns->handles > 0) return;
    for (size_t i = 0; i < dns->n_cache; i++) xf_dns_result_free(&dns->cache[i].res);
    free(dns->cache);
    free(dns);
}

static void on_handle_closed(uv_handle_t *h)
{
    xf_dns *dns = h->data;
    dns->handles--;
    dns_maybe_free(dns);
}

static void on_sock_closed(uv_handle_t *h)
{
    struct sock *s = h->data;
    xf_dns *dns = s->dns;
    struct sock **pp = &dns->socks;
    while (*pp && *pp != s) pp = &(*pp)->next;
    if (*pp) *pp = s->next;
    free(s);
    dns->handles--;
    dns_maybe_free(dns);
}

static void update_timer(xf_dns *dns);

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock *s = h->data;
    xf_dns *dns = s->dns;
    ares_socket_t fd = s->fd;
    /* An error on the socket: let c-ares read and write it to find out. */
    int rd = status < 0 || (events & UV_READABLE);
    int wr = status < 0 || (events & UV_WRITABLE);
    ares_process_fd(dns->channel, rd ? fd : ARES_SOCKET_BAD, wr ? fd : ARES_SOCKET_BAD);
    if (!dns->closing) update_timer(dns);
}

/* c-ares tells which sockets it wants watched (ARES_OPT_SOCK_STATE_CB). */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    xf_dns *dns = data;
    struct sock *s;
    for (s = dns->socks; s; s = s->next)
        if (s->fd == fd && !s->closing) break;
    if (!readable && !writable) {
        if (s) {
            s->closing = 1;
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
        }
        return;
    }
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return;   /* c-ares times the query out */
        s->dns = dns;
        s->fd = fd;
        if (uv_poll_init_socket(dns->loop, &s->poll, fd) != 0) {
            free(s);
            return;
        }
        s->poll.data = s;
        s->next = dns->socks;
        dns->socks = s;
        dns->handles++;
    }
    uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
                  on_poll);
}

static void on_timer(uv_timer_t *t)
{
    xf_dns *dns = t->data;
    ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    if (!dns->closing) update_timer(dns);
}

static void update_timer(xf_dns *dns)
{
    struct timeval tv, *tp = ares_timeout(dns->channel, NULL, &tv);
    if (!tp) {
        uv_timer_stop(&dns->timer);
        return;
    }
    uint64_t ms = (uint64_t)tp->tv_sec * 1000 + ((uint64_t)tp->tv_usec + 999) / 1000;
    uv_timer_start(&dns->timer, on_timer, ms, 0);
}

/* ---- cache -------------------------------------------------------------------- */

static struct cache_ent *cache_find(xf_dns *dns, const char *name, uint16_t qtype)
{
    uint64_t now = uv_now(dns->loop);
    for (size_t i = 0; i < dns->n_cache; i++) {
        struct cache_ent *e = &dns->cache[i];
        if (e->qtype == qtype && !strcmp(e->name, name)) {
            if (e->expires > now) return e;
            return NULL;                           /* expired: replaced on insert */
        }
    }
    return NULL;
}

static void cache_put(xf_dns *dns, const char *name, uint16_t qtype, const xf_dns_result *r)
{
    uint32_t ttl;
    if (dns->no_cache) return;
    if (r->status == XF_DNS_NOERROR)
        ttl = r->ttl < dns->ttl_max_s ? r->ttl : dns->ttl_max_s;
    else if (r->status == XF_DNS_NXDOMAIN || r->status == XF_DNS_NODATA)
        ttl = r->ttl < dns->neg_ttl_max_s ? r->ttl : dns->neg_ttl_max_s;
    else
        return;                                    /* failures are never cached */
    if (ttl == 0) return;

    uint64_t now = uv_now(dns->loop);
    struct cache_ent *slot = NULL;
    for (size_t i = 0; i < dns->n_cache && !slot; i++)
        if (dns->cache[i].qtype == qtype && !strcmp(dns->cache[i].name, name))
            slot = &dns->cache[i];
    if (!slot && dns->n_cache < dns->cache_max) {
        slot = &dns->cache[dns->n_cache++];
        memset(slot, 0, sizeof *slot);
    }
    if (!slot) {                                   /* full: the one expiring first goes */
        slot = &dns->cache[0];
        for (size_t i = 1; i < dns->n_cache; i++)
            if (dns->cache[i].expires < slot->expires) slot = &dns->cache[i];
    }
    xf_dns_result_free(&slot->res);
    if (xf_dns_result_copy(&slot->res, r) < 0) {
        slot->expires = 0;
        slot->name[0] = '\0';
        return;
    }
    memcpy(slot->name, name, sizeof slot->name);
    slot->qtype = qtype;
    slot->expires = now + (uint64_t)ttl * 1000;
    slot->res.from_cache = 0;
}

/* ---- queries ------------------------------------------------------------------ */

static void query_unlink_free(struct query *q)
{
    xf_dns *dns = q->dns;
    if (q->prev) q->prev->next = q->next;
    else dns->queries = q->next;
    if (q->next) q->next->prev = q->prev;
    for (size_t i = 0; i < q->nsub; i++) xf_dns_result_free(&q->sub[i].res);
    free(q);
}

static int rank_fail(int st)
{
    return st == XF_DNS_SERVFAIL ? 3 : st == XF_DNS_TIMEOUT ? 2 : 1;
}

/* Combines the A (sub 0) and AAAA (sub 1) answers per dns.h. */
static int combine(struct query *q, xf_dns_result *out)
{
    const xf_dns_result *a = &q->sub[0].res, *b = &q->sub[1].res;
    memset(out, 0, sizeof *out);
    out->qtype = XF_DNS_T_AAAA;
    out->ad = a->ad && b->ad;
    out->from_cache = a->from_cache && b->from_cache;
    int aok = a->status == XF_DNS_NOERROR, bok = b->status == XF_DNS_NOERROR;
    if (aok || bok) {
        size_t n = a->n_addr + b->n_addr;
        if (n && !(out->addr = malloc(n * sizeof *out->addr))) {
            out->status = XF_DNS_ERROR;
            return 0;
        }
        if (b->n_addr) memcpy(out->addr, b->addr, b->n_addr * sizeof *out->addr);
        if (a->n_addr) memcpy(out->addr + b->n_addr, a->addr, a->n_addr * sizeof *out->addr);
        out->n_addr = n;
        out->status = XF_DNS_NOERROR;
        out->ttl = aok && bok ? (a->ttl < b->ttl ? a->ttl : b->ttl) : aok ? a->ttl : b->ttl;
        snprintf(out->cname, sizeof out->cname, "%s", bok && b->cname[0] ? b->cname : a->cname);
        return 1;
    }
    int aneg = a->status == XF_DNS_NXDOMAIN || a->status == XF_DNS_NODATA;
    int bneg = b->status == XF_DNS_NXDOMAIN || b->status == XF_DNS_NODATA;
    if (aneg && bneg) {
        out->status = a->status == XF_DNS_NXDOMAIN && b->status == XF_DNS_NXDOMAIN
                      ? XF_DNS_NXDOMAIN : XF_DNS_NODATA;
        out->ttl = a->ttl < b->ttl ? a->ttl : b->ttl;
    } else if (aneg) {
        out->status = b->status;
    } else if (bneg) {
        out->status = a->status;
    } else {
        out->status = rank_fail(a->status) >= rank_fail(b->status) ? a->status : b->status;
    }
    return 1;
}

/* Every sub of q has its answer: call back (unless cancelled) and free q. */
static void query_finish(struct query *q)
{
    if (q->cb) {
        xf_dns_cb cb = q->cb;
        q->cb = NULL;
        if (q->kind != KIND_A_AAAA) {
            cb(q->udata, q->id, &q->sub[0].res);
        } else {
            xf_dns_result r;
            combine(q, &r);
            cb(q->udata, q->id, &r);
            xf_dns_result_free(&r);
        }
    }
    query_unlink_free(q);
}

static void on_deliver(uv_timer_t *t)
{
    xf_dns *dns = t->data;
    struct query *q = dns->queries, *next;
    /* Only queries complete before this pass; ones added by callbacks wait for the
       next pass (the timer is restarted by their submission). */
    for (; q; q = next) {
        next = q->next;
        if (q->outstanding == 0 && !q->submitting) query_finish(q);
    }
}

/* Stores the answer of one sub; finishes the query when it was the last. */
static void sub_done(struct sub *s)
{
    struct query *q = s->q;
    xf_dns *dns = q->dns;
    s->done = 1;
    q->outstanding--;
    if (s->res.status <= XF_DNS_NODATA && !s->res.from_cache)
        cache_put(dns, q->name, s->qtype, &s->res);
    if (q->outstanding == 0 && !q->submitting) query_finish(q);
}

static int map_ares_status(int st)
{
    switch (st) {
    case ARES_ENOTFOUND: return XF_DNS_NXDOMAIN;
    case ARES_ENODATA: return XF_DNS_NODATA;
    case ARES_ESERVFAIL: return XF_DNS_SERVFAIL;
    case ARES_ETIMEOUT: return XF_DNS_TIMEOUT;
    default: return XF_DNS_ERROR;
    }
}

static void sub_answer(struct sub *s, int ares_status, const unsigned char *abuf, size_t alen)
{
    if (ares_status == ARES_SUCCESS && abuf) {
        if (xf_dnswire_parse(abuf, alen, s->q->name, s->qtype, &s->res) < 0)
            s->res.status = XF_DNS_ERROR;
    } else {
        xf_dns_result_free(&s->res);
        memset(&s->res, 0, sizeof s->res);
        s->res.qtype = s->qtype;
        s->res.status = map_ares_status(ares_status);
    }
    sub_done(s);
}

#ifdef XF_HAVE_ARES_SEND_DNSREC
static void on_ares_answer(void *arg, ares_status_t status, size_t timeouts,
                           const ares_dns_record_t *rec)
{
    (void)timeouts;
    unsigned char *buf = NULL;
    size_t len = 0;
    if (status == ARES_SUCCESS && rec && ares_dns_write(rec, &buf, &len) != ARES_SUCCESS)
        status = ARES_ENOMEM;
    sub_answer(arg, (int)status, buf, len);
    if (buf) ares_free_string(buf);
}

static int send_query(xf_dns *dns, const uint8_t *q, size_t len, struct sub *s)
{
    ares_dns_record_t *rec = NULL;
    unsigned short qid = 0;
    if (ares_dns_parse(q, len, 0, &rec) != ARES_SUCCESS) return -1;
    /* On failure ares_send_dnsrec has already called back (status != SUCCESS). */
    ares_send_dnsrec(dns->channel, rec, on_ares_answer, s, &qid);
    ares_dns_record_destroy(rec);
    return 0;
}
#else
static void on_ares_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    sub_answer(arg, status, abuf, alen > 0 ? (size_t)alen : 0);
}

static int send_query(xf_dns *dns, const uint8_t *q, size_t len, struct sub *s)
{
    ares_send(dns->channel, q, (int)len, on_ares_answer, s);
    return 0;
}
#endif

static uint16_t random_id(void)
{
    uint16_t id;
    if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id)
        id = (uint16_t)random();
    return id;
}

static uint64_t query_start(xf_dns *dns, const char *name, int kind, xf_dns_cb cb,
                            void *udata)
{
    uint8_t buf[XF_DNS_QUERY_MAX];
    struct query *q;
    if (!dns || dns->closing || !name || !cb) return 0;
    if (!(q = calloc(1, sizeof *q))) return 0;
    if (xf_dnswire_query(buf, sizeof buf, 0, name, XF_DNS_T_A) < 0) {     /* name check */
        free(q);
        return 0;
    }
    /* The normalised name, as dnswire compares it (lower case, no trailing dot). */
    size_t n = strlen(name);
    if (n && name[n - 1] == '.') n--;
    for (size_t i = 0; i < n; i++)
        q->name[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);
    q->name[n] = '\0';

    q->dns = dns;
    q->id = ++dns->next_id;
    q->cb = cb;
    q->udata = udata;
    q->kind = kind;
    q->nsub = kind == KIND_A_AAAA ? 2 : 1;
    q->sub[0].qtype = kind == KIND_SRV ? XF_DNS_T_SRV : kind == KIND_TLSA ? XF_DNS_T_TLSA
                    : XF_DNS_T_A;
    q->sub[1].qtype = XF_DNS_T_AAAA;
    q->next = dns->queries;
    if (q->next) q->next->prev = q;
    dns->queries = q;
    q->submitting = 1;
    for (size_t i = 0; i < q->nsub; i++) {
        struct sub *s = &q->sub[i];
        s->q = q;
        s->res.qtype = s->qtype;
        s->res.status = XF_DNS_ERROR;
        struct cache_ent *e = dns->no_cache ? NULL : cache_find(dns, q->name, s->qtype);
        q->outstanding++;
        if (e) {
            xf_metrics_inc(XF_MF_DNS_CACHE_HITS, 0);
            if (xf_dns_result_copy(&s->res, &e->res) == 0) {
                uint64_t left = (e->expires - uv_now(dns->loop) + 999) / 1000;
                s->res.ttl = (uint32_t)left;
                s->res.from_cache = 1;
            }
            sub_done(s);
            continue;
        }
        /* c-ares 1.18's ares_send keeps the ID of the bytes it is given (1.34's
           ares_send_dnsrec picks its own): an unpredictable one, as ares_query would
           (RFC 5452 §9.2). */
        int len = xf_dnswire_query(buf, sizeof buf, random_id(), q->name, s->qtype);
        xf_metrics_inc(XF_MF_DNS_QUERIES, 0);
        if (len < 0 || send_query(dns, buf, (size_t)len, s) < 0) {
            s->res.status = XF_DNS_ERROR;
            sub_done(s);
        }
    }
    q->submitting = 0;
    uint64_t id = q->id;
    if (q->outstanding == 0) uv_timer_start(&dns->deliver, on_deliver, 0, 0);
    update_timer(dns);
    return id;
}

uint64_t xf_dns_query_srv(xf_dns *dns, const char *name, xf_dns_cb cb, void *udata)
{
    return query_start(dns, name, KIND_SRV, cb, udata);
}

uint64_t xf_dns_query_a_aaaa(xf_dns *dns, const char *name, xf_dns_cb cb, void *udata)
{
    return query_start(dns, name, KIND_A_AAAA, cb, udata);
}

uint64_t xf_dns_query_tlsa(xf_dns *dns, unsigned port, const char *host, xf_dns_cb cb,
                           void *udata)
{
    char name[XF_DNS_NAME_MAX + 16];
    if (!host || port == 0 || port > 65535) return 0;
    int n = snprintf(name, sizeof name, "_%u._tcp.%s", port, host);
    if (n < 0 || (size_t)n >= XF_DNS_NAME_MAX) return 0;
    return query_start(dns, name, KIND_TLSA, cb, udata);
}

int xf_dns_cancel(xf_dns *dns, uint64_t id)
{
    if (!dns || id == 0) return 0;
    for (struct query *q = dns->queries; q; q = q->next)
        if (q->id == id) {
            if (!q->cb) return 0;
            q->cb = NULL;          /* c-ares still answers; the answer is dropped */
            return 1;
        }
    return 0;
}

size_t xf_dns_pending(const xf_dns *dns)
{
    size_t n = 0;
    for (const struct query *q = dns ? dns->queries : NULL; q; q = q->next)
        if (q->cb) n++;
    return n;
}

xf_dns *xf_dns_new(uv_loop_t *loop, const xf_dns_conf *conf, char *err, size_t errlen)
{
    static const xf_dns_conf defaults = { 0 };
    struct ares_options opt;
    xf_dns *dns = NULL;
    char *csv = NULL;
    int optmask, rc;

    if (!conf) conf = &defaults;
    pthread_once(&g_init_once, lib_init);
    if (g_init_rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(g_init_rc));
        return NULL;
    }
    if (!(dns = calloc(1, sizeof *dns))) goto nomem;
    dns->loop = loop;
    dns->no_cache = conf->no_cache;
    dns->cache_max = conf->cache_max ? conf->cache_max : DEF_CACHE_MAX;
    dns->ttl_max_s = conf->ttl_max_s ? conf->ttl_max_s : DEF_TTL_MAX;
    dns->neg_ttl_max_s = conf->neg_ttl_max_s ? conf->neg_ttl_max_s : DEF_NEG_TTL_MAX;
    if (!dns->no_cache && !(dns->cache = calloc(dns->cache_max, sizeof *dns->cache)))
        goto nomem;

    memset(&opt, 0, sizeof opt);
    opt.sock_state_cb = on_sock_state;
    opt.sock_state_cb_data = dns;
    opt.timeout = (int)(conf->timeout_ms ? conf->timeout_ms : DEF_TIMEOUT_MS);
    opt.tries = (int)(conf->tries ? conf->tries : DEF_TRIES);
    /* NOCHECKRESP: SERVFAIL and REFUSED answers come to us (and are reported as
       such) instead of c-ares skipping the server, which 1.18 then reports as
       "could not contact DNS servers". A SERVFAIL is not retried at another
       resolver: from a validating resolver it means bogus (RFC 7673 §3.1). */
    opt.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_NOCHECKRESP;
    optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
#ifdef ARES_OPT_QUERY_CACHE
    /* c-ares >= 1.23 caches by itself; the cache here is the one with our bounds. */
    opt.qcache_max_ttl = 0;
    optmask |= ARES_OPT_QUERY_CACHE;
#endif
    if ((rc = ares_init_options(&dns->channel, &opt, optmask)) != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(dns->cache);
        free(dns);
        return NULL;
    }
    if (conf->n_servers && conf->servers) {
        size_t len = 1;
        for (size_t i = 0; i < conf->n_servers; i++) len += strlen(conf->servers[i]) + 1;
        if (!(csv = malloc(len))) goto nomem_channel;
        csv[0] = '\0';
        for (size_t i = 0; i < conf->n_servers; i++) {
            if (i) strcat(csv, ",");
            strcat(csv, conf->servers[i]);
        }
        if ((rc = ares_set_servers_ports_csv(dns->channel, csv)) != ARES_SUCCESS) {
            snprintf(err, errlen, "c-ares: resolvers \"%s\": %s", csv, ares_strerror(rc));
            free(csv);
            ares_destroy(dns->channel);
            free(dns->cache);
            free(dns);
            return NULL;
        }
        free(csv);
    }
    {
        char why[160] = "";
        if (conf->n_servers && conf->servers) {
            size_t bad;
            dns->ad_trusted = xf_dns_servers_loopback(conf->servers, conf->n_servers, &bad);
            if (!dns->ad_trusted && bad < conf->n_servers)
                snprintf(why, sizeof why, "%.80s (federation.resolvers)", conf->servers[bad]);
        } else {
            char b[80];
            dns->ad_trusted = xf_dns_resolvconf_loopback("/etc/resolv.conf", b, sizeof b);
            snprintf(why, sizeof why, "%s (/etc/resolv.conf)", b);
        }
        log_trust(dns->ad_trusted, why);
    }
    uv_timer_init(loop, &dns->timer);
    uv_timer_init(loop, &dns->deliver);
    dns->timer.data = dns->deliver.data = dns;
    dns->handles = 2;
    return dns;
nomem_channel:
    ares_destroy(dns->channel);
nomem:
    snprintf(err, errlen, "c-ares: out of memory");
    if (dns) free(dns->cache);
    free(dns);
    return NULL;
}

void xf_dns_free(xf_dns *dns)
{
    if (!dns || dns->closing) return;
    dns->closing = 1;
    for (struct query *q = dns->queries; q; q = q->next) q->cb = NULL;
    /* Queries waiting for delivery have no c-ares part left. */
    for (struct query *q = dns->queries, *next; q; q = next) {
        next = q->next;
        if (q->outstanding == 0) query_unlink_free(q);
    }
    /* Calls every outstanding c-ares callback (ARES_EDESTRUCTION): the cancelled
       queries are freed there, and tells on_sock_state to drop each socket. */
    ares_destroy(dns->channel);
    while (dns->queries) query_unlink_free(dns->queries);   /* none expected */
    for (struct sock *s = dns->socks; s; s = s->next)
        if (!s->closing) {
            s->closing = 1;
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
        }
    uv_close((uv_handle_t *)&dns->timer, on_handle_closed);
    uv_close((uv_handle_t *)&dns->deliver, on_handle_closed);
}
