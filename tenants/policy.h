/*
 * policy: the per-tenant federation policy and the decision whether a peer s2s stream
 * is good enough (design.md §2, issue 7 "Configuration", XEP-0238 §2 service types).
 * Pure: no I/O. The same function serves both directions:
 *   inbound  — a remote server connected to our tenant: may we accept its `from`?
 *   outbound — we connected to the remote for our tenant: is the remote good enough,
 *              and how does the tenant authenticate to it?
 *
 * Policies (tenant file key "federation"):
 *   open       TLS offered, not required; dialback accepted with or without TLS
 *              (XEP-0238 types 2/3, "verified acceptable"). Never the default.
 *   encrypted  TLS required; a certificate proof gives SASL EXTERNAL, otherwise
 *              dialback is accepted (types 4/5). The default.
 *   trusted    TLS required and the peer must prove its domain by certificate
 *              (DANE, PKIX or POSH); authentication by SASL EXTERNAL, or by dialback
 *              over a proven certificate (XEP-0344 §2.4) (type 6).
 *
 * Prooftypes (tenant file key "proofs", issue 8; RFC 7712 §3 DNA prooftypes): the
 * certificate prooftypes the tenant accepts, in its order of preference; default
 * dane, pkix, posh. A prooftype not listed is ignored: it cannot prove the peer, the
 * reason says "not accepted by the tenant's policy", and callers skip its lookups
 * where that is cheap. An empty list means no certificate proof at all (dialback
 * only; `trusted` with an empty list is refused when the tenant file is loaded).
 *
 * Deviation from XEP-0238's table, on purpose: the XEP marks type 2 -> type 5 as
 * unsuccessful; with the definition an `encrypted` tenant with a CA
 * certificate accepts a self-signed peer by dialback over TLS, as type 4 -> 5 does.
 */
#ifndef XF_POLICY_H
#define XF_POLICY_H

#include <stddef.h>

enum xf_fed_policy { XF_FED_OPEN = 1, XF_FED_ENCRYPTED = 2, XF_FED_TRUSTED = 3 };
#define XF_FED_DEFAULT XF_FED_ENCRYPTED

/* "open", "encrypted", "trusted" ("?" for anything else). */
const char *xf_fed_policy_name(int policy);
/* The policy named s (exact, lower case), or -1. */
int xf_fed_policy_parse(const char *s);

/* Certificate prooftypes, in the order they are tried and reported (design.md §2). */
enum xf_prooftype { XF_PROOF_DANE = 0, XF_PROOF_PKIX = 1, XF_PROOF_POSH = 2,
                    XF_PROOF_COUNT = 3 };

/* "dane" -> XF_PROOF_DANE ... (exact, lower case), or -1. */
int xf_proof_parse(const char *s);

/* The certificate prooftypes a tenant accepts, in its order of preference. */
typedef struct xf_proof_order {
    int n;                             /* 0..XF_PROOF_COUNT; 0 = none (dialback only) */
    int type[XF_PROOF_COUNT];          /* enum xf_prooftype, each at most once */
} xf_proof_order;

/* dane, pkix, posh: the tenant default (design.md §2, issue 8). */
extern const xf_proof_order xf_proof_order_default;

/* 1 if order o (NULL = xf_proof_order_default) accepts prooftype t, else 0. */
int xf_proof_accepted(const xf_proof_order *o, int t);

/* Verdict of one prooftype for the peer domain. */
enum xf_proof_result {
    XF_PROOF_NOT_TRIED = 0,            /* not attempted (not implemented, no TLS ...) */
    XF_PROOF_VALID,                    /* proves the peer domain */
    XF_PROOF_INVALID,                  /* tried and failed (bad chain, wrong name ...) */
    XF_PROOF_ABSENT,                   /* nothing to check: no TLSA, no POSH file */
    XF_PROOF_ERROR                     /* indeterminate: lookup/fetch failed */
};

#define XF_PROOF_REASON_MAX 200

typedef struct xf_proof {
    int result;                        /* enum xf_proof_result */
    char reason[XF_PROOF_REASON_MAX];  /* why, one line (e.g. xf_pkix_verdict.reason) */
} xf_proof;

/* Dialback (XEP-0220) state for the peer domain on this stream. */
enum xf_db_state {
    XF_DB_NOT_TRIED = 0,               /* possible but not done yet */
    XF_DB_VALID,                       /* inbound: the authoritative server said valid;
                                          outbound: the remote answered our key valid */
    XF_DB_INVALID,                     /* key refused */
    XF_DB_ERROR,                       /* authoritative server unreachable, timeout,
                                          dialback error */
    XF_DB_UNAVAILABLE                  /* the peer offers no dialback */
};

/* What is known about one peer stream. Zero-initialised = plaintext, nothing tried. */
typedef struct xf_peer_facts {
    int tls;                           /* 1: the stream is TLS-protected */
    xf_proof proof[XF_PROOF_COUNT];    /* certificate proofs for the peer domain;
                                          ignored when tls == 0 */
    int dialback;                      /* enum xf_db_state */
    char dialback_reason[XF_PROOF_REASON_MAX];  /* optional detail for INVALID/ERROR */
    int sasl_external;                 /* 1: SASL EXTERNAL can authenticate this stream:
                                          inbound, the peer may use it (we offer it when
                                          a proof is valid); outbound, the remote offered
                                          it and has not refused it (a <failure/> sets
                                          this to 0 and the decision moves to dialback) */
} xf_peer_facts;

enum xf_fed_decision {
    XF_FED_REFUSE = 0,                 /* close: stream error / dialback error
                                          `condition` */
    XF_FED_ACCEPT_EXTERNAL,            /* authenticated by SASL EXTERNAL (auth=sasl-external) */
    XF_FED_ACCEPT_DIALBACK,            /* authenticated by dialback (auth=dialback) */
    XF_FED_NEED_DIALBACK               /* not yet: run dialback, then decide again with
                                          its result */
};

#define XF_FED_REASON_MAX 1024

typedef struct xf_fed_verdict {
    int decision;                      /* enum xf_fed_decision */
    int proven_by;                     /* enum xf_prooftype that proved the domain: the
                                          first of the tenant's order that is VALID
                                          (TLS only), or -1 */
    const char *decided_by;            /* what decided an acceptance: the proven_by
                                          prooftype's name ("dane", "pkix", "posh"),
                                          else "dialback"; NULL unless the decision
                                          is ACCEPT_EXTERNAL or ACCEPT_DIALBACK. The
                                          reason says it too ("decided by dane") */
    const char *auth;                  /* "sasl-external", "dialback" or "none" */
    const char *condition;             /* REFUSE only, the RFC 6120 / XEP-0220 condition:
                                          "policy-violation" (TLS required, or no usable
                                          method), "not-authorized" (certificate proof
                                          required), "forbidden" (dialback key invalid),
                                          "remote-connection-failed" (dialback could not
                                          complete); NULL otherwise */
    char reason[XF_FED_REASON_MAX];    /* the log text, e.g.
       "policy encrypted; tls; decided by dialback; pkix: invalid (certificate not
        trusted); dialback: valid; auth=dialback"
       "policy trusted; tls; pkix: invalid (...); posh: not accepted by the tenant's
        policy; refused: policy trusted requires a certificate proof ..." */
} xf_fed_verdict;

/* Decides per the policy (see the top of this file) with the tenant's prooftypes
   `proofs` (NULL = xf_proof_order_default); "a proof" below is one of those:
     1. policy encrypted/trusted and no TLS       -> REFUSE policy-violation
     2. a proof VALID (TLS only) and sasl_external -> ACCEPT_EXTERNAL
     3. trusted and no proof VALID                -> REFUSE not-authorized
     4. dialback VALID                            -> ACCEPT_DIALBACK
        dialback NOT_TRIED                        -> NEED_DIALBACK
        dialback INVALID                          -> REFUSE forbidden
        dialback ERROR                            -> REFUSE remote-connection-failed
        dialback UNAVAILABLE                      -> REFUSE policy-violation
   The reason names the policy, TLS, for an acceptance what decided it ("decided by
   X", v->decided_by), every accepted prooftype that was tried with its result and
   reason in the tenant's order (or "no certificate proof tried"), each prooftype the
   tenant does not accept ("X: not accepted by the tenant's policy", with "(ignored:
   RESULT)" when it was tried anyway), the dialback state, and for a refusal why.
   Returns the decision, or -1 (with v->decision = REFUSE) for a bad policy, a bad
   order or a NULL argument. */
int xf_fed_decide(int policy, const xf_proof_order *proofs, const xf_peer_facts *f,
                  xf_fed_verdict *v);

/* The first prooftype of `proofs` (NULL = default) that is VALID in f, or -1; f->tls
   is not looked at (xf_fed_decide counts proofs only over TLS). For the callers that
   act on "the certificate proves the domain" before deciding (XEP-0344 dialback
   skip, what to offer). */
int xf_fed_proven_by(const xf_proof_order *proofs, const xf_peer_facts *f);

const char *xf_fed_decision_name(int decision);   /* "refuse", "sasl-external", ... */
const char *xf_proof_name(int prooftype);         /* "dane", "pkix", "posh" */
const char *xf_proof_result_name(int result);     /* "valid", "invalid", ... */

#endif
