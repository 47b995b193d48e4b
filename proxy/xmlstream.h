/*
 * xmlstream: incremental, namespace-aware scanner for XMPP streams (RFC 6120 §4, §11),
 * built on expat. It never assumes a header arrives in one read: bytes are pushed in
 * pieces of any size, and events come out one at a time with absolute byte offsets
 * (counted from the last reset), so the caller can slice its own buffer exactly —
 * e.g. replay the raw header bytes, or hand the bytes after </starttls> to TLS.
 *
 * Events, in order: one XF_XML_HEADER, then XF_XML_ELEMENT for every complete
 * first-level element, XF_XML_STREAM_END for </stream:stream>, or XF_XML_ERROR.
 * Whitespace between first-level elements is skipped silently (keepalives).
 * After an XF_XML_ERROR the scanner stays in error until reset.
 */
#ifndef XF_XMLSTREAM_H
#define XF_XMLSTREAM_H

#include <stddef.h>
#include <stdint.h>

#define XF_NS_STREAMS "http://etherx.jabber.org/streams"
#define XF_NS_CLIENT  "jabber:client"
#define XF_NS_SERVER  "jabber:server"
#define XF_NS_TLS     "urn:ietf:params:xml:ns:xmpp-tls"
#define XF_NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"

enum xf_xml_ns {
    XF_XML_NS_NONE = 0,     /* header declared no content namespace (RFC 6120 §4.8.2 MAY):
                               e.g. prefix-free <stream xmlns='http://etherx.jabber.org/streams'>;
                               first-level elements then carry their own xmlns */
    XF_XML_NS_CLIENT = 1,   /* default namespace jabber:client */
    XF_XML_NS_SERVER = 2,   /* default namespace jabber:server */
};

enum xf_xml_event_type {
    XF_XML_NONE = 0,        /* more input needed: what is held is an incomplete token */
    XF_XML_HEADER,          /* the <stream:stream ...> start tag is complete */
    XF_XML_ELEMENT,         /* a first-level element is complete */
    XF_XML_STREAM_END,      /* </stream:stream> */
    XF_XML_ERROR,           /* ev->error names the stream error condition */
};

#define XF_XML_MAX_CHILDREN 32
#define XF_XML_MAX_TEXT 4096     /* direct character data kept per first-level element */

typedef struct xf_xml_span {
    uint64_t start;          /* offset of the first byte ('<') */
    uint64_t end;            /* offset one past the last byte ('>') */
} xf_xml_span;

typedef struct xf_xml_child {
    char name[64];           /* local name */
    char ns[128];            /* namespace URI, "" if none */
    xf_xml_span span;
} xf_xml_child;

typedef struct xf_xml_event {
    enum xf_xml_event_type type;
    xf_xml_span span;        /* HEADER: the start tag incl. any XML declaration before it
                                (start = 0 always: everything before the start tag, i.e. the
                                declaration or whitespace, belongs to the header);
                                ELEMENT: the whole element, from '<' to the '>' of its end
                                tag (or of '/>'); STREAM_END: the end tag;
                                ERROR: {0, 0} */
    /* XF_XML_HEADER. Strings point into scanner memory, valid until the next call.
       NULL when the attribute is absent. */
    const char *to, *from, *id, *version, *lang;
    int ns;                  /* enum xf_xml_ns */
    int has_dialback_ns;     /* header declared xmlns:db='jabber:server:dialback' */
    /* XF_XML_ELEMENT: local name, namespace and direct children (up to 16). */
    char name[64];
    char ns_uri[128];
    xf_xml_child *children;  /* n_children entries in scanner memory, valid until the
                                next call (never NULL in a returned event). Kept out of
                                the event so that a scanner costs ~0.5 KB, not 7 KB. */
    int n_children;
    int children_truncated;  /* more than XF_XML_MAX_CHILDREN direct children: the list is
                                incomplete (callers stripping a child must not assume it
                                is absent). Names/namespaces too long for the arrays are
                                reported as "" so they never match a known name. */
    char type_attr[16];      /* the first-level element's unprefixed `type` attribute
                                (e.g. <db:result type='valid'/>, XEP-0220 §2.1.3); ""
                                when absent or longer than 15 bytes */
    /* The first-level element's unprefixed from / to / id attributes (stanza addressing,
       RFC 6120 §8.1; dialback, XEP-0220 §2.1), NULL when absent; and the character
       data directly inside it (not inside its children: a dialback key, a SASL
       payload), at most XF_XML_MAX_TEXT bytes, text_truncated set when there was more.
       All point into scanner memory, valid until the next call. */
    const char *attr_from, *attr_to, *attr_id;
    const char *text;        /* never NULL in an ELEMENT event; "" when none */
    size_t text_len;
    int text_truncated;
    /* XF_XML_ERROR: RFC 6120 §4.9.3 condition, e.g. "not-well-formed", "restricted-xml",
       "invalid-namespace", "bad-namespace-prefix", "unsupported-encoding",
       "policy-violation" (a limit was exceeded), "bad-format". Plus a log reason.
       Errors raised by the header itself (invalid-namespace, bad-format) still fill
       to/from/id/version/lang so the caller can write the response header first
       (RFC 6120 §4.9.1.2). */
    const char *error;
    const char *reason;
} xf_xml_event;

typedef struct xf_xml xf_xml;

/* max_header: bytes allowed before the header is complete (0 = no limit).
   max_element: bytes allowed for one first-level element (0 = no limit). */
xf_xml *xf_xml_new(size_t max_header, size_t max_element);
void xf_xml_free(xf_xml *x);
/* Change max_element (0 = no limit) for the elements that follow, e.g. once a stream
   is authenticated and stanzas may be larger than the pre-authentication limit. An
   element in progress is measured against the new limit from its own start. */
void xf_xml_set_max_element(xf_xml *x, size_t max_element);
/* Start a new stream (after STARTTLS, SASL success): offsets restart at 0. */
void xf_xml_reset(xf_xml *x);

/* Push bytes. The scanner keeps what it has not yet reported. Returns 0 or -1 (ENOMEM).
   Push does not parse (it only runs an O(len) lexer over the bytes): drain with
   xf_xml_next() until XF_XML_NONE after each push. Once NONE is returned, everything
   that can be reported from the bytes pushed has been; what is still held (in the
   scanner, not yet given to expat, or inside expat) is one incomplete token/element,
   bounded by max_header / max_element: a header or element that grows past its
   limit is refused (policy-violation) as soon as the byte over the limit is pushed,
   held or not. Held bytes do not change offsets or spans: they stay exact. After an
   error or STREAM_END pushed bytes are counted and dropped. */
int xf_xml_push(xf_xml *x, const char *data, size_t len);
/* Pull the next event; ev->type == XF_XML_NONE when more input is needed.
   Always returns ev->type. */
int xf_xml_next(xf_xml *x, xf_xml_event *ev);
/* Bytes pushed since the last reset. */
uint64_t xf_xml_offset(const xf_xml *x);
/* Scan work since the last reset, in bytes: for every XML_Parse() call, the bytes
   given to it plus the bytes of the partial token expat already held, which it
   re-scans from the token's start (reparse deferral is off). The held part is
   measured from the start of that token as expat reports it (its byte index after
   the previous call), so this is an upper bound of the bytes expat tokenizes.
   The scanner keeps it within a small multiple of the bytes pushed however they are
   split (tests hold it to that); feeding expat every push would make it quadratic
   for a token trickled a byte at a time. */
uint64_t xf_xml_scan_cost(const xf_xml *x);

/* ---- writers (proxy/xmlwrite.c): all return bytes written (excluding NUL), or -1 if
   cap is too small. ---- */

/* Escape s for an attribute value or character data (&, <, >, ', "). */
int xf_xml_escape(char *out, size_t cap, const char *s);
/* A response header: <?xml version='1.0'?><stream:stream from= to= id= version='1.0'
   xml:lang='en' xmlns=NS xmlns:stream=...>. from/to/id may be NULL or "" (omitted,
   except from which is written as from='' when empty). ns: enum xf_xml_ns. */
int xf_xml_write_header(char *out, size_t cap, int ns, const char *from, const char *to,
                        const char *id, const char *version);
/* <stream:error><COND xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>[<text ...>TEXT</text>]
   </stream:error></stream:stream>. text may be NULL. */
int xf_xml_write_error(char *out, size_t cap, const char *condition, const char *text);
/* A fresh unpredictable stream id (RFC 6120 §4.7.3): >=128 bits, base64url, NUL-terminated;
   out must hold at least 32 bytes. Uses the OS CSPRNG. */
int xf_xml_new_id(char *out, size_t cap);

#endif
