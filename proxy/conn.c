/*
 * conn: the inbound connection's lifecycle — the one place its state changes, its close
 * (immediate, or graceful with a stream error), its timers, accept and drain.
 * The struct, the state diagram and what the other files do: proxy/conn_int.h.
 */
/* tls_handshake_release reads mbedtls_ssl_context's handshake pointer. */
#define MBEDTLS_ALLOW_PRIVATE_ACCESS
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <mbedtls/ssl.h>
#include "proxy/conn_int.h"
#include "proxy/iplimit.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/proxyproto.h"
#include "proxy/stats.h"

static const char *state_names[] = {
    "plain-header", "plain-starttls", "tls-handshake", "tls-header",
    "backend-connect", "backend-header", "relay", "closing", "closed",
};

static unsigned live_conns;
static uint64_t next_conn_id;

unsigned xf_conn_count(void) { return __atomic_load_n(&live_conns, __ATOMIC_RELAXED); }

void xf_conn_count_adjust(int delta)
{
    if (delta > 0)
        __atomic_fetch_add(&live_conns, (unsigned)delta, __ATOMIC_RELAXED);
    else
        __atomic_fetch_sub(&live_conns, (unsigned)-delta, __ATOMIC_RELAXED);
}

/* c's place in xmppfront_connections (and, routed, its tenant's row): metrics.h. */
static void track(xf_conn *c)
{
    int s = c->service ? c->service : c->lconf->service;
    int svc = c->http ? XF_MSVC_HTTP : s == XF_SVC_CLIENT ? XF_MSVC_CLIENT
              : s == XF_SVC_SERVER ? XF_MSVC_SERVER : XF_MSVC_AUTO;
    enum xf_conn_state st = c->state;
    int ph = st <= XF_CONN_PLAIN_STARTTLS ? XF_MPH_PRE_TLS : st < XF_CONN_RELAY
             ? XF_MPH_NEGOTIATING : st == XF_CONN_RELAY ? XF_MPH_RELAYING
             : st == XF_CONN_CLOSING ? XF_MPH_CLOSING : XF_MPH_NONE;
    xf_metrics_conn_move(&c->mslot, svc, ph);
    if (st == XF_CONN_BACKEND_CONNECT && c->tenant)
        xf_metrics_tenant_enter(&c->mtenant, c->tenant->domain, svc);
    else if (st == XF_CONN_CLOSED)
        xf_metrics_tenant_leave(&c->mtenant);
}

int xf_conn_tls_select_begin(xf_conn *c)
{
    xf_tls_select *hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    hs->registry = c->sel.registry;
    hs->hint = c->sel.hint;
    hs->want_peer_cert = c->sel.want_peer_cert;
    hs->peer_ca = c->sel.peer_ca;
    c->hs = hs;
    c->sel.sni = hs->sni;                        /* the SNI callback writes it there */
    mbedtls_ssl_set_user_data_p(&c->ssl, hs);
    return 0;
}

/* mbedTLS 3.6's TLS 1.3 server keeps its handshake parameters after the handshake
   (mbedtls_ssl_tls13_handshake_wrapup switches the transforms and the session but,
   unlike TLS 1.2's wrap-up, frees nothing): the handshake struct with its transcript
   hashes and the handshake-traffic transform, ~5.7 KB per connection, until
   mbedtls_ssl_free. Nothing reads them once the handshake is over (a TLS 1.3 server
   refuses every post-handshake handshake message, ssl_msg.c; no renegotiation, no
   KeyUpdate in 3.6; tickets are written before the state is HANDSHAKE_OVER; no early
   data), so they are freed with the library's own TLS 1.2 wrap-up,
   mbedtls_ssl_handshake_wrapup_free_hs_transform: mbedtls_ssl_handshake_free (which
   frees the handshake-traffic transform too) and ssl->handshake = NULL, the state a TLS
   1.2 connection is in after its handshake; the unused transform_negotiate moves into
   ssl->transform, which mbedtls_ssl_free frees. Only for the versions this was read
   against (mbedTLS 3.6 source, ssl_tls.c / ssl_tls13_server.c / ssl_msg.c): the wrap-up
   is internal (ssl_misc.h), so it is declared here and taken weakly; a library without
   it is left alone. Never for TLS 1.2, whose ssl->handshake is already NULL (calling it
   there would free the live transform). */
#if MBEDTLS_VERSION_NUMBER >= 0x03060000 && MBEDTLS_VERSION_NUMBER < 0x03070000 && \
    defined(MBEDTLS_SSL_PROTO_TLS1_3) && !defined(MBEDTLS_SSL_EARLY_DATA)
void mbedtls_ssl_handshake_wrapup_free_hs_transform(mbedtls_ssl_context *ssl)
    __attribute__((weak));
#define XF_TLS13_RELEASE 1
#endif

static void tls_handshake_release(xf_conn *c)
{
#ifdef XF_TLS13_RELEASE
    mbedtls_ssl_context *ssl = &c->ssl;
    if (mbedtls_ssl_handshake_wrapup_free_hs_transform == NULL || !c->tls_active ||
        !mbedtls_ssl_is_handshake_over(ssl) || ssl->handshake == NULL ||
        mbedtls_ssl_get_version_number(ssl) != MBEDTLS_SSL_VERSION_TLS1_3)
        return;
    mbedtls_ssl_handshake_wrapup_free_hs_transform(ssl);
#else
    (void)c;
#endif
}

/* The handshake is over: keep the choice and the SNI (a heap copy, only when there is
   one), free the working copy. No callback reads the user data any more (no
   renegotiation, tls.h). If the copy cannot be made, c->hs stays (and the SNI with it). */
static void tls_select_end(xf_conn *c)
{
    xf_tls_select *hs = c->hs;
    if (hs == NULL)
        return;
    c->sel.chosen = hs->chosen;
    if (hs->sni[0]) {
        char *sni = strdup(hs->sni);
        if (sni == NULL)
            return;
        c->sel.sni = sni;
    } else {
        c->sel.sni = "";
    }
    mbedtls_ssl_set_user_data_p(&c->ssl, NULL);
    c->hs = NULL;
    free(hs);
}

/* The only place the state changes; asserts the move is one the diagram allows. */
void xf_conn_set_state(xf_conn *c, enum xf_conn_state to)
{
    enum xf_conn_state from = c->state;
    int ok;
    switch (to) {
    case XF_CONN_PLAIN_STARTTLS:  ok = from == XF_CONN_PLAIN_HEADER; break;
    case XF_CONN_TLS_HANDSHAKE:   ok = from == XF_CONN_PLAIN_STARTTLS; break;
    case XF_CONN_TLS_HEADER:      ok = from == XF_CONN_TLS_HANDSHAKE; break;
    case XF_CONN_BACKEND_CONNECT: ok = from == XF_CONN_TLS_HEADER ||
                                       (from == XF_CONN_PLAIN_STARTTLS && c->s2s != NULL &&
                                        !c->tls_active); break;
    case XF_CONN_BACKEND_HEADER:  ok = from == XF_CONN_BACKEND_CONNECT; break;
    case XF_CONN_RELAY:           ok = from == XF_CONN_BACKEND_HEADER; break;
    case XF_CONN_CLOSING:         ok = from < XF_CONN_CLOSING; break;
    case XF_CONN_CLOSED:          ok = from != XF_CONN_CLOSED; break;
    default:                      ok = 0; break;
    }
    assert(ok && "illegal connection state transition");
    (void)ok;
    xf_debug("conn id=%llu %s -> %s", (unsigned long long)c->id, state_names[from],
             state_names[to]);
    c->state = to;
    track(c);
    if (to == XF_CONN_TLS_HEADER) {              /* the handshake is over */
        tls_select_end(c);
        tls_handshake_release(c);
    }
    if (to == XF_CONN_BACKEND_HEADER)            /* the backend socket exists now */
        xf_conn_keepalive(&c->backend, c->config->limits.tcp_keepalive_s);
}

/* TCP keepalive (limits.tcp_keepalive_s, 0 = off): after `idle` quiet seconds the
   kernel probes every max(1, idle/6) s and gives up after XF_KEEPALIVE_PROBES
   unanswered probes, so a vanished peer is found within idle + 5 * max(1, idle/6) s
   (110 s at the default 60); the next read then fails with ETIMEDOUT. */
#define XF_KEEPALIVE_PROBES 5
void xf_conn_keepalive(uv_tcp_t *t, unsigned idle)
{
    if (idle == 0)
        return;
    if (uv_tcp_keepalive(t, 1, idle) < 0)
        return;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)t, &fd) < 0)
        return;
    int intvl = idle / 6 > 0 ? (int)(idle / 6) : 1, cnt = XF_KEEPALIVE_PROBES;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

void xf_conn_mark_authenticated(xf_conn *c)
{
    if (c->ip_unauth) {
        xf_iplimit_authenticated(&c->ipkey);
        c->ip_unauth = 0;
    }
}

const char *xf_conn_read_error_reason(xf_conn *c, const char *side, int err, char *buf,
                                      size_t cap)
{
    if (err == UV_ETIMEDOUT) {
        xf_stats_inc(XF_STAT_CLOSE_KEEPALIVE);
        snprintf(buf, cap, "peer unreachable: %s (%s side)",
                 c->config->limits.tcp_keepalive_s ? "keepalive timed out"
                                                   : "connection timed out", side);
    } else {
        snprintf(buf, cap, "%s read: %s", side, uv_strerror(err));
    }
    return buf;
}

uint64_t xf_conn_now_ms(xf_conn *c) { return uv_now(&c->w->loop); }

/* The PROXY v2 header (HAProxy proxy-protocol.txt §2.2) toward the backend: the client's
   addresses, ALPN, SNI (AUTHORITY) and the TLS version/cipher (SSL TLV, with
   PP2_CLIENT_CERT_CONN when the peer presented a certificate — inbound s2s). Returns 0,
   or -1 once c is closing. */
int xf_conn_send_proxy_header(xf_conn *c)
{
    uint8_t hdr[1024];
    xf_pp2_info info = {
        .src = (const struct sockaddr *)&c->peer_addr,
        .dst = (const struct sockaddr *)&c->local_addr,
        .authority = c->sel.sni[0] ? c->sel.sni : NULL,
    };
    if (c->tls_active) {          /* a plaintext s2s stream (policy open) has no SSL TLV */
        info.alpn = mbedtls_ssl_get_alpn_protocol(&c->ssl);
        info.ssl = 1;
        info.client_cert = mbedtls_ssl_get_peer_cert(&c->ssl) != NULL;
        info.verify = 1;
        info.ssl_version = mbedtls_ssl_get_version(&c->ssl);
        info.ssl_cipher = mbedtls_ssl_get_ciphersuite(&c->ssl);
    }
    int n = xf_pp2_encode(&info, hdr, sizeof(hdr));
    if (n < 0) {
        xf_conn_stream_error(c, "internal-server-error", NULL, "PROXY v2 header encoding failed");
        return -1;
    }
    return xf_conn_backend_send(c, (const char *)hdr, (size_t)n);
}

/* Start connecting c's backend handle to be; cb runs when connected (or failed).
   Returns 0, or -1 after answering the client with <remote-connection-failed/>. */
int xf_conn_backend_connect(xf_conn *c, const xf_backend *be, uv_connect_cb cb)
{
    int r = uv_tcp_init(&c->w->loop, &c->backend);
    if (r == 0) {
        c->backend.data = c;
        c->backend_open = 1;
        c->handles_open++;
        uv_tcp_nodelay(&c->backend, 1);
        c->connect_req.data = c;
        r = uv_tcp_connect(&c->connect_req, &c->backend, (const struct sockaddr *)&be->addr, cb);
    }
    if (r < 0) {
        char reason[200];
        snprintf(reason, sizeof(reason), "backend %s: %s", be->spec, uv_strerror(r));
        xf_metrics_inc(XF_MF_BACKEND_ERRORS, XF_MB_CONNECT_FAILED);
        xf_conn_stream_error(c, "remote-connection-failed", "backend unavailable", reason);
        return -1;
    }
    return 0;
}

static void on_auth_timeout(uv_timer_t *t);
static void on_idle_timeout(uv_timer_t *t);

/* One timer per connection. While the stream is policed (routed, not yet authenticated)
   the auth deadline bounds every timer started: whichever comes first fires. */
void xf_conn_timer_start(xf_conn *c, uint64_t ms, uv_timer_cb cb)
{
    uv_timer_stop(&c->timer);
    c->timer_is_auth = 0;
    if (c->cxml != NULL && c->state < XF_CONN_CLOSING) {
        uint64_t now = xf_conn_now_ms(c);
        uint64_t left = c->auth_deadline_ms > now ? c->auth_deadline_ms - now : 0;
        if (left <= ms) {
            ms = left;
            cb = on_auth_timeout;
            c->timer_is_auth = 1;
        }
    }
    c->timer_is_idle = cb == on_idle_timeout;
    uv_timer_start(&c->timer, cb, ms, 0);
}

/* Stop the running timer; a pending auth deadline stays armed. */
void xf_conn_timer_stop(xf_conn *c)
{
    uv_timer_stop(&c->timer);
    c->timer_is_auth = 0;
    c->timer_is_idle = 0;
    if (c->cxml != NULL && c->state < XF_CONN_CLOSING)
        xf_conn_timer_start(c, UINT64_MAX, NULL);   /* the deadline is always earlier */
}

/* RELAY, policing just ended (c->cxml is NULL): the auth deadline no longer applies;
   the timer it displaced comes back (linger for a half-closed stream, else idle). */
void xf_conn_auth_timer_done(xf_conn *c)
{
    if (!c->timer_is_auth)
        return;
    uv_timer_stop(&c->timer);
    c->timer_is_auth = 0;
    if (c->state == XF_CONN_RELAY && (c->client_eof || c->backend_eof))
        xf_conn_timer_start(c, LINGER_MS, xf_conn_on_linger_timeout);
    else
        xf_conn_relay_activity(c);
}

static const char *service_name(int s)
{
    return s == XF_SVC_CLIENT ? "client" : s == XF_SVC_SERVER ? "server" : "auto";
}

const char *xf_conn_peer(const xf_conn *c, char *out)
{
    char host[INET6_ADDRSTRLEN] = "?";
    const xf_conn_addr *a = &c->peer_addr;
    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in.sin_addr, host, sizeof(host));
        snprintf(out, XF_CONN_PEER_LEN, "%s:%d", host, ntohs(a->in.sin_port));
    } else if (a->sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, host, sizeof(host));
        snprintf(out, XF_CONN_PEER_LEN, "[%s]:%d", host, ntohs(a->in6.sin6_port));
    } else {
        snprintf(out, XF_CONN_PEER_LEN, "-");
    }
    return out;
}

/* A TCP socket's address into the compact form (anything but IPv4/IPv6 stays unset). */
static void keep_addr(xf_conn_addr *out, const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        memcpy(&out->in, ss, sizeof(out->in));
    else if (ss->ss_family == AF_INET6)
        memcpy(&out->in6, ss, sizeof(out->in6));
}

static void on_handle_closed(uv_handle_t *h)
{
    xf_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    if (c->tls_active)
        mbedtls_ssl_free(&c->ssl);
    xf_buf_free(&c->tls_in);
    xf_buf_free(&c->tls_out);
    xf_buf_free(&c->plain);
    xf_buf_free(&c->bplain);
    if (c->hs != NULL)
        free(c->hs);                        /* c->sel.sni pointed into it */
    else if (c->sel.sni[0])
        free((char *)c->sel.sni);
    xf_conn_http_free(c->http);
    xf_s2s_in_free(c->s2s);                 /* before the scanners: it may share c->cxml */
    xf_xml_free(c->xml);
    xf_xml_free(c->cxml);
    xf_worker *w = c->w;
    if (c->ip_counted)
        xf_iplimit_release(&c->ipkey, c->ip_unauth);
    xf_config_unref(c->config);
    free(c);
    __atomic_fetch_sub(&live_conns, 1, __ATOMIC_RELAXED);
    xf_worker_conn_gone(w);
}

/* Close now: one log line, every handle closed, freed after the last close callback.
   Safe to call twice; pending writes are cancelled (their callbacks see CLOSED). */
void xf_conn_close(xf_conn *c, const char *reason)
{
    if (c->state == XF_CONN_CLOSED)
        return;
    if (c->reason[0] == '\0' && reason != c->reason)
        snprintf(c->reason, sizeof(c->reason), "%s", reason);
    xf_conn_set_state(c, XF_CONN_CLOSED);

    const char *ver = "-", *cipher = "-", *alpn = NULL;
    if (c->tls_active && mbedtls_ssl_is_handshake_over(&c->ssl)) {
        ver = mbedtls_ssl_get_version(&c->ssl);
        cipher = mbedtls_ssl_get_ciphersuite(&c->ssl);
        alpn = mbedtls_ssl_get_alpn_protocol(&c->ssl);
    }
    xf_s2s_in_cancel(c->s2s);               /* no verification callbacks from now on */
    /* Fields that can carry peer-chosen text are quoted (log.h, xf_log_quote). An s2s
       stream negotiated here names its authentication and verdict (issue 7). */
    char qtenant[300], qsni[300], qalpn[80], qreason[420], s2s[1400] = "";
    char peer[XF_CONN_PEER_LEN];
    if (c->s2s != NULL) {
        char qv[1300];
        snprintf(s2s, sizeof(s2s), " auth=%s verdict=%s", xf_s2s_in_auth(c->s2s),
                 xf_log_quote(qv, sizeof(qv), xf_s2s_in_verdict(c->s2s)));
    }
    xf_info("conn id=%llu close tenant=%s service=%s listener=%s peer=%s tls=%s cipher=%s "
            "sni=%s alpn=%s in=%llu out=%llu duration_ms=%llu%s reason=%s",
            (unsigned long long)c->id,
            xf_log_quote(qtenant, sizeof(qtenant), c->tenant ? c->tenant->domain : NULL),
            c->http ? "http" : service_name(c->service ? c->service : c->lconf->service),
            c->lconf->name,
            xf_conn_peer(c, peer), ver, cipher ? cipher : "-", xf_log_quote(qsni, sizeof(qsni), c->sel.sni),
            xf_log_quote(qalpn, sizeof(qalpn), alpn), (unsigned long long)c->bytes_in,
            (unsigned long long)c->bytes_out,
            (unsigned long long)(xf_conn_now_ms(c) - c->start_ms), s2s,
            xf_log_quote(qreason, sizeof(qreason), c->reason));

    if (c->prev)
        c->prev->next = c->next;
    else
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;

    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->client, on_handle_closed);
    if (c->backend_open)
        uv_close((uv_handle_t *)&c->backend, on_handle_closed);
}

/* RELAY: both directions have ended; close once our last bytes reached the client. */
void xf_conn_maybe_close_relay(xf_conn *c)
{
    if (c->client_eof && c->backend_eof && (!c->client_shut || c->client_shut_done))
        xf_conn_close(c, c->reason);
}

void xf_conn_on_linger_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    if (c->state == XF_CONN_RELAY)             /* a half-closed stream went quiet */
        xf_conn_finish(c, c->reason[0] ? c->reason : "half-closed stream timed out");
    else
        xf_conn_close(c, c->reason[0] ? c->reason : "linger timeout");
}

/* The request is the connection's only while it runs (an idle connection carries none);
   libuv calls back, with UV_ECANCELED if need be, before the client handle's close
   callback, so c is still there. */
static void on_client_shutdown(uv_shutdown_t *req, int status)
{
    xf_conn *c = req->data;
    (void)status;
    free(req);
    if (c->state == XF_CONN_CLOSED)
        return;
    c->client_shut_done = 1;
    if (c->state == XF_CONN_CLOSING && c->client_eof)
        xf_conn_close(c, c->reason);
    else if (c->state == XF_CONN_RELAY)
        xf_conn_maybe_close_relay(c);
}

/* Our side of the public stream is done: close_notify when TLS is up, then FIN once
   every queued byte is written (uv_shutdown waits for the write queue). */
void xf_conn_shutdown_client(xf_conn *c)
{
    if (c->client_shut)
        return;
    if (c->tls_active && mbedtls_ssl_is_handshake_over(&c->ssl)) {
        mbedtls_ssl_close_notify(&c->ssl);
        xf_conn_flush_tls_out(c);
    }
    c->client_shut = 1;
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req != NULL) {
        req->data = c;
        if (uv_shutdown(req, (uv_stream_t *)&c->client, on_client_shutdown) == 0)
            return;
        free(req);
    }
    c->client_shut_done = 1;                   /* nothing to wait for (or no memory to) */
}

/* Close gracefully (RFC 6120 §4.4): drop the backend, send what is queued (e.g. a
   stream error) and close_notify, then keep reading and discarding until the client
   closes too, bounded by LINGER_MS. */
void xf_conn_finish(xf_conn *c, const char *reason)
{
    if (c->state >= XF_CONN_CLOSING)
        return;
    if (reason != c->reason)                  /* the linger timer passes c->reason itself */
        snprintf(c->reason, sizeof(c->reason), "%s", reason);
    xf_conn_set_state(c, XF_CONN_CLOSING);
    if (c->backend_open) {
        uv_read_stop((uv_stream_t *)&c->backend);
        uv_close((uv_handle_t *)&c->backend, on_handle_closed);
        c->backend_open = 0;
    }
    if (c->client_paused && !c->client_eof) {
        c->client_paused = 0;
        uv_read_start((uv_stream_t *)&c->client, xf_conn_alloc_buf, xf_conn_on_client_read);
    }
    xf_conn_shutdown_client(c);
    if (c->client_eof && c->client_shut_done) {
        xf_conn_close(c, c->reason);
        return;
    }
    xf_conn_timer_start(c, LINGER_MS, xf_conn_on_linger_timeout);
}

/* RFC 6120 §4.9.1: a stream error is preceded by a response header when the current
   stream has none yet, and followed by </stream:stream>; then the stream is closed. */
void xf_conn_stream_error(xf_conn *c, const char *cond, const char *text, const char *reason)
{
    xf_metrics_refusal(cond);
    if (c->http != NULL) {                   /* no XML on the HTTP side: a status */
        xf_conn_http_fail(c, cond, reason);
        return;
    }
    char out[1024];
    int n = 0;
    if (!c->header_sent) {
        const char *from = c->tenant ? c->tenant->domain : "";
        int ns = c->stream_ns ? c->stream_ns
               : c->lconf->service == XF_SVC_SERVER ? XF_XML_NS_SERVER : XF_XML_NS_CLIENT;
        char id[40];
        xf_xml_new_id(id, sizeof(id));
        n = xf_xml_write_header(out, sizeof(out), ns, from, NULL, id, "1.0");
        if (n < 0)
            n = 0;
        c->header_sent = 1;
    }
    int m = xf_xml_write_error(out + n, sizeof(out) - (size_t)n, cond, text);
    if (m > 0)
        n += m;
    char r[200];
    snprintf(r, sizeof(r), "stream error %s: %s", cond, reason);
    xf_debug("conn id=%llu sending <%s/>", (unsigned long long)c->id, cond);
    if (xf_conn_client_send(c, out, (size_t)n) < 0)
        return;                               /* already closed */
    xf_conn_finish(c, r);
}

static void on_handshake_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    if (c->state == XF_CONN_TLS_HANDSHAKE) {
        /* No XML inside an unfinished TLS handshake: just close (RFC 6120 §5.4.3.2). */
        xf_conn_close(c, "TLS handshake timeout");
        return;
    }
    xf_conn_stream_error(c, "connection-timeout", NULL, "negotiation not complete within the handshake timeout");
}

void xf_conn_handshake_timer_start(xf_conn *c)
{
    xf_conn_timer_start(c, (uint64_t)c->config->limits.handshake_timeout_s * 1000,
                        on_handshake_timeout);
}

/* The idle timer is not restarted on every read (a timer heap removal and insertion
   per read, in both directions): xf_conn_relay_activity only notes the time, and the
   timer, when it fires, waits again for what is left since the last activity. */
static void on_idle_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    uint64_t due = c->idle_from_ms + (uint64_t)c->config->limits.idle_timeout_s * 1000;
    uint64_t now = xf_conn_now_ms(c);
    if (c->state == XF_CONN_RELAY && due > now) {
        xf_conn_timer_start(c, due - now, on_idle_timeout);
        return;
    }
    xf_conn_close(c, "idle timeout");
}

/* RELAY: bytes moved; push the idle deadline back (limits.idle_timeout_s, 0 = none).
   Half-closed streams run on the linger timer instead. */
void xf_conn_relay_activity(xf_conn *c)
{
    unsigned idle = c->config->limits.idle_timeout_s;
    if (idle && c->state == XF_CONN_RELAY && !c->client_eof && !c->backend_eof) {
        c->idle_from_ms = xf_conn_now_ms(c);
        if (!c->timer_is_idle || !uv_is_active((uv_handle_t *)&c->timer))
            xf_conn_timer_start(c, (uint64_t)idle * 1000, on_idle_timeout);
    }
}

/* limits.auth_timeout_s since routing and the backend has not said SASL <success/> or
   <db:result type='valid'/>: <connection-timeout/> (RFC 6120 §4.9.3.4); the stream error
   path drops the backend. */
static void on_auth_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    c->timer_is_auth = 0;
    if (c->state >= XF_CONN_CLOSING)
        return;
    xf_conn_stream_error(c, "connection-timeout", NULL, "not authenticated within auth_timeout_s");
}

void xf_conn_on_backend_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    xf_metrics_inc(XF_MF_BACKEND_ERRORS, XF_MB_TIMEOUT);
    xf_conn_stream_error(c, "remote-connection-failed", "backend unavailable", "backend did not answer in time");
}

/* Fault injection for the tests only: XF_TEST_FAIL_CONN_ALLOC="N[,M...]" makes the Nth
   (Mth, ...) connection allocation of the process (counting from 1) fail, as if calloc
   had returned NULL. Never set it in production; see docs/configuration.md. */
#define XF_FAULT_MAX 16
static unsigned fault_at[XF_FAULT_MAX], n_faults;
static unsigned conn_allocs;
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

static void fault_init(void)
{
    const char *e = getenv("XF_TEST_FAIL_CONN_ALLOC");
    while (e && *e && n_faults < XF_FAULT_MAX) {
        char *end;
        unsigned long v = strtoul(e, &end, 10);
        if (end == e)
            break;
        if (v > 0 && v <= 0xffffffffu)
            fault_at[n_faults++] = (unsigned)v;
        e = *end == ',' ? end + 1 : end;
    }
    if (n_faults)
        xf_warn("XF_TEST_FAIL_CONN_ALLOC is set: %u connection allocations will fail "
                "(fault injection for tests)", n_faults);
}

static xf_conn *conn_alloc(void)
{
    pthread_once(&fault_once, fault_init);
    unsigned nth = __atomic_add_fetch(&conn_allocs, 1, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < n_faults; i++)
        if (fault_at[i] == nth)
            return NULL;
    return calloc(1, sizeof(xf_conn));
}

/* Refuse at accept with a counted reason. */
static void refuse(xf_conn *c, enum xf_stat stat, const char *reason)
{
    xf_stats_inc(stat);
    xf_conn_close(c, reason);
}

void xf_conn_accept(xf_listener *l)
{
    xf_worker *w = l->worker;
    xf_conn *c = conn_alloc();
    if (c == NULL) {
        /* The pending connection must still be taken off the listener, or libuv stops
           polling it: the worker's listener would be stuck. */
        xf_listener_discard(l, "connection state");
        return;
    }
    c->w = w;
    c->lconf = l->conf;
    c->config = xf_config_ref(w->config);
    c->state = l->conf->tls == XF_TLS_DIRECT ? XF_CONN_TLS_HANDSHAKE : XF_CONN_PLAIN_HEADER;
    c->id = __atomic_add_fetch(&next_conn_id, 1, __ATOMIC_RELAXED);
    c->start_ms = uv_now(&w->loop);
    c->sel.sni = "";
    uv_tcp_init(&w->loop, &c->client);
    uv_timer_init(&w->loop, &c->timer);
    c->client.data = c->timer.data = c;
    c->handles_open = 2;
    __atomic_fetch_add(&live_conns, 1, __ATOMIC_RELAXED);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    if (++w->n_conns > w->peak_conns)
        w->peak_conns = w->n_conns;

    int r = uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->client);
    if (r < 0) {
        char reason[100];
        snprintf(reason, sizeof(reason), "accept: %s", uv_strerror(r));
        xf_conn_close(c, reason);
        return;
    }
    xf_metrics_inc(XF_MF_ACCEPTED, l->conf->service == XF_SVC_CLIENT ? XF_MSVC_CLIENT
                   : l->conf->service == XF_SVC_SERVER ? XF_MSVC_SERVER : XF_MSVC_AUTO);
    track(c);
    struct sockaddr_storage peer_ss, local_ss;
    memset(&peer_ss, 0, sizeof(peer_ss));
    memset(&local_ss, 0, sizeof(local_ss));
    int len = sizeof(peer_ss);
    uv_tcp_getpeername(&c->client, (struct sockaddr *)&peer_ss, &len);
    len = sizeof(local_ss);
    uv_tcp_getsockname(&c->client, (struct sockaddr *)&local_ss, &len);
    keep_addr(&c->peer_addr, &peer_ss);
    keep_addr(&c->local_addr, &local_ss);
    uv_tcp_nodelay(&c->client, 1);

    const xf_limits *lim = &c->config->limits;
    xf_conn_keepalive(&c->client, lim->tcp_keepalive_s);
    if (lim->max_connections && xf_conn_count() > lim->max_connections) {
        refuse(c, XF_STAT_REFUSED_GLOBAL, "refused: max_connections reached");
        return;
    }
    if ((lim->max_connections_per_ip || lim->max_unauthenticated_per_ip) &&
        xf_iplimit_key(&peer_ss, lim->ipv6_prefix, &c->ipkey) == 0) {
        r = xf_iplimit_acquire(&c->ipkey, lim->max_connections_per_ip,
                               lim->max_unauthenticated_per_ip);
        if (r == XF_IPLIMIT_OVER_TOTAL) {
            refuse(c, XF_STAT_REFUSED_PER_IP, "refused: max_connections_per_ip reached");
            return;
        }
        if (r == XF_IPLIMIT_OVER_UNAUTH) {
            refuse(c, XF_STAT_REFUSED_UNAUTH_PER_IP,
                   "refused: max_unauthenticated_per_ip reached");
            return;
        }
        if (r < 0) {
            refuse(c, XF_STAT_ACCEPT_ALLOC_FAILED, "out of memory at accept");
            return;
        }
        c->ip_counted = c->ip_unauth = 1;
    }
    c->xml = xf_xml_new(lim->max_header_bytes, lim->max_header_bytes);
    if (c->xml == NULL) {
        refuse(c, XF_STAT_ACCEPT_ALLOC_FAILED, "out of memory at accept");
        return;
    }
    if (c->state == XF_CONN_TLS_HANDSHAKE &&
        (r = xf_conn_tls_setup(c)) != 0) {
        char e[100], reason[160];
        snprintf(reason, sizeof(reason), "TLS setup: %s", xf_tls_strerror(r, e, sizeof(e)));
        xf_conn_close(c, reason);
        return;
    }
    xf_conn_timer_start(c, (uint64_t)lim->handshake_timeout_s * 1000, on_handshake_timeout);
    r = uv_read_start((uv_stream_t *)&c->client, xf_conn_alloc_buf, xf_conn_on_client_read);
    if (r < 0)
        xf_conn_close(c, uv_strerror(r));
}

/* SIGTERM: streams still negotiating get <system-shutdown/> (RFC 6120 §4.9.3.20);
   routed and relaying streams are left to finish until the drain deadline. */
void xf_conn_drain(xf_worker *w)
{
    xf_conn *next;
    for (xf_conn *c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == XF_CONN_TLS_HANDSHAKE)
            xf_conn_close(c, "shutdown during TLS handshake");
        else if (c->state < XF_CONN_BACKEND_CONNECT)
            xf_conn_stream_error(c, "system-shutdown", NULL, "shutdown before the stream was routed");
    }
}

void xf_conn_close_all(xf_worker *w, const char *reason)
{
    while (w->conns)
        xf_conn_close(w->conns, reason);
}
