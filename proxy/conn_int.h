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

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
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

/* The certificate choice as the connection keeps it (conn.c). tls.h's xf_tls_select is
   the TLS handshake's working copy: on the heap (c->hs) from xf_conn_tls_select_begin
   until the handshake ends, when what is needed later (chosen, the SNI) is copied here
   and c->hs is freed, so an established connection does not carry a 256-byte SNI
   buffer. tlsbio.c's xf_conn_tls_setup fills registry / want_peer_cert / peer_ca here,
   then calls xf_conn_tls_select_begin, which moves them into c->hs and points mbedTLS's
   user data (what tls.c's callbacks read) at c->hs. */
typedef struct xf_conn_sel {
    const xf_registry *registry;
    const xf_tenant *hint;                  /* tenant of the pre-TLS `to`, or NULL */
    const xf_tenant *chosen;                /* whose certificate was presented */
    const char *sni;                        /* lower-cased SNI, "" if none: c->hs->sni during
                                               the handshake, then a heap copy (or "") */
    mbedtls_x509_crt *peer_ca;              /* CA set for a client certificate, or NULL */
    int want_peer_cert;                     /* XF_TLS_PEER_CERT_* */
} xf_conn_sel;

/* The peer's / our address: IPv4 or IPv6 only (TCP), 28 bytes, not sockaddr_storage's 128. */
typedef union xf_conn_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} xf_conn_addr;

/* Laid out for an idle RELAY connection's size (issue 10 §3: mbedTLS's ssl_context plus
   at most 2 KiB of ours): what only the negotiation needs is on the heap and freed when
   it ends (c->hs, the scanners, plain, bplain), flags are bits, addresses are compact. */
typedef struct xf_conn {
    struct xf_conn *next, *prev;            /* worker's list */
    uint64_t id;
    xf_worker *w;
    const xf_listener_conf *lconf;
    xf_config *config;                      /* snapshot reference */
    enum xf_conn_state state;
    int handles_open;                       /* close callbacks still to come */

    uv_tcp_t client, backend;
    uv_timer_t timer;
    union {                                 /* never both: the connect is over before
                                               RELAY, the only state that shuts the
                                               backend's write side (relay.c) */
        uv_connect_t connect_req;
        uv_shutdown_t backend_shut_req;
    };                                      /* (the client's shutdown request is on the
                                               heap while it runs, conn.c) */

    mbedtls_ssl_context ssl;
    xf_conn_sel sel;
    xf_tls_select *hs;                      /* the handshake's working copy, or NULL */
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
    uint64_t auth_deadline_ms;              /* loop time limit for authentication, while policed */
    uint64_t idle_from_ms;                  /* loop time of the last relayed bytes */
    xf_buf plain;                           /* client plaintext not yet forwarded */
    xf_buf bplain;                          /* backend bytes not yet forwarded */
    const xf_tenant *tenant;
    struct xf_http *http;                   /* the HTTP side (http_conn.c): set once a
                                               direct-TLS auto connection turned out to
                                               be HTTP; then no XMPP scanner runs */
    xf_s2s_in *s2s;                         /* a server stream negotiated by xmppfront
                                               (s2s_in.c): it gets the client's plaintext
                                               and the backend's bytes from routing on */

    size_t client_queued, backend_queued;   /* bytes handed to uv_write, not yet done */
    uint64_t bytes_in, bytes_out;           /* public-side plaintext, each way */
    uint64_t start_ms;
    struct {                                /* TLS 1.2 record headers after the handshake */
        size_t body_left;
        unsigned have;
        uint8_t hdr[5];
        bool on : 1;
    } recs;
    xf_ipkey ipkey;                         /* per-address counting key (iplimit.h) */
    int mslot, mtenant;                     /* metrics.h: gauge places (0 = none) */
    uint8_t stream_ns;                      /* enum xf_xml_ns of the client stream, 0 = unknown */
    uint8_t service;                        /* XF_SVC_CLIENT / XF_SVC_SERVER once routed */
    bool backend_open : 1;                  /* backend handle initialised */
    bool tls_active : 1;                    /* ssl is set up */
    bool cstream_ended : 1;                 /* the client sent </stream:stream> while policed */
    bool timer_is_auth : 1;                 /* the timer currently runs on the auth deadline */
    bool timer_is_idle : 1;                 /* ... on the idle timeout (RELAY) */
    bool header_sent : 1;                   /* we answered the current client stream header */
    bool client_paused : 1, backend_paused : 1; /* reads stopped by backpressure */
    bool client_eof : 1, backend_eof : 1;   /* that side sent FIN / close_notify */
    bool client_shut : 1, backend_shut : 1; /* we asked to shut down our write side */
    bool client_shut_done : 1;              /* ... and the client's has completed */
    bool ip_counted : 1;                    /* holds a per-address slot */
    bool ip_unauth : 1;                     /* ... and an unauthenticated one */
    bool skip_ws_before_tls : 1;            /* after <proceed/>, until the first TLS byte */
    xf_conn_addr peer_addr, local_addr;     /* peer text for logs: xf_conn_peer() */
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
/* From xf_conn_tls_setup (its last step): the handshake's xf_tls_select goes to
   the heap (c->hs, see xf_conn_sel) and becomes mbedTLS's user data. Returns 0, or
   MBEDTLS_ERR_SSL_ALLOC_FAILED. It is freed when the handshake ends (the move to
   TLS_HEADER, xf_conn_set_state) or with the connection. */
int xf_conn_tls_select_begin(xf_conn *c);
/* The peer's address as text for logs ("1.2.3.4:5", "[::1]:5"; "-" before it is
   known), in buf[XF_CONN_PEER_LEN]. Returns buf. */
#define XF_CONN_PEER_LEN 64
const char *xf_conn_peer(const xf_conn *c, char *buf);
/* The same in a temporary of the enclosing full expression's block (log arguments). */
#define XF_CONN_PEER(c) xf_conn_peer((c), (char[XF_CONN_PEER_LEN]){0})

#endif
