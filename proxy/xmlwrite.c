/*
 * xmlwrite: the few XMPP stream writers the proxy needs (RFC 6120 §4.7, §4.9): the
 * response header, a stream error, escaping, and fresh stream ids. Their declarations
 * are in proxy/xmlstream.h, next to the scanner whose events they answer.
 */
#include "proxy/xmlstream.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

struct out {
    char *p;
    size_t cap, len;
    int overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || o->cap - o->len <= n) {   /* keep room for the NUL */
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_escaped(struct out *o, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': puts_(o, "&amp;"); break;
        case '<': puts_(o, "&lt;"); break;
        case '>': puts_(o, "&gt;"); break;
        case '\'': puts_(o, "&apos;"); break;
        case '"': puts_(o, "&quot;"); break;
        default: put(o, s, 1); break;
        }
    }
}

static int finish(struct out *o)
{
    if (o->overflow || o->cap == 0)
        return -1;
    return (int)o->len;
}

static struct out out_init(char *buf, size_t cap)
{
    struct out o = { buf, cap, 0, 0 };
    if (cap > 0)
        buf[0] = '\0';
    if (cap > INT32_MAX)
        o.cap = INT32_MAX;
    return o;
}

int xf_xml_escape(char *out, size_t cap, const char *s)
{
    struct out o = out_init(out, cap);
    put_escaped(&o, s);
    return finish(&o);
}

static void put_attr(struct out *o, const char *name, const char *value)
{
    puts_(o, " ");
    puts_(o, name);
    puts_(o, "='");
    put_escaped(o, value);
    puts_(o, "'");
}

/* RFC 6120 §4.7: from is always written (from='' when unknown, §4.9.1.3), to and
   id only when non-empty, version only when non-NULL and non-empty (a 0.9 peer
   gets none, §4.7.5), xml:lang='en' always (§4.7.4). ns NONE writes no default
   namespace. Returns -1 for an unknown ns or too small a buffer. */
int xf_xml_write_header(char *out, size_t cap, int ns, const char *from, const char *to,
                        const char *id, const char *version)
{
    const char *nsuri;
    switch (ns) {
    case XF_XML_NS_CLIENT: nsuri = XF_NS_CLIENT; break;
    case XF_XML_NS_SERVER: nsuri = XF_NS_SERVER; break;
    case XF_XML_NS_NONE: nsuri = NULL; break;
    default: return -1;
    }
    struct out o = out_init(out, cap);
    puts_(&o, "<?xml version='1.0'?><stream:stream");
    put_attr(&o, "from", from ? from : "");
    if (to && *to)
        put_attr(&o, "to", to);
    if (id && *id)
        put_attr(&o, "id", id);
    if (version && *version)
        put_attr(&o, "version", version);
    puts_(&o, " xml:lang='en'");
    if (nsuri)
        put_attr(&o, "xmlns", nsuri);
    put_attr(&o, "xmlns:stream", XF_NS_STREAMS);
    puts_(&o, ">");
    return finish(&o);
}

/* RFC 6120 §4.9.3: the defined conditions. Anything else becomes
   undefined-condition (§4.9.3.21) so we never emit an unknown element name. */
static const char *const stream_conditions[] = {
    "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone",
    "host-unknown", "improper-addressing", "internal-server-error", "invalid-from",
    "invalid-namespace", "invalid-xml", "not-authorized", "not-well-formed",
    "policy-violation", "remote-connection-failed", "reset", "resource-constraint",
    "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
    "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type",
    "unsupported-version",
};

int xf_xml_write_error(char *out, size_t cap, const char *condition, const char *text)
{
    const char *cond = "undefined-condition";
    for (size_t i = 0; condition && i < sizeof(stream_conditions) / sizeof(*stream_conditions); i++) {
        if (strcmp(condition, stream_conditions[i]) == 0) {
            cond = stream_conditions[i];
            break;
        }
    }
    struct out o = out_init(out, cap);
    puts_(&o, "<stream:error><");
    puts_(&o, cond);
    puts_(&o, " xmlns='" XF_NS_STREAM_ERRORS "'/>");
    if (text && *text) {
        puts_(&o, "<text xmlns='" XF_NS_STREAM_ERRORS "' xml:lang='en'>");
        put_escaped(&o, text);
        puts_(&o, "</text>");
    }
    puts_(&o, "</stream:error></stream:stream>");
    return finish(&o);
}

/* RFC 6120 §4.7.3: the id must be unpredictable (dialback keys depend on it).
   18 bytes (144 bits) from getrandom() as 24 base64url characters. */
int xf_xml_new_id(char *out, size_t cap)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[18];
    size_t got = 0;
    if (cap < 25)
        return -1;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    size_t o = 0;
    for (size_t i = 0; i < sizeof(r); i += 3) {
        uint32_t v = ((uint32_t)r[i] << 16) | ((uint32_t)r[i + 1] << 8) | r[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    out[o] = '\0';
    return (int)o;
}
