/*
 * s2s_in: the inbound s2s negotiation, owned by xmppfront (issue 7 "Inbound";
 * design.md §2 "INBOUND"). A remote server's stream, once its post-TLS header is
 * routed to a tenant, is answered here, not by the backend:
 *
 *   our header (fresh id, xmlns:db, to = the peer's from) and features: SASL EXTERNAL
 *   when the peer's client certificate proves its `from` (PKIX, certs/pkix.h, role
 *   PEER_CLIENT; RFC 6125 matching, XEP-0178) and the tenant's policy accepts it,
 *   dialback (XEP-0220) unless the policy cannot accept it at all;
 *
 *   <auth mechanism='EXTERNAL'> -> <success/> + stream restart, or <failure/>;
 *   <db:result/> -> xmppfront is the receiving server: it asks R's authoritative
 *     server (proxy/remote.h xf_remote_verify), or skips that when the certificate
 *     already proves R (XEP-0344 §2.4), and decides with the tenant's policy
 *     (tenants/policy.h xf_fed_decide);
 *   <db:verify/> -> xmppfront is the authoritative server of its tenants (keys of its
 *     own outbound streams, XEP-0185 over its secret: xf_s2s_answer_verify).
 *
 * Once the first pair (R, T) is authenticated, the tenant's s2s backend gets a stream
 * from R asserted with xmppfront's own key (proxy/backend_s2s.h); when the backend
 * answers valid, the remote gets its answer and stanzas flow, every first-level
 * element from the remote checked against the stream's authenticated pairs
 * (xf_pairs_check_stanza, RFC 6120 §4.9.3, §8.1.1.2).
 *
 * The connection code (inbound.c, relay.c, conn.c) calls the xf_s2s_in_* hooks; the
 * pure helpers below are unit-tested.
 */
#ifndef XF_S2S_IN_H
#define XF_S2S_IN_H

#include <stddef.h>
#include "proxy/xmlstream.h"

struct xf_conn;
typedef struct xf_s2s_in xf_s2s_in;

/* ---- hooks (the inbound connection, proxy/conn_int.h) ---- */

/* inbound.c: the routed post-TLS header of a server stream (tenant c->tenant, checks
   done), or the pre-TLS header of one to a tenant with policy open (state
   PLAIN_STARTTLS: its features offer an optional <starttls/>, which hands the stream
   back to inbound.c, xf_conn_s2s_starttls). Answers it; the connection stays in
   TLS_HEADER (PLAIN_STARTTLS) until a pair is authenticated, then goes
   BACKEND_CONNECT -> BACKEND_HEADER -> RELAY. On failure c is closing. */
void xf_s2s_in_start(struct xf_conn *c, const xf_xml_event *ev);
/* Plaintext from the remote, after the routed header. */
void xf_s2s_in_client_input(struct xf_conn *c, const char *data, size_t len);
/* Bytes from the backend (BACKEND_HEADER and RELAY). */
void xf_s2s_in_backend_input(struct xf_conn *c, const char *data, size_t len);
/* The connection closes: no callback (remote verifications) afterwards. */
void xf_s2s_in_cancel(xf_s2s_in *s);
/* Free (after the last handle closed). Safe on NULL. */
void xf_s2s_in_free(xf_s2s_in *s);
/* For the close line: "sasl-external", "dialback" or "none"; and the last verdict
   (the xf_fed_verdict reason, or why nothing was decided). */
const char *xf_s2s_in_auth(const xf_s2s_in *s);
const char *xf_s2s_in_verdict(const xf_s2s_in *s);

/* ---- pure helpers ---- */

/* The SASL EXTERNAL initial response or <response/> text (RFC 6120 §6.4.2, XEP-0178
   §4; spec-digest §7.4): "=" (zero-length: no authzid) or base64 of an authzid that
   must equal `from` (ASCII case-insensitive). Whitespace around it is ignored.
   Returns 0 when acceptable, XF_S2S_AUTHZID_INVALID when the authzid names another
   entity (-> <invalid-authzid/>), XF_S2S_AUTHZID_MALFORMED when it is not base64 or
   decodes to nothing usable (-> <incorrect-encoding/>), XF_S2S_AUTHZID_EMPTY when
   there is no text at all (no initial response: send an empty <challenge/>). */
#define XF_S2S_AUTHZID_INVALID   -1
#define XF_S2S_AUTHZID_MALFORMED -2
#define XF_S2S_AUTHZID_EMPTY     -3
int xf_s2s_in_check_authzid(const char *text, size_t len, const char *from);

/* What to offer in the post-TLS features of a stream to a tenant with `policy`
   (enum xf_fed_policy), the peer's facts being `has_cert` (it presented a client
   certificate) and `proves_from` (the certificate proves the stream's `from`):
   *external = EXTERNAL (only when it proves `from` and the policy's decision for a
   proven certificate is ACCEPT_EXTERNAL); *dialback = dialback, unless the policy
   refuses every dialback on this stream (trusted without any certificate: no proof
   can come, not even for a piggybacked domain). tls is 0 on a plaintext stream
   (only a tenant with policy open gets one: inbound.c), which offers no EXTERNAL. */
void xf_s2s_in_offer(int policy, int tls, int has_cert, int proves_from, int *external,
                     int *dialback);

/* The TLSA owners to ask for an inbound peer's `from` (s2s_in_proof.c; RFC 7673 §3
   applied to the client certificate, as Prosody's mod_s2s_auth_dane_in), from the
   answers for _xmpps-server._tcp.FROM (xmpps) and _xmpp-server._tcp.FROM (xmpp);
   trusted = xf_dns_ad_trusted. Returns the number n > 0 of targets written to
   out[0..max) (host lower case, port; the records of secure answers only, duplicates
   dropped, in answer order, xmpps first); XF_S2S_DANE_FALLBACK when neither answer
   has records (NXDOMAIN/NODATA: ask _5269._tcp.FROM if FROM's addresses are secure);
   XF_S2S_DANE_ABSENT (DANE does not apply: resolver not trusted, SRV insecure, only
   '.' targets) or XF_S2S_DANE_ERROR (an SRV answer bogus — SERVFAIL — or
   indeterminate: never a downgrade to "absent"), with why[0..whylen) saying why. */
struct xf_dns_result;
struct xf_srv_target;
#define XF_S2S_DANE_FALLBACK 0
#define XF_S2S_DANE_ABSENT  -1
#define XF_S2S_DANE_ERROR   -2
int xf_s2s_in_dane_targets(int trusted, const struct xf_dns_result *xmpps,
                           const struct xf_dns_result *xmpp, struct xf_srv_target *out,
                           size_t max, char *why, size_t whylen);

/* Combines one target's DANE verdict into acc (start: ABSENT): VALID beats INVALID
   (usable records on some target that the certificate does not match), which beats
   ERROR (bogus or indeterminate TLSA), which beats ABSENT (no usable TLSA). So one
   matching secure target proves the peer, and a bogus answer is never read as
   "absent". An equal verdict replaces acc only when acc has no reason yet. */
struct xf_proof;
void xf_s2s_in_dane_merge(struct xf_proof *acc, const struct xf_proof *one);

#endif
