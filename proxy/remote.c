/*
 * remote: s2s streams xmppfront opens itself (contract: proxy/remote.h).
 *
 * One xf_remote walks one state machine:
 *
 *   RESOLVE (both SRV sets; XEP-0368 §3 merged order, proxy/srvorder.c)
 *     -> ADDR (A/AAAA of the candidate) -> CONNECT (each address, connect_timeout_s)
 *   direct TLS candidate:  CONNECT -> TLS_HANDSHAKE (SNI = remote, ALPN xmpp-server)
 *   STARTTLS candidate:    CONNECT -> PRE_HEADER -> PRE_FEATURES -> STARTTLS_WAIT
 *                          -> TLS_HANDSHAKE        (RFC 6120 §5.4; RFC 7590 §3.1)
 *                          PRE_FEATURES -> (policy open, no TLS offered) plaintext
 *   TLS_HANDSHAKE -> HEADER -> FEATURES (the stream restart, RFC 6120 §5.4.3.3)
 *   FEATURES -> SASL_WAIT  (XEP-0178: EXTERNAL with the tenant's certificate)
 *            -> SASL_WAIT --success--> AUTH_HEADER -> AUTH_FEATURES -> RELAY
 *            -> SASL_WAIT --failure--> DB_WAIT (dialback instead, XEP-0220 §2.1)
 *            -> DB_WAIT --valid--> RELAY
 *            -> VERIFY_WAIT (xf_remote_verify) --answer--> done
 *   any -> DONE (failed or closed; handles closing, freed after the last one)
 *
 * A remote domain that xmppfront hosts itself is no remote at all: no DNS, no TLS. The
 * stream goes to that tenant's s2s backend, asserting the originating tenant with
 * xmppfront's own key (proxy/backend_s2s.h; the backend's <db:verify/> comes back to
 * the outbound listener), CONNECT -> LOCAL_WAIT -> RELAY.
 *
 * A connect failure or a failed TLS handshake moves on to the next address, then the
 * next candidate; anything after TLS is established is final. The whole walk is bounded
 * by federation.negotiation_timeout_s. The remote's stream is scanned with xmlstream in
 * every state, RELAY included: whole first-level elements go to the sink.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <mbedtls/ssl.h>
#include "certs/dialback.h"
#include "certs/pkix.h"
#include "proxy/backend_s2s.h"
#include "proxy/buf.h"
#include "proxy/dns.h"
#include "proxy/log.h"
#include "proxy/remote.h"
#include "proxy/srvorder.h"
#include "proxy/tls.h"
#include "proxy/tls_client.h"
#include "proxy/xmlstream.h"

enum r_state {
    R_RESOLVE, R_ADDR, R_CONNECT, R_PRE_HEADER, R_PRE_FEATURES, R_STARTTLS_WAIT,
    R_TLS_HANDSHAKE, R_HEADER, R_FEATURES, R_SASL_WAIT, R_AUTH_HEADER, R_AUTH_FEATURES,
    R_DB_WAIT, R_VERIFY_WAIT, R_LOCAL_WAIT, R_RELAY, R_DONE
};

static const char *r_state_names[] = {
    "resolve", "addr", "connect", "pre-header", "pre-features", "starttls-wait",
    "tls-handshake", "header", "features", "sasl-wait", "auth-header", "auth-features",
    "db-wait", "verify-wait", "local-wait", "relay", "done"
};

#define MAX_CANDIDATES 16
#define MAX_ADDRS 16
#define R_READ_CHUNK 16384
#define R_LINGER_MS 5000
#define R_NEG_MAX_ELEMENT 65536          /* negotiation elements (features, dialback) */
#define R_RELAY_MAX_ELEMENT (1u << 20)   /* one stanza from the remote while relaying */

/* One TCP attempt; its own allocation so that a failed attempt's handle can finish
   closing while the next one starts. */
typedef struct r_sock {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    struct xf_remote *r;
} r_sock;

typedef struct r_wreq {
    uv_write_t req;
    struct xf_remote *r;
    size_t len;
    char data[];
} r_wreq;

struct xf_remote {
    xf_worker *w;
    xf_config *cfg;
    const xf_tenant *t;
    int verify;                        /* 1: xf_remote_verify */
    enum r_state state;
    int closed;                        /* teardown started: no callbacks any more */
    int in_cb;                         /* inside the open/verify callback */
    int handles;                       /* close callbacks still to come */
    char domain[XF_SRV_HOST_MAX];
    char vid[256], vkey[256];          /* verify: stream id and key */
    xf_remote_open_cb cb;
    void *ud;
    xf_remote_sink sink;

    uv_timer_t deadline;               /* negotiation_timeout_s, whole walk */
    uv_timer_t ctimer;                 /* per connect attempt; deferred failure; linger */
    uint64_t q_srv[2], q_addr;         /* pending DNS query ids (0 = none) */
    xf_dns_result srv[2];
    int srv_done[2];
    xf_srv_target cand[MAX_CANDIDATES];
    int n_cand, i_cand;
    xf_dns_addr addrs[MAX_ADDRS];
    int n_addr, i_addr;
    int any_addr;                      /* some candidate had addresses */
    int any_connected;

    r_sock *sock;                      /* current attempt */
    r_sock *lsock;                     /* closing gracefully (teardown), until FIN is out */
    int tls_mode;                      /* enum xf_srv_tls of the current candidate */
    mbedtls_ssl_context ssl;
    int ssl_on;
    xf_buf tin, tout;                  /* ciphertext */
    xf_xml *xml;
    xf_buf pin;                        /* plaintext since pin_base, for slicing events */
    uint64_t pin_base, last_end;
    char sid[128];                     /* the remote's stream id on the current stream */
    int remote_db_ns;                  /* its header declared xmlns:db */
    xf_remote_features feat;

    const xf_tenant *local;            /* the remote domain is this hosted tenant */
    xf_bs2s *bs2s;                     /* ... and its backend stream */

    xf_peer_facts facts;
    xf_fed_verdict verdict;
    xf_remote_result res;
    char auth[16];
    char peer[80];
    char tls_ver[16];
    char trail[400];                   /* earlier attempts, for the reason */
    char reason[XF_FED_REASON_MAX + 600];

    size_t queued;                     /* ciphertext/plaintext handed to uv_write */
    int paused, drain_wanted;
    struct xf_remote *next, *prev;     /* worker's list */
};

static void start_candidate(xf_remote *r);
static void next_address(xf_remote *r, const char *why);
static void teardown(xf_remote *r, int graceful);
static void tls_pump(xf_remote *r);

/* ---------------------------------------------------------------- pure helpers */

int xf_remote_mechanisms_have(const char *mech, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < len; i++) {
        if (mech[i] != '<')
            continue;
        size_t j = i + 1;
        size_t ns = j;                 /* start of the local name, after a prefix */
        while (j < len && mech[j] != '>' && mech[j] != ' ' && mech[j] != '/' &&
               mech[j] != '\t' && mech[j] != '\r' && mech[j] != '\n') {
            if (mech[j] == ':')
                ns = j + 1;
            j++;
        }
        if (j - ns != 9 || memcmp(mech + ns, "mechanism", 9) != 0 || j >= len)
            continue;
        while (j < len && mech[j] != '>')
            j++;
        if (j >= len || mech[j - 1] == '/')
            continue;
        size_t a = j + 1, b = a;
        while (b < len && mech[b] != '<')
            b++;
        while (a < b && strchr(" \t\r\n", mech[a]))
            a++;
        while (b > a && strchr(" \t\r\n", mech[b - 1]))
            b--;
        if (b - a == nlen && memcmp(mech + a, name, nlen) == 0)
            return 1;
    }
    return 0;
}

int xf_remote_parse_features(const struct xf_xml_event *ev, const char *elem, size_t len,
                             xf_remote_features *out)
{
    memset(out, 0, sizeof(*out));
    if (ev == NULL || ev->type != XF_XML_ELEMENT || strcmp(ev->name, "features") != 0 ||
        strcmp(ev->ns_uri, XF_NS_STREAMS) != 0)
        return -1;
    for (int i = 0; i < ev->n_children; i++) {
        const xf_xml_child *ch = &ev->children[i];
        if (strcmp(ch->name, "starttls") == 0 && strcmp(ch->ns, XF_NS_TLS) == 0)
            out->starttls = 1;
        else if (strcmp(ch->name, "dialback") == 0 &&
                 strcmp(ch->ns, XF_NS_DIALBACK_FEATURE) == 0)
            out->dialback = 1;
        else if (strcmp(ch->name, "mechanisms") == 0 && strcmp(ch->ns, XF_NS_SASL) == 0) {
            out->mechanisms = 1;
            if (ch->span.start < ev->span.start || ch->span.end < ch->span.start)
                return -1;
            uint64_t a = ch->span.start - ev->span.start, b = ch->span.end - ev->span.start;
            if (b > len)
                return -1;
            out->external = xf_remote_mechanisms_have(elem + a, (size_t)(b - a), "EXTERNAL");
        }
    }
    return 0;
}

enum xf_db_error xf_remote_condition_error(const char *c)
{
    if (c == NULL)
        return XF_DB_ERR_REMOTE_CONNECTION_FAILED;
    static const struct { const char *name; enum xf_db_error e; } map[] = {
        {"policy-violation", XF_DB_ERR_POLICY_VIOLATION},
        {"not-authorized", XF_DB_ERR_NOT_AUTHORIZED},
        {"forbidden", XF_DB_ERR_FORBIDDEN},
        {"remote-connection-failed", XF_DB_ERR_REMOTE_CONNECTION_FAILED},
        {"remote-server-not-found", XF_DB_ERR_REMOTE_SERVER_NOT_FOUND},
        {"remote-server-timeout", XF_DB_ERR_REMOTE_SERVER_TIMEOUT},
        {"connection-timeout", XF_DB_ERR_REMOTE_SERVER_TIMEOUT},
        {"item-not-found", XF_DB_ERR_ITEM_NOT_FOUND},
        {"host-unknown", XF_DB_ERR_ITEM_NOT_FOUND},
        {"not-acceptable", XF_DB_ERR_NOT_ACCEPTABLE},
        {"resource-constraint", XF_DB_ERR_RESOURCE_CONSTRAINT},
        {"internal-server-error", XF_DB_ERR_INTERNAL_SERVER_ERROR},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++)
        if (strcmp(map[i].name, c) == 0)
            return map[i].e;
    return XF_DB_ERR_REMOTE_CONNECTION_FAILED;
}

/* ---------------------------------------------------------------- lifetime */

static void set_state(xf_remote *r, enum r_state s)
{
    xf_debug("remote %s->%s %s -> %s", r->t->domain, r->domain, r_state_names[r->state],
             r_state_names[s]);
    r->state = s;
}

static void handle_gone(xf_remote *r)
{
    if (--r->handles > 0)
        return;
    if (r->ssl_on)
        mbedtls_ssl_free(&r->ssl);
    xf_buf_free(&r->tin);
    xf_buf_free(&r->tout);
    xf_buf_free(&r->pin);
    xf_xml_free(r->xml);
    xf_bs2s_free(r->bs2s);
    for (int i = 0; i < 2; i++)
        if (r->srv_done[i])
            xf_dns_result_free(&r->srv[i]);
    xf_worker *w = r->w;
    xf_config_unref(r->cfg);
    free(r);
    xf_worker_remote_gone(w);
}

static void on_handle_closed(uv_handle_t *h) { handle_gone(h->data); }

static void on_sock_closed(uv_handle_t *h)
{
    r_sock *s = h->data;
    xf_remote *r = s->r;
    free(s);
    if (r == NULL)
        return;
    if (r->lsock == s) {
        /* the lingering socket of a graceful close is gone: so is the linger */
        r->lsock = NULL;
        if (!uv_is_closing((uv_handle_t *)&r->ctimer)) {
            uv_timer_stop(&r->ctimer);
            uv_close((uv_handle_t *)&r->ctimer, on_handle_closed);
        }
    }
    handle_gone(r);
}

/* Drop the current attempt's socket (its TLS state too). */
static void drop_sock(xf_remote *r)
{
    if (r->sock == NULL)
        return;
    uv_close((uv_handle_t *)&r->sock->tcp, on_sock_closed);
    r->sock = NULL;
    if (r->ssl_on) {
        mbedtls_ssl_free(&r->ssl);
        r->ssl_on = 0;
    }
    xf_buf_reset(&r->tin);
    xf_buf_reset(&r->tout);
    xf_buf_reset(&r->pin);
    if (r->xml != NULL)                        /* NULL while relaying until the remote sends */
        xf_xml_reset(r->xml);
    r->pin_base = r->last_end = 0;
    r->sid[0] = '\0';
}

static void build_reason(xf_remote *r, const char *what)
{
    int n = snprintf(r->reason, sizeof(r->reason), "%s%s%s", r->peer[0] ? "peer " : "",
                     r->peer, r->peer[0] ? " " : "");
    if (r->peer[0] && n >= 0 && (size_t)n < sizeof(r->reason))
        n += snprintf(r->reason + n, sizeof(r->reason) - (size_t)n, "%s %s; ",
                      r->local ? "local-backend" : xf_srv_tls_name(r->tls_mode),
                      r->tls_ver[0] ? r->tls_ver : "no-tls");
    if (n >= 0 && (size_t)n < sizeof(r->reason))
        n += snprintf(r->reason + n, sizeof(r->reason) - (size_t)n, "%s", what);
    if (r->trail[0] && n >= 0 && (size_t)n < sizeof(r->reason))
        snprintf(r->reason + n, sizeof(r->reason) - (size_t)n, " [earlier: %s]", r->trail);
}

/* Report the end of an open or verify, then tear down (a failure, or a verify). */
static void finish(xf_remote *r, int ok, enum xf_db_type answer, enum xf_db_error err,
                   const char *what)
{
    if (r->closed)
        return;
    build_reason(r, what);
    r->res.ok = ok;
    r->res.answer = answer;
    r->res.error = ok ? XF_DB_ERR_NONE : err;
    r->res.auth = r->auth[0] ? r->auth : "none";
    r->res.reason = r->reason;
    r->res.peer = r->peer[0] ? r->peer : "-";
    int keep = ok && !r->verify;
    if (keep) {
        set_state(r, R_RELAY);          /* plain_input hands what follows to relay_input */
        uv_timer_stop(&r->deadline);
    }
    r->in_cb = 1;
    r->cb(r->ud, r, &r->res);
    r->in_cb = 0;
    if (!keep || r->closed) {
        r->closed = 0;                  /* the callback may have marked it: finish it */
        teardown(r, ok);
    }
}

static void fail(xf_remote *r, enum xf_db_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(xf_remote *r, enum xf_db_error err, const char *fmt, ...)
{
    char what[XF_FED_REASON_MAX + 100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    finish(r, 0, XF_DB_TYPE_ERROR, err, what);
}

/* ---------------------------------------------------------------- writes */

static void on_write_done(uv_write_t *req, int status)
{
    r_wreq *wr = (r_wreq *)req;
    xf_remote *r = wr->r;
    r->queued -= wr->len;
    free(wr);
    if (r->closed || status == UV_ECANCELED)
        return;
    if (status < 0) {
        char m[120];
        snprintf(m, sizeof(m), "write to the remote failed: %s", uv_strerror(status));
        if (r->state == R_RELAY) {
            if (r->sink.on_close)
                r->sink.on_close(r->sink.ud, m);
            teardown(r, 0);
        } else {
            next_address(r, m);
        }
        return;
    }
    if (r->drain_wanted && r->queued <= r->cfg->limits.buffer_low_bytes) {
        r->drain_wanted = 0;
        if (r->state == R_RELAY && r->sink.on_drain)
            r->sink.on_drain(r->sink.ud);
    }
}

static int sock_write(xf_remote *r, const char *data, size_t len)
{
    if (len == 0 || r->sock == NULL)
        return 0;
    r_wreq *wr = malloc(sizeof(*wr) + len);
    if (wr == NULL)
        return UV_ENOMEM;
    wr->r = r;
    wr->len = len;
    memcpy(wr->data, data, len);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    int e = uv_write(&wr->req, (uv_stream_t *)&r->sock->tcp, &b, 1, on_write_done);
    if (e < 0) {
        free(wr);
        return e;
    }
    r->queued += len;
    return 0;
}

static int flush_tout(xf_remote *r)
{
    size_t n = xf_buf_size(&r->tout);
    if (n == 0)
        return 0;
    int e = sock_write(r, xf_buf_head(&r->tout), n);
    xf_buf_reset(&r->tout);
    return e;
}

/* Plaintext toward the remote: through TLS when it is up. 0 or negative. */
static int send_plain(xf_remote *r, const char *data, size_t len)
{
    if (!r->ssl_on || r->state == R_TLS_HANDSHAKE)
        return sock_write(r, data, len);
    int tries = 0;
    while (len > 0) {
        int n = mbedtls_ssl_write(&r->ssl, (const unsigned char *)data, len);
        if ((n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) && ++tries < 8)
            continue;                  /* memory BIO: never blocks; bounded retry */
        if (n < 0)
            return n;
        data += n;
        len -= (size_t)n;
    }
    return flush_tout(r);
}

static int send_str(xf_remote *r, const char *s) { return send_plain(r, s, strlen(s)); }

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    xf_remote *r = ctx;
    if (xf_buf_append(&r->tout, buf, len) < 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    xf_remote *r = ctx;
    size_t n = xf_buf_size(&r->tin);
    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > len)
        n = len;
    memcpy(buf, xf_buf_head(&r->tin), n);
    xf_buf_consume(&r->tin, n);
    return (int)n;
}

/* Our stream header toward the remote (RFC 6120 §4.7; xmlns:db declared for servers
   that want dialback offered before they answer it, XEP-0220 §2.1). */
static int send_header(xf_remote *r)
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
    return send_plain(r, out, (size_t)n);
}

/* ---------------------------------------------------------------- negotiation */

static void new_stream(xf_remote *r, enum r_state wait)
{
    xf_xml_reset(r->xml);
    xf_buf_reset(&r->pin);
    r->pin_base = r->last_end = 0;
    r->sid[0] = '\0';
    set_state(r, wait);
    if (send_header(r) < 0)
        fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write the stream header");
}

static void decide_and_act(xf_remote *r);

/* Verify the remote's certificate against its domain: the PKIX prooftype (RFC 6120
   §13.7.2, RFC 6125). DANE and POSH stay NOT_TRIED (the next issue plugs in here). */
static void check_certificate(xf_remote *r)
{
    xf_proof *p = &r->facts.proof[XF_PROOF_PKIX];
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&r->ssl);
    if (peer == NULL) {
        p->result = XF_PROOF_INVALID;
        snprintf(p->reason, sizeof(p->reason), "no certificate presented");
        return;
    }
    struct xf_pkix_verdict v;
    memset(&v, 0, sizeof(v));
    int ok = xf_pkix_check((mbedtls_x509_crt *)peer, xf_tls_client_ca(r->w->tlsc),
                           XF_PKIX_ROLE_SERVER, r->domain, XF_SERVICE_SERVER, NULL, &v);
    p->result = ok == 1 ? XF_PROOF_VALID : XF_PROOF_INVALID;
    snprintf(p->reason, sizeof(p->reason), "%.190s", v.reason[0] ? v.reason
             : ok == 1 ? "chain and name valid" : "verification failed");
}

static void on_tls_up(xf_remote *r)
{
    snprintf(r->tls_ver, sizeof(r->tls_ver), "%s", mbedtls_ssl_get_version(&r->ssl));
    r->facts.tls = 1;
    check_certificate(r);
    new_stream(r, R_HEADER);
}

static int tls_start(xf_remote *r)
{
    const mbedtls_ssl_config *conf =
        xf_tls_client_config(r->w->tlsc, r->t, r->tls_mode == XF_SRV_TLS_DIRECT);
    if (conf == NULL)
        return -1;
    mbedtls_ssl_init(&r->ssl);
    r->ssl_on = 1;
    if (mbedtls_ssl_setup(&r->ssl, conf) != 0 || mbedtls_ssl_set_hostname(&r->ssl, r->domain) != 0)
        return -1;
    mbedtls_ssl_set_bio(&r->ssl, r, bio_send, bio_recv, NULL);
    set_state(r, R_TLS_HANDSHAKE);
    return 0;
}

static void send_verify(xf_remote *r)
{
    char out[1200];
    int n = xf_s2s_write_db_verify_request(out, sizeof(out), "db", r->t->domain, r->domain,
                                           r->vid, r->vkey);
    set_state(r, R_VERIFY_WAIT);
    if (n < 0 || send_plain(r, out, (size_t)n) < 0)
        fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write db:verify");
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
        fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot compute the dialback key (stream id '%.60s')",
             r->sid);
        return;
    }
    int n = xf_s2s_write_db_result_request(out, sizeof(out), "db", r->t->domain, r->domain, key);
    set_state(r, R_DB_WAIT);
    if (n < 0 || send_plain(r, out, (size_t)n) < 0)
        fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write db:result");
}

/* The policy decision (tenants/policy.h) on what is known, and the next step. */
static void decide_and_act(xf_remote *r)
{
    xf_fed_decide(r->t->federation, &r->facts, &r->verdict);
    switch (r->verdict.decision) {
    case XF_FED_ACCEPT_EXTERNAL:
        if (r->state == R_SASL_WAIT || r->state == R_AUTH_HEADER || r->state == R_AUTH_FEATURES)
            return;
        {
            char out[600];
            int n = xf_s2s_write_sasl_external(out, sizeof(out), r->t->domain);
            set_state(r, R_SASL_WAIT);
            if (n < 0 || send_plain(r, out, (size_t)n) < 0)
                fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write SASL auth");
        }
        return;
    case XF_FED_NEED_DIALBACK:
        send_db_result(r);
        return;
    case XF_FED_ACCEPT_DIALBACK:
        snprintf(r->auth, sizeof(r->auth), "dialback");
        finish(r, 1, XF_DB_TYPE_VALID, XF_DB_ERR_NONE, r->verdict.reason);
        return;
    default:
        fail(r, xf_remote_condition_error(r->verdict.condition), "%s", r->verdict.reason);
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

static const char *stream_error_condition(const xf_xml_event *ev)
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
        fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "remote stream: %s (%s)", ev->error,
             ev->reason ? ev->reason : "");
        return -1;
    }
    if (ev->type == XF_XML_STREAM_END) {
        fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "remote closed the stream in state %s",
             r_state_names[r->state]);
        return -1;
    }
    if (ev->type == XF_XML_HEADER) {
        snprintf(r->sid, sizeof(r->sid), "%s", ev->id ? ev->id : "");
        r->remote_db_ns = ev->has_dialback_ns;
        int v1 = ev->version && strcmp(ev->version, "1.0") >= 0;
        if (r->state == R_PRE_HEADER)
            set_state(r, R_PRE_FEATURES);
        else if (r->state == R_HEADER)
            set_state(r, R_FEATURES);
        else if (r->state == R_AUTH_HEADER)
            set_state(r, R_AUTH_FEATURES);
        if (!v1) {
            /* RFC 6120 §4.7.5: no version, no features. Nothing to negotiate but
               dialback (XEP-0220 §2.1, pre-1.0 servers). */
            memset(&r->feat, 0, sizeof(r->feat));
            if (r->state == R_PRE_FEATURES) {
                if (r->t->federation != XF_FED_OPEN) {
                    fail(r, XF_DB_ERR_POLICY_VIOLATION,
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
        const char *cond = stream_error_condition(ev);
        fail(r, xf_remote_condition_error(cond), "remote stream error <%s/> in state %s", cond,
             r_state_names[r->state]);
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
        set_state(r, R_STARTTLS_WAIT);
        if (send_str(r, "<starttls xmlns='" XF_NS_TLS "'/>") < 0) {
            fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write starttls");
            return -1;
        }
        return 0;
    case R_STARTTLS_WAIT:
        if (strcmp(ev->ns_uri, XF_NS_TLS) != 0)
            return 0;
        if (strcmp(ev->name, "proceed") == 0)
            return 2;
        fail(r, XF_DB_ERR_POLICY_VIOLATION, "policy %s; the remote refused STARTTLS (<%s/>%s)",
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
        decide_and_act(r);
        return r->state == R_DONE || r->closed ? -1 : 0;
    case R_AUTH_FEATURES:
        if (!is_features)
            return 0;
        finish(r, 1, XF_DB_TYPE_VALID, XF_DB_ERR_NONE, r->verdict.reason);
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
            finish(r, 1, XF_DB_TYPE_VALID, XF_DB_ERR_NONE, "db:verify answered valid");
        else if (strcmp(ev->type_attr, "invalid") == 0)
            finish(r, 1, XF_DB_TYPE_INVALID, XF_DB_ERR_NONE, "db:verify answered invalid");
        else
            fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "db:verify answered type '%s' <%s/>",
                 ev->type_attr, db_error_condition(ev, elem, elen));
        return -1;
    default:
        return 0;
    }
}

/* Plaintext of the remote's stream. Before RELAY it is scanned into events; in RELAY
   whole first-level elements go to the sink. */
static void plain_input(xf_remote *r, const char *data, size_t len);

static void relay_input(xf_remote *r, const char *data, size_t len)
{
    if (r->xml == NULL) {
        r->xml = xf_xml_new(0, R_RELAY_MAX_ELEMENT);
        if (r->xml == NULL)
            goto fail;
        /* The scanner wants a header first: give it a synthetic one (the remote's real
           header was read by the negotiation scanner). */
        static const char hdr[] = "<stream:stream xmlns='jabber:server' xmlns:stream='"
                                  XF_NS_STREAMS "' xmlns:db='" XF_NS_DIALBACK "'>";
        xf_buf_reset(&r->pin);
        if (xf_xml_push(r->xml, hdr, sizeof(hdr) - 1) < 0 ||
            xf_buf_append(&r->pin, hdr, sizeof(hdr) - 1) < 0)
            goto fail;
        r->pin_base = r->last_end = 0;
    }
    if (xf_buf_append(&r->pin, data, len) < 0 || xf_xml_push(r->xml, data, len) < 0)
        goto fail;
    xf_xml_event ev;
    while (!r->closed && xf_xml_next(r->xml, &ev) != XF_XML_NONE) {
        if (ev.type == XF_XML_HEADER) {
            r->last_end = ev.span.end;
            continue;
        }
        if (ev.type == XF_XML_ERROR || ev.type == XF_XML_STREAM_END ||
            (strcmp(ev.name, "error") == 0 && strcmp(ev.ns_uri, XF_NS_STREAMS) == 0)) {
            char m[200];
            if (ev.type == XF_XML_ERROR)
                snprintf(m, sizeof(m), "remote stream: %s", ev.error);
            else if (ev.type == XF_XML_STREAM_END)
                snprintf(m, sizeof(m), "remote closed the stream");
            else
                snprintf(m, sizeof(m), "remote stream error <%s/>", stream_error_condition(&ev));
            if (r->sink.on_close)
                r->sink.on_close(r->sink.ud, m);
            teardown(r, ev.type == XF_XML_STREAM_END);
            return;
        }
        const char *p = xf_buf_head(&r->pin) + (ev.span.start - r->pin_base);
        size_t n = (size_t)(ev.span.end - ev.span.start);
        r->last_end = ev.span.end;
        if (r->sink.on_data && r->sink.on_data(r->sink.ud, p, n) < 0)
            xf_remote_pause(r);
    }
    if (r->closed)
        return;
    xf_buf_consume(&r->pin, (size_t)(r->last_end - r->pin_base));
    r->pin_base = r->last_end;
    return;
fail:
    if (r->sink.on_close)
        r->sink.on_close(r->sink.ud, "out of memory reading the remote");
    teardown(r, 0);
}

static void plain_input(xf_remote *r, const char *data, size_t len)
{
    if (r->state == R_RELAY) {
        relay_input(r, data, len);
        return;
    }
    if (xf_buf_append(&r->pin, data, len) < 0 || xf_xml_push(r->xml, data, len) < 0) {
        fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
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
                fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
                return;
            }
            if (rest)
                memcpy(tail, xf_buf_head(&r->pin) + off, rest);
            if (act == 2) {
                xf_xml_reset(r->xml);
                xf_buf_reset(&r->pin);
                r->pin_base = r->last_end = 0;
                if (tls_start(r) != 0) {
                    free(tail);
                    fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "TLS setup failed");
                    return;
                }
                if (rest)
                    xf_buf_append(&r->tin, tail, rest);
                free(tail);
                tls_pump(r);
                return;
            }
            new_stream(r, R_AUTH_HEADER);
            if (!r->closed && rest)
                plain_input(r, tail, rest);
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
            relay_input(r, tail, rest);
            free(tail);
        }
        return;
    }
    xf_buf_consume(&r->pin, (size_t)(r->last_end - r->pin_base));
    r->pin_base = r->last_end;
}

/* Drive TLS with the ciphertext buffered: handshake, then application data. */
static void tls_pump(xf_remote *r)
{
    char e[100];
    if (r->state == R_TLS_HANDSHAKE) {
        int ret = mbedtls_ssl_handshake(&r->ssl);
        flush_tout(r);
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        if (ret != 0) {
            char m[160];
            snprintf(m, sizeof(m), "TLS handshake failed: %s", xf_tls_strerror(ret, e, sizeof(e)));
            next_address(r, m);
            return;
        }
        on_tls_up(r);
    }
    while (!r->closed && r->ssl_on && r->state != R_TLS_HANDSHAKE && r->state != R_DONE &&
           !r->paused) {
        unsigned char buf[R_READ_CHUNK];
        int n = mbedtls_ssl_read(&r->ssl, buf, sizeof(buf));
        if (n > 0) {
            plain_input(r, (const char *)buf, (size_t)n);
            continue;
        }
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
#ifdef MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET
        if (n == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            continue;
#endif
        char m[160];
        if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
            snprintf(m, sizeof(m), "the remote closed TLS");
        else
            snprintf(m, sizeof(m), "TLS read failed: %s", xf_tls_strerror(n, e, sizeof(e)));
        if (r->state == R_RELAY) {
            if (r->sink.on_close)
                r->sink.on_close(r->sink.ud, m);
            teardown(r, 0);
        } else {
            fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "%s in state %s", m,
                 r_state_names[r->state]);
        }
        return;
    }
    if (!r->closed && r->ssl_on)
        flush_tout(r);
}

/* ---------------------------------------------------------------- sockets */

static void alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(R_READ_CHUNK);
    buf->len = buf->base ? R_READ_CHUNK : 0;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    r_sock *s = st->data;
    xf_remote *r = s->r;
    if (r == NULL || r->closed || s != r->sock) {
        free(buf->base);
        return;
    }
    if (n < 0) {
        free(buf->base);
        char m[120];
        snprintf(m, sizeof(m), "the remote %s", n == UV_EOF ? "closed the connection"
                 : uv_strerror((int)n));
        if (r->state == R_RELAY) {
            if (r->sink.on_close)
                r->sink.on_close(r->sink.ud, m);
            teardown(r, 0);
        } else if (r->state == R_TLS_HANDSHAKE) {
            next_address(r, m);
        } else {
            fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "%s in state %s", m,
                 r_state_names[r->state]);
        }
        return;
    }
    if (n > 0) {
        if (r->bs2s != NULL) {
            (void)xf_bs2s_input(r->bs2s, buf->base, (size_t)n);   /* calls the ops */
        } else if (r->ssl_on) {
            if (xf_buf_append(&r->tin, buf->base, (size_t)n) < 0)
                fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
            else
                tls_pump(r);
        } else {
            plain_input(r, buf->base, (size_t)n);
        }
    }
    free(buf->base);
}

static void on_connect_timeout(uv_timer_t *t);

/* ---------------------------------------------------------------- a hosted remote */

static int local_send(void *ud, const char *data, size_t len)
{
    xf_remote *r = ud;
    if (r->closed)
        return -1;
    return sock_write(r, data, len) < 0 ? -1 : 0;
}

static int local_forward(void *ud, const char *data, size_t len)
{
    xf_remote *r = ud;
    if (r->closed || r->state != R_RELAY)
        return r->closed ? -1 : 0;
    if (r->sink.on_data && r->sink.on_data(r->sink.ud, data, len) < 0)
        xf_remote_pause(r);
    return r->closed ? -1 : 0;
}

static int local_pair(void *ud, const char *remote, const char *local, enum xf_db_type type,
                      enum xf_db_error err)
{
    xf_remote *r = ud;
    (void)remote;
    (void)local;
    if (r->closed || r->state != R_LOCAL_WAIT)
        return r->closed ? -1 : 0;
    if (type == XF_DB_TYPE_VALID) {
        snprintf(r->auth, sizeof(r->auth), "dialback");
        finish(r, 1, XF_DB_TYPE_VALID, XF_DB_ERR_NONE,
               "hosted here: asserted to its backend with xmppfront's key, answered valid");
    } else {
        fail(r, err != XF_DB_ERR_NONE ? err : XF_DB_ERR_NOT_AUTHORIZED,
             "hosted here: its backend answered the assertion %s",
             type == XF_DB_TYPE_INVALID ? "invalid" : "with an error");
    }
    return r->closed ? -1 : 0;
}

static void local_fail(void *ud, const char *reason)
{
    xf_remote *r = ud;
    if (r->closed)
        return;
    if (r->state == R_RELAY) {
        if (r->sink.on_close)
            r->sink.on_close(r->sink.ud, reason);
        teardown(r, 0);
    } else {
        fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "hosted here: its backend stream: %s",
             reason);
    }
}

static void local_start(xf_remote *r)
{
    static const xf_bs2s_ops ops = {local_send, local_forward, local_pair, local_fail};
    r->bs2s = xf_bs2s_new(r->cfg->federation.dialback_secret, r->t->domain, r->domain,
                          R_RELAY_MAX_ELEMENT, &ops, r);
    if (r->bs2s == NULL) {
        fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    set_state(r, R_LOCAL_WAIT);
    if (xf_bs2s_start(r->bs2s) != 0 && !r->closed)
        fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "hosted here: cannot write to its backend");
}

static void on_connect(uv_connect_t *req, int status)
{
    r_sock *s = req->data;
    xf_remote *r = s->r;
    if (r == NULL || r->closed || s != r->sock || status == UV_ECANCELED)
        return;
    uv_timer_stop(&r->ctimer);
    if (status < 0) {
        char m[120];
        snprintf(m, sizeof(m), "connect: %s", uv_strerror(status));
        next_address(r, m);
        return;
    }
    r->any_connected = 1;
    uv_tcp_nodelay(&s->tcp, 1);
    if (r->cfg->limits.tcp_keepalive_s)
        uv_tcp_keepalive(&s->tcp, 1, r->cfg->limits.tcp_keepalive_s);
    int e = uv_read_start((uv_stream_t *)&s->tcp, alloc_buf, on_read);
    if (e < 0) {
        next_address(r, uv_strerror(e));
        return;
    }
    if (r->local != NULL) {
        local_start(r);
    } else if (r->tls_mode == XF_SRV_TLS_DIRECT) {
        if (tls_start(r) != 0) {
            fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "TLS setup failed");
            return;
        }
        tls_pump(r);
    } else {
        xf_xml_reset(r->xml);
        set_state(r, R_PRE_HEADER);
        if (send_header(r) < 0)
            fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "cannot write the stream header");
    }
}

static uint64_t deadline_left(xf_remote *r)
{
    uint64_t due = uv_timer_get_due_in(&r->deadline);
    return due;
}

static void connect_current(xf_remote *r)
{
    const xf_dns_addr *a = &r->addrs[r->i_addr];
    const xf_srv_target *c = &r->cand[r->i_cand];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    char host[INET6_ADDRSTRLEN] = "?";
    if (r->local != NULL) {
        memcpy(&ss, &r->local->s2s.addr, r->local->s2s.addrlen);
        snprintf(r->peer, sizeof(r->peer), "%s", r->local->s2s.spec);
    } else if (a->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(c->port);
        memcpy(&in->sin_addr, a->addr, 4);
        inet_ntop(AF_INET, a->addr, host, sizeof(host));
        snprintf(r->peer, sizeof(r->peer), "%s:%u", host, c->port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(c->port);
        memcpy(&in6->sin6_addr, a->addr, 16);
        inet_ntop(AF_INET6, a->addr, host, sizeof(host));
        snprintf(r->peer, sizeof(r->peer), "[%s]:%u", host, c->port);
    }
    r->tls_mode = r->local ? 0 : c->tls;
    r->tls_ver[0] = '\0';
    memset(&r->facts, 0, sizeof(r->facts));
    r_sock *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    s->r = r;
    uv_tcp_init(&r->w->loop, &s->tcp);
    s->tcp.data = s;
    s->creq.data = s;
    r->handles++;
    r->sock = s;
    set_state(r, R_CONNECT);
    int e = uv_tcp_connect(&s->creq, &s->tcp, (const struct sockaddr *)&ss, on_connect);
    if (e < 0) {
        char m[120];
        snprintf(m, sizeof(m), "connect: %s", uv_strerror(e));
        next_address(r, m);
        return;
    }
    uint64_t ms = (uint64_t)r->cfg->federation.connect_timeout_s * 1000;
    uint64_t left = deadline_left(r);
    uv_timer_start(&r->ctimer, on_connect_timeout, ms < left ? ms : left, 0);
}

static void on_connect_timeout(uv_timer_t *t)
{
    xf_remote *r = t->data;
    if (r->closed || r->state != R_CONNECT)
        return;
    next_address(r, "connect timed out");
}

static void add_trail(xf_remote *r, const char *what)
{
    size_t n = strlen(r->trail);
    if (n + 4 >= sizeof(r->trail))
        return;
    snprintf(r->trail + n, sizeof(r->trail) - n, "%s%s %s", n ? "; " : "",
             r->peer[0] ? r->peer : r->cand[r->i_cand].host, what);
}

/* The current attempt failed before TLS was up: the next address, then the next
   candidate; when none is left, the end. */
static void next_address(xf_remote *r, const char *why)
{
    add_trail(r, why);
    drop_sock(r);
    uv_timer_stop(&r->ctimer);
    if (r->local != NULL) {                    /* one backend address, no candidates */
        fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "hosted here: its s2s backend %s: %s",
             r->local->s2s.spec, why);
        return;
    }
    if (++r->i_addr < r->n_addr) {
        connect_current(r);
        return;
    }
    r->i_cand++;
    start_candidate(r);
}

static void on_addr(void *ud, uint64_t id, const xf_dns_result *res)
{
    xf_remote *r = ud;
    (void)id;
    r->q_addr = 0;
    if (r->closed)
        return;
    if (res->status != XF_DNS_NOERROR || res->n_addr == 0) {
        char m[80];
        snprintf(m, sizeof(m), "A/AAAA %s", xf_dns_status_name(res->status));
        r->peer[0] = '\0';
        add_trail(r, m);
        r->i_cand++;
        start_candidate(r);
        return;
    }
    r->any_addr = 1;
    r->n_addr = 0;
    for (size_t i = 0; i < res->n_addr && r->n_addr < MAX_ADDRS; i++)
        r->addrs[r->n_addr++] = res->addr[i];
    r->i_addr = 0;
    connect_current(r);
}

/* Candidate i_cand: its addresses, or the end when every candidate failed. */
static void start_candidate(xf_remote *r)
{
    if (r->closed)
        return;
    if (r->i_cand >= r->n_cand) {
        r->tls_mode = 0;
        if (!r->any_addr)
            fail(r, XF_DB_ERR_REMOTE_SERVER_NOT_FOUND, "no address for %s", r->domain);
        else
            fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "no candidate of %s could be reached",
                 r->domain);
        return;
    }
    set_state(r, R_ADDR);
    r->peer[0] = '\0';
    r->n_addr = r->i_addr = 0;
    r->q_addr = xf_dns_query_a_aaaa(r->w->dns, r->cand[r->i_cand].host, on_addr, r);
    if (r->q_addr == 0) {
        add_trail(r, "bad host name");
        r->i_cand++;
        start_candidate(r);                    /* bounded by MAX_CANDIDATES */
    }
}

static void on_srv(void *ud, uint64_t id, const xf_dns_result *res)
{
    xf_remote *r = ud;
    int i = id == r->q_srv[0] ? 0 : 1;
    r->q_srv[i] = 0;
    if (r->closed)
        return;
    if (xf_dns_result_copy(&r->srv[i], res) != 0) {
        fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    r->srv_done[i] = 1;
    if (!r->srv_done[0] || !r->srv_done[1])
        return;
    xf_srv_answer a[2];
    xf_dns_srv_answer(&r->srv[0], &a[0]);
    xf_dns_srv_answer(&r->srv[1], &a[1]);
    int n = xf_srv_order(r->domain, &a[0], &a[1], NULL, NULL, r->cand, MAX_CANDIDATES);
    if (n == XF_SRV_NO_SERVICE) {
        fail(r, XF_DB_ERR_REMOTE_SERVER_NOT_FOUND,
             "%s has no xmpp-server service (SRV target '.')", r->domain);
        return;
    }
    if (n < 0) {
        fail(r, XF_DB_ERR_REMOTE_SERVER_NOT_FOUND, "SRV lookup for %s failed: xmpps %s, xmpp %s",
             r->domain, xf_dns_status_name(r->srv[0].status),
             xf_dns_status_name(r->srv[1].status));
        return;
    }
    r->n_cand = n;
    r->i_cand = 0;
    start_candidate(r);
}

static void on_deadline(uv_timer_t *t)
{
    xf_remote *r = t->data;
    if (r->closed || r->state == R_RELAY)
        return;
    fail(r, XF_DB_ERR_REMOTE_SERVER_TIMEOUT,
         "no %s within negotiation_timeout_s=%u (state %s)",
         r->verify ? "answer" : "authenticated stream",
         r->cfg->federation.negotiation_timeout_s, r_state_names[r->state]);
}

static void on_start_failed(uv_timer_t *t)
{
    xf_remote *r = t->data;
    fail(r, XF_DB_ERR_REMOTE_SERVER_NOT_FOUND, "'%s' is not a domain that can be resolved",
         r->domain);
}

/* The remote domain is hosted here: its s2s backend (deferred: never call back from
   inside xf_remote_open). */
static void on_local_start(uv_timer_t *t)
{
    xf_remote *r = t->data;
    if (r->local->s2s.addrlen == 0) {
        fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "hosted here, but %s has no s2s backend",
             r->domain);
        return;
    }
    r->n_addr = 1;                             /* connect_current reads addrs[0] */
    r->i_addr = 0;
    connect_current(r);
}

static xf_remote *start(xf_worker *w, const xf_tenant *t, const char *remote, int verify,
                        const char *sid, const char *key, xf_remote_open_cb cb, void *ud)
{
    if (w == NULL || t == NULL || remote == NULL || cb == NULL || w->dns == NULL ||
        w->tlsc == NULL)
        return NULL;
    xf_remote *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->xml = xf_xml_new(w->config->limits.max_header_bytes, R_NEG_MAX_ELEMENT);
    if (r->xml == NULL) {
        free(r);
        return NULL;
    }
    r->w = w;
    r->cfg = xf_config_ref(w->config);
    r->t = t;
    r->verify = verify;
    r->cb = cb;
    r->ud = ud;
    size_t i = 0;
    for (; remote[i] && i + 1 < sizeof(r->domain); i++)
        r->domain[i] = (remote[i] >= 'A' && remote[i] <= 'Z') ? (char)(remote[i] + 32) : remote[i];
    r->domain[i] = '\0';
    if (i > 0 && r->domain[i - 1] == '.')
        r->domain[i - 1] = '\0';
    if (verify) {
        snprintf(r->vid, sizeof(r->vid), "%s", sid ? sid : "");
        snprintf(r->vkey, sizeof(r->vkey), "%s", key ? key : "");
    }
    uv_timer_init(&w->loop, &r->deadline);
    uv_timer_init(&w->loop, &r->ctimer);
    r->deadline.data = r->ctimer.data = r;
    r->handles = 2;
    r->next = w->remotes;
    if (w->remotes)
        w->remotes->prev = r;
    w->remotes = r;
    w->n_remotes++;
    uv_timer_start(&r->deadline, on_deadline,
                   (uint64_t)r->cfg->federation.negotiation_timeout_s * 1000, 0);
    char name[XF_SRV_HOST_MAX + 32];
    int bad = strlen(remote) >= sizeof(r->domain) || r->domain[0] == '\0';
    if (!bad && !verify && (r->local = xf_registry_find(r->cfg->registry, r->domain)) != NULL) {
        uv_timer_start(&r->ctimer, on_local_start, 0, 0);
        return r;
    }
    if (!bad) {
        snprintf(name, sizeof(name), "_xmpps-server._tcp.%s", r->domain);
        r->q_srv[0] = xf_dns_query_srv(w->dns, name, on_srv, r);
        snprintf(name, sizeof(name), "_xmpp-server._tcp.%s", r->domain);
        r->q_srv[1] = r->q_srv[0] ? xf_dns_query_srv(w->dns, name, on_srv, r) : 0;
        bad = r->q_srv[0] == 0 || r->q_srv[1] == 0;
    }
    if (bad) {
        xf_dns_cancel(w->dns, r->q_srv[0]);
        r->q_srv[0] = 0;
        uv_timer_start(&r->ctimer, on_start_failed, 0, 0);   /* never from inside the call */
    }
    return r;
}

xf_remote *xf_remote_open(xf_worker *w, const xf_tenant *t, const char *remote,
                          xf_remote_open_cb cb, void *ud)
{
    return start(w, t, remote, 0, NULL, NULL, cb, ud);
}

xf_remote *xf_remote_verify(xf_worker *w, const xf_tenant *t, const char *remote,
                            const char *stream_id, const char *key,
                            xf_remote_open_cb cb, void *ud)
{
    if (stream_id == NULL || key == NULL)
        return NULL;
    return start(w, t, remote, 1, stream_id, key, cb, ud);
}

/* ---------------------------------------------------------------- relay API */

void xf_remote_set_sink(xf_remote *r, const xf_remote_sink *sink)
{
    if (r != NULL && sink != NULL)
        r->sink = *sink;
}

int xf_remote_send(xf_remote *r, const char *data, size_t len)
{
    if (r == NULL || r->closed || r->state != R_RELAY)
        return -1;
    if (send_plain(r, data, len) < 0)
        return -1;
    if (r->queued > r->cfg->limits.buffer_high_bytes)
        r->drain_wanted = 1;
    return 0;
}

size_t xf_remote_queued(const xf_remote *r) { return r ? r->queued : 0; }

const char *xf_remote_tls(const xf_remote *r)
{
    return r && r->tls_ver[0] ? r->tls_ver : "none";
}

void xf_remote_pause(xf_remote *r)
{
    if (r == NULL || r->paused || r->closed || r->sock == NULL)
        return;
    r->paused = 1;
    uv_read_stop((uv_stream_t *)&r->sock->tcp);
}

void xf_remote_resume(xf_remote *r)
{
    if (r == NULL || !r->paused || r->closed || r->sock == NULL)
        return;
    r->paused = 0;
    uv_read_start((uv_stream_t *)&r->sock->tcp, alloc_buf, on_read);
    if (r->ssl_on)
        tls_pump(r);                           /* records already buffered */
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    r_sock *s = req->data;
    if (!uv_is_closing((uv_handle_t *)&s->tcp))
        uv_close((uv_handle_t *)&s->tcp, on_sock_closed);
}

/* The graceful close took too long: close the socket (on_sock_closed then closes the
   timer). */
static void on_linger(uv_timer_t *t)
{
    xf_remote *r = t->data;
    if (r->lsock && !uv_is_closing((uv_handle_t *)&r->lsock->tcp))
        uv_close((uv_handle_t *)&r->lsock->tcp, on_sock_closed);
}

/* Stops everything; graceful (a stream was open): </stream:stream>, close_notify, FIN,
   bounded by R_LINGER_MS. Frees r from the last close callback. */
static void teardown(xf_remote *r, int graceful)
{
    if (r->closed)
        return;
    r->closed = 1;
    set_state(r, R_DONE);
    xf_dns *dns = r->w->dns;
    xf_dns_cancel(dns, r->q_srv[0]);
    xf_dns_cancel(dns, r->q_srv[1]);
    xf_dns_cancel(dns, r->q_addr);
    r->q_srv[0] = r->q_srv[1] = r->q_addr = 0;
    if (r->prev)
        r->prev->next = r->next;
    else if (r->w->remotes == r)
        r->w->remotes = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
    uv_timer_stop(&r->deadline);
    uv_close((uv_handle_t *)&r->deadline, on_handle_closed);
    uv_timer_stop(&r->ctimer);
    if (graceful && r->sock != NULL && uv_is_writable((uv_stream_t *)&r->sock->tcp)) {
        uv_read_stop((uv_stream_t *)&r->sock->tcp);
        static const char end[] = "</stream:stream>";
        if (r->ssl_on && mbedtls_ssl_is_handshake_over(&r->ssl)) {
            int n = mbedtls_ssl_write(&r->ssl, (const unsigned char *)end, sizeof(end) - 1);
            (void)n;
            mbedtls_ssl_close_notify(&r->ssl);
            flush_tout(r);
        } else if (!r->ssl_on) {
            sock_write(r, end, sizeof(end) - 1);
        }
        r->sock->sreq.data = r->sock;
        if (uv_shutdown(&r->sock->sreq, (uv_stream_t *)&r->sock->tcp, on_shutdown) == 0) {
            uv_timer_start(&r->ctimer, on_linger, R_LINGER_MS, 0);
            r->lsock = r->sock;                /* closes itself after the shutdown */
            r->sock = NULL;
            return;
        }
    }
    drop_sock(r);
    uv_close((uv_handle_t *)&r->ctimer, on_handle_closed);
}

void xf_remote_close(xf_remote *r, const char *reason)
{
    if (r == NULL)
        return;
    if (reason)
        xf_debug("remote %s->%s close: %s", r->t->domain, r->domain, reason);
    if (r->in_cb) {
        r->closed = 1;                         /* finish() completes it after the callback */
        return;
    }
    teardown(r, r->state == R_RELAY);
}
