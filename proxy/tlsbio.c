/*
 * tlsbio: the public side's TLS — mbedTLS over memory buffers (tls_in / tls_out, filled
 * and drained by the socket code in relay.c; after the handshake, the socket's read
 * buffer in place and records straight to the socket, the buffers only for what must
 * wait), the handshake and application-data pump, and the TLS 1.2 renegotiation watch.
 */
#include <stdio.h>
#include <string.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include "proxy/conn_int.h"
#include "proxy/log.h"
#include "proxy/metrics.h"

#define PLAIN_BATCH (4 * READ_CHUNK)  /* plaintext handed on at once by the pump */

/* Ciphertext the socket read and TLS has not taken yet, straight from the read buffer
   (relay.c's slab), for the duration of one xf_conn_tls_input: bio_recv takes it from
   there, and only what is left over is copied into tls_in. One per worker thread; a
   pump that is not inside xf_conn_tls_input (resume_client, STARTTLS) sees none. */
static __thread struct {
    xf_conn *c;
    const char *p;
    size_t n;
} rx;

/* mbedTLS output. Gathered in tls_out and written at once (xf_conn_flush_tls_out, which
   frees it) for the handshake's flight (one write for the whole flight, not one per
   record) and for a piece of plaintext longer than one record (xf_conn_tls_gather);
   tls_out has storage exactly while such a gathering runs. Otherwise the record goes to
   the socket as mbedTLS made it (xf_conn_client_write: no copy unless the socket cannot
   take it now). Either way every byte is taken. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    xf_conn *c = ctx;
    if (c->state == XF_CONN_TLS_HANDSHAKE || c->tls_out.data != NULL) {
        if (xf_buf_append(&c->tls_out, buf, len) < 0)
            return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    } else if (xf_conn_client_write(c, (const char *)buf, len) < 0) {
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
    return (int)len;
}

int xf_conn_tls_gather(xf_conn *c, size_t len)
{
    int max = mbedtls_ssl_get_max_out_record_payload(&c->ssl);
    int exp = mbedtls_ssl_get_record_expansion(&c->ssl);
    if (max <= 0 || len <= (size_t)max)
        return 0;                           /* one record: straight to the socket */
    size_t recs = len / (size_t)max + 1;
    size_t room = len + recs * (size_t)(exp > 0 ? exp : 64);
    return xf_buf_reserve(&c->tls_out, room) != NULL ? 0 : -1;
}

/* mbedTLS input: tls_in first (older bytes), then the read buffer of the current
   xf_conn_tls_input. tls_in's storage goes back once it is drained. */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    xf_conn *c = ctx;
    size_t n = xf_buf_size(&c->tls_in);
    if (n > 0) {
        if (n > len)
            n = len;
        memcpy(buf, xf_buf_head(&c->tls_in), n);
        xf_buf_consume(&c->tls_in, n);
        xf_buf_release_if_empty(&c->tls_in);
        return (int)n;
    }
    if (rx.c != c || rx.n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    n = rx.n < len ? rx.n : len;
    memcpy(buf, rx.p, n);
    rx.p += n;
    rx.n -= n;
    return (int)n;
}

/* Ciphertext from the client socket (data is the read buffer, valid only during this
   call). Once the handshake is over and nothing older waits in tls_in, TLS reads it in
   place; what it does not take (a partial record, or records left while the client is
   paused) is kept in tls_in. Before that it goes through tls_in as it always did (the
   whitespace skip after <proceed/>, the handshake). */
void xf_conn_tls_input(xf_conn *c, const char *data, size_t len)
{
    if (c->state == XF_CONN_TLS_HANDSHAKE || xf_buf_size(&c->tls_in) > 0 || rx.c != NULL) {
        if (xf_buf_append(&c->tls_in, data, len) < 0) {
            xf_conn_close(c, "out of memory");
            return;
        }
        xf_conn_tls_pump(c);
        return;
    }
    rx.c = c;
    rx.p = data;
    rx.n = len;
    xf_conn_tls_pump(c);
    size_t left = rx.n;
    const char *rest = rx.p;
    rx.c = NULL;
    rx.n = 0;
    if (left > 0 && c->state < XF_CONN_CLOSING && xf_buf_append(&c->tls_in, rest, left) < 0)
        xf_conn_close(c, "out of memory");
}

int xf_conn_tls_setup(xf_conn *c)
{
    mbedtls_ssl_init(&c->ssl);
    c->tls_active = 1;
    int r = mbedtls_ssl_setup(&c->ssl, xf_tls_config(c->w->tls, c->lconf->service, c->config));
    if (r != 0)
        return r;
    c->sel.registry = c->config->registry;
    int svc = c->lconf->service;
    c->sel.want_peer_cert = svc == XF_SVC_SERVER ? XF_TLS_PEER_CERT_REQUEST
                          : svc == XF_SVC_AUTO   ? XF_TLS_PEER_CERT_IF_SERVER
                                                 : XF_TLS_PEER_CERT_NONE;
    if (c->sel.want_peer_cert != XF_TLS_PEER_CERT_NONE)
        c->sel.peer_ca = xf_tls_peer_ca(c->w->tls, c->config->federation.ca_file);
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    return xf_conn_tls_select_begin(c);     /* the working copy on the heap, user data */
}

/* TLS 1.2 has no handshake messages from the client once the handshake is over except a
   renegotiating ClientHello, and records show their content type in clear. mbedTLS
   answers an unsupported renegotiation with a warning alert and carries on; RFC 6120
   §5.4.3.3 (spec-digest §1.3) wants the TCP connection closed. So the client's record
   headers are followed; returns 1 when a handshake record (type 22) appears.
   TLS 1.3 hides record types and has no renegotiation. */
int xf_conn_renegotiation_seen(xf_conn *c, const unsigned char *p, size_t n)
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

/* Drive TLS with whatever ciphertext is buffered: the handshake, then application data
   while the backend side has room. */
void xf_conn_tls_pump(xf_conn *c)
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
        int r = xf_tls_handshake(&c->ssl, c->config);   /* tickets: proxy/tls.h */
        xf_conn_flush_tls_out(c);
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        xf_metrics_handshake(XF_M_IN, r);
        if (r != 0) {
            /* RFC 6120 §5.4.3.2: TLS failure -> close TCP without </stream>. The alert
               mbedTLS queued has been flushed. */
            snprintf(reason, sizeof(reason), "TLS handshake failed: %s%s%.100s",
                     xf_tls_strerror(r, e, sizeof(e)), c->sel.sni[0] ? ", sni " : "", c->sel.sni);
            xf_conn_finish(c, reason);
            return;
        }
        xf_conn_set_state(c, XF_CONN_TLS_HEADER);
        if (c->sel.sni[0])
            c->tenant = c->sel.chosen;        /* until the stream header names one */
        if (mbedtls_ssl_get_version_number(&c->ssl) == MBEDTLS_SSL_VERSION_TLS1_2) {
            /* mbedTLS consumed whole records, so tls_in starts at a record boundary. */
            c->recs.on = 1;
            if (xf_conn_renegotiation_seen(c, (const unsigned char *)xf_buf_head(&c->tls_in),
                                   xf_buf_size(&c->tls_in))) {
                xf_conn_close(c, "TLS renegotiation attempt");
                return;
            }
        }
    }
    /* Application data: the plaintext of up to PLAIN_BATCH bytes of whole records goes on
       in one piece (one write to the backend for what one socket read brought, not one
       per record). The checks of the loop apply per batch. */
    while (c->state >= XF_CONN_TLS_HEADER && c->state <= XF_CONN_RELAY && !c->client_paused &&
           !c->client_eof) {
        unsigned char buf[PLAIN_BATCH];
        size_t have = 0;
        int r;
        do {
            r = mbedtls_ssl_read(&c->ssl, buf + have, sizeof(buf) - have);
            if (r > 0)
                have += (size_t)r;
        } while (r > 0 && sizeof(buf) - have >= READ_CHUNK);
        if (have > 0)
            xf_conn_client_plain_input(c, (const char *)buf, have);
        if (r > 0)
            continue;
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE ||
            c->state > XF_CONN_RELAY || c->client_eof)
            break;
        if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == 0) {
            xf_conn_on_client_eof(c);
            break;
        }
        snprintf(reason, sizeof(reason), "TLS read failed: %s", xf_tls_strerror(r, e, sizeof(e)));
        xf_conn_flush_tls_out(c);
        xf_conn_close(c, reason);
        return;
    }
    if (c->state < XF_CONN_CLOSING)
        xf_conn_flush_tls_out(c);
}
