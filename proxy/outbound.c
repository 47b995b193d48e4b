/*
 * outbound: one backend's outgoing s2s stream (contract: proxy/outbound.h).
 *
 * States (one transition function, set_state):
 *   HEADER     accepted, awaiting the backend's stream header
 *   NEGOTIATE  our header and features sent: <db:result/> and <db:verify/> expected
 *   OPENING    xf_remote_open in progress for the stream's (T, R)
 *   RELAY      the remote stream is authenticated: stanzas both ways
 *   CLOSING    our </stream:stream> (or error) sent, FIN queued; awaiting the
 *              backend's close, bounded by OB_LINGER_MS
 *   CLOSED     handles closing; freed after the last close callback
 * A failed open leaves the stream in NEGOTIATE: the backend got type='error' and closes
 * the stream itself (more db:verify on it stay possible).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "proxy/buf.h"
#include "proxy/conn.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/outbound.h"
#include "proxy/remote.h"
#include "proxy/s2s.h"
#include "proxy/stats.h"
#include "proxy/xmlstream.h"

/* linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h; not included because
   they clash with the libc headers. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

#define OB_LINGER_MS 5000
#define OB_READ_CHUNK 16384
#define OB_MAX_ELEMENT (1u << 20)     /* one stanza from the backend */

enum ob_state { OB_HEADER, OB_NEGOTIATE, OB_OPENING, OB_RELAY, OB_CLOSING, OB_CLOSED };
static const char *ob_state_names[] = {"header", "negotiate", "opening", "relay", "closing",
                                       "closed"};

typedef struct xf_outbound {
    struct xf_outbound *next, *prev;
    uint64_t id;
    xf_worker *w;
    const xf_listener_conf *lconf;
    xf_config *cfg;
    enum ob_state state;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t sreq;
    int handles;
    int eof, shut, paused;
    size_t queued;

    xf_xml *xml;
    xf_buf in;                         /* backend plaintext since in_base */
    uint64_t in_base, last_end;
    int version1;
    char sid[40];                      /* id of our response header */
    char T[256], R[256];
    const xf_tenant *tenant;
    xf_remote *remote;
    int remote_paused;                 /* we paused the remote's reads (our backlog) */
    xf_pairs *pairs;
    unsigned verifies;
    char auth[16];
    char raddr[80];
    char tls[16];
    char verdict[600];
    char peer[64], orig[64];
    uint64_t bytes_in, bytes_out, start_ms;
    int mslot;                         /* metrics.h: place in xmppfront_connections */
    char reason[300];
} xf_outbound;

static uint64_t next_ob_id;

static void ob_close(xf_outbound *o, const char *reason);
static void ob_finish(xf_outbound *o, const char *reason);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* ---------------------------------------------------------------- pure */

int xf_outbound_peer_allowed(const struct sockaddr *sa, int allow_public)
{
    if (allow_public)
        return 1;
    const unsigned char *a;
    unsigned char v4[4];
    if (sa->sa_family == AF_INET) {
        memcpy(v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        a = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        static const unsigned char loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        if (memcmp(a, mapped, 12) == 0) {
            memcpy(v4, a + 12, 4);
        } else {
            return memcmp(a, loop6, 16) == 0 ||          /* ::1 */
                   (a[0] & 0xfe) == 0xfc ||              /* fc00::/7 (RFC 4193) */
                   (a[0] == 0xfe && (a[1] & 0xc0) == 0x80); /* fe80::/10 */
        }
    } else {
        return 0;
    }
    return v4[0] == 127 || v4[0] == 10 ||                 /* loopback, RFC 1918 */
           (v4[0] == 172 && (v4[1] & 0xf0) == 16) ||
           (v4[0] == 192 && v4[1] == 168) ||
           (v4[0] == 100 && (v4[1] & 0xc0) == 64) ||       /* RFC 6598 (pods) */
           (v4[0] == 169 && v4[1] == 254);                 /* link-local */
}

int xf_outbound_listener_is_local(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr)[0] == 127;
    if (sa->sa_family != AF_INET6)
        return 0;
    const unsigned char *a = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return memcmp(a, loop6, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
}

/* ---------------------------------------------------------------- lifetime */

static void set_state(xf_outbound *o, enum ob_state s)
{
    xf_debug("outbound id=%llu %s -> %s", (unsigned long long)o->id, ob_state_names[o->state],
             ob_state_names[s]);
    o->state = s;
    xf_metrics_conn_move(&o->mslot, XF_MSVC_OUTBOUND, s == OB_RELAY ? XF_MPH_RELAYING
                         : s == OB_CLOSING ? XF_MPH_CLOSING : s == OB_CLOSED ? XF_MPH_NONE
                         : XF_MPH_NEGOTIATING);
}

static void on_closed(uv_handle_t *h)
{
    xf_outbound *o = h->data;
    if (--o->handles > 0)
        return;
    xf_xml_free(o->xml);
    xf_buf_free(&o->in);
    xf_pairs_free(o->pairs);
    xf_worker *w = o->w;
    xf_config_unref(o->cfg);
    free(o);
    xf_conn_count_adjust(-1);
    xf_worker_conn_gone(w);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%d", host, ntohs(a->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, cap, "[%s]:%d", host, ntohs(a->sin6_port));
    } else {
        snprintf(out, cap, "-");
    }
}

/* Close now: one log line naming the authentication, the remote address, TLS and the
   verdict; the remote stream closed too; freed after the last close callback. */
static void ob_close(xf_outbound *o, const char *reason)
{
    if (o->state == OB_CLOSED)
        return;
    if (o->reason[0] == '\0' || (reason != o->reason && o->state != OB_CLOSING))
        snprintf(o->reason, sizeof(o->reason), "%s", reason);
    set_state(o, OB_CLOSED);
    if (o->remote) {
        xf_remote_close(o->remote, "backend stream closed");
        o->remote = NULL;
    }
    char qt[300], qr[300], qv[700], qreason[420];
    xf_info("outbound id=%llu close tenant=%s remote=%s listener=%s peer=%s original_dst=%s "
            "auth=%s remote_addr=%s tls=%s verifies=%u in=%llu out=%llu duration_ms=%llu "
            "verdict=%s reason=%s",
            (unsigned long long)o->id, xf_log_quote(qt, sizeof(qt), o->T),
            xf_log_quote(qr, sizeof(qr), o->R), o->lconf->name, o->peer,
            o->orig[0] ? o->orig : "-", o->auth[0] ? o->auth : "none",
            o->raddr[0] ? o->raddr : "-", o->tls[0] ? o->tls : "none", o->verifies,
            (unsigned long long)o->bytes_in, (unsigned long long)o->bytes_out,
            (unsigned long long)(uv_now(&o->w->loop) - o->start_ms),
            xf_log_quote(qv, sizeof(qv), o->verdict), xf_log_quote(qreason, sizeof(qreason), o->reason));
    if (o->prev)
        o->prev->next = o->next;
    else if (o->w->obs == o)
        o->w->obs = o->next;
    if (o->next)
        o->next->prev = o->prev;
    o->next = o->prev = NULL;
    uv_timer_stop(&o->timer);
    uv_close((uv_handle_t *)&o->timer, on_closed);
    uv_close((uv_handle_t *)&o->tcp, on_closed);
}

static void on_linger(uv_timer_t *t)
{
    xf_outbound *o = t->data;
    ob_close(o, o->reason[0] ? o->reason : "linger timeout");
}

static void on_header_timeout(uv_timer_t *t);
static void on_idle_timeout(uv_timer_t *t);

/* ---------------------------------------------------------------- writes */

typedef struct ob_wreq {
    uv_write_t req;
    xf_outbound *o;
    size_t len;
    char data[];
} ob_wreq;

static void on_write_done(uv_write_t *req, int status)
{
    ob_wreq *wr = (ob_wreq *)req;
    xf_outbound *o = wr->o;
    o->queued -= wr->len;
    free(wr);
    if (o->state == OB_CLOSED || status == UV_ECANCELED)
        return;
    if (status < 0) {
        char m[120];
        snprintf(m, sizeof(m), "write to the backend failed: %s", uv_strerror(status));
        ob_close(o, m);
        return;
    }
    if (o->remote_paused && o->remote && o->queued <= o->cfg->limits.buffer_low_bytes) {
        o->remote_paused = 0;
        xf_remote_resume(o->remote);
    }
}

static int ob_send(xf_outbound *o, const char *data, size_t len)
{
    if (o->state == OB_CLOSED || o->shut)
        return -1;
    if (len == 0)
        return 0;
    ob_wreq *wr = malloc(sizeof(*wr) + len);
    if (wr == NULL) {
        ob_close(o, "out of memory writing to the backend");
        return -1;
    }
    wr->o = o;
    wr->len = len;
    memcpy(wr->data, data, len);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
    int e = uv_write(&wr->req, (uv_stream_t *)&o->tcp, &b, 1, on_write_done);
    if (e < 0) {
        free(wr);
        ob_close(o, uv_strerror(e));
        return -1;
    }
    o->queued += len;
    o->bytes_out += len;
    return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    xf_outbound *o = req->data;
    if (o->state == OB_CLOSING && o->eof)
        ob_close(o, o->reason);
}

/* Close gracefully: what is queued, then </stream:stream> (unless a stream error
   already ended it), FIN; wait for the backend's end, bounded by OB_LINGER_MS. */
static void ob_finish_ex(xf_outbound *o, const char *reason, int send_end)
{
    if (o->state >= OB_CLOSING)
        return;
    snprintf(o->reason, sizeof(o->reason), "%s", reason);
    if (o->remote) {
        xf_remote_close(o->remote, reason);
        o->remote = NULL;
    }
    if (send_end)
        ob_send(o, "</stream:stream>", 16);
    if (o->state == OB_CLOSED)
        return;
    set_state(o, OB_CLOSING);
    if (o->paused) {
        o->paused = 0;
        if (!o->eof)
            uv_read_start((uv_stream_t *)&o->tcp, alloc_buf, on_read);
    }
    o->shut = 1;
    o->sreq.data = o;
    if (uv_shutdown(&o->sreq, (uv_stream_t *)&o->tcp, on_shutdown) < 0) {
        ob_close(o, o->reason);
        return;
    }
    uv_timer_start(&o->timer, on_linger, OB_LINGER_MS, 0);
}

static void ob_finish(xf_outbound *o, const char *reason) { ob_finish_ex(o, reason, 1); }

/* RFC 6120 §4.9.1: a stream error (with our header first if the stream has none yet),
   </stream:stream>, close. */
static void ob_stream_error(xf_outbound *o, const char *cond, const char *why)
{
    char out[1400];
    int n = 0;
    if (o->state == OB_HEADER) {
        n = xf_xml_write_header(out, sizeof(out), XF_XML_NS_SERVER, o->R[0] ? o->R : NULL,
                                o->T[0] ? o->T : NULL, o->sid, "1.0");
        if (n < 0)
            n = 0;
    }
    int m = xf_xml_write_error(out + n, sizeof(out) - (size_t)n, cond, NULL);
    if (m > 0)
        n += m;
    char r[300];
    snprintf(r, sizeof(r), "stream error %s: %s", cond, why);
    xf_metrics_refusal(cond);
    if (ob_send(o, out, (size_t)n) < 0)
        return;
    ob_finish_ex(o, r, 0);
}

/* ---------------------------------------------------------------- the remote stream */

static int sink_data(void *ud, const char *data, size_t len)
{
    xf_outbound *o = ud;
    if (ob_send(o, data, len) < 0)
        return 0;
    if (o->queued > o->cfg->limits.buffer_high_bytes) {
        o->remote_paused = 1;
        return -1;
    }
    return 0;
}

static void sink_close(void *ud, const char *reason)
{
    xf_outbound *o = ud;
    o->remote = NULL;
    char m[300];
    snprintf(m, sizeof(m), "remote: %s", reason);
    ob_finish(o, m);
}

static void sink_drain(void *ud)
{
    xf_outbound *o = ud;
    if (o->paused && o->state == OB_RELAY && !o->eof) {
        o->paused = 0;
        uv_read_start((uv_stream_t *)&o->tcp, alloc_buf, on_read);
    }
}

static void answer_result(xf_outbound *o, enum xf_db_type type, enum xf_db_error err)
{
    char out[800];
    int n = xf_s2s_write_db_answer(out, sizeof(out), "db", 0, o->R, o->T, NULL, type, err);
    if (n > 0)
        ob_send(o, out, (size_t)n);
}

static void on_remote_open(void *ud, xf_remote *r, const xf_remote_result *res)
{
    xf_outbound *o = ud;
    snprintf(o->raddr, sizeof(o->raddr), "%s", res->peer ? res->peer : "-");
    snprintf(o->verdict, sizeof(o->verdict), "%s", res->reason ? res->reason : "");
    snprintf(o->tls, sizeof(o->tls), "%s", xf_remote_tls(r));
    char qv[700], qt[300], qr[300];
    if (!res->ok) {
        o->remote = NULL;
        set_state(o, OB_NEGOTIATE);
        xf_warn("outbound id=%llu tenant=%s remote=%s refused: dialback error %s; %s",
                (unsigned long long)o->id, xf_log_quote(qt, sizeof(qt), o->T),
                xf_log_quote(qr, sizeof(qr), o->R), xf_db_error_name(res->error),
                xf_log_quote(qv, sizeof(qv), res->reason));
        /* XEP-0220 §2.4: the backend learns at once and bounces its stanzas. */
        answer_result(o, XF_DB_TYPE_ERROR, res->error);
        snprintf(o->reason, sizeof(o->reason), "remote refused: %s", xf_db_error_name(res->error));
        return;
    }
    snprintf(o->auth, sizeof(o->auth), "%s", res->auth ? res->auth : "none");
    xf_remote_sink sink = {sink_data, sink_close, sink_drain, o};
    xf_remote_set_sink(r, &sink);
    xf_pairs_set_valid(o->pairs, o->R, o->T);
    set_state(o, OB_RELAY);
    xf_info("outbound id=%llu tenant=%s remote=%s authenticated auth=%s remote_addr=%s tls=%s "
            "verdict=%s", (unsigned long long)o->id, xf_log_quote(qt, sizeof(qt), o->T),
            xf_log_quote(qr, sizeof(qr), o->R), o->auth, o->raddr, o->tls,
            xf_log_quote(qv, sizeof(qv), res->reason));
    answer_result(o, XF_DB_TYPE_VALID, XF_DB_ERR_NONE);
    uv_timer_stop(&o->timer);
    if (o->cfg->limits.idle_timeout_s)
        uv_timer_start(&o->timer, on_idle_timeout, (uint64_t)o->cfg->limits.idle_timeout_s * 1000, 0);
}

/* ---------------------------------------------------------------- the backend stream */

static void arm_auth_timer(xf_outbound *o);

static void on_header(xf_outbound *o, const xf_xml_event *ev)
{
    snprintf(o->T, sizeof(o->T), "%s", ev->from ? ev->from : "");
    snprintf(o->R, sizeof(o->R), "%s", ev->to ? ev->to : "");
    for (char *p = o->T; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p += 32;
    for (char *p = o->R; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p += 32;
    o->version1 = ev->version && strcmp(ev->version, "1.0") >= 0;
    if (ev->ns != XF_XML_NS_SERVER) {
        ob_stream_error(o, "invalid-namespace", "the backend's stream is not jabber:server");
        return;
    }
    if (o->R[0] == '\0') {
        ob_stream_error(o, "host-unknown", "the backend's stream has no 'to'");
        return;
    }
    o->tenant = xf_registry_find(o->cfg->registry, o->T);
    if (o->tenant == NULL) {
        char m[340];
        snprintf(m, sizeof(m), "'from' %.256s is not a hosted domain", o->T[0] ? o->T : "(none)");
        ob_stream_error(o, "invalid-from", m);
        return;
    }
    char h[1200], r[300], t[300];
    if (xf_xml_escape(r, sizeof(r), o->R) < 0 || xf_xml_escape(t, sizeof(t), o->T) < 0) {
        ob_stream_error(o, "improper-addressing", "addresses too long");
        return;
    }
    int n = snprintf(h, sizeof(h),
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                     "xmlns:stream='" XF_NS_STREAMS "' xmlns:db='" XF_NS_DIALBACK "' "
                     "from='%s' to='%s' id='%s'%s>", r, t, o->sid,
                     o->version1 ? " version='1.0'" : "");
    if (n < 0 || (size_t)n >= sizeof(h)) {
        ob_stream_error(o, "improper-addressing", "addresses too long");
        return;
    }
    if (o->version1) {
        int m = xf_s2s_write_features(h + n, sizeof(h) - (size_t)n, 0, 1);
        if (m > 0)
            n += m;
    }
    set_state(o, OB_NEGOTIATE);
    if (ob_send(o, h, (size_t)n) < 0)
        return;
    arm_auth_timer(o);
}

static int is_hosted(void *ud, const char *domain)
{
    return xf_registry_find(((xf_outbound *)ud)->cfg->registry, domain) != NULL;
}

/* <db:verify from=T to=R id=ID>B</db:verify>: the backend, as receiving server of a
   stream xmppfront's inbound side opened asserting R, asks R's authoritative server
   (this listener) about B. B = key(T, R, ID) over xmppfront's secret (design.md §2). */
static void on_db_verify(xf_outbound *o, const xf_xml_event *ev)
{
    enum xf_db_error err = XF_DB_ERR_NONE;
    const char *from = ev->attr_from, *to = ev->attr_to, *id = ev->attr_id;
    char out[1000];
    o->verifies++;
    int t = xf_s2s_answer_verify(o->cfg->federation.dialback_secret, NULL, NULL, from, to, id,
                                 ev->text, ev->text_len, &err);
    if (t < 0) {
        ob_stream_error(o, "improper-addressing", "db:verify without from, to or id");
        return;
    }
    if (from == NULL || !is_hosted(o, from)) {
        /* only a hosted tenant's backend may ask: it is the receiving server */
        t = XF_DB_TYPE_INVALID;
    }
    char qf[300], qt[300];
    xf_info("outbound id=%llu db:verify from=%s to=%s answered %s (local, dialback bridge)",
            (unsigned long long)o->id, xf_log_quote(qf, sizeof(qf), from),
            xf_log_quote(qt, sizeof(qt), to), t == XF_DB_TYPE_VALID ? "valid" : "invalid");
    int n = xf_s2s_write_db_answer(out, sizeof(out), "db", 1, to, from, id, (enum xf_db_type)t, err);
    if (n > 0)
        ob_send(o, out, (size_t)n);
    arm_auth_timer(o);
}

static void on_db_result(xf_outbound *o, const xf_xml_event *ev)
{
    const char *from = ev->attr_from, *to = ev->attr_to;
    if (from == NULL || to == NULL || strcasecmp(from, o->T) != 0 || strcasecmp(to, o->R) != 0) {
        /* One remote stream per (T, R) pair for now (a second pair on this stream would
           be piggybacking, out of scope): refused, the stream stays. */
        char out[800];
        int n = xf_s2s_write_db_answer(out, sizeof(out), "db", 0, to ? to : o->R,
                                       from ? from : o->T, NULL, XF_DB_TYPE_ERROR,
                                       XF_DB_ERR_NOT_ACCEPTABLE);
        if (n > 0)
            ob_send(o, out, (size_t)n);
        return;
    }
    if (o->state != OB_NEGOTIATE || o->remote != NULL)
        return;                               /* already opening or open */
    /* A domain xmppfront hosts itself goes to that tenant's s2s backend directly, with
       no DNS and no TLS (remote.c, proxy/backend_s2s.h). */
    o->remote = xf_remote_open(o->w, o->cfg, o->tenant, o->R, on_remote_open, o);
    if (o->remote == NULL) {
        answer_result(o, XF_DB_TYPE_ERROR, XF_DB_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    set_state(o, OB_OPENING);
    uv_timer_stop(&o->timer);                 /* the remote's own deadline bounds this */
}

/* A first-level element of the backend's stream after the header. */
static void on_element(xf_outbound *o, const xf_xml_event *ev, const char *elem, size_t len)
{
    if (strcmp(ev->ns_uri, XF_NS_DIALBACK) == 0) {
        if (strcmp(ev->name, "verify") == 0)
            on_db_verify(o, ev);
        else if (strcmp(ev->name, "result") == 0)
            on_db_result(o, ev);
        return;
    }
    if (strcmp(ev->ns_uri, XF_NS_STREAMS) == 0) {
        if (strcmp(ev->name, "error") == 0)
            ob_finish_ex(o, "the backend sent a stream error", 1);
        return;
    }
    if (o->state != OB_RELAY) {
        ob_stream_error(o, "not-authorized", "stanza before the stream was authenticated");
        return;
    }
    const char *bad = xf_pairs_check_stanza(o->pairs, ev->attr_from, ev->attr_to);
    if (bad != NULL) {
        ob_stream_error(o, bad, "stanza addressing does not match the stream's domains");
        return;
    }
    if (xf_remote_send(o->remote, elem, len) < 0) {
        ob_finish(o, "the remote stream is closing");
        return;
    }
    if (xf_remote_queued(o->remote) > o->cfg->limits.buffer_high_bytes && !o->paused) {
        o->paused = 1;
        uv_read_stop((uv_stream_t *)&o->tcp);
    }
    if (o->cfg->limits.idle_timeout_s)
        uv_timer_start(&o->timer, on_idle_timeout, (uint64_t)o->cfg->limits.idle_timeout_s * 1000, 0);
}

static void input(xf_outbound *o, const char *data, size_t len)
{
    if (o->state >= OB_CLOSING)
        return;                               /* discarded while closing */
    if (xf_buf_append(&o->in, data, len) < 0 || xf_xml_push(o->xml, data, len) < 0) {
        ob_close(o, "out of memory");
        return;
    }
    xf_xml_event ev;
    while (o->state < OB_CLOSING && xf_xml_next(o->xml, &ev) != XF_XML_NONE) {
        switch (ev.type) {
        case XF_XML_HEADER:
            o->last_end = ev.span.end;
            if (o->state == OB_HEADER)
                on_header(o, &ev);
            break;
        case XF_XML_ELEMENT:
            o->last_end = ev.span.end;
            on_element(o, &ev, xf_buf_head(&o->in) + (ev.span.start - o->in_base),
                       (size_t)(ev.span.end - ev.span.start));
            break;
        case XF_XML_STREAM_END:
            ob_finish(o, "the backend closed the stream");
            return;
        case XF_XML_ERROR:
            ob_stream_error(o, ev.error, ev.reason ? ev.reason : "bad XML from the backend");
            return;
        default:
            break;
        }
    }
    if (o->state >= OB_CLOSING)
        return;
    xf_buf_consume(&o->in, (size_t)(o->last_end - o->in_base));
    o->in_base = o->last_end;
}

static void alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(OB_READ_CHUNK);
    buf->len = buf->base ? OB_READ_CHUNK : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    xf_outbound *o = s->data;
    if (n > 0 && o->state != OB_CLOSED) {
        o->bytes_in += (uint64_t)n;
        input(o, buf->base, (size_t)n);
    }
    free(buf->base);
    if (n < 0 && o->state != OB_CLOSED) {
        o->eof = 1;
        uv_read_stop(s);
        if (o->state == OB_CLOSING) {
            if (o->queued == 0)
                ob_close(o, o->reason);
            return;
        }
        ob_close(o, n == UV_EOF ? "the backend closed the connection" : uv_strerror((int)n));
    }
}

static void on_header_timeout(uv_timer_t *t)
{
    xf_outbound *o = t->data;
    ob_stream_error(o, "connection-timeout", o->state == OB_HEADER
                    ? "no stream header within handshake_timeout_s"
                    : "no dialback request within auth_timeout_s");
}

static void on_idle_timeout(uv_timer_t *t)
{
    xf_outbound *o = t->data;
    ob_finish(o, "idle timeout");
}

static void arm_auth_timer(xf_outbound *o)
{
    unsigned s = o->cfg->limits.auth_timeout_s ? o->cfg->limits.auth_timeout_s : 60;
    if (o->state == OB_NEGOTIATE)
        uv_timer_start(&o->timer, on_header_timeout, (uint64_t)s * 1000, 0);
}

/* ---------------------------------------------------------------- accept, drain */

static void original_dst(xf_outbound *o)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&o->tcp, &fd) < 0)
        return;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    int r = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len);
    if (r != 0) {
        len = sizeof(ss);
        r = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len);
    }
    if (r == 0)
        format_addr(&ss, o->orig, sizeof(o->orig));
    else
        snprintf(o->orig, sizeof(o->orig), "unknown");
}

void xf_outbound_accept(xf_listener *l)
{
    xf_worker *w = l->worker;
    xf_outbound *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        xf_listener_discard(l, "outbound session");
        return;
    }
    o->w = w;
    o->lconf = l->conf;
    o->cfg = xf_config_ref(w->config);
    o->id = __atomic_add_fetch(&next_ob_id, 1, __ATOMIC_RELAXED);
    o->start_ms = uv_now(&w->loop);
    snprintf(o->peer, sizeof(o->peer), "-");
    uv_tcp_init(&w->loop, &o->tcp);
    uv_timer_init(&w->loop, &o->timer);
    o->tcp.data = o->timer.data = o;
    o->handles = 2;
    xf_conn_count_adjust(+1);
    o->next = w->obs;
    if (w->obs)
        w->obs->prev = o;
    w->obs = o;
    if (++w->n_conns > w->peak_conns)
        w->peak_conns = w->n_conns;
    int r = uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&o->tcp);
    if (r < 0) {
        ob_close(o, uv_strerror(r));
        return;
    }
    xf_metrics_inc(XF_MF_ACCEPTED, XF_MSVC_OUTBOUND);
    xf_metrics_conn_move(&o->mslot, XF_MSVC_OUTBOUND, XF_MPH_NEGOTIATING);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    uv_tcp_getpeername(&o->tcp, (struct sockaddr *)&ss, &len);
    format_addr(&ss, o->peer, sizeof(o->peer));
    if (o->lconf->transparent)
        original_dst(o);
    /* A listener on a loopback address is reachable from this host only, whatever the
       source address of a redirected connection says; elsewhere only private peers
       unless allow_public (an open relay must be impossible by default). */
    if (!xf_outbound_listener_is_local((const struct sockaddr *)&o->lconf->addr) &&
        !xf_outbound_peer_allowed((struct sockaddr *)&ss, o->lconf->allow_public)) {
        xf_warn("outbound listener %s: refused %s: not a loopback or private address "
                "(allow_public is off)", o->lconf->name, o->peer);
        ob_close(o, "refused: public peer on an outbound listener");
        return;
    }
    unsigned maxc = o->cfg->limits.max_connections;
    if (maxc && xf_conn_count() > maxc) {
        xf_warn("outbound listener %s: refused %s: max_connections (%u) reached",
                o->lconf->name, o->peer, maxc);
        ob_close(o, "refused: max_connections reached");
        return;
    }
    if (o->lconf->transparent)
        xf_info("outbound id=%llu accept peer=%s original_dst=%s", (unsigned long long)o->id,
                o->peer, o->orig);
    uv_tcp_nodelay(&o->tcp, 1);
    o->xml = xf_xml_new(o->cfg->limits.max_header_bytes, OB_MAX_ELEMENT);
    o->pairs = xf_pairs_new(4);
    if (o->xml == NULL || o->pairs == NULL || xf_xml_new_id(o->sid, sizeof(o->sid)) < 0) {
        ob_close(o, "out of memory at accept");
        return;
    }
    uv_timer_start(&o->timer, on_header_timeout,
                   (uint64_t)o->cfg->limits.handshake_timeout_s * 1000, 0);
    r = uv_read_start((uv_stream_t *)&o->tcp, alloc_buf, on_read);
    if (r < 0)
        ob_close(o, uv_strerror(r));
}

void xf_outbound_drain(xf_worker *w)
{
    xf_outbound *next;
    for (xf_outbound *o = w->obs; o != NULL; o = next) {
        next = o->next;
        if (o->state < OB_RELAY)
            ob_stream_error(o, "system-shutdown", "shutdown before the stream was relaying");
    }
}

void xf_outbound_close_all(xf_worker *w, const char *reason)
{
    while (w->obs)
        ob_close(w->obs, reason);
}
