/*
 * remote: s2s streams that xmppfront itself opens toward other XMPP servers, on the
 * worker's loop (design.md §1 "Outbound", §2). Two uses:
 *
 *  - xf_remote_open: an authenticated stream from a hosted domain T to a remote domain R,
 *    for the backend's outgoing s2s (proxy/outbound.c). Resolve R (_xmpps-server and
 *    _xmpp-server merged, XEP-0368; A/AAAA:5269 fallback; proxy/dns.c + srvorder.c),
 *    connect candidates in order, TLS (direct TLS with SNI = R and ALPN xmpp-server, or
 *    STARTTLS), verify R's certificate (certs/: DANE per proxy/remote_dane.h, PKIX, and
 *    POSH from R's document fetched in parallel, proxy/posh_fetch.h), then
 *    authenticate T: SASL EXTERNAL with T's certificate when offered, else dialback with
 *    xmppfront's own key K(R, T, remote stream id) (XEP-0185), whose <db:verify/> the
 *    remote sends to T's authoritative server = xmppfront's public s2s port, where
 *    xf_s2s_answer_verify answers it. The tenant's federation policy (tenants/policy.h)
 *    decides whether what was proven is enough.
 *
 *  - xf_remote_verify: as receiving server of an inbound <db:result/> (proxy/s2s_in.c),
 *    ask R's authoritative server whether KEY is valid: connect to R as above, send
 *    <db:verify from=T to=R id=SID>KEY</db:verify> on a stream of its own, report the
 *    answer (XEP-0220 §2.1.2).
 *
 * Results come back by callback; xf_remote_cancel() guarantees no callback afterwards
 * (style.md §7). A callback is never called from inside the call that started it.
 */
#ifndef XF_REMOTE_H
#define XF_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include "proxy/s2s.h"
#include "proxy/worker.h"
#include "tenants/policy.h"

typedef struct xf_remote xf_remote;

/* Outcome of opening or verifying. */
typedef struct xf_remote_result {
    int ok;                        /* 1: authenticated (open) / answer received (verify) */
    enum xf_db_type answer;        /* verify: XF_DB_TYPE_VALID / XF_DB_TYPE_INVALID / XF_DB_TYPE_ERROR */
    enum xf_db_error error;        /* !ok: the dialback error to give the backend
                                      (remote-server-not-found, remote-connection-failed,
                                      remote-server-timeout, not-authorized, policy-violation,
                                      ...) */
    const char *auth;              /* "sasl-external" | "dialback" | "none" */
    const char *reason;            /* one log line: address tried, TLS, each prooftype's
                                      verdict, why it failed (xf_fed_verdict.reason) */
    const char *peer;              /* "host:port" connected to, or "-" */
} xf_remote_result;

/* Open: called once. On ok, the stream is relaying-ready: the remote's stanzas come to
   on_data (plaintext, whole first-level elements or raw bytes — see xf_remote_sink),
   and xf_remote_send() writes toward it. On !ok, r is already gone. */
typedef void (*xf_remote_open_cb)(void *ud, xf_remote *r, const xf_remote_result *res);

/* Where an open stream's bytes go after authentication. */
typedef struct xf_remote_sink {
    /* Plaintext from the remote; return 0, or -1 to ask for a pause (backpressure: the
       remote's reads stop until xf_remote_resume). */
    int (*on_data)(void *ud, const char *data, size_t len);
    /* The remote closed, errored or timed out; r is gone after this returns. */
    void (*on_close)(void *ud, const char *reason);
    /* The remote's write queue fell below the low watermark (resume the other side). */
    void (*on_drain)(void *ud);
    void *ud;
} xf_remote_sink;

/* Start opening a stream from tenant t (its domain is the stream's `from`) to `remote`.
   cfg is the snapshot t belongs to (the caller's connection's): the remote stream
   holds a reference and uses its client TLS (cfg->tlsc) and limits, whatever reloads
   happen meanwhile. Returns the handle (already known to the caller so it can cancel),
   or NULL when it could not even start (no memory). */
xf_remote *xf_remote_open(xf_worker *w, xf_config *cfg, const xf_tenant *t,
                          const char *remote, xf_remote_open_cb cb, void *ud);

/* Ask remote's authoritative server about KEY (sent by `remote` to tenant t on our
   inbound stream with id stream_id). cb gets ok=1 and answer VALID/INVALID, or ok=0
   with an error. */
xf_remote *xf_remote_verify(xf_worker *w, xf_config *cfg, const xf_tenant *t,
                            const char *remote, const char *stream_id, const char *key,
                            xf_remote_open_cb cb, void *ud);

void xf_remote_set_sink(xf_remote *r, const xf_remote_sink *sink);
/* Write plaintext toward the remote (after ok). Returns 0, or -1 if r is closing. */
int xf_remote_send(xf_remote *r, const char *data, size_t len);
/* Bytes queued toward the remote and not yet written (for watermarks). */
size_t xf_remote_queued(const xf_remote *r);
void xf_remote_pause(xf_remote *r);
/* The TLS version of the stream ("TLSv1.3"), or "none" (plaintext, or not yet). */
const char *xf_remote_tls(const xf_remote *r);
void xf_remote_resume(xf_remote *r);
/* Close with </stream:stream> (graceful) and free once done; no callbacks after it.
   Also cancels an open or verify in progress. Safe on NULL.
   Lifetime (both open and verify): r stays valid until the callback reporting !ok
   returns, and for xf_remote_verify until its callback returns whatever the answer —
   a verify stream is closed by remote.c itself once answered. Calling xf_remote_close
   from inside such a callback is allowed (it does nothing more); after it, r must not
   be used. An open that reported ok belongs to the caller until xf_remote_close or
   sink.on_close. */
void xf_remote_close(xf_remote *r, const char *reason);

/* ---- pure helpers of remote.c, exposed for the unit tests ---- */

/* What a remote's <stream:features/> offers (RFC 6120 §4.3.2, §5.3.1, §6.3.3;
   XEP-0220 §2.1 / XEP-0288-free dialback feature). */
typedef struct xf_remote_features {
    int starttls;                  /* <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/> */
    int external;                  /* SASL mechanisms include EXTERNAL */
    int dialback;                  /* <dialback xmlns='urn:xmpp:features:dialback'/> */
    int mechanisms;                /* a <mechanisms/> element was present */
} xf_remote_features;

struct xf_xml_event;
/* Reads the features element ev (an XF_XML_ELEMENT named features in the streams
   namespace) whose bytes are elem[0..len) (elem is the span ev->span, so child spans
   are taken relative to ev->span.start). Returns 0, or -1 when ev is not a features
   element or the spans do not fit len. */
int xf_remote_parse_features(const struct xf_xml_event *ev, const char *elem, size_t len,
                             xf_remote_features *out);
/* 1 if the bytes of a <mechanisms/> element list the mechanism `name` (a
   <mechanism>NAME</mechanism> child, any prefix, whitespace around NAME ignored). */
int xf_remote_mechanisms_have(const char *mech, size_t len, const char *name);
/* The dialback error to give the backend for a policy refusal condition
   (xf_fed_verdict.condition) or a remote's stream/dialback error condition. */
enum xf_db_error xf_remote_condition_error(const char *condition);

#endif
