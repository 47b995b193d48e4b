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

static int finish(xf_fed_verdict *v, int decision, const char *condition, const char *why)
{
    v->decision = decision;
    v->condition = decision == XF_FED_REFUSE ? condition : NULL;
    v->auth = decision == XF_FED_ACCEPT_EXTERNAL ? "sasl-external"
            : decision == XF_FED_ACCEPT_DIALBACK ? "dialback" : "none";
    if (decision == XF_FED_REFUSE) add(v, "; refused: %s", why);
    else if (decision == XF_FED_NEED_DIALBACK) add(v, "; %s", why);
    else add(v, "; auth=%s", v->auth);
    return decision;
}

int xf_fed_decide(int policy, const xf_peer_facts *f, xf_fed_verdict *v)
{
    if (!v) return -1;
    memset(v, 0, sizeof *v);
    v->proven_by = -1;
    if (!f || xf_fed_policy_parse(xf_fed_policy_name(policy)) < 0) {
        snprintf(v->reason, sizeof v->reason, "bad policy or arguments");
        finish(v, XF_FED_REFUSE, "internal-server-error", "internal error");
        return -1;
    }

    add(v, "policy %s; %s", xf_fed_policy_name(policy), f->tls ? "tls" : "no tls");
    if (policy != XF_FED_OPEN && !f->tls)
        return finish(v, XF_FED_REFUSE, "policy-violation",
                      "TLS is required by the tenant's policy");

    /* Proofs count only over TLS: without it there is no certificate. */
    if (f->tls) {
        for (int t = 0; t < XF_PROOF_COUNT; t++) {
            const xf_proof *p = &f->proof[t];
            if (p->result == XF_PROOF_NOT_TRIED) continue;
            add_item(v, xf_proof_name(t), xf_proof_result_name(p->result), p->reason);
            if (p->result == XF_PROOF_VALID && v->proven_by < 0) v->proven_by = t;
        }
        if (v->proven_by < 0) {
            int tried = 0;
            for (int t = 0; t < XF_PROOF_COUNT; t++)
                tried |= f->proof[t].result != XF_PROOF_NOT_TRIED;
            if (!tried) add(v, "; no certificate proof tried");
        }
    }

    if (v->proven_by >= 0 && f->sasl_external)
        return finish(v, XF_FED_ACCEPT_EXTERNAL, NULL, NULL);

    if (policy == XF_FED_TRUSTED && v->proven_by < 0)
        return finish(v, XF_FED_REFUSE, "not-authorized",
                      "policy trusted requires a certificate proof of the domain; "
                      "dialback alone is not enough");

    add_item(v, "dialback", db_name(f->dialback), f->dialback_reason);
    switch (f->dialback) {
    case XF_DB_VALID:
        return finish(v, XF_FED_ACCEPT_DIALBACK, NULL, NULL);
    case XF_DB_NOT_TRIED:
        return finish(v, XF_FED_NEED_DIALBACK, NULL, v->proven_by >= 0
                      ? "dialback needed (the certificate proves the domain, XEP-0344)"
                      : "dialback needed");
    case XF_DB_INVALID:
        return finish(v, XF_FED_REFUSE, "forbidden", "the dialback key is invalid");
    case XF_DB_ERROR:
        return finish(v, XF_FED_REFUSE, "remote-connection-failed",
                      "dialback could not be completed");
    default:
        return finish(v, XF_FED_REFUSE, "policy-violation", v->proven_by >= 0
                      ? "no usable authentication: SASL EXTERNAL not available and "
                        "no dialback"
                      : "no certificate proof and no dialback");
    }
}
