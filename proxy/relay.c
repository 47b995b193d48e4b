/*
 * relay: moving bytes for an inbound connection — writes that own their bytes, the
 * watermarks that pause one side while the other's queue is long (design.md §4,
 * style.md §12), socket reads on both sides, and the half-close of each direction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/ssl.h>
#include "proxy/conn_int.h"
#include "proxy/log.h"
#include "proxy/metrics.h"

typedef struct xf_wreq {
    uv_write_t req;
    xf_conn *c;
    int to_backend;
    size_t len;
    char data[];
} xf_wreq;

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
        xf_conn_close(c, r);
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

/* Bytes to one side, copied only if they must wait: when libuv has nothing queued on
   that socket, uv_try_write hands it what the kernel takes now, and only the unwritten
   rest goes into a write request that owns a copy (raw_write). Bytes written here were
   never queued, so client_queued/backend_queued (the watermarks) do not count them.
   While the other side is paused, bytes take the queued path even if the socket could
   take them now: that write's completion (on_write_done) is what resumes the paused
   side, whatever paused it (a watermark, s2s_in's or inbound.c's held elements), as it
   always was. An error of the immediate write (other than EAGAIN) is left to raw_write
   to report, as before. Returns 0 or a negative libuv error. */
static int send_now(xf_conn *c, int to_backend, const char *data, size_t len)
{
    uv_stream_t *s = (uv_stream_t *)(to_backend ? &c->backend : &c->client);
    if (len == 0)
        return 0;
    if (!(to_backend ? c->client_paused : c->backend_paused) && uv_is_writable(s)) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write(s, &b, 1);     /* UV_EAGAIN while anything is queued */
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
    }
    return raw_write(c, to_backend, data, len);
}

int xf_conn_client_write(xf_conn *c, const char *data, size_t len)
{
    return send_now(c, 0, data, len);
}

/* Hand the ciphertext buffered in tls_out (the handshake's flight, in one write) to the
   client socket, and give the buffer back. */
int xf_conn_flush_tls_out(xf_conn *c)
{
    size_t n = xf_buf_size(&c->tls_out);
    int r = n ? send_now(c, 0, xf_buf_head(&c->tls_out), n) : 0;
    xf_buf_free(&c->tls_out);
    return r;
}

void xf_conn_pause_client(xf_conn *c)
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
int xf_conn_client_send(xf_conn *c, const char *data, size_t len)
{
    if (c->tls_active) {
        /* Full records: each mbedtls_ssl_write takes at most one record's payload (16 KiB,
           or MBEDTLS_SSL_OUT_CONTENT_LEN when mbedTLS is built smaller), so loop. */
        size_t done = 0;
        if (xf_conn_tls_gather(c, len) < 0) {
            xf_conn_close(c, "out of memory");
            return -1;
        }
        while (done < len) {
            int r = mbedtls_ssl_write(&c->ssl, (const unsigned char *)data + done, len - done);
            if (r < 0) {
                char e[100], reason[160];
                snprintf(reason, sizeof(reason), "TLS write failed: %s",
                         xf_tls_strerror(r, e, sizeof(e)));
                xf_conn_close(c, reason);
                return -1;
            }
            done += (size_t)r;
        }
        if (xf_conn_flush_tls_out(c) < 0) {
            xf_conn_close(c, "client write failed");
            return -1;
        }
    } else if (send_now(c, 0, data, len) < 0) {
        xf_conn_close(c, "client write failed");
        return -1;
    }
    c->bytes_out += len;
    xf_metrics_add(XF_MF_BYTES, XF_M_OUT, (int64_t)len);
    if (c->client_queued > c->config->limits.buffer_high_bytes && c->backend_open)
        pause_backend(c);
    return 0;
}

int xf_conn_backend_send(xf_conn *c, const char *data, size_t len)
{
    if (send_now(c, 1, data, len) < 0) {
        xf_conn_close(c, "backend write failed");
        return -1;
    }
    if (c->backend_queued > c->config->limits.buffer_high_bytes)
        xf_conn_pause_client(c);
    return 0;
}

void xf_conn_alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    static __thread char slab[65536];
    buf->base = slab;
    buf->len = sizeof(slab);
}

static void on_backend_eof(xf_conn *c)
{
    if (c->state != XF_CONN_RELAY) {
        xf_metrics_inc(XF_MF_BACKEND_ERRORS, XF_MB_CLOSED);
        xf_conn_stream_error(c, "remote-connection-failed", "backend unavailable",
                     "backend closed before answering the stream");
        return;
    }
    c->backend_eof = 1;
    if (c->reason[0] == '\0')
        snprintf(c->reason, sizeof(c->reason), "backend closed the connection");
    xf_conn_shutdown_client(c);                        /* half-close: flush, close_notify, FIN */
    xf_conn_maybe_close_relay(c);
    if (c->state == XF_CONN_RELAY)
        xf_conn_timer_start(c, LINGER_MS, xf_conn_on_linger_timeout);
}

void xf_conn_on_backend_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
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
            xf_conn_read_error_reason(c, "backend", (int)n, r, sizeof(r));
            if (c->state == XF_CONN_RELAY)
                xf_conn_close(c, r);
            else {
                xf_metrics_inc(XF_MF_BACKEND_ERRORS, XF_MB_CLOSED);
                xf_conn_stream_error(c, "remote-connection-failed", "backend unavailable", r);
            }
        }
        return;
    }
    if (c->s2s != NULL) {                     /* s2s_in.c reads the backend's stream */
        xf_s2s_in_backend_input(c, buf->base, (size_t)n);
        if (c->state == XF_CONN_RELAY)
            xf_conn_relay_activity(c);
        return;
    }
    if (c->state == XF_CONN_BACKEND_HEADER)
        xf_conn_backend_header_input(c, buf->base, (size_t)n);
    else if (c->state == XF_CONN_RELAY) {
        int r;
        if (c->xml != NULL) {
            uint64_t base = xf_xml_offset(c->xml);
            if (xf_xml_push(c->xml, buf->base, (size_t)n) < 0) {
                xf_conn_close(c, "out of memory");
                return;
            }
            r = xf_conn_backend_watch(c, buf->base, (size_t)n, base);
        } else {
            r = xf_conn_client_send(c, buf->base, (size_t)n);
        }
        if (r == 0)
            xf_conn_relay_activity(c);
    }
}

static void resume_backend(xf_conn *c)
{
    c->backend_paused = 0;
    if (c->backend_open && !c->backend_eof)
        uv_read_start((uv_stream_t *)&c->backend, xf_conn_alloc_buf, xf_conn_on_backend_read);
}

static void on_backend_shutdown(uv_shutdown_t *req, int status) { (void)req; (void)status; }

void xf_conn_on_client_eof(xf_conn *c)
{
    if (xf_conn_http_client_eof(c))           /* the HTTP side, before its relay */
        return;
    if (c->state != XF_CONN_RELAY) {
        xf_conn_close(c, c->state == XF_CONN_TLS_HANDSHAKE ? "client closed during TLS handshake"
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
    xf_conn_maybe_close_relay(c);
    if (c->state == XF_CONN_RELAY)
        xf_conn_timer_start(c, LINGER_MS, xf_conn_on_linger_timeout);
}

void xf_conn_on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    xf_conn *c = s->data;
    if (c->state == XF_CONN_CLOSING && n < 0) {
        c->client_eof = 1;                     /* the peer closed after our close */
        uv_read_stop(s);
        if (c->client_shut_done)
            xf_conn_close(c, c->reason);
        return;
    }
    if (c->state >= XF_CONN_CLOSING || n == 0)
        return;
    if (n < 0) {
        if (n == UV_EOF) {
            xf_conn_on_client_eof(c);
        } else {
            char r[120];
            xf_conn_read_error_reason(c, "client", (int)n, r, sizeof(r));
            xf_conn_close(c, r);
        }
        return;
    }
    if (!c->tls_active) {
        xf_conn_plain_input(c, buf->base, (size_t)n);
        return;
    }
    if (c->recs.on && xf_conn_renegotiation_seen(c, (const unsigned char *)buf->base, (size_t)n)) {
        xf_conn_close(c, "TLS renegotiation attempt");
        return;
    }
    xf_conn_tls_input(c, buf->base, (size_t)n);
    /* Ciphertext piling up while we do not decrypt (backpressure) stops the reads too. */
    if (xf_buf_size(&c->tls_in) > c->config->limits.buffer_high_bytes)
        xf_conn_pause_client(c);
}

static void resume_client(xf_conn *c)
{
    c->client_paused = 0;
    if (c->tls_active)
        xf_conn_tls_pump(c);
    if (c->state < XF_CONN_CLOSING && !c->client_paused && !c->client_eof)
        uv_read_start((uv_stream_t *)&c->client, xf_conn_alloc_buf, xf_conn_on_client_read);
}
