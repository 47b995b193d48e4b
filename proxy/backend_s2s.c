/*
 * backend_s2s: asserting an authenticated remote domain to a tenant's backend (see
 * backend_s2s.h; design.md §2; XEP-0220 §2.1, §4; XEP-0185).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "certs/dialback.h"
#include "proxy/backend_s2s.h"
#include "proxy/buf.h"
#include "proxy/log.h"
#include "proxy/xmlstream.h"

#define BS2S_MAX_PAIRS 16
#define BS2S_DOMAIN_MAX 256

struct bpair {
    char remote[BS2S_DOMAIN_MAX], local[BS2S_DOMAIN_MAX];
    int sent;                         /* our <db:result/> went out */
    int state;                        /* 0 pending, else enum xf_db_type */
};

struct xf_bs2s {
    char *secret;
    const xf_bs2s_ops *ops;
    void *ud;
    xf_xml *xml;
    xf_buf in;                        /* backend bytes from offset `base` on */
    uint64_t base;
    char bid[128];                    /* the backend's stream id */
    int ready;                        /* header (and features, for 1.0) seen */
    int failed;
    int header_seen, want_features;
    struct bpair pairs[BS2S_MAX_PAIRS];
    unsigned n_pairs, n_valid;
};

static int fail(xf_bs2s *b, const char *reason)
{
    if (!b->failed) {
        b->failed = 1;
        b->ops->fail(b->ud, reason);
    }
    return -1;
}

static int dom_ok(const char *s)
{
    return s && *s && strlen(s) < BS2S_DOMAIN_MAX && !strchr(s, ' ');
}

xf_bs2s *xf_bs2s_new(const char *secret, const char *remote, const char *local,
                     size_t max_element, const xf_bs2s_ops *ops, void *ud)
{
    if (!secret || !*secret || !dom_ok(remote) || !dom_ok(local) || !ops)
        return NULL;
    xf_bs2s *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->secret = strdup(secret);
    b->xml = xf_xml_new(max_element, max_element);
    if (b->secret == NULL || b->xml == NULL) {
        xf_bs2s_free(b);
        return NULL;
    }
    b->ops = ops;
    b->ud = ud;
    snprintf(b->pairs[0].remote, BS2S_DOMAIN_MAX, "%s", remote);
    snprintf(b->pairs[0].local, BS2S_DOMAIN_MAX, "%s", local);
    b->n_pairs = 1;
    return b;
}

void xf_bs2s_free(xf_bs2s *b)
{
    if (b == NULL)
        return;
    if (b->secret) {
        memset(b->secret, 0, strlen(b->secret));
        free(b->secret);
    }
    xf_xml_free(b->xml);
    xf_buf_free(&b->in);
    free(b);
}

int xf_bs2s_start(xf_bs2s *b)
{
    /* The header of the stream "from R": the first pair's domains (RFC 6120 §4.7.1);
       xmlns:db announces dialback (XEP-0220 §2.1). */
    char out[1024], qfrom[BS2S_DOMAIN_MAX * 6], qto[BS2S_DOMAIN_MAX * 6];
    if (xf_xml_escape(qfrom, sizeof(qfrom), b->pairs[0].remote) < 0 ||
        xf_xml_escape(qto, sizeof(qto), b->pairs[0].local) < 0)
        return fail(b, "backend header: domain too long");
    int n = snprintf(out, sizeof(out),
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                     "xmlns:stream='http://etherx.jabber.org/streams' "
                     "xmlns:db='jabber:server:dialback' from='%s' to='%s' version='1.0'>",
                     qfrom, qto);
    if (n < 0 || (size_t)n >= sizeof(out))
        return fail(b, "backend header too long");
    if (b->ops->send(b->ud, out, (size_t)n) < 0)
        return (b->failed = 1), -1;
    return 0;
}

/* <db:result from=R to=T>B</db:result> for one pair, B = K(T, R, BID) (XEP-0185:
   receiving server first). */
static int send_result(xf_bs2s *b, struct bpair *p)
{
    char key[XF_DIALBACK_KEY_LEN + 1], out[1400];
    if (xf_dialback_key(b->secret, p->local, p->remote, b->bid, key) != 0)
        return fail(b, "cannot make the dialback key (backend stream id unusable)");
    int n = xf_s2s_write_db_result_request(out, sizeof(out), NULL, p->remote, p->local, key);
    memset(key, 0, sizeof(key));
    if (n < 0)
        return fail(b, "db:result does not fit");
    p->sent = 1;
    xf_debug("backend s2s: asserting %s -> %s (backend id %s)", p->remote, p->local, b->bid);
    int r = b->ops->send(b->ud, out, (size_t)n);
    memset(out, 0, sizeof(out));
    if (r < 0)
        return (b->failed = 1), -1;
    return 0;
}

static int send_pending(xf_bs2s *b)
{
    for (unsigned i = 0; i < b->n_pairs; i++)
        if (!b->pairs[i].sent && send_result(b, &b->pairs[i]) < 0)
            return -1;
    return 0;
}

int xf_bs2s_assert(xf_bs2s *b, const char *remote, const char *local)
{
    if (b == NULL || b->failed || !dom_ok(remote) || !dom_ok(local))
        return -1;
    for (unsigned i = 0; i < b->n_pairs; i++)
        if (strcasecmp(b->pairs[i].remote, remote) == 0 &&
            strcasecmp(b->pairs[i].local, local) == 0)
            return -2;
    if (b->n_pairs >= BS2S_MAX_PAIRS)
        return -1;
    struct bpair *p = &b->pairs[b->n_pairs++];
    memset(p, 0, sizeof(*p));
    snprintf(p->remote, BS2S_DOMAIN_MAX, "%s", remote);
    snprintf(p->local, BS2S_DOMAIN_MAX, "%s", local);
    if (b->ready)
        return send_result(b, p);
    return 0;
}

/* An answer <db:result from=T to=R type=.../>: only for a pair we asserted and that
   is still open (an unsolicited answer means nothing, XEP-0220 §2.1.3). */
static int on_answer(xf_bs2s *b, const xf_xml_event *ev)
{
    const char *from = ev->attr_from, *to = ev->attr_to;
    enum xf_db_type type = strcmp(ev->type_attr, "valid") == 0     ? XF_DB_TYPE_VALID
                           : strcmp(ev->type_attr, "invalid") == 0 ? XF_DB_TYPE_INVALID
                           : strcmp(ev->type_attr, "error") == 0   ? XF_DB_TYPE_ERROR
                                                                   : 0;
    if (type == 0 || !from || !to) {
        xf_debug("backend s2s: dialback result without type/from/to dropped");
        return 0;
    }
    for (unsigned i = 0; i < b->n_pairs; i++) {
        struct bpair *p = &b->pairs[i];
        if (p->sent && p->state == 0 && strcasecmp(p->local, from) == 0 &&
            strcasecmp(p->remote, to) == 0) {
            p->state = (int)type;
            if (type == XF_DB_TYPE_VALID)
                b->n_valid++;
            return b->ops->pair(b->ud, p->remote, p->local, type, XF_DB_ERR_NONE);
        }
    }
    xf_debug("backend s2s: unsolicited dialback answer %s -> %s dropped", from, to);
    return 0;
}

static int on_event(xf_bs2s *b, const xf_xml_event *ev)
{
    char r[300];
    switch (ev->type) {
    case XF_XML_HEADER:
        if (b->header_seen)
            return fail(b, "backend sent a second stream header");
        b->header_seen = 1;
        if (ev->id == NULL || !*ev->id || strlen(ev->id) >= sizeof(b->bid) ||
            strchr(ev->id, ' ')) {
            return fail(b, "backend stream header without a usable id");
        }
        snprintf(b->bid, sizeof(b->bid), "%s", ev->id);
        /* A 1.0 stream sends features first (RFC 6120 §4.3.2); a pre-1.0 (dialback
           only) one does not. */
        b->want_features = ev->version != NULL && strcmp(ev->version, "1.0") >= 0;
        if (!b->want_features) {
            b->ready = 1;
            return send_pending(b);
        }
        return 0;
    case XF_XML_ELEMENT:
        if (strcmp(ev->name, "error") == 0 && strcmp(ev->ns_uri, XF_NS_STREAMS) == 0) {
            snprintf(r, sizeof(r), "backend stream error <%s/>",
                     ev->n_children > 0 ? ev->children[0].name : "?");
            return fail(b, r);
        }
        if (!b->ready) {
            if (strcmp(ev->name, "features") == 0 && strcmp(ev->ns_uri, XF_NS_STREAMS) == 0) {
                b->ready = 1;
                return send_pending(b);
            }
            snprintf(r, sizeof(r), "backend sent <%.60s/> before its features", ev->name);
            return fail(b, r);
        }
        if (strcmp(ev->ns_uri, XF_NS_DIALBACK) == 0) {
            if (strcmp(ev->name, "result") == 0)
                return on_answer(b, ev);
            xf_debug("backend s2s: <db:%s/> on the asserted stream dropped", ev->name);
            return 0;
        }
        if (b->n_valid == 0) {
            xf_debug("backend s2s: <%s/> before any pair is valid dropped", ev->name);
            return 0;
        }
        {
            uint64_t s = ev->span.start - b->base, e = ev->span.end - b->base;
            if (e > xf_buf_size(&b->in) || s > e)
                return fail(b, "backend element outside the buffer");
            return b->ops->forward(b->ud, xf_buf_head(&b->in) + s, (size_t)(e - s));
        }
    case XF_XML_STREAM_END:
        return fail(b, "backend closed its stream");
    case XF_XML_ERROR:
        snprintf(r, sizeof(r), "backend sent a bad stream: %s (%s)", ev->error,
                 ev->reason ? ev->reason : "");
        return fail(b, r);
    default:
        return 0;
    }
}

int xf_bs2s_input(xf_bs2s *b, const char *data, size_t len)
{
    if (b->failed)
        return -1;
    if (xf_buf_append(&b->in, data, len) < 0 || xf_xml_push(b->xml, data, len) < 0)
        return fail(b, "out of memory");
    xf_xml_event ev;
    uint64_t done = b->base;
    while (xf_xml_next(b->xml, &ev) != XF_XML_NONE) {
        if (on_event(b, &ev) < 0) {
            b->failed = 1;
            return -1;
        }
        if (ev.type == XF_XML_HEADER || ev.type == XF_XML_ELEMENT)
            done = ev.span.end;
    }
    /* Keep only the incomplete element the scanner still holds. */
    size_t drop = (size_t)(done - b->base);
    if (drop > xf_buf_size(&b->in))
        drop = xf_buf_size(&b->in);
    xf_buf_consume(&b->in, drop);
    b->base += drop;
    return 0;
}

const char *xf_bs2s_backend_id(const xf_bs2s *b) { return b->bid; }

int xf_bs2s_pair_valid(const xf_bs2s *b, const char *remote, const char *local)
{
    for (unsigned i = 0; i < b->n_pairs; i++)
        if (b->pairs[i].state == XF_DB_TYPE_VALID && strcasecmp(b->pairs[i].remote, remote) == 0 &&
            strcasecmp(b->pairs[i].local, local) == 0)
            return 1;
    return 0;
}

unsigned xf_bs2s_valid_count(const xf_bs2s *b) { return b->n_valid; }
