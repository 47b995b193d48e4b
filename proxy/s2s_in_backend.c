/*
 * s2s_in_backend: the tenant's s2s backend stream of an inbound s2s connection (see
 * s2s_in.h, s2s_in.c): accepted pairs asserted with xmppfront's own key
 * (proxy/backend_s2s.h), the backend's answers relayed to the remote as the pairs'
 * answers, and the move to RELAY once the first pair is accepted.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <mbedtls/ssl.h>
#include "proxy/backend_s2s.h"
#include "proxy/conn_int.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/proxyproto.h"
#include "proxy/s2s.h"
#include "proxy/s2s_in.h"
#include "proxy/s2s_in_int.h"
#include "tenants/policy.h"

/* ------------------------------------------------------------------ the backend stream */

static struct in_pair *find_pair(xf_s2s_in *s, const char *remote, const char *local)
{
    for (unsigned i = 0; i < s->np; i++)
        if (strcasecmp(s->p[i].remote, remote) == 0 && strcasecmp(s->p[i].local, local) == 0)
            return &s->p[i];
    return NULL;
}

static int bs_send(void *ud, const char *data, size_t len)
{
    xf_s2s_in *s = ud;
    if (xf_s2s_in_closing(s) || s->c->state < XF_CONN_BACKEND_HEADER)
        return -1;
    return xf_conn_backend_send(s->c, data, len);
}

static int bs_forward(void *ud, const char *data, size_t len)
{
    xf_s2s_in *s = ud;
    if (xf_s2s_in_closing(s))
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
    if (xf_s2s_in_closing(s))
        return;
    xf_conn_stream_error(s->c, "remote-connection-failed", "backend unavailable", reason);
}

int xf_s2s_in_answer_pair(xf_s2s_in *s, struct in_pair *p, enum xf_db_type type,
                          enum xf_db_error err)
{
    char out[1200];
    p->answered = 1;
    if (p->sasl)
        return 0;                         /* SASL <success/> was the answer */
    int n = xf_s2s_write_db_answer(out, sizeof(out), NULL, 0, p->local, p->remote, NULL,
                                   type, err);
    return n < 0 ? 0 : xf_s2s_in_say(s, out, (size_t)n);
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
    if (xf_s2s_in_closing(s))
        return -1;
    struct in_pair *p = find_pair(s, remote, local);
    if (p == NULL || (p->answered && !p->sasl))
        return 0;                         /* (a SASL pair was answered by <success/>) */
    if (type != XF_DB_TYPE_VALID) {
        char r[400];
        snprintf(r, sizeof(r), "the backend refused xmppfront's assertion of %.100s -> %.100s "
                 "(its dialback verification must reach xmppfront's outbound listener)",
                 remote, local);
        xf_s2s_in_log_refusal(s, remote, local, "backend", r);
        if (s->c->state != XF_CONN_RELAY) {
            xf_conn_stream_error(s->c, "internal-server-error", NULL, r);
            return -1;
        }
        xf_pairs_answer(s->pairs, local, remote, XF_DB_TYPE_INVALID);
        return xf_s2s_in_answer_pair(s, p, XF_DB_TYPE_ERROR, XF_DB_ERR_INTERNAL_SERVER_ERROR);
    }
    xf_pairs_set_valid(s->pairs, local, remote);
    if (xf_s2s_in_answer_pair(s, p, XF_DB_TYPE_VALID, XF_DB_ERR_NONE) < 0)
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
        xf_metrics_inc(XF_MF_BACKEND_ERRORS, XF_MB_CONNECT_FAILED);
        xf_conn_stream_error(c, "remote-connection-failed", "backend unavailable", reason);
        return;
    }
    xf_conn_set_state(c, XF_CONN_BACKEND_HEADER);
    if (s->btenant->proxy_protocol == XF_PP_V2 && xf_conn_send_proxy_header(c) < 0)
        return;
    if (xf_bs2s_start(s->bs) < 0)
        return;
    int r = uv_read_start((uv_stream_t *)&c->backend, xf_conn_alloc_buf, xf_conn_on_backend_read);
    if (r < 0)
        xf_conn_stream_error(c, "remote-connection-failed", "backend unavailable", uv_strerror(r));
}

/* An accepted pair goes to the backend: the first opens the backend stream, later ones
   are piggybacked on it (same backend only). */
int xf_s2s_in_assert_to_backend(xf_s2s_in *s, struct in_pair *p)
{
    xf_conn *c = s->c;
    p->accepted = 1;
    if (s->bs != NULL) {
        if (s->btenant != p->tenant && (s->btenant->s2s.addrlen != p->tenant->s2s.addrlen ||
            memcmp(&s->btenant->s2s.addr, &p->tenant->s2s.addr, p->tenant->s2s.addrlen) != 0)) {
            xf_s2s_in_log_refusal(s, p->remote, p->local, "piggyback",
                                  "the domain's tenant has another s2s backend than this stream's");
            xf_pairs_answer(s->pairs, p->local, p->remote, XF_DB_TYPE_INVALID);
            return xf_s2s_in_answer_pair(s, p, XF_DB_TYPE_ERROR, XF_DB_ERR_NOT_ACCEPTABLE);
        }
        int r = xf_bs2s_assert(s->bs, p->remote, p->local);
        if (r == -1) {
            xf_pairs_answer(s->pairs, p->local, p->remote, XF_DB_TYPE_INVALID);
            return xf_s2s_in_answer_pair(s, p, XF_DB_TYPE_ERROR, XF_DB_ERR_RESOURCE_CONSTRAINT);
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
