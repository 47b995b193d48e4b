/*
 * s2s: server-to-server negotiation pieces shared by both directions (see s2s.h).
 */
#include "proxy/s2s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <mbedtls/base64.h>
#include "certs/dialback.h"
#include "proxy/xmlstream.h"

static const char *const db_error_names[] = {
    [XF_DB_ERR_NONE] = "",
    [XF_DB_ERR_ITEM_NOT_FOUND] = "item-not-found",
    [XF_DB_ERR_REMOTE_CONNECTION_FAILED] = "remote-connection-failed",
    [XF_DB_ERR_REMOTE_SERVER_NOT_FOUND] = "remote-server-not-found",
    [XF_DB_ERR_REMOTE_SERVER_TIMEOUT] = "remote-server-timeout",
    [XF_DB_ERR_POLICY_VIOLATION] = "policy-violation",
    [XF_DB_ERR_NOT_AUTHORIZED] = "not-authorized",
    [XF_DB_ERR_FORBIDDEN] = "forbidden",
    [XF_DB_ERR_NOT_ACCEPTABLE] = "not-acceptable",
    [XF_DB_ERR_RESOURCE_CONSTRAINT] = "resource-constraint",
    [XF_DB_ERR_INTERNAL_SERVER_ERROR] = "internal-server-error",
};

const char *xf_db_error_name(enum xf_db_error e)
{
    if ((unsigned)e >= sizeof(db_error_names) / sizeof(*db_error_names))
        return "undefined-condition";
    return db_error_names[e];
}

/* ---------------------------------------------------------------- writers */

struct out {
    char *p;
    size_t cap, len;
    int bad;
};

static void put(struct out *o, const char *s)
{
    size_t n = strlen(s);
    if (o->bad || o->cap - o->len <= n) {
        o->bad = 1;
        return;
    }
    memcpy(o->p + o->len, s, n + 1);
    o->len += n;
}

/* ' name='escaped value'' — a missing or empty value marks the output bad. */
static void put_attr(struct out *o, const char *name, const char *value)
{
    if (value == NULL || *value == '\0') {
        o->bad = 1;
        return;
    }
    put(o, " ");
    put(o, name);
    put(o, "='");
    if (o->bad)
        return;
    int n = xf_xml_escape(o->p + o->len, o->cap - o->len, value);
    if (n < 0) {
        o->bad = 1;
        return;
    }
    o->len += (size_t)n;
    put(o, "'");
}

static void put_text(struct out *o, const char *text)
{
    if (o->bad)
        return;
    int n = xf_xml_escape(o->p + o->len, o->cap - o->len, text);
    if (n < 0) {
        o->bad = 1;
        return;
    }
    o->len += (size_t)n;
}

/* "<px:elem" or "</px:elem" (the caller closes the tag). */
static void put_name(struct out *o, const char *lt, const char *px, const char *elem)
{
    put(o, lt);
    put(o, px);
    put(o, ":");
    put(o, elem);
}

static struct out out_init(char *buf, size_t cap)
{
    struct out o = { buf, cap, 0, cap == 0 };
    if (cap)
        buf[0] = '\0';
    return o;
}

/* Nothing written: an argument was missing or malformed. */
static int refuse(char *buf, size_t cap)
{
    if (cap)
        buf[0] = '\0';
    return -1;
}

static int finish(struct out *o)
{
    if (o->bad) {
        if (o->cap)
            o->p[0] = '\0';
        return -1;
    }
    return (int)o->len;
}

/* A prefix must be an NCName; we only ever echo what the peer declared, so a plain
   check for the characters that would break out of the tag is enough. */
static const char *db_prefix(const char *prefix)
{
    if (prefix == NULL || *prefix == '\0')
        return "db";
    for (const char *s = prefix; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
            return NULL;
    return prefix;
}

int xf_s2s_write_features(char *out, size_t cap, int offer_external, int offer_dialback)
{
    struct out o = out_init(out, cap);
    put(&o, "<stream:features>");
    if (offer_external)
        put(&o, "<mechanisms xmlns='" XF_NS_SASL "'><mechanism>EXTERNAL</mechanism></mechanisms>");
    if (offer_dialback)
        put(&o, "<dialback xmlns='" XF_NS_DIALBACK_FEATURE "'><errors/></dialback>");
    put(&o, "</stream:features>");
    return finish(&o);
}

int xf_s2s_write_plain_features(char *out, size_t cap, int offer_dialback)
{
    struct out o = out_init(out, cap);
    put(&o, "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    if (offer_dialback)
        put(&o, "<dialback xmlns='" XF_NS_DIALBACK_FEATURE "'><errors/></dialback>");
    put(&o, "</stream:features>");
    return finish(&o);
}

static int write_db_request(char *out, size_t cap, const char *prefix, const char *elem,
                            const char *from, const char *to, const char *id, const char *key)
{
    struct out o = out_init(out, cap);
    const char *px = db_prefix(prefix);
    if (px == NULL || key == NULL || *key == '\0' || (id != NULL && *id == '\0'))
        return refuse(out, cap);
    put_name(&o, "<", px, elem);
    put_attr(&o, "from", from);
    put_attr(&o, "to", to);
    if (id)
        put_attr(&o, "id", id);
    put(&o, ">");
    put_text(&o, key);
    put_name(&o, "</", px, elem);
    put(&o, ">");
    return finish(&o);
}

int xf_s2s_write_db_result_request(char *out, size_t cap, const char *prefix, const char *from,
                                   const char *to, const char *key)
{
    return write_db_request(out, cap, prefix, "result", from, to, NULL, key);
}

int xf_s2s_write_db_verify_request(char *out, size_t cap, const char *prefix, const char *from,
                                   const char *to, const char *id, const char *key)
{
    if (id == NULL)
        return refuse(out, cap);
    return write_db_request(out, cap, prefix, "verify", from, to, id, key);
}

int xf_s2s_write_db_answer(char *out, size_t cap, const char *prefix, int is_verify,
                           const char *from, const char *to, const char *id,
                           enum xf_db_type type, enum xf_db_error err)
{
    struct out o = out_init(out, cap);
    const char *px = db_prefix(prefix);
    const char *elem = is_verify ? "verify" : "result";
    const char *tname = type == XF_DB_TYPE_VALID ? "valid" : type == XF_DB_TYPE_INVALID ? "invalid"
                      : type == XF_DB_TYPE_ERROR ? "error" : NULL;
    if (px == NULL || tname == NULL || (is_verify && (id == NULL || *id == '\0')) ||
        (type == XF_DB_TYPE_ERROR && err == XF_DB_ERR_NONE))
        return refuse(out, cap);
    put_name(&o, "<", px, elem);
    put_attr(&o, "from", from);
    put_attr(&o, "to", to);
    if (is_verify)
        put_attr(&o, "id", id);
    put_attr(&o, "type", tname);
    if (type != XF_DB_TYPE_ERROR) {
        put(&o, "/>");
        return finish(&o);
    }
    /* XEP-0220 §2.4: <error type='cancel'><COND xmlns=stanzas/></error>;
       resource-constraint is a temporary condition ('wait'). */
    put(&o, err == XF_DB_ERR_RESOURCE_CONSTRAINT ? "><error type='wait'><" : "><error type='cancel'><");
    put(&o, xf_db_error_name(err));
    put(&o, " xmlns='" XF_NS_STANZAS "'/></error>");
    put_name(&o, "</", px, elem);
    put(&o, ">");
    return finish(&o);
}

int xf_s2s_write_sasl_external(char *out, size_t cap, const char *authzid)
{
    struct out o = out_init(out, cap);
    put(&o, "<auth xmlns='" XF_NS_SASL "' mechanism='EXTERNAL'>");
    if (authzid == NULL || *authzid == '\0') {
        put(&o, "=");            /* RFC 6120 §6.4.2: a zero-length initial response */
    } else if (!o.bad) {
        size_t n = 0;
        size_t room = o.cap - o.len;
        if (mbedtls_base64_encode((unsigned char *)o.p + o.len, room, &n,
                                  (const unsigned char *)authzid, strlen(authzid)) != 0) {
            o.bad = 1;
        } else {
            o.len += n;
        }
    }
    put(&o, "</auth>");
    return finish(&o);
}

/* ---------------------------------------------------------------- dialback bridge */

int xf_s2s_answer_verify(const char *secret, int (*is_hosted)(void *, const char *), void *ud,
                         const char *from, const char *to, const char *id, const char *key,
                         size_t key_len, enum xf_db_error *err)
{
    *err = XF_DB_ERR_NONE;
    if (!from || !*from || !to || !*to || !id || !*id)
        return -1;
    if (is_hosted && !is_hosted(ud, to)) {
        *err = XF_DB_ERR_ITEM_NOT_FOUND;
        return XF_DB_TYPE_ERROR;
    }
    if (key == NULL)
        return XF_DB_TYPE_INVALID;
    /* receiving = the server that asks (from), originating = ours (to) */
    return xf_dialback_verify(secret, from, to, id, key, key_len) ? XF_DB_TYPE_VALID : XF_DB_TYPE_INVALID;
}

/* ---------------------------------------------------------------- pairs */

struct pair {
    char *local, *remote;
    enum xf_pair_state state;
};

struct xf_pairs {
    struct pair *v;
    unsigned n, max;
};

xf_pairs *xf_pairs_new(unsigned max_pairs)
{
    xf_pairs *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->max = max_pairs ? max_pairs : 1;
    return p;
}

void xf_pairs_free(xf_pairs *p)
{
    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->n; i++) {
        free(p->v[i].local);
        free(p->v[i].remote);
    }
    free(p->v);
    free(p);
}

/* Domain names compare ASCII case-insensitively; one trailing dot is ignored. */
static int domain_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen && a[alen - 1] == '.')
        alen--;
    if (blen && b[blen - 1] == '.')
        blen--;
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static struct pair *find(const xf_pairs *p, const char *local, size_t llen, const char *remote,
                         size_t rlen)
{
    for (unsigned i = 0; i < p->n; i++)
        if (domain_eq(p->v[i].local, strlen(p->v[i].local), local, llen) &&
            domain_eq(p->v[i].remote, strlen(p->v[i].remote), remote, rlen))
            return &p->v[i];
    return NULL;
}

static struct pair *find_str(const xf_pairs *p, const char *local, const char *remote)
{
    if (!local || !remote)
        return NULL;
    return find(p, local, strlen(local), remote, strlen(remote));
}

static int add(xf_pairs *p, const char *local, const char *remote, enum xf_pair_state st)
{
    if (!local || !*local || !remote || !*remote)
        return -1;
    if (find_str(p, local, remote))
        return -2;
    if (p->n >= p->max)
        return -1;
    struct pair *nv = realloc(p->v, (p->n + 1) * sizeof(*nv));
    if (nv == NULL)
        return -1;
    p->v = nv;
    struct pair *e = &p->v[p->n];
    e->local = strdup(local);
    e->remote = strdup(remote);
    if (!e->local || !e->remote) {
        free(e->local);
        free(e->remote);
        return -1;
    }
    e->state = st;
    p->n++;
    return 0;
}

int xf_pairs_add(xf_pairs *p, const char *local, const char *remote)
{
    return add(p, local, remote, XF_PAIR_PENDING);
}

int xf_pairs_answer(xf_pairs *p, const char *local, const char *remote, enum xf_db_type type)
{
    struct pair *e = find_str(p, local, remote);
    if (e == NULL || e->state != XF_PAIR_PENDING)
        return 0;
    e->state = type == XF_DB_TYPE_VALID ? XF_PAIR_VALID : XF_PAIR_INVALID;
    return 1;
}

int xf_pairs_set_valid(xf_pairs *p, const char *local, const char *remote)
{
    struct pair *e = find_str(p, local, remote);
    if (e) {
        e->state = XF_PAIR_VALID;
        return 0;
    }
    return add(p, local, remote, XF_PAIR_VALID);
}

int xf_pairs_state(const xf_pairs *p, const char *local, const char *remote)
{
    const struct pair *e = find_str(p, local, remote);
    return e ? (int)e->state : 0;
}

unsigned xf_pairs_count(const xf_pairs *p) { return p->n; }

unsigned xf_pairs_valid_count(const xf_pairs *p)
{
    unsigned k = 0;
    for (unsigned i = 0; i < p->n; i++)
        k += p->v[i].state == XF_PAIR_VALID;
    return k;
}

/* The domain part of a JID (RFC 7622 §3.2): after the first '@' if any (a '@' after a
   '/' belongs to the resource), up to the first '/'. */
static void jid_domain(const char *jid, const char **d, size_t *len)
{
    const char *slash = strchr(jid, '/');
    const char *at = strchr(jid, '@');
    const char *start = (at && (!slash || at < slash)) ? at + 1 : jid;
    const char *end = slash ? slash : jid + strlen(jid);
    *d = start;
    *len = (size_t)(end - start);
}

const char *xf_pairs_check_stanza(const xf_pairs *p, const char *from, const char *to)
{
    if (!from || !*from || !to || !*to)
        return "improper-addressing";
    const char *fd, *td;
    size_t fl, tl;
    jid_domain(from, &fd, &fl);
    jid_domain(to, &td, &tl);
    if (fl == 0 || tl == 0)
        return "improper-addressing";
    int remote_ok = 0;
    for (unsigned i = 0; i < p->n; i++) {
        const struct pair *e = &p->v[i];
        if (e->state != XF_PAIR_VALID)
            continue;
        int r = domain_eq(e->remote, strlen(e->remote), fd, fl);
        int l = domain_eq(e->local, strlen(e->local), td, tl);
        if (r && l)
            return NULL;
        remote_ok |= r;
    }
    /* RFC 6120 §4.9.3.6 / §4.9.3.9: a from that no validated pair names is invalid-from;
       a validated from towards a local domain not validated with it is host-unknown. */
    if (!remote_ok)
        return "invalid-from";
    return "host-unknown";
}
