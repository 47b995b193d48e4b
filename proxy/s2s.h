/*
 * s2s: the server-to-server negotiation pieces that both directions share and that do
 * no I/O — the elements xmppfront writes (features, dialback requests and answers,
 * SASL EXTERNAL), the dialback bridge's answer to a <db:verify/> (design.md §2: the
 * keys are XEP-0185 HMACs over xmppfront's own secret, so any worker can check one),
 * and the per-stream table of domain pairs that decides whether a dialback answer was
 * solicited and whether a stanza's from/to pair has been authenticated
 * (XEP-0220 §2.1, §2.4, §4; RFC 6120 §4.9.3, §8.1.1.2; spec-digest §7.1, §10 cases 25–28).
 *
 * The state machines (inbound, outbound) parse elements with xmlstream and pass the
 * attributes they read; nothing here allocates except the pair table.
 */
#ifndef XF_S2S_H
#define XF_S2S_H

#include <stddef.h>

#define XF_NS_DIALBACK "jabber:server:dialback"
#define XF_NS_DIALBACK_FEATURE "urn:xmpp:features:dialback"
#define XF_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define XF_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

/* XEP-0220 §2.4 dialback error conditions (all with <error type='cancel'> except
   resource-constraint, which is 'wait'). */
enum xf_db_error {
    XF_DB_ERR_NONE = 0,
    XF_DB_ERR_ITEM_NOT_FOUND,           /* `to` is not hosted here */
    XF_DB_ERR_REMOTE_CONNECTION_FAILED, /* the authoritative server could not be reached */
    XF_DB_ERR_REMOTE_SERVER_NOT_FOUND,  /* its domain does not resolve */
    XF_DB_ERR_REMOTE_SERVER_TIMEOUT,    /* it did not answer in time */
    XF_DB_ERR_POLICY_VIOLATION,         /* e.g. TLS is required for this pair */
    XF_DB_ERR_NOT_AUTHORIZED,           /* a certificate (or POSH/DANE) proof is required */
    XF_DB_ERR_FORBIDDEN,                /* the key was invalid */
    XF_DB_ERR_NOT_ACCEPTABLE,           /* piggybacking refused */
    XF_DB_ERR_RESOURCE_CONSTRAINT,      /* use a new connection */
    XF_DB_ERR_INTERNAL_SERVER_ERROR,
};

/* Dialback answer types (XEP-0220 §2.1.3, §2.4). */
enum xf_db_type { XF_DB_TYPE_VALID = 1, XF_DB_TYPE_INVALID = 2, XF_DB_TYPE_ERROR = 3 };

const char *xf_db_error_name(enum xf_db_error e);

/* ---- writers: bytes written excluding the NUL, or -1 when cap is too small or an
   argument is missing. Attribute values are XML-escaped. `prefix` is the prefix the
   peer declared for jabber:server:dialback (XEP-0220 §2.1: use the peer's own; most
   accept only "db"); NULL means "db". ---- */

/* Receiving-server features after TLS (RFC 6120 §4.3.2; XEP-0220 §2.1; XEP-0178 §3):
   SASL EXTERNAL first when offer_external, then dialback with <errors/> when
   offer_dialback. Either may be off; with both off the features element is empty
   (the stream then cannot be authenticated and the peer should close). */
int xf_s2s_write_features(char *out, size_t cap, int offer_external, int offer_dialback);
/* Receiving-server features before TLS on a stream the tenant's policy lets go
   without it (policy open, XEP-0238 types 2/3): <starttls/> offered without
   <required/> (RFC 6120 §5.3.1), then dialback when offer_dialback. */
int xf_s2s_write_plain_features(char *out, size_t cap, int offer_dialback);

/* <db:result from=.. to=..>KEY</db:result> (step 1) */
int xf_s2s_write_db_result_request(char *out, size_t cap, const char *prefix, const char *from,
                                   const char *to, const char *key);
/* <db:verify from=.. to=.. id=..>KEY</db:verify> (step 2) */
int xf_s2s_write_db_verify_request(char *out, size_t cap, const char *prefix, const char *from,
                                   const char *to, const char *id, const char *key);
/* The answers (steps 3 and 4): <db:verify ... type='valid|invalid'/> with id, or
   <db:result ... type=.../> without one (id NULL). type XF_DB_TYPE_ERROR carries the
   <error/> child for `err`. */
int xf_s2s_write_db_answer(char *out, size_t cap, const char *prefix, int is_verify,
                           const char *from, const char *to, const char *id,
                           enum xf_db_type type, enum xf_db_error err);
/* <auth mechanism='EXTERNAL'> with the authzid base64-encoded (XEP-0178 §4; spec-digest
   §7.4); authzid NULL or "" writes '=' (zero-length initial response). */
int xf_s2s_write_sasl_external(char *out, size_t cap, const char *authzid);

/* ---- the dialback bridge (design.md §2) ---- */

/* A <db:verify from=R to=A id=SID>KEY</db:verify> (step 2) asks xmppfront, as the
   authoritative server of A (hosted here), whether KEY is the key A sent to the
   receiving server R on the stream R gave the id SID. Keys are XEP-0185:
   K = HMAC(hex(SHA256(secret)), "R A SID") — receiving (= from) first.
   Returns XF_DB_TYPE_VALID / XF_DB_TYPE_INVALID; XF_DB_TYPE_ERROR with *err = item-not-found when A
   is not hosted here (is_hosted(ud, A) == 0, XEP-0220 §2.4); -1 when from, to or id is
   missing or empty (the caller answers <improper-addressing/>, spec-digest §10 case 28).
   Never verify a key on the stream it was sent on: that is the caller's job (it knows
   which stream a key belongs to). */
int xf_s2s_answer_verify(const char *secret, int (*is_hosted)(void *, const char *), void *ud,
                         const char *from, const char *to, const char *id, const char *key,
                         size_t key_len, enum xf_db_error *err);

/* ---- domain pairs of one stream (XEP-0220 §4 piggybacking; RFC 6120 §8.1.1.2) ---- */

enum xf_pair_state { XF_PAIR_PENDING = 1, XF_PAIR_VALID = 2, XF_PAIR_INVALID = 3 };

typedef struct xf_pairs xf_pairs;

/* max_pairs bounds the table (a peer cannot make us hold unbounded state). */
xf_pairs *xf_pairs_new(unsigned max_pairs);
void xf_pairs_free(xf_pairs *p);
/* Record a request we sent or received for (local, remote). Returns 0; -1 when the
   table is full or an argument is empty; -2 when the pair already exists (a repeated
   request for a pair that is pending or valid is the peer's mistake: XEP-0220 allows
   the receiver to answer it with an error, and it changes nothing). */
int xf_pairs_add(xf_pairs *p, const char *local, const char *remote);
/* An answer for (local, remote) arrived: applied only when that pair is PENDING on this
   stream (an unsolicited or repeated answer authorises nothing, spec-digest §10 case
   26). Returns 1 when applied, 0 when dropped. */
int xf_pairs_answer(xf_pairs *p, const char *local, const char *remote, enum xf_db_type type);
/* Mark a pair valid directly (SASL EXTERNAL authenticated the stream's domains). */
int xf_pairs_set_valid(xf_pairs *p, const char *local, const char *remote);
/* 0 if unknown, else enum xf_pair_state. */
int xf_pairs_state(const xf_pairs *p, const char *local, const char *remote);
unsigned xf_pairs_count(const xf_pairs *p);
unsigned xf_pairs_valid_count(const xf_pairs *p);

/* A stanza on an authenticated s2s stream carries from (the remote's JID) and to (ours).
   Returns NULL if the pair (domain of to, domain of from) is VALID, else the stream
   error condition RFC 6120 §4.9.3 wants: "improper-addressing" (from or to missing,
   §8.1.1.2), "invalid-from" (from's domain not validated on this stream), or
   "host-unknown" (to's domain is not a validated local domain of this stream).
   JIDs are compared by domain part only (after '@', before '/'), ASCII case-insensitive. */
const char *xf_pairs_check_stanza(const xf_pairs *p, const char *from, const char *to);

#endif
