/*
 * conn: the inbound connection state machine.
 *
 *   STARTTLS listener                          direct-TLS listener
 *   PLAIN_HEADER --header--> PLAIN_STARTTLS     |
 *        --<starttls/>--> TLS_HANDSHAKE  <------+
 *   TLS_HANDSHAKE --done--> TLS_HEADER --header, routed--> BACKEND_CONNECT
 *   BACKEND_CONNECT --connected--> BACKEND_HEADER --backend features--> RELAY
 *   any --stream error / timeout / peer gone--> CLOSING --> CLOSED
 *
 * The public side's ciphertext goes through two buffers (tls_in, tls_out) that the
 * mbedTLS BIO callbacks read and fill; everything above TLS sees plaintext only.
 * Before RELAY, plaintext is kept (plain, bplain) and scanned with xmlstream; in RELAY
 * bytes are copied straight through, with backpressure by watermarks in both
 * directions (design.md §4).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <mbedtls/ssl.h>
#include "certs/identity.h"
#include "proxy/buf.h"
#include "proxy/conn.h"
#include "proxy/iplimit.h"
#include "proxy/log.h"
#include "proxy/proxyproto.h"
#include "proxy/xmlstream.h"

enum xf_conn_state {
    XF_CONN_PLAIN_HEADER,       /* STARTTLS port: awaiting the initial stream header */
    XF_CONN_PLAIN_STARTTLS,     /* header and features sent: awaiting <starttls/> */
    XF_CONN_TLS_HANDSHAKE,
    XF_CONN_TLS_HEADER,         /* awaiting the stream header inside TLS */
    XF_CONN_BACKEND_CONNECT,    /* routed: connecting to the tenant's backend */
    XF_CONN_BACKEND_HEADER,     /* backend connected: awaiting its header and features */
    XF_CONN_RELAY,              /* bytes both ways */
    XF_CONN_CLOSING,            /* flushing the last bytes, then CLOSED */
    XF_CONN_CLOSED,             /* handles closing; freed when the last one is closed */
};

static const char *state_names[] = {
    "plain-header", "plain-starttls", "tls-handshake", "tls-header",
    "backend-connect", "backend-header", "relay", "closing", "closed",
};

#define READ_CHUNK 16384
#define LINGER_MS 5000           /* bound on flushing and half-closed streams */
#define BACKEND_SCAN_LIMIT 65536 /* backend header / element size while we scan it */
#define XF_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define XF_NS_DIALBACK "jabber:server:dialback"

typedef struct xf_conn {
    struct xf_conn *next, *prev;            /* worker's list */
    uint64_t id;
    xf_worker *w;
    const xf_listener_conf *lconf;
    xf_config *config;                      /* snapshot reference */
    enum xf_conn_state state;

    uv_tcp_t client, backend;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_shutdown_t client_shut_req, backend_shut_req;
    int handles_open;                       /* close callbacks still to come */
    int backend_open;                       /* backend handle initialised */

    mbedtls_ssl_context ssl;
    int tls_active;                         /* ssl is set up */
    xf_tls_select sel;
    xf_buf tls_in, tls_out;                 /* public-side ciphertext */

    xf_xml *xml;                            /* scanner of the current stream, pre-RELAY */
    xf_buf plain;                           /* client plaintext not yet forwarded */
    xf_buf bplain;                          /* backend bytes not yet forwarded */
    uint64_t bheader_end;                   /* end of the backend's header in bplain */
    int stream_ns;                          /* enum xf_xml_ns of the client stream, 0 = unknown */
    int header_sent;                        /* we answered the current client stream header */
    const xf_tenant *tenant;
    int service;                            /* XF_SVC_CLIENT / XF_SVC_SERVER once routed */

    size_t client_queued, backend_queued;   /* bytes handed to uv_write, not yet done */
    int client_paused, backend_paused;      /* reads stopped by backpressure */
    int client_eof, backend_eof;            /* that side sent FIN / close_notify */
    int client_shut, backend_shut;          /* we asked to shut down our write side */
    int client_shut_done;                   /* ... and the client's has completed */
    int ip_counted;                         /* holds a per-address slot */
    int skip_ws_before_tls;                 /* after <proceed/>, until the first TLS byte */
    struct {                                /* TLS 1.2 record headers after the handshake */
        int on;
        unsigned have;
        uint8_t hdr[5];
        size_t body_left;
    } recs;

    uint64_t bytes_in, bytes_out;           /* public-side plaintext, each way */
    uint64_t start_ms;
    struct sockaddr_storage peer_addr, local_addr;
    char peer[64];
    char reason[200];
} xf_conn;

typedef struct xf_wreq {
    uv_write_t req;
    xf_conn *c;
    int to_backend;
    size_t len;
    char data[];
} xf_wreq;

static unsigned live_conns;
static uint64_t next_conn_id;

unsigned xf_conn_count(void) { return __atomic_load_n(&live_conns, __ATOMIC_RELAXED); }

static void conn_close(xf_conn *c, const char *reason);
static void conn_finish(xf_conn *c, const char *reason);
static void stream_error(xf_conn *c, const char *cond, const char *text, const char *reason);
static void tls_pump(xf_conn *c);
static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_backend_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* ---------------------------------------------------------------- state machine */

/* The only place the state changes; asserts the move is one the diagram allows. */
static void set_state(xf_conn *c, enum xf_conn_state to)
{
    enum xf_conn_state from = c->state;
    int ok;
    switch (to) {
    case XF_CONN_PLAIN_STARTTLS:  ok = from == XF_CONN_PLAIN_HEADER; break;
    case XF_CONN_TLS_HANDSHAKE:   ok = from == XF_CONN_PLAIN_STARTTLS; break;
    case XF_CONN_TLS_HEADER:      ok = from == XF_CONN_TLS_HANDSHAKE; break;
    case XF_CONN_BACKEND_CONNECT: ok = from == XF_CONN_TLS_HEADER; break;
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
}


/* ---------------------------------------------------------------- helpers */

static uint64_t now_ms(xf_conn *c) { return uv_now(&c->w->loop); }

static void timer_start(xf_conn *c, uint64_t ms, uv_timer_cb cb)
{
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, cb, ms, 0);
}

static const char *service_name(int s)
{
    return s == XF_SVC_CLIENT ? "client" : s == XF_SVC_SERVER ? "server" : "auto";
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%d", host, port);
    } else {
        snprintf(out, cap, "?");
    }
}

/* ---------------------------------------------------------------- writes */

static void resume_client(xf_conn *c);
static void resume_backend(xf_conn *c);

/* Completion of a write to either side. Resumes reading from the other side once this
   side's backlog is below the low watermark (style.md §12). */
static void on_write_done(uv_write_t *req, int status)
{
    xf_wreq *wr = (xf_wreq *)req;
    xf_conn *c = wr->c;
    int to_backend = wr->to_backend;
    if (to_backend)
        c->backend_queued -= wr->len;
    else
        c->client_queued -= wr->len;
    free(wr);
    if (c->state == XF_CONN_CLOSED || status == UV_ECANCELED)
        return;                               /* a close cancelled it */
    if (status < 0 && to_backend && c->state == XF_CONN_CLOSING)
        return;                               /* the backend is being dropped anyway */
    if (status < 0) {
        char r[120];
        snprintf(r, sizeof(r), "write to %s failed: %s", to_backend ? "backend" : "client",
                 uv_strerror(status));
        conn_close(c, r);
        return;
    }
    unsigned low = c->config->limits.buffer_low_bytes;
    if (to_backend && c->client_paused && c->backend_queued <= low)
        resume_client(c);
    else if (!to_backend && c->backend_paused && c->client_queued <= low)
        resume_backend(c);
}

/* Queue bytes on one side; the request owns a copy (style.md §13). */
static int raw_write(xf_conn *c, int to_backend, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    xf_wreq *wr = malloc(sizeof(*wr) + len);
    if (wr == NULL)
        return UV_ENOMEM;
    wr->c = c;
    wr->to_backend = to_backend;
    wr->len = len;
    memcpy(wr->data, data, len);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    int r = uv_write(&wr->req, (uv_stream_t *)(to_backend ? &c->backend : &c->client), &b, 1,
                     on_write_done);
    if (r < 0) {
        free(wr);
        return r;
    }
    if (to_backend)
        c->backend_queued += len;
    else
        c->client_queued += len;
    return 0;
}

/* Hand the ciphertext mbedTLS produced to the client socket. */
static int flush_tls_out(xf_conn *c)
{
    size_t n = xf_buf_size(&c->tls_out);
    if (n == 0)
        return 0;
    int r = raw_write(c, 0, xf_buf_head(&c->tls_out), n);
    xf_buf_consume(&c->tls_out, n);
    return r;
}

static void pause_client(xf_conn *c)
{
    if (!c->client_paused) {
        c->client_paused = 1;
        uv_read_stop((uv_stream_t *)&c->client);
    }
}

static void pause_backend(xf_conn *c)
{
    if (!c->backend_paused) {
        c->backend_paused = 1;
        uv_read_stop((uv_stream_t *)&c->backend);
    }
}

/* Plaintext to the client: through TLS once it is up, else as is (pre-STARTTLS).
   Returns 0, or -1 after closing the connection. */
static int client_send(xf_conn *c, const char *data, size_t len)
{
    if (c->tls_active) {
        size_t done = 0;
        while (done < len) {
            int r = mbedtls_ssl_write(&c->ssl, (const unsigned char *)data + done, len - done);
            if (r < 0) {
                char e[100], reason[160];
                snprintf(reason, sizeof(reason), "TLS write failed: %s",
                         xf_tls_strerror(r, e, sizeof(e)));
                conn_close(c, reason);
                return -1;
            }
            done += (size_t)r;
        }
        if (flush_tls_out(c) < 0) {
            conn_close(c, "client write failed");
            return -1;
        }
    } else if (raw_write(c, 0, data, len) < 0) {
        conn_close(c, "client write failed");
        return -1;
    }
    c->bytes_out += len;
    if (c->client_queued > c->config->limits.buffer_high_bytes && c->backend_open)
        pause_backend(c);
    return 0;
}

static int backend_send(xf_conn *c, const char *data, size_t len)
{
    if (raw_write(c, 1, data, len) < 0) {
        conn_close(c, "backend write failed");
        return -1;
    }
    if (c->backend_queued > c->config->limits.buffer_high_bytes)
        pause_client(c);
    return 0;
}

/* ---------------------------------------------------------------- TLS BIO */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    xf_conn *c = ctx;
    if (xf_buf_append(&c->tls_out, buf, len) < 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    xf_conn *c = ctx;
    size_t n = xf_buf_size(&c->tls_in);
    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > len)
        n = len;
    memcpy(buf, xf_buf_head(&c->tls_in), n);
    xf_buf_consume(&c->tls_in, n);
    return (int)n;
}

static int tls_setup(xf_conn *c)
{
    mbedtls_ssl_init(&c->ssl);
    c->tls_active = 1;
    int r = mbedtls_ssl_setup(&c->ssl, xf_tls_config(c->w->tls, c->lconf->service));
    if (r != 0)
        return r;
    c->sel.registry = c->config->registry;
    mbedtls_ssl_set_user_data_p(&c->ssl, &c->sel);
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    return 0;
}

/* TLS 1.2 has no handshake messages from the client once the handshake is over except a
   renegotiating ClientHello, and records show their content type in clear. mbedTLS
   answers an unsupported renegotiation with a warning alert and carries on; RFC 6120
   §5.4.3.3 (spec-digest §1.3) wants the TCP connection closed. So the client's record
   headers are followed; returns 1 when a handshake record (type 22) appears.
   TLS 1.3 hides record types and has no renegotiation. */
static int renegotiation_seen(xf_conn *c, const unsigned char *p, size_t n)
{
    while (n > 0) {
        if (c->recs.body_left > 0) {
            size_t k = n < c->recs.body_left ? n : c->recs.body_left;
            c->recs.body_left -= k;
            p += k;
            n -= k;
            continue;
        }
        c->recs.hdr[c->recs.have++] = *p++;
        n--;
        if (c->recs.have == 5) {
            c->recs.have = 0;
            if (c->recs.hdr[0] == MBEDTLS_SSL_MSG_HANDSHAKE)
                return 1;
            c->recs.body_left = ((size_t)c->recs.hdr[3] << 8) | c->recs.hdr[4];
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- close */

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
    xf_xml_free(c->xml);
    xf_worker *w = c->w;
    if (c->ip_counted)
        xf_iplimit_release(&c->peer_addr);
    xf_config_unref(c->config);
    free(c);
    __atomic_fetch_sub(&live_conns, 1, __ATOMIC_RELAXED);
    xf_worker_conn_gone(w);
}

/* Close now: one log line, every handle closed, freed after the last close callback.
   Safe to call twice; pending writes are cancelled (their callbacks see CLOSED). */
static void conn_close(xf_conn *c, const char *reason)
{
    if (c->state == XF_CONN_CLOSED)
        return;
    if (c->reason[0] == '\0')
        snprintf(c->reason, sizeof(c->reason), "%s", reason);
    set_state(c, XF_CONN_CLOSED);

    const char *ver = "-", *cipher = "-", *alpn = NULL;
    if (c->tls_active && mbedtls_ssl_is_handshake_over(&c->ssl)) {
        ver = mbedtls_ssl_get_version(&c->ssl);
        cipher = mbedtls_ssl_get_ciphersuite(&c->ssl);
        alpn = mbedtls_ssl_get_alpn_protocol(&c->ssl);
    }
    xf_info("conn id=%llu close tenant=%s service=%s listener=%s peer=%s tls=%s cipher=%s "
            "sni=%s alpn=%s in=%llu out=%llu duration_ms=%llu reason=\"%s\"",
            (unsigned long long)c->id, c->tenant ? c->tenant->domain : "-",
            service_name(c->service ? c->service : c->lconf->service), c->lconf->name,
            c->peer, ver, cipher ? cipher : "-", c->sel.sni[0] ? c->sel.sni : "-",
            alpn ? alpn : "-", (unsigned long long)c->bytes_in,
            (unsigned long long)c->bytes_out,
            (unsigned long long)(now_ms(c) - c->start_ms), c->reason);

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

static void conn_finish(xf_conn *c, const char *reason);

/* RELAY: both directions have ended; close once our last bytes reached the client. */
static void maybe_close_relay(xf_conn *c)
{
    if (c->client_eof && c->backend_eof && (!c->client_shut || c->client_shut_done))
        conn_close(c, c->reason);
}

static void on_linger_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    if (c->state == XF_CONN_RELAY)             /* a half-closed stream went quiet */
        conn_finish(c, c->reason[0] ? c->reason : "half-closed stream timed out");
    else
        conn_close(c, c->reason[0] ? c->reason : "linger timeout");
}

static void on_client_shutdown(uv_shutdown_t *req, int status)
{
    xf_conn *c = req->data;
    (void)status;
    if (c->state == XF_CONN_CLOSED)
        return;
    c->client_shut_done = 1;
    if (c->state == XF_CONN_CLOSING && c->client_eof)
        conn_close(c, c->reason);
    else if (c->state == XF_CONN_RELAY)
        maybe_close_relay(c);
}

/* Our side of the public stream is done: close_notify when TLS is up, then FIN once
   every queued byte is written (uv_shutdown waits for the write queue). */
static void shutdown_client(xf_conn *c)
{
    if (c->client_shut)
        return;
    if (c->tls_active && mbedtls_ssl_is_handshake_over(&c->ssl)) {
        mbedtls_ssl_close_notify(&c->ssl);
        flush_tls_out(c);
    }
    c->client_shut = 1;
    c->client_shut_req.data = c;
    if (uv_shutdown(&c->client_shut_req, (uv_stream_t *)&c->client, on_client_shutdown) < 0)
        c->client_shut_done = 1;               /* nothing to wait for */
}

/* Close gracefully (RFC 6120 §4.4): drop the backend, send what is queued (e.g. a
   stream error) and close_notify, then keep reading and discarding until the client
   closes too, bounded by LINGER_MS. */
static void conn_finish(xf_conn *c, const char *reason)
{
    if (c->state >= XF_CONN_CLOSING)
        return;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    set_state(c, XF_CONN_CLOSING);
    if (c->backend_open) {
        uv_read_stop((uv_stream_t *)&c->backend);
        uv_close((uv_handle_t *)&c->backend, on_handle_closed);
        c->backend_open = 0;
    }
    if (c->client_paused && !c->client_eof) {
        c->client_paused = 0;
        uv_read_start((uv_stream_t *)&c->client, alloc_buf, on_client_read);
    }
    shutdown_client(c);
    if (c->client_eof && c->client_shut_done) {
        conn_close(c, c->reason);
        return;
    }
    timer_start(c, LINGER_MS, on_linger_timeout);
}

/* RFC 6120 §4.9.1: a stream error is preceded by a response header when the current
   stream has none yet, and followed by </stream:stream>; then the stream is closed. */
static void stream_error(xf_conn *c, const char *cond, const char *text, const char *reason)
{
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
    if (client_send(c, out, (size_t)n) < 0)
        return;                               /* already closed */
    conn_finish(c, r);
}

/* ---------------------------------------------------------------- timers */

static void on_handshake_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    if (c->state == XF_CONN_TLS_HANDSHAKE) {
        /* No XML inside an unfinished TLS handshake: just close (RFC 6120 §5.4.3.2). */
        conn_close(c, "TLS handshake timeout");
        return;
    }
    stream_error(c, "connection-timeout", NULL, "negotiation not complete within the handshake timeout");
}

static void on_idle_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    conn_close(c, "idle timeout");
}

/* RELAY: bytes moved; push the idle deadline back (limits.idle_timeout_s, 0 = none).
   Half-closed streams run on the linger timer instead. */
static void relay_activity(xf_conn *c)
{
    unsigned idle = c->config->limits.idle_timeout_s;
    if (idle && c->state == XF_CONN_RELAY && !c->client_eof && !c->backend_eof)
        timer_start(c, (uint64_t)idle * 1000, on_idle_timeout);
}

static void on_backend_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    stream_error(c, "remote-connection-failed", "backend unavailable", "backend did not answer in time");
}

/* ---------------------------------------------------------------- stream header checks */

static int version_ok(const char *v)
{
    /* RFC 6120 §4.7.5: major.minor as integers; no version means 0.9. */
    if (v == NULL)
        return 0;
    char *end;
    long major = strtol(v, &end, 10);
    return end != v && *end == '.' && major >= 1;
}

/* Note the tenant the stream's `to` names (NULL if none), so that every answer to this
   header, errors included, comes from it (RFC 6120 §4.7.1, §4.9.1.3) and the log
   names it. */
static void note_tenant(xf_conn *c, const char *to)
{
    c->tenant = to ? xf_registry_find(c->config->registry, to) : NULL;
}

/* The noted tenant, or NULL after answering <host-unknown/> (RFC 6120 §4.9.3.6). */
static const xf_tenant *hosted_tenant(xf_conn *c, const char *to)
{
    if (c->tenant == NULL) {
        char r[200];
        snprintf(r, sizeof(r), "to '%.100s' is not hosted here", to ? to : "(none)");
        stream_error(c, "host-unknown", NULL, r);
    }
    return c->tenant;
}

/* Pre-TLS header on a STARTTLS listener: answer with our header and the STARTTLS-only
   features (RFC 6120 §5.3.1, §5.4.1). */
static void on_plain_header(xf_conn *c, const xf_xml_event *ev)
{
    c->stream_ns = ev->ns;
    note_tenant(c, ev->to);
    int want = c->lconf->service;
    if (ev->ns == XF_XML_NS_NONE) {
        stream_error(c, "invalid-namespace", NULL, "stream header without a content namespace");
        return;
    }
    if ((want == XF_SVC_CLIENT && ev->ns != XF_XML_NS_CLIENT) ||
        (want == XF_SVC_SERVER && ev->ns != XF_XML_NS_SERVER)) {
        stream_error(c, "invalid-namespace", NULL, "stream namespace does not fit the listener");
        return;
    }
    const xf_tenant *t = hosted_tenant(c, ev->to);
    if (t == NULL)
        return;
    c->sel.hint = t;
    if (!version_ok(ev->version)) {
        stream_error(c, "unsupported-version", "TLS is required; version 1.0 streams only",
                     "stream without version 1.0");
        return;
    }
    static const char features[] =
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
        "</starttls></stream:features>";
    /* The peer's `from` is echoed (escaped, so up to 6x longer): the header gets what
       is left after the features, and a header that does not fit is refused. */
    char out[4096], id[40];
    xf_xml_new_id(id, sizeof(id));
    const char *to = (ev->ns == XF_XML_NS_SERVER) ? ev->from : NULL;
    int n = xf_xml_write_header(out, sizeof(out) - (sizeof(features) - 1), ev->ns, t->domain,
                                to, id, "1.0");
    if (n < 0) {
        stream_error(c, "improper-addressing", "from is too long", "header from too long");
        return;
    }
    memcpy(out + n, features, sizeof(features) - 1);
    n += (int)sizeof(features) - 1;
    c->header_sent = 1;
    set_state(c, XF_CONN_PLAIN_STARTTLS);
    client_send(c, out, (size_t)n);
}

/* <starttls/> received: answer <proceed/>, and hand whatever followed it to TLS as
   ciphertext, never to the XML parser (RFC 6120 §5.4.3.3; spec-digest §10 case 7). */
static void on_starttls(xf_conn *c, uint64_t end)
{
    static const char proceed[] = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    if (client_send(c, proceed, sizeof(proceed) - 1) < 0)
        return;
    size_t have = xf_buf_size(&c->plain);
    if (end < have && xf_buf_append(&c->tls_in, xf_buf_head(&c->plain) + end, have - end) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    xf_buf_reset(&c->plain);
    xf_xml_reset(c->xml);
    c->skip_ws_before_tls = 1;
    c->header_sent = 0;
    c->stream_ns = 0;
    int r = tls_setup(c);
    if (r != 0) {
        char e[100], reason[160];
        snprintf(reason, sizeof(reason), "TLS setup: %s", xf_tls_strerror(r, e, sizeof(e)));
        conn_close(c, reason);
        return;
    }
    set_state(c, XF_CONN_TLS_HANDSHAKE);
    tls_pump(c);
}

static void on_backend_connected(uv_connect_t *req, int status);

/* Post-TLS header: decide tenant and service, check ALPN/SNI, connect the backend. */
static void on_tls_header(xf_conn *c, const xf_xml_event *ev)
{
    c->stream_ns = ev->ns;
    note_tenant(c, ev->to);
    if (ev->ns == XF_XML_NS_NONE) {
        stream_error(c, "invalid-namespace", NULL, "stream header without a content namespace");
        return;
    }
    const char *alpn = mbedtls_ssl_get_alpn_protocol(&c->ssl);
    int service;
    if (alpn != NULL) {
        /* RFC 7301: the negotiated protocol is binding; a contradicting namespace is
           refused (spec-digest §9, project choice). */
        service = strcmp(alpn, "xmpp-server") == 0 ? XF_SVC_SERVER : XF_SVC_CLIENT;
    } else if (c->lconf->service != XF_SVC_AUTO) {
        service = c->lconf->service;
    } else {
        service = ev->ns == XF_XML_NS_SERVER ? XF_SVC_SERVER : XF_SVC_CLIENT;
    }
    if ((service == XF_SVC_CLIENT) != (ev->ns == XF_XML_NS_CLIENT)) {
        char r[160];
        snprintf(r, sizeof(r), "stream namespace %s contradicts %s",
                 ev->ns == XF_XML_NS_CLIENT ? "jabber:client" : "jabber:server",
                 alpn ? alpn : "the listener's service");
        stream_error(c, "invalid-namespace", NULL, r);
        return;
    }
    c->service = service;
    const xf_tenant *t = hosted_tenant(c, ev->to);
    if (t == NULL)
        return;
    /* RFC 6066 §3: the application-layer name must agree with the name that chose the
       certificate (the SNI, or the pre-TLS `to` on STARTTLS): the same tenant, or a
       certificate that covers both names. Direct TLS without SNI is left alone: it got
       the default certificate, which a verifying client checks itself. */
    if ((c->sel.sni[0] || c->sel.hint) && c->sel.chosen != t &&
        !xf_identity_covers_dns(&c->sel.chosen->chain, t->domain)) {
        char r[240];
        snprintf(r, sizeof(r), "to '%.80s' does not agree with %s '%.80s'", ev->to,
                 c->sel.sni[0] ? "SNI" : "the pre-TLS to",
                 c->sel.sni[0] ? c->sel.sni : c->sel.hint->domain);
        stream_error(c, "policy-violation", "the stream's to does not match the TLS server name", r);
        return;
    }
    if (!version_ok(ev->version)) {
        stream_error(c, "unsupported-version", NULL, "stream without version 1.0");
        return;
    }
    const xf_backend *be = service == XF_SVC_SERVER ? &t->s2s : &t->c2s;
    if (be->addrlen == 0) {
        char r[160];
        snprintf(r, sizeof(r), "tenant has no %s backend", service == XF_SVC_SERVER ? "s2s" : "c2s");
        stream_error(c, "host-unknown", NULL, r);
        return;
    }
    set_state(c, XF_CONN_BACKEND_CONNECT);
    /* From here the scanner follows the backend's stream (trusted, so larger limits). */
    xf_xml_free(c->xml);
    c->xml = xf_xml_new(BACKEND_SCAN_LIMIT, BACKEND_SCAN_LIMIT);
    if (c->xml == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    int r = uv_tcp_init(&c->w->loop, &c->backend);
    if (r == 0) {
        c->backend.data = c;
        c->backend_open = 1;
        c->handles_open++;
        uv_tcp_nodelay(&c->backend, 1);
        c->connect_req.data = c;
        r = uv_tcp_connect(&c->connect_req, &c->backend, (const struct sockaddr *)&be->addr,
                           on_backend_connected);
    }
    if (r < 0) {
        char reason[160];
        snprintf(reason, sizeof(reason), "backend %s: %s", be->spec, uv_strerror(r));
        stream_error(c, "remote-connection-failed", "backend unavailable", reason);
        return;
    }
    timer_start(c, (uint64_t)c->config->limits.backend_timeout_s * 1000, on_backend_timeout);
}

/* ---------------------------------------------------------------- backend side */

static void alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    static __thread char slab[65536];
    buf->base = slab;
    buf->len = sizeof(slab);
}

static void on_backend_connected(uv_connect_t *req, int status)
{
    xf_conn *c = req->data;
    if (status == UV_ECANCELED || c->state != XF_CONN_BACKEND_CONNECT)
        return;
    const xf_backend *be = c->service == XF_SVC_SERVER ? &c->tenant->s2s : &c->tenant->c2s;
    if (status < 0) {
        char reason[160];
        snprintf(reason, sizeof(reason), "backend %s: %s", be->spec, uv_strerror(status));
        stream_error(c, "remote-connection-failed", "backend unavailable", reason);
        return;
    }
    set_state(c, XF_CONN_BACKEND_HEADER);
    if (c->tenant->proxy_protocol == XF_PP_V2) {
        uint8_t hdr[1024];
        const char *alpn = mbedtls_ssl_get_alpn_protocol(&c->ssl);
        xf_pp2_info info = {
            .src = (const struct sockaddr *)&c->peer_addr,
            .dst = (const struct sockaddr *)&c->local_addr,
            .alpn = alpn,
            .authority = c->sel.sni[0] ? c->sel.sni : NULL,
            .ssl = 1,
            .client_cert = 0,
            .verify = 1,
            .ssl_version = mbedtls_ssl_get_version(&c->ssl),
            .ssl_cipher = mbedtls_ssl_get_ciphersuite(&c->ssl),
        };
        int n = xf_pp2_encode(&info, hdr, sizeof(hdr));
        if (n < 0) {
            stream_error(c, "internal-server-error", NULL, "PROXY v2 header encoding failed");
            return;
        }
        if (backend_send(c, (const char *)hdr, (size_t)n) < 0)
            return;
    }
    /* Replay the client's header and whatever followed it. */
    if (backend_send(c, xf_buf_head(&c->plain), xf_buf_size(&c->plain)) < 0)
        return;
    xf_buf_reset(&c->plain);
    int r = uv_read_start((uv_stream_t *)&c->backend, alloc_buf, on_backend_read);
    if (r < 0) {
        stream_error(c, "remote-connection-failed", "backend unavailable", uv_strerror(r));
        return;
    }
}

/* Is ev the backend's answer that authentication is done: SASL <success/> (RFC 6120
   §6.4.6) or a dialback result (XEP-0220 §2.1.3)? */
static int auth_done(const xf_xml_event *ev)
{
    return (strcmp(ev->name, "success") == 0 && strcmp(ev->ns_uri, XF_NS_SASL) == 0) ||
           (strcmp(ev->name, "result") == 0 && strcmp(ev->ns_uri, XF_NS_DIALBACK) == 0);
}

/* RELAY before authentication. TLS is ours: a client that asks the backend for STARTTLS
   inside it (a second <starttls/>, or one on a direct TLS port) must get <failure/> and
   a closed stream (RFC 6120 §5.4.2.2; spec-digest §10 cases 8, 9), never a TLS session
   with the backend. So the backend's stream is watched until authentication ends it:
   a <proceed/> is replaced by <failure/>. `data` are the backend bytes at absolute
   offset `base`, already pushed to the scanner. Returns 0, or -1 once c is closing. */
static int backend_watch(xf_conn *c, const char *data, size_t len, uint64_t base)
{
    xf_xml_event ev;
    while (c->xml != NULL && xf_xml_next(c->xml, &ev) != XF_XML_NONE) {
        if (ev.type == XF_XML_ELEMENT && strcmp(ev.name, "proceed") == 0 &&
            strcmp(ev.ns_uri, XF_NS_TLS) == 0) {
            static const char failure[] =
                "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>";
            size_t keep = ev.span.start > base ? (size_t)(ev.span.start - base) : 0;
            if (keep > len)
                keep = len;
            if (client_send(c, data, keep) < 0 ||
                client_send(c, failure, sizeof(failure) - 1) < 0)
                return -1;
            conn_finish(c, "client asked for STARTTLS inside TLS: answered <failure/>");
            return -1;
        }
        if (ev.type != XF_XML_ELEMENT || auth_done(&ev)) {
            if (ev.type == XF_XML_ERROR)
                xf_debug("conn id=%llu stop watching the backend stream: %s",
                         (unsigned long long)c->id, ev.reason ? ev.reason : ev.error);
            xf_xml_free(c->xml);                  /* authenticated: plain relay from now */
            c->xml = NULL;
        }
    }
    return client_send(c, data, len);
}

/* BACKEND_HEADER: the backend's header and first element (its features, or a stream
   error). They go to the client with <starttls/> removed from the features, since TLS
   is ours (RFC 6120 §5.3.1: post-TLS features never offer it); then RELAY. */
static void backend_header_input(xf_conn *c, const char *data, size_t len)
{
    if (xf_buf_append(&c->bplain, data, len) < 0 || xf_xml_push(c->xml, data, len) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    xf_xml_event ev;
    do {
        if (xf_xml_next(c->xml, &ev) == XF_XML_NONE)
            return;                                   /* more input needed */
    } while (ev.type == XF_XML_HEADER);
    if (ev.type == XF_XML_ERROR) {
        char r[200];
        snprintf(r, sizeof(r), "backend sent a bad stream: %s (%s)", ev.error,
                 ev.reason ? ev.reason : "");
        stream_error(c, "internal-server-error", NULL, r);
        return;
    }
    const char *buf = xf_buf_head(&c->bplain);
    size_t size = xf_buf_size(&c->bplain);
    size_t first_end = ev.span.end < size ? (size_t)ev.span.end : size;
    size_t cut_start = 0, cut_end = 0;
    if (ev.type == XF_XML_ELEMENT && strcmp(ev.name, "features") == 0 &&
        strcmp(ev.ns_uri, XF_NS_STREAMS) == 0) {
        for (int i = 0; i < ev.n_children; i++) {
            if (strcmp(ev.children[i].name, "starttls") == 0 &&
                strcmp(ev.children[i].ns, XF_NS_TLS) == 0) {
                cut_start = (size_t)ev.children[i].span.start;
                cut_end = (size_t)ev.children[i].span.end;
            }
        }
        if (cut_end == 0 && ev.children_truncated)
            xf_warn("conn id=%llu backend features have more than %d children; a "
                    "<starttls/> among the rest would reach the client",
                    (unsigned long long)c->id, XF_XML_MAX_CHILDREN);
    }
    if (ev.type != XF_XML_ELEMENT) {                  /* the backend ended the stream */
        xf_xml_free(c->xml);
        c->xml = NULL;
    }
    uv_timer_stop(&c->timer);
    set_state(c, XF_CONN_RELAY);
    relay_activity(c);
    c->header_sent = 1;
    if (cut_end > cut_start && cut_end <= first_end) {
        if (client_send(c, buf, cut_start) < 0 ||
            client_send(c, buf + cut_end, first_end - cut_end) < 0)
            return;
    } else if (client_send(c, buf, first_end) < 0) {
        return;
    }
    /* Whatever came after the first element is watched like any later backend data. */
    if (backend_watch(c, buf + first_end, size - first_end, first_end) < 0)
        return;
    xf_buf_free(&c->bplain);
}

static void on_backend_eof(xf_conn *c)
{
    if (c->state != XF_CONN_RELAY) {
        stream_error(c, "remote-connection-failed", "backend unavailable",
                     "backend closed before answering the stream");
        return;
    }
    c->backend_eof = 1;
    if (c->reason[0] == '\0')
        snprintf(c->reason, sizeof(c->reason), "backend closed the connection");
    shutdown_client(c);                        /* half-close: flush, close_notify, FIN */
    maybe_close_relay(c);
    if (c->state == XF_CONN_RELAY)
        timer_start(c, LINGER_MS, on_linger_timeout);
}

static void on_backend_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    xf_conn *c = s->data;
    if (c->state >= XF_CONN_CLOSING || n == 0)
        return;
    if (n < 0) {
        uv_read_stop(s);
        if (n == UV_EOF) {
            on_backend_eof(c);
        } else {
            char r[120];
            snprintf(r, sizeof(r), "backend read: %s", uv_strerror((int)n));
            if (c->state == XF_CONN_RELAY)
                conn_close(c, r);
            else
                stream_error(c, "remote-connection-failed", "backend unavailable", r);
        }
        return;
    }
    if (c->state == XF_CONN_BACKEND_HEADER)
        backend_header_input(c, buf->base, (size_t)n);
    else if (c->state == XF_CONN_RELAY) {
        int r;
        if (c->xml != NULL) {
            uint64_t base = xf_xml_offset(c->xml);
            if (xf_xml_push(c->xml, buf->base, (size_t)n) < 0) {
                conn_close(c, "out of memory");
                return;
            }
            r = backend_watch(c, buf->base, (size_t)n, base);
        } else {
            r = client_send(c, buf->base, (size_t)n);
        }
        if (r == 0)
            relay_activity(c);
    }
}

static void resume_backend(xf_conn *c)
{
    c->backend_paused = 0;
    if (c->backend_open && !c->backend_eof)
        uv_read_start((uv_stream_t *)&c->backend, alloc_buf, on_backend_read);
}

/* ---------------------------------------------------------------- client side */

static void on_backend_shutdown(uv_shutdown_t *req, int status) { (void)req; (void)status; }

static void on_client_eof(xf_conn *c)
{
    if (c->state != XF_CONN_RELAY) {
        conn_close(c, c->state == XF_CONN_TLS_HANDSHAKE ? "client closed during TLS handshake"
                                                        : "client closed before the stream was set up");
        return;
    }
    c->client_eof = 1;
    uv_read_stop((uv_stream_t *)&c->client);
    if (c->reason[0] == '\0')
        snprintf(c->reason, sizeof(c->reason), "client closed the connection");
    if (!c->backend_shut) {
        c->backend_shut_req.data = c;
        if (uv_shutdown(&c->backend_shut_req, (uv_stream_t *)&c->backend, on_backend_shutdown) == 0)
            c->backend_shut = 1;
    }
    maybe_close_relay(c);
    if (c->state == XF_CONN_RELAY)
        timer_start(c, LINGER_MS, on_linger_timeout);
}

/* Plaintext from the client after TLS. */
static void client_plain_input(xf_conn *c, const char *data, size_t len)
{
    c->bytes_in += len;
    if (c->state == XF_CONN_RELAY || c->state == XF_CONN_BACKEND_HEADER) {
        if (backend_send(c, data, len) == 0)
            relay_activity(c);
        return;
    }
    if (xf_buf_append(&c->plain, data, len) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    if (c->state == XF_CONN_BACKEND_CONNECT) {
        /* Held until the backend is up; bounded like any backlog. */
        if (xf_buf_size(&c->plain) > c->config->limits.buffer_high_bytes)
            pause_client(c);
        return;
    }
    if (xf_xml_push(c->xml, data, len) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    xf_xml_event ev;
    while (c->state == XF_CONN_TLS_HEADER && xf_xml_next(c->xml, &ev) != XF_XML_NONE) {
        if (ev.type == XF_XML_HEADER) {
            on_tls_header(c, &ev);
        } else if (ev.type == XF_XML_ERROR) {
            stream_error(c, ev.error, NULL, ev.reason ? ev.reason : ev.error);
        } else {
            stream_error(c, "not-well-formed", NULL, "no stream header");
        }
    }
}

/* Drive TLS with whatever ciphertext is buffered: the handshake, then application data
   while the backend side has room. */
static void tls_pump(xf_conn *c)
{
    char e[100], reason[200];
    if (c->state == XF_CONN_TLS_HANDSHAKE && c->skip_ws_before_tls) {
        /* Some STARTTLS clients (sslscan) send "\r\n" after <starttls/>. RFC 6120
           §5.3.3 forbids whitespace there, but a TLS record never starts with
           whitespace, so dropping it is unambiguous; nothing is parsed as XML. */
        while (xf_buf_size(&c->tls_in) > 0 && strchr(" \t\r\n", *xf_buf_head(&c->tls_in)) &&
               *xf_buf_head(&c->tls_in) != '\0')
            xf_buf_consume(&c->tls_in, 1);
        if (xf_buf_size(&c->tls_in) == 0)
            return;
        c->skip_ws_before_tls = 0;
    }
    if (c->state == XF_CONN_TLS_HANDSHAKE) {
        int r = mbedtls_ssl_handshake(&c->ssl);
        flush_tls_out(c);
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        if (r != 0) {
            /* RFC 6120 §5.4.3.2: TLS failure -> close TCP without </stream>. The alert
               mbedTLS queued has been flushed. */
            snprintf(reason, sizeof(reason), "TLS handshake failed: %s%s%.100s",
                     xf_tls_strerror(r, e, sizeof(e)), c->sel.sni[0] ? ", sni " : "", c->sel.sni);
            conn_finish(c, reason);
            return;
        }
        set_state(c, XF_CONN_TLS_HEADER);
        if (c->sel.sni[0])
            c->tenant = c->sel.chosen;        /* until the stream header names one */
        if (mbedtls_ssl_get_version_number(&c->ssl) == MBEDTLS_SSL_VERSION_TLS1_2) {
            /* mbedTLS consumed whole records, so tls_in starts at a record boundary. */
            c->recs.on = 1;
            if (renegotiation_seen(c, (const unsigned char *)xf_buf_head(&c->tls_in),
                                   xf_buf_size(&c->tls_in))) {
                conn_close(c, "TLS renegotiation attempt");
                return;
            }
        }
    }
    while (c->state >= XF_CONN_TLS_HEADER && c->state <= XF_CONN_RELAY && !c->client_paused &&
           !c->client_eof) {
        unsigned char buf[READ_CHUNK];
        int r = mbedtls_ssl_read(&c->ssl, buf, sizeof(buf));
        if (r > 0) {
            client_plain_input(c, (const char *)buf, (size_t)r);
            continue;
        }
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
        if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == 0) {
            on_client_eof(c);
            break;
        }
        snprintf(reason, sizeof(reason), "TLS read failed: %s", xf_tls_strerror(r, e, sizeof(e)));
        flush_tls_out(c);
        conn_close(c, reason);
        return;
    }
    if (c->state < XF_CONN_CLOSING)
        flush_tls_out(c);
}

/* Plaintext before STARTTLS. */
static void plain_input(xf_conn *c, const char *data, size_t len)
{
    if (xf_buf_size(&c->plain) == 0 && xf_xml_offset(c->xml) == 0 && data[0] != '<') {
        /* Neither XML nor anything we speak here (design.md §5). */
        conn_close(c, data[0] == 0x16 ? "TLS ClientHello on a STARTTLS listener"
                                      : "first bytes are not XML");
        return;
    }
    c->bytes_in += len;
    if (xf_buf_size(&c->plain) + len > 4u * c->config->limits.max_header_bytes) {
        stream_error(c, "policy-violation", "too much data before STARTTLS",
                     "pre-TLS data over the limit");
        return;
    }
    if (xf_buf_append(&c->plain, data, len) < 0 || xf_xml_push(c->xml, data, len) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    xf_xml_event ev;
    while (c->state <= XF_CONN_PLAIN_STARTTLS && xf_xml_next(c->xml, &ev) != XF_XML_NONE) {
        switch (ev.type) {
        case XF_XML_HEADER:
            on_plain_header(c, &ev);
            break;
        case XF_XML_ELEMENT:
            if (strcmp(ev.name, "starttls") == 0 && strcmp(ev.ns_uri, XF_NS_TLS) == 0) {
                on_starttls(c, ev.span.end);
                return;
            }
            /* design.md §5: a stanza before STARTTLS on a TLS-required port. */
            stream_error(c, "policy-violation", "STARTTLS is required",
                         "element before STARTTLS");
            return;
        case XF_XML_STREAM_END: {
            static const char end[] = "</stream:stream>";
            if (c->header_sent && client_send(c, end, sizeof(end) - 1) < 0)
                return;
            conn_finish(c, "client closed the stream before STARTTLS");
            return;
        }
        case XF_XML_ERROR:
            stream_error(c, ev.error, NULL, ev.reason ? ev.reason : ev.error);
            return;
        default:
            return;
        }
    }
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    xf_conn *c = s->data;
    if (c->state == XF_CONN_CLOSING && n < 0) {
        c->client_eof = 1;                     /* the peer closed after our close */
        uv_read_stop(s);
        if (c->client_shut_done)
            conn_close(c, c->reason);
        return;
    }
    if (c->state >= XF_CONN_CLOSING || n == 0)
        return;
    if (n < 0) {
        if (n == UV_EOF) {
            on_client_eof(c);
        } else {
            char r[120];
            snprintf(r, sizeof(r), "client read: %s", uv_strerror((int)n));
            conn_close(c, r);
        }
        return;
    }
    if (!c->tls_active) {
        plain_input(c, buf->base, (size_t)n);
        return;
    }
    if (c->recs.on && renegotiation_seen(c, (const unsigned char *)buf->base, (size_t)n)) {
        conn_close(c, "TLS renegotiation attempt");
        return;
    }
    if (xf_buf_append(&c->tls_in, buf->base, (size_t)n) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    tls_pump(c);
    /* Ciphertext piling up while we do not decrypt (backpressure) stops the reads too. */
    if (xf_buf_size(&c->tls_in) > c->config->limits.buffer_high_bytes)
        pause_client(c);
}

static void resume_client(xf_conn *c)
{
    c->client_paused = 0;
    if (c->tls_active)
        tls_pump(c);
    if (c->state < XF_CONN_CLOSING && !c->client_paused && !c->client_eof)
        uv_read_start((uv_stream_t *)&c->client, alloc_buf, on_client_read);
}

/* ---------------------------------------------------------------- accept */

void xf_conn_accept(xf_listener *l)
{
    xf_worker *w = l->worker;
    xf_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        xf_error("accept on %s: out of memory", l->conf->name);
        return;
    }
    c->w = w;
    c->lconf = l->conf;
    c->config = xf_config_ref(w->config);
    c->state = l->conf->tls == XF_TLS_DIRECT ? XF_CONN_TLS_HANDSHAKE : XF_CONN_PLAIN_HEADER;
    c->id = __atomic_add_fetch(&next_conn_id, 1, __ATOMIC_RELAXED);
    c->start_ms = uv_now(&w->loop);
    snprintf(c->peer, sizeof(c->peer), "-");
    uv_tcp_init(&w->loop, &c->client);
    uv_timer_init(&w->loop, &c->timer);
    c->client.data = c->timer.data = c;
    c->handles_open = 2;
    __atomic_fetch_add(&live_conns, 1, __ATOMIC_RELAXED);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;

    int r = uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->client);
    if (r < 0) {
        char reason[100];
        snprintf(reason, sizeof(reason), "accept: %s", uv_strerror(r));
        conn_close(c, reason);
        return;
    }
    int len = sizeof(c->peer_addr);
    uv_tcp_getpeername(&c->client, (struct sockaddr *)&c->peer_addr, &len);
    len = sizeof(c->local_addr);
    uv_tcp_getsockname(&c->client, (struct sockaddr *)&c->local_addr, &len);
    format_addr(&c->peer_addr, c->peer, sizeof(c->peer));
    uv_tcp_nodelay(&c->client, 1);

    const xf_limits *lim = &c->config->limits;
    if (lim->max_connections && xf_conn_count() > lim->max_connections) {
        conn_close(c, "refused: max_connections reached");
        return;
    }
    if (xf_iplimit_acquire(&c->peer_addr, lim->max_connections_per_ip) < 0) {
        conn_close(c, "refused: max_connections_per_ip reached");
        return;
    }
    c->ip_counted = lim->max_connections_per_ip > 0;
    c->xml = xf_xml_new(lim->max_header_bytes, lim->max_header_bytes);
    if (c->xml == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    if (c->state == XF_CONN_TLS_HANDSHAKE && (r = tls_setup(c)) != 0) {
        char e[100], reason[160];
        snprintf(reason, sizeof(reason), "TLS setup: %s", xf_tls_strerror(r, e, sizeof(e)));
        conn_close(c, reason);
        return;
    }
    timer_start(c, (uint64_t)lim->handshake_timeout_s * 1000, on_handshake_timeout);
    r = uv_read_start((uv_stream_t *)&c->client, alloc_buf, on_client_read);
    if (r < 0)
        conn_close(c, uv_strerror(r));
}

/* SIGTERM: streams still negotiating get <system-shutdown/> (RFC 6120 §4.9.3.20);
   routed and relaying streams are left to finish until the drain deadline. */
void xf_conn_drain(xf_worker *w)
{
    xf_conn *next;
    for (xf_conn *c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == XF_CONN_TLS_HANDSHAKE)
            conn_close(c, "shutdown during TLS handshake");
        else if (c->state < XF_CONN_BACKEND_CONNECT)
            stream_error(c, "system-shutdown", NULL, "shutdown before the stream was routed");
    }
}

void xf_conn_close_all(xf_worker *w, const char *reason)
{
    while (w->conns)
        conn_close(w->conns, reason);
}
