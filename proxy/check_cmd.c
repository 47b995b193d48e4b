/*
 * check_cmd: `xmppfront check DOMAIN`, the verification procedure a careful peer runs,
 * as one report (contract in proxy/check_cmd.h, docs/check.md). Phases, each bounded
 * by its own step timeout and by the overall --timeout:
 *   1. DNS: SRV of _xmpp-client, _xmpps-client, _xmpp-server, _xmpps-server (RFC 6120
 *      §3.2.1, XEP-0368) and A/AAAA of the domain; "." = not offered (RFC 2782); the
 *      A/AAAA fallback when neither SRV set exists (RFC 6120 §3.2.2, proxy/srvorder.h);
 *      DNSSEC status from the AD bit, trusted only from loopback resolvers (proxy/dns.h).
 *   2. DNS: A/AAAA of every target; then TLSA at _PORT._tcp.TARGET where DANE applies
 *      (RFC 7673 §3) and at every owner `xmppfront records` names (with --config).
 *   3. POSH: https://DOMAIN/.well-known/posh/xmpp-{client,server}.json (RFC 7711).
 *   4. Every target address: TCP, STARTTLS or direct TLS with SNI and ALPN, the chain,
 *      the PKIX / DANE / POSH verdicts (RFC 7712) and the endpoint's aggregate.
 *   5. With --config: the records `xmppfront records DOMAIN` prints (current and next
 *      key) are in DNS (read back from xf_records_print, proxy/check_records.c).
 */
#include "proxy/check_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <psa/crypto.h>

#include "certs/pkix.h"
#include "proxy/check_int.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/remote_dane.h"

#define MAX_ENDPOINTS 32
#define MAX_ADDRS 8                    /* per target: a careful peer tries each */
#define STEP_DNS_MS 6000
#define STEP_CONNECT_MS 5000
#define STEP_TLS_MS 8000
#define STEP_POSH_MS 8000

static const struct service {
    const char *prefix;                /* "_xmpp-client._tcp" */
    const char *name;                  /* "xmpp-client": subjects, POSH */
    int server, direct;
    unsigned fallback_port;            /* RFC 6120 §3.2.2 (0: no fallback) */
} services[4] = {
    { "_xmpp-client._tcp", "xmpp-client", 0, 0, 5222 },
    { "_xmpps-client._tcp", "xmpps-client", 0, 1, 0 },
    { "_xmpp-server._tcp", "xmpp-server", 1, 0, 5269 },
    { "_xmpps-server._tcp", "xmpps-server", 1, 1, 0 },
};

typedef struct endpoint {
    int svc;                           /* index into services */
    char host[XF_DNS_NAME_MAX];
    unsigned port;
    int fallback, srv_secure;
    size_t addr_q;                     /* ADDR query of host */
    long tlsa_q;                       /* TLSA query, -1 if not asked */
} endpoint;

typedef struct ctx {
    const char *domain;
    uint64_t deadline;
    xf_check_report rep;
    xf_cdns *dns;
    int trusted;
    xf_cdns_query *q;
    size_t nq, capq;
    size_t srv_q[4], domain_addr_q;
    endpoint ep[MAX_ENDPOINTS];
    size_t nep;
    mbedtls_x509_crt ca;
    int n_ca;
    const char *ca_file;
    xf_ctls *tls;
    xf_check_posh posh[2];             /* [0] xmpp-client, [1] xmpp-server */
    int posh_done[2];
    xf_config *cfg;
    xf_check_rec *recs;                /* what `xmppfront records` says (--config) */
    size_t nrec;
    size_t *rec_q;                     /* TLSA query of recs[i] ((size_t)-1: none) */
} ctx;


static uint64_t step(const ctx *c, unsigned ms)
{
    uint64_t d = xf_check_now_ms() + ms;
    return d < c->deadline ? d : c->deadline;
}

/* Index of a query (kind, name, port), added when new; (size_t)-1 when out of memory. */
static size_t query(ctx *c, int kind, const char *name, unsigned port)
{
    for (size_t i = 0; i < c->nq; i++)
        if (c->q[i].kind == kind && c->q[i].port == port && strcasecmp(c->q[i].name, name) == 0)
            return i;
    if (c->nq == c->capq) {
        size_t cap = c->capq ? c->capq * 2 : 32;
        xf_cdns_query *n = realloc(c->q, cap * sizeof(*n));
        if (n == NULL)
            return (size_t)-1;
        c->q = n;
        c->capq = cap;
    }
    xf_cdns_query *q = &c->q[c->nq];
    memset(q, 0, sizeof(*q));
    q->kind = kind;
    q->port = port;
    snprintf(q->name, sizeof(q->name), "%s", name);
    return c->nq++;
}

static void run_dns(ctx *c)
{
    xf_cdns_run(c->dns, c->q, c->nq, step(c, STEP_DNS_MS));
}

static const char *sec_text(const ctx *c, const xf_dns_result *r)
{
    if (!c->trusted)
        return "DNSSEC unknown (resolver not trusted)";
    return r->ad ? "secure (AD)" : "insecure (no AD)";
}

/* ---- phase 1: SRV ---- */

static void add_endpoint(ctx *c, int svc, const char *host, unsigned port, int fallback,
                         int secure)
{
    char h[XF_DNS_NAME_MAX];
    snprintf(h, sizeof(h), "%s", host);
    size_t l = strlen(h);
    if (l > 1 && h[l - 1] == '.')
        h[l - 1] = '\0';
    for (size_t i = 0; i < c->nep; i++)
        if (c->ep[i].svc == svc && c->ep[i].port == port && strcasecmp(c->ep[i].host, h) == 0)
            return;
    if (c->nep == MAX_ENDPOINTS) {
        xf_check_add(&c->rep, XF_CHECK_WARN, "srv", services[svc].prefix,
                     "fewer targets make the domain quicker to reach",
                     "more than %d targets: %s:%u and later ones not checked",
                     MAX_ENDPOINTS, h, port);
        return;
    }
    endpoint *e = &c->ep[c->nep++];
    memset(e, 0, sizeof(*e));
    e->svc = svc;
    snprintf(e->host, sizeof(e->host), "%s", h);
    e->port = port;
    e->fallback = fallback;
    e->srv_secure = secure;
    e->tlsa_q = -1;
}

static int srv_none(const xf_dns_result *r)
{
    return r->status == XF_DNS_NXDOMAIN || r->status == XF_DNS_NODATA;
}

static int srv_dot(const xf_dns_result *r)
{
    return r->status == XF_DNS_NOERROR && r->n_srv == 1 &&
           (strcmp(r->srv[0].target, ".") == 0 || r->srv[0].target[0] == '\0');
}

static void check_srv(ctx *c, int s)
{
    const struct service *sv = &services[s];
    const xf_dns_result *r = &c->q[c->srv_q[s]].res;
    const xf_dns_result *other = &c->q[c->srv_q[s ^ 1]].res;  /* the pair's other set */
    char subj[300], list[500] = "";
    snprintf(subj, sizeof(subj), "%s.%s", sv->prefix, c->domain);
    int secure = c->trusted && r->ad;
    if (r->status == XF_DNS_NOERROR && srv_dot(r)) {
        xf_check_add(&c->rep, XF_CHECK_OK, "srv", subj, NULL,
                     "\".\": service decidedly not offered (RFC 2782), %s", sec_text(c, r));
        return;
    }
    if (r->status == XF_DNS_NOERROR) {
        size_t l = 0;
        for (size_t i = 0; i < r->n_srv && l + 1 < sizeof(list); i++) {
            const xf_srv_rec *rec = &r->srv[i];
            int n = snprintf(list + l, sizeof(list) - l, "%s%u %u %u %s", i ? ", " : "",
                             rec->priority, rec->weight, rec->port, rec->target);
            l += n > 0 ? (size_t)n : 0;
            if (rec->port == 0 || strcmp(rec->target, ".") == 0 || rec->target[0] == '\0')
                continue;              /* a "." among others: ignored (srvorder.h) */
            add_endpoint(c, s, rec->target, rec->port, 0, secure);
        }
        xf_check_add(&c->rep, XF_CHECK_OK, "srv", subj, NULL, "%zu record%s, %s%s%s: %s",
                     r->n_srv, r->n_srv == 1 ? "" : "s", sec_text(c, r),
                     r->cname[0] ? ", via CNAME to " : "", r->cname, list);
        return;
    }
    if (srv_none(r)) {
        if (sv->direct) {
            xf_check_add(&c->rep, XF_CHECK_OK, "srv", subj, NULL,
                         "none (%s): no direct TLS offered (optional, XEP-0368)",
                         xf_dns_status_name(r->status));
            return;
        }
        if (srv_none(other)) {
            xf_check_add(&c->rep, XF_CHECK_WARN, "srv", subj,
                         "publish the SRV record (`xmppfront records` prints it), or "
                         "`0 0 0 .` when the service is not offered",
                         "none (%s): peers fall back to %s:%u (A/AAAA, RFC 6120 §3.2.2)",
                         xf_dns_status_name(r->status), c->domain, sv->fallback_port);
            add_endpoint(c, s, c->domain, sv->fallback_port, 1, c->trusted &&
                         c->q[c->domain_addr_q].res.ad);
        } else if (srv_dot(other)) {
            xf_check_add(&c->rep, XF_CHECK_OK, "srv", subj, NULL,
                         "none (%s), and %s says \".\": service not offered, no A/AAAA "
                         "fallback (XEP-0368)", xf_dns_status_name(r->status),
                         services[s ^ 1].prefix);
        } else {
            xf_check_add(&c->rep, XF_CHECK_OK, "srv", subj, NULL,
                         "none (%s): the %s set is used (XEP-0368)",
                         xf_dns_status_name(r->status), services[s ^ 1].prefix);
        }
        return;
    }
    xf_check_add(&c->rep, XF_CHECK_FAIL, "srv", subj,
                 r->status == XF_DNS_SERVFAIL
                     ? "a validating resolver answers SERVFAIL for bogus DNSSEC: check the "
                       "zone's signatures and its DS in the parent"
                     : "check that the zone's name servers answer",
                 "%s: peers abort the service (no fallback, RFC 7673 §3.1)",
                 r->status == XF_DNS_SERVFAIL ? "SERVFAIL (bogus DNSSEC or a broken server)"
                                              : xf_dns_status_name(r->status));
}

/* ---- phase 2: addresses and TLSA ---- */

static void check_addr(ctx *c, size_t qi, const endpoint *e)
{
    const xf_dns_result *r = &c->q[qi].res;
    char list[400] = "", a[64];
    size_t l = 0;
    for (size_t i = 0; i < r->n_addr && l + 1 < sizeof(list); i++) {
        int n = snprintf(list + l, sizeof(list) - l, "%s%s", i ? " " : "",
                         xf_check_addr_text(&r->addr[i], a, sizeof(a)));
        l += n > 0 ? (size_t)n : 0;
    }
    const char *note = e->fallback ? " (A/AAAA fallback: no SRV)" : "";
    if (r->status == XF_DNS_NOERROR)
        xf_check_add(&c->rep, XF_CHECK_OK, "addr", c->q[qi].name, NULL, "%s, %s%s", list,
                     sec_text(c, r), note);
    else if (srv_none(r))
        xf_check_add(&c->rep, XF_CHECK_FAIL, "addr", c->q[qi].name,
                     "give the target A/AAAA records (an SRV target must not be a CNAME)",
                     "no address (%s)%s", xf_dns_status_name(r->status), note);
    else
        xf_check_add(&c->rep, XF_CHECK_FAIL, "addr", c->q[qi].name,
                     r->status == XF_DNS_SERVFAIL ? "bogus DNSSEC? check the zone's signatures"
                                                  : "check the zone's name servers",
                     "%s: peers skip this target%s",
                     r->status == XF_DNS_SERVFAIL ? "SERVFAIL (bogus DNSSEC or a broken server)"
                                                  : xf_dns_status_name(r->status), note);
}

static void addresses_and_tlsa(ctx *c)
{
    for (size_t i = 0; i < c->nep; i++)
        c->ep[i].addr_q = c->ep[i].fallback ? c->domain_addr_q
                                            : query(c, XF_CQ_ADDR, c->ep[i].host, 0);
    run_dns(c);
    for (size_t i = 0; i < c->nep; i++) {
        size_t j;
        for (j = 0; j < i && c->ep[j].addr_q != c->ep[i].addr_q; j++)
            ;
        if (j == i)
            check_addr(c, c->ep[i].addr_q, &c->ep[i]);
    }
    for (size_t i = 0; i < c->nep; i++) {
        endpoint *e = &c->ep[i];
        const xf_dns_result *a = &c->q[e->addr_q].res;
        if (a->status == XF_DNS_NOERROR &&
            xf_rdane_applies(c->trusted, e->srv_secure, e->fallback, a->ad, NULL, 0))
            e->tlsa_q = (long)query(c, XF_CQ_TLSA, e->host, e->port);
    }
}

/* ---- phase 3: POSH ---- */

static int posh_resolve(void *udata, const char *host, char *out, size_t outlen)
{
    ctx *c = udata;
    size_t qi = strcasecmp(host, c->domain) == 0 ? c->domain_addr_q
                                                 : query(c, XF_CQ_ADDR, host, 0);
    if (qi == (size_t)-1)
        return -1;
    run_dns(c);
    const xf_dns_result *r = &c->q[qi].res;
    if (r->status != XF_DNS_NOERROR || r->n_addr == 0)
        return -1;
    int n = snprintf(out, outlen, "%s:443:", host);
    for (size_t i = 0; i < r->n_addr && n > 0 && (size_t)n + 50 < outlen; i++) {
        char a[64];
        xf_check_addr_text(&r->addr[i], a, sizeof(a));
        n += snprintf(out + n, outlen - (size_t)n, r->addr[i].family == AF_INET6 ? "%s[%s]"
                      : "%s%s", i ? "," : "", a);
    }
    return 0;
}

static void fetch_posh(ctx *c, int server)
{
    static const char *const kinds[2] = { "xmpp-client", "xmpp-server" };
    xf_check_posh *p = &c->posh[server];
    xf_cposh_fetch(c->domain, kinds[server], c->ca_file, posh_resolve, c,
                   step(c, STEP_POSH_MS), p);
    c->posh_done[server] = 1;
    if (p->result == XF_PROOF_VALID)
        xf_check_add(&c->rep, XF_CHECK_OK, "posh-doc", p->url, NULL,
                     "fingerprints document%s%s: %zu fingerprint%s, expires %lld s",
                     p->via[0] ? " via url " : "", p->via, p->doc->nfp,
                     p->doc->nfp == 1 ? "" : "s", p->doc->expires);
    else if (p->result == XF_PROOF_ABSENT)
        xf_check_add(&c->rep, XF_CHECK_OK, "posh-doc", p->url, NULL,
                     "none: %s (POSH not used)", p->why);
    else
        xf_check_add(&c->rep, XF_CHECK_WARN, "posh-doc", p->url,
                     "serve a fingerprints document or a `url` reference as JSON over "
                     "HTTPS (`xmppfront records` prints it), or remove it",
                     "unusable: %s", p->why);
}

/* ---- phase 4: endpoints ---- */

static void judge(ctx *c, const endpoint *e, const char *subj, mbedtls_x509_crt *chain)
{
    const struct service *sv = &services[e->svc];
    const xf_dns_result *a = &c->q[e->addr_q].res;
    enum xf_service svc = sv->server ? XF_SERVICE_SERVER : XF_SERVICE_CLIENT;
    const char *srv_target = xf_rdane_srv_target(c->trusted, e->srv_secure, e->fallback,
                                                 e->host, c->domain);
    xf_proof p[XF_PROOF_COUNT];
    memset(p, 0, sizeof(p));
    char owner[300], detail[XF_CHECK_DETAIL_MAX];
    snprintf(owner, sizeof(owner), "_%u._tcp.%s", e->port, e->host);

    struct xf_pkix_verdict *v = calloc(1, sizeof(*v));
    if (v == NULL || c->n_ca <= 0) {
        p[XF_PROOF_PKIX].result = XF_PROOF_INVALID;
        snprintf(p[XF_PROOF_PKIX].reason, sizeof(p[XF_PROOF_PKIX].reason), "%s",
                 v ? "no CA certificate loaded (--ca)" : "out of memory");
    } else {
        int ok = xf_pkix_check(chain, &c->ca, XF_PKIX_ROLE_SERVER, c->domain, svc,
                               srv_target, v) == 1;
        p[XF_PROOF_PKIX].result = ok ? XF_PROOF_VALID : XF_PROOF_INVALID;
        snprintf(p[XF_PROOF_PKIX].reason, sizeof(p[XF_PROOF_PKIX].reason), "%.190s", v->reason);
    }
    free(v);
    xf_check_dane(c->trusted, e->srv_secure, e->fallback, a->ad,
                  e->tlsa_q >= 0 ? &c->q[e->tlsa_q].res : NULL, owner, chain,
                  c->n_ca > 0 ? &c->ca : NULL, c->domain, svc, srv_target, &p[XF_PROOF_DANE]);
    xf_check_posh_verdict(&c->posh[sv->server], chain, &p[XF_PROOF_POSH]);

    static const struct { int type; const char *name; const char *hint; } pt[3] = {
        { XF_PROOF_PKIX, "pkix", "a certificate from a CA peers trust, naming the domain "
          "(DNS-ID, SRV-ID or XmppAddr); with a DNSSEC-signed SRV the target name works too" },
        { XF_PROOF_DANE, "dane", "publish TLSA 3 1 1 of the key served here (`xmppfront "
          "records` / `xmppfront proof tlsa`), or fix the zone's DNSSEC" },
        { XF_PROOF_POSH, "posh", "serve the fingerprints of the certificate served here "
          "(`xmppfront records` prints the document)" },
    };
    static const char *const res_names[] = { "not tried", "valid", "invalid", "absent",
                                             "error" };
    for (int i = 0; i < 3; i++) {
        const xf_proof *pr = &p[pt[i].type];
        xf_check_add(&c->rep, xf_check_proof_level(pt[i].type, p), pt[i].name, subj,
                     pt[i].hint, "%s: %s", res_names[pr->result], pr->reason);
    }
    int level = xf_check_proof_summary(p, detail, sizeof(detail));
    xf_check_add(&c->rep, level, "proof", subj, "see the dane/pkix/posh lines above",
                 "%s (reference identity %s%s%s)", detail, c->domain,
                 srv_target ? " and SRV target " : "", srv_target ? srv_target : "");
}

static void probe(ctx *c, const endpoint *e)
{
    const struct service *sv = &services[e->svc];
    char subj[XF_CHECK_SUBJECT_MAX], addr[64];
    const xf_dns_result *a = &c->q[e->addr_q].res;
    size_t n = a->status == XF_DNS_NOERROR ? a->n_addr : 0;
    for (size_t i = 0; i < n && i < MAX_ADDRS; i++) {
        a = &c->q[e->addr_q].res;      /* c->q may have moved (queries added meanwhile) */
        xf_check_addr_text(&a->addr[i], addr, sizeof(addr));
        snprintf(subj, sizeof(subj), "%.40s %.200s:%u %.63s", sv->name, e->host, e->port, addr);
        if (xf_check_now_ms() >= c->deadline) {
            xf_check_add(&c->rep, XF_CHECK_FAIL, "tcp", subj, "raise --timeout",
                         "not checked: the overall time limit was reached");
            continue;
        }
        xf_ctls_probe pr;
        xf_ctls_run(c->tls, &a->addr[i], e->port, sv->direct, sv->server, c->domain,
                    step(c, STEP_CONNECT_MS), step(c, STEP_TLS_MS), &pr);
        if (!pr.tcp_ok) {
            xf_check_add(&c->rep, XF_CHECK_FAIL, "tcp", subj,
                         "is the server listening on this address and port? a firewall?",
                         "%s", pr.tcp_err);
            xf_ctls_probe_free(&pr);
            continue;
        }
        xf_check_add(&c->rep, XF_CHECK_OK, "tcp", subj, NULL, "connected in %u ms", pr.tcp_ms);
        if (!pr.tls_ok) {
            xf_check_add(&c->rep, XF_CHECK_FAIL, "tls", subj,
                         sv->direct ? "the port must speak TLS at once (XEP-0368)"
                                    : "the server must offer and complete STARTTLS",
                         "%s: %s", sv->direct ? "direct TLS" : "STARTTLS", pr.tls_err);
            xf_ctls_probe_free(&pr);
            continue;
        }
        xf_check_add(&c->rep, XF_CHECK_OK, "tls", subj, NULL, "%s, SNI %s: %s",
                     sv->direct ? "direct TLS" : "STARTTLS", c->domain, pr.tls_info);
        xf_check_add(&c->rep, pr.stream_ok ? XF_CHECK_OK : XF_CHECK_WARN, "stream", subj,
                     "the server must answer a stream to the domain over TLS",
                     "%s", pr.stream_info);
        size_t nc = 0;
        for (const mbedtls_x509_crt *p = &pr.chain; p && p->raw.p; p = p->next)
            nc++;
        if (nc == 0) {
            xf_check_add(&c->rep, XF_CHECK_FAIL, "cert", subj, "configure a certificate",
                         "no certificate presented");
        } else {
            xf_check_cert(&c->rep, subj, &pr.chain, nc, time(NULL));
            judge(c, e, subj, &pr.chain);
        }
        xf_ctls_probe_free(&pr);
    }
}

/* ---- phase 5: the published records (--config) ---- */

/* Reads what `records` prints and queues the TLSA questions for it. */
static void records_expect(ctx *c)
{
    char err[400];
    if (xf_check_expected(c->cfg, c->domain, &c->recs, &c->nrec, err, sizeof(err)) != 0) {
        xf_check_add(&c->rep, XF_CHECK_OK, "record", c->domain, NULL,
                     "not compared with the configuration: %s", err);
        return;
    }
    c->rec_q = calloc(c->nrec ? c->nrec : 1, sizeof(*c->rec_q));
    for (size_t i = 0; c->rec_q && i < c->nrec; i++)
        c->rec_q[i] = strcmp(c->recs[i].type, "TLSA") == 0 && c->recs[i].host[0]
                          ? query(c, XF_CQ_TLSA, c->recs[i].host, c->recs[i].port)
                          : (size_t)-1;
}

/* ---- the command ---- */

static void usage(FILE *f)
{
    fputs("usage: xmppfront check DOMAIN [--config FILE] [--json] [--timeout S]\n"
          "                       [--resolver IP:PORT ...] [--ca FILE]\n"
          "  audits DOMAIN as a careful peer would: SRV (with DNSSEC), addresses, TCP,\n"
          "  STARTTLS and direct TLS, the certificate, PKIX / DANE / POSH, and with\n"
          "  --config the records `xmppfront records DOMAIN` prints (docs/check.md).\n"
          "  exit code: 0 all ok, 1 warnings, 2 failures or bad input\n", f);
}

static int bad(const char *msg, const char *arg)
{
    fprintf(stderr, "xmppfront check: %s%s\n", msg, arg ? arg : "");
    return 2;
}

int xf_check_main(int argc, char **argv)
{
    const char *ca_arg = NULL, *why, *arg;
    char err[1024];
    int json = 0;
    xf_cli_common o;
    xf_cli_common_init(&o, NULL, 20);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = xf_cli_common_arg(&o, argc, argv, &i, &why, &arg);
        if (r < 0)
            return bad(why, arg);
        if (r > 0)
            continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--ca") == 0) {
            if (i + 1 >= argc)
                return bad("--ca needs a file", NULL);
            ca_arg = argv[++i];
        } else {
            usage(stderr);
            return bad("unknown option ", a);
        }
    }
    if (xf_cli_common_done(&o, &why) < 0) {
        if (why == NULL) {
            usage(stderr);
            return 2;
        }
        fprintf(stderr, "xmppfront check: '%.100s' %s\n", o.domain, why);
        return 2;
    }
    xf_log_set_level(XF_LOG_ERROR);    /* findings go into the report, not the log */
    if (psa_crypto_init() != PSA_SUCCESS)
        return bad("cannot initialise the crypto library", NULL);

    ctx *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return bad("out of memory", NULL);
    int rc = 2;
    c->domain = o.name;
    c->deadline = xf_check_now_ms() + (uint64_t)(o.timeout_s * 1000);
    xf_check_report_init(&c->rep, o.name);
    mbedtls_x509_crt_init(&c->ca);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (o.config && xf_config_load(o.config, &c->cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront check: configuration error: %s\n", err);
        goto out;
    }
    if (o.n_res == 0 && c->cfg && c->cfg->federation.n_resolvers) {
        for (size_t i = 0; i < c->cfg->federation.n_resolvers && i < XF_CLI_MAX_RESOLVERS; i++)
            o.resolvers[o.n_res++] = c->cfg->federation.resolvers[i];
    }
    c->ca_file = ca_arg ? ca_arg : c->cfg ? c->cfg->federation.ca_file : NULL;
    c->n_ca = xf_pkix_load_ca(&c->ca, c->ca_file);
    if (c->n_ca <= 0 && ca_arg) {
        fprintf(stderr, "xmppfront check: --ca %s: no CA certificate loaded\n", ca_arg);
        goto out;
    }
    if (c->n_ca <= 0)
        xf_check_add(&c->rep, XF_CHECK_WARN, "ca", c->ca_file ? c->ca_file : XF_PKIX_SYSTEM_BUNDLE,
                     "pass --ca FILE", "no CA certificate loaded: PKIX cannot prove anything");
    c->dns = xf_cdns_open(o.n_res ? o.resolvers : NULL, o.n_res, 2000, err, sizeof(err));
    if (c->dns == NULL) {
        fprintf(stderr, "xmppfront check: DNS: %s\n", err);
        goto out;
    }
    if ((c->tls = xf_ctls_new(c->n_ca > 0 ? &c->ca : NULL, err, sizeof(err))) == NULL) {
        fprintf(stderr, "xmppfront check: %s\n", err);
        goto out;
    }
    c->trusted = xf_cdns_trusted(c->dns);
    {
        char list[400] = "";
        size_t l = 0;
        for (size_t i = 0; i < o.n_res && l + 1 < sizeof(list); i++) {
            int k = snprintf(list + l, sizeof(list) - l, "%s%s", i ? " " : "", o.resolvers[i]);
            l += k > 0 ? (size_t)k : 0;
        }
        xf_check_add(&c->rep, c->trusted ? XF_CHECK_OK : XF_CHECK_WARN, "dnssec",
                     o.n_res ? list : "/etc/resolv.conf",
                     "run a validating resolver on loopback (e.g. unbound) and pass "
                     "--resolver 127.0.0.1:53",
                     c->trusted ? "resolvers on loopback: the AD bit is trusted"
                                : "a resolver is not on loopback: the AD bit is not trusted, "
                                  "DNSSEC status unknown, DANE not checked");
    }

    for (int s = 0; s < 4; s++) {
        char owner[300];
        snprintf(owner, sizeof(owner), "%s.%s", services[s].prefix, o.name);
        c->srv_q[s] = query(c, XF_CQ_SRV, owner, 0);
    }
    c->domain_addr_q = query(c, XF_CQ_ADDR, o.name, 0);
    if (c->domain_addr_q == (size_t)-1 || c->srv_q[3] == (size_t)-1) {
        fprintf(stderr, "xmppfront check: out of memory\n");
        goto out;
    }
    run_dns(c);
    for (int s = 0; s < 4; s++)
        check_srv(c, s);
    addresses_and_tlsa(c);
    if (c->cfg)
        records_expect(c);
    run_dns(c);
    for (size_t i = 0; i < c->nep; i++)       /* POSH for each service with an endpoint */
        if (!c->posh_done[services[c->ep[i].svc].server])
            fetch_posh(c, services[c->ep[i].svc].server);
    for (size_t i = 0; i < c->nep; i++)
        probe(c, &c->ep[i]);
    if (c->cfg && c->rec_q) {
        const xf_dns_result *srv[4], **tlsa = calloc(c->nrec ? c->nrec : 1, sizeof(*tlsa));
        const char *owners[4];
        char own[4][300];
        for (int s = 0; s < 4; s++) {
            snprintf(own[s], sizeof(own[s]), "%s.%s.", services[s].prefix, o.name);
            owners[s] = own[s];
            srv[s] = &c->q[c->srv_q[s]].res;
        }
        for (size_t i = 0; tlsa && i < c->nrec; i++)
            tlsa[i] = c->rec_q[i] == (size_t)-1 ? NULL : &c->q[c->rec_q[i]].res;
        if (tlsa)
            xf_check_records_compare(&c->rep, c->recs, c->nrec, owners, srv, tlsa, c->trusted);
        else
            c->rep.nomem = 1;
        free(tlsa);
        for (int k = 0; k < 2; k++)
            if (c->posh_done[k])
                xf_check_posh_next(&c->rep, &c->posh[k], xf_check_next_leaf(c->cfg, o.name));
    }
    if (c->nep == 0)
        xf_check_add(&c->rep, XF_CHECK_FAIL, "reach", o.name,
                     "see the srv and addr lines above",
                     "no endpoint to connect to for any service");
    if (json ? xf_check_print_json(stdout, &c->rep) : xf_check_print_text(stdout, &c->rep))
        fprintf(stderr, "xmppfront check: cannot write the report\n");
    else
        rc = xf_check_exit_code(&c->rep);
out:
    for (size_t i = 0; i < c->nq; i++)
        xf_cdns_query_free(&c->q[i]);
    free(c->q);
    free(c->recs);
    free(c->rec_q);
    free(c->posh[0].doc);
    free(c->posh[1].doc);
    xf_ctls_free(c->tls);
    xf_cdns_close(c->dns);
    mbedtls_x509_crt_free(&c->ca);
    if (c->cfg)
        xf_config_unref(c->cfg);
    xf_check_report_free(&c->rep);
    curl_global_cleanup();
    free(c);
    return rc;
}
