/* Unit tests for proxy/dns.c: c-ares on a uv loop against an in-process fake DNS
   server on 127.0.0.1 (UDP, ephemeral port, canned wire-format answers). Covers SRV
   with several records, NXDOMAIN with negative caching, SERVFAIL (never cached), the
   AD bit set and unset, a silent server (timeout), a CNAME'd target, the cache
   (a second query never reaches the server), TTL capping and expiry, cancellation,
   and uv_loop_close() == 0 after every test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/dns.h"
#include "proxy/srvorder.h"

/* ---- fake server ----------------------------------------------------------- */

#define MAX_HITS 32
struct hit { char name[256]; uint16_t qtype; int n; };

struct fake {
    uv_udp_t udp;
    int port;
    struct hit hits[MAX_HITS];
    size_t nhits;
    int packets;
    int saw_ad_in_query;               /* every query had AD set */
    int saw_opt;                       /* every query had an OPT record */
    uint32_t long_ttl;                 /* TTL for long.test */
};

static int hits(struct fake *f, const char *name, uint16_t qtype)
{
    for (size_t i = 0; i < f->nhits; i++)
        if (f->hits[i].qtype == qtype && !strcmp(f->hits[i].name, name)) return f->hits[i].n;
    return 0;
}

struct msg { uint8_t b[1500]; size_t n; };

static void put8(struct msg *m, unsigned v) { m->b[m->n++] = (uint8_t)v; }
static void put16(struct msg *m, unsigned v) { put8(m, v >> 8); put8(m, v & 0xff); }
static void put32(struct msg *m, uint32_t v) { put16(m, v >> 16); put16(m, v & 0xffff); }
static void putname(struct msg *m, const char *name)
{
    if (!strcmp(name, ".")) { put8(m, 0); return; }
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        put8(m, (unsigned)l);
        memcpy(m->b + m->n, name, l);
        m->n += l;
        name += l + (dot ? 1 : 0);
    }
    put8(m, 0);
}
/* RR header with the owner as a pointer to the question name (offset 12). */
static void rr_q(struct msg *m, uint16_t type, uint32_t ttl)
{
    put16(m, 0xC00C); put16(m, type); put16(m, 1); put32(m, ttl);
}
static void rr_named(struct msg *m, const char *owner, uint16_t type, uint32_t ttl)
{
    putname(m, owner); put16(m, type); put16(m, 1); put32(m, ttl);
}
static void rd_srv(struct msg *m, unsigned prio, unsigned w, unsigned port, const char *t)
{
    size_t at = m->n;
    put16(m, 0);
    put16(m, prio); put16(m, w); put16(m, port); putname(m, t);
    m->b[at] = (uint8_t)((m->n - at - 2) >> 8);
    m->b[at + 1] = (uint8_t)(m->n - at - 2);
}
static void rd_a(struct msg *m, const char *ip)
{
    put16(m, 4);
    inet_pton(AF_INET, ip, m->b + m->n);
    m->n += 4;
}
static void rd_aaaa(struct msg *m, const char *ip)
{
    put16(m, 16);
    inet_pton(AF_INET6, ip, m->b + m->n);
    m->n += 16;
}
static void rd_cname(struct msg *m, const char *t)
{
    size_t at = m->n;
    put16(m, 0);
    putname(m, t);
    m->b[at] = (uint8_t)((m->n - at - 2) >> 8);
    m->b[at + 1] = (uint8_t)(m->n - at - 2);
}
/* SOA in the authority section: TTL ttl, MINIMUM min. */
static void soa(struct msg *m, const char *zone, uint32_t ttl, uint32_t min)
{
    rr_named(m, zone, XF_DNS_T_SOA, ttl);
    size_t at = m->n;
    put16(m, 0);
    putname(m, "ns.test"); putname(m, "hostmaster.test");
    put32(m, 1); put32(m, 3600); put32(m, 600); put32(m, 86400); put32(m, min);
    m->b[at] = (uint8_t)((m->n - at - 2) >> 8);
    m->b[at + 1] = (uint8_t)(m->n - at - 2);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    (void)h;
    static char mem[4096];
    buf->base = mem;
    buf->len = sz < sizeof mem ? sz : sizeof mem;
}

static void on_sent(uv_udp_send_t *req, int status)
{
    (void)status;
    free(req);
}

/* Answers one query from the canned zone below. */
static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    (void)flags;
    struct fake *f = u->data;
    if (nread < 12 || !from) return;
    const uint8_t *q = (const uint8_t *)buf->base;
    size_t len = (size_t)nread, off = 12;
    char name[256];
    size_t o = 0;
    while (off < len && q[off]) {
        size_t l = q[off];
        if (off + 1 + l > len || o + l + 1 >= sizeof name) return;
        if (o) name[o++] = '.';
        memcpy(name + o, q + off + 1, l);
        o += l;
        off += 1 + l;
    }
    name[o] = '\0';
    if (off + 5 > len) return;
    uint16_t qtype = (uint16_t)(q[off + 1] << 8 | q[off + 2]);
    size_t qend = off + 5;
    f->packets++;
    if (!(q[3] & 0x20)) f->saw_ad_in_query = 0;
    if (!(q[10] == 0 && q[11] == 1)) f->saw_opt = 0;
    size_t i;
    for (i = 0; i < f->nhits; i++)
        if (f->hits[i].qtype == qtype && !strcmp(f->hits[i].name, name)) break;
    if (i == f->nhits && f->nhits < MAX_HITS) {
        snprintf(f->hits[i].name, sizeof f->hits[i].name, "%s", name);
        f->hits[i].qtype = qtype;
        f->nhits++;
    }
    if (i < MAX_HITS) f->hits[i].n++;

    if (!strcmp(name, "silent.test")) return;          /* never answers */

    struct msg *m = calloc(1, sizeof *m);
    memcpy(m->b, q, qend);                              /* header + question */
    m->n = qend;
    int ad = 0, rcode = 0;
    unsigned an = 0, ns = 0;
    if (!strcmp(name, "_xmpp-server._tcp.multi.test") && qtype == XF_DNS_T_SRV) {
        ad = 1;
        rr_q(m, XF_DNS_T_SRV, 120); rd_srv(m, 10, 60, 5269, "b.multi.test"); an++;
        rr_q(m, XF_DNS_T_SRV, 300); rd_srv(m, 5, 0, 5270, "A.Multi.Test."); an++;
        rr_q(m, XF_DNS_T_SRV, 200); rd_srv(m, 10, 30, 5269, "c.multi.test"); an++;
    } else if (!strcmp(name, "_xmpp-server._tcp.cancel.test") ||
               !strcmp(name, "_xmpp-server._tcp.nocache.test")) {
        rr_q(m, XF_DNS_T_SRV, 120); rd_srv(m, 0, 0, 5269, "x.test"); an++;
    } else if (!strcmp(name, "_xmpp-server._tcp.dot.test")) {
        rr_q(m, XF_DNS_T_SRV, 120); rd_srv(m, 0, 0, 0, "."); an++;
    } else if (!strcmp(name, "_xmpps-server._tcp.multi.test")) {
        rcode = 3;
        soa(m, "multi.test", 30, 10); ns++;
    } else if (!strcmp(name, "_5269._tcp.xmpp.dane.test") && qtype == XF_DNS_T_TLSA) {
        ad = 1;
        rr_q(m, XF_DNS_T_TLSA, 90);
        put16(m, 3 + 32); put8(m, 3); put8(m, 1); put8(m, 1);
        for (unsigned k = 0; k < 32; k++) put8(m, k);
        an++;
    } else if (!strcmp(name, "_5269._tcp.bogus.dane.test")) {
        rcode = 2;                                      /* a validating resolver: bogus */
    } else if (!strcmp(name, "_5270._tcp.xmpp.dane.test")) {
        ad = 1;
        soa(m, "dane.test", 30, 30); ns++;              /* secure NODATA */
    } else if (!strcmp(name, "fail.test")) {
        rcode = 2;
    } else if (!strcmp(name, "ad.test")) {
        ad = 1;
        if (qtype == XF_DNS_T_A) { rr_q(m, XF_DNS_T_A, 60); rd_a(m, "192.0.2.10"); an++; }
        else { rr_q(m, XF_DNS_T_AAAA, 60); rd_aaaa(m, "2001:db8::10"); an++; }
    } else if (!strcmp(name, "noad.test")) {
        if (qtype == XF_DNS_T_A) { rr_q(m, XF_DNS_T_A, 60); rd_a(m, "192.0.2.1"); an++; }
        else { soa(m, "noad.test", 60, 60); ns++; }      /* NODATA */
    } else if (!strcmp(name, "alias.test")) {
        rr_q(m, XF_DNS_T_CNAME, 50); rd_cname(m, "real.test"); an++;
        if (qtype == XF_DNS_T_A) { rr_named(m, "real.test", XF_DNS_T_A, 20); rd_a(m, "192.0.2.7"); an++; }
        else { soa(m, "test", 40, 40); ns++; }
    } else if ((!strcmp(name, "long.test") || !strcmp(name, "short.test")) &&
               qtype == XF_DNS_T_AAAA) {
        soa(m, "test", 60, 60); ns++;                   /* NODATA, cacheable */
    } else if (!strcmp(name, "long.test") && qtype == XF_DNS_T_A) {
        rr_q(m, XF_DNS_T_A, f->long_ttl); rd_a(m, "192.0.2.20"); an++;
    } else if (!strcmp(name, "short.test") && qtype == XF_DNS_T_A) {
        rr_q(m, XF_DNS_T_A, 1); rd_a(m, "192.0.2.30"); an++;
    } else {
        rcode = 3;                                      /* no SOA: not cached */
    }
    m->b[2] = (uint8_t)(0x80 | 0x01);                   /* QR, RD */
    m->b[3] = (uint8_t)(0x80 | (ad ? 0x20 : 0) | rcode);/* RA, AD, RCODE */
    m->b[6] = 0; m->b[7] = (uint8_t)an;
    m->b[8] = 0; m->b[9] = (uint8_t)ns;
    m->b[10] = 0; m->b[11] = 0;                         /* our answer has no OPT */
    uv_udp_send_t *req = malloc(sizeof *req + sizeof *m);
    memcpy(req + 1, m, sizeof *m);
    uv_buf_t ob = uv_buf_init((char *)((struct msg *)(req + 1))->b, (unsigned)m->n);
    free(m);
    uv_udp_send(req, u, &ob, 1, from, on_sent);
}

static uv_loop_t g_loop;
static struct fake g_fake;

static xf_dns *setup_dns(const xf_dns_conf *extra)
{
    struct sockaddr_in sa;
    int salen = sizeof sa;
    assert_int_equal(uv_loop_init(&g_loop), 0);
    memset(&g_fake, 0, sizeof g_fake);
    g_fake.saw_ad_in_query = g_fake.saw_opt = 1;
    g_fake.long_ttl = 100000;
    assert_int_equal(uv_udp_init(&g_loop, &g_fake.udp), 0);
    g_fake.udp.data = &g_fake;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_udp_bind(&g_fake.udp, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_udp_getsockname(&g_fake.udp, (struct sockaddr *)&sa, &salen), 0);
    g_fake.port = ntohs(sa.sin_port);
    assert_int_equal(uv_udp_recv_start(&g_fake.udp, on_alloc, on_recv), 0);

    static char server[64];
    static const char *servers[1] = { server };
    snprintf(server, sizeof server, "127.0.0.1:%d", g_fake.port);
    xf_dns_conf c = extra ? *extra : (xf_dns_conf){ 0 };
    c.servers = servers;
    c.n_servers = 1;
    if (!c.timeout_ms) c.timeout_ms = 300;
    if (!c.tries) c.tries = 1;
    char err[256] = "";
    xf_dns *dns = xf_dns_new(&g_loop, &c, err, sizeof err);
    if (!dns) print_error("%s\n", err);
    assert_non_null(dns);
    return dns;
}

static void teardown_dns(xf_dns *dns)
{
    xf_dns_free(dns);
    uv_close((uv_handle_t *)&g_fake.udp, NULL);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&g_loop), 0);
}

/* ---- query helper ------------------------------------------------------------ */

struct got { int calls; uint64_t id; xf_dns_result res; };

static void on_result(void *udata, uint64_t id, const xf_dns_result *res)
{
    struct got *g = udata;
    g->calls++;
    g->id = id;
    xf_dns_result_free(&g->res);
    assert_int_equal(xf_dns_result_copy(&g->res, res), 0);
}

/* A UV_RUN_ONCE pass may run a callback in its timer phase and then block in its
   poll phase: a 10 ms ticker bounds each pass. */
static void on_tick(uv_timer_t *t) { (void)t; }
static void run_until(struct got *g, int calls)
{
    uv_timer_t tick;
    uv_timer_init(&g_loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
    uint64_t start = uv_now(&g_loop);
    while (g->calls < calls) {
        uv_run(&g_loop, UV_RUN_ONCE);
        if (uv_now(&g_loop) - start > 5000) fail_msg("no DNS answer within 5 s");
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&g_loop, UV_RUN_NOWAIT);
}

/* Runs the loop for ms milliseconds. */
static void on_wait(uv_timer_t *t) { *(int *)t->data = 1; }
static void run_for(uint64_t ms)
{
    uv_timer_t t;
    int done = 0;
    uv_timer_init(&g_loop, &t);
    t.data = &done;
    uv_timer_start(&t, on_wait, ms, 0);
    while (!done) uv_run(&g_loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&g_loop, UV_RUN_NOWAIT);
}

static void q_srv(xf_dns *dns, const char *name, struct got *g)
{
    xf_dns_result_free(&g->res);                    /* g starts zeroed */
    memset(g, 0, sizeof *g);
    uint64_t id = xf_dns_query_srv(dns, name, on_result, g);
    assert_true(id != 0);
    assert_int_equal(g->calls, 0);                  /* never from inside the call */
    run_until(g, 1);
    assert_int_equal(g->id, id);
}

static void q_addr(xf_dns *dns, const char *name, struct got *g)
{
    xf_dns_result_free(&g->res);
    memset(g, 0, sizeof *g);
    uint64_t id = xf_dns_query_a_aaaa(dns, name, on_result, g);
    assert_true(id != 0);
    assert_int_equal(g->calls, 0);
    run_until(g, 1);
    assert_int_equal(g->id, id);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_srv_records_and_cache(void **st)
{
    (void)st;
    xf_dns *dns = setup_dns(NULL);
    struct got g = { 0 };
    q_srv(dns, "_xmpp-server._tcp.multi.test", &g);
    assert_int_equal(g.res.status, XF_DNS_NOERROR);
    assert_int_equal(g.res.ad, 1);
    assert_int_equal(g.res.from_cache, 0);
    assert_int_equal(g.res.ttl, 120);               /* the lowest TTL */
    assert_int_equal(g.res.n_srv, 3);
    assert_int_equal(g.res.srv[0].priority, 10);
    assert_int_equal(g.res.srv[0].weight, 60);
    assert_int_equal(g.res.srv[0].port, 5269);
    assert_string_equal(g.res.srv[0].target, "b.multi.test");
    assert_string_equal(g.res.srv[1].target, "a.multi.test");
    assert_int_equal(g.res.srv[1].port, 5270);
    assert_int_equal(hits(&g_fake, "_xmpp-server._tcp.multi.test", XF_DNS_T_SRV), 1);
    assert_int_equal(g_fake.saw_ad_in_query, 1);
    assert_int_equal(g_fake.saw_opt, 1);

    /* The second query is answered from the cache: no packet reaches the server,
       and the answer still comes on a later loop iteration. Case does not matter. */
    int before = g_fake.packets;
    struct got g2 = { 0 };
    q_srv(dns, "_XMPP-server._tcp.Multi.Test.", &g2);
    assert_int_equal(g2.res.status, XF_DNS_NOERROR);
    assert_int_equal(g2.res.from_cache, 1);
    assert_int_equal(g2.res.ad, 1);
    assert_int_equal(g2.res.n_srv, 3);
    assert_true(g2.res.ttl <= 120 && g2.res.ttl >= 119);
    assert_int_equal(g_fake.packets, before);

    /* NXDOMAIN with an SOA: negative TTL min(30, 10) = 10, cached too. */
    q_srv(dns, "_xmpps-server._tcp.multi.test", &g2);
    assert_int_equal(g2.res.status, XF_DNS_NXDOMAIN);
    assert_int_equal(g2.res.ttl, 10);
    q_srv(dns, "_xmpps-server._tcp.multi.test", &g2);
    assert_int_equal(g2.res.status, XF_DNS_NXDOMAIN);
    assert_int_equal(g2.res.from_cache, 1);
    assert_int_equal(hits(&g_fake, "_xmpps-server._tcp.multi.test", XF_DNS_T_SRV), 1);

    /* Both answers feed the ordering directly. */
    xf_srv_answer as, ax;
    xf_srv_target t[4];
    xf_dns_srv_answer(&g2.res, &as);
    xf_dns_srv_answer(&g.res, &ax);
    assert_int_equal(xf_srv_order("multi.test", &as, &ax, NULL, NULL, t, 4), 3);
    assert_string_equal(t[0].host, "a.multi.test");
    assert_int_equal(t[0].tls, XF_SRV_TLS_STARTTLS);

    xf_dns_result_free(&g.res);
    xf_dns_result_free(&g2.res);
    teardown_dns(dns);
}

static void test_servfail_not_cached(void **st)
{
    (void)st;
    xf_dns *dns = setup_dns(NULL);
    struct got g = { 0 };
    q_srv(dns, "fail.test", &g);
    assert_int_equal(g.res.status, XF_DNS_SERVFAIL);
    q_srv(dns, "fail.test", &g);
    assert_int_equal(g.res.status, XF_DNS_SERVFAIL);
    assert_int_equal(g.res.from_cache, 0);
    assert_int_equal(hits(&g_fake, "fail.test", XF_DNS_T_SRV), 2);
    xf_srv_answer a;
    xf_dns_srv_answer(&g.res, &a);
    assert_int_equal(a.status, XF_SRV_ST_FAIL);
    /* No SOA in a NXDOMAIN: not cached either. */
    q_srv(dns, "unknown.test", &g);
    assert_int_equal(g.res.status, XF_DNS_NXDOMAIN);
    q_srv(dns, "unknown.test", &g);
    assert_int_equal(hits(&g_fake, "unknown.test", XF_DNS_T_SRV), 2);
    xf_dns_result_free(&g.res);
    teardown_dns(dns);
}

static void test_ad_bit_and_addresses(void **st)
{
    (void)st;
    xf_dns *dns = setup_dns(NULL);
    struct got g = { 0 };
    char ip[64];
    q_addr(dns, "ad.test", &g);
    assert_int_equal(g.res.status, XF_DNS_NOERROR);
    assert_int_equal(g.res.ad, 1);
    assert_int_equal(g.res.n_addr, 2);
    assert_int_equal(g.res.addr[0].family, AF_INET6);         /* AAAA first */
    inet_ntop(AF_INET6, g.res.addr[0].addr, ip, sizeof ip);
    assert_string_equal(ip, "2001:db8::10");
    assert_int_equal(g.res.addr[1].family, AF_INET);
    inet_ntop(AF_INET, g.res.addr[1].addr, ip, sizeof ip);
    assert_string_equal(ip, "192.0.2.10");
    assert_int_equal(hits(&g_fake, "ad.test", XF_DNS_T_A), 1);
    assert_int_equal(hits(&g_fake, "ad.test", XF_DNS_T_AAAA), 1);

    /* A without AD, AAAA NODATA: the addresses, AD unset. */
    q_addr(dns, "noad.test", &g);
    assert_int_equal(g.res.status, XF_DNS_NOERROR);
    assert_int_equal(g.res.ad, 0);
    assert_int_equal(g.res.n_addr, 1);
    assert_int_equal(g.res.addr[0].family, AF_INET);
    xf_dns_result_free(&g.res);
    teardown_dns(dns);
}

static void test_cname_target(void **st)
{
    (void)st;
    xf_dns *dns = setup_dns(NULL);
    struct got g = { 0 };
    char ip[64];
    q_addr(dns, "alias.test", &g);
    assert_int_equal(g.res.status, XF_DNS_NOERROR);
    assert_int_equal(g.res.n_addr, 1);
    inet_ntop(AF_INET, g.res.addr[0].addr, ip, sizeof ip);
    assert_string_equal(ip, "192.0.2.7");
    assert_string_equal(g.res.cname, "real.test");
    assert_int_equal(g.res.ttl, 20);                /* min over the CNAME and the A */
    xf_dns_result_free(&g.res);
    teardown_dns(dns);
}

static void test_timeout(void **st)
{
    (void)st;
    xf_dns_conf c = { .timeout_ms = 200, .tries = 1 };
    xf_dns *dns = setup_dns(&c);
    struct got g = { 0 };
    uv_update_time(&g_loop);
    uint64_t t0 = uv_now(&g_loop);
    q_addr(dns, "silent.test", &g);
    uint64_t dt = uv_now(&g_loop) - t0;
    assert_int_equal(g.res.status, XF_DNS_TIMEOUT);
    assert_int_equal(g.res.n_addr, 0);
    assert_true(hits(&g_fake, "silent.test", XF_DNS_T_A) >= 1);
    print_message("timeout after %llu ms\n", (unsigned long long)dt);
    assert_true(dt >= 150 && dt < 3000);
    xf_srv_answer a;
    xf_dns_srv_answer(&g.res, &a);
    assert_int_equal(a.status, XF_SRV_ST_FAIL);
    xf_dns_result_free(&g.res);
    teardown_dns(dns);
}

static void test_cancel(void **st)
{
    (void)st;
    xf_dns *dns = setup_dns(NULL);
    struct got g = { 0 }, g2 = { 0 };
    /* Cancelled while the packet is on the wire: the answer arrives, is dropped. */
    uint64_t id = xf_dns_query_srv(dns, "_xmpp-server._tcp.cancel.test", on_result, &g);
    assert_true(id != 0);
    assert_int_equal(xf_dns_pending(dns), 1);
    assert_int_equal(xf_dns_cancel(dns, id), 1);
    assert_int_equal(xf_dns_cancel(dns, id), 0);
    assert_int_equal(xf_dns_pending(dns), 0);
    run_for(200);
    assert_int_equal(hits(&g_fake, "_xmpp-server._tcp.cancel.test", XF_DNS_T_SRV), 1);
    assert_int_equal(g.calls, 0);

    /* The answer was cached all the same; a cache hit cancelled before delivery. */
    int before = g_fake.packets;
    id = xf_dns_query_srv(dns, "_xmpp-server._tcp.cancel.test", on_result, &g);
    uint64_t id2 = xf_dns_query_srv(dns, "_xmpp-server._tcp.cancel.test", on_result, &g2);
    assert_true(id2 != id);
    assert_int_equal(xf_dns_cancel(dns, id), 1);
    run_until(&g2, 1);
    run_for(20);
    assert_int_equal(g.calls, 0);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g2.res.from_cache, 1);
    assert_int_equal(g_fake.packets, before);
    assert_int_equal(xf_dns_cancel(dns, id2), 0);   /* already delivered */
    assert_int_equal(xf_dns_cancel(dns, 0), 0);
    assert_int_equal(xf_dns_cancel(dns, 999999), 0);

    /* Pending at free: no callback either, and everything closes. */
    g.calls = 0;
    assert_true(xf_dns_query_a_aaaa(dns, "silent.test", on_result, &g) != 0);
    run_for(20);
    xf_dns_result_free(&g2.res);
    teardown_dns(dns);
    assert_int_equal(g.calls, 0);
}

static void test_cache_bounds(void **st)
{
    (void)st;
    xf_dns_conf c = { .ttl_max_s = 300 };
    xf_dns *dns = setup_dns(&c);
    struct got g = { 0 };
    /* TTL 100000 is kept for 300 s at most. */
    q_addr(dns, "long.test", &g);
    assert_int_equal(g.res.ttl, 100000);            /* as received */
    q_addr(dns, "long.test", &g);
    assert_int_equal(g.res.from_cache, 1);
    assert_true(g.res.ttl <= 300 && g.res.ttl >= 299);
    /* TTL 1: expired after a second. */
    q_addr(dns, "short.test", &g);
    run_for(1100);
    q_addr(dns, "short.test", &g);
    assert_int_equal(g.res.from_cache, 0);
    assert_int_equal(hits(&g_fake, "short.test", XF_DNS_T_A), 2);
    xf_dns_result_free(&g.res);
    teardown_dns(dns);

    /* no_cache: every query goes out. */
    xf_dns_conf nc = { .no_cache = 1 };
    dns = setup_dns(&nc);
    q_srv(dns, "_xmpp-server._tcp.nocache.test", &g);
    q_srv(dns, "_xmpp-server._tcp.nocache.test", &g);
    assert_int_equal(g.res.from_cache, 0);
    assert_int_equal(hits(&g_fake, "_xmpp-server._tcp.nocache.test", XF_DNS_T_SRV), 2);
    xf_dns_result_free(&g.res);
    teardown_dns(dns);
}

static void test_dot_and_bad_names(void **st)
{
    (void)st;
    xf_dns *dns = setup_dns(NULL);
    struct got g = { 0 };
    q_srv(dns, "_xmpp-server._tcp.dot.test", &g);
    assert_int_equal(g.res.status, XF_DNS_NOERROR);
    assert_int_equal(g.res.n_srv, 1);
    assert_string_equal(g.res.srv[0].target, ".");
    xf_srv_answer as = { XF_SRV_ST_NONE, NULL, 0 }, ax;
    xf_srv_target t[2];
    xf_dns_srv_answer(&g.res, &ax);
    assert_int_equal(xf_srv_order("dot.test", &as, &ax, NULL, NULL, t, 2), XF_SRV_NO_SERVICE);
    /* Refused names never call back. */
    assert_int_equal(xf_dns_query_srv(dns, "bad name.test", on_result, &g), 0);
    assert_int_equal(xf_dns_query_srv(dns, "a..test", on_result, &g), 0);
    assert_int_equal(xf_dns_query_a_aaaa(dns, "", on_result, &g), 0);
    assert_int_equal(xf_dns_pending(dns), 0);
    xf_dns_result_free(&g.res);
    teardown_dns(dns);
}

static void q_tlsa(xf_dns *dns, unsigned port, const char *host, struct got *g)
{
    xf_dns_result_free(&g->res);
    memset(g, 0, sizeof *g);
    uint64_t id = xf_dns_query_tlsa(dns, port, host, on_result, g);
    assert_true(id != 0);
    assert_int_equal(g->calls, 0);
    run_until(g, 1);
    assert_int_equal(g->id, id);
}

/* TLSA at _PORT._tcp.HOST: records with AD, cached; SERVFAIL distinct and not cached;
   a secure NODATA; bad arguments refused. The fake server is on 127.0.0.1: trusted. */
static void test_tlsa(void **st)
{
    (void)st;
    xf_dns *dns = setup_dns(NULL);
    struct got g = { 0 };
    size_t len;
    assert_int_equal(xf_dns_ad_trusted(dns), 1);
    q_tlsa(dns, 5269, "XMPP.dane.test.", &g);
    assert_int_equal(g.res.status, XF_DNS_NOERROR);
    assert_int_equal(g.res.qtype, XF_DNS_T_TLSA);
    assert_int_equal(g.res.ad, 1);
    assert_int_equal(g.res.n_tlsa, 1);
    const unsigned char *rd = xf_dns_tlsa_rdata(&g.res, 0, &len);
    assert_int_equal(len, 35);
    assert_int_equal(rd[0], 3);
    assert_int_equal(rd[34], 31);
    q_tlsa(dns, 5269, "xmpp.dane.test", &g);
    assert_int_equal(g.res.from_cache, 1);
    assert_int_equal(g.res.n_tlsa, 1);
    assert_int_equal(xf_dns_tlsa_rdata(&g.res, 0, &len)[34], 31);
    assert_int_equal(hits(&g_fake, "_5269._tcp.xmpp.dane.test", XF_DNS_T_TLSA), 1);

    q_tlsa(dns, 5269, "bogus.dane.test", &g);
    assert_int_equal(g.res.status, XF_DNS_SERVFAIL);
    q_tlsa(dns, 5269, "bogus.dane.test", &g);
    assert_int_equal(g.res.status, XF_DNS_SERVFAIL);
    assert_int_equal(hits(&g_fake, "_5269._tcp.bogus.dane.test", XF_DNS_T_TLSA), 2);

    q_tlsa(dns, 5270, "xmpp.dane.test", &g);
    assert_int_equal(g.res.status, XF_DNS_NODATA);
    assert_int_equal(g.res.ad, 1);
    assert_int_equal(g.res.n_tlsa, 0);

    assert_int_equal(xf_dns_query_tlsa(dns, 0, "xmpp.dane.test", on_result, &g), 0);
    assert_int_equal(xf_dns_query_tlsa(dns, 70000, "xmpp.dane.test", on_result, &g), 0);
    assert_int_equal(xf_dns_query_tlsa(dns, 5269, "bad host", on_result, &g), 0);
    assert_int_equal(xf_dns_query_tlsa(dns, 5269, NULL, on_result, &g), 0);
    assert_int_equal(xf_dns_pending(dns), 0);
    xf_dns_result_free(&g.res);
    teardown_dns(dns);
}

/* The AD trust rule (dns.h): loopback resolvers only. */
static void test_ad_trust_rule(void **st)
{
    (void)st;
    size_t bad;
    static const char *const lo[] = { "127.0.0.1:53", "127.0.1.54", "[::1]:5353", "::1",
                                      "[::1]" };
    assert_int_equal(xf_dns_servers_loopback(lo, 5, &bad), 1);
    assert_int_equal(bad, 5);
    static const char *const mixed[] = { "127.0.0.53:53", "192.0.2.53:53" };
    assert_int_equal(xf_dns_servers_loopback(mixed, 2, &bad), 0);
    assert_int_equal(bad, 1);
    static const char *const v6[] = { "[2001:db8::53]:53" };
    assert_int_equal(xf_dns_servers_loopback(v6, 1, &bad), 0);
    assert_int_equal(bad, 0);
    static const char *const odd[] = { "128.0.0.1", "[::2]:53", "::ffff:127.0.0.1",
                                       "localhost", "" };
    for (size_t i = 0; i < 5; i++) assert_int_equal(xf_dns_servers_loopback(odd + i, 1, NULL), 0);
    assert_int_equal(xf_dns_servers_loopback(NULL, 0, NULL), 0);

    char path[] = "/tmp/xf-test-resolv-XXXXXX", why[80];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("# lab\nsearch example\nnameserver 127.0.1.54\n  nameserver\t::1 # local\n"
          "options timeout:1\n", f);
    fclose(f);
    assert_int_equal(xf_dns_resolvconf_loopback(path, why, sizeof why), 1);
    f = fopen(path, "a");
    fputs("nameserver 10.0.0.1\nnameserver 127.0.0.2\n", f);
    fclose(f);
    assert_int_equal(xf_dns_resolvconf_loopback(path, why, sizeof why), 0);
    assert_string_equal(why, "10.0.0.1");
    f = fopen(path, "w");
    fputs("search example\n", f);
    fclose(f);
    assert_int_equal(xf_dns_resolvconf_loopback(path, why, sizeof why), 0);  /* none */
    unlink(path);
    assert_int_equal(xf_dns_resolvconf_loopback(path, why, sizeof why), 0);  /* unreadable */

    /* A channel with a resolver elsewhere does not trust AD. */
    uv_loop_t loop;
    char err[256];
    assert_int_equal(uv_loop_init(&loop), 0);
    xf_dns_conf c = { .servers = mixed, .n_servers = 2 };
    xf_dns *dns = xf_dns_new(&loop, &c, err, sizeof err);
    assert_non_null(dns);
    assert_int_equal(xf_dns_ad_trusted(dns), 0);
    xf_dns_free(dns);
    c.servers = lo;
    c.n_servers = 3;
    dns = xf_dns_new(&loop, &c, err, sizeof err);
    assert_non_null(dns);
    assert_int_equal(xf_dns_ad_trusted(dns), 1);
    xf_dns_free(dns);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(xf_dns_ad_trusted(NULL), 0);
}

/* The resolver strings config.c produces are accepted by c-ares; junk is refused. */
static void test_new_servers(void **st)
{
    (void)st;
    uv_loop_t loop;
    char err[256] = "";
    assert_int_equal(uv_loop_init(&loop), 0);
    static const char *const ok[] = { "127.0.0.1:53", "[::1]:5353", "[2001:db8::53]:53" };
    xf_dns_conf c = { .servers = ok, .n_servers = 3 };
    xf_dns *dns = xf_dns_new(&loop, &c, err, sizeof err);
    if (!dns) print_error("%s\n", err);
    assert_non_null(dns);
    xf_dns_free(dns);
    static const char *const bad[] = { "not an address" };
    xf_dns_conf b = { .servers = bad, .n_servers = 1 };
    assert_null(xf_dns_new(&loop, &b, err, sizeof err));
    static const char pre[] = "c-ares: resolvers \"not an address\": ";
    assert_int_equal(strncmp(err, pre, sizeof pre - 1), 0);
    /* Defaults: /etc/resolv.conf (whatever it holds, the channel is created). */
    dns = xf_dns_new(&loop, NULL, err, sizeof err);
    assert_non_null(dns);
    xf_dns_free(dns);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_records_and_cache),
        cmocka_unit_test(test_servfail_not_cached),
        cmocka_unit_test(test_ad_bit_and_addresses),
        cmocka_unit_test(test_cname_target),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_cache_bounds),
        cmocka_unit_test(test_dot_and_bad_names),
        cmocka_unit_test(test_new_servers),
        cmocka_unit_test(test_tlsa),
        cmocka_unit_test(test_ad_trust_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
