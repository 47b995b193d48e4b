/*
 * remote_negotiate: the initiator's side of an s2s stream of an xf_remote
 * (proxy/remote_int.h) up to RELAY — our stream headers, STARTTLS (RFC 6120 §5.4;
 * RFC 7590 §3.1), the remote's certificate (DANE and PKIX), its <stream:features/>, the policy
 * decision (tenants/policy.h), SASL EXTERNAL (XEP-0178), dialback (XEP-0220, key by
 * XEP-0185) and the <db:verify/> of xf_remote_verify. The remote's stream is scanned
 * with xmlstream; events are handled by on_event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <mbedtls/ssl.h>
#include "certs/dialback.h"
#include "certs/pkix.h"
#include "certs/posh.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/posh_fetch.h"
#include "proxy/remote_dane.h"
#include "proxy/tls_client.h"
#include "proxy/remote_int.h"

/* ---------------------------------------------------------------- stream headers */

static int send_str(xf_remote *r, const char *s) { return xf_remote_send_plain(r, s, strlen(s)); }

/* Our stream header toward the remote (RFC 6120 §4.7; xmlns:db declared for servers
   that want dialback offered before they answer it, XEP-0220 §2.1). */
int xf_remote_send_header(xf_remote *r)
{
    char f[300], t[300], out[900];
    if (xf_xml_escape(f, sizeof(f), r->t->domain) < 0 ||
        xf_xml_escape(t, sizeof(t), r->domain) < 0)
        return -1;
    int n = snprintf(out, sizeof(out),
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                     "xmlns:stream='" XF_NS_STREAMS "' xmlns:db='" XF_NS_DIALBACK "' "
                     "from='%s' to='%s' version='1.0'>", f, t);
    if (n < 0 || (size_t)n >= sizeof(out))
        return -1;
    return xf_remote_send_plain(r, out, (size_t)n);
}

/* ---------------------------------------------------------------- negotiation */

static void new_stream(xf_remote *r, enum r_state wait)
{
    xf_xml_reset(r->xml);
    xf_buf_reset(&r->pin);
    r->pin_base = r->last_end = 0;
    r->sid[0] = '\0';
    xf_remote_set_state(r, wait);
    if (xf_remote_send_header(r) < 0)
        xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write the stream header");
}

static void decide_and_act(xf_remote *r);

/* ---------------------------------------------------------------- POSH */

static void on_posh(void *ud, uint64_t id, const xf_posh_answer *a, int from_cache)
{
    xf_remote *r = ud;
    (void)id;
    r->q_posh = 0;
    if (r->closed)
        return;
    r->posh = xf_posh_answer_ref(a);
    r->posh_state = 2;
    r->posh_cached = from_cache;
    xf_debug("remote %s->%s: posh document %s%s", r->t->domain, r->domain, a->reason,
             from_cache ? " (cached)" : "");
    if (r->state == R_POSH_WAIT)
        xf_remote_tls_verified(r);
}

void xf_remote_posh_start(xf_remote *r)
{
    if (!xf_proof_accepted(&r->t->proofs, XF_PROOF_POSH))
        return;                                /* not the tenant's: no fetch, NOT_TRIED */
    r->q_posh = xf_posh_fetch(r->w->posh, r->domain, on_posh, r);
    r->posh_state = r->q_posh ? 1 : 0;
}

/* The POSH prooftype (RFC 7711 §4, certs/posh.h xf_posh_check: a fingerprint of the
   document served for the domain over PKIX-validated HTTPS matches the whole leaf,
   which is within its dates; no name check) from the fetch's answer into p. */
static void posh_judge(xf_remote *r, const mbedtls_x509_crt *peer, xf_proof *p)
{
    const xf_posh_answer *a = r->posh;
    char why[120];
    switch (a->status) {
    case XF_POSHF_DOC:
        if (peer != NULL && xf_posh_check(a->doc, peer, why, sizeof(why)) == XF_POSH_MATCH) {
            p->result = XF_PROOF_VALID;
            snprintf(p->reason, sizeof(p->reason), "%.70s; %.120s", why, a->reason);
            xf_info("remote %s->%s peer %s: posh: valid (%s)%s", r->t->domain, r->domain,
                    r->peer, p->reason, r->posh_cached ? " [document from the cache]" : "");
        } else {
            p->result = XF_PROOF_INVALID;
            snprintf(p->reason, sizeof(p->reason), "%.70s; %.120s",
                     peer ? why : "no certificate presented", a->reason);
        }
        return;
    case XF_POSHF_ABSENT:
        p->result = XF_PROOF_ABSENT;
        break;
    case XF_POSHF_INVALID:
        p->result = XF_PROOF_INVALID;
        break;
    default:
        p->result = XF_PROOF_ERROR;
        break;
    }
    snprintf(p->reason, sizeof(p->reason), "%s", a->reason);
}

/* Verify the remote's certificate against its domain: the PKIX prooftype (RFC 6120
   §13.7.2, RFC 6125), with the SRV target as an extra reference identity when the SRV
   answer was secure (RFC 7673 §4), the DANE prooftype (RFC 7673, remote_dane.h)
   from the target's TLSA answer, and the POSH prooftype (posh_judge) once the fetch
   has answered. Returns 0; -1 when the target was aborted (usable TLSA records that
   the certificate does not match: PKIX alone is not enough); 1 when neither DANE nor
   PKIX proved the peer and the POSH answer is still out (wait in POSH_WAIT; on_posh
   calls xf_remote_tls_verified). POSH stays NOT_TRIED when DANE or PKIX proved the
   peer before its answer came, or when nothing was fetched. */
static int check_certificate(xf_remote *r)
{
    xf_proof *p = &r->facts.proof[XF_PROOF_PKIX];
    xf_proof *d = &r->facts.proof[XF_PROOF_DANE];
    const xf_srv_target *c = &r->cand[r->i_cand];
    const char *srv_target = xf_rdane_srv_target(r->ad_trusted, r->srv_secure, c->fallback,
                                                 c->host, r->domain);
    mbedtls_x509_crt *peer = (mbedtls_x509_crt *)mbedtls_ssl_get_peer_cert(&r->ssl);
    mbedtls_x509_crt *ca = xf_tls_client_ca(r->cfg->tlsc);
    *d = r->dane;                              /* NA / NONE: ABSENT with the reason */
    if (r->dane_state == R_DANE_RECORDS) {
        int v = xf_rdane_verify(&r->tlsa, peer, ca, r->domain, srv_target, d);
        if (v == XF_RDANE_ABORT) {
            r->dane = *d;
            return -1;
        }
        if (v == XF_RDANE_VALID)
            xf_info("remote %s->%s peer %s: dane: valid (%s)", r->t->domain, r->domain,
                    r->peer, d->reason);
    }
    if (peer == NULL) {
        p->result = XF_PROOF_INVALID;
        snprintf(p->reason, sizeof(p->reason), "no certificate presented");
        return 0;
    }
    struct xf_pkix_verdict v;
    memset(&v, 0, sizeof(v));
    int ok = xf_pkix_check(peer, ca, XF_PKIX_ROLE_SERVER, r->domain, XF_SERVICE_SERVER,
                           srv_target, &v);
    p->result = ok == 1 ? XF_PROOF_VALID : XF_PROOF_INVALID;
    snprintf(p->reason, sizeof(p->reason), "%.190s", v.reason[0] ? v.reason
             : ok == 1 ? "chain and name valid" : "verification failed");
    xf_proof *h = &r->facts.proof[XF_PROOF_POSH];
    memset(h, 0, sizeof(*h));
    if (r->posh_state == 2)
        posh_judge(r, peer, h);
    else if (r->posh_state == 1 && xf_fed_proven_by(&r->t->proofs, &r->facts) < 0)
        return 1;                              /* no accepted prooftype proved it yet */
    return 0;
}

/* The certificate can be judged (TLS up, TLSA answered): wait for POSH, abort the
   target, or open the stream. Returns 1 when the stream was opened. */
static int judge_and_open(xf_remote *r)
{
    int c = check_certificate(r);
    if (c == 1) {
        xf_info("remote %s->%s peer %s: neither dane nor pkix proved it: waiting for the "
                "posh document", r->t->domain, r->domain, r->peer);
        xf_remote_set_state(r, R_POSH_WAIT);   /* on_posh goes on */
        return 0;
    }
    if (c != 0) {
        xf_remote_abort_target(r, r->dane.reason);
        return 0;
    }
    new_stream(r, R_HEADER);
    return 1;
}

void xf_remote_tls_verified(xf_remote *r)
{
    if (judge_and_open(r) && r->state == R_HEADER && r->ssl_on)
        xf_remote_tls_pump(r);                 /* records that came while waiting */
}

void xf_remote_tls_up(xf_remote *r)
{
    snprintf(r->tls_ver, sizeof(r->tls_ver), "%s", mbedtls_ssl_get_version(&r->ssl));
    r->facts.tls = 1;
    if (r->dane_state == R_DANE_PENDING) {
        xf_remote_set_state(r, R_TLSA_WAIT);   /* on_tlsa goes on */
        return;
    }
    judge_and_open(r);                         /* inside the pump: it reads on */
}

static void send_verify(xf_remote *r)
{
    char out[1200];
    int n = xf_s2s_write_db_verify_request(out, sizeof(out), "db", r->t->domain, r->domain,
                                           r->vid, r->vkey);
    xf_remote_set_state(r, R_VERIFY_WAIT);
    if (n < 0 || xf_remote_send_plain(r, out, (size_t)n) < 0)
        xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write db:verify");
}

static void send_db_result(xf_remote *r)
{
    char key[XF_DIALBACK_KEY_LEN + 1], out[1200];
    if (r->sid[0] == '\0') {
        r->facts.dialback = XF_DB_ERROR;
        snprintf(r->facts.dialback_reason, sizeof(r->facts.dialback_reason),
                 "the remote's stream header has no id");
        decide_and_act(r);
        return;
    }
    /* K = key(receiving R, originating T, the id R gave this stream) — XEP-0185 §3. */
    if (xf_dialback_key(r->cfg->federation.dialback_secret, r->domain, r->t->domain, r->sid,
                        key) != 0) {
        xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR,
                       "cannot compute the dialback key (stream id '%.60s')",
                       r->sid);
        return;
    }
    int n = xf_s2s_write_db_result_request(out, sizeof(out), "db", r->t->domain, r->domain, key);
    xf_remote_set_state(r, R_DB_WAIT);
    if (n < 0 || xf_remote_send_plain(r, out, (size_t)n) < 0)
        xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write db:result");
}

/* The policy decision (tenants/policy.h) on what is known, and the next step. */
static void decide_and_act(xf_remote *r)
{
    xf_fed_decide(r->t->federation, &r->t->proofs, &r->facts, &r->verdict);
    switch (r->verdict.decision) {
    case XF_FED_ACCEPT_EXTERNAL:
        if (r->state == R_SASL_WAIT || r->state == R_AUTH_HEADER || r->state == R_AUTH_FEATURES)
            return;
        {
            char out[600];
            int n = xf_s2s_write_sasl_external(out, sizeof(out), r->t->domain);
            xf_remote_set_state(r, R_SASL_WAIT);
            if (n < 0 || xf_remote_send_plain(r, out, (size_t)n) < 0)
                xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write SASL auth");
        }
        return;
    case XF_FED_NEED_DIALBACK:
        send_db_result(r);
        return;
    case XF_FED_ACCEPT_DIALBACK:
        snprintf(r->auth, sizeof(r->auth), "dialback");
        xf_remote_finish(r, 1, XF_DB_TYPE_VALID, XF_DB_ERR_NONE, r->verdict.reason);
        return;
    default:
        if (r->facts.dialback != XF_DB_NOT_TRIED)       /* else refused before any method */
            xf_metrics_s2s_auth(XF_M_OUT, "dialback", 0);
        xf_remote_fail(r, xf_remote_condition_error(r->verdict.condition), "%s", r->verdict.reason);
        return;
    }
}

/* Features of the stream that authenticates (after TLS, or plaintext under `open`). */
static void on_auth_features(xf_remote *r)
{
    if (r->verify) {
        send_verify(r);
        return;
    }
    r->facts.sasl_external = r->facts.tls && r->feat.external;
    r->facts.dialback = (r->feat.dialback || r->remote_db_ns) ? XF_DB_NOT_TRIED
                                                              : XF_DB_UNAVAILABLE;
    decide_and_act(r);
}

const char *xf_remote_stream_error_condition(const xf_xml_event *ev)
{
    for (int i = 0; i < ev->n_children; i++)
        if (strcmp(ev->children[i].ns, XF_NS_STREAM_ERRORS) == 0 && ev->children[i].name[0])
            return ev->children[i].name;
    return "undefined-condition";
}

static const char *db_error_condition(const xf_xml_event *ev, const char *elem, size_t len)
{
    /* <db:result type='error'><error type='cancel'><COND xmlns=stanzas/></error> */
    static _Thread_local char cond[64];
    for (int i = 0; i < ev->n_children; i++) {
        if (strcmp(ev->children[i].name, "error") != 0)
            continue;
        const char *p = memmem(elem, len, XF_NS_STANZAS, strlen(XF_NS_STANZAS));
        if (p == NULL)
            break;
        /* walk back to the '<' of the condition element */
        const char *lt = p;
        while (lt > elem && *lt != '<')
            lt--;
        size_t k = 0;
        for (const char *q = lt + 1; q < p && k + 1 < sizeof(cond) && *q != ' ' && *q != '/'; q++)
            cond[k++] = *q;
        cond[k] = '\0';
        return k ? cond : "undefined-condition";
    }
    return "undefined-condition";
}

/* One event of the remote's stream before RELAY. Returns 0 to go on, 1 when the
   stream restarts after this element (SASL success), 2 when TLS starts after it
   (<proceed/>), -1 when r finished (failed, answered). */
static int on_event(xf_remote *r, const xf_xml_event *ev, const char *elem, size_t elen)
{
    if (ev->type == XF_XML_ERROR) {
        xf_remote_fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "remote stream: %s (%s)", ev->error,
                       ev->reason ? ev->reason : "");
        return -1;
    }
    if (ev->type == XF_XML_STREAM_END) {
        xf_remote_fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED,
                       "remote closed the stream in state %s",
                       xf_remote_state_names[r->state]);
        return -1;
    }
    if (ev->type == XF_XML_HEADER) {
        snprintf(r->sid, sizeof(r->sid), "%s", ev->id ? ev->id : "");
        r->remote_db_ns = ev->has_dialback_ns;
        int v1 = ev->version && strcmp(ev->version, "1.0") >= 0;
        if (r->state == R_PRE_HEADER)
            xf_remote_set_state(r, R_PRE_FEATURES);
        else if (r->state == R_HEADER)
            xf_remote_set_state(r, R_FEATURES);
        else if (r->state == R_AUTH_HEADER)
            xf_remote_set_state(r, R_AUTH_FEATURES);
        if (!v1) {
            /* RFC 6120 §4.7.5: no version, no features. Nothing to negotiate but
               dialback (XEP-0220 §2.1, pre-1.0 servers). */
            memset(&r->feat, 0, sizeof(r->feat));
            if (r->state == R_PRE_FEATURES) {
                if (r->t->federation != XF_FED_OPEN) {
                    xf_remote_fail(r, XF_DB_ERR_POLICY_VIOLATION,
                                   "policy %s; the remote speaks pre-1.0 XMPP (no TLS)",
                                   xf_fed_policy_name(r->t->federation));
                    return -1;
                }
                on_auth_features(r);
            } else if (r->state == R_FEATURES) {
                on_auth_features(r);
            }
            return r->closed || r->state == R_DONE ? -1 : 0;
        }
        return 0;
    }
    /* ELEMENT */
    if (strcmp(ev->name, "error") == 0 && strcmp(ev->ns_uri, XF_NS_STREAMS) == 0) {
        const char *cond = xf_remote_stream_error_condition(ev);
        xf_remote_fail(r, xf_remote_condition_error(cond), "remote stream error <%s/> in state %s",
                       cond,
                       xf_remote_state_names[r->state]);
        return -1;
    }
    int is_features = strcmp(ev->name, "features") == 0 && strcmp(ev->ns_uri, XF_NS_STREAMS) == 0;
    switch (r->state) {
    case R_PRE_FEATURES:
        if (!is_features)
            return 0;
        xf_remote_parse_features(ev, elem, elen, &r->feat);
        if (!r->feat.starttls && r->t->federation == XF_FED_OPEN) {
            on_auth_features(r);               /* plaintext, allowed by `open` */
            return r->state == R_DONE || r->closed ? -1 : 0;
        }
        /* RFC 7590 §3.1: ask for TLS even when it is not advertised. */
        xf_remote_set_state(r, R_STARTTLS_WAIT);
        if (send_str(r, "<starttls xmlns='" XF_NS_TLS "'/>") < 0) {
            xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write starttls");
            return -1;
        }
        return 0;
    case R_STARTTLS_WAIT:
        if (strcmp(ev->ns_uri, XF_NS_TLS) != 0)
            return 0;
        if (strcmp(ev->name, "proceed") == 0)
            return 2;
        xf_remote_fail(r, XF_DB_ERR_POLICY_VIOLATION,
                       "policy %s; the remote refused STARTTLS (<%s/>%s)",
                       xf_fed_policy_name(r->t->federation), ev->name,
                       r->feat.starttls ? "" : ", not offered");
        return -1;
    case R_FEATURES:
        if (!is_features)
            return 0;
        xf_remote_parse_features(ev, elem, elen, &r->feat);
        on_auth_features(r);
        return r->state == R_DONE || r->closed ? -1 : 0;
    case R_SASL_WAIT:
        if (strcmp(ev->ns_uri, XF_NS_SASL) != 0)
            return 0;
        if (strcmp(ev->name, "success") == 0) {
            snprintf(r->auth, sizeof(r->auth), "sasl-external");
            return 1;                          /* RFC 6120 §6.4.6: restart the stream */
        }
        /* <failure/>: e.g. a serverAuth-only certificate refused as client certificate;
           dialback instead (XEP-0178 §4 / XEP-0220). */
        r->facts.sasl_external = 0;
        xf_metrics_s2s_auth(XF_M_OUT, "sasl-external", 0);
        decide_and_act(r);
        return r->state == R_DONE || r->closed ? -1 : 0;
    case R_AUTH_FEATURES:
        if (!is_features)
            return 0;
        xf_remote_finish(r, 1, XF_DB_TYPE_VALID, XF_DB_ERR_NONE, r->verdict.reason);
        return r->state == R_DONE || r->closed ? -1 : 0;
    case R_DB_WAIT:
        if (strcmp(ev->name, "result") != 0 || strcmp(ev->ns_uri, XF_NS_DIALBACK) != 0)
            return 0;
        if (ev->attr_from == NULL || strcasecmp(ev->attr_from, r->domain) != 0 ||
            ev->attr_to == NULL || strcasecmp(ev->attr_to, r->t->domain) != 0)
            return 0;                          /* not the answer for our pair: ignored */
        if (strcmp(ev->type_attr, "valid") == 0) {
            r->facts.dialback = XF_DB_VALID;
        } else if (strcmp(ev->type_attr, "invalid") == 0) {
            r->facts.dialback = XF_DB_INVALID;
            snprintf(r->facts.dialback_reason, sizeof(r->facts.dialback_reason),
                     "the remote answered our key invalid");
        } else {
            r->facts.dialback = XF_DB_ERROR;
            snprintf(r->facts.dialback_reason, sizeof(r->facts.dialback_reason),
                     "the remote answered type '%s' <%s/>", ev->type_attr,
                     db_error_condition(ev, elem, elen));
        }
        decide_and_act(r);
        return r->state == R_DONE || r->closed ? -1 : 0;
    case R_VERIFY_WAIT:
        if (strcmp(ev->name, "verify") != 0 || strcmp(ev->ns_uri, XF_NS_DIALBACK) != 0)
            return 0;
        if (ev->attr_id == NULL || strcmp(ev->attr_id, r->vid) != 0)
            return 0;
        if (strcmp(ev->type_attr, "valid") == 0)
            xf_remote_finish(r, 1, XF_DB_TYPE_VALID, XF_DB_ERR_NONE, "db:verify answered valid");
        else if (strcmp(ev->type_attr, "invalid") == 0)
            xf_remote_finish(r, 1, XF_DB_TYPE_INVALID, XF_DB_ERR_NONE,
                             "db:verify answered invalid");
        else
            xf_remote_fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED,
                           "db:verify answered type '%s' <%s/>",
                           ev->type_attr, db_error_condition(ev, elem, elen));
        return -1;
    default:
        return 0;
    }
}

/* Plaintext of the remote's stream. Before RELAY it is scanned into events; in RELAY
   whole first-level elements go to the sink (xf_remote_relay_input). */
void xf_remote_plain_input(xf_remote *r, const char *data, size_t len)
{
    if (r->state == R_RELAY) {
        xf_remote_relay_input(r, data, len);
        return;
    }
    if (xf_buf_append(&r->pin, data, len) < 0 || xf_xml_push(r->xml, data, len) < 0) {
        xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    xf_xml_event ev;
    while (!r->closed && r->state != R_RELAY && r->state != R_DONE &&
           xf_xml_next(r->xml, &ev) != XF_XML_NONE) {
        const char *elem = NULL;
        size_t elen = 0;
        if (ev.type == XF_XML_ELEMENT) {
            elem = xf_buf_head(&r->pin) + (ev.span.start - r->pin_base);
            elen = (size_t)(ev.span.end - ev.span.start);
        }
        if (ev.type != XF_XML_ERROR)
            r->last_end = ev.span.end;
        int act = on_event(r, &ev, elem, elen);
        if (act < 0)
            return;
        if (act > 0) {
            /* What follows this element belongs to TLS (2) or to a new stream (1). */
            size_t off = (size_t)(ev.span.end - r->pin_base);
            size_t rest = xf_buf_size(&r->pin) - off;
            char *tail = rest ? malloc(rest) : NULL;
            if (rest && tail == NULL) {
                xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
                return;
            }
            if (rest)
                memcpy(tail, xf_buf_head(&r->pin) + off, rest);
            if (act == 2) {
                xf_xml_reset(r->xml);
                xf_buf_reset(&r->pin);
                r->pin_base = r->last_end = 0;
                if (xf_remote_tls_start(r) != 0) {
                    free(tail);
                    xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "TLS setup failed");
                    return;
                }
                if (rest)
                    xf_buf_append(&r->tin, tail, rest);
                free(tail);
                xf_remote_tls_pump(r);
                return;
            }
            new_stream(r, R_AUTH_HEADER);
            if (!r->closed && rest)
                xf_remote_plain_input(r, tail, rest);
            free(tail);
            return;
        }
    }
    if (r->closed || r->state == R_DONE)
        return;
    if (r->state == R_RELAY) {
        /* Authenticated inside the loop: what follows the last event is relay input,
           read by a scanner without the negotiation's element limit. */
        size_t off = (size_t)(r->last_end - r->pin_base);
        size_t rest = xf_buf_size(&r->pin) - off;
        char *tail = rest ? malloc(rest) : NULL;
        if (tail)
            memcpy(tail, xf_buf_head(&r->pin) + off, rest);
        xf_xml_free(r->xml);
        r->xml = NULL;
        xf_buf_reset(&r->pin);
        if (tail) {
            xf_remote_relay_input(r, tail, rest);
            free(tail);
        }
        return;
    }
    xf_buf_consume(&r->pin, (size_t)(r->last_end - r->pin_base));
    r->pin_base = r->last_end;
}
