/*
 * inbound: the negotiation of an inbound stream up to RELAY — the pre-TLS header and
 * STARTTLS (RFC 6120 §5), the post-TLS header that routes the stream (tenant by `to`,
 * service by ALPN or namespace, agreement with the SNI), the backend connect with the
 * optional PROXY v2 header, and the backend's first features with <starttls/> removed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/ssl.h>
#include "certs/identity.h"
#include "proxy/conn_int.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/proxyproto.h"
#include "tenants/policy.h"

#define XF_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define XF_NS_DIALBACK "jabber:server:dialback"
#define XF_NS_SASL2 "urn:xmpp:sasl:2"

static void on_backend_connected(uv_connect_t *req, int status);
static int forward_client(xf_conn *c);

static int version_ok(const char *v)
{
    /* RFC 6120 §4.7.5: major.minor as integers; no version means 0.9. */
    if (v == NULL)
        return 0;
    char *end;
    long major = strtol(v, &end, 10);
    return end != v && *end == '.' && major >= 1;
}

/* Note the tenant the stream's `to` names (NULL if none), so that every answer to this
   header, errors included, comes from it (RFC 6120 §4.7.1, §4.9.1.3) and the log
   names it. */
static void note_tenant(xf_conn *c, const char *to)
{
    c->tenant = to ? xf_registry_find(c->config->registry, to) : NULL;
}

/* The noted tenant, or NULL after answering <host-unknown/> (RFC 6120 §4.9.3.6). */
static const xf_tenant *hosted_tenant(xf_conn *c, const char *to)
{
    if (c->tenant == NULL) {
        char r[200];
        snprintf(r, sizeof(r), "to '%.100s' is not hosted here", to ? to : "(none)");
        xf_conn_stream_error(c, "host-unknown", NULL, r);
    }
    return c->tenant;
}

/* Pre-TLS header on a STARTTLS listener: answer with our header and the STARTTLS-only
   features (RFC 6120 §5.3.1, §5.4.1). */
static void on_plain_header(xf_conn *c, const xf_xml_event *ev)
{
    c->stream_ns = ev->ns;
    note_tenant(c, ev->to);
    int want = c->lconf->service;
    if (ev->ns == XF_XML_NS_NONE) {
        xf_conn_stream_error(c, "invalid-namespace", NULL, "stream header without a content namespace");
        return;
    }
    if ((want == XF_SVC_CLIENT && ev->ns != XF_XML_NS_CLIENT) ||
        (want == XF_SVC_SERVER && ev->ns != XF_XML_NS_SERVER)) {
        xf_conn_stream_error(c, "invalid-namespace", NULL, "stream namespace does not fit the listener");
        return;
    }
    const xf_tenant *t = hosted_tenant(c, ev->to);
    if (t == NULL)
        return;
    c->sel.hint = t;
    if (!version_ok(ev->version)) {
        xf_conn_stream_error(c, "unsupported-version", "TLS is required; version 1.0 streams only",
                     "stream without version 1.0");
        return;
    }
    if (ev->ns == XF_XML_NS_SERVER && t->federation == XF_FED_OPEN && t->s2s.addrlen > 0) {
        /* Policy open (XEP-0238 types 2/3): TLS offered, not required; dialback over
           plaintext accepted. s2s_in negotiates it (its features offer <starttls/>
           without <required/>); a <starttls/> comes back through xf_conn_s2s_starttls. */
        c->service = XF_SVC_SERVER;
        xf_conn_set_state(c, XF_CONN_PLAIN_STARTTLS);
        xf_s2s_in_start(c, ev);
        return;
    }
    static const char features[] =
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
        "</starttls></stream:features>";
    /* The peer's `from` is echoed (escaped, so up to 6x longer): the header gets what
       is left after the features, and a header that does not fit is refused. */
    char out[4096], id[40];
    xf_xml_new_id(id, sizeof(id));
    const char *to = (ev->ns == XF_XML_NS_SERVER) ? ev->from : NULL;
    int n = xf_xml_write_header(out, sizeof(out) - (sizeof(features) - 1), ev->ns, t->domain,
                                to, id, "1.0");
    if (n < 0) {
        xf_conn_stream_error(c, "improper-addressing", "from is too long", "header from too long");
        return;
    }
    memcpy(out + n, features, sizeof(features) - 1);
    n += (int)sizeof(features) - 1;
    c->header_sent = 1;
    xf_conn_set_state(c, XF_CONN_PLAIN_STARTTLS);
    xf_conn_client_send(c, out, (size_t)n);
}

/* <starttls/> received: answer <proceed/>, and hand whatever followed it to TLS as
   ciphertext, never to the XML parser (RFC 6120 §5.4.3.3; spec-digest §10 case 7). */
static void on_starttls(xf_conn *c, uint64_t end)
{
    static const char proceed[] = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    if (xf_conn_client_send(c, proceed, sizeof(proceed) - 1) < 0)
        return;
    size_t have = xf_buf_size(&c->plain);
    if (end < have && xf_buf_append(&c->tls_in, xf_buf_head(&c->plain) + end, have - end) < 0) {
        xf_conn_close(c, "out of memory");
        return;
    }
    xf_buf_reset(&c->plain);
    xf_xml_reset(c->xml);
    c->skip_ws_before_tls = 1;
    c->header_sent = 0;
    c->stream_ns = 0;
    int r = xf_conn_tls_setup(c);
    if (r != 0) {
        char e[100], reason[160];
        snprintf(reason, sizeof(reason), "TLS setup: %s", xf_tls_strerror(r, e, sizeof(e)));
        xf_conn_close(c, reason);
        return;
    }
    xf_conn_set_state(c, XF_CONN_TLS_HANDSHAKE);
    xf_conn_tls_pump(c);
}

void xf_conn_s2s_starttls(xf_conn *c)
{
    xf_conn_handshake_timer_start(c);
    on_starttls(c, 0);
}

/* Post-TLS header: decide tenant and service, check ALPN/SNI, connect the backend. */
static void on_tls_header(xf_conn *c, const xf_xml_event *ev)
{
    c->stream_ns = ev->ns;
    note_tenant(c, ev->to);
    if (ev->ns == XF_XML_NS_NONE) {
        xf_conn_stream_error(c, "invalid-namespace", NULL, "stream header without a content namespace");
        return;
    }
    const char *alpn = mbedtls_ssl_get_alpn_protocol(&c->ssl);
    int service;
    if (alpn != NULL && strcmp(alpn, "http/1.1") == 0)
        alpn = NULL;                  /* http/1.1 after STARTTLS: route by namespace */
    if (alpn != NULL) {
        /* RFC 7301: the negotiated protocol is binding; a contradicting namespace is
           refused (spec-digest §9, project choice). */
        service = strcmp(alpn, "xmpp-server") == 0 ? XF_SVC_SERVER : XF_SVC_CLIENT;
    } else if (c->lconf->service != XF_SVC_AUTO) {
        service = c->lconf->service;
    } else {
        service = ev->ns == XF_XML_NS_SERVER ? XF_SVC_SERVER : XF_SVC_CLIENT;
    }
    if ((service == XF_SVC_CLIENT) != (ev->ns == XF_XML_NS_CLIENT)) {
        char r[160];
        snprintf(r, sizeof(r), "stream namespace %s contradicts %s",
                 ev->ns == XF_XML_NS_CLIENT ? "jabber:client" : "jabber:server",
                 alpn ? alpn : "the listener's service");
        xf_conn_stream_error(c, "invalid-namespace", NULL, r);
        return;
    }
    c->service = service;
    const xf_tenant *t = hosted_tenant(c, ev->to);
    if (t == NULL)
        return;
    /* RFC 6066 §3: the application-layer name must agree with the name that chose the
       certificate (the SNI, or the pre-TLS `to` on STARTTLS): the same tenant, or a
       certificate that covers both names. Direct TLS without SNI is left alone: it got
       the default certificate, which a verifying client checks itself. */
    if ((c->sel.sni[0] || c->sel.hint) && c->sel.chosen != t &&
        !xf_identity_covers_dns(&c->sel.chosen->chain, t->domain)) {
        char r[240];
        snprintf(r, sizeof(r), "to '%.80s' does not agree with %s '%.80s'", ev->to,
                 c->sel.sni[0] ? "SNI" : "the pre-TLS to",
                 c->sel.sni[0] ? c->sel.sni : c->sel.hint->domain);
        xf_conn_stream_error(c, "policy-violation", "the stream's to does not match the TLS server name", r);
        return;
    }
    if (!version_ok(ev->version)) {
        xf_conn_stream_error(c, "unsupported-version", NULL, "stream without version 1.0");
        return;
    }
    const xf_backend *be = service == XF_SVC_SERVER ? &t->s2s : &t->c2s;
    if (be->addrlen == 0) {
        char r[160];
        snprintf(r, sizeof(r), "tenant has no %s backend", service == XF_SVC_SERVER ? "s2s" : "c2s");
        xf_conn_stream_error(c, "host-unknown", NULL, r);
        return;
    }
    if (service == XF_SVC_SERVER) {
        /* Issue 7: xmppfront negotiates s2s itself (s2s_in.c); the backend comes later. */
        xf_s2s_in_start(c, ev);
        return;
    }
    xf_conn_set_state(c, XF_CONN_BACKEND_CONNECT);
    /* Routed: policing starts. The client's scanner goes on (max_header_bytes per
       element) until authentication; c->xml now follows the backend's stream (trusted,
       so larger limits). plain holds the client's stream from offset 0: the header is
       complete, everything after it waits for the scanner. */
    c->cxml = c->xml;
    c->cplain_base = 0;
    c->cfwd_end = ev->span.end;
    c->auth_deadline_ms = xf_conn_now_ms(c) + (uint64_t)c->config->limits.auth_timeout_s * 1000;
    c->xml = xf_xml_new(BACKEND_SCAN_LIMIT, BACKEND_SCAN_LIMIT);
    if (c->xml == NULL) {
        xf_conn_close(c, "out of memory");
        return;
    }
    if (xf_conn_backend_connect(c, be, on_backend_connected) < 0)
        return;
    xf_conn_timer_start(c, (uint64_t)c->config->limits.backend_timeout_s * 1000, xf_conn_on_backend_timeout);
}

static void on_backend_connected(uv_connect_t *req, int status)
{
    xf_conn *c = req->data;
    if (status == UV_ECANCELED || c->state != XF_CONN_BACKEND_CONNECT)
        return;
    const xf_backend *be = c->service == XF_SVC_SERVER ? &c->tenant->s2s : &c->tenant->c2s;
    if (status < 0) {
        char reason[160];
        snprintf(reason, sizeof(reason), "backend %s: %s", be->spec, uv_strerror(status));
        xf_metrics_inc(XF_MF_BACKEND_ERRORS, XF_MB_CONNECT_FAILED);
        xf_conn_stream_error(c, "remote-connection-failed", "backend unavailable", reason);
        return;
    }
    xf_conn_set_state(c, XF_CONN_BACKEND_HEADER);
    if (c->tenant->proxy_protocol == XF_PP_V2 && xf_conn_send_proxy_header(c) < 0)
        return;
    /* Replay the client's header and the complete elements that followed it. */
    if (forward_client(c) < 0)
        return;
    int r = uv_read_start((uv_stream_t *)&c->backend, xf_conn_alloc_buf, xf_conn_on_backend_read);
    if (r < 0) {
        xf_conn_stream_error(c, "remote-connection-failed", "backend unavailable", uv_strerror(r));
        return;
    }
}

/* Client bytes that may go to the backend (state BACKEND_HEADER or RELAY). Policed:
   the complete first-level elements (up to cfwd_end) and the whitespace after them —
   nothing of an element goes before its end tag, so the backend never sees a piece of
   one that turns out too large or is refused. Not policed: everything held. Returns 0,
   or -1 once c is closing. */
static int forward_client(xf_conn *c)
{
    const char *p = xf_buf_head(&c->plain);
    size_t have = xf_buf_size(&c->plain), n = have;
    if (c->cxml != NULL) {
        n = c->cfwd_end > c->cplain_base ? (size_t)(c->cfwd_end - c->cplain_base) : 0;
        if (n > have)
            n = have;
        /* Between first-level elements only whitespace keepalives (RFC 6120 §4.6.1). */
        while (n < have && (p[n] == ' ' || p[n] == '\t' || p[n] == '\r' || p[n] == '\n'))
            n++;
    }
    if (n == 0)
        return 0;
    if (xf_conn_backend_send(c, p, n) < 0)
        return -1;
    xf_buf_consume(&c->plain, n);
    c->cplain_base += n;
    xf_conn_relay_activity(c);
    return 0;
}

/* A <starttls/> from the client after routing: TLS is ours, so it must never reach
   the backend (RFC 6120 §5.4.2.2; spec-digest §10 cases 8, 9): <failure/> and close
   (§5.4.2.2 says the receiving entity closes the stream after <failure/>). Before the
   backend's header reached the client there is no stream to put <failure/> in yet:
   a stream error instead. */
static void refuse_starttls(xf_conn *c)
{
    static const char failure[] =
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>";
    if (!c->header_sent) {
        xf_conn_stream_error(c, "policy-violation", "TLS is already in place",
                             "client sent <starttls/> inside TLS before the backend answered");
        return;
    }
    if (xf_conn_client_send(c, failure, sizeof(failure) - 1) < 0)
        return;
    xf_conn_finish(c, "client sent <starttls/> inside TLS: answered <failure/>");
}

/* Drain the client's scanner while policed: every first-level element must be complete
   within max_header_bytes (else the scanner says policy-violation), well-formed and not
   <starttls/>; complete ones become forwardable. Then forward them once the backend is
   connected; while it connects, complete elements pile up to buffer_high_bytes. */
static void police_client(xf_conn *c)
{
    xf_xml_event ev;
    while (c->cxml != NULL && c->state < XF_CONN_CLOSING &&
           xf_xml_next(c->cxml, &ev) != XF_XML_NONE) {
        if (ev.type == XF_XML_ELEMENT) {
            if (strcmp(ev.name, "starttls") == 0 && strcmp(ev.ns_uri, XF_NS_TLS) == 0) {
                refuse_starttls(c);
                return;
            }
            c->cfwd_end = ev.span.end;
        } else if (ev.type == XF_XML_STREAM_END) {
            c->cfwd_end = ev.span.end;
            c->cstream_ended = 1;          /* nothing after </stream:stream> is passed on */
        } else {
            char r[200];
            snprintf(r, sizeof(r), "before authentication: %s",
                     ev.type == XF_XML_ERROR && ev.reason ? ev.reason : "unexpected stream header");
            xf_conn_stream_error(c, ev.type == XF_XML_ERROR ? ev.error : "not-well-formed",
                                 NULL, r);
            return;
        }
    }
    if (c->state >= XF_CONN_CLOSING)
        return;
    if (c->state == XF_CONN_BACKEND_CONNECT) {
        if (c->cfwd_end - c->cplain_base > c->config->limits.buffer_high_bytes)
            xf_conn_pause_client(c);
        return;
    }
    forward_client(c);
}

/* Is ev the backend's answer that authentication is done: SASL <success/> (RFC 6120
   §6.4.6; or XEP-0388 SASL2's, which has no stream restart), or on a server stream
   <db:result type='valid'/> (XEP-0220 §2.1.3)? A SASL <failure/>, type='invalid' or
   'error' are not: the stream stays policed. */
static int auth_done(const xf_conn *c, const xf_xml_event *ev)
{
    return (strcmp(ev->name, "success") == 0 && (strcmp(ev->ns_uri, XF_NS_SASL) == 0 ||
                                                 strcmp(ev->ns_uri, XF_NS_SASL2) == 0)) ||
           (c->service == XF_SVC_SERVER && strcmp(ev->name, "result") == 0 &&
            strcmp(ev->ns_uri, XF_NS_DIALBACK) == 0 && strcmp(ev->type_attr, "valid") == 0);
}

/* Authenticated: both scanners go (after SASL success both sides restart their streams,
   RFC 6120 §6.4.6, and nothing is scanned any more), the auth deadline is lifted, and
   what the client sent meanwhile (e.g. its pipelined new header) goes to the backend. */
static int end_policing(xf_conn *c, const char *how)
{
    xf_debug("conn id=%llu authenticated (%s): policing ends", (unsigned long long)c->id, how);
    xf_xml_free(c->xml);
    c->xml = NULL;
    xf_xml_free(c->cxml);
    c->cxml = NULL;
    xf_conn_auth_timer_done(c);
    xf_conn_mark_authenticated(c);        /* frees its max_unauthenticated_per_ip slot */
    if (forward_client(c) < 0)
        return -1;
    xf_buf_free(&c->plain);
    return 0;
}

/* RELAY before authentication: the backend's stream is watched for the end of
   authentication (auth_done). A <proceed/> would mean the backend started TLS with the
   client inside ours: it is replaced by <failure/> and the stream closed (the client's
   <starttls/> is refused before it gets there, police_client; this is the second
   line). A backend stream the scanner rejects gets <internal-server-error/>: it must
   not end the watch. `data` are the backend bytes at absolute offset `base`, already
   pushed to the scanner. Returns 0, or -1 once c is closing. */
int xf_conn_backend_watch(xf_conn *c, const char *data, size_t len, uint64_t base)
{
    xf_xml_event ev;
    uint64_t done = base;                 /* end of the last complete backend event */
    while (c->xml != NULL && xf_xml_next(c->xml, &ev) != XF_XML_NONE) {
        if (ev.type == XF_XML_ELEMENT && strcmp(ev.name, "proceed") == 0 &&
            strcmp(ev.ns_uri, XF_NS_TLS) == 0) {
            static const char failure[] =
                "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>";
            size_t keep = ev.span.start > base ? (size_t)(ev.span.start - base) : 0;
            if (keep > len)
                keep = len;
            if (xf_conn_client_send(c, data, keep) < 0 ||
                xf_conn_client_send(c, failure, sizeof(failure) - 1) < 0)
                return -1;
            xf_conn_finish(c, "client asked for STARTTLS inside TLS: answered <failure/>");
            return -1;
        }
        if (ev.type == XF_XML_ERROR) {
            size_t keep = (size_t)(done - base) < len ? (size_t)(done - base) : len;
            char r[200];
            snprintf(r, sizeof(r), "backend sent a bad stream before authentication: %s (%s)",
                     ev.error, ev.reason ? ev.reason : "");
            if (xf_conn_client_send(c, data, keep) < 0)
                return -1;
            xf_conn_stream_error(c, "internal-server-error", NULL, r);
            return -1;
        }
        done = ev.span.end;
        if (ev.type == XF_XML_ELEMENT && auth_done(c, &ev) &&
            end_policing(c, ev.name[0] == 's' ? "SASL success" : "dialback valid") < 0)
            return -1;
    }
    return xf_conn_client_send(c, data, len);
}

/* BACKEND_HEADER: the backend's header and first element (its features, or a stream
   error). They go to the client with <starttls/> removed from the features, since TLS
   is ours (RFC 6120 §5.3.1: post-TLS features never offer it); then RELAY. */
void xf_conn_backend_header_input(xf_conn *c, const char *data, size_t len)
{
    if (xf_buf_append(&c->bplain, data, len) < 0 || xf_xml_push(c->xml, data, len) < 0) {
        xf_conn_close(c, "out of memory");
        return;
    }
    xf_xml_event ev;
    do {
        if (xf_xml_next(c->xml, &ev) == XF_XML_NONE)
            return;                                   /* more input needed */
    } while (ev.type == XF_XML_HEADER);
    if (ev.type == XF_XML_ERROR) {
        char r[200];
        snprintf(r, sizeof(r), "backend sent a bad stream: %s (%s)", ev.error,
                 ev.reason ? ev.reason : "");
        xf_conn_stream_error(c, "internal-server-error", NULL, r);
        return;
    }
    const char *buf = xf_buf_head(&c->bplain);
    size_t size = xf_buf_size(&c->bplain);
    size_t first_end = ev.span.end < size ? (size_t)ev.span.end : size;
    size_t cut_start = 0, cut_end = 0;
    if (ev.type == XF_XML_ELEMENT && strcmp(ev.name, "features") == 0 &&
        strcmp(ev.ns_uri, XF_NS_STREAMS) == 0) {
        for (int i = 0; i < ev.n_children; i++) {
            if (strcmp(ev.children[i].name, "starttls") == 0 &&
                strcmp(ev.children[i].ns, XF_NS_TLS) == 0) {
                cut_start = (size_t)ev.children[i].span.start;
                cut_end = (size_t)ev.children[i].span.end;
            }
        }
        if (cut_end == 0 && ev.children_truncated)
            xf_warn("conn id=%llu backend features have more than %d children; a "
                    "<starttls/> among the rest would reach the client",
                    (unsigned long long)c->id, XF_XML_MAX_CHILDREN);
    }
    if (ev.type != XF_XML_ELEMENT) {                  /* the backend ended the stream */
        xf_xml_free(c->xml);
        c->xml = NULL;
    }
    xf_conn_timer_stop(c);
    xf_conn_set_state(c, XF_CONN_RELAY);
    xf_conn_relay_activity(c);
    c->header_sent = 1;
    if (cut_end > cut_start && cut_end <= first_end) {
        if (xf_conn_client_send(c, buf, cut_start) < 0 ||
            xf_conn_client_send(c, buf + cut_end, first_end - cut_end) < 0)
            return;
    } else if (xf_conn_client_send(c, buf, first_end) < 0) {
        return;
    }
    /* Whatever came after the first element is watched like any later backend data. */
    if (xf_conn_backend_watch(c, buf + first_end, size - first_end, first_end) < 0)
        return;
    xf_buf_free(&c->bplain);
}

/* Plaintext from the client after TLS. */
void xf_conn_client_plain_input(xf_conn *c, const char *data, size_t len)
{
    c->bytes_in += len;
    xf_metrics_add(XF_MF_BYTES, XF_M_IN, (int64_t)len);
    if (xf_conn_http_input(c, data, len))     /* an HTTPS request on an auto listener */
        return;
    if (c->s2s != NULL) {
        xf_s2s_in_client_input(c, data, len);
        return;
    }
    if (c->state >= XF_CONN_BACKEND_CONNECT && c->cxml == NULL) {
        if (xf_conn_backend_send(c, data, len) == 0)     /* authenticated: straight on */
            xf_conn_relay_activity(c);
        return;
    }
    if (c->cstream_ended)
        return;                           /* after </stream:stream> (RFC 6120 §4.4) */
    if (xf_buf_append(&c->plain, data, len) < 0 ||
        xf_xml_push(c->cxml ? c->cxml : c->xml, data, len) < 0) {
        xf_conn_close(c, "out of memory");
        return;
    }
    xf_xml_event ev;
    while (c->state == XF_CONN_TLS_HEADER && c->s2s == NULL &&
           xf_xml_next(c->xml, &ev) != XF_XML_NONE) {
        if (ev.type == XF_XML_HEADER) {
            on_tls_header(c, &ev);
        } else if (ev.type == XF_XML_ERROR) {
            xf_conn_stream_error(c, ev.error, NULL, ev.reason ? ev.reason : ev.error);
        } else {
            xf_conn_stream_error(c, "not-well-formed", NULL, "no stream header");
        }
    }
    /* Routed (now or before): what came after the header is policed. */
    if (c->cxml != NULL && c->s2s == NULL && c->state < XF_CONN_CLOSING)
        police_client(c);
}

/* Plaintext before STARTTLS. */
void xf_conn_plain_input(xf_conn *c, const char *data, size_t len)
{
    if (c->s2s != NULL) {             /* a plaintext s2s stream (policy open): s2s_in.c */
        c->bytes_in += len;
        xf_metrics_add(XF_MF_BYTES, XF_M_IN, (int64_t)len);
        xf_s2s_in_client_input(c, data, len);
        return;
    }
    if (xf_buf_size(&c->plain) == 0 && xf_xml_offset(c->xml) == 0 && data[0] != '<') {
        /* Neither XML nor anything we speak here (design.md §5). */
        xf_conn_close(c, data[0] == 0x16 ? "TLS ClientHello on a STARTTLS listener"
                                      : "first bytes are not XML");
        return;
    }
    c->bytes_in += len;
    xf_metrics_add(XF_MF_BYTES, XF_M_IN, (int64_t)len);
    if (xf_buf_size(&c->plain) + len > 4u * c->config->limits.max_header_bytes) {
        xf_conn_stream_error(c, "policy-violation", "too much data before STARTTLS",
                     "pre-TLS data over the limit");
        return;
    }
    if (xf_buf_append(&c->plain, data, len) < 0 || xf_xml_push(c->xml, data, len) < 0) {
        xf_conn_close(c, "out of memory");
        return;
    }
    xf_xml_event ev;
    while (c->state <= XF_CONN_PLAIN_STARTTLS && c->s2s == NULL &&
           xf_xml_next(c->xml, &ev) != XF_XML_NONE) {
        switch (ev.type) {
        case XF_XML_HEADER:
            on_plain_header(c, &ev);
            break;
        case XF_XML_ELEMENT:
            if (strcmp(ev.name, "starttls") == 0 && strcmp(ev.ns_uri, XF_NS_TLS) == 0) {
                on_starttls(c, ev.span.end);
                return;
            }
            /* design.md §5: a stanza before STARTTLS on a TLS-required port. */
            xf_conn_stream_error(c, "policy-violation", "STARTTLS is required",
                         "element before STARTTLS");
            return;
        case XF_XML_STREAM_END: {
            static const char end[] = "</stream:stream>";
            if (c->header_sent && xf_conn_client_send(c, end, sizeof(end) - 1) < 0)
                return;
            xf_conn_finish(c, "client closed the stream before STARTTLS");
            return;
        }
        case XF_XML_ERROR:
            xf_conn_stream_error(c, ev.error, NULL, ev.reason ? ev.reason : ev.error);
            return;
        default:
            return;
        }
    }
}
