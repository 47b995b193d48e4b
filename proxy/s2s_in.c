/*
 * s2s_in: the inbound s2s negotiation owned by xmppfront (see s2s_in.h).
 *
 * Connection states used: TLS_HEADER while negotiating with the remote (the routed
 * header has been answered by us; PLAIN_STARTTLS for a plaintext stream to a tenant
 * with policy open), BACKEND_CONNECT / BACKEND_HEADER while the backend
 * stream is opened and the first pair asserted to it, RELAY once the backend accepted
 * it. Until RELAY the auth deadline (limits.auth_timeout_s) bounds every timer (the
 * remote's scanner is c->cxml, conn.c's rule), and every remote element is at most
 * max_header_bytes; afterwards S2S_STANZA_MAX.
 *
 * This file: the hooks and lifecycle, the remote's stream (header, restart, element
 * dispatch) and the relay-time stanza checks. SASL EXTERNAL and the dialback decisions
 * are in s2s_in_auth.c, the backend stream in s2s_in_backend.c; the struct in
 * s2s_in_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/ssl.h>
#include "proxy/conn_int.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/remote.h"
#include "proxy/s2s.h"
#include "proxy/s2s_in.h"
#include "proxy/s2s_in_int.h"
#include "tenants/policy.h"

#define S2S_STARTTLS 1                   /* on_element: switch to TLS */

/* ------------------------------------------------------------------ helpers */

/* Bounded copy, cut at cap - 1 bytes (log text). */
void xf_s2s_in_copy(char *out, size_t cap, const char *in)
{
    size_t n = in ? strlen(in) : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, in ? in : "", n);
    out[n] = '\0';
}

void xf_s2s_in_lower_copy(char *out, size_t cap, const char *in)
{
    size_t i = 0;
    for (; in && in[i] && i + 1 < cap; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] + 32) : in[i];
    out[i] = '\0';
    if (i > 0 && out[i - 1] == '.')            /* a trailing dot names the same domain */
        out[i - 1] = '\0';
}

int xf_s2s_in_closing(const xf_s2s_in *s) { return s->cancelled || s->c->state >= XF_CONN_CLOSING; }

int xf_s2s_in_say(xf_s2s_in *s, const char *data, size_t len)
{
    if (xf_s2s_in_closing(s))
        return -1;
    return xf_conn_client_send(s->c, data, len);
}

void xf_s2s_in_set_verdict(xf_s2s_in *s, const char *text)
{
    xf_s2s_in_copy(s->verdict, sizeof(s->verdict), text);
}

/* One log line per refusal: the peer, the tenant, the pair and every prooftype's
   verdict (issue 7 "Refusals"). */
void xf_s2s_in_log_refusal(xf_s2s_in *s, const char *remote, const char *local,
                           const char *what, const char *reason)
{
    char qr[300], ql[300], qreason[1300];
    /* The tenant of the pair's local domain (a piggybacked pair may name another). */
    const xf_tenant *t = local && *local ? xf_registry_find(s->c->config->registry, local) : NULL;
    if (t == NULL)
        t = s->c->tenant;
    xf_info("conn id=%llu s2s refused peer=%s tenant=%s remote=%s local=%s method=%s "
            "verdict=%s", (unsigned long long)s->c->id, XF_CONN_PEER(s->c),
            t ? t->domain : "-", xf_log_quote(qr, sizeof(qr), remote),
            xf_log_quote(ql, sizeof(ql), local), what,
            xf_log_quote(qreason, sizeof(qreason), reason));
    xf_s2s_in_set_verdict(s, reason);
    xf_metrics_s2s_auth(XF_M_IN, what, 0);
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
    int m = s->c->tls_active
                ? xf_s2s_write_features(out + n, sizeof(out) - (size_t)n, ext, s->offered_dialback)
                : xf_s2s_write_plain_features(out + n, sizeof(out) - (size_t)n,
                                              s->offered_dialback);
    if (m < 0) {
        xf_conn_stream_error(s->c, "internal-server-error", NULL, "features do not fit");
        return -1;
    }
    n += m;
    s->c->header_sent = 1;
    return xf_s2s_in_say(s, out, (size_t)n);
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
                    (unsigned long long)s->c->id, ev->name, ev->type_attr, XF_CONN_PEER(s->c));
            return 0;
        }
        if (strcmp(ev->name, "result") == 0)
            return xf_s2s_in_db_result(s, ev);
        if (strcmp(ev->name, "verify") == 0)
            return xf_s2s_in_db_verify(s, ev);
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
                return xf_s2s_in_sasl_failure(s, "invalid-mechanism", "SASL mechanism not offered");
            return xf_s2s_in_sasl_external(s, ev->text, ev->text_len);
        }
        if (strcmp(ev->name, "response") == 0 && s->sasl_challenge)
            return xf_s2s_in_sasl_external(s, ev->text, ev->text_len);
        if (strcmp(ev->name, "abort") == 0) {
            s->sasl_challenge = 0;
            static const char ab[] = "<failure xmlns='" XF_NS_SASL "'><aborted/></failure>";
            return xf_s2s_in_say(s, ab, sizeof(ab) - 1);
        }
    }
    if (strcmp(ev->name, "error") == 0 && strcmp(ev->ns_uri, XF_NS_STREAMS) == 0) {
        /* The remote ends the stream with an error (RFC 6120 §4.9.1.1): we close ours. */
        static const char bye[] = "</stream:stream>";
        char r[160];
        snprintf(r, sizeof(r), "remote sent a stream error <%.60s/>",
                 ev->n_children > 0 ? ev->children[0].name : "?");
        if (xf_s2s_in_say(s, bye, sizeof(bye) - 1) == 0)
            xf_conn_finish(s->c, r);
        return -1;
    }
    if (strcmp(ev->name, "starttls") == 0 && strcmp(ev->ns_uri, XF_NS_TLS) == 0) {
        if (s->c->tls_active) {
            xf_conn_stream_error(s->c, "policy-violation", "TLS is already in place",
                                 "s2s: <starttls/> inside TLS");
            return -1;
        }
        if (s->np > 0) {
            /* RFC 6120 §5.3.1: STARTTLS comes first; a stream with dialback under way
               cannot switch (our answers would cross the restart). */
            xf_conn_stream_error(s->c, "policy-violation", "<starttls/> after dialback began",
                                 "s2s: <starttls/> after a dialback request on plaintext");
            return -1;
        }
        return S2S_STARTTLS;
    }
    return on_stanza(s, ev);
}

/* The restarted stream's header (after SASL <success/>, RFC 6120 §6.4.6). */
static int on_restart_header(xf_s2s_in *s, const xf_xml_event *ev)
{
    s->await_header = 0;
    char to[S2S_DOM_MAX];
    xf_s2s_in_lower_copy(to, sizeof(to), ev->to);
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
        if (xf_s2s_in_say(s, xf_buf_head(&s->bheld), xf_buf_size(&s->bheld)) < 0)
            return -1;
        xf_buf_free(&s->bheld);
    }
    return 0;
}

/* A plaintext stream (policy open) asked for TLS: nothing was authenticated, so the
   negotiation starts again after the handshake, as on any STARTTLS stream. c->plain
   holds what followed </starttls> (the ClientHello, perhaps). */
static void to_tls(xf_s2s_in *s)
{
    xf_conn *c = s->c;
    xf_xml *x = c->cxml;
    c->cxml = NULL;                      /* policing ends: the pre-TLS scanner again */
    c->xml = x;
    c->s2s = NULL;
    c->header_sent = 0;
    xf_s2s_in_free(s);
    xf_conn_s2s_starttls(c);
}

/* Drain the remote's scanner. */
static void process_remote(xf_s2s_in *s)
{
    xf_conn *c = s->c;
    xf_xml *x = c->cxml ? c->cxml : s->rxml;
    xf_xml_event ev;
    while (!xf_s2s_in_closing(s) && xf_xml_next(x, &ev) != XF_XML_NONE) {
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
            if (xf_s2s_in_say(s, bye, sizeof(bye) - 1) < 0)
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
        if (r == S2S_STARTTLS) {
            size_t used = (size_t)(end - s->rbase);
            if (used > xf_buf_size(&c->plain))
                used = xf_buf_size(&c->plain);
            xf_buf_consume(&c->plain, used);
            to_tls(s);                           /* frees s */
            return;
        }
        if (r < 0 || xf_s2s_in_closing(s))
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
    xf_s2s_in_set_verdict(s, "not authenticated");
    xf_s2s_in_lower_copy(s->to, sizeof(s->to), ev->to);
    if (ev->from && strlen(ev->from) < S2S_DOM_MAX)
        xf_s2s_in_lower_copy(s->from, sizeof(s->from), ev->from);
    s->policy = c->tenant->federation;
    /* Policing as for every routed stream: the remote's scanner keeps max_header_bytes
       per element, and the auth deadline bounds every timer until RELAY (conn.c). */
    c->cxml = c->xml;
    c->xml = NULL;
    c->cplain_base = 0;
    s->rbase = 0;
    c->auth_deadline_ms = xf_conn_now_ms(c) + (uint64_t)c->config->limits.auth_timeout_s * 1000;
    xf_conn_timer_stop(c);           /* the handshake timer gives way to the deadline */

    xf_proof pf;
    memset(&pf, 0, sizeof(pf));
    if (s->from[0])
        xf_s2s_in_pkix_proof(s, s->from, &pf);
    /* Whatever followed the header in the same read (already in the scanner). */
    size_t used = (size_t)ev->span.end;
    if (used > xf_buf_size(&c->plain))
        used = xf_buf_size(&c->plain);
    xf_buf_consume(&c->plain, used);
    s->rbase = used;
    /* PKIX does not prove `from`: DANE and POSH may (s2s_in_proof.c); the features wait
       for them, within their bound and the auth deadline. */
    const xf_proof_order *po = &c->tenant->proofs;
    if (s->from[0] && c->tls_active && mbedtls_ssl_get_peer_cert(&c->ssl) != NULL &&
        (pf.result != XF_PROOF_VALID || !xf_proof_accepted(po, XF_PROOF_PKIX)) &&
        (xf_proof_accepted(po, XF_PROOF_DANE) || xf_proof_accepted(po, XF_PROOF_POSH)) &&
        xf_s2s_in_proof_begin(s, pf.reason))
        return;
    xf_s2s_in_proceed(s);
}

void xf_s2s_in_proceed(xf_s2s_in *s)
{
    xf_conn *c = s->c;
    if (xf_s2s_in_closing(s))
        return;
    int has_cert = c->tls_active && mbedtls_ssl_get_peer_cert(&c->ssl) != NULL, proves = 0;
    xf_peer_facts f;
    memset(&f, 0, sizeof(f));
    if (s->from[0]) {
        xf_s2s_in_cert_facts(s, s->from, &f);
        proves = xf_s2s_in_cert_proves(&f, &c->tenant->proofs);
    }
    const xf_proof *pf = &f.proof[XF_PROOF_PKIX];
    xf_s2s_in_offer(s->policy, c->tls_active, has_cert, proves, &s->offered_external,
                    &s->offered_dialback);
    char q[400];
    xf_debug("conn id=%llu s2s stream from=%s tls=%s cert=%s pkix=%s dane=%s posh=%s "
             "external=%d dialback=%d", (unsigned long long)c->id, s->from[0] ? s->from : "-",
             c->tls_active ? "yes" : "no", has_cert ? "yes" : "no",
             xf_log_quote(q, sizeof(q), pf->reason),
             xf_proof_result_name(f.proof[XF_PROOF_DANE].result),
             xf_proof_result_name(f.proof[XF_PROOF_POSH].result),
             s->offered_external, s->offered_dialback);
    if (!s->offered_external && !s->offered_dialback) {
        char r[600];
        snprintf(r, sizeof(r), "policy %s; no method can succeed: %s",
                 xf_fed_policy_name(s->policy), has_cert ? pf->reason : "no client certificate");
        xf_s2s_in_log_refusal(s, s->from, s->to, "none", r);
    }
    if (send_header_and_features(s, s->offered_external) < 0)
        return;
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
    if (s->pr.state == S2S_PROOF_PENDING) {
        /* Our features are not out yet: the peer should wait for them (RFC 6120 §4.3.2).
           Keep what it sends for later, bounded. */
        if (xf_buf_size(&c->plain) > c->config->limits.max_header_bytes)
            xf_conn_stream_error(c, "policy-violation", NULL,
                                 "s2s: too much data before our stream features");
        return;
    }
    process_remote(s);
}

void xf_s2s_in_backend_input(xf_conn *c, const char *data, size_t len)
{
    xf_s2s_in *s = c->s2s;
    if (s->bs == NULL || xf_s2s_in_closing(s))
        return;
    xf_bs2s_input(s->bs, data, len);
}

void xf_s2s_in_cancel(xf_s2s_in *s)
{
    if (s == NULL || s->cancelled)
        return;
    s->cancelled = 1;
    xf_s2s_in_proof_cancel(s);
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
