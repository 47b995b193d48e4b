/*
 * remote_connect: the transport of an xf_remote (proxy/remote_int.h) — resolution (both
 * SRV sets, XEP-0368 §3 merged order by proxy/srvorder.c; A/AAAA of each candidate), the
 * TCP connect attempts in order (connect_timeout_s each), writes toward the remote, and
 * the client-side TLS over memory BIOs (direct TLS or after <proceed/>), and the TLSA
 * lookup of each target (DANE, remote_dane.h) next to its connect. A connect
 * failure or a failed TLS handshake moves on to the next address, then the next
 * candidate; anything after TLS is established is final, except a DANE failure of the
 * target (bogus / indeterminate TLSA, or usable TLSA not matched), which aborts that
 * target and tries the next candidate (xf_remote_abort_target).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <mbedtls/ssl.h>
#include "proxy/backend_s2s.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/remote_dane.h"
#include "proxy/tls.h"
#include "proxy/tls_client.h"
#include "proxy/remote_int.h"

static void start_candidate(xf_remote *r);
static void next_address(xf_remote *r, const char *why);
static void add_trail(xf_remote *r, const char *what);
static void on_connect_timeout(uv_timer_t *t);

/* ---------------------------------------------------------------- writes */

static void on_write_done(uv_write_t *req, int status)
{
    r_wreq *wr = (r_wreq *)req;
    xf_remote *r = wr->r;
    r->queued -= wr->len;
    free(wr);
    if (r->closed || status == UV_ECANCELED)
        return;
    if (status < 0) {
        char m[120];
        snprintf(m, sizeof(m), "write to the remote failed: %s", uv_strerror(status));
        if (r->state == R_RELAY) {
            if (r->sink.on_close)
                r->sink.on_close(r->sink.ud, m);
            xf_remote_teardown(r, 0);
        } else {
            next_address(r, m);
        }
        return;
    }
    if (r->drain_wanted && r->queued <= r->cfg->limits.buffer_low_bytes) {
        r->drain_wanted = 0;
        if (r->state == R_RELAY && r->sink.on_drain)
            r->sink.on_drain(r->sink.ud);
    }
}

int xf_remote_sock_write(xf_remote *r, const char *data, size_t len)
{
    if (len == 0 || r->sock == NULL)
        return 0;
    r_wreq *wr = malloc(sizeof(*wr) + len);
    if (wr == NULL)
        return UV_ENOMEM;
    wr->r = r;
    wr->len = len;
    memcpy(wr->data, data, len);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    int e = uv_write(&wr->req, (uv_stream_t *)&r->sock->tcp, &b, 1, on_write_done);
    if (e < 0) {
        free(wr);
        return e;
    }
    r->queued += len;
    return 0;
}

int xf_remote_flush_tout(xf_remote *r)
{
    size_t n = xf_buf_size(&r->tout);
    if (n == 0)
        return 0;
    int e = xf_remote_sock_write(r, xf_buf_head(&r->tout), n);
    xf_buf_reset(&r->tout);
    return e;
}

/* Plaintext toward the remote: through TLS when it is up. 0 or negative.
   mbedtls_ssl_write takes at most one record's worth per call (MBEDTLS_SSL_OUT_CONTENT_LEN,
   4096 in the proxy's own mbedTLS build, deploy/mbedtls/xf_proxy_config.h) and returns
   how much it took: loop until all of it is in records. bio_send only appends to tout, so
   WANT_WRITE/WANT_READ do not happen in practice; they are retried a bounded number of
   times with the same remaining data, as the API requires. */
int xf_remote_send_plain(xf_remote *r, const char *data, size_t len)
{
    if (!r->ssl_on || r->state == R_TLS_HANDSHAKE)
        return xf_remote_sock_write(r, data, len);
    int tries = 0;
    while (len > 0) {
        int n = mbedtls_ssl_write(&r->ssl, (const unsigned char *)data, len);
        if ((n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) && ++tries < 8)
            continue;                  /* memory BIO: never blocks; bounded retry */
        if (n < 0)
            return n;
        data += n;
        len -= (size_t)n;
    }
    return xf_remote_flush_tout(r);
}

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    xf_remote *r = ctx;
    if (xf_buf_append(&r->tout, buf, len) < 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    xf_remote *r = ctx;
    size_t n = xf_buf_size(&r->tin);
    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > len)
        n = len;
    memcpy(buf, xf_buf_head(&r->tin), n);
    xf_buf_consume(&r->tin, n);
    return (int)n;
}

/* ---------------------------------------------------------------- client TLS */

int xf_remote_tls_start(xf_remote *r)
{
    const mbedtls_ssl_config *conf =
        xf_tls_client_config(r->cfg->tlsc, r->t, r->tls_mode == XF_SRV_TLS_DIRECT);
    if (conf == NULL)
        return -1;
    mbedtls_ssl_init(&r->ssl);
    r->ssl_on = 1;
    if (mbedtls_ssl_setup(&r->ssl, conf) != 0 || mbedtls_ssl_set_hostname(&r->ssl, r->domain) != 0)
        return -1;
    mbedtls_ssl_set_bio(&r->ssl, r, bio_send, bio_recv, NULL);
    xf_remote_set_state(r, R_TLS_HANDSHAKE);
    return 0;
}

/* Drive TLS with the ciphertext buffered: handshake, then application data. */
void xf_remote_tls_pump(xf_remote *r)
{
    char e[100];
    if (r->state == R_TLS_HANDSHAKE) {
        int ret = mbedtls_ssl_handshake(&r->ssl);
        xf_remote_flush_tout(r);
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        xf_metrics_handshake(XF_M_OUT, ret);
        if (ret != 0) {
            char m[160];
            snprintf(m, sizeof(m), "TLS handshake failed: %s", xf_tls_strerror(ret, e, sizeof(e)));
            next_address(r, m);
            return;
        }
        xf_remote_tls_up(r);
    }
    while (!r->closed && r->ssl_on && r->state != R_TLS_HANDSHAKE && r->state != R_DONE &&
           r->state != R_TLSA_WAIT && r->state != R_POSH_WAIT && !r->paused) {
        unsigned char buf[R_READ_CHUNK];
        int n = mbedtls_ssl_read(&r->ssl, buf, sizeof(buf));
        if (n > 0) {
            xf_remote_plain_input(r, (const char *)buf, (size_t)n);
            continue;
        }
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
#ifdef MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET
        if (n == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            continue;
#endif
        char m[160];
        if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
            snprintf(m, sizeof(m), "the remote closed TLS");
        else
            snprintf(m, sizeof(m), "TLS read failed: %s", xf_tls_strerror(n, e, sizeof(e)));
        if (r->state == R_RELAY) {
            if (r->sink.on_close)
                r->sink.on_close(r->sink.ud, m);
            xf_remote_teardown(r, 0);
        } else {
            xf_remote_fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "%s in state %s", m,
                           xf_remote_state_names[r->state]);
        }
        return;
    }
    if (!r->closed && r->ssl_on)
        xf_remote_flush_tout(r);
}

/* ---------------------------------------------------------------- sockets */

void xf_remote_alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(R_READ_CHUNK);
    buf->len = buf->base ? R_READ_CHUNK : 0;
}

void xf_remote_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    r_sock *s = st->data;
    xf_remote *r = s->r;
    if (r == NULL || r->closed || s != r->sock) {
        free(buf->base);
        return;
    }
    if (n < 0) {
        free(buf->base);
        char m[120];
        snprintf(m, sizeof(m), "the remote %s", n == UV_EOF ? "closed the connection"
                 : uv_strerror((int)n));
        if (r->state == R_RELAY) {
            if (r->sink.on_close)
                r->sink.on_close(r->sink.ud, m);
            xf_remote_teardown(r, 0);
        } else if (r->state == R_TLS_HANDSHAKE || r->state == R_TLSA_WAIT ||
                   r->state == R_POSH_WAIT) {
            next_address(r, m);
        } else {
            xf_remote_fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "%s in state %s", m,
                           xf_remote_state_names[r->state]);
        }
        return;
    }
    if (n > 0) {
        if (r->bs2s != NULL) {
            (void)xf_bs2s_input(r->bs2s, buf->base, (size_t)n);   /* calls the ops */
        } else if (r->ssl_on) {
            if (xf_buf_append(&r->tin, buf->base, (size_t)n) < 0)
                xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
            else
                xf_remote_tls_pump(r);
        } else {
            xf_remote_plain_input(r, buf->base, (size_t)n);
        }
    }
    free(buf->base);
}

/* ---------------------------------------------------------------- connect attempts */

static void on_connect(uv_connect_t *req, int status)
{
    r_sock *s = req->data;
    xf_remote *r = s->r;
    if (r == NULL || r->closed || s != r->sock || status == UV_ECANCELED)
        return;
    uv_timer_stop(&r->ctimer);
    if (status < 0) {
        char m[120];
        snprintf(m, sizeof(m), "connect: %s", uv_strerror(status));
        next_address(r, m);
        return;
    }
    r->any_connected = 1;
    uv_tcp_nodelay(&s->tcp, 1);
    if (r->cfg->limits.tcp_keepalive_s)
        uv_tcp_keepalive(&s->tcp, 1, r->cfg->limits.tcp_keepalive_s);
    int e = uv_read_start((uv_stream_t *)&s->tcp, xf_remote_alloc_buf, xf_remote_on_read);
    if (e < 0) {
        next_address(r, uv_strerror(e));
        return;
    }
    if (r->local != NULL) {
        xf_remote_local_start(r);
    } else if (r->tls_mode == XF_SRV_TLS_DIRECT) {
        if (xf_remote_tls_start(r) != 0) {
            xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "TLS setup failed");
            return;
        }
        xf_remote_tls_pump(r);
    } else {
        xf_xml_reset(r->xml);
        xf_remote_set_state(r, R_PRE_HEADER);
        if (xf_remote_send_header(r) < 0)
            xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write the stream header");
    }
}

static uint64_t deadline_left(xf_remote *r)
{
    uint64_t due = uv_timer_get_due_in(&r->deadline);
    return due;
}

void xf_remote_connect_current(xf_remote *r)
{
    const xf_dns_addr *a = &r->addrs[r->i_addr];
    const xf_srv_target *c = &r->cand[r->i_cand];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    char host[INET6_ADDRSTRLEN] = "?";
    if (r->local != NULL) {
        memcpy(&ss, &r->local->s2s.addr, r->local->s2s.addrlen);
        snprintf(r->peer, sizeof(r->peer), "%s", r->local->s2s.spec);
    } else if (a->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(c->port);
        memcpy(&in->sin_addr, a->addr, 4);
        inet_ntop(AF_INET, a->addr, host, sizeof(host));
        snprintf(r->peer, sizeof(r->peer), "%s:%u", host, c->port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(c->port);
        memcpy(&in6->sin6_addr, a->addr, 16);
        inet_ntop(AF_INET6, a->addr, host, sizeof(host));
        snprintf(r->peer, sizeof(r->peer), "[%s]:%u", host, c->port);
    }
    r->tls_mode = r->local ? 0 : c->tls;
    r->tls_ver[0] = '\0';
    memset(&r->facts, 0, sizeof(r->facts));
    r_sock *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    s->r = r;
    uv_tcp_init(&r->w->loop, &s->tcp);
    s->tcp.data = s;
    s->creq.data = s;
    r->handles++;
    r->sock = s;
    xf_remote_set_state(r, R_CONNECT);
    int e = uv_tcp_connect(&s->creq, &s->tcp, (const struct sockaddr *)&ss, on_connect);
    if (e < 0) {
        char m[120];
        snprintf(m, sizeof(m), "connect: %s", uv_strerror(e));
        next_address(r, m);
        return;
    }
    uint64_t ms = (uint64_t)r->cfg->federation.connect_timeout_s * 1000;
    uint64_t left = deadline_left(r);
    uv_timer_start(&r->ctimer, on_connect_timeout, ms < left ? ms : left, 0);
}

static void on_connect_timeout(uv_timer_t *t)
{
    xf_remote *r = t->data;
    if (r->closed || r->state != R_CONNECT)
        return;
    next_address(r, "connect timed out");
}

static void add_trail(xf_remote *r, const char *what)
{
    size_t n = strlen(r->trail);
    if (n + 4 >= sizeof(r->trail))
        return;
    snprintf(r->trail + n, sizeof(r->trail) - n, "%s%s %s", n ? "; " : "",
             r->peer[0] ? r->peer : r->cand[r->i_cand].host, what);
}

/* The current attempt failed before TLS was up: the next address, then the next
   candidate; when none is left, the end. */
static void next_address(xf_remote *r, const char *why)
{
    add_trail(r, why);
    xf_remote_drop_sock(r);
    uv_timer_stop(&r->ctimer);
    if (r->local != NULL) {                    /* one backend address, no candidates */
        xf_remote_fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "hosted here: its s2s backend %s: %s",
                       r->local->s2s.spec, why);
        return;
    }
    if (++r->i_addr < r->n_addr) {
        xf_remote_connect_current(r);
        return;
    }
    r->i_cand++;
    start_candidate(r);
}

/* ---------------------------------------------------------------- resolution and candidates */

/* The TLSA answer of the current candidate (RFC 7673 §3, remote_dane.h step 2). */
static void on_tlsa(void *ud, uint64_t id, const xf_dns_result *res)
{
    xf_remote *r = ud;
    (void)id;
    r->q_tlsa = 0;
    if (r->closed || r->dane_state != R_DANE_PENDING)
        return;
    /* Only while the certificate is still to be judged (a plaintext stream under
       policy `open` never waits for it: DANE needs TLS). */
    if (r->state != R_CONNECT && r->state != R_PRE_HEADER && r->state != R_PRE_FEATURES &&
        r->state != R_STARTTLS_WAIT && r->state != R_TLS_HANDSHAKE && r->state != R_TLSA_WAIT)
        return;
    int a = xf_rdane_answer(res, r->tlsa_owner, &r->dane);
    if (a == XF_RDANE_ABORT) {
        xf_remote_abort_target(r, r->dane.reason);
        return;
    }
    if (a == XF_RDANE_RECORDS) {
        if (xf_dns_result_copy(&r->tlsa, res) != 0) {
            xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
            return;
        }
        r->tlsa_have = 1;
        r->dane_state = R_DANE_RECORDS;
    } else {
        r->dane_state = R_DANE_NONE;
    }
    if (r->state == R_TLSA_WAIT)
        xf_remote_tls_verified(r);
}

/* Step 1 of remote_dane.h for the current candidate, whose addresses just came with
   AD bit addr_ad: ask TLSA (answered in parallel with the connect) or say why not. */
static void start_tlsa(xf_remote *r, int addr_ad)
{
    const xf_srv_target *c = &r->cand[r->i_cand];
    char why[120];
    if (!xf_proof_accepted(&r->t->proofs, XF_PROOF_DANE)) {
        r->dane_state = R_DANE_NA;             /* no TLSA asked: DANE NOT_TRIED */
        return;
    }
    if (!xf_rdane_applies(r->ad_trusted, r->srv_secure, c->fallback, addr_ad, why, sizeof(why))) {
        r->dane_state = R_DANE_NA;
        r->dane.result = XF_PROOF_ABSENT;
        snprintf(r->dane.reason, sizeof(r->dane.reason), "not applicable: %s", why);
        return;
    }
    snprintf(r->tlsa_owner, sizeof(r->tlsa_owner), "_%u._tcp.%s", c->port, c->host);
    r->q_tlsa = xf_dns_query_tlsa(r->w->dns, c->port, c->host, on_tlsa, r);
    if (r->q_tlsa == 0) {
        r->dane_state = R_DANE_NA;
        r->dane.result = XF_PROOF_ERROR;
        snprintf(r->dane.reason, sizeof(r->dane.reason), "cannot ask TLSA %.150s", r->tlsa_owner);
        return;
    }
    r->dane_state = R_DANE_PENDING;
}

static void on_addr(void *ud, uint64_t id, const xf_dns_result *res)
{
    xf_remote *r = ud;
    (void)id;
    r->q_addr = 0;
    if (r->closed)
        return;
    if (res->status != XF_DNS_NOERROR || res->n_addr == 0) {
        char m[120];
        snprintf(m, sizeof(m), "A/AAAA %s%s", xf_dns_status_name(res->status),
                 r->ad_trusted && res->status == XF_DNS_SERVFAIL
                 ? " (bogus DNSSEC from the validating resolver: target skipped)" : "");
        r->peer[0] = '\0';
        add_trail(r, m);
        r->i_cand++;
        start_candidate(r);
        return;
    }
    r->any_addr = 1;
    r->n_addr = 0;
    for (size_t i = 0; i < res->n_addr && r->n_addr < MAX_ADDRS; i++)
        r->addrs[r->n_addr++] = res->addr[i];
    r->i_addr = 0;
    start_tlsa(r, res->ad);
    xf_remote_connect_current(r);
}

static void reset_dane(xf_remote *r)
{
    xf_dns_cancel(r->w->dns, r->q_tlsa);
    r->q_tlsa = 0;
    if (r->tlsa_have)
        xf_dns_result_free(&r->tlsa);
    r->tlsa_have = 0;
    r->dane_state = R_DANE_NA;
    r->srv_secure = 0;
    memset(&r->dane, 0, sizeof(r->dane));
    r->tlsa_owner[0] = '\0';
}

const char *xf_remote_target_host(const xf_remote *r)
{
    return r->i_cand < r->n_cand ? r->cand[r->i_cand].host : "";
}

void xf_remote_abort_target(xf_remote *r, const char *why)
{
    const xf_srv_target *c = &r->cand[r->i_cand];
    xf_warn("remote %s->%s target %s:%u (%s) aborted: dane: %s (%s)", r->t->domain, r->domain,
            c->host, c->port, r->peer[0] ? r->peer : "not connected",
            xf_proof_result_name(r->dane.result), why);
    char m[260];
    snprintf(m, sizeof(m), "dane: %s (%.200s)", xf_proof_result_name(r->dane.result), why);
    if (r->peer[0] == '\0')
        snprintf(r->peer, sizeof(r->peer), "%.70s:%u", c->host, c->port);
    add_trail(r, m);
    xf_remote_drop_sock(r);
    uv_timer_stop(&r->ctimer);
    r->tls_ver[0] = '\0';
    r->i_cand++;
    start_candidate(r);
}

/* Candidate i_cand: its addresses, or the end when every candidate failed. */
static void start_candidate(xf_remote *r)
{
    if (r->closed)
        return;
    if (r->i_cand >= r->n_cand) {
        reset_dane(r);
        r->tls_mode = 0;
        if (!r->any_addr)
            xf_remote_fail(r, XF_DB_ERR_REMOTE_SERVER_NOT_FOUND, "no address for %s", r->domain);
        else
            xf_remote_fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED,
                           "no candidate of %s could be reached",
                           r->domain);
        return;
    }
    xf_remote_set_state(r, R_ADDR);
    r->peer[0] = '\0';
    r->n_addr = r->i_addr = 0;
    reset_dane(r);
    {
        /* The SRV set this candidate came from: xmpps (direct TLS) or xmpp. */
        const xf_srv_target *c = &r->cand[r->i_cand];
        const xf_dns_result *set = &r->srv[c->tls == XF_SRV_TLS_DIRECT ? 0 : 1];
        r->srv_secure = !c->fallback && r->ad_trusted && set->status == XF_DNS_NOERROR &&
                        set->ad;
    }
    r->q_addr = xf_dns_query_a_aaaa(r->w->dns, r->cand[r->i_cand].host, on_addr, r);
    if (r->q_addr == 0) {
        add_trail(r, "bad host name");
        r->i_cand++;
        start_candidate(r);                    /* bounded by MAX_CANDIDATES */
    }
}

void xf_remote_on_srv(void *ud, uint64_t id, const xf_dns_result *res)
{
    xf_remote *r = ud;
    int i = id == r->q_srv[0] ? 0 : 1;
    r->q_srv[i] = 0;
    if (r->closed)
        return;
    if (xf_dns_result_copy(&r->srv[i], res) != 0) {
        xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    r->srv_done[i] = 1;
    if (!r->srv_done[0] || !r->srv_done[1])
        return;
    xf_srv_answer a[2];
    xf_dns_srv_answer(&r->srv[0], &a[0]);
    xf_dns_srv_answer(&r->srv[1], &a[1]);
    int n = xf_srv_order(r->domain, &a[0], &a[1], NULL, NULL, r->cand, MAX_CANDIDATES);
    if (n == XF_SRV_NO_SERVICE) {
        xf_remote_fail(r, XF_DB_ERR_REMOTE_SERVER_NOT_FOUND,
                       "%s has no xmpp-server service (SRV target '.')", r->domain);
        return;
    }
    if (n < 0) {
        int bogus = r->ad_trusted && (r->srv[0].status == XF_DNS_SERVFAIL ||
                                      r->srv[1].status == XF_DNS_SERVFAIL);
        if (bogus)
            xf_warn("remote %s->%s: SRV answer bogus (SERVFAIL from the validating resolver): "
                    "aborted, no fallback (RFC 7673 §3.1)", r->t->domain, r->domain);
        xf_remote_fail(r, XF_DB_ERR_REMOTE_SERVER_NOT_FOUND,
                       "SRV lookup for %s failed: xmpps %s, xmpp %s%s",
                       r->domain, xf_dns_status_name(r->srv[0].status),
                       xf_dns_status_name(r->srv[1].status),
                       bogus ? "; dane: error (SRV bogus: SERVFAIL from the validating "
                               "resolver, RFC 7673 §3.1: aborted)" : "");
        return;
    }
    r->n_cand = n;
    r->i_cand = 0;
    start_candidate(r);
}
