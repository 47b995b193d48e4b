/*
 * conn_int.h: the inbound connection's struct and the functions its files share.
 * Private to proxy/conn.c (lifecycle: states, close, timers, accept), proxy/relay.c
 * (writes, backpressure, socket reads), proxy/tlsbio.c (mbedTLS over memory BIOs),
 * proxy/inbound.c (the inbound negotiation: STARTTLS, stream headers, routing, the
 * backend's first features) and proxy/http_conn.c (the HTTP side of an auto listener).
 * Nothing outside those files includes it.
 *
 * The state machine:
 *
 *   STARTTLS listener                          direct-TLS listener
 *   PLAIN_HEADER --header--> PLAIN_STARTTLS     |
 *        --<starttls/>--> TLS_HANDSHAKE  <------+
 *   TLS_HANDSHAKE --done--> TLS_HEADER --header, routed--> BACKEND_CONNECT
 *   BACKEND_CONNECT --connected--> BACKEND_HEADER --backend features--> RELAY
 *   TLS_HEADER on a direct-TLS auto listener, ALPN http/1.1 or a request method first:
 *       the HTTP side (http_conn.c, c->http) answers in TLS_HEADER, or relays to the
 *       tenant's http_backend through BACKEND_CONNECT -> BACKEND_HEADER -> RELAY
 *   PLAIN_STARTTLS --s2s pair authenticated over plaintext--> BACKEND_CONNECT
 *       (only a server stream to a tenant whose federation policy is `open`: s2s_in.c
 *       negotiates it without TLS; its optional <starttls/> still leads to TLS_HANDSHAKE)
 *   any --stream error / timeout / peer gone--> CLOSING --> CLOSED
 *
 * The public side's ciphertext goes through two buffers (tls_in, tls_out) that the
 * mbedTLS BIO callbacks read and fill; everything above TLS sees plaintext only. After
 * the handshake they hold only what must wait (a partial record; records gathered for
 * one write) and are freed when drained: TLS reads the socket's read buffer in place
 * and hands records to the socket with uv_try_write (tlsbio.c, relay.c).
 * Before RELAY, plaintext is kept (plain, bplain) and scanned with xmlstream. From
 * routing until authentication the client's stream stays scanned (only complete
 * elements within max_header_bytes go to the backend, <starttls/> is refused, the auth
 * deadline bounds every timer) and the backend's is watched for the real success.
 * After that, bytes are copied straight through, with backpressure by watermarks in
 * both directions (design.md §4).
 */
#ifndef XF_CONN_INT_H
#define XF_CONN_INT_H

#include <stdint.h>
#include <sys/socket.h>
#include <mbedtls/ssl.h>
#include <uv.h>
#include "proxy/buf.h"
#include "proxy/iplimit.h"
#include "proxy/s2s_in.h"
#include "proxy/conn.h"
#include "proxy/tls.h"
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

#define READ_CHUNK 16384
#define LINGER_MS 5000           /* bound on flushing and half-closed streams */
#define BACKEND_SCAN_LIMIT 65536 /* backend header / element size while we scan it */

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

    xf_xml *xml;                            /* scanner of the current stream, pre-RELAY;
                                               from routing on the backend's stream until
                                               authentication (the watcher) */
    /* Policing, from routing until the backend says the stream is authenticated
       (inbound.c; design.md §5): the client's scanner keeps running, and plain holds
       what may not go to the backend yet. NULL cxml = not policed. */
    xf_xml *cxml;                           /* the client stream's scanner while policed */
    uint64_t cplain_base;                   /* client stream offset of plain's first byte */
    uint64_t cfwd_end;                      /* client bytes before this offset are complete
                                               elements that may be forwarded */
    int cstream_ended;                      /* the client sent </stream:stream> while policed */
    uint64_t auth_deadline_ms;              /* loop time limit for authentication, while policed */
    int timer_is_auth;                      /* the timer currently runs on that deadline */
    int timer_is_idle;                      /* ... on the idle timeout (RELAY) */
    uint64_t idle_from_ms;                  /* loop time of the last relayed bytes */
    xf_buf plain;                           /* client plaintext not yet forwarded */
    xf_buf bplain;                          /* backend bytes not yet forwarded */
    uint64_t bheader_end;                   /* end of the backend's header in bplain */
    int stream_ns;                          /* enum xf_xml_ns of the client stream, 0 = unknown */
    int header_sent;                        /* we answered the current client stream header */
    const xf_tenant *tenant;
    int service;                            /* XF_SVC_CLIENT / XF_SVC_SERVER once routed */
    struct xf_http *http;                   /* the HTTP side (http_conn.c): set once a
                                               direct-TLS auto connection turned out to
                                               be HTTP; then no XMPP scanner runs */
    xf_s2s_in *s2s;                         /* a server stream negotiated by xmppfront
                                               (s2s_in.c): it gets the client's plaintext
                                               and the backend's bytes from routing on */

    size_t client_queued, backend_queued;   /* bytes handed to uv_write, not yet done */
    int client_paused, backend_paused;      /* reads stopped by backpressure */
    int client_eof, backend_eof;            /* that side sent FIN / close_notify */
    int client_shut, backend_shut;          /* we asked to shut down our write side */
    int client_shut_done;                   /* ... and the client's has completed */
    xf_ipkey ipkey;                         /* per-address counting key (iplimit.h) */
    int ip_counted;                         /* holds a per-address slot */
    int ip_unauth;                          /* ... and an unauthenticated one */
    int skip_ws_before_tls;                 /* after <proceed/>, until the first TLS byte */
    struct {                                /* TLS 1.2 record headers after the handshake */
        int on;
        unsigned have;
        uint8_t hdr[5];
        size_t body_left;
    } recs;

    uint64_t bytes_in, bytes_out;           /* public-side plaintext, each way */
    int mslot, mtenant;                     /* metrics.h: gauge places (0 = none) */
    uint64_t start_ms;
    struct sockaddr_storage peer_addr, local_addr;
    char peer[64];
    char reason[200];
} xf_conn;

/* conn.c: states, close, timers */
void xf_conn_set_state(xf_conn *c, enum xf_conn_state to);
uint64_t xf_conn_now_ms(xf_conn *c);
int xf_conn_backend_connect(xf_conn *c, const xf_backend *be, uv_connect_cb cb);
int xf_conn_send_proxy_header(xf_conn *c);
void xf_conn_timer_start(xf_conn *c, uint64_t ms, uv_timer_cb cb);
void xf_conn_timer_stop(xf_conn *c);
void xf_conn_auth_timer_done(xf_conn *c);
void xf_conn_close(xf_conn *c, const char *reason);
void xf_conn_maybe_close_relay(xf_conn *c);
void xf_conn_on_linger_timeout(uv_timer_t *t);
void xf_conn_shutdown_client(xf_conn *c);
void xf_conn_finish(xf_conn *c, const char *reason);
void xf_conn_stream_error(xf_conn *c, const char *cond, const char *text, const char *reason);
void xf_conn_relay_activity(xf_conn *c);
void xf_conn_on_backend_timeout(uv_timer_t *t);
/* The stream authenticated: it leaves its address's unauthenticated count
   (limits.max_unauthenticated_per_ip). Idempotent. Called on entering RELAY for now;
   belongs where SASL success / the dialback result is seen (issue 6 §2). */
void xf_conn_mark_authenticated(xf_conn *c);
/* Keepalive on t per limits.tcp_keepalive_s (`idle`, 0 = off); bound in conn.c. */
void xf_conn_keepalive(uv_tcp_t *t, unsigned idle);
/* The reason for a failed read of `side` ("client" / "backend") into buf: ETIMEDOUT
   (TCP keepalive or retransmissions found the peer gone) is named as such and counted
   (XF_STAT_CLOSE_KEEPALIVE). Returns buf. */
const char *xf_conn_read_error_reason(xf_conn *c, const char *side, int err, char *buf,
                                      size_t cap);

/* relay.c: writes with backpressure, socket reads */
int xf_conn_flush_tls_out(xf_conn *c);
/* Bytes to the client socket as they are (ciphertext from bio_send): written at once
   when nothing is queued, the rest queued (copied). 0 or a negative libuv error. */
int xf_conn_client_write(xf_conn *c, const char *data, size_t len);
void xf_conn_pause_client(xf_conn *c);
int xf_conn_client_send(xf_conn *c, const char *data, size_t len);
int xf_conn_backend_send(xf_conn *c, const char *data, size_t len);
void xf_conn_alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void xf_conn_on_backend_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
void xf_conn_on_client_eof(xf_conn *c);
void xf_conn_on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* tlsbio.c: TLS over memory BIOs on the public side */
int xf_conn_tls_setup(xf_conn *c);
/* Ciphertext read from the client socket (valid during the call only): decrypted and
   passed on, the unused rest kept in tls_in. */
void xf_conn_tls_input(xf_conn *c, const char *data, size_t len);
/* Before mbedtls_ssl_write of len bytes: when they make more than one record, the
   records are gathered in tls_out (room reserved now) for one write by
   xf_conn_flush_tls_out; one record goes straight to the socket. 0, or -1 (ENOMEM). */
int xf_conn_tls_gather(xf_conn *c, size_t len);
int xf_conn_renegotiation_seen(xf_conn *c, const unsigned char *p, size_t n);
void xf_conn_tls_pump(xf_conn *c);

/* inbound.c: the inbound negotiation */
int xf_conn_backend_watch(xf_conn *c, const char *data, size_t len, uint64_t base);
void xf_conn_backend_header_input(xf_conn *c, const char *data, size_t len);
void xf_conn_client_plain_input(xf_conn *c, const char *data, size_t len);
void xf_conn_plain_input(xf_conn *c, const char *data, size_t len);
/* s2s_in.c, a plaintext s2s stream (policy open) that sent <starttls/>: s2s_in has
   let go (c->s2s is NULL, c->xml is the pre-TLS scanner again) and c->plain holds
   only what followed </starttls>. Answers <proceed/> and starts TLS. */
void xf_conn_s2s_starttls(xf_conn *c);

/* http_conn.c: the HTTP side of a direct-TLS auto listener (proxy/http.h) */
struct xf_http;
/* Plaintext from the client: 1 if it belongs to the HTTP side (taken), 0 for XMPP.
   Called first for every plaintext byte after TLS; decides once, on the first bytes
   (ALPN http/1.1, or no ALPN and a request method). */
int xf_conn_http_input(xf_conn *c, const char *data, size_t len);
/* The client ended its side: 1 if the HTTP side handled it, 0 for the usual path. */
int xf_conn_http_client_eof(xf_conn *c);
/* xf_conn_stream_error on an HTTP connection (c->http set): an HTTP status instead of
   a stream error (502 for remote-connection-failed ...), or a quiet close. */
void xf_conn_http_fail(xf_conn *c, const char *cond, const char *reason);
void xf_conn_http_free(struct xf_http *h);

/* conn.c */
/* The negotiation timer (limits.handshake_timeout_s), as at accept. */
void xf_conn_handshake_timer_start(xf_conn *c);

#endif
