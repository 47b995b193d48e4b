/*
 * s2s_in_auth: the inbound s2s authentication decisions (see s2s_in.h, s2s_in.c):
 * the pure helpers (authzid check, what to offer), the PKIX prooftype of the client
 * certificate, SASL EXTERNAL (RFC 6120 §6.4, XEP-0178) and dialback as the receiving
 * server (<db:result/>, XEP-0220 §2.1.1) and as the authoritative server
 * (<db:verify/>, XEP-0220 §2.1.2). Accepted pairs go to s2s_in_backend.c.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <mbedtls/base64.h>
#include <mbedtls/ssl.h>
#include "certs/pkix.h"
#include "proxy/conn_int.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/remote.h"
#include "proxy/s2s.h"
#include "proxy/s2s_in.h"
#include "proxy/s2s_in_int.h"
#include "tenants/policy.h"

/* ------------------------------------------------------------------ pure helpers */

int xf_s2s_in_check_authzid(const char *text, size_t len, const char *from)
{
    while (len > 0 && strchr(" \t\r\n", *text) && *text)
        text++, len--;
    while (len > 0 && strchr(" \t\r\n", text[len - 1]) && text[len - 1])
        len--;
    if (len == 0)
        return XF_S2S_AUTHZID_EMPTY;
    if (len == 1 && text[0] == '=')
        return 0;                                 /* no authzid: the stream's from */
    unsigned char dec[S2S_DOM_MAX + 1];
    size_t n = 0;
    if (mbedtls_base64_decode(dec, sizeof(dec) - 1, &n, (const unsigned char *)text, len) != 0 ||
        n == 0 || memchr(dec, 0, n))
        return XF_S2S_AUTHZID_MALFORMED;
    dec[n] = '\0';
    if (from == NULL || *from == '\0' || strcasecmp((const char *)dec, from) != 0)
        return XF_S2S_AUTHZID_INVALID;
    return 0;
}

void xf_s2s_in_offer(int policy, int tls, int has_cert, int proves_from, int *external,
                     int *dialback)
{
    xf_peer_facts f;
    xf_fed_verdict v;
    memset(&f, 0, sizeof(f));
    f.tls = tls;
    f.sasl_external = 1;
    f.proof[XF_PROOF_PKIX].result = proves_from ? XF_PROOF_VALID : XF_PROOF_INVALID;
    /* proves_from already counts only the tenant's prooftypes: the default order here. */
    *external = proves_from && xf_fed_decide(policy, NULL, &f, &v) == XF_FED_ACCEPT_EXTERNAL;
    /* Dialback: refused outright only when no outcome of it could be accepted. */
    f.sasl_external = 0;
    f.dialback = XF_DB_VALID;
    f.proof[XF_PROOF_PKIX].result = has_cert ? XF_PROOF_VALID : XF_PROOF_ABSENT;
    *dialback = xf_fed_decide(policy, NULL, &f, &v) == XF_FED_ACCEPT_DIALBACK;
}

/* The PKIX prooftype for `domain` (RFC 6120 §13.7.2, XEP-0178): the client certificate
   against federation.ca_file, role PEER_CLIENT, SRV-ID _xmpp-server. */
void xf_s2s_in_pkix_proof(xf_s2s_in *s, const char *domain, xf_proof *out)
{
    /* xf_pkix_check takes non-const chains but only reads them. */
    mbedtls_x509_crt *chain = s->c->tls_active
        ? (mbedtls_x509_crt *)mbedtls_ssl_get_peer_cert(&s->c->ssl) : NULL;
    memset(out, 0, sizeof(*out));
    if (chain == NULL) {
        out->result = XF_PROOF_ABSENT;
        snprintf(out->reason, sizeof(out->reason), "%s",
                 s->c->tls_active ? "no client certificate" : "no TLS");
        return;
    }
    if (s->c->sel.peer_ca == NULL) {
        out->result = XF_PROOF_ERROR;
        snprintf(out->reason, sizeof(out->reason), "no CA set loaded (federation.ca_file)");
        return;
    }
    struct xf_pkix_verdict v;
    memset(&v, 0, sizeof(v));
    int r = xf_pkix_check(chain, s->c->sel.peer_ca, XF_PKIX_ROLE_PEER_CLIENT, domain,
                          XF_SERVICE_SERVER, NULL, &v);
    out->result = r == 1 ? XF_PROOF_VALID : XF_PROOF_INVALID;
    xf_s2s_in_copy(out->reason, sizeof(out->reason),
                   r == 1 ? (v.id.reason[0] ? v.id.reason : "valid") : v.reason);
}

static int is_hosted(void *ud, const char *domain)
{
    return xf_registry_find((const xf_registry *)ud, domain) != NULL;
}

static enum xf_db_error db_error_for(const char *cond)
{
    if (cond == NULL)
        return XF_DB_ERR_INTERNAL_SERVER_ERROR;
    if (strcmp(cond, "policy-violation") == 0)
        return XF_DB_ERR_POLICY_VIOLATION;
    if (strcmp(cond, "not-authorized") == 0)
        return XF_DB_ERR_NOT_AUTHORIZED;
    if (strcmp(cond, "forbidden") == 0)
        return XF_DB_ERR_FORBIDDEN;
    if (strcmp(cond, "remote-connection-failed") == 0)
        return XF_DB_ERR_REMOTE_CONNECTION_FAILED;
    return XF_DB_ERR_INTERNAL_SERVER_ERROR;
}

/* ------------------------------------------------------------------ SASL EXTERNAL */

int xf_s2s_in_sasl_failure(xf_s2s_in *s, const char *cond, const char *reason)
{
    char out[200];
    int n = snprintf(out, sizeof(out), "<failure xmlns='" XF_NS_SASL "'><%s/></failure>", cond);
    xf_s2s_in_log_refusal(s, s->from, s->to, "sasl-external", reason);
    return xf_s2s_in_say(s, out, (size_t)n);
}

/* RFC 6120 §6.4, XEP-0178 §4: the initial response (or the <response/> after our empty
   challenge). */
int xf_s2s_in_sasl_external(xf_s2s_in *s, const char *text, size_t len)
{
    int r = xf_s2s_in_check_authzid(text, len, s->from);
    if (r == XF_S2S_AUTHZID_EMPTY && !s->sasl_challenge) {
        static const char ch[] = "<challenge xmlns='" XF_NS_SASL "'/>";
        s->sasl_challenge = 1;
        return xf_s2s_in_say(s, ch, sizeof(ch) - 1);
    }
    s->sasl_challenge = 0;
    if (r == XF_S2S_AUTHZID_INVALID)
        return xf_s2s_in_sasl_failure(s, "invalid-authzid", "the authzid is not the stream's from");
    if (r != 0)
        return xf_s2s_in_sasl_failure(s, "incorrect-encoding", "the authzid is not base64");
    const xf_tenant *t = xf_registry_find(s->c->config->registry, s->to);
    xf_peer_facts f;
    xf_fed_verdict v;
    memset(&f, 0, sizeof(f));
    f.tls = s->c->tls_active;
    f.sasl_external = 1;
    xf_s2s_in_cert_facts(s, s->from, &f);        /* PKIX, and DANE / POSH of `from` */
    f.dialback = XF_DB_NOT_TRIED;
    int d = xf_fed_decide(t ? t->federation : XF_FED_DEFAULT, t ? &t->proofs : NULL, &f, &v);
    if (d != XF_FED_ACCEPT_EXTERNAL || t == NULL || s->np >= S2S_MAX_PAIRS)
        return xf_s2s_in_sasl_failure(s, "not-authorized", v.reason);
    struct in_pair *p = &s->p[s->np++];
    memset(p, 0, sizeof(*p));
    p->s = s;
    snprintf(p->remote, sizeof(p->remote), "%s", s->from);
    snprintf(p->local, sizeof(p->local), "%s", s->to);
    p->tenant = t;
    p->sasl = 1;
    p->answered = 1;
    /* The pair counts as authenticated for stanzas now (RFC 6120 §6.4.6): they are
       held until the backend has accepted it too. <success/> must not wait for the
       backend: a remote's verification stream (it authenticates by EXTERNAL, then asks
       <db:verify/> for our key) would deadlock when the backend's check of our
       assertion needs that same remote's dialback to finish first (Prosody 13 as the
       backend: its db:verify waits for its own outgoing stream; found in the matrix). */
    xf_pairs_set_valid(s->pairs, p->local, p->remote);
    s->auth = "sasl-external";
    xf_s2s_in_set_verdict(s, v.reason);
    xf_metrics_s2s_auth(XF_M_IN, "sasl-external", 1);
    xf_conn_mark_authenticated(s->c);     /* the remote is authenticated (RFC 6120 §6.4.6) */
    xf_xml_set_max_element(s->c->cxml, S2S_STANZA_MAX);   /* its stanzas may be large now */
    xf_info("conn id=%llu s2s authenticated peer=%s tenant=%s auth=sasl-external verdict=%s "
            "remote=%s", (unsigned long long)s->c->id, XF_CONN_PEER(s->c), t->domain,
            xf_log_quote((char[700]){0}, 700, v.reason), s->from);
    static const char ok[] = "<success xmlns='" XF_NS_SASL "'/>";
    if (xf_s2s_in_say(s, ok, sizeof(ok) - 1) < 0)
        return -1;
    s->await_header = 1;             /* the stream restarts (RFC 6120 §6.4.6) */
    s->c->header_sent = 0;
    return xf_s2s_in_assert_to_backend(s, p);
}

/* ------------------------------------------------------------------ dialback */

/* Our decision for pair p with what is known; accept -> backend, refuse -> answer. */
static int decide_pair(xf_s2s_in *s, struct in_pair *p, xf_peer_facts *f)
{
    xf_fed_verdict v;
    int d = xf_fed_decide(p->tenant->federation, &p->tenant->proofs, f, &v);
    if (d == XF_FED_NEED_DIALBACK)
        return 1;                                     /* caller starts the verification */
    if (d == XF_FED_ACCEPT_DIALBACK || d == XF_FED_ACCEPT_EXTERNAL) {
        if (strcmp(s->auth, "none") == 0)
            s->auth = "dialback";
        xf_s2s_in_set_verdict(s, v.reason);
        xf_metrics_s2s_auth(XF_M_IN, "dialback", 1);
        char q[700];
        xf_info("conn id=%llu s2s pair accepted peer=%s tenant=%s remote=%s local=%s "
                "auth=dialback verdict=%s", (unsigned long long)s->c->id, XF_CONN_PEER(s->c),
                p->tenant->domain, p->remote, p->local, xf_log_quote(q, sizeof(q), v.reason));
        return xf_s2s_in_assert_to_backend(s, p) < 0 ? -1 : 0;
    }
    xf_s2s_in_log_refusal(s, p->remote, p->local, "dialback", v.reason);
    int only = xf_pairs_valid_count(s->pairs) == 0;
    xf_pairs_answer(s->pairs, p->local, p->remote, XF_DB_TYPE_INVALID);
    if (v.condition && strcmp(v.condition, "forbidden") == 0) {
        if (only) {
            /* XEP-0220 §2.3.1 / spec-digest §7.1: invalid on the only pair -> close. */
            static const char end[] = "</stream:stream>";
            if (xf_s2s_in_answer_pair(s, p, XF_DB_TYPE_INVALID, XF_DB_ERR_NONE) < 0 ||
                xf_s2s_in_say(s, end, sizeof(end) - 1) < 0)
                return -1;
            xf_conn_finish(s->c, "s2s: dialback key invalid on the only pair");
            return -1;
        }
        return xf_s2s_in_answer_pair(s, p, XF_DB_TYPE_ERROR, XF_DB_ERR_FORBIDDEN);
    }
    return xf_s2s_in_answer_pair(s, p, XF_DB_TYPE_ERROR, db_error_for(v.condition));
}

static void on_verified(void *ud, xf_remote *r, const xf_remote_result *res)
{
    struct in_pair *p = ud;
    xf_s2s_in *s = p->s;
    (void)r;
    p->verify = NULL;                  /* the verify stream is done with the callback */
    if (xf_s2s_in_closing(s))
        return;
    xf_peer_facts f;
    memset(&f, 0, sizeof(f));
    f.tls = s->c->tls_active;
    xf_s2s_in_cert_facts(s, p->remote, &f);
    if (res->ok && res->answer == XF_DB_TYPE_VALID) {
        f.dialback = XF_DB_VALID;
    } else if (res->ok && res->answer == XF_DB_TYPE_INVALID) {
        f.dialback = XF_DB_INVALID;
        snprintf(f.dialback_reason, sizeof(f.dialback_reason),
                 "the authoritative server said invalid");
    } else {
        f.dialback = XF_DB_ERROR;
        snprintf(f.dialback_reason, sizeof(f.dialback_reason), "%s%s%s",
                 res->ok ? "the authoritative server answered with an error"
                         : xf_db_error_name(res->error),
                 res->reason ? ": " : "", res->reason ? res->reason : "");
    }
    decide_pair(s, p, &f);
}

/* <db:result from=R to=T>KEY</db:result> (XEP-0220 §2.1.1): we are T's receiving
   server. */
int xf_s2s_in_db_result(xf_s2s_in *s, const xf_xml_event *ev)
{
    char R[S2S_DOM_MAX], T[S2S_DOM_MAX], out[1200];
    if (!ev->attr_from || !*ev->attr_from || !ev->attr_to || !*ev->attr_to ||
        strlen(ev->attr_from) >= S2S_DOM_MAX || strlen(ev->attr_to) >= S2S_DOM_MAX) {
        xf_conn_stream_error(s->c, "improper-addressing", NULL, "db:result without from/to");
        return -1;
    }
    xf_s2s_in_lower_copy(R, sizeof(R), ev->attr_from);
    xf_s2s_in_lower_copy(T, sizeof(T), ev->attr_to);
    const xf_tenant *t = xf_registry_find(s->c->config->registry, T);
    if (t == NULL) {
        /* XEP-0220 §2.4: not hosted -> item-not-found, the stream stays. */
        xf_s2s_in_log_refusal(s, R, T, "dialback", "the receiving domain is not hosted here");
        int n = xf_s2s_write_db_answer(out, sizeof(out), NULL, 0, T, R, NULL, XF_DB_TYPE_ERROR,
                                       XF_DB_ERR_ITEM_NOT_FOUND);
        return n < 0 ? 0 : xf_s2s_in_say(s, out, (size_t)n);
    }
    int r = s->np < S2S_MAX_PAIRS ? xf_pairs_add(s->pairs, T, R) : -1;
    if (r == -2) {
        xf_debug("conn id=%llu repeated db:result for %s -> %s ignored",
                 (unsigned long long)s->c->id, R, T);
        return 0;
    }
    if (r < 0) {
        int n = xf_s2s_write_db_answer(out, sizeof(out), NULL, 0, T, R, NULL, XF_DB_TYPE_ERROR,
                                       XF_DB_ERR_RESOURCE_CONSTRAINT);
        return n < 0 ? 0 : xf_s2s_in_say(s, out, (size_t)n);
    }
    struct in_pair *p = &s->p[s->np++];
    memset(p, 0, sizeof(*p));
    p->s = s;
    snprintf(p->remote, sizeof(p->remote), "%s", R);
    snprintf(p->local, sizeof(p->local), "%s", T);
    p->tenant = t;

    xf_peer_facts f;
    memset(&f, 0, sizeof(f));
    f.tls = s->c->tls_active;        /* plaintext only for policy open (inbound.c) */
    xf_s2s_in_cert_facts(s, R, &f);   /* DANE / POSH too when R is the stream's from;
                                         a piggybacked R: PKIX only */
    if (xf_s2s_in_cert_proves(&f, &t->proofs)) {
        /* XEP-0344 §2.4 "dialback without dialback": the certificate proves R. */
        f.dialback = XF_DB_VALID;
        snprintf(f.dialback_reason, sizeof(f.dialback_reason),
                 "skipped: the certificate proves the domain (XEP-0344)");
    }
    int d = decide_pair(s, p, &f);
    if (d != 1)
        return d;
    /* Ask R's authoritative server about KEY for this stream's id (step 2). */
    char key[XF_XML_MAX_TEXT + 1];
    size_t kl = ev->text_len < XF_XML_MAX_TEXT ? ev->text_len : XF_XML_MAX_TEXT;
    memcpy(key, ev->text, kl);
    key[kl] = '\0';
    p->verify = xf_remote_verify(s->c->w, s->c->config, t, R, s->sid, key, on_verified, p);
    if (p->verify == NULL) {
        f.dialback = XF_DB_ERROR;
        snprintf(f.dialback_reason, sizeof(f.dialback_reason), "could not start the verification");
        return decide_pair(s, p, &f);
    }
    return 0;
}

/* <db:verify from=R to=T id=ID>KEY</db:verify> (XEP-0220 §2.1.2): R checks a key that
   T (xmppfront's outbound side) sent it on another stream. */
int xf_s2s_in_db_verify(xf_s2s_in *s, const xf_xml_event *ev)
{
    char out[1400];
    enum xf_db_error err = XF_DB_ERR_NONE;
    int r;
    if (ev->attr_id && strcmp(ev->attr_id, s->sid) == 0) {
        /* Never verify a key on the stream it was sent on (spec-digest §7.1): a key for
           this stream's id would be one we never sent on an outbound stream. */
        r = XF_DB_TYPE_INVALID;
    } else {
        r = xf_s2s_answer_verify(s->c->config->federation.dialback_secret, is_hosted,
                                 (void *)s->c->config->registry, ev->attr_from, ev->attr_to,
                                 ev->attr_id, ev->text, ev->text_len, &err);
    }
    if (r < 0) {
        xf_conn_stream_error(s->c, "improper-addressing", NULL, "db:verify without from/to/id");
        return -1;
    }
    char q[300];
    xf_info("conn id=%llu s2s db:verify peer=%s from=%s answered %s",
            (unsigned long long)s->c->id, XF_CONN_PEER(s->c),
            xf_log_quote(q, sizeof(q), ev->attr_from),
            r == XF_DB_TYPE_VALID ? "valid" : r == XF_DB_TYPE_INVALID ? "invalid" : "error");
    int n = xf_s2s_write_db_answer(out, sizeof(out), NULL, 1, ev->attr_to, ev->attr_from,
                                   ev->attr_id, (enum xf_db_type)r, err);
    return n < 0 ? 0 : xf_s2s_in_say(s, out, (size_t)n);
}
