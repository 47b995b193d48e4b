/*
 * s2s_in: the inbound s2s negotiation owned by xmppfront (see s2s_in.h).
 *
 * Connection states used: TLS_HEADER while negotiating with the remote (the routed
 * header has been answered by us), BACKEND_CONNECT / BACKEND_HEADER while the backend
 * stream is opened and the first pair asserted to it, RELAY once the backend accepted
 * it. Until RELAY the auth deadline (limits.auth_timeout_s) bounds every timer (the
 * remote's scanner is c->cxml, conn.c's rule), and every remote element is at most
 * max_header_bytes; afterwards S2S_STANZA_MAX.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <mbedtls/base64.h>
#include <mbedtls/ssl.h>
#include "certs/pkix.h"
#include "proxy/backend_s2s.h"
#include "proxy/conn_int.h"
#include "proxy/log.h"
#include "proxy/proxyproto.h"
#include "proxy/remote.h"
#include "proxy/s2s.h"
#include "proxy/s2s_in.h"
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
    int cancelled;
};

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
    *external = proves_from && xf_fed_decide(policy, &f, &v) == XF_FED_ACCEPT_EXTERNAL;
    /* Dialback: refused outright only when no outcome of it could be accepted. */
    f.sasl_external = 0;
    f.dialback = XF_DB_VALID;
    f.proof[XF_PROOF_PKIX].result = has_cert ? XF_PROOF_VALID : XF_PROOF_ABSENT;
    *dialback = xf_fed_decide(policy, &f, &v) == XF_FED_ACCEPT_DIALBACK;
}

/* ------------------------------------------------------------------ helpers */

/* Bounded copy, cut at cap - 1 bytes (log text). */
static void copy(char *out, size_t cap, const char *in)
{
    size_t n = in ? strlen(in) : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, in ? in : "", n);
    out[n] = '\0';
}

/* The PKIX prooftype for `domain` (RFC 6120 §13.7.2, XEP-0178): the client certificate
   against federation.ca_file, role PEER_CLIENT, SRV-ID _xmpp-server. */
static void pkix_proof(xf_s2s_in *s, const char *domain, xf_proof *out)
{
    /* xf_pkix_check takes non-const chains but only reads them. */
    mbedtls_x509_crt *chain = (mbedtls_x509_crt *)mbedtls_ssl_get_peer_cert(&s->c->ssl);
    memset(out, 0, sizeof(*out));
    if (chain == NULL) {
        out->result = XF_PROOF_ABSENT;
        snprintf(out->reason, sizeof(out->reason), "no client certificate");
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
    copy(out->reason, sizeof(out->reason), r == 1 ? (v.id.reason[0] ? v.id.reason : "valid")
                                                  : v.reason);
}

static int is_hosted(void *ud, const char *domain)
{
    return xf_registry_find((const xf_registry *)ud, domain) != NULL;
}

static void lower_copy(char *out, size_t cap, const char *in)
{
    size_t i = 0;
    for (; in && in[i] && i + 1 < cap; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] + 32) : in[i];
    out[i] = '\0';
    if (i > 0 && out[i - 1] == '.')            /* a trailing dot names the same domain */
        out[i - 1] = '\0';
}

static int closing(const xf_s2s_in *s) { return s->cancelled || s->c->state >= XF_CONN_CLOSING; }

static int say(xf_s2s_in *s, const char *data, size_t len)
{
    if (closing(s))
        return -1;
    return xf_conn_client_send(s->c, data, len);
}

static void set_verdict(xf_s2s_in *s, const char *text)
{
    copy(s->verdict, sizeof(s->verdict), text);
}

/* One log line per refusal: the peer, the tenant, the pair and every prooftype's
   verdict (issue 7 "Refusals"). */
static void log_refusal(xf_s2s_in *s, const char *remote, const char *local, const char *what,
                        const char *reason)
{
    char qr[300], ql[300], qreason[1300];
    /* The tenant of the pair's local domain (a piggybacked pair may name another). */
    const xf_tenant *t = local && *local ? xf_registry_find(s->c->config->registry, local) : NULL;
    if (t == NULL)
        t = s->c->tenant;
    xf_info("conn id=%llu s2s refused peer=%s tenant=%s remote=%s local=%s method=%s "
            "verdict=%s", (unsigned long long)s->c->id, s->c->peer,
            t ? t->domain : "-", xf_log_quote(qr, sizeof(qr), remote),
            xf_log_quote(ql, sizeof(ql), local), what,
            xf_log_quote(qreason, sizeof(qreason), reason));
    set_verdict(s, reason);
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

/* Our response header (RFC 6120 §4.7; XEP-0220 §2.1: xmlns:db) and features; after
   SASL success the restarted stream's features offer no EXTERNAL (ext = 0) but still
   dialback, for piggybacking (RFC 6120 §6.4.6; XEP-0220 §4). */
static int send_header_and_features(xf_s2s_in *s, int ext)
{
    char out[4096];
    xf_xml_new_id(s->sid, sizeof(s->sid));
    int n = xf_xml_write_header(out, sizeof(out) - 600, XF_XML_NS_SERVER, s->to,
                                s->from[0] ? s->from : NULL, s->sid, "1.0");
    if (n < 2) {
        xf_conn_stream_error(s->c, "improper-addressing", "from is too long", "header from too long");
        return -1;
    }
    static const char db[] = " xmlns:db='jabber:server:dialback'>";
    n--;                                                  /* the header's final '>' */
    memcpy(out + n, db, sizeof(db) - 1);
    n += (int)sizeof(db) - 1;
    int m = xf_s2s_write_features(out + n, sizeof(out) - (size_t)n, ext, s->offered_dialback);
    if (m < 0) {
        xf_conn_stream_error(s->c, "internal-server-error", NULL, "features do not fit");
        return -1;
    }
    n += m;
    s->c->header_sent = 1;
    return say(s, out, (size_t)n);
}

static struct in_pair *find_pair(xf_s2s_in *s, const char *remote, const char *local)
{
    for (unsigned i = 0; i < s->np; i++)
        if (strcasecmp(s->p[i].remote, remote) == 0 && strcasecmp(s->p[i].local, local) == 0)
            return &s->p[i];
    return NULL;
}

/* ------------------------------------------------------------------ the backend stream */

static int bs_send(void *ud, const char *data, size_t len)
{
    xf_s2s_in *s = ud;
    if (closing(s) || s->c->state < XF_CONN_BACKEND_HEADER)
        return -1;
    return xf_conn_backend_send(s->c, data, len);
}

static int bs_forward(void *ud, const char *data, size_t len)
{
    xf_s2s_in *s = ud;
    if (closing(s))
        return -1;
    if (s->await_header) {
        /* Between <success/> and our new header nothing may reach the remote (RFC 6120
           §6.4.6): held (the backend's first stanzas, bounded by its read pauses). */
        if (xf_buf_append(&s->bheld, data, len) < 0) {
            xf_conn_close(s->c, "out of memory");
            return -1;
        }
        return 0;
    }
    if (xf_conn_client_send(s->c, data, len) < 0)
        return -1;
    xf_conn_relay_activity(s->c);
    return 0;
}

static void bs_fail(void *ud, const char *reason)
{
    xf_s2s_in *s = ud;
    if (closing(s))
        return;
    xf_conn_stream_error(s->c, "remote-connection-failed", "backend unavailable", reason);
}

static int answer_pair(xf_s2s_in *s, struct in_pair *p, enum xf_db_type type,
                       enum xf_db_error err)
{
    char out[1200];
    p->answered = 1;
    if (p->sasl)
        return 0;                         /* SASL <success/> was the answer */
    int n = xf_s2s_write_db_answer(out, sizeof(out), NULL, 0, p->local, p->remote, NULL,
                                   type, err);
    return n < 0 ? 0 : say(s, out, (size_t)n);
}

/* The first pair is asserted: authentication is over, RELAY. The remote's scanner
   leaves the policing (no auth deadline, stanza-sized elements); held stanzas go. */
static int enter_relay(xf_s2s_in *s)
{
    xf_conn *c = s->c;
    xf_conn_set_state(c, XF_CONN_RELAY);
    s->rxml = c->cxml;
    c->cxml = NULL;
    xf_xml_set_max_element(s->rxml, S2S_STANZA_MAX);
    xf_conn_mark_authenticated(c);        /* frees its max_unauthenticated_per_ip slot */
    xf_conn_timer_stop(c);
    xf_conn_relay_activity(c);
    xf_debug("conn id=%llu s2s authenticated (%s): relaying", (unsigned long long)c->id, s->auth);
    if (xf_buf_size(&s->held) > 0) {
        if (xf_conn_backend_send(c, xf_buf_head(&s->held), xf_buf_size(&s->held)) < 0)
            return -1;
        xf_buf_free(&s->held);
    }
    return 0;
}

static int bs_pair(void *ud, const char *remote, const char *local, enum xf_db_type type,
                   enum xf_db_error err)
{
    xf_s2s_in *s = ud;
    (void)err;
    if (closing(s))
        return -1;
    struct in_pair *p = find_pair(s, remote, local);
    if (p == NULL || (p->answered && !p->sasl))
        return 0;                         /* (a SASL pair was answered by <success/>) */
    if (type != XF_DB_TYPE_VALID) {
        char r[400];
        snprintf(r, sizeof(r), "the backend refused xmppfront's assertion of %.100s -> %.100s "
                 "(its dialback verification must reach xmppfront's outbound listener)",
                 remote, local);
        log_refusal(s, remote, local, "backend", r);
        if (s->c->state != XF_CONN_RELAY) {
            xf_conn_stream_error(s->c, "internal-server-error", NULL, r);
            return -1;
        }
        xf_pairs_answer(s->pairs, local, remote, XF_DB_TYPE_INVALID);
        return answer_pair(s, p, XF_DB_TYPE_ERROR, XF_DB_ERR_INTERNAL_SERVER_ERROR);
    }
    xf_pairs_set_valid(s->pairs, local, remote);
    if (answer_pair(s, p, XF_DB_TYPE_VALID, XF_DB_ERR_NONE) < 0)
        return -1;
    if (s->c->state != XF_CONN_RELAY)
        return enter_relay(s);
    return 0;
}

static const xf_bs2s_ops bs_ops = {bs_send, bs_forward, bs_pair, bs_fail};

static void on_backend_connected(uv_connect_t *req, int status)
{
    xf_conn *c = req->data;
    if (status == UV_ECANCELED || c->state != XF_CONN_BACKEND_CONNECT || c->s2s == NULL)
        return;
    xf_s2s_in *s = c->s2s;
    if (status < 0) {
        char reason[200];
        snprintf(reason, sizeof(reason), "backend %s: %s", s->btenant->s2s.spec, uv_strerror(status));
        xf_conn_stream_error(c, "remote-connection-failed", "backend unavailable", reason);
        return;
    }
    xf_conn_set_state(c, XF_CONN_BACKEND_HEADER);
    if (s->btenant->proxy_protocol == XF_PP_V2) {
        uint8_t hdr[1024];
        xf_pp2_info info = {
            .src = (const struct sockaddr *)&c->peer_addr,
            .dst = (const struct sockaddr *)&c->local_addr,
            .alpn = mbedtls_ssl_get_alpn_protocol(&c->ssl),
            .authority = c->sel.sni[0] ? c->sel.sni : NULL,
            .ssl = 1,
            .client_cert = mbedtls_ssl_get_peer_cert(&c->ssl) != NULL,
            .verify = 1,
            .ssl_version = mbedtls_ssl_get_version(&c->ssl),
            .ssl_cipher = mbedtls_ssl_get_ciphersuite(&c->ssl),
        };
        int n = xf_pp2_encode(&info, hdr, sizeof(hdr));
        if (n < 0) {
            xf_conn_stream_error(c, "internal-server-error", NULL, "PROXY v2 header encoding failed");
            return;
        }
        if (xf_conn_backend_send(c, (const char *)hdr, (size_t)n) < 0)
            return;
    }
    if (xf_bs2s_start(s->bs) < 0)
        return;
    int r = uv_read_start((uv_stream_t *)&c->backend, xf_conn_alloc_buf, xf_conn_on_backend_read);
    if (r < 0)
        xf_conn_stream_error(c, "remote-connection-failed", "backend unavailable", uv_strerror(r));
}

/* An accepted pair goes to the backend: the first opens the backend stream, later ones
   are piggybacked on it (same backend only). */
static int assert_to_backend(xf_s2s_in *s, struct in_pair *p)
{
    xf_conn *c = s->c;
    p->accepted = 1;
    if (s->bs != NULL) {
        if (s->btenant != p->tenant && (s->btenant->s2s.addrlen != p->tenant->s2s.addrlen ||
            memcmp(&s->btenant->s2s.addr, &p->tenant->s2s.addr, p->tenant->s2s.addrlen) != 0)) {
            log_refusal(s, p->remote, p->local, "piggyback",
                        "the domain's tenant has another s2s backend than this stream's");
            xf_pairs_answer(s->pairs, p->local, p->remote, XF_DB_TYPE_INVALID);
            return answer_pair(s, p, XF_DB_TYPE_ERROR, XF_DB_ERR_NOT_ACCEPTABLE);
        }
        int r = xf_bs2s_assert(s->bs, p->remote, p->local);
        if (r == -1) {
            xf_pairs_answer(s->pairs, p->local, p->remote, XF_DB_TYPE_INVALID);
            return answer_pair(s, p, XF_DB_TYPE_ERROR, XF_DB_ERR_RESOURCE_CONSTRAINT);
        }
        return 0;
    }
    const xf_backend *be = &p->tenant->s2s;
    s->btenant = p->tenant;
    s->bs = xf_bs2s_new(c->config->federation.dialback_secret, p->remote, p->local,
                        BACKEND_SCAN_LIMIT > S2S_STANZA_MAX ? BACKEND_SCAN_LIMIT : S2S_STANZA_MAX,
                        &bs_ops, s);
    if (s->bs == NULL) {
        xf_conn_close(c, "out of memory (backend s2s)");
        return -1;
    }
    xf_conn_set_state(c, XF_CONN_BACKEND_CONNECT);
    if (xf_conn_backend_connect(c, be, on_backend_connected) < 0)
        return -1;
    xf_conn_timer_start(c, (uint64_t)c->config->limits.backend_timeout_s * 1000,
                        xf_conn_on_backend_timeout);
    return 0;
}

/* ------------------------------------------------------------------ SASL EXTERNAL */

static int sasl_failure(xf_s2s_in *s, const char *cond, const char *reason)
{
    char out[200];
    int n = snprintf(out, sizeof(out), "<failure xmlns='" XF_NS_SASL "'><%s/></failure>", cond);
    log_refusal(s, s->from, s->to, "sasl-external", reason);
    return say(s, out, (size_t)n);
}

/* RFC 6120 §6.4, XEP-0178 §4: the initial response (or the <response/> after our empty
   challenge). */
static int sasl_external(xf_s2s_in *s, const char *text, size_t len)
{
    int r = xf_s2s_in_check_authzid(text, len, s->from);
    if (r == XF_S2S_AUTHZID_EMPTY && !s->sasl_challenge) {
        static const char ch[] = "<challenge xmlns='" XF_NS_SASL "'/>";
        s->sasl_challenge = 1;
        return say(s, ch, sizeof(ch) - 1);
    }
    s->sasl_challenge = 0;
    if (r == XF_S2S_AUTHZID_INVALID)
        return sasl_failure(s, "invalid-authzid", "the authzid is not the stream's from");
    if (r != 0)
        return sasl_failure(s, "incorrect-encoding", "the authzid is not base64");
    const xf_tenant *t = xf_registry_find(s->c->config->registry, s->to);
    xf_peer_facts f;
    xf_fed_verdict v;
    memset(&f, 0, sizeof(f));
    f.tls = 1;
    f.sasl_external = 1;
    pkix_proof(s, s->from, &f.proof[XF_PROOF_PKIX]);
    f.dialback = XF_DB_NOT_TRIED;
    int d = xf_fed_decide(t ? t->federation : XF_FED_DEFAULT, &f, &v);
    if (d != XF_FED_ACCEPT_EXTERNAL || t == NULL || s->np >= S2S_MAX_PAIRS)
        return sasl_failure(s, "not-authorized", v.reason);
    struct in_pair *p = &s->p[s->np++];
    memset(p, 0, sizeof(*p));
    p->s = s;
    snprintf(p->remote, sizeof(p->remote), "%s", s->from);
    snprintf(p->local, sizeof(p->local), "%s", s->to);
    p->tenant = t;
    p->sasl = 1;
    p->answered = 1;
    /* The pair counts as authenticated for stanzas now (RFC 6120 §6.4.6): they are
       held until the backend has accepted it too. */
    xf_pairs_set_valid(s->pairs, p->local, p->remote);
    s->auth = "sasl-external";
    set_verdict(s, v.reason);
    xf_conn_mark_authenticated(s->c);     /* the remote is authenticated (RFC 6120 §6.4.6) */
    xf_xml_set_max_element(s->c->cxml, S2S_STANZA_MAX);   /* its stanzas may be large now */
    xf_info("conn id=%llu s2s authenticated peer=%s tenant=%s auth=sasl-external verdict=%s",
            (unsigned long long)s->c->id, s->c->peer, t->domain,
            xf_log_quote((char[700]){0}, 700, v.reason));
    static const char ok[] = "<success xmlns='" XF_NS_SASL "'/>";
    if (say(s, ok, sizeof(ok) - 1) < 0)
        return -1;
    s->await_header = 1;             /* the stream restarts (RFC 6120 §6.4.6) */
    s->c->header_sent = 0;
    return assert_to_backend(s, p);
}

/* ------------------------------------------------------------------ dialback */

/* Our decision for pair p with what is known; accept -> backend, refuse -> answer. */
static int decide_pair(xf_s2s_in *s, struct in_pair *p, xf_peer_facts *f)
{
    xf_fed_verdict v;
    int d = xf_fed_decide(p->tenant->federation, f, &v);
    if (d == XF_FED_NEED_DIALBACK)
        return 1;                                     /* caller starts the verification */
    if (d == XF_FED_ACCEPT_DIALBACK || d == XF_FED_ACCEPT_EXTERNAL) {
        if (strcmp(s->auth, "none") == 0)
            s->auth = "dialback";
        set_verdict(s, v.reason);
        char q[700];
        xf_info("conn id=%llu s2s pair accepted peer=%s tenant=%s remote=%s local=%s "
                "auth=dialback verdict=%s", (unsigned long long)s->c->id, s->c->peer,
                p->tenant->domain, p->remote, p->local, xf_log_quote(q, sizeof(q), v.reason));
        return assert_to_backend(s, p) < 0 ? -1 : 0;
    }
    log_refusal(s, p->remote, p->local, "dialback", v.reason);
    int only = xf_pairs_valid_count(s->pairs) == 0;
    xf_pairs_answer(s->pairs, p->local, p->remote, XF_DB_TYPE_INVALID);
    if (v.condition && strcmp(v.condition, "forbidden") == 0) {
        if (only) {
            /* XEP-0220 §2.3.1 / spec-digest §7.1: invalid on the only pair -> close. */
            static const char end[] = "</stream:stream>";
            if (answer_pair(s, p, XF_DB_TYPE_INVALID, XF_DB_ERR_NONE) < 0 ||
                say(s, end, sizeof(end) - 1) < 0)
                return -1;
            xf_conn_finish(s->c, "s2s: dialback key invalid on the only pair");
            return -1;
        }
        return answer_pair(s, p, XF_DB_TYPE_ERROR, XF_DB_ERR_FORBIDDEN);
    }
    return answer_pair(s, p, XF_DB_TYPE_ERROR, db_error_for(v.condition));
}

static void on_verified(void *ud, xf_remote *r, const xf_remote_result *res)
{
    struct in_pair *p = ud;
    xf_s2s_in *s = p->s;
    (void)r;
    p->verify = NULL;                  /* the verify stream is done with the callback */
    if (closing(s))
        return;
    xf_peer_facts f;
    memset(&f, 0, sizeof(f));
    f.tls = 1;
    pkix_proof(s, p->remote, &f.proof[XF_PROOF_PKIX]);
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
static int on_db_result(xf_s2s_in *s, const xf_xml_event *ev)
{
    char R[S2S_DOM_MAX], T[S2S_DOM_MAX], out[1200];
    if (!ev->attr_from || !*ev->attr_from || !ev->attr_to || !*ev->attr_to ||
        strlen(ev->attr_from) >= S2S_DOM_MAX || strlen(ev->attr_to) >= S2S_DOM_MAX) {
        xf_conn_stream_error(s->c, "improper-addressing", NULL, "db:result without from/to");
        return -1;
    }
    lower_copy(R, sizeof(R), ev->attr_from);
    lower_copy(T, sizeof(T), ev->attr_to);
    const xf_tenant *t = xf_registry_find(s->c->config->registry, T);
    if (t == NULL) {
        /* XEP-0220 §2.4: not hosted -> item-not-found, the stream stays. */
        log_refusal(s, R, T, "dialback", "the receiving domain is not hosted here");
        int n = xf_s2s_write_db_answer(out, sizeof(out), NULL, 0, T, R, NULL, XF_DB_TYPE_ERROR,
                                       XF_DB_ERR_ITEM_NOT_FOUND);
        return n < 0 ? 0 : say(s, out, (size_t)n);
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
        return n < 0 ? 0 : say(s, out, (size_t)n);
    }
    struct in_pair *p = &s->p[s->np++];
    memset(p, 0, sizeof(*p));
    p->s = s;
    snprintf(p->remote, sizeof(p->remote), "%s", R);
    snprintf(p->local, sizeof(p->local), "%s", T);
    p->tenant = t;

    xf_peer_facts f;
    memset(&f, 0, sizeof(f));
    f.tls = 1;                       /* every inbound s2s listener is TLS */
    pkix_proof(s, R, &f.proof[XF_PROOF_PKIX]);
    if (f.proof[XF_PROOF_PKIX].result == XF_PROOF_VALID) {
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
    p->verify = xf_remote_verify(s->c->w, t, R, s->sid, key, on_verified, p);
    if (p->verify == NULL) {
        f.dialback = XF_DB_ERROR;
        snprintf(f.dialback_reason, sizeof(f.dialback_reason), "could not start the verification");
        return decide_pair(s, p, &f);
    }
    return 0;
}

/* <db:verify from=R to=T id=ID>KEY</db:verify> (XEP-0220 §2.1.2): R checks a key that
   T (xmppfront's outbound side) sent it on another stream. */
static int on_db_verify(xf_s2s_in *s, const xf_xml_event *ev)
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
            (unsigned long long)s->c->id, s->c->peer, xf_log_quote(q, sizeof(q), ev->attr_from),
            r == XF_DB_TYPE_VALID ? "valid" : r == XF_DB_TYPE_INVALID ? "invalid" : "error");
    int n = xf_s2s_write_db_answer(out, sizeof(out), NULL, 1, ev->attr_to, ev->attr_from,
                                   ev->attr_id, (enum xf_db_type)r, err);
    return n < 0 ? 0 : say(s, out, (size_t)n);
}

/* ------------------------------------------------------------------ the remote stream */

/* A stanza (or any other first-level element) from the remote. */
static int on_stanza(xf_s2s_in *s, const xf_xml_event *ev)
{
    char r[400];
    if (xf_pairs_valid_count(s->pairs) == 0) {
        snprintf(r, sizeof(r), "<%.60s/> before any domain pair was authenticated", ev->name);
        xf_conn_stream_error(s->c, "not-authorized", NULL, r);
        return -1;
    }
    const char *cond = xf_pairs_check_stanza(s->pairs, ev->attr_from, ev->attr_to);
    if (cond != NULL) {
        char qf[200], qt[200];
        snprintf(r, sizeof(r), "<%.40s/> from=%s to=%s not authenticated on this stream",
                 ev->name, xf_log_quote(qf, sizeof(qf), ev->attr_from),
                 xf_log_quote(qt, sizeof(qt), ev->attr_to));
        xf_conn_stream_error(s->c, cond, NULL, r);
        return -1;
    }
    uint64_t st = ev->span.start - s->rbase, en = ev->span.end - s->rbase;
    if (en > xf_buf_size(&s->c->plain) || st > en) {
        xf_conn_close(s->c, "s2s: element outside the buffer");
        return -1;
    }
    const char *data = xf_buf_head(&s->c->plain) + st;
    if (s->c->state == XF_CONN_RELAY) {
        if (xf_conn_backend_send(s->c, data, (size_t)(en - st)) < 0)
            return -1;
        xf_conn_relay_activity(s->c);
        return 0;
    }
    if (xf_buf_append(&s->held, data, (size_t)(en - st)) < 0) {
        xf_conn_close(s->c, "out of memory");
        return -1;
    }
    if (xf_buf_size(&s->held) > s->c->config->limits.buffer_high_bytes)
        xf_conn_pause_client(s->c);
    return 0;
}

static int on_element(xf_s2s_in *s, const xf_xml_event *ev)
{
    if (s->await_header) {
        xf_conn_stream_error(s->c, "not-well-formed", NULL, "element instead of the restarted stream's header");
        return -1;
    }
    if (strcmp(ev->ns_uri, XF_NS_DIALBACK) == 0) {
        if (ev->type_attr[0]) {
            /* Without XEP-0288 inbound results/verifies never carry a type: an answer
               nobody asked for on this stream authorises nothing (spec-digest §10 case
               26). */
            xf_info("conn id=%llu s2s unsolicited <db:%s type='%s'/> from peer=%s dropped",
                    (unsigned long long)s->c->id, ev->name, ev->type_attr, s->c->peer);
            return 0;
        }
        if (strcmp(ev->name, "result") == 0)
            return on_db_result(s, ev);
        if (strcmp(ev->name, "verify") == 0)
            return on_db_verify(s, ev);
        return 0;
    }
    if (strcmp(ev->ns_uri, XF_NS_SASL) == 0 && xf_pairs_valid_count(s->pairs) == 0) {
        if (strcmp(ev->name, "auth") == 0) {
            const char *mech = NULL;
            /* The scanner does not report the mechanism attribute: match it in the raw
               element (bounded by max_header_bytes). */
            uint64_t st = ev->span.start - s->rbase, en = ev->span.end - s->rbase;
            if (en <= xf_buf_size(&s->c->plain) && st < en) {
                const char *e = xf_buf_head(&s->c->plain) + st;
                size_t n = (size_t)(en - st);
                const char *gt = memchr(e, '>', n);
                size_t hl = gt ? (size_t)(gt - e) : n;
                if (memmem(e, hl, "mechanism='EXTERNAL'", 20) ||
                    memmem(e, hl, "mechanism=\"EXTERNAL\"", 20))
                    mech = "EXTERNAL";
            }
            if (mech == NULL || !s->offered_external)
                return sasl_failure(s, "invalid-mechanism", "SASL mechanism not offered");
            return sasl_external(s, ev->text, ev->text_len);
        }
        if (strcmp(ev->name, "response") == 0 && s->sasl_challenge)
            return sasl_external(s, ev->text, ev->text_len);
        if (strcmp(ev->name, "abort") == 0) {
            s->sasl_challenge = 0;
            static const char ab[] = "<failure xmlns='" XF_NS_SASL "'><aborted/></failure>";
            return say(s, ab, sizeof(ab) - 1);
        }
    }
    if (strcmp(ev->name, "error") == 0 && strcmp(ev->ns_uri, XF_NS_STREAMS) == 0) {
        /* The remote ends the stream with an error (RFC 6120 §4.9.1.1): we close ours. */
        static const char bye[] = "</stream:stream>";
        char r[160];
        snprintf(r, sizeof(r), "remote sent a stream error <%.60s/>",
                 ev->n_children > 0 ? ev->children[0].name : "?");
        if (say(s, bye, sizeof(bye) - 1) == 0)
            xf_conn_finish(s->c, r);
        return -1;
    }
    if (strcmp(ev->name, "starttls") == 0 && strcmp(ev->ns_uri, XF_NS_TLS) == 0) {
        xf_conn_stream_error(s->c, "policy-violation", "TLS is already in place", "s2s: <starttls/> inside TLS");
        return -1;
    }
    return on_stanza(s, ev);
}

/* The restarted stream's header (after SASL <success/>, RFC 6120 §6.4.6). */
static int on_restart_header(xf_s2s_in *s, const xf_xml_event *ev)
{
    s->await_header = 0;
    char to[S2S_DOM_MAX];
    lower_copy(to, sizeof(to), ev->to);
    if (ev->ns != XF_XML_NS_SERVER) {
        xf_conn_stream_error(s->c, "invalid-namespace", NULL, "restarted s2s stream is not jabber:server");
        return -1;
    }
    if (strcmp(to, s->to) != 0) {
        xf_conn_stream_error(s->c, "host-unknown", NULL, "restarted stream names another to");
        return -1;
    }
    if (send_header_and_features(s, 0) < 0)
        return -1;
    if (xf_buf_size(&s->bheld) > 0) {
        if (say(s, xf_buf_head(&s->bheld), xf_buf_size(&s->bheld)) < 0)
            return -1;
        xf_buf_free(&s->bheld);
    }
    return 0;
}

/* Drain the remote's scanner. */
static void process_remote(xf_s2s_in *s)
{
    xf_conn *c = s->c;
    xf_xml *x = c->cxml ? c->cxml : s->rxml;
    xf_xml_event ev;
    while (!closing(s) && xf_xml_next(x, &ev) != XF_XML_NONE) {
        int r = 0;
        uint64_t end = ev.span.end;
        switch (ev.type) {
        case XF_XML_HEADER:
            if (s->await_header) {
                r = on_restart_header(s, &ev);
            } else {
                xf_conn_stream_error(c, "not-well-formed", NULL, "a second stream header");
                r = -1;
            }
            break;
        case XF_XML_ELEMENT: {
            int restart_before = s->await_header;
            r = on_element(s, &ev);
            if (r == 0 && !restart_before && s->await_header) {
                /* <success/> sent: the new stream starts after </auth>. What the peer
                   sent after it (it should have waited) is scanned as the new stream. */
                size_t used = (size_t)(end - s->rbase);
                if (used > xf_buf_size(&c->plain))
                    used = xf_buf_size(&c->plain);
                xf_buf_consume(&c->plain, used);
                xf_xml_reset(x);
                s->rbase = 0;
                if (xf_buf_size(&c->plain) > 0 &&
                    xf_xml_push(x, xf_buf_head(&c->plain), xf_buf_size(&c->plain)) < 0) {
                    xf_conn_close(c, "out of memory");
                    return;
                }
                continue;
            }
            break;
        }
        case XF_XML_STREAM_END: {
            static const char bye[] = "</stream:stream>";
            if (c->state == XF_CONN_RELAY) {
                if (xf_conn_backend_send(c, bye, sizeof(bye) - 1) < 0)
                    return;
                break;
            }
            if (say(s, bye, sizeof(bye) - 1) < 0)
                return;
            xf_conn_finish(c, "remote closed the s2s stream before authentication");
            return;
        }
        case XF_XML_ERROR:
            xf_conn_stream_error(c, ev.error, NULL, ev.reason ? ev.reason : ev.error);
            return;
        default:
            break;
        }
        if (r < 0 || closing(s))
            return;
        /* Everything up to this event is handled: drop it from plain. */
        size_t used = end > s->rbase ? (size_t)(end - s->rbase) : 0;
        if (used > xf_buf_size(&c->plain))
            used = xf_buf_size(&c->plain);
        xf_buf_consume(&c->plain, used);
        s->rbase += used;
    }
}

/* ------------------------------------------------------------------ hooks */

void xf_s2s_in_start(xf_conn *c, const xf_xml_event *ev)
{
    xf_s2s_in *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->pairs = xf_pairs_new(S2S_MAX_PAIRS)) == NULL) {
        free(s);
        xf_conn_close(c, "out of memory");
        return;
    }
    s->c = c;
    c->s2s = s;
    s->auth = "none";
    set_verdict(s, "not authenticated");
    lower_copy(s->to, sizeof(s->to), ev->to);
    if (ev->from && strlen(ev->from) < S2S_DOM_MAX)
        lower_copy(s->from, sizeof(s->from), ev->from);
    s->policy = c->tenant->federation;
    /* Policing as for every routed stream: the remote's scanner keeps max_header_bytes
       per element, and the auth deadline bounds every timer until RELAY (conn.c). */
    c->cxml = c->xml;
    c->xml = NULL;
    c->cplain_base = 0;
    s->rbase = 0;
    c->auth_deadline_ms = xf_conn_now_ms(c) + (uint64_t)c->config->limits.auth_timeout_s * 1000;
    xf_conn_timer_stop(c);           /* the handshake timer gives way to the deadline */

    int has_cert = mbedtls_ssl_get_peer_cert(&c->ssl) != NULL, proves = 0;
    xf_proof pf;
    memset(&pf, 0, sizeof(pf));
    if (s->from[0]) {
        pkix_proof(s, s->from, &pf);
        proves = pf.result == XF_PROOF_VALID;
    }
    xf_s2s_in_offer(s->policy, 1, has_cert, proves, &s->offered_external, &s->offered_dialback);
    char q[400];
    xf_debug("conn id=%llu s2s stream from=%s cert=%s pkix=%s external=%d dialback=%d",
             (unsigned long long)c->id, s->from[0] ? s->from : "-", has_cert ? "yes" : "no",
             xf_log_quote(q, sizeof(q), pf.reason), s->offered_external, s->offered_dialback);
    if (!s->offered_external && !s->offered_dialback) {
        char r[600];
        snprintf(r, sizeof(r), "policy %s; no method can succeed: %s",
                 xf_fed_policy_name(s->policy), has_cert ? pf.reason : "no client certificate");
        log_refusal(s, s->from, s->to, "none", r);
    }
    if (send_header_and_features(s, s->offered_external) < 0)
        return;
    /* Whatever followed the header in the same read. */
    size_t used = (size_t)ev->span.end;
    if (used > xf_buf_size(&c->plain))
        used = xf_buf_size(&c->plain);
    xf_buf_consume(&c->plain, used);
    s->rbase = used;
    process_remote(s);
}

void xf_s2s_in_client_input(xf_conn *c, const char *data, size_t len)
{
    xf_s2s_in *s = c->s2s;
    xf_xml *x = c->cxml ? c->cxml : s->rxml;
    if (xf_buf_append(&c->plain, data, len) < 0 || xf_xml_push(x, data, len) < 0) {
        xf_conn_close(c, "out of memory");
        return;
    }
    process_remote(s);
}

void xf_s2s_in_backend_input(xf_conn *c, const char *data, size_t len)
{
    xf_s2s_in *s = c->s2s;
    if (s->bs == NULL || closing(s))
        return;
    xf_bs2s_input(s->bs, data, len);
}

void xf_s2s_in_cancel(xf_s2s_in *s)
{
    if (s == NULL || s->cancelled)
        return;
    s->cancelled = 1;
    for (unsigned i = 0; i < s->np; i++)
        if (s->p[i].verify != NULL) {
            xf_remote_close(s->p[i].verify, "inbound stream closed");
            s->p[i].verify = NULL;
        }
}

void xf_s2s_in_free(xf_s2s_in *s)
{
    if (s == NULL)
        return;
    xf_s2s_in_cancel(s);
    xf_pairs_free(s->pairs);
    xf_bs2s_free(s->bs);
    xf_buf_free(&s->held);
    xf_buf_free(&s->bheld);
    if (s->rxml != NULL && s->rxml != s->c->cxml)
        xf_xml_free(s->rxml);
    free(s);
}

const char *xf_s2s_in_auth(const xf_s2s_in *s) { return s ? s->auth : "none"; }
const char *xf_s2s_in_verdict(const xf_s2s_in *s) { return s ? s->verdict : "-"; }
