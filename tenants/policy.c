/*
 * policy: federation policy decision. Contract in policy.h.
 */
#include "tenants/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *xf_fed_policy_name(int policy)
{
    switch (policy) {
    case XF_FED_OPEN: return "open";
    case XF_FED_ENCRYPTED: return "encrypted";
    case XF_FED_TRUSTED: return "trusted";
    default: return "?";
    }
}

int xf_fed_policy_parse(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "open") == 0) return XF_FED_OPEN;
    if (strcmp(s, "encrypted") == 0) return XF_FED_ENCRYPTED;
    if (strcmp(s, "trusted") == 0) return XF_FED_TRUSTED;
    return -1;
}

const char *xf_fed_decision_name(int d)
{
    switch (d) {
    case XF_FED_REFUSE: return "refuse";
    case XF_FED_ACCEPT_EXTERNAL: return "sasl-external";
    case XF_FED_ACCEPT_DIALBACK: return "dialback";
    case XF_FED_NEED_DIALBACK: return "need-dialback";
    default: return "?";
    }
}

const char *xf_proof_name(int t)
{
    switch (t) {
    case XF_PROOF_DANE: return "dane";
    case XF_PROOF_PKIX: return "pkix";
    case XF_PROOF_POSH: return "posh";
    default: return "?";
    }
}

int xf_proof_parse(const char *s)
{
    if (!s) return -1;
    for (int t = 0; t < XF_PROOF_COUNT; t++)
        if (strcmp(s, xf_proof_name(t)) == 0) return t;
    return -1;
}

const xf_proof_order xf_proof_order_default = {
    3, { XF_PROOF_DANE, XF_PROOF_PKIX, XF_PROOF_POSH } };

int xf_proof_accepted(const xf_proof_order *o, int t)
{
    if (!o) o = &xf_proof_order_default;
    for (int i = 0; i < o->n && i < XF_PROOF_COUNT; i++)
        if (o->type[i] == t) return 1;
    return 0;
}

/* 0..XF_PROOF_COUNT entries, each a prooftype, none twice. */
static int order_ok(const xf_proof_order *o)
{
    if (o->n < 0 || o->n > XF_PROOF_COUNT) return 0;
    for (int i = 0; i < o->n; i++) {
        if (o->type[i] < 0 || o->type[i] >= XF_PROOF_COUNT) return 0;
        for (int j = 0; j < i; j++)
            if (o->type[j] == o->type[i]) return 0;
    }
    return 1;
}

int xf_fed_proven_by(const xf_proof_order *o, const xf_peer_facts *f)
{
    if (!o) o = &xf_proof_order_default;
    if (!f || !order_ok(o)) return -1;
    for (int i = 0; i < o->n; i++)
        if (f->proof[o->type[i]].result == XF_PROOF_VALID) return o->type[i];
    return -1;
}

const char *xf_proof_result_name(int r)
{
    switch (r) {
    case XF_PROOF_NOT_TRIED: return "not tried";
    case XF_PROOF_VALID: return "valid";
    case XF_PROOF_INVALID: return "invalid";
    case XF_PROOF_ABSENT: return "absent";
    case XF_PROOF_ERROR: return "error";
    default: return "?";
    }
}

static const char *db_name(int s)
{
    switch (s) {
    case XF_DB_NOT_TRIED: return "not tried";
    case XF_DB_VALID: return "valid";
    case XF_DB_INVALID: return "invalid";
    case XF_DB_ERROR: return "error";
    case XF_DB_UNAVAILABLE: return "not offered";
    default: return "?";
    }
}

/* Append to v->reason; truncation keeps the string terminated. */
__attribute__((format(printf, 2, 3)))
static void add(xf_fed_verdict *v, const char *fmt, ...)
{
    size_t n = strlen(v->reason);
    if (n + 1 >= sizeof v->reason) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason + n, sizeof v->reason - n, fmt, ap);
    va_end(ap);
}

/* "; NAME: RESULT (REASON)" with the reason left out when empty. Control bytes in
   reasons are not expected (they come from our own code), but are replaced so that
   the log stays one line. */
static void add_item(xf_fed_verdict *v, const char *name, const char *result,
                     const char *reason)
{
    char clean[XF_PROOF_REASON_MAX];
    size_t i = 0;
    for (; reason && reason[i] && i + 1 < sizeof clean; i++)
        clean[i] = (unsigned char)reason[i] < 0x20 ? '?' : reason[i];
    clean[i] = '\0';
    if (clean[0]) add(v, "; %s: %s (%s)", name, result, clean);
    else add(v, "; %s: %s", name, result);
}

/* Inserts "; decided by X" after the first `head` bytes of v->reason (after the
   policy and TLS), so that a reason cut short by a log line's bound still says it. */
static void add_decided(xf_fed_verdict *v, size_t head)
{
    char ins[40];
    int k = snprintf(ins, sizeof ins, "; decided by %s", v->decided_by);
    size_t n = strlen(v->reason);
    if (k <= 0 || head > n) return;
    if (n + (size_t)k + 1 > sizeof v->reason) n = sizeof v->reason - (size_t)k - 1;
    memmove(v->reason + head + (size_t)k, v->reason + head, n - head);
    memcpy(v->reason + head, ins, (size_t)k);
    v->reason[n + (size_t)k] = '\0';
}

static int finish(xf_fed_verdict *v, size_t head, int decision, const char *condition,
                  const char *why)
{
    v->decision = decision;
    v->condition = decision == XF_FED_REFUSE ? condition : NULL;
    v->auth = decision == XF_FED_ACCEPT_EXTERNAL ? "sasl-external"
            : decision == XF_FED_ACCEPT_DIALBACK ? "dialback" : "none";
    if (decision == XF_FED_REFUSE) add(v, "; refused: %s", why);
    else if (decision == XF_FED_NEED_DIALBACK) add(v, "; %s", why);
    else add(v, "; auth=%s", v->auth);
    if (decision == XF_FED_ACCEPT_EXTERNAL || decision == XF_FED_ACCEPT_DIALBACK) {
        v->decided_by = v->proven_by >= 0 ? xf_proof_name(v->proven_by) : "dialback";
        add_decided(v, head);
    }
    return decision;
}

int xf_fed_decide(int policy, const xf_proof_order *proofs, const xf_peer_facts *f,
                  xf_fed_verdict *v)
{
    if (!v) return -1;
    memset(v, 0, sizeof *v);
    v->proven_by = -1;
    if (!proofs) proofs = &xf_proof_order_default;
    if (!f || xf_fed_policy_parse(xf_fed_policy_name(policy)) < 0 || !order_ok(proofs)) {
        snprintf(v->reason, sizeof v->reason, "bad policy or arguments");
        finish(v, 0, XF_FED_REFUSE, "internal-server-error", "internal error");
        return -1;
    }

    add(v, "policy %s; %s", xf_fed_policy_name(policy), f->tls ? "tls" : "no tls");
    size_t head = strlen(v->reason);
    if (policy != XF_FED_OPEN && !f->tls)
        return finish(v, head, XF_FED_REFUSE, "policy-violation",
                      "TLS is required by the tenant's policy");

    /* Proofs count only over TLS: without it there is no certificate. The accepted
       prooftypes in the tenant's order, then the others, which cannot prove. */
    if (f->tls && proofs->n == 0) {
        add(v, "; certificate proofs: none accepted by the tenant's policy");
    } else if (f->tls) {
        int tried = 0;
        for (int i = 0; i < proofs->n; i++) {
            int t = proofs->type[i];
            const xf_proof *p = &f->proof[t];
            if (p->result == XF_PROOF_NOT_TRIED) continue;
            tried = 1;
            add_item(v, xf_proof_name(t), xf_proof_result_name(p->result), p->reason);
            if (p->result == XF_PROOF_VALID && v->proven_by < 0) v->proven_by = t;
        }
        if (!tried) add(v, "; no certificate proof tried");
        for (int t = 0; t < XF_PROOF_COUNT; t++) {
            if (xf_proof_accepted(proofs, t)) continue;
            int r = f->proof[t].result;
            if (r == XF_PROOF_NOT_TRIED)
                add(v, "; %s: not accepted by the tenant's policy", xf_proof_name(t));
            else
                add(v, "; %s: not accepted by the tenant's policy (ignored: %s)",
                    xf_proof_name(t), xf_proof_result_name(r));
        }
    }

    if (v->proven_by >= 0 && f->sasl_external)
        return finish(v, head, XF_FED_ACCEPT_EXTERNAL, NULL, NULL);

    if (policy == XF_FED_TRUSTED && v->proven_by < 0)
        return finish(v, head, XF_FED_REFUSE, "not-authorized",
                      "policy trusted requires a certificate proof of the domain; "
                      "dialback alone is not enough");

    add_item(v, "dialback", db_name(f->dialback), f->dialback_reason);
    switch (f->dialback) {
    case XF_DB_VALID:
        return finish(v, head, XF_FED_ACCEPT_DIALBACK, NULL, NULL);
    case XF_DB_NOT_TRIED:
        return finish(v, head, XF_FED_NEED_DIALBACK, NULL, v->proven_by >= 0
                      ? "dialback needed (the certificate proves the domain, XEP-0344)"
                      : "dialback needed");
    case XF_DB_INVALID:
        return finish(v, head, XF_FED_REFUSE, "forbidden", "the dialback key is invalid");
    case XF_DB_ERROR:
        return finish(v, head, XF_FED_REFUSE, "remote-connection-failed",
                      "dialback could not be completed");
    default:
        return finish(v, head, XF_FED_REFUSE, "policy-violation", v->proven_by >= 0
                      ? "no usable authentication: SASL EXTERNAL not available and "
                        "no dialback"
                      : "no certificate proof and no dialback");
    }
}
