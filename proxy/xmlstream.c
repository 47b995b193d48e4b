/*
 * xmlstream: incremental XMPP stream scanner on expat (RFC 6120 §4, §11). The
 * writers declared in proxy/xmlstream.h (response header, stream error, escaping,
 * stream id) are in proxy/xmlwrite.c.
 *
 * How events are cut out of expat: bytes pushed by the caller wait in `buf`
 * until xf_xml_next() hands them to XML_Parse(). When a handler completes an event
 * (header start tag, end of a first-level element, </stream>), it records the
 * event's byte span and suspends the parser with XML_StopParser(p, XML_TRUE);
 * XML_Parse() returns XML_STATUS_SUSPENDED and expat keeps the rest of that chunk.
 * The next xf_xml_next() resumes with XML_ResumeParser(). So every event ends
 * exactly at the byte expat was at, and nothing after it has been interpreted.
 *
 * Offsets: expat counts bytes from the start of the document, which is the same as
 * bytes pushed since the last reset, because we feed every byte in order (some of
 * them later than they were pushed, see below). The event end is the current byte
 * index + count (the ...64 variants where expat has them) inside the handler.
 *
 * When bytes go to expat: not as soon as they are pushed. Expat re-scans a partial
 * token on every XML_Parse() call, so xf_xml_push() runs the held-token lexer
 * (proxy/xmllex.h, which explains why and how) and xf_xml_next() feeds expat only
 * up to the feed point it computes, holding an incomplete token in `buf`. The work
 * is counted in `cost` (xf_xml_scan_cost()) so tests can prove it linear.
 *
 * Memory: `buf` holds what the caller pushed and expat has not been given: at most
 * the incomplete token at the end plus the last push. Bytes are handed to expat no
 * further than the active limit (max_header before the header, boundary +
 * max_element afterwards), so neither we nor expat hold more than one limit's worth
 * (plus one push) of an incomplete token.
 *
 * Security: DTDs are refused at the DOCTYPE start (so no entity declarations, no
 * billion laughs), parameter entities are never parsed, and the external entity
 * handler refuses everything (RFC 6120 §11.1 restricted XML).
 */
#include "proxy/xmlstream.h"
#include "proxy/xmllex.h"

#include <expat.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NS_SEP '\n'
#define NS_XML "http://www.w3.org/XML/1998/namespace"
#define NS_DIALBACK "jabber:server:dialback"

enum scan_state {
    ST_HEADER = 0,   /* waiting for the stream header */
    ST_BODY,         /* header reported; scanning first-level elements */
    ST_END,          /* </stream> reported; further input is ignored */
    ST_ERROR,        /* error reported; sticky until reset */
};

enum attr_idx { A_TO, A_FROM, A_ID, A_VERSION, A_LANG, A_COUNT };

struct xf_xml {
    XML_Parser p;
    size_t max_header, max_element;
    enum scan_state state;
    int suspended;            /* expat is suspended inside a fed chunk */

    /* bytes pushed but not yet handed to expat: buf[pos..len) */
    char *buf;
    size_t len, pos, cap;
    uint64_t pushed;          /* bytes pushed since reset */
    uint64_t fed;             /* bytes handed to expat since reset */

    /* lexer over the pushed bytes (decides what may go to expat, proxy/xmllex.h) */
    xf_xmllex lex;
    /* work accounting (xf_xml_scan_cost) */
    uint64_t anchor;          /* lower bound of the start of expat's partial token */
    uint64_t cost;

    /* element tracking */
    int depth;                /* 0 before the root, 1 inside <stream>, ... */
    uint64_t boundary;        /* max_element counts from here */

    /* the event a handler completed, waiting to be returned */
    int have_event;
    xf_xml_event ev;
    /* An empty root <stream:stream/> ends in the same expat token as the header:
       the STREAM_END is queued here until the HEADER has been returned. */
    int end_queued;
    xf_xml_span end_span;

    /* header data collected by the namespace-declaration handler */
    int default_ns_seen;      /* root element declared xmlns='...' */
    char *default_ns;
    int has_dialback_ns;
    char *attrs[A_COUNT];     /* owned copies of the header attributes */
    /* children of the current first-level element, XF_XML_MAX_CHILDREN entries,
       allocated at the first child seen (only elements with children need it: the
       backend's features), so that a pre-TLS connection does not pay for it */
    xf_xml_child *children;
    /* the current first-level element's from/to/id and direct text (owned, reused) */
    struct owned { char *s; size_t cap; int set; } el_attr[3];
    char *text;
    size_t text_len, text_cap;
    int text_truncated;
};

enum { EL_FROM, EL_TO, EL_ID };

/* What a returned event's `children` points to while no element had children
   (all empty, XF_XML_MAX_CHILDREN entries like the real array; never written). */
static xf_xml_child no_children[XF_XML_MAX_CHILDREN];

/* ---------- small helpers ---------- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Copy v into o's reusable buffer. Returns 0 or -1 (ENOMEM). */
static int owned_set(struct owned *o, const char *v)
{
    size_t n = strlen(v) + 1;
    if (n > o->cap) {
        char *nb = realloc(o->s, n);
        if (nb == NULL)
            return -1;
        o->s = nb;
        o->cap = n;
    }
    memcpy(o->s, v, n);
    o->set = 1;
    return 0;
}

/* Direct character data of the current first-level element, bounded. */
static int text_append(xf_xml *x, const char *s, size_t len)
{
    if (x->text_len + len > XF_XML_MAX_TEXT) {
        len = XF_XML_MAX_TEXT - x->text_len;
        x->text_truncated = 1;
    }
    if (x->text_len + len + 1 > x->text_cap) {
        size_t ncap = x->text_cap ? x->text_cap : 128;
        while (ncap < x->text_len + len + 1)
            ncap *= 2;
        char *nb = realloc(x->text, ncap);
        if (nb == NULL)
            return -1;
        x->text = nb;
        x->text_cap = ncap;
    }
    memcpy(x->text + x->text_len, s, len);
    x->text_len += len;
    x->text[x->text_len] = '\0';
    return 0;
}

static void clear_header_data(xf_xml *x)
{
    for (int i = 0; i < A_COUNT; i++) {
        free(x->attrs[i]);
        x->attrs[i] = NULL;
    }
    free(x->default_ns);
    x->default_ns = NULL;
    x->default_ns_seen = 0;
    x->has_dialback_ns = 0;
}

/* Split an expat namespace-triplet name "uri\nlocal[\nprefix]" (or just "local")
   into its parts. Overlong parts come back as "" so they never match a known name. */
static void split_name(const char *n, char *ns, size_t ns_cap, char *local, size_t lcap,
                       const char **prefix)
{
    const char *s1 = strchr(n, NS_SEP);
    const char *uri = "", *loc = n;
    size_t uri_len = 0, loc_len;
    *prefix = NULL;
    if (s1) {
        uri = n;
        uri_len = (size_t)(s1 - n);
        loc = s1 + 1;
        const char *s2 = strchr(loc, NS_SEP);
        if (s2) {
            loc_len = (size_t)(s2 - loc);
            *prefix = s2 + 1;
        } else {
            loc_len = strlen(loc);
        }
    } else {
        loc_len = strlen(n);
    }
    if (uri_len < ns_cap) {
        memcpy(ns, uri, uri_len);
        ns[uri_len] = '\0';
    } else {
        ns[0] = '\0';
    }
    if (loc_len < lcap) {
        memcpy(local, loc, loc_len);
        local[loc_len] = '\0';
    } else {
        local[0] = '\0';
    }
}

/* Expat's location API. Expat 2.9 deprecates the 32-bit-prone XML_GetCurrentByteIndex
   and XML_GetCurrentByteCount for their ...64 variants (CMake checks for them). */
static uint64_t cur_start(XML_Parser p)
{
#ifdef XF_HAVE_XML_GETCURRENTBYTEINDEX64
    int64_t i = XML_GetCurrentByteIndex64(p);
#else
    XML_Index i = XML_GetCurrentByteIndex(p);
#endif
    return i < 0 ? 0 : (uint64_t)i;
}

static uint64_t cur_end(XML_Parser p)
{
#ifdef XF_HAVE_XML_GETCURRENTBYTECOUNT64
    uint64_t n = XML_GetCurrentByteCount64(p);
#else
    int c = XML_GetCurrentByteCount(p);
    uint64_t n = c < 0 ? 0 : (uint64_t)c;
#endif
    return cur_start(p) + n;
}

/* Record a stream error from inside a handler and abort the parse. */
static void fail(xf_xml *x, const char *cond, const char *reason)
{
    if (x->state != ST_ERROR) {
        /* keep header attributes (set by on_header) but drop element leftovers */
        x->ev.span.start = x->ev.span.end = 0;
        x->ev.name[0] = x->ev.ns_uri[0] = '\0';
        x->ev.n_children = x->ev.children_truncated = 0;
        x->state = ST_ERROR;
        x->ev.type = XF_XML_ERROR;
        x->ev.error = cond;
        x->ev.reason = reason;
        x->have_event = 1;
    }
    XML_StopParser(x->p, XML_FALSE);
}

/* Record a stream error outside expat (limits, byte-level checks). */
static void fail_outside(xf_xml *x, const char *cond, const char *reason)
{
    if (x->state == ST_ERROR)
        return;
    memset(&x->ev, 0, sizeof(x->ev));
    x->state = ST_ERROR;
    x->ev.type = XF_XML_ERROR;
    x->ev.error = cond;
    x->ev.reason = reason;
    x->have_event = 1;
}

/* Map an expat error to an RFC 6120 §4.9.3 condition. */
static const char *map_expat_error(const xf_xml *x, enum XML_Error e)
{
    switch (e) {
    case XML_ERROR_NO_MEMORY:
        return "resource-constraint";
    case XML_ERROR_UNBOUND_PREFIX:
        /* §4.9.3.2: an undeclared prefix on the stream header is a prefix problem;
           deeper it is a plain XML-namespaces well-formedness error (§4.9.3.13). */
        return x->state == ST_HEADER ? "bad-namespace-prefix" : "not-well-formed";
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
    case XML_ERROR_NOT_STANDALONE:
    case XML_ERROR_ENTITY_DECLARED_IN_PE:
        return "restricted-xml";     /* §11.1: no entities beyond the predefined five */
    case XML_ERROR_INCORRECT_ENCODING:
    case XML_ERROR_UNKNOWN_ENCODING:
        return "unsupported-encoding";
    default:
        return "not-well-formed";
    }
}

/* ---------- expat handlers ---------- */

/* XML declaration (RFC 6120 §11.5, §11.6): UTF-8 only; standalone='no' is refused
   as restricted XML (it only has meaning with a DTD, which we never accept);
   standalone='yes' is harmless and ignored. */
static void on_xml_decl(void *ud, const XML_Char *version, const XML_Char *encoding,
                        int standalone)
{
    xf_xml *x = ud;
    (void)version;
    if (encoding && strcasecmp(encoding, "UTF-8") != 0) {
        fail(x, "unsupported-encoding", "XML declaration names an encoding other than UTF-8");
        return;
    }
    if (standalone == 0)
        fail(x, "restricted-xml", "standalone='no' in XML declaration");
}

static void on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    xf_xml *x = ud;
    if (x->depth != 0 || x->state != ST_HEADER)
        return;   /* only the stream header's declarations are reported */
    if (!prefix) {
        free(x->default_ns);
        x->default_ns = uri && *uri ? dup_str(uri) : NULL;
        x->default_ns_seen = x->default_ns != NULL;
        if (uri && *uri && !x->default_ns)
            fail(x, "resource-constraint", "out of memory");
    } else if (uri && strcmp(uri, NS_DIALBACK) == 0) {
        /* XEP-0220 §2.1 advertises dialback with xmlns:db; accept any prefix. */
        x->has_dialback_ns = 1;
    }
}

static int save_attr(xf_xml *x, int idx, const char *v)
{
    free(x->attrs[idx]);
    x->attrs[idx] = dup_str(v);
    return x->attrs[idx] ? 0 : -1;
}

/* The stream header (RFC 6120 §4.7, §4.8): the root must be
   {http://etherx.jabber.org/streams}stream with any prefix or none. */
static void on_header(xf_xml *x, const XML_Char *name, const XML_Char **atts)
{
    char ns[128], local[64];
    const char *prefix;
    split_name(name, ns, sizeof(ns), local, sizeof(local), &prefix);

    for (int i = 0; atts[i]; i += 2) {
        const char *an = atts[i], *av = atts[i + 1];
        int idx = -1;
        if (strcmp(an, "to") == 0)
            idx = A_TO;
        else if (strcmp(an, "from") == 0)
            idx = A_FROM;
        else if (strcmp(an, "id") == 0)
            idx = A_ID;
        else if (strcmp(an, "version") == 0)
            idx = A_VERSION;
        else if (strncmp(an, NS_XML "\nlang", sizeof(NS_XML "\nlang") - 1) == 0 &&
                 (an[sizeof(NS_XML "\nlang") - 1] == '\0' ||
                  an[sizeof(NS_XML "\nlang") - 1] == NS_SEP))
            idx = A_LANG;
        if (idx >= 0 && save_attr(x, idx, av) < 0) {
            fail(x, "resource-constraint", "out of memory");
            return;
        }
    }

    /* Fill what we know even for header errors: §4.9.1.2 wants a full response
       header before the error, and the caller may want `to` for it. */
    memset(&x->ev, 0, sizeof(x->ev));
    x->ev.to = x->attrs[A_TO];
    x->ev.from = x->attrs[A_FROM];
    x->ev.id = x->attrs[A_ID];
    x->ev.version = x->attrs[A_VERSION];
    x->ev.lang = x->attrs[A_LANG];
    x->ev.has_dialback_ns = x->has_dialback_ns;
    x->ev.span.start = 0;
    x->ev.span.end = cur_end(x->p);
    x->depth = 1;

    if (strcmp(ns, XF_NS_STREAMS) != 0) {
        fail(x, "invalid-namespace", "stream element not in the streams namespace");
        return;
    }
    if (strcmp(local, "stream") != 0) {
        fail(x, "bad-format", "root element is not <stream>");
        return;
    }
    /* §4.8.2: the content namespace, if declared as default, must be jabber:client
       or jabber:server and never the stream namespace itself. A prefix-free header
       (<stream xmlns='http://etherx.jabber.org/streams'>) declares none: the
       content namespace then comes on each first-level element (XF_XML_NS_NONE). */
    if (x->default_ns_seen) {
        if (strcmp(x->default_ns, XF_NS_CLIENT) == 0) {
            x->ev.ns = XF_XML_NS_CLIENT;
        } else if (strcmp(x->default_ns, XF_NS_SERVER) == 0) {
            x->ev.ns = XF_XML_NS_SERVER;
        } else if (strcmp(x->default_ns, XF_NS_STREAMS) == 0 && prefix == NULL) {
            x->ev.ns = XF_XML_NS_NONE;
        } else {
            fail(x, "invalid-namespace", "unsupported content namespace");
            return;
        }
    } else {
        x->ev.ns = XF_XML_NS_NONE;
    }

    x->ev.type = XF_XML_HEADER;
    x->have_event = 1;
    x->state = ST_BODY;
    x->boundary = x->ev.span.end;
    XML_StopParser(x->p, XML_TRUE);
}

/* max_element, checked at every token inside a first-level element. Bytes fed while
   the header was incomplete are bounded only by max_header, so a complete oversize
   element can arrive in one expat call; this catches it before it is reported.
   Returns 1 (after failing) when the limit is exceeded. */
static int over_element_limit(xf_xml *x)
{
    if (x->max_element && x->depth >= 2 && cur_end(x->p) - x->boundary > x->max_element) {
        fail(x, "policy-violation", "first-level element too large");
        return 1;
    }
    return 0;
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xf_xml *x = ud;
    if (x->state != ST_HEADER && x->state != ST_BODY)
        return;
    if (x->depth == 0) {
        on_header(x, name, atts);
        return;
    }
    if (x->depth == 1) {
        /* a new first-level element */
        memset(&x->ev, 0, sizeof(x->ev));
        const char *prefix;
        split_name(name, x->ev.ns_uri, sizeof(x->ev.ns_uri), x->ev.name,
                   sizeof(x->ev.name), &prefix);
        x->ev.span.start = cur_start(x->p);
        x->boundary = x->ev.span.start;
        /* An unprefixed attribute has no namespace, so expat names it plainly. */
        for (int k = 0; k < 3; k++)
            x->el_attr[k].set = 0;
        x->text_len = 0;
        x->text_truncated = 0;
        for (int i = 0; atts[i] != NULL; i += 2) {
            int k = strcmp(atts[i], "from") == 0 ? EL_FROM : strcmp(atts[i], "to") == 0 ? EL_TO
                  : strcmp(atts[i], "id") == 0 ? EL_ID : -1;
            if (k >= 0 && owned_set(&x->el_attr[k], atts[i + 1]) < 0) {
                fail(x, "resource-constraint", "out of memory");
                return;
            }
            if (strcmp(atts[i], "type") == 0 && strlen(atts[i + 1]) < sizeof(x->ev.type_attr))
                strcpy(x->ev.type_attr, atts[i + 1]);
        }
    } else if (x->depth == 2) {
        if (x->children == NULL)
            x->children = malloc(XF_XML_MAX_CHILDREN * sizeof(*x->children));
        if (x->children == NULL) {
            x->ev.children_truncated = 1;     /* out of memory: say the list is incomplete */
        } else if (x->ev.n_children < XF_XML_MAX_CHILDREN) {
            xf_xml_child *c = &x->children[x->ev.n_children];
            memset(c, 0, sizeof(*c));      /* events compare and copy deterministically */
            const char *prefix;
            split_name(name, c->ns, sizeof(c->ns), c->name, sizeof(c->name), &prefix);
            c->span.start = cur_start(x->p);
        } else {
            x->ev.children_truncated = 1;
        }
    }
    x->depth++;
    over_element_limit(x);
}

static void on_end(void *ud, const XML_Char *name)
{
    xf_xml *x = ud;
    (void)name;
    if (x->state != ST_BODY || over_element_limit(x))
        return;
    x->depth--;
    if (x->depth == 0 && x->have_event) {
        /* <stream:stream .../>: the HEADER event is still pending */
        x->end_queued = 1;
        x->end_span.start = cur_start(x->p);
        x->end_span.end = cur_end(x->p);
        x->state = ST_END;
    } else if (x->depth == 0) {
        /* </stream:stream> (§4.4) */
        memset(&x->ev, 0, sizeof(x->ev));
        x->ev.type = XF_XML_STREAM_END;
        x->ev.span.end = cur_end(x->p);
        x->ev.span.start = cur_start(x->p);
        x->have_event = 1;
        x->state = ST_END;
        XML_StopParser(x->p, XML_TRUE);
    } else if (x->depth == 1) {
        x->ev.type = XF_XML_ELEMENT;
        x->ev.span.end = cur_end(x->p);
        x->boundary = x->ev.span.end;
        x->have_event = 1;
        XML_StopParser(x->p, XML_TRUE);
    } else if (x->depth == 2) {
        if (x->children != NULL && x->ev.n_children < XF_XML_MAX_CHILDREN) {
            x->children[x->ev.n_children].span.end = cur_end(x->p);
            x->ev.n_children++;
        }
    }
}

/* Text directly inside <stream> (between first-level elements) may only be
   whitespace keepalives (§4.6.1). Anything else is well-formed XML that XMPP cannot
   process, so we report bad-format (§4.9.3.1) rather than not-well-formed. */
static void on_text(void *ud, const XML_Char *s, int len)
{
    xf_xml *x = ud;
    if (x->state != ST_BODY || over_element_limit(x))
        return;
    if (x->depth == 2) {                 /* directly inside a first-level element */
        if (!x->text_truncated && text_append(x, s, (size_t)len) < 0)
            fail(x, "resource-constraint", "out of memory");
        return;
    }
    if (x->depth != 1)
        return;
    for (int i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            fail(x, "bad-format", "character data between first-level elements");
            return;
        }
    }
    x->boundary = cur_end(x->p);  /* keepalives do not count against max_element */
}

/* RFC 6120 §11.1: comments, processing instructions, DTDs and entity declarations
   are restricted XML. */
static void on_comment(void *ud, const XML_Char *data)
{
    (void)data;
    fail(ud, "restricted-xml", "XML comment");
}

static void on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    (void)target;
    (void)data;
    fail(ud, "restricted-xml", "processing instruction");
}

static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                       const XML_Char *pubid, int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    fail(ud, "restricted-xml", "document type declaration");
}

static void on_entity_decl(void *ud, const XML_Char *name, int is_pe, const XML_Char *value,
                           int value_len, const XML_Char *base, const XML_Char *sysid,
                           const XML_Char *pubid, const XML_Char *notation)
{
    (void)name; (void)is_pe; (void)value; (void)value_len;
    (void)base; (void)sysid; (void)pubid; (void)notation;
    fail(ud, "restricted-xml", "entity declaration");
}

/* Never load an external entity. */
static int on_external_entity(XML_Parser p, const XML_Char *context, const XML_Char *base,
                              const XML_Char *sysid, const XML_Char *pubid)
{
    (void)p; (void)context; (void)base; (void)sysid; (void)pubid;
    return XML_STATUS_ERROR;
}

/* ---------- lifecycle ---------- */

static int make_parser(xf_xml *x)
{
    /* Forcing UTF-8 makes expat ignore the declared encoding; on_xml_decl checks it. */
    x->p = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!x->p)
        return -1;
    XML_SetReturnNSTriplet(x->p, 1);
    XML_SetUserData(x->p, x);
    XML_SetXmlDeclHandler(x->p, on_xml_decl);
    XML_SetStartNamespaceDeclHandler(x->p, on_ns_start);
    XML_SetElementHandler(x->p, on_start, on_end);
    XML_SetCharacterDataHandler(x->p, on_text);
    XML_SetCommentHandler(x->p, on_comment);
    XML_SetProcessingInstructionHandler(x->p, on_pi);
    XML_SetStartDoctypeDeclHandler(x->p, on_doctype);
    XML_SetEntityDeclHandler(x->p, on_entity_decl);
    XML_SetExternalEntityRefHandler(x->p, on_external_entity);
    XML_SetParamEntityParsing(x->p, XML_PARAM_ENTITY_PARSING_NEVER);
#ifdef XF_HAVE_XML_SETREPARSEDEFERRALENABLED
    /* Reparse deferral would hold back the event of a token that arrived in pieces
       until more bytes come. Events stay immediate; the lexer and the growth rule
       (proxy/xmllex.c) bound the cost deferral exists to prevent (proxy/xmllex.h). */
    XML_SetReparseDeferralEnabled(x->p, XML_FALSE);
#endif
    return 0;
}

static void reset_state(xf_xml *x)
{
    x->state = ST_HEADER;
    x->suspended = 0;
    x->len = x->pos = 0;
    x->pushed = x->fed = 0;
    xf_xmllex_reset(&x->lex);
    x->anchor = x->cost = 0;
    x->depth = 0;
    x->boundary = 0;
    x->have_event = 0;
    x->end_queued = 0;
    memset(&x->ev, 0, sizeof(x->ev));
    clear_header_data(x);
}

xf_xml *xf_xml_new(size_t max_header, size_t max_element)
{
    xf_xml *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->max_header = max_header;
    x->max_element = max_element;
    if (make_parser(x) < 0) {
        free(x);
        return NULL;
    }
    reset_state(x);
    return x;
}

void xf_xml_set_max_element(xf_xml *x, size_t max_element)
{
    x->max_element = max_element;
}

void xf_xml_free(xf_xml *x)
{
    if (!x)
        return;
    if (x->p)
        XML_ParserFree(x->p);
    clear_header_data(x);
    free(x->buf);
    free(x->children);
    for (int k = 0; k < 3; k++)
        free(x->el_attr[k].s);
    free(x->text);
    free(x);
}

/* RFC 6120 §4.3.3, §5.4.3.3: after STARTTLS (or SASL success) both sides start a
   fresh stream. Everything is forgotten, including bytes pushed but not yet
   reported: the caller owns what follows the last event it saw. If a new parser
   cannot be allocated the scanner reports resource-constraint on the next call. */
void xf_xml_reset(xf_xml *x)
{
    if (x->p)
        XML_ParserFree(x->p);
    x->p = NULL;
    reset_state(x);
    if (make_parser(x) < 0)
        fail_outside(x, "resource-constraint", "out of memory creating XML parser");
}

int xf_xml_push(xf_xml *x, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (x->state == ST_ERROR || x->state == ST_END) {
        x->pushed += len;     /* nothing more will be parsed; keep offsets honest */
        return 0;
    }
    if (x->pos == x->len) {
        x->pos = x->len = 0;
    } else if (x->pos > 0 && x->len + len > x->cap && x->pos >= x->len - x->pos) {
        /* Reclaim the fed prefix only when it is at least as large as what must move,
           so a long held token is not copied again for every few bytes gained. */
        memmove(x->buf, x->buf + x->pos, x->len - x->pos);
        x->len -= x->pos;
        x->pos = 0;
    }
    if (x->len + len > x->cap) {
        size_t ncap = x->cap ? x->cap : 512;     /* a stream header fits; grows by doubling */
        while (ncap < x->len + len) {
            if (ncap > SIZE_MAX / 2)
                return -1;
            ncap *= 2;
        }
        char *nb = realloc(x->buf, ncap);
        if (!nb)
            return -1;
        x->buf = nb;
        x->cap = ncap;
    }
    memcpy(x->buf + x->len, data, len);
    x->len += len;
    xf_xmllex_push(&x->lex, x->pushed, data, len);
    x->pushed += len;
    return 0;
}

uint64_t xf_xml_offset(const xf_xml *x)
{
    return x->pushed;
}

uint64_t xf_xml_scan_cost(const xf_xml *x)
{
    return x->cost;
}

/* Byte-level checks at the very start of a stream that expat cannot make for us
   when the encoding is forced (RFC 6120 §11.6; spec digest §1.2): a UTF-8 BOM
   is not well-formed at stream start; UTF-16/32 signatures are another encoding. */
static void check_stream_start(xf_xml *x)
{
    size_t avail = x->len - x->pos;
    const unsigned char *b = (const unsigned char *)x->buf + x->pos;
    if (x->fed == 0 && avail >= 1) {
        if (b[0] == 0xEF)
            fail_outside(x, "not-well-formed", "byte order mark before the stream");
        else if (b[0] == 0xFE || b[0] == 0xFF || b[0] == 0x00)
            fail_outside(x, "unsupported-encoding", "UTF-16/UTF-32 byte order or signature");
        else if (b[0] != '<' && b[0] != ' ' && b[0] != '\t' && b[0] != '\r' && b[0] != '\n')
            fail_outside(x, "not-well-formed", "stream does not start with '<'");
    }
    if (x->state == ST_ERROR)
        return;
    /* '<' followed by NUL: UTF-16LE without a BOM */
    if (x->fed <= 1 && avail >= 2 - x->fed && b[1 - x->fed] == 0x00)
        fail_outside(x, "unsupported-encoding", "UTF-16 input");
}

/* Absolute offset up to which bytes may be handed to expat now. */
static uint64_t feed_limit(const xf_xml *x)
{
    if (x->state == ST_HEADER)
        return x->max_header ? x->max_header : UINT64_MAX;
    return x->max_element ? x->boundary + x->max_element : UINT64_MAX;
}

/* Expat ends a run of character data only at markup, a reference, a line end or the
   end of the bytes it was given, and a run that contains "]]>" is an invalid token
   as a whole. So "x]]>" between first-level elements is bad-format when 'x' was given
   to expat in an earlier call (on_text saw it) but not-well-formed when it came in the
   same call. To keep the verdict independent of delivery, an invalid token there is
   reported as bad-format whenever non-whitespace text precedes its "]]>" since the
   last thing reported (`boundary`): what expat would have said had the text come
   first. Returns 1 when that applies. */
static int text_before_rsqb_error(const xf_xml *x)
{
    uint64_t err = cur_start(x->p);          /* the '>' of "]]>" */
    uint64_t first = x->fed - x->pos;        /* oldest offset still in buf */
    if (x->state != ST_BODY || x->depth != 1 || err < x->boundary + 2 || x->boundary < first ||
        err >= x->fed)
        return 0;
    const char *b = x->buf + (x->boundary - first);
    size_t n = (size_t)(err - x->boundary) + 1;
    if (n < 3 || memcmp(b + n - 3, "]]>", 3) != 0)
        return 0;
    int text = 0;
    for (size_t i = 0; i + 3 < n; i++) {
        if (b[i] == '<')
            return 0;
        if (b[i] != ' ' && b[i] != '\t' && b[i] != '\r' && b[i] != '\n')
            text = 1;
    }
    return text;
}

/* Contract: returns at most one event per call. XF_XML_NONE means nothing more can
   be reported from what was pushed: expat has been given every byte up to the last
   token end, and what is held (in `buf` or inside expat) is one incomplete token,
   bounded by the active limit. */
int xf_xml_next(xf_xml *x, xf_xml_event *ev)
{
    for (;;) {
        if (x->have_event) {
            *ev = x->ev;
            ev->children = x->children ? x->children : no_children;
            if (ev->type == XF_XML_ELEMENT) {
                ev->attr_from = x->el_attr[EL_FROM].set ? x->el_attr[EL_FROM].s : NULL;
                ev->attr_to = x->el_attr[EL_TO].set ? x->el_attr[EL_TO].s : NULL;
                ev->attr_id = x->el_attr[EL_ID].set ? x->el_attr[EL_ID].s : NULL;
                ev->text = x->text_len ? x->text : "";
                ev->text_len = x->text_len;
                ev->text_truncated = x->text_truncated;
            }
            if (x->state != ST_ERROR)
                x->have_event = 0;    /* errors are sticky: report them again */
            if (x->end_queued) {
                x->end_queued = 0;
                memset(&x->ev, 0, sizeof(x->ev));
                x->ev.type = XF_XML_STREAM_END;
                x->ev.span = x->end_span;
                x->have_event = 1;
            }
            return ev->type;
        }
        if (!x->p) {
            fail_outside(x, "resource-constraint", "no XML parser");
            continue;
        }
        if (x->state == ST_END) {
            memset(ev, 0, sizeof(*ev));
            return ev->type = XF_XML_NONE;
        }

        enum XML_Status st;
        if (x->suspended) {
            x->suspended = 0;
            st = XML_ResumeParser(x->p);
        } else {
            if (x->pos == x->len) {
                memset(ev, 0, sizeof(*ev));
                return ev->type = XF_XML_NONE;
            }
            if (x->fed < 2) {
                check_stream_start(x);
                if (x->state == ST_ERROR)
                    continue;
            }
            uint64_t lim = feed_limit(x);
            if (x->fed >= lim) {
                fail_outside(x, "policy-violation",
                             x->state == ST_HEADER ? "stream header too large"
                                                   : "first-level element too large");
                continue;
            }
            uint64_t to = xf_xmllex_feed_point(&x->lex, x->pushed, x->fed, lim);
            if (to <= x->fed) {
                memset(ev, 0, sizeof(*ev));
                return ev->type = XF_XML_NONE;   /* an incomplete token is held */
            }
            uint64_t n = to - x->fed;
            if (n > INT_MAX)
                n = INT_MAX;
            const char *chunk = x->buf + x->pos;
            x->cost += (x->fed - x->anchor) + n;
            x->pos += (size_t)n;
            x->fed += n;
            st = XML_Parse(x->p, chunk, (int)n, XML_FALSE);
        }
        if (st == XML_STATUS_OK) {
            /* Everything given is parsed but a trailing partial token, which expat
               re-scans on the next call. Outside handlers its byte index is "just
               past the last parse event", i.e. that token's start. */
            uint64_t at = cur_start(x->p);
            if (at > x->anchor && at <= x->fed)
                x->anchor = at;
        }

        if (st == XML_STATUS_SUSPENDED) {
            x->suspended = 1;     /* a handler recorded an event */
        } else if (st == XML_STATUS_ERROR) {
            enum XML_Error e = XML_GetErrorCode(x->p);
            if (x->state == ST_ERROR)
                ;                         /* a handler already said why */
            else if (e == XML_ERROR_INVALID_TOKEN && text_before_rsqb_error(x))
                fail_outside(x, "bad-format", "character data between first-level elements");
            else
                fail_outside(x, map_expat_error(x, e), XML_ErrorString(e));
        }
        /* XML_STATUS_OK: everything fed is parsed, so what expat still holds is an
           incomplete element (or token) starting at or after `boundary`. Bytes fed
           while scanning the header were not bounded by max_element: check here. */
        if (st == XML_STATUS_OK && x->state == ST_BODY && x->fed > feed_limit(x))
            fail_outside(x, "policy-violation", "first-level element too large");
    }
}

