/*
 * remote_int.h: the outbound remote's struct and the functions its files share.
 * Private to proxy/remote.c (lifecycle, start, public API, relay, the hosted remote,
 * teardown), proxy/remote_connect.c (resolution, candidates, TCP connects, writes, the
 * client TLS over memory BIOs) and proxy/remote_negotiate.c (the initiator's
 * negotiation: STARTTLS, features, SASL EXTERNAL, dialback, db:verify). Nothing outside
 * those files includes it; the contract is proxy/remote.h.
 *
 * One xf_remote walks one state machine:
 *
 *   RESOLVE (both SRV sets; XEP-0368 §3 merged order, proxy/srvorder.c)
 *     -> ADDR (A/AAAA of the candidate) -> CONNECT (each address, connect_timeout_s)
 *   direct TLS candidate:  CONNECT -> TLS_HANDSHAKE (SNI = remote, ALPN xmpp-server)
 *   STARTTLS candidate:    CONNECT -> PRE_HEADER -> PRE_FEATURES -> STARTTLS_WAIT
 *                          -> TLS_HANDSHAKE        (RFC 6120 §5.4; RFC 7590 §3.1)
 *                          PRE_FEATURES -> (policy open, no TLS offered) plaintext
 *   TLS_HANDSHAKE -> HEADER -> FEATURES (the stream restart, RFC 6120 §5.4.3.3)
 *   TLS_HANDSHAKE -> TLSA_WAIT -> HEADER when the target's TLSA answer is still out
 *   TLS_HANDSHAKE (or TLSA_WAIT) -> POSH_WAIT -> HEADER when neither DANE nor PKIX
 *                          proved the peer and the POSH fetch is still out
 *
 * DANE (RFC 7673, proxy/remote_dane.h): when the target's SRV answer (or, without SRV,
 * the domain's address answer) and its address answer are DNSSEC-secure and the AD bit
 * is trusted (proxy/dns.h), TLSA at _PORT._tcp.TARGET is asked as soon as the addresses
 * are known, in parallel with the connect; the certificate is judged once both the TLS
 * handshake and that answer are in. A bogus or indeterminate TLSA answer, or usable
 * TLSA records that the certificate does not match, abort that target (the next
 * candidate is tried; the attempt is in the trail and logged), never a fall back to
 * PKIX. A SERVFAIL of an SRV lookup already aborts the whole walk (srvorder.h).
 *
 * POSH (RFC 7711, proxy/posh_fetch.h): the document of the domain (the stream `to`) is
 * fetched from the start of the walk, in parallel with DNS, once per xf_remote (all
 * candidates share it). The certificate check uses the answer when it is in; when it
 * is not yet and DANE or PKIX proved the peer, POSH is not waited for (NOT_TRIED);
 * otherwise the stream waits in POSH_WAIT (bounded by the fetch's own time bound and
 * negotiation_timeout_s). Not fetched for xf_remote_verify (a db:verify needs no proof).
 *   FEATURES -> SASL_WAIT  (XEP-0178: EXTERNAL with the tenant's certificate)
 *            -> SASL_WAIT --success--> AUTH_HEADER -> AUTH_FEATURES -> RELAY
 *            -> SASL_WAIT --failure--> DB_WAIT (dialback instead, XEP-0220 §2.1)
 *            -> DB_WAIT --valid--> RELAY
 *            -> VERIFY_WAIT (xf_remote_verify) --answer--> done
 *   any -> DONE (failed or closed; handles closing, freed after the last one)
 *
 * A remote domain that xmppfront hosts itself is no remote at all: no DNS, no TLS. The
 * stream goes to that tenant's s2s backend, asserting the originating tenant with
 * xmppfront's own key (proxy/backend_s2s.h; the backend's <db:verify/> comes back to
 * the outbound listener), CONNECT -> LOCAL_WAIT -> RELAY.
 *
 * A connect failure or a failed TLS handshake moves on to the next address, then the
 * next candidate; anything after TLS is established is final. The whole walk is bounded
 * by federation.negotiation_timeout_s. The remote's stream is scanned with xmlstream in
 * every state, RELAY included: whole first-level elements go to the sink.
 */
#ifndef XF_REMOTE_INT_H
#define XF_REMOTE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <mbedtls/ssl.h>
#include <uv.h>
#include "proxy/backend_s2s.h"
#include "proxy/buf.h"
#include "proxy/dns.h"
#include "proxy/remote.h"
#include "proxy/srvorder.h"
#include "proxy/xmlstream.h"

enum r_state {
    R_RESOLVE, R_ADDR, R_CONNECT, R_PRE_HEADER, R_PRE_FEATURES, R_STARTTLS_WAIT,
    R_TLS_HANDSHAKE, R_HEADER, R_FEATURES, R_SASL_WAIT, R_AUTH_HEADER, R_AUTH_FEATURES,
    R_DB_WAIT, R_VERIFY_WAIT, R_LOCAL_WAIT, R_RELAY, R_DONE, R_TLSA_WAIT, R_POSH_WAIT
};

extern const char *const xf_remote_state_names[];   /* by enum r_state */

/* DANE state of the current candidate. */
enum r_dane {
    R_DANE_NA = 0,                     /* not applicable: r->dane is ABSENT with why */
    R_DANE_PENDING,                    /* TLSA asked, no answer yet */
    R_DANE_NONE,                       /* answered: no (secure) TLSA, r->dane ABSENT */
    R_DANE_RECORDS                     /* answered: secure records in r->tlsa */
};

#define MAX_CANDIDATES 16
#define MAX_ADDRS 16
#define R_READ_CHUNK 16384
#define R_LINGER_MS 5000
#define R_NEG_MAX_ELEMENT 65536          /* negotiation elements (features, dialback) */
#define R_RELAY_MAX_ELEMENT (1u << 20)   /* one stanza from the remote while relaying */

/* One TCP attempt; its own allocation so that a failed attempt's handle can finish
   closing while the next one starts. */
typedef struct r_sock {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    struct xf_remote *r;
} r_sock;

typedef struct r_wreq {
    uv_write_t req;
    struct xf_remote *r;
    size_t len;
    char data[];
} r_wreq;

struct xf_remote {
    xf_worker *w;
    xf_config *cfg;
    const xf_tenant *t;
    int verify;                        /* 1: xf_remote_verify */
    enum r_state state;
    int closed;                        /* teardown started: no callbacks any more */
    int in_cb;                         /* inside the open/verify callback */
    int handles;                       /* close callbacks still to come */
    char domain[XF_SRV_HOST_MAX];
    char vid[256], vkey[256];          /* verify: stream id and key */
    xf_remote_open_cb cb;
    void *ud;
    xf_remote_sink sink;

    uv_timer_t deadline;               /* negotiation_timeout_s, whole walk */
    uv_timer_t ctimer;                 /* per connect attempt; deferred failure; linger */
    uint64_t q_srv[2], q_addr;         /* pending DNS query ids (0 = none) */
    xf_dns_result srv[2];
    int srv_done[2];
    xf_srv_target cand[MAX_CANDIDATES];
    int n_cand, i_cand;
    xf_dns_addr addrs[MAX_ADDRS];
    int n_addr, i_addr;
    int any_addr;                      /* some candidate had addresses */
    int any_connected;

    /* DANE of the current candidate (reset by start_candidate) */
    int ad_trusted;                    /* xf_dns_ad_trusted(w->dns) at start */
    int srv_secure;                    /* its SRV answer was secure */
    int dane_state;                    /* enum r_dane */
    uint64_t q_tlsa;                   /* pending TLSA query id (0 = none) */
    xf_dns_result tlsa;                /* the answer (dane_state RECORDS) */
    int tlsa_have;                     /* tlsa holds a copy to free */
    xf_proof dane;                     /* the DANE verdict so far for this candidate */
    char tlsa_owner[XF_SRV_HOST_MAX + 16];

    /* POSH of the domain (whole walk) */
    uint64_t q_posh;                   /* pending fetch id (0 = none) */
    int posh_state;                    /* 0 not fetched, 1 pending, 2 answered */
    const struct xf_posh_answer *posh; /* posh_state 2: the answer (a reference) */
    int posh_cached;                   /* ... delivered from the worker's cache */

    r_sock *sock;                      /* current attempt */
    r_sock *lsock;                     /* closing gracefully (teardown), until FIN is out */
    int tls_mode;                      /* enum xf_srv_tls of the current candidate */
    mbedtls_ssl_context ssl;
    int ssl_on;
    xf_buf tin, tout;                  /* ciphertext */
    xf_xml *xml;
    xf_buf pin;                        /* plaintext since pin_base, for slicing events */
    uint64_t pin_base, last_end;
    char sid[128];                     /* the remote's stream id on the current stream */
    int remote_db_ns;                  /* its header declared xmlns:db */
    xf_remote_features feat;

    const xf_tenant *local;            /* the remote domain is this hosted tenant */
    xf_bs2s *bs2s;                     /* ... and its backend stream */

    xf_peer_facts facts;
    xf_fed_verdict verdict;
    xf_remote_result res;
    char auth[16];
    char peer[80];
    char tls_ver[16];
    char trail[400];                   /* earlier attempts, for the reason */
    char reason[XF_FED_REASON_MAX + 600];

    size_t queued;                     /* ciphertext/plaintext handed to uv_write */
    int paused, drain_wanted;
    struct xf_remote *next, *prev;     /* worker's list */
};

/* remote.c: lifetime */
void xf_remote_set_state(xf_remote *r, enum r_state s);
void xf_remote_drop_sock(xf_remote *r);
void xf_remote_finish(xf_remote *r, int ok, enum xf_db_type answer, enum xf_db_error err,
                      const char *what);
void xf_remote_fail(xf_remote *r, enum xf_db_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void xf_remote_teardown(xf_remote *r, int graceful);
void xf_remote_local_start(xf_remote *r);
void xf_remote_relay_input(xf_remote *r, const char *data, size_t len);

/* remote_connect.c: writes, client TLS, sockets, connect attempts, resolution */
int xf_remote_sock_write(xf_remote *r, const char *data, size_t len);
int xf_remote_flush_tout(xf_remote *r);
int xf_remote_send_plain(xf_remote *r, const char *data, size_t len);
int xf_remote_tls_start(xf_remote *r);
void xf_remote_tls_pump(xf_remote *r);
void xf_remote_alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void xf_remote_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);
void xf_remote_connect_current(xf_remote *r);
void xf_remote_on_srv(void *ud, uint64_t id, const xf_dns_result *res);
/* Abort the current candidate (DANE: bogus, indeterminate or mismatched TLSA): logged,
   added to the trail, then the next candidate. */
void xf_remote_abort_target(xf_remote *r, const char *why);
/* The current candidate's host ("" when none). */
const char *xf_remote_target_host(const xf_remote *r);

/* remote_negotiate.c: the initiator's negotiation */
int xf_remote_send_header(xf_remote *r);
void xf_remote_tls_up(xf_remote *r);
/* The TLSA answer arrived while the state was TLSA_WAIT (or the POSH answer while
   POSH_WAIT): judge the certificate, go on. */
void xf_remote_tls_verified(xf_remote *r);
/* Start the POSH fetch of r->domain (xf_remote_open, not for a verify). */
void xf_remote_posh_start(xf_remote *r);
const char *xf_remote_stream_error_condition(const xf_xml_event *ev);
void xf_remote_plain_input(xf_remote *r, const char *data, size_t len);

#endif
