/*
 * s2s_in_proof: the DANE and POSH prooftypes of an inbound s2s peer's client
 * certificate (issue 8 "Verifying peers", inbound; see s2s_in.h), as local policy in
 * the manner of Prosody 13's mod_s2s_auth_dane_in. Started by xf_s2s_in_start when a
 * TLS stream with a client certificate and a `from` arrives and PKIX does not prove
 * that `from`; the post-TLS features are held until both prooftypes have answered or
 * the wait bound expired (xf_s2s_in_proof_begin / proof_done -> xf_s2s_in_proceed).
 *
 *   DANE (RFC 7673 §3, RFC 6698, remote_dane.h steps): SRV _xmpps-server._tcp.FROM and
 *     _xmpp-server._tcp.FROM, asked in parallel with FROM's A/AAAA. Only when the
 *     worker's resolver is trusted for the AD bit (xf_dns_ad_trusted). A SERVFAIL of an
 *     SRV answer (bogus) or an indeterminate one -> DANE error. Secure SRV records ->
 *     TLSA at _PORT._tcp.TARGET of their targets (at most S2S_PROOF_MAX_TARGETS, each
 *     target an extra reference identity for DANE-TA, RFC 7673 §4); no SRV at all and a
 *     secure address answer -> TLSA at _5269._tcp.FROM. Unlike the outbound side the
 *     targets' own address records are not asked (nothing connects to them; Prosody's
 *     module does not either). A usable record that the certificate matches on any
 *     target -> DANE valid; see xf_s2s_in_dane_merge for how targets combine.
 *   POSH (RFC 7711 §4, certs/posh.h xf_posh_check): the worker's fetcher
 *     (proxy/posh_fetch.h, cached) for https://FROM/.well-known/posh/xmpp-server.json;
 *     a fingerprint of the leaf -> POSH valid.
 *
 * Cancel-safe: every query and the fetch go by id; xf_s2s_in_proof_cancel (from
 * xf_s2s_in_cancel) cancels them, so no callback comes after the stream is gone. The
 * wait bound runs on the connection's timer (conn.c caps it at the auth deadline).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <mbedtls/ssl.h>
#include "certs/posh.h"
#include "proxy/conn_int.h"
#include "proxy/dns.h"
#include "proxy/log.h"
#include "proxy/posh_fetch.h"
#include "proxy/remote_dane.h"
#include "proxy/s2s_in.h"
#include "proxy/s2s_in_int.h"
#include "proxy/worker.h"

/* ------------------------------------------------------------------ pure helpers */

static void add_target(xf_srv_target *out, size_t max, int *n, const xf_srv_rec *r, int tls)
{
    char host[XF_SRV_HOST_MAX];
    xf_s2s_in_lower_copy(host, sizeof(host), r->target);
    if (host[0] == '\0' || (size_t)*n >= max)
        return;
    for (int i = 0; i < *n; i++)
        if (out[i].port == r->port && strcmp(out[i].host, host) == 0)
            return;                                  /* one TLSA RRset per owner */
    memset(&out[*n], 0, sizeof(out[*n]));
    snprintf(out[*n].host, sizeof(out[*n].host), "%s", host);
    out[*n].port = r->port;
    out[*n].tls = tls;
    out[*n].priority = r->priority;
    out[*n].weight = r->weight;
    (*n)++;
}

int xf_s2s_in_dane_targets(int trusted, const xf_dns_result *xmpps, const xf_dns_result *xmpp,
                           xf_srv_target *out, size_t max, char *why, size_t whylen)
{
    const xf_dns_result *set[2] = { xmpps, xmpp };
    const char *name[2] = { "_xmpps-server", "_xmpp-server" };
    int n = 0, records = 0, insecure = 0;
    if (why && whylen)
        why[0] = '\0';
    if (!trusted) {
        snprintf(why, whylen, "not applicable: resolver not trusted for DNSSEC (not on loopback)");
        return XF_S2S_DANE_ABSENT;
    }
    for (int i = 0; i < 2; i++) {
        int st = set[i] ? set[i]->status : XF_DNS_ERROR;
        if (st == XF_DNS_SERVFAIL) {
            snprintf(why, whylen, "SRV %s bogus (SERVFAIL from the validating resolver)", name[i]);
            return XF_S2S_DANE_ERROR;
        }
        if (st != XF_DNS_NOERROR && st != XF_DNS_NXDOMAIN && st != XF_DNS_NODATA) {
            snprintf(why, whylen, "SRV %s indeterminate (%s)", name[i], xf_dns_status_name(st));
            return XF_S2S_DANE_ERROR;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (set[i]->status != XF_DNS_NOERROR || set[i]->n_srv == 0)
            continue;
        records++;
        if (!set[i]->ad) {
            insecure++;
            continue;
        }
        for (size_t k = 0; k < set[i]->n_srv; k++)
            add_target(out, max, &n, &set[i]->srv[k],
                       i == 0 ? XF_SRV_TLS_DIRECT : XF_SRV_TLS_STARTTLS);
    }
    if (records == 0)
        return XF_S2S_DANE_FALLBACK;
    if (n == 0) {
        snprintf(why, whylen, "%s", insecure ? "not applicable: SRV answer insecure (no AD)"
                                             : "SRV names no service (target '.')");
        return XF_S2S_DANE_ABSENT;
    }
    return n;
}

/* Strength of a verdict when the targets' verdicts combine. */
static int rank(int result)
{
    switch (result) {
    case XF_PROOF_VALID: return 4;
    case XF_PROOF_INVALID: return 3;
    case XF_PROOF_ERROR: return 2;
    case XF_PROOF_ABSENT: return 1;
    default: return 0;
    }
}

void xf_s2s_in_dane_merge(xf_proof *acc, const xf_proof *one)
{
    int a = rank(acc->result), o = rank(one->result);
    if (o > a || (o == a && acc->reason[0] == '\0'))
        *acc = *one;
}

/* ------------------------------------------------------------------ the lookups */

static void proof_done(xf_s2s_in *s);

static int dane_pending(const struct in_proof *pr)
{
    if (pr->q_srv[0] || pr->q_srv[1] || pr->q_addr)
        return 1;
    for (unsigned i = 0; i < pr->n_tlsa; i++)
        if (pr->q_tlsa[i])
            return 1;
    return 0;
}

/* DANE has its verdict (pr->dane): its remaining queries are not needed. */
static void dane_finish(xf_s2s_in *s)
{
    struct in_proof *pr = &s->pr;
    xf_dns *dns = s->c->w->dns;
    xf_dns_cancel(dns, pr->q_srv[0]);
    xf_dns_cancel(dns, pr->q_srv[1]);
    xf_dns_cancel(dns, pr->q_addr);
    for (unsigned i = 0; i < pr->n_tlsa; i++)
        xf_dns_cancel(dns, pr->q_tlsa[i]);
    memset(pr->q_srv, 0, sizeof(pr->q_srv));
    memset(pr->q_tlsa, 0, sizeof(pr->q_tlsa));
    pr->q_addr = 0;
    pr->dane_done = 1;
    if (pr->posh_done)
        proof_done(s);
}

static void on_tlsa(void *ud, uint64_t id, const xf_dns_result *res)
{
    xf_s2s_in *s = ud;
    struct in_proof *pr = &s->pr;
    unsigned i = 0;
    while (i < pr->n_tlsa && pr->q_tlsa[i] != id)
        i++;
    if (i == pr->n_tlsa || xf_s2s_in_closing(s))
        return;
    pr->q_tlsa[i] = 0;
    char owner[XF_SRV_HOST_MAX + 16];
    snprintf(owner, sizeof(owner), "_%u._tcp.%s", pr->t[i].port, pr->t[i].host);
    xf_proof p;
    if (xf_rdane_answer(res, owner, &p) == XF_RDANE_RECORDS) {
        mbedtls_x509_crt *chain = (mbedtls_x509_crt *)mbedtls_ssl_get_peer_cert(&s->c->ssl);
        const char *tgt = strcasecmp(pr->t[i].host, s->from) == 0 ? NULL : pr->t[i].host;
        xf_rdane_verify(res, chain, s->c->sel.peer_ca, s->from, tgt, &p);
    }
    xf_s2s_in_dane_merge(&pr->dane, &p);
    xf_debug("conn id=%llu s2s from=%s TLSA %s: dane: %s (%s)", (unsigned long long)s->c->id,
             s->from, owner, xf_proof_result_name(p.result), p.reason);
    if (pr->dane.result == XF_PROOF_VALID || !dane_pending(pr))
        dane_finish(s);
}

/* Ask TLSA for the targets pr->t[0..n). */
static void ask_tlsa(xf_s2s_in *s, unsigned n)
{
    struct in_proof *pr = &s->pr;
    pr->n_tlsa = n;
    for (unsigned i = 0; i < n; i++) {
        pr->q_tlsa[i] = xf_dns_query_tlsa(s->c->w->dns, pr->t[i].port, pr->t[i].host, on_tlsa, s);
        if (pr->q_tlsa[i] == 0) {
            xf_proof p = { .result = XF_PROOF_ERROR };
            snprintf(p.reason, sizeof(p.reason), "cannot ask TLSA _%u._tcp.%.150s",
                     pr->t[i].port, pr->t[i].host);
            xf_s2s_in_dane_merge(&pr->dane, &p);
        }
    }
    if (!dane_pending(pr))
        dane_finish(s);
}

static void dane_verdict(xf_s2s_in *s, int result, const char *why)
{
    s->pr.dane.result = result;
    xf_s2s_in_copy(s->pr.dane.reason, sizeof(s->pr.dane.reason), why);
    dane_finish(s);
}

/* Both SRV answers (and, for the fallback, the address answer) are in. */
static void dane_step(xf_s2s_in *s)
{
    struct in_proof *pr = &s->pr;
    if (!pr->srv_done[0] || !pr->srv_done[1] || pr->dane_done)
        return;
    char why[160];
    int n = xf_s2s_in_dane_targets(1, &pr->srv[0], &pr->srv[1], pr->t, S2S_PROOF_MAX_TARGETS,
                                   why, sizeof(why));
    if (n > 0) {
        xf_dns_cancel(s->c->w->dns, pr->q_addr);
        pr->q_addr = 0;
        ask_tlsa(s, (unsigned)n);
        return;
    }
    if (n == XF_S2S_DANE_ERROR || n == XF_S2S_DANE_ABSENT) {
        dane_verdict(s, n == XF_S2S_DANE_ERROR ? XF_PROOF_ERROR : XF_PROOF_ABSENT, why);
        return;
    }
    /* No SRV: plain RFC 6698 at _5269._tcp.FROM when FROM's address answer is secure
       (local policy, as outbound; spec-digest §6). */
    if (!pr->addr_done)
        return;
    if (pr->addr_status == XF_DNS_SERVFAIL) {
        dane_verdict(s, XF_PROOF_ERROR, "no SRV; A/AAAA bogus (SERVFAIL from the validating resolver)");
        return;
    }
    if (!xf_rdane_applies(1, 0, 1, pr->addr_status == XF_DNS_NOERROR && pr->addr_ad, why, sizeof(why))) {
        char w[200];
        snprintf(w, sizeof(w), "not applicable: %s", why);
        dane_verdict(s, XF_PROOF_ABSENT, w);
        return;
    }
    memset(&pr->t[0], 0, sizeof(pr->t[0]));
    xf_s2s_in_copy(pr->t[0].host, sizeof(pr->t[0].host), s->from);
    pr->t[0].port = 5269;
    pr->t[0].fallback = 1;
    ask_tlsa(s, 1);
}

static void on_srv(void *ud, uint64_t id, const xf_dns_result *res)
{
    xf_s2s_in *s = ud;
    struct in_proof *pr = &s->pr;
    int i = id == pr->q_srv[0] ? 0 : id == pr->q_srv[1] ? 1 : -1;
    if (i < 0 || xf_s2s_in_closing(s))
        return;
    pr->q_srv[i] = 0;
    if (xf_dns_result_copy(&pr->srv[i], res) != 0) {
        dane_verdict(s, XF_PROOF_ERROR, "out of memory");
        return;
    }
    pr->srv_done[i] = 1;
    dane_step(s);
}

static void on_addr(void *ud, uint64_t id, const xf_dns_result *res)
{
    xf_s2s_in *s = ud;
    struct in_proof *pr = &s->pr;
    if (id != pr->q_addr || xf_s2s_in_closing(s))
        return;
    pr->q_addr = 0;
    pr->addr_done = 1;
    pr->addr_status = res->status;
    pr->addr_ad = res->ad;
    dane_step(s);
}

/* The POSH prooftype from the fetch's answer (as remote_negotiate.c's posh_judge). */
static void on_posh(void *ud, uint64_t id, const xf_posh_answer *a, int from_cache)
{
    xf_s2s_in *s = ud;
    struct in_proof *pr = &s->pr;
    if (id != pr->q_posh || xf_s2s_in_closing(s))
        return;
    pr->q_posh = 0;
    xf_proof *p = &pr->posh;
    const mbedtls_x509_crt *leaf = mbedtls_ssl_get_peer_cert(&s->c->ssl);
    char why[120];
    switch (a->status) {
    case XF_POSHF_DOC:
        if (leaf != NULL && xf_posh_check(a->doc, leaf, why, sizeof(why)) == XF_POSH_MATCH)
            p->result = XF_PROOF_VALID;
        else
            p->result = XF_PROOF_INVALID;
        snprintf(p->reason, sizeof(p->reason), "%.70s; %.110s%s",
                 leaf ? why : "no certificate presented", a->reason,
                 from_cache ? " [cached]" : "");
        break;
    case XF_POSHF_ABSENT:
    case XF_POSHF_INVALID:
    default:
        p->result = a->status == XF_POSHF_ABSENT ? XF_PROOF_ABSENT
                  : a->status == XF_POSHF_INVALID ? XF_PROOF_INVALID : XF_PROOF_ERROR;
        snprintf(p->reason, sizeof(p->reason), "%.180s", a->reason);
        break;
    }
    pr->posh_done = 1;
    if (pr->dane_done)
        proof_done(s);
}

/* ------------------------------------------------------------------ wait and finish */

static void on_wait_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    xf_s2s_in *s = c->s2s;
    if (s == NULL || xf_s2s_in_closing(s) || s->pr.state != S2S_PROOF_PENDING)
        return;
    char r[120];
    snprintf(r, sizeof(r), "timed out after %u ms (inbound proof wait bound)", s->pr.bound_ms);
    if (!s->pr.dane_done) {
        s->pr.dane.result = XF_PROOF_ERROR;
        xf_s2s_in_copy(s->pr.dane.reason, sizeof(s->pr.dane.reason), r);
    }
    if (!s->pr.posh_done) {
        xf_posh_fetch_cancel(c->w->posh, s->pr.q_posh);
        s->pr.q_posh = 0;
        s->pr.posh_done = 1;
        s->pr.posh.result = XF_PROOF_ERROR;
        xf_s2s_in_copy(s->pr.posh.reason, sizeof(s->pr.posh.reason), r);
    }
    if (!s->pr.dane_done)
        dane_finish(s);                          /* -> proof_done */
    else
        proof_done(s);
}

static void proof_done(xf_s2s_in *s)
{
    struct in_proof *pr = &s->pr;
    if (pr->state != S2S_PROOF_PENDING)
        return;
    pr->state = S2S_PROOF_DONE;
    xf_conn_timer_stop(s->c);                   /* re-arms the auth deadline alone */
    char qd[500], qp[500];
    xf_info("conn id=%llu s2s inbound proofs peer=%s from=%s after %llu ms: dane: %s (%s); "
            "posh: %s (%s)", (unsigned long long)s->c->id, XF_CONN_PEER(s->c), s->from,
            (unsigned long long)(xf_conn_now_ms(s->c) - pr->t0_ms),
            xf_proof_result_name(pr->dane.result), xf_log_quote(qd, sizeof(qd), pr->dane.reason),
            xf_proof_result_name(pr->posh.result), xf_log_quote(qp, sizeof(qp), pr->posh.reason));
    xf_s2s_in_proceed(s);
}

int xf_s2s_in_proof_begin(xf_s2s_in *s, const char *pkix_reason)
{
    struct in_proof *pr = &s->pr;
    xf_conn *c = s->c;
    if (c->w == NULL || c->w->dns == NULL || c->w->posh == NULL)
        return 0;
    memset(pr, 0, sizeof(*pr));
    pr->state = S2S_PROOF_PENDING;
    pr->t0_ms = xf_conn_now_ms(c);
    pr->dane.result = XF_PROOF_ABSENT;
    pr->posh.result = XF_PROOF_NOT_TRIED;
    unsigned neg = c->config->federation.negotiation_timeout_s;
    pr->bound_ms = S2S_PROOF_WAIT_MS;
    if (neg > 0 && neg * 1000u < pr->bound_ms)
        pr->bound_ms = neg * 1000u;

    const xf_proof_order *po = &c->tenant->proofs;
    if (!xf_proof_accepted(po, XF_PROOF_DANE)) {
        pr->dane_done = 1;                       /* not the tenant's: no lookups */
        pr->dane.result = XF_PROOF_NOT_TRIED;
    } else if (!xf_dns_ad_trusted(c->w->dns)) {
        pr->dane_done = 1;
        snprintf(pr->dane.reason, sizeof(pr->dane.reason),
                 "not applicable: resolver not trusted for DNSSEC (not on loopback)");
    } else {
        char name[S2S_DOM_MAX + 32];
        snprintf(name, sizeof(name), "_xmpps-server._tcp.%s", s->from);
        pr->q_srv[0] = xf_dns_query_srv(c->w->dns, name, on_srv, s);
        snprintf(name, sizeof(name), "_xmpp-server._tcp.%s", s->from);
        pr->q_srv[1] = xf_dns_query_srv(c->w->dns, name, on_srv, s);
        pr->q_addr = xf_dns_query_a_aaaa(c->w->dns, s->from, on_addr, s);
        if (pr->q_srv[0] == 0 || pr->q_srv[1] == 0 || pr->q_addr == 0) {
            dane_verdict(s, XF_PROOF_ERROR, "cannot ask SRV/A for the stream's from");
        }
    }
    pr->q_posh = xf_proof_accepted(po, XF_PROOF_POSH)
        ? xf_posh_fetch(c->w->posh, s->from, on_posh, s) : 0;
    if (!xf_proof_accepted(po, XF_PROOF_POSH)) {
        pr->posh_done = 1;                       /* not the tenant's: NOT_TRIED */
    } else if (pr->q_posh == 0) {
        pr->posh_done = 1;
        pr->posh.result = XF_PROOF_ERROR;
        snprintf(pr->posh.reason, sizeof(pr->posh.reason), "cannot fetch POSH for the stream's from");
    }
    if (pr->dane_done && pr->posh_done) {
        pr->state = S2S_PROOF_DONE;              /* nothing asked: no wait */
        return 0;
    }
    char q[400];
    xf_info("conn id=%llu s2s stream from=%s: pkix did not prove it (%s): waiting for dane "
            "and posh (at most %u ms)", (unsigned long long)c->id, s->from,
            xf_log_quote(q, sizeof(q), pkix_reason), pr->bound_ms);
    xf_conn_timer_start(c, pr->bound_ms, on_wait_timeout);
    return 1;
}

void xf_s2s_in_proof_cancel(xf_s2s_in *s)
{
    struct in_proof *pr = &s->pr;
    if (s->c->w != NULL && s->c->w->dns != NULL) {
        xf_dns_cancel(s->c->w->dns, pr->q_srv[0]);
        xf_dns_cancel(s->c->w->dns, pr->q_srv[1]);
        xf_dns_cancel(s->c->w->dns, pr->q_addr);
        for (unsigned i = 0; i < pr->n_tlsa; i++)
            xf_dns_cancel(s->c->w->dns, pr->q_tlsa[i]);
    }
    if (s->c->w != NULL && s->c->w->posh != NULL)
        xf_posh_fetch_cancel(s->c->w->posh, pr->q_posh);
    memset(pr->q_srv, 0, sizeof(pr->q_srv));
    memset(pr->q_tlsa, 0, sizeof(pr->q_tlsa));
    pr->q_addr = pr->q_posh = 0;
    for (int i = 0; i < 2; i++)
        if (pr->srv_done[i]) {
            xf_dns_result_free(&pr->srv[i]);
            pr->srv_done[i] = 0;
        }
    if (pr->state == S2S_PROOF_PENDING)
        pr->state = S2S_PROOF_NONE;
}

void xf_s2s_in_cert_facts(xf_s2s_in *s, const char *domain, xf_peer_facts *f)
{
    xf_s2s_in_pkix_proof(s, domain, &f->proof[XF_PROOF_PKIX]);
    if (s->pr.state == S2S_PROOF_DONE && s->from[0] && strcmp(domain, s->from) == 0) {
        f->proof[XF_PROOF_DANE] = s->pr.dane;
        f->proof[XF_PROOF_POSH] = s->pr.posh;
    }
}

int xf_s2s_in_cert_proves(const xf_peer_facts *f, const xf_proof_order *proofs)
{
    return xf_fed_proven_by(proofs, f) >= 0;
}
