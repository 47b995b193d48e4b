/*
 * remote: s2s streams xmppfront opens itself (contract: proxy/remote.h). This file: the
 * lifecycle (state changes, the end of an open or verify, teardown), the start of a walk,
 * the public API and the relay of a stream that authenticated, the hosted-remote case.
 * The state machine and the struct: proxy/remote_int.h. Resolution, candidates, TCP
 * connects and the client TLS: proxy/remote_connect.c. The initiator's negotiation
 * (STARTTLS, features, SASL EXTERNAL, dialback, db:verify): proxy/remote_negotiate.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/ssl.h>
#include "proxy/backend_s2s.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/posh_fetch.h"
#include "proxy/remote_int.h"

const char *const xf_remote_state_names[] = {
    "resolve", "addr", "connect", "pre-header", "pre-features", "starttls-wait",
    "tls-handshake", "header", "features", "sasl-wait", "auth-header", "auth-features",
    "db-wait", "verify-wait", "local-wait", "relay", "done", "tlsa-wait", "posh-wait"
};

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

void xf_remote_set_state(xf_remote *r, enum r_state s)
{
    xf_debug("remote %s->%s %s -> %s", r->t->domain, r->domain, xf_remote_state_names[r->state],
             xf_remote_state_names[s]);
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
    if (r->tlsa_have)
        xf_dns_result_free(&r->tlsa);
    xf_posh_answer_unref(r->posh);
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
void xf_remote_drop_sock(xf_remote *r)
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
void xf_remote_finish(xf_remote *r, int ok, enum xf_db_type answer, enum xf_db_error err,
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
    if (!r->verify)
        xf_metrics_s2s_auth(XF_M_OUT, r->auth, ok && answer == XF_DB_TYPE_VALID);
    int keep = ok && !r->verify;
    if (keep) {
        xf_remote_set_state(r, R_RELAY);         /* plain_input hands what follows to relay_input */
        uv_timer_stop(&r->deadline);
    }
    r->in_cb = 1;
    r->cb(r->ud, r, &r->res);
    r->in_cb = 0;
    if (!keep || r->closed) {
        r->closed = 0;                  /* the callback may have marked it: finish it */
        xf_remote_teardown(r, ok);
    }
}

void xf_remote_fail(xf_remote *r, enum xf_db_error err, const char *fmt, ...)
{
    char what[XF_FED_REASON_MAX + 100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    xf_remote_finish(r, 0, XF_DB_TYPE_ERROR, err, what);
}

/* ---------------------------------------------------------------- a hosted remote */

static int local_send(void *ud, const char *data, size_t len)
{
    xf_remote *r = ud;
    if (r->closed)
        return -1;
    return xf_remote_sock_write(r, data, len) < 0 ? -1 : 0;
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
        xf_remote_finish(r, 1, XF_DB_TYPE_VALID, XF_DB_ERR_NONE,
                       "hosted here: asserted to its backend with xmppfront's key, answered valid");
    } else {
        xf_remote_fail(r, err != XF_DB_ERR_NONE ? err : XF_DB_ERR_NOT_AUTHORIZED,
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
        xf_remote_teardown(r, 0);
    } else {
        xf_remote_fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED, "hosted here: its backend stream: %s",
                       reason);
    }
}

void xf_remote_local_start(xf_remote *r)
{
    static const xf_bs2s_ops ops = {local_send, local_forward, local_pair, local_fail};
    r->bs2s = xf_bs2s_new(r->cfg->federation.dialback_secret, r->t->domain, r->domain,
                          R_RELAY_MAX_ELEMENT, &ops, r);
    if (r->bs2s == NULL) {
        xf_remote_fail(r, XF_DB_ERR_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    xf_remote_set_state(r, R_LOCAL_WAIT);
    if (xf_bs2s_start(r->bs2s) != 0 && !r->closed)
        xf_remote_fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED,
                       "hosted here: cannot write to its backend");
}

/* ---------------------------------------------------------------- start */

static void on_deadline(uv_timer_t *t)
{
    xf_remote *r = t->data;
    if (r->closed || r->state == R_RELAY)
        return;
    xf_remote_fail(r, XF_DB_ERR_REMOTE_SERVER_TIMEOUT,
                   "no %s within negotiation_timeout_s=%u (state %s)",
                   r->verify ? "answer" : "authenticated stream",
                   r->cfg->federation.negotiation_timeout_s, xf_remote_state_names[r->state]);
}

static void on_start_failed(uv_timer_t *t)
{
    xf_remote *r = t->data;
    xf_remote_fail(r, XF_DB_ERR_REMOTE_SERVER_NOT_FOUND,
                   "'%s' is not a domain that can be resolved",
                   r->domain);
}

/* The remote domain is hosted here: its s2s backend (deferred: never call back from
   inside xf_remote_open). */
static void on_local_start(uv_timer_t *t)
{
    xf_remote *r = t->data;
    if (r->local->s2s.addrlen == 0) {
        xf_remote_fail(r, XF_DB_ERR_REMOTE_CONNECTION_FAILED,
                       "hosted here, but %s has no s2s backend",
                       r->domain);
        return;
    }
    r->n_addr = 1;                             /* connect_current reads addrs[0] */
    r->i_addr = 0;
    xf_remote_connect_current(r);
}

static xf_remote *start(xf_worker *w, xf_config *cfg, const xf_tenant *t, const char *remote,
                        int verify, const char *sid, const char *key, xf_remote_open_cb cb,
                        void *ud)
{
    if (w == NULL || cfg == NULL || t == NULL || remote == NULL || cb == NULL ||
        w->dns == NULL || cfg->tlsc == NULL)
        return NULL;
    xf_remote *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->xml = xf_xml_new(cfg->limits.max_header_bytes, R_NEG_MAX_ELEMENT);
    if (r->xml == NULL) {
        free(r);
        return NULL;
    }
    r->w = w;
    r->cfg = xf_config_ref(cfg);           /* t's snapshot, and its client TLS */
    r->t = t;
    r->verify = verify;
    r->ad_trusted = xf_dns_ad_trusted(w->dns);
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
        r->q_srv[0] = xf_dns_query_srv(w->dns, name, xf_remote_on_srv, r);
        snprintf(name, sizeof(name), "_xmpp-server._tcp.%s", r->domain);
        r->q_srv[1] = r->q_srv[0] ? xf_dns_query_srv(w->dns, name, xf_remote_on_srv, r) : 0;
        bad = r->q_srv[0] == 0 || r->q_srv[1] == 0;
        if (!bad && !verify)
            xf_remote_posh_start(r);           /* in parallel with DNS */
    }
    if (bad) {
        xf_dns_cancel(w->dns, r->q_srv[0]);
        r->q_srv[0] = 0;
        uv_timer_start(&r->ctimer, on_start_failed, 0, 0);   /* never from inside the call */
    }
    return r;
}

xf_remote *xf_remote_open(xf_worker *w, xf_config *cfg, const xf_tenant *t,
                          const char *remote, xf_remote_open_cb cb, void *ud)
{
    return start(w, cfg, t, remote, 0, NULL, NULL, cb, ud);
}

xf_remote *xf_remote_verify(xf_worker *w, xf_config *cfg, const xf_tenant *t,
                            const char *remote, const char *stream_id, const char *key,
                            xf_remote_open_cb cb, void *ud)
{
    if (stream_id == NULL || key == NULL)
        return NULL;
    return start(w, cfg, t, remote, 1, stream_id, key, cb, ud);
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
    if (xf_remote_send_plain(r, data, len) < 0)
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
    uv_read_start((uv_stream_t *)&r->sock->tcp, xf_remote_alloc_buf, xf_remote_on_read);
    if (r->ssl_on)
        xf_remote_tls_pump(r);                           /* records already buffered */
}

/* Plaintext of the remote's stream in RELAY (xf_remote_plain_input hands it here): whole
   first-level elements go to the sink. */
void xf_remote_relay_input(xf_remote *r, const char *data, size_t len)
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
                snprintf(m, sizeof(m), "remote stream error <%s/>",
                         xf_remote_stream_error_condition(&ev));
            if (r->sink.on_close)
                r->sink.on_close(r->sink.ud, m);
            xf_remote_teardown(r, ev.type == XF_XML_STREAM_END);
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
    xf_remote_teardown(r, 0);
}

/* ---------------------------------------------------------------- close */

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
void xf_remote_teardown(xf_remote *r, int graceful)
{
    if (r->closed)
        return;
    r->closed = 1;
    xf_remote_set_state(r, R_DONE);
    xf_dns *dns = r->w->dns;
    xf_dns_cancel(dns, r->q_srv[0]);
    xf_dns_cancel(dns, r->q_srv[1]);
    xf_dns_cancel(dns, r->q_addr);
    xf_dns_cancel(dns, r->q_tlsa);
    r->q_srv[0] = r->q_srv[1] = r->q_addr = r->q_tlsa = 0;
    xf_posh_fetch_cancel(r->w->posh, r->q_posh);
    r->q_posh = 0;
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
            /* through xf_remote_send_plain's loop: mbedtls_ssl_write may take fewer
               bytes than asked (MBEDTLS_SSL_OUT_CONTENT_LEN; a failure here changes
               nothing, the socket goes anyway) */
            (void)xf_remote_send_plain(r, end, sizeof(end) - 1);
            mbedtls_ssl_close_notify(&r->ssl);
            xf_remote_flush_tout(r);
        } else if (!r->ssl_on) {
            xf_remote_sock_write(r, end, sizeof(end) - 1);
        }
        r->sock->sreq.data = r->sock;
        if (uv_shutdown(&r->sock->sreq, (uv_stream_t *)&r->sock->tcp, on_shutdown) == 0) {
            uv_timer_start(&r->ctimer, on_linger, R_LINGER_MS, 0);
            r->lsock = r->sock;                /* closes itself after the shutdown */
            r->sock = NULL;
            return;
        }
    }
    xf_remote_drop_sock(r);
    uv_close((uv_handle_t *)&r->ctimer, on_handle_closed);
}

void xf_remote_close(xf_remote *r, const char *reason)
{
    if (r == NULL)
        return;
    if (reason)
        xf_debug("remote %s->%s close: %s", r->t->domain, r->domain, reason);
    if (r->in_cb) {
        r->closed = 1;                      /* xf_remote_finish() completes it after the callback */
        return;
    }
    xf_remote_teardown(r, r->state == R_RELAY);
}
