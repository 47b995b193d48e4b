/*
 * http_conn: an inbound connection on the HTTP side of a direct-TLS auto listener
 * (proxy/http.h; design.md §1 "XMPP and HTTPS share the port"). Entered from the XMPP
 * path right after the TLS handshake (xf_conn_http_input, called first by inbound.c for
 * every plaintext byte), when ALPN chose http/1.1 or, without ALPN, the first bytes
 * start like a request method. Modes:
 *
 *   SNIFF   (no ALPN, fewer bytes than "METHOD " so far) --method--> SERVE
 *           --anything else--> closed (neither XML nor HTTP)
 *   SERVE   requests parsed one by one (conn state TLS_HEADER) and answered here: the
 *           POSH documents and every refusal; keep-alive up to XF_HTTP_MAX_REQUESTS,
 *           each request complete within limits.handshake_timeout_s of the previous
 *           answer (else 408, or a quiet close when nothing had arrived)
 *           --a request for the tenant's http_backend--> CONNECT
 *   CONNECT the backend is connecting (conn state BACKEND_CONNECT, limits.
 *           backend_timeout_s): the rewritten first request and what follows are held
 *           --connected--> RELAY (conn state RELAY): bytes both ways, exactly like an
 *           authenticated XMPP stream (relay.c: watermarks, half-close, idle timeout).
 *           Connect failure -> 502, timeout -> 504.
 *
 * Bounds: the head of a request is at most 4 x limits.max_header_bytes (431); answers
 * are at most a few KiB and a connection gets at most XF_HTTP_MAX_REQUESTS of them, so
 * what a client that never reads can make us queue is bounded too. A request with a
 * body, or an Upgrade, that we answer ourselves is answered with Connection: close and
 * its body is never read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mbedtls/ssl.h>
#include "proxy/conn_int.h"
#include "proxy/http.h"
#include "proxy/log.h"

#define XF_HTTP_MAX_REQUESTS 100

enum { H_SNIFF, H_SERVE, H_CONNECT, H_RELAY };

struct xf_http {
    int mode;
    unsigned requests;               /* answered or passed on */
    int client_ended;                /* the client ended while the backend connected */
    xf_http_reader rd;
    xf_buf held;                     /* CONNECT: bytes for the backend */
};

static void on_request_timeout(uv_timer_t *t);

static const char *method_name(int m) { return http_method_str((enum http_method)m); }

static void request_timer(xf_conn *c)
{
    xf_conn_timer_start(c, (uint64_t)c->config->limits.handshake_timeout_s * 1000,
                        on_request_timeout);
}

/* Send answer a to the current request; closes after it unless keep. Returns 0, or -1
   once c is closing. */
static int respond(xf_conn *c, const xf_http_answer *a, int head_only, int keep)
{
    char out[XF_HTTP_BODY_MAX + 1024];
    int n = xf_http_format(a, head_only, keep, time(NULL), out, sizeof out);
    if (n < 0) {
        xf_conn_close(c, "http: answer does not fit");
        return -1;
    }
    if (xf_conn_client_send(c, out, (size_t)n) < 0)
        return -1;
    if (!keep) {
        char r[200];
        snprintf(r, sizeof r, "http: %d %s, connection closed", a->status,
                 a->why ? a->why : xf_http_status_text(a->status));
        xf_conn_finish(c, r);
        return -1;
    }
    return 0;
}

/* A refusal that ends the connection (400, 408, 431, 502, 504 ...), logged with why. */
static void refuse(xf_conn *c, int status, const char *why)
{
    char q[300];
    xf_http_answer a = { 0 };
    xf_http_answer_status(&a, status, why);
    xf_info("conn id=%llu http %d: %s", (unsigned long long)c->id, status,
            xf_log_quote(q, sizeof q, why));
    respond(c, &a, 0, 0);
}

static void on_request_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    if (c->http == NULL || c->state >= XF_CONN_CLOSING)
        return;
    if (xf_http_reader_size(&c->http->rd) == 0)
        xf_conn_finish(c, c->http->requests ? "http: keep-alive connection idle"
                                            : "http: no request in time");
    else
        refuse(c, 408, "request not complete within handshake_timeout_s");
}

static void on_backend_timeout(uv_timer_t *t)
{
    xf_conn *c = t->data;
    if (c->http && c->http->mode == H_CONNECT && c->state < XF_CONN_CLOSING)
        refuse(c, 504, "http_backend did not accept the connection in time");
}

static void on_backend_connected(uv_connect_t *req, int status)
{
    xf_conn *c = req->data;
    struct xf_http *h = c->http;
    if (status == UV_ECANCELED || c->state != XF_CONN_BACKEND_CONNECT || h == NULL)
        return;
    if (status < 0) {
        char r[200];
        snprintf(r, sizeof r, "http_backend %s: %s", c->tenant->http.spec, uv_strerror(status));
        refuse(c, 502, r);
        return;
    }
    xf_conn_set_state(c, XF_CONN_BACKEND_HEADER);
    xf_conn_set_state(c, XF_CONN_RELAY);
    xf_conn_timer_stop(c);
    h->mode = H_RELAY;
    int r = uv_read_start((uv_stream_t *)&c->backend, xf_conn_alloc_buf, xf_conn_on_backend_read);
    if (r < 0) {
        refuse(c, 502, uv_strerror(r));
        return;
    }
    if (xf_conn_backend_send(c, xf_buf_head(&h->held), xf_buf_size(&h->held)) < 0)
        return;
    xf_buf_free(&h->held);
    xf_conn_relay_activity(c);
    if (h->client_ended)
        xf_conn_on_client_eof(c);          /* RELAY now: half-close toward the backend */
}

/* The request head in h->rd is for answer a's backend: rewrite it (http.h
   xf_http_backend_head), keep what followed, connect. */
static void to_backend(xf_conn *c, const xf_http_answer *a)
{
    struct xf_http *h = c->http;
    const xf_http_req *q = &h->rd.req;
    const char *head = xf_http_reader_head(&h->rd);
    size_t size = xf_http_reader_size(&h->rd);
    if (xf_http_backend_head(head, q, (const struct sockaddr *)&c->peer_addr, &h->held) < 0 ||
        xf_buf_append(&h->held, head + q->head_len, size - q->head_len) < 0) {
        xf_conn_close(c, "out of memory");
        return;
    }
    xf_http_reader_free(&h->rd);
    h->mode = H_CONNECT;
    xf_conn_set_state(c, XF_CONN_BACKEND_CONNECT);
    if (xf_conn_backend_connect(c, a->backend, on_backend_connected) < 0)
        return;                            /* answered 502 (xf_conn_http_fail) */
    xf_conn_timer_start(c, (uint64_t)c->config->limits.backend_timeout_s * 1000,
                        on_backend_timeout);
}

/* SERVE: answer every complete request in the reader, in order. */
static void serve(xf_conn *c)
{
    struct xf_http *h = c->http;
    for (;;) {
        int ev = xf_http_reader_next(&h->rd);
        if (ev == XF_HTTP_NEED)
            return;
        if (ev == XF_HTTP_BAD) {
            refuse(c, h->rd.status, h->rd.reason);
            return;
        }
        if (ev == XF_HTTP_END) {
            request_timer(c);              /* the next request's time starts now */
            continue;
        }
        /* XF_HTTP_HEAD */
        const xf_http_req *q = &h->rd.req;
        xf_http_answer a;
        h->requests++;
        xf_http_route(c->config->registry, c->sel.sni, c->sel.sni[0] ? c->sel.chosen : NULL,
                      q, &a);
        if (a.tenant)
            c->tenant = a.tenant;
        char qn[300], qp[300], qh[300];
        snprintf(qh, sizeof qh, "%s", q->name[0] ? q->name : c->sel.sni);
        char st[16];
        snprintf(st, sizeof st, "%d", a.status);
        xf_info("conn id=%llu http %s host=%s path=%s -> %s (%s)",
                (unsigned long long)c->id, method_name(q->method),
                xf_log_quote(qn, sizeof qn, qh), xf_log_quote(qp, sizeof qp, q->path),
                a.action == XF_HTTP_TO_BACKEND ? "backend" : st, a.why ? a.why : "");
        if (a.action == XF_HTTP_TO_BACKEND) {
            to_backend(c, &a);
            return;
        }
        int keep = q->keep_alive && !q->has_body && !q->upgrade &&
                   h->requests < XF_HTTP_MAX_REQUESTS;
        if (respond(c, &a, q->method == HTTP_HEAD, keep) < 0)
            return;
    }
}

/* Start the HTTP side on c (TLS_HEADER, nothing given to the XMPP scanner yet). */
static int start(xf_conn *c, int mode)
{
    struct xf_http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        xf_conn_close(c, "out of memory");
        return -1;
    }
    xf_http_reader_init(&h->rd, 4u * (size_t)c->config->limits.max_header_bytes);
    h->mode = mode;
    c->http = h;
    xf_xml_free(c->xml);                   /* no XMPP on this connection */
    c->xml = NULL;
    request_timer(c);
    return 0;
}

int xf_conn_http_input(xf_conn *c, const char *data, size_t len)
{
    struct xf_http *h = c->http;
    if (h == NULL) {
        if (c->state != XF_CONN_TLS_HEADER || c->lconf->service != XF_SVC_AUTO ||
            c->lconf->tls != XF_TLS_DIRECT || c->s2s != NULL || c->cxml != NULL ||
            c->xml == NULL || xf_xml_offset(c->xml) != 0 || xf_buf_size(&c->plain) != 0)
            return 0;
        const char *alpn = mbedtls_ssl_get_alpn_protocol(&c->ssl);
        int mode;
        if (alpn != NULL)
            mode = strcmp(alpn, "http/1.1") == 0 ? H_SERVE : -1;
        else
            mode = xf_http_sniff(data, len) == XF_HTTP_SNIFF_NO ? -1 : H_SNIFF;
        if (mode < 0)
            return 0;                      /* XMPP */
        if (start(c, mode) < 0)
            return 1;
        h = c->http;
    }
    switch (h->mode) {
    case H_SNIFF:
    case H_SERVE:
        if (xf_http_reader_push(&h->rd, data, len) < 0) {
            xf_conn_close(c, "out of memory");
            return 1;
        }
        if (h->mode == H_SNIFF) {
            int s = xf_http_sniff(xf_http_reader_head(&h->rd), xf_http_reader_size(&h->rd));
            if (s == XF_HTTP_SNIFF_MORE)
                return 1;
            if (s == XF_HTTP_SNIFF_NO) {
                xf_conn_close(c, "first bytes are neither XML nor an HTTP request");
                return 1;
            }
            h->mode = H_SERVE;
        }
        serve(c);
        return 1;
    case H_CONNECT:
        if (xf_buf_append(&h->held, data, len) < 0) {
            xf_conn_close(c, "out of memory");
            return 1;
        }
        if (xf_buf_size(&h->held) > c->config->limits.buffer_high_bytes)
            xf_conn_pause_client(c);       /* resumed by relay.c once the backend drains */
        return 1;
    default:                               /* H_RELAY */
        if (xf_conn_backend_send(c, data, len) == 0)
            xf_conn_relay_activity(c);
        return 1;
    }
}

int xf_conn_http_client_eof(xf_conn *c)
{
    struct xf_http *h = c->http;
    if (h == NULL || h->mode == H_RELAY)
        return 0;
    c->client_eof = 1;
    uv_read_stop((uv_stream_t *)&c->client);
    if (h->mode == H_CONNECT) {
        h->client_ended = 1;               /* the request is held: relay its answer */
        return 1;
    }
    /* Every complete request has been answered already (serve() runs on input). */
    xf_conn_finish(c, h->requests ? "http: client closed the connection"
                                  : "http: client closed before a complete request");
    return 1;
}

void xf_conn_http_fail(xf_conn *c, const char *cond, const char *reason)
{
    struct xf_http *h = c->http;
    if (h->mode == H_RELAY) {
        xf_conn_finish(c, reason);
        return;
    }
    if ((h->mode == H_SERVE || h->mode == H_SNIFF) && xf_http_reader_size(&h->rd) == 0) {
        xf_conn_finish(c, reason);         /* idle between requests: close quietly */
        return;
    }
    int status = strcmp(cond, "remote-connection-failed") == 0 ? 502
               : strcmp(cond, "connection-timeout") == 0       ? 408
               : strcmp(cond, "system-shutdown") == 0          ? 503 : 500;
    refuse(c, status, reason);
}

void xf_conn_http_free(struct xf_http *h)
{
    if (h == NULL)
        return;
    xf_http_reader_free(&h->rd);
    xf_buf_free(&h->held);
    free(h);
}
