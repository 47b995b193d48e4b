/*
 * s2s_in_int.h: the inbound s2s negotiation's struct and the functions its files share.
 * Private to proxy/s2s_in.c (the hooks, lifecycle, the remote's stream and the
 * relay-time stanza checks), proxy/s2s_in_auth.c (SASL EXTERNAL and the dialback
 * decisions: db:result, db:verify, the pure helpers) and proxy/s2s_in_backend.c (the
 * backend stream: asserting accepted pairs, its answers, entering RELAY). Nothing
 * outside those files includes it; the contract is proxy/s2s_in.h.
 */
#ifndef XF_S2S_IN_INT_H
#define XF_S2S_IN_INT_H

#include <stddef.h>
#include <stdint.h>
#include "proxy/backend_s2s.h"
#include "proxy/buf.h"
#include "proxy/conn_int.h"
#include "proxy/dnswire.h"
#include "proxy/srvorder.h"
#include "proxy/remote.h"
#include "proxy/s2s.h"
#include "proxy/s2s_in.h"
#include "proxy/xmlstream.h"
#include "tenants/policy.h"

#define S2S_MAX_PAIRS 8
#define S2S_DOM_MAX 256
#define S2S_STANZA_MAX (512u * 1024u)   /* Prosody's default s2s_stanza_size_limit */

struct in_pair {
    xf_s2s_in *s;
    char remote[S2S_DOM_MAX], local[S2S_DOM_MAX];
    const xf_tenant *tenant;
    xf_remote *verify;               /* xf_remote_verify in flight */
    int accepted;                    /* our decision: yes; waiting for the backend */
    int answered;                    /* the remote got its answer */
    int sasl;                        /* authenticated by SASL EXTERNAL */
};

/* The DANE and POSH prooftypes of the stream's `from` (s2s_in_proof.c). */
#define S2S_PROOF_MAX_TARGETS 4          /* SRV targets whose TLSA is asked */
#define S2S_PROOF_WAIT_MS 5000           /* features held at most this long (or
                                            federation.negotiation_timeout_s if lower) */
enum { S2S_PROOF_NONE = 0, S2S_PROOF_PENDING, S2S_PROOF_DONE };
struct in_proof {
    int state;                       /* S2S_PROOF_*: NONE = not asked (PKIX proved
                                        `from`, no certificate, no TLS ...) */
    xf_proof dane, posh;             /* DONE: the verdicts for s->from */
    uint64_t q_srv[2], q_addr, q_posh;   /* pending ids (0 = none) */
    uint64_t q_tlsa[S2S_PROOF_MAX_TARGETS];
    xf_srv_target t[S2S_PROOF_MAX_TARGETS];
    unsigned n_tlsa;
    xf_dns_result srv[2];            /* copies: [0] xmpps, [1] xmpp (srv_done) */
    int srv_done[2], addr_done, addr_status, addr_ad;
    int dane_done, posh_done;
    uint64_t t0_ms;
    unsigned bound_ms;
};

struct xf_s2s_in {
    xf_conn *c;
    char sid[40];                    /* id of our current response header */
    char from[S2S_DOM_MAX];          /* the remote's stream `from`, "" if none */
    char to[S2S_DOM_MAX];            /* the stream's `to` (a hosted domain) */
    int policy;                      /* the stream tenant's federation policy */
    int offered_external, offered_dialback;
    int sasl_challenge;              /* empty <challenge/> sent, <response/> awaited */
    int await_header;                /* after <success/>: the restarted stream's header */
    const char *auth;                /* "none" | "sasl-external" | "dialback" */
    char verdict[600];
    xf_pairs *pairs;
    struct in_pair p[S2S_MAX_PAIRS];
    unsigned np;
    xf_bs2s *bs;                     /* the backend stream, once opened */
    const xf_tenant *btenant;        /* whose backend it is */
    xf_buf held;                     /* remote stanzas waiting for the backend */
    xf_buf bheld;                    /* backend stanzas waiting for the restarted stream's
                                        header (after SASL <success/>) */
    xf_xml *rxml;                    /* the remote's scanner once RELAY (c->cxml before) */
    uint64_t rbase;                  /* remote stream offset of c->plain's head */
    struct in_proof pr;              /* DANE / POSH of `from` (s2s_in_proof.c) */
    int cancelled;
};

/* s2s_in.c: shared helpers */
/* Bounded copy, cut at cap - 1 bytes (log text). */
void xf_s2s_in_copy(char *out, size_t cap, const char *in);
/* Lower-cased copy of a domain, a trailing dot dropped. */
void xf_s2s_in_lower_copy(char *out, size_t cap, const char *in);
/* 1 once the stream is cancelled or the connection is closing. */
int xf_s2s_in_closing(const xf_s2s_in *s);
/* Send to the remote (-1 when closing). */
int xf_s2s_in_say(xf_s2s_in *s, const char *data, size_t len);
void xf_s2s_in_set_verdict(xf_s2s_in *s, const char *text);
/* One log line per refusal; sets the verdict. */
void xf_s2s_in_log_refusal(xf_s2s_in *s, const char *remote, const char *local,
                           const char *what, const char *reason);

/* s2s_in_auth.c: SASL EXTERNAL and dialback */
/* The PKIX prooftype for `domain` (the client certificate). */
void xf_s2s_in_pkix_proof(xf_s2s_in *s, const char *domain, xf_proof *out);
int xf_s2s_in_sasl_failure(xf_s2s_in *s, const char *cond, const char *reason);
int xf_s2s_in_sasl_external(xf_s2s_in *s, const char *text, size_t len);
int xf_s2s_in_db_result(xf_s2s_in *s, const xf_xml_event *ev);
int xf_s2s_in_db_verify(xf_s2s_in *s, const xf_xml_event *ev);

/* The lookups are done (or were not needed): offer, send header and features, go on
   with what the remote sent meanwhile. */
void xf_s2s_in_proceed(xf_s2s_in *s);

/* s2s_in_proof.c: DANE and POSH of the stream's `from` */
/* Starts the lookups for s->from (TLS, a client certificate, PKIX did not prove it);
   pkix_reason for the log. 1: waiting (xf_s2s_in_proceed comes from a callback or the
   wait bound's timer); 0: nothing to wait for (s->pr.state DONE or NONE). */
int xf_s2s_in_proof_begin(xf_s2s_in *s, const char *pkix_reason);
/* Cancels every query and the fetch: no callback afterwards. Idempotent. */
void xf_s2s_in_proof_cancel(xf_s2s_in *s);
/* The certificate prooftypes for `domain` into f->proof[]: PKIX always; DANE and POSH
   (the stored verdicts) when domain is the stream's `from` and they were looked up.
   Piggybacked domains get PKIX only. */
void xf_s2s_in_cert_facts(xf_s2s_in *s, const char *domain, xf_peer_facts *f);
/* 1 if a prooftype the tenant accepts (proofs, tenants/policy.h) is VALID in f. */
int xf_s2s_in_cert_proves(const xf_peer_facts *f, const xf_proof_order *proofs);

/* s2s_in_backend.c: the backend stream */
/* The remote's answer for pair p (none for a SASL pair: <success/> was it). */
int xf_s2s_in_answer_pair(xf_s2s_in *s, struct in_pair *p, enum xf_db_type type,
                          enum xf_db_error err);
/* An accepted pair goes to the backend (the first opens the backend stream). */
int xf_s2s_in_assert_to_backend(xf_s2s_in *s, struct in_pair *p);

#endif
