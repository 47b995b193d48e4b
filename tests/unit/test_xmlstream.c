/*
 * Unit tests for proxy/xmlstream.c: the incremental XMPP stream scanner and writers.
 * Covers the scanner cases of spec digest §10 items 1–7 (RFC 6120 §4, §5, §11).
 * The central property: however the bytes are split, the same events come out with
 * the same absolute offsets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "proxy/xmlstream.h"

#define MAX_EVENTS 64

/* A copy of one event that outlives the scanner call. */
struct rec {
    int type;
    uint64_t start, end;
    char to[256], from[256], id[256], version[64], lang[64];
    int has_to, has_from, has_id, has_version, has_lang;
    int ns, db;
    char name[64], ns_uri[128];
    int n_children, truncated;
    xf_xml_child children[XF_XML_MAX_CHILDREN];
    char error[64];
};

struct run {
    struct rec ev[MAX_EVENTS];
    int n;
};

static void copy_opt(char *dst, size_t cap, int *has, const char *src)
{
    *has = src != NULL;
    snprintf(dst, cap, "%s", src ? src : "");
}

static void record(struct run *r, const xf_xml_event *e)
{
    assert_true(r->n < MAX_EVENTS);
    struct rec *c = &r->ev[r->n++];
    memset(c, 0, sizeof(*c));
    c->type = e->type;
    c->start = e->span.start;
    c->end = e->span.end;
    if (e->type == XF_XML_HEADER || e->type == XF_XML_ERROR) {
        copy_opt(c->to, sizeof(c->to), &c->has_to, e->to);
        copy_opt(c->from, sizeof(c->from), &c->has_from, e->from);
        copy_opt(c->id, sizeof(c->id), &c->has_id, e->id);
        copy_opt(c->version, sizeof(c->version), &c->has_version, e->version);
        copy_opt(c->lang, sizeof(c->lang), &c->has_lang, e->lang);
        c->ns = e->ns;
        c->db = e->has_dialback_ns;
    }
    if (e->type == XF_XML_ELEMENT) {
        memcpy(c->name, e->name, sizeof(c->name));
        memcpy(c->ns_uri, e->ns_uri, sizeof(c->ns_uri));
        c->n_children = e->n_children;
        c->truncated = e->children_truncated;
        if (e->n_children > 0)   /* the scanner holds only n_children entries */
            memcpy(c->children, e->children, (size_t)e->n_children * sizeof(c->children[0]));
    }
    if (e->type == XF_XML_ERROR)
        snprintf(c->error, sizeof(c->error), "%s", e->error ? e->error : "?");
}

/* Drain all events; stop after an error (it is sticky) or stream end. Returns 1 if
   the scan is finished (error/end). */
static int drain(xf_xml *x, struct run *r, uint64_t pushed)
{
    xf_xml_event e;
    for (;;) {
        int t = xf_xml_next(x, &e);
        if (t == XF_XML_NONE)
            return 0;
        record(r, &e);
        /* invariants: events never reach past what was pushed */
        assert_true(e.span.start <= e.span.end);
        assert_true(e.span.end <= pushed);
        if (t == XF_XML_ERROR) {
            /* sticky */
            xf_xml_event again;
            assert_int_equal(xf_xml_next(x, &again), XF_XML_ERROR);
            assert_string_equal(again.error, e.error);
            return 1;
        }
        if (t == XF_XML_STREAM_END)
            return 1;
    }
}

/* Scan `s` delivered in pieces cut at the sorted offsets cuts[0..ncuts). */
static void scan_cuts(const char *s, size_t len, const size_t *cuts, int ncuts,
                      size_t max_header, size_t max_element, struct run *r)
{
    xf_xml *x = xf_xml_new(max_header, max_element);
    assert_non_null(x);
    memset(r, 0, sizeof(*r));
    size_t at = 0;
    for (int i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        if (to < at)
            to = at;
        assert_int_equal(xf_xml_push(x, s + at, to - at), 0);
        at = to;
        assert_int_equal(xf_xml_offset(x), at);
        if (drain(x, r, at))
            break;
    }
    xf_xml_free(x);
}

static void scan(const char *s, struct run *r)
{
    scan_cuts(s, strlen(s), NULL, 0, 0, 0, r);
}

static void scan_bytewise(const char *s, size_t max_header, size_t max_element,
                          struct run *r)
{
    size_t len = strlen(s);
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    scan_cuts(s, len, cuts, (int)len, max_header, max_element, r);
    free(cuts);
}

static void assert_runs_equal(const struct run *a, const struct run *b)
{
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++)
        assert_memory_equal(&a->ev[i], &b->ev[i], sizeof(a->ev[i]));
}

/* Scan whole, byte-by-byte, at every single split point, and (for short inputs) at
   every pair of split points; all must agree exactly. Returns the whole-run. */
static void scan_all_ways(const char *s, struct run *whole, int pairs)
{
    size_t len = strlen(s);
    struct run *r = malloc(sizeof(*r));
    assert_non_null(r);
    scan(s, whole);
    scan_bytewise(s, 0, 0, r);
    assert_runs_equal(whole, r);
    for (size_t k = 0; k <= len; k++) {
        scan_cuts(s, len, &k, 1, 0, 0, r);
        assert_runs_equal(whole, r);
    }
    if (pairs) {
        for (size_t i = 0; i <= len; i++) {
            for (size_t j = i; j <= len; j++) {
                size_t c[2] = { i, j };
                scan_cuts(s, len, c, 2, 0, 0, r);
                assert_runs_equal(whole, r);
            }
        }
    }
    free(r);
}

static void expect_error(const char *s, const char *cond)
{
    struct run r;
    scan(s, &r);
    assert_true(r.n >= 1);
    assert_int_equal(r.ev[r.n - 1].type, XF_XML_ERROR);
    assert_string_equal(r.ev[r.n - 1].error, cond);
    /* the same verdict byte-by-byte */
    struct run b;
    scan_bytewise(s, 0, 0, &b);
    assert_true(b.n >= 1);
    assert_int_equal(b.ev[b.n - 1].type, XF_XML_ERROR);
    assert_string_equal(b.ev[b.n - 1].error, cond);
}

#define S2S_HDR_I                                                                  \
    "<?xml version='1.0'?><stream:stream from='example.net' to='im.example.com' " \
    "version='1.0' xml:lang='en' xmlns='jabber:server' "                          \
    "xmlns:stream='http://etherx.jabber.org/streams' "                            \
    "xmlns:db='jabber:server:dialback'>"

#define C2S_HDR                                                                    \
    "<?xml version='1.0'?><stream:stream to='im.example.com' version='1.0' "      \
    "xml:lang='en' xmlns='jabber:client' "                                        \
    "xmlns:stream='http://etherx.jabber.org/streams'>"

#define FEATURES                                                                   \
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"         \
    "<required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" \
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"

#define STARTTLS "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"

/* ---- §10.1: the RFC 6120 §4.1 example header, any delivery ---- */

static void test_header_rfc_example(void **state)
{
    (void)state;
    struct run r;
    scan(S2S_HDR_I, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_int_equal(r.ev[0].start, 0);
    assert_int_equal(r.ev[0].end, strlen(S2S_HDR_I));
    assert_string_equal(r.ev[0].to, "im.example.com");
    assert_string_equal(r.ev[0].from, "example.net");
    assert_false(r.ev[0].has_id);
    assert_string_equal(r.ev[0].version, "1.0");
    assert_string_equal(r.ev[0].lang, "en");
    assert_int_equal(r.ev[0].ns, XF_XML_NS_SERVER);
    assert_int_equal(r.ev[0].db, 1);
}

static void test_every_split_point(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        S2S_HDR_I,
        C2S_HDR FEATURES " " STARTTLS,
        C2S_HDR "\n<message to='a@b'><body>x</body></message>  </stream:stream>",
        "<stream xmlns='http://etherx.jabber.org/streams' to='x'><a xmlns='jabber:client'/>",
        ("<?xml version='1.0'?><stream:stream to='x' xmlns='jabber:client' "
         "xmlns:stream='http://etherx.jabber.org/streams'><!-- no -->"),
    };
    struct run whole;
    for (size_t i = 0; i < sizeof(inputs) / sizeof(*inputs); i++) {
        scan_all_ways(inputs[i], &whole, 0);
        assert_true(whole.n >= 1);
    }
    /* every pair of split points for the short c2s header + starttls */
    scan_all_ways(C2S_HDR STARTTLS, &whole, 1);
    assert_int_equal(whole.n, 2);
}

static void test_split_inside_utf8_attribute(void **state)
{
    (void)state;
    /* to='bücher.example' and a 4-byte character in from: every split point lands
       inside a multi-byte sequence somewhere. */
    const char *s = "<?xml version='1.0'?><stream:stream to='b\xc3\xbc" "cher.example' "
                    "from='\xf0\x9f\x98\x80.example' xmlns='jabber:server' "
                    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
    struct run whole;
    scan_all_ways(s, &whole, 1);
    assert_int_equal(whole.n, 1);
    assert_int_equal(whole.ev[0].type, XF_XML_HEADER);
    assert_string_equal(whole.ev[0].to, "b\xc3\xbc" "cher.example");
    assert_string_equal(whole.ev[0].from, "\xf0\x9f\x98\x80.example");
    /* an invalid UTF-8 sequence is not well-formed */
    expect_error("<stream:stream to='b\xc3' xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams'>",
                 "not-well-formed");
}

/* ---- §10.2: the XML declaration ---- */

static void test_no_xml_declaration(void **state)
{
    (void)state;
    const char *s = "<stream:stream to='im.example.com' version='1.0' xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams'>";
    struct run r;
    scan_all_ways(s, &r, 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_int_equal(r.ev[0].start, 0);
    assert_int_equal(r.ev[0].end, strlen(s));
    assert_int_equal(r.ev[0].ns, XF_XML_NS_CLIENT);
    /* without a declaration, leading whitespace is legal XML; it belongs to the header */
    scan("\n <stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", &r);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_int_equal(r.ev[0].start, 0);
}

static void test_declaration_after_restart(void **state)
{
    (void)state;
    /* First stream up to <starttls/>, then TLS-ish garbage the caller hands to TLS,
       then reset and a fresh header with its own declaration. */
    const char *first = C2S_HDR STARTTLS "\x16\x03\x01\x02\x00";
    xf_xml *x = xf_xml_new(4096, 65536);
    assert_non_null(x);
    assert_int_equal(xf_xml_push(x, first, strlen(first)), 0);
    xf_xml_event e;
    assert_int_equal(xf_xml_next(x, &e), XF_XML_HEADER);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_ELEMENT);
    assert_string_equal(e.name, "starttls");
    assert_string_equal(e.ns_uri, XF_NS_TLS);
    assert_int_equal(e.span.start, strlen(C2S_HDR));
    /* §5.4.3.3: the bytes after <starttls/> are the caller's, untouched */
    assert_int_equal(e.span.end, strlen(C2S_HDR STARTTLS));
    xf_xml_reset(x);
    assert_int_equal(xf_xml_offset(x), 0);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_NONE);   /* garbage forgotten */
    assert_int_equal(xf_xml_push(x, C2S_HDR, strlen(C2S_HDR)), 0);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_HEADER);
    assert_int_equal(e.span.start, 0);
    assert_int_equal(e.span.end, strlen(C2S_HDR));
    assert_string_equal(e.to, "im.example.com");
    assert_int_equal(xf_xml_next(x, &e), XF_XML_NONE);
    /* a reset also clears a sticky error */
    assert_int_equal(xf_xml_push(x, "<!--x-->", 8), 0);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_ERROR);
    xf_xml_reset(x);
    assert_int_equal(xf_xml_push(x, C2S_HDR, strlen(C2S_HDR)), 0);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_HEADER);
    xf_xml_free(x);
}

static void test_whitespace_or_bom_before_declaration(void **state)
{
    (void)state;
    expect_error(" " C2S_HDR, "not-well-formed");
    expect_error("\n" C2S_HDR, "not-well-formed");
    expect_error("\xef\xbb\xbf" C2S_HDR, "not-well-formed");
}

static void test_encodings(void **state)
{
    (void)state;
    expect_error("<?xml version='1.0' encoding='UTF-16'?><stream:stream to='x' "
                 "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
                 "unsupported-encoding");
    expect_error("<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream/>",
                 "unsupported-encoding");
    /* real UTF-16 bytes, with and without BOM */
    static const char le_bom[] = "\xff\xfe<\0?\0x\0";
    static const char le[] = "<\0?\0x\0";
    static const char be[] = "\0<\0?";
    const char *const u16[] = { le_bom, le, be };
    const size_t u16_len[] = { sizeof(le_bom) - 1, sizeof(le) - 1, sizeof(be) - 1 };
    for (int i = 0; i < 3; i++) {
        for (size_t k = 0; k <= u16_len[i]; k++) {
            struct run r;
            scan_cuts(u16[i], u16_len[i], &k, 1, 0, 0, &r);
            assert_int_equal(r.n, 1);
            assert_string_equal(r.ev[0].error, "unsupported-encoding");
        }
    }
    /* encoding names are case-insensitive */
    struct run r;
    scan("<?xml version='1.0' encoding='utf-8'?><stream:stream to='x' xmlns='jabber:client' "
         "xmlns:stream='http://etherx.jabber.org/streams'>", &r);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
}

static void test_standalone(void **state)
{
    (void)state;
    /* Choice: standalone='no' is restricted XML (it only matters with a DTD). */
    expect_error("<?xml version='1.0' standalone='no'?><stream:stream to='x' "
                 "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
                 "restricted-xml");
    struct run r;
    scan("<?xml version='1.0' standalone='yes'?><stream:stream to='x' xmlns='jabber:client' "
         "xmlns:stream='http://etherx.jabber.org/streams'>", &r);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
}

/* ---- §10.3: prefixes and namespaces ---- */

static void test_prefix_free_header(void **state)
{
    (void)state;
    const char *s = "<?xml version='1.0'?><stream xmlns='http://etherx.jabber.org/streams' "
                    "to='im.example.com' version='1.0'>"
                    "<message xmlns='jabber:client' to='a@b'/>";
    struct run r;
    scan_all_ways(s, &r, 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_int_equal(r.ev[0].ns, XF_XML_NS_NONE);
    assert_string_equal(r.ev[0].to, "im.example.com");
    assert_int_equal(r.ev[1].type, XF_XML_ELEMENT);
    assert_string_equal(r.ev[1].name, "message");
    assert_string_equal(r.ev[1].ns_uri, "jabber:client");
    /* </stream> without prefix */
    scan("<stream xmlns='http://etherx.jabber.org/streams'></stream>", &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.ev[1].type, XF_XML_STREAM_END);
}

static void test_foobar_prefix(void **state)
{
    (void)state;
    const char *s = "<foobar:stream xmlns:foobar='http://etherx.jabber.org/streams' "
                    "xmlns='jabber:client' to='x'><foobar:features/></foobar:stream>";
    struct run r;
    scan_all_ways(s, &r, 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_int_equal(r.ev[0].ns, XF_XML_NS_CLIENT);
    assert_string_equal(r.ev[1].name, "features");
    assert_string_equal(r.ev[1].ns_uri, XF_NS_STREAMS);
    assert_int_equal(r.ev[2].type, XF_XML_STREAM_END);
}

static void test_wrong_namespaces(void **state)
{
    (void)state;
    /* wrong stream namespace: the header attributes are still reported so the
       caller can send a full response header first (§4.9.1.2) */
    struct run r;
    scan("<stream:stream to='im.example.com' xmlns='jabber:client' "
         "xmlns:stream='http://wrong.example/streams'>", &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].error, "invalid-namespace");
    assert_string_equal(r.ev[0].to, "im.example.com");
    expect_error("<stream xmlns='jabber:client' to='x'>", "invalid-namespace");
    expect_error("<stream:stream to='x' xmlns='jabber:foo' "
                 "xmlns:stream='http://etherx.jabber.org/streams'>", "invalid-namespace");
    /* the content namespace may not be the stream namespace (§4.8.2) */
    expect_error("<stream:stream xmlns='http://etherx.jabber.org/streams' "
                 "xmlns:stream='http://etherx.jabber.org/streams'>", "invalid-namespace");
    expect_error("<stream:stream to='x' xmlns='jabber:client'>", "bad-namespace-prefix");
    expect_error("<stream:foo xmlns:stream='http://etherx.jabber.org/streams'>", "bad-format");
    /* a prefixed header without a default namespace declares no content namespace */
    scan("<stream:stream to='x' xmlns:stream='http://etherx.jabber.org/streams'>", &r);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_int_equal(r.ev[0].ns, XF_XML_NS_NONE);
    /* an unbound prefix deeper in the stream is not well-formed */
    expect_error(C2S_HDR "<x:message/>", "not-well-formed");
}

/* ---- §10.4, §10.5: attributes passed through verbatim ---- */

static void test_header_attributes(void **state)
{
    (void)state;
    struct run r;
    scan("<stream:stream xmlns='jabber:client' "
         "xmlns:stream='http://etherx.jabber.org/streams'>", &r);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_false(r.ev[0].has_to);
    assert_false(r.ev[0].has_from);
    assert_false(r.ev[0].has_version);   /* absent version = 0.9, caller decides */
    assert_false(r.ev[0].has_lang);
    assert_int_equal(r.ev[0].db, 0);

    scan("<stream:stream to='IM.Example.COM.' version='1.10' id='abc' "
         "xml:lang='de-CH' xmlns='jabber:client' "
         "xmlns:stream='http://etherx.jabber.org/streams'>", &r);
    assert_string_equal(r.ev[0].to, "IM.Example.COM.");
    assert_string_equal(r.ev[0].version, "1.10");
    assert_string_equal(r.ev[0].id, "abc");   /* initiator id reported; caller ignores */
    assert_string_equal(r.ev[0].lang, "de-CH");

    scan("<stream:stream to='x' version='01.0' xmlns='jabber:server' "
         "xmlns:stream='http://etherx.jabber.org/streams' xmlns:dbx='jabber:server:dialback'>",
         &r);
    assert_string_equal(r.ev[0].version, "01.0");
    assert_int_equal(r.ev[0].db, 1);
    /* entity references in attributes are decoded */
    scan("<stream:stream to='a&amp;b' xmlns='jabber:server' "
         "xmlns:stream='http://etherx.jabber.org/streams'>", &r);
    assert_string_equal(r.ev[0].to, "a&b");
}

/* ---- §10.6: restricted XML (RFC 6120 §11.1) ---- */

static void test_restricted_xml(void **state)
{
    (void)state;
    expect_error("<?xml version='1.0'?><!-- hi -->" C2S_HDR, "restricted-xml");
    expect_error(C2S_HDR "<!-- hi -->", "restricted-xml");
    expect_error(C2S_HDR "<message><!-- hi --></message>", "restricted-xml");
    expect_error(C2S_HDR "<?foo bar?>", "restricted-xml");
    expect_error("<?xml version='1.0'?><?xml-stylesheet href='x'?>" C2S_HDR, "restricted-xml");
    expect_error("<?xml version='1.0'?><!DOCTYPE stream:stream>" C2S_HDR, "restricted-xml");
    expect_error("<?xml version='1.0'?><!DOCTYPE s [<!ENTITY e 'x'>]>" C2S_HDR,
                 "restricted-xml");
    expect_error("<!DOCTYPE s SYSTEM 'file:///etc/passwd'>" C2S_HDR, "restricted-xml");
    /* billion laughs never gets going: the DOCTYPE is refused at its start */
    expect_error("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
                 "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
                 "<lolz>&lol2;</lolz>", "restricted-xml");
    /* non-predefined entity */
    expect_error(C2S_HDR "<message><body>&foo;</body></message>", "restricted-xml");
    /* predefined and character references are fine */
    struct run r;
    scan(C2S_HDR "<message><body>&lt;&amp;&#x41;&#66;</body></message>", &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.ev[1].type, XF_XML_ELEMENT);
}

static void test_not_well_formed(void **state)
{
    (void)state;
    expect_error(C2S_HDR "<message></iq>", "not-well-formed");
    expect_error("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='1' a='2'>",
                 "not-well-formed");
    expect_error("hello", "not-well-formed");
    /* non-whitespace text between first-level elements: bad-format (documented) */
    expect_error(C2S_HDR "hello", "bad-format");
    expect_error(C2S_HDR "<a/>x<b/>", "bad-format");
    /* "]]>" in such text: the same verdict whether or not the text before it came in
       the same expat call (fuzzer find) */
    expect_error(C2S_HDR "]>]>,]>]]></m>", "bad-format");
    expect_error(C2S_HDR "<a/>x]]>", "bad-format");
    expect_error(C2S_HDR "<a/> \t]]>", "not-well-formed");
    expect_error(C2S_HDR "<a>x]]></a>", "not-well-formed");
}

/* ---- limits ---- */

static void test_oversize_header(void **state)
{
    (void)state;
    size_t len = strlen(C2S_HDR);
    struct run r;
    /* exactly at the limit: fine, even with more bytes pipelined behind it */
    scan_cuts(C2S_HDR STARTTLS, strlen(C2S_HDR STARTTLS), NULL, 0, len, 0, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_int_equal(r.ev[1].type, XF_XML_ELEMENT);
    /* one byte short: policy-violation */
    scan_cuts(C2S_HDR, len, NULL, 0, len - 1, 0, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].error, "policy-violation");
    /* detected while the header is still incomplete: push limit+1 bytes of an
       endless attribute, byte by byte; the error comes at byte limit+1 */
    xf_xml *x = xf_xml_new(100, 1000);
    assert_non_null(x);
    const char *head = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='";
    assert_int_equal(xf_xml_push(x, head, strlen(head)), 0);
    xf_xml_event e;
    assert_int_equal(xf_xml_next(x, &e), XF_XML_NONE);
    int pushed = (int)strlen(head);
    while (xf_xml_next(x, &e) == XF_XML_NONE) {
        assert_true(pushed <= 100);
        assert_int_equal(xf_xml_push(x, "a", 1), 0);
        pushed++;
    }
    assert_int_equal(e.type, XF_XML_ERROR);
    assert_string_equal(e.error, "policy-violation");
    assert_int_equal(pushed, 101);
    xf_xml_free(x);
}

static void test_oversize_element(void **state)
{
    (void)state;
    xf_xml *x = xf_xml_new(4096, 200);
    assert_non_null(x);
    xf_xml_event e;
    assert_int_equal(xf_xml_push(x, C2S_HDR, strlen(C2S_HDR)), 0);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_HEADER);
    /* keepalives far beyond max_element are fine (§4.6.1) */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(xf_xml_push(x, "   \n ", 5), 0);
        assert_int_equal(xf_xml_next(x, &e), XF_XML_NONE);
    }
    /* a 200-byte element passes */
    char el[256];
    memset(el, 'a', sizeof(el));
    memcpy(el, "<message><body>", 15);
    memcpy(el + 200 - 17, "</body></message>", 17);
    assert_int_equal(xf_xml_push(x, el, 200), 0);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_ELEMENT);
    assert_int_equal(e.span.end - e.span.start, 200);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_NONE);
    /* an endless one is cut off once it passes 200 bytes, long before it ends */
    assert_int_equal(xf_xml_push(x, "<message><body>", 15), 0);
    int n = 15;
    while (xf_xml_next(x, &e) == XF_XML_NONE) {
        assert_true(n <= 200);
        assert_int_equal(xf_xml_push(x, "0123456789", 10), 0);
        n += 10;
    }
    assert_int_equal(e.type, XF_XML_ERROR);
    assert_string_equal(e.error, "policy-violation");
    xf_xml_free(x);

    /* one big push holding a too-long element is refused too */
    struct run r;
    char big[600];
    memset(big, 'b', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    memcpy(big, C2S_HDR, strlen(C2S_HDR));
    memcpy(big + strlen(C2S_HDR), "<m>", 3);
    scan_cuts(big, strlen(big), NULL, 0, 4096, 200, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ev[1].error, "policy-violation");
}

/* ---- §10.7 and §1.3: STARTTLS and features ---- */

static void test_pipelined_after_starttls(void **state)
{
    (void)state;
    /* Plaintext injected after <starttls/> (the classic STARTTLS injection) must not
       be interpreted by the scanner before the caller sees the starttls element. */
    const char *s = C2S_HDR STARTTLS "<message to='evil'/>";
    size_t tls_end = strlen(C2S_HDR STARTTLS);
    for (size_t k = 0; k <= strlen(s); k++) {
        xf_xml *x = xf_xml_new(4096, 4096);
        assert_non_null(x);
        assert_int_equal(xf_xml_push(x, s, k), 0);
        xf_xml_event e;
        int t, seen = 0;
        while ((t = xf_xml_next(x, &e)) != XF_XML_NONE) {
            assert_int_not_equal(t, XF_XML_ERROR);
            if (t == XF_XML_ELEMENT) {
                assert_string_equal(e.name, "starttls");
                assert_int_equal(e.span.end, tls_end);
                seen = 1;
                break;
            }
        }
        if (!seen) {
            assert_int_equal(xf_xml_push(x, s + k, strlen(s) - k), 0);
            while ((t = xf_xml_next(x, &e)) != XF_XML_ELEMENT)
                assert_int_not_equal(t, XF_XML_NONE);
            assert_string_equal(e.name, "starttls");
            assert_int_equal(e.span.end, tls_end);
        }
        /* the caller now resets; the injected bytes are gone */
        xf_xml_reset(x);
        assert_int_equal(xf_xml_next(x, &e), XF_XML_NONE);
        xf_xml_free(x);
    }
}

static void test_features_children(void **state)
{
    (void)state;
    const char *s = "<stream:stream from='b.example' id='x' version='1.0' xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams'>" FEATURES;
    struct run r;
    scan_all_ways(s, &r, 0);
    assert_int_equal(r.n, 2);
    const struct rec *f = &r.ev[1];
    assert_int_equal(f->type, XF_XML_ELEMENT);
    assert_string_equal(f->name, "features");
    assert_string_equal(f->ns_uri, XF_NS_STREAMS);
    assert_int_equal(f->end - f->start, strlen(FEATURES));
    assert_int_equal(f->n_children, 2);
    assert_false(f->truncated);
    assert_string_equal(f->children[0].name, "starttls");
    assert_string_equal(f->children[0].ns, XF_NS_TLS);
    assert_string_equal(f->children[1].name, "mechanisms");
    assert_string_equal(f->children[1].ns, "urn:ietf:params:xml:ns:xmpp-sasl");
    /* cut the starttls child out, as the proxy does with a backend's features */
    char cut[512];
    size_t a = f->children[0].span.start, b = f->children[0].span.end;
    size_t n = 0;
    memcpy(cut, s + f->start, a - f->start);
    n = a - f->start;
    memcpy(cut + n, s + b, f->end - b);
    n += f->end - b;
    cut[n] = '\0';
    assert_string_equal(cut, "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:"
                             "xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"
                             "</stream:features>");
    /* start+end tag form: the span ends after the end tag's '>' */
    const char *s2 = C2S_HDR "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls>X";
    scan_all_ways(s2, &r, 0);
    assert_int_equal(r.ev[1].type, XF_XML_ELEMENT);
    assert_int_equal(r.ev[1].end, strlen(s2) - 1);
    assert_int_equal(r.ev[2].type, XF_XML_ERROR);   /* the 'X' */
}

/* The first-level element's `type` attribute (the proxy ends pre-auth policing only on
   <db:result type='valid'/>, XEP-0220 §2.1.3): reported per element, "" when absent,
   prefixed or too long; children's attributes do not leak into it. Fed in one piece. */
static void test_element_type_attr(void **state)
{
    (void)state;
    const char *s = S2S_HDR_I
        "<db:result from='a.example' to='b.example' type='valid'/>"
        "<db:result type='invalid'><error type='cancel'/></db:result>"
        "<message><body type='valid'/></message>"
        "<iq x:type='valid' xmlns:x='urn:x'/>"
        "<iq type='0123456789abcdefg'/>";
    static const char *want[] = { "valid", "invalid", "", "", "" };
    xf_xml *x = xf_xml_new(0, 0);
    assert_non_null(x);
    assert_int_equal(xf_xml_push(x, s, strlen(s)), 0);
    xf_xml_event e;
    assert_int_equal(xf_xml_next(x, &e), XF_XML_HEADER);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(xf_xml_next(x, &e), XF_XML_ELEMENT);
        assert_string_equal(e.type_attr, want[i]);
    }
    assert_int_equal(xf_xml_next(x, &e), XF_XML_NONE);
    xf_xml_free(x);
}

/* First-level element addressing and direct text (dialback keys, SASL payloads),
   delivered byte by byte so a split anywhere is covered. */
static void test_element_attrs_and_text(void **state)
{
    (void)state;
    const char *s = S2S_HDR_I
        "<db:result from='a.example' to='b.example'>\n  K3Y&amp;1 \n</db:result>"
        "<db:verify from='b.example' to='a.example' id='S&apos;ID'>k2</db:verify>"
        "<message from='u@a.example/r' to='v@b.example'><body>not direct</body>x</message>"
        "<presence/>"
        "<db:result x:from='evil' xmlns:x='urn:x' to='c.example'/>";
    struct { const char *from, *to, *id, *text; } want[] = {
        { "a.example", "b.example", NULL, "\n  K3Y&1 \n" },
        { "b.example", "a.example", "S'ID", "k2" },
        { "u@a.example/r", "v@b.example", NULL, "x" },
        { NULL, NULL, NULL, "" },
        { NULL, "c.example", NULL, "" },     /* a prefixed from is not the from */
    };
    xf_xml *x = xf_xml_new(0, 0);
    assert_non_null(x);
    xf_xml_event e;
    int got = 0, header = 0;
    for (size_t i = 0; s[i]; i++) {
        assert_int_equal(xf_xml_push(x, s + i, 1), 0);
        while (xf_xml_next(x, &e) != XF_XML_NONE) {
            if (e.type == XF_XML_HEADER) {
                header++;
                continue;
            }
            assert_int_equal(e.type, XF_XML_ELEMENT);
            assert_true(got < 5);
#define CHECK_OPT(field, w) do { if ((w) == NULL) assert_null(field); \
                                 else assert_string_equal(field, (w)); } while (0)
            CHECK_OPT(e.attr_from, want[got].from);
            CHECK_OPT(e.attr_to, want[got].to);
            CHECK_OPT(e.attr_id, want[got].id);
            assert_string_equal(e.text, want[got].text);
            assert_int_equal(e.text_len, strlen(want[got].text));
            assert_int_equal(e.text_truncated, 0);
            got++;
        }
    }
    assert_int_equal(header, 1);
    assert_int_equal(got, 5);
    xf_xml_free(x);

    /* text beyond XF_XML_MAX_TEXT is cut and flagged; the next element starts clean */
    size_t big = XF_XML_MAX_TEXT + 100;
    char *doc = malloc(big + 512);
    assert_non_null(doc);
    int n = sprintf(doc, "%s<db:result from='a' to='b'>", S2S_HDR_I);
    memset(doc + n, 'k', big);
    n += (int)big;
    n += sprintf(doc + n, "</db:result><db:result from='c' to='d'>z</db:result>");
    x = xf_xml_new(0, 0);
    assert_non_null(x);
    assert_int_equal(xf_xml_push(x, doc, (size_t)n), 0);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_HEADER);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_ELEMENT);
    assert_int_equal(e.text_len, XF_XML_MAX_TEXT);
    assert_int_equal(e.text_truncated, 1);
    assert_int_equal(xf_xml_next(x, &e), XF_XML_ELEMENT);
    assert_string_equal(e.attr_from, "c");
    assert_string_equal(e.text, "z");
    assert_int_equal(e.text_truncated, 0);
    xf_xml_free(x);
    free(doc);
}

static void test_many_children(void **state)
{
    (void)state;
    char s[4096];
    int n = snprintf(s, sizeof(s), "%s<stream:features>", C2S_HDR);
    for (int i = 0; i < XF_XML_MAX_CHILDREN + 4; i++)
        n += snprintf(s + n, sizeof(s) - (size_t)n, "<f%d xmlns='urn:x'/>", i);
    snprintf(s + n, sizeof(s) - (size_t)n, "</stream:features>");
    struct run r;
    scan(s, &r);
    assert_int_equal(r.ev[1].n_children, XF_XML_MAX_CHILDREN);
    assert_true(r.ev[1].truncated);
    char last[16];
    snprintf(last, sizeof(last), "f%d", XF_XML_MAX_CHILDREN - 1);
    assert_string_equal(r.ev[1].children[XF_XML_MAX_CHILDREN - 1].name, last);
}

static void test_keepalives_and_stream_end(void **state)
{
    (void)state;
    const char *s = C2S_HDR " \n\t\r <db:result xmlns:db='jabber:server:dialback' from='a' "
                    "to='b'>KEY</db:result> <iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/>"
                    "</iq>   </stream:stream>";
    struct run r;
    scan_all_ways(s, &r, 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.ev[1].type, XF_XML_ELEMENT);
    assert_string_equal(r.ev[1].name, "result");
    assert_string_equal(r.ev[1].ns_uri, "jabber:server:dialback");
    assert_memory_equal(s + r.ev[1].start, "<db:result", 10);
    assert_memory_equal(s + r.ev[1].end - 12, "</db:result>", 12);
    assert_string_equal(r.ev[2].name, "iq");
    assert_string_equal(r.ev[2].ns_uri, "jabber:client");
    assert_int_equal(r.ev[2].n_children, 1);
    assert_string_equal(r.ev[2].children[0].name, "ping");
    assert_int_equal(r.ev[3].type, XF_XML_STREAM_END);
    assert_int_equal(r.ev[3].end, strlen(s));
    assert_int_equal(r.ev[3].start, strlen(s) - strlen("</stream:stream>"));
}

/* Regression (fuzzer): an empty root ends in the same expat token as the header. */
static void test_empty_root(void **state)
{
    (void)state;
    const char *s = "<stream:stream to='x' xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams'/>";
    struct run r;
    scan_all_ways(s, &r, 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_int_equal(r.ev[0].end, strlen(s));
    assert_int_equal(r.ev[1].type, XF_XML_STREAM_END);
    assert_int_equal(r.ev[1].end, strlen(s));
}

/* Regression: a complete oversize element fed together with the header (bounded
   only by max_header at that point) is still refused, never reported. */
static void test_oversize_element_with_header(void **state)
{
    (void)state;
    char s[1024];
    char body[301];
    memset(body, 'x', 300);
    body[300] = '\0';
    snprintf(s, sizeof(s), "%s<message><body>%s</body></message>", C2S_HDR, body);
    struct run r;
    scan_cuts(s, strlen(s), NULL, 0, 4096, 200, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_string_equal(r.ev[1].error, "policy-violation");
}

/* ---- issue 6 §1: split headers come out at once, and trickling stays linear ---- */

/* The user-facing bug: with expat's reparse deferral on (Debian 12's current expat
   2.5.0-1+deb12u5, expat >= 2.6), a header that arrives in two segments was not
   reported until more bytes came. It must come right after the second segment, and
   nothing may come after the first. */
static void test_split_header_reported_at_once(void **state)
{
    (void)state;
    static const char *const hdrs[] = { C2S_HDR, S2S_HDR_I };
    for (size_t h = 0; h < sizeof(hdrs) / sizeof(*hdrs); h++) {
        size_t len = strlen(hdrs[h]);
        for (size_t k = 1; k < len; k++) {
            xf_xml *x = xf_xml_new(8192, 8192);
            assert_non_null(x);
            xf_xml_event e;
            assert_int_equal(xf_xml_push(x, hdrs[h], k), 0);
            assert_int_equal(xf_xml_next(x, &e), XF_XML_NONE);
            assert_int_equal(xf_xml_push(x, hdrs[h] + k, len - k), 0);
            assert_int_equal(xf_xml_next(x, &e), XF_XML_HEADER);
            assert_int_equal(e.span.end, len);
            assert_int_equal(xf_xml_next(x, &e), XF_XML_NONE);
            /* and the first element in two segments, likewise */
            size_t m = strlen(STARTTLS) / 2;
            assert_int_equal(xf_xml_push(x, STARTTLS, m), 0);
            assert_int_equal(xf_xml_next(x, &e), XF_XML_NONE);
            assert_int_equal(xf_xml_push(x, &STARTTLS[m], strlen(STARTTLS) - m), 0);
            assert_int_equal(xf_xml_next(x, &e), XF_XML_ELEMENT);
            assert_string_equal(e.name, "starttls");
            assert_int_equal(e.span.end, len + strlen(STARTTLS));
            xf_xml_free(x);
        }
    }
}

#define COST_C 8              /* allowed scan work per byte pushed */
#define TRICKLE_N (1u << 20)  /* bytes of filler: a 1 MiB token */

/* Push head, then `filler` repeated until TRICKLE_N bytes, then tail, one byte per push,
   draining after each. The scan work must stay within COST_C times the bytes pushed at
   every step (checked as we go, so a quadratic scanner fails within a few kilobytes
   instead of running for minutes). The last event must be `want` (with condition
   want_error for an error) and come with the byte that completes it: the last one, or
   for policy-violation the first byte over max_header. Prints the work and CPU time. */
static void trickle(const char *what, const char *head, const char *filler, const char *tail,
                    size_t max_header, size_t max_element, int want, const char *want_error)
{
    xf_xml *x = xf_xml_new(max_header, max_element);
    assert_non_null(x);
    size_t hl = strlen(head), fl = strlen(filler), tl = strlen(tail);
    size_t total = hl + TRICKLE_N + tl;
    int last = XF_XML_NONE;
    char err[64] = "";
    uint64_t end = 0, last_at = 0;
    size_t pushed = 0;
    clock_t t0 = clock();
    for (size_t i = 0; i < total; i++) {
        char c = i < hl ? head[i] : i < hl + TRICKLE_N ? filler[(i - hl) % fl]
                                                       : tail[i - hl - TRICKLE_N];
        assert_int_equal(xf_xml_push(x, &c, 1), 0);
        pushed++;
        xf_xml_event e;
        int t;
        while ((t = xf_xml_next(x, &e)) != XF_XML_NONE) {
            last = t;
            last_at = i + 1;
            end = e.span.end;
            if (t == XF_XML_ERROR) {
                snprintf(err, sizeof(err), "%s", e.error);
                break;
            }
        }
        if (xf_xml_scan_cost(x) > (uint64_t)COST_C * (i + 1))
            fail_msg("%s: scan work %llu after %zu bytes pushed (> %d per byte)", what,
                     (unsigned long long)xf_xml_scan_cost(x), i + 1, COST_C);
        if (last == XF_XML_ERROR)
            break;
    }
    double cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    print_message("%-28s %7zu bytes pushed 1 per call: scan work %.2f bytes/byte, %.3f s CPU\n",
                  what, pushed, (double)xf_xml_scan_cost(x) / (double)pushed, cpu);
    assert_int_equal(last, want);
    if (want == XF_XML_ERROR)
        assert_string_equal(err, want_error);
    else
        assert_int_equal(end, total);
    if (want_error && strcmp(want_error, "policy-violation") == 0)
        assert_int_equal(last_at, max_header + 1);
    else
        assert_int_equal(last_at, total);    /* reported with its last byte: not late */
    xf_xml_free(x);
}

#define BIG (TRICKLE_N + 65536)

static void test_trickle_cost_linear(void **state)
{
    (void)state;
    static const char sh[] = "<stream:stream xmlns='jabber:client' "
                             "xmlns:stream='http://etherx.jabber.org/streams' a='";
    /* a 1 MiB header (max_header_bytes allows 1 MiB) */
    trickle("header, long to=", "<stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='", "a", "'>",
            BIG, BIG, XF_XML_HEADER, NULL);
    /* '>' is legal in attribute values: a "contains '>'" rule alone is quadratic here */
    trickle("header, a='>>>>...'", sh, ">", "'>", BIG, BIG, XF_XML_HEADER, NULL);
    trickle("header, a=\"'>'>...\"", "<stream:stream a=\"", "'>", "\" xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams'>", BIG, BIG, XF_XML_HEADER, NULL);
    /* long text inside an element (no CDATA) */
    trickle("text in <body>", C2S_HDR "<message><body>", "a>b ", "</body></message>",
            BIG, BIG, XF_XML_ELEMENT, NULL);
    trickle("CDATA with ]> inside", C2S_HDR "<message><body><![CDATA[", "]>",
            "]]></body></message>", BIG, BIG, XF_XML_ELEMENT, NULL);
    /* restricted XML still refused, after a long token */
    trickle("comment with -> inside", "<!--", "->", "-->", 2 * BIG, BIG,
            XF_XML_ERROR, "restricted-xml");
    trickle("PI with > inside", C2S_HDR "<?foo ", ">", "?>", BIG, BIG,
            XF_XML_ERROR, "restricted-xml");
    trickle("entity reference", C2S_HDR "<message><body>&", "a", ";",
            BIG, BIG, XF_XML_ERROR, "restricted-xml");
    /* a name before the root element is a prolog token for expat (fuzzer find) */
    trickle("name before the root", " ", "W", ">", BIG, BIG, XF_XML_ERROR, "not-well-formed");
    /* the header limit still fires while the token is held: at max_header + 1 */
    trickle("header over max_header", "<stream:stream to='", "a", "'>", 100000, BIG,
            XF_XML_ERROR, "policy-violation");
}

/* The limit fires at the first byte over it even though nothing was fed before it. */
static void test_held_header_limit_exact(void **state)
{
    (void)state;
    const size_t lim = 50000;
    xf_xml *x = xf_xml_new(lim, lim);
    assert_non_null(x);
    const char *head = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='";
    assert_int_equal(xf_xml_push(x, head, strlen(head)), 0);
    size_t pushed = strlen(head);
    xf_xml_event e;
    while (xf_xml_next(x, &e) == XF_XML_NONE) {
        assert_true(pushed <= lim);
        assert_int_equal(xf_xml_push(x, ">", 1), 0);
        pushed++;
    }
    assert_int_equal(e.type, XF_XML_ERROR);
    assert_string_equal(e.error, "policy-violation");
    assert_int_equal(pushed, lim + 1);
    xf_xml_free(x);
}

/* ---- writers ---- */

static void test_escape(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(xf_xml_escape(out, sizeof(out), "a<b>&'\"c"), 28);
    assert_string_equal(out, "a&lt;b&gt;&amp;&apos;&quot;c");
    assert_int_equal(xf_xml_escape(out, sizeof(out), ""), 0);
    assert_string_equal(out, "");
    assert_int_equal(xf_xml_escape(out, 5, "&"), -1);
    assert_int_equal(xf_xml_escape(out, 6, "&"), 5);
    assert_int_equal(xf_xml_escape(out, 0, "a"), -1);
}

static void test_write_header_parses_back(void **state)
{
    (void)state;
    char buf[512];
    char id[32];
    assert_int_equal(xf_xml_new_id(id, sizeof(id)), 24);
    int n = xf_xml_write_header(buf, sizeof(buf), XF_XML_NS_SERVER, "im.example.com",
                                "ex'ample.net", id, "1.0");
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    struct run r;
    scan(buf, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_int_equal(r.ev[0].end, (uint64_t)n);
    assert_string_equal(r.ev[0].from, "im.example.com");
    assert_string_equal(r.ev[0].to, "ex'ample.net");
    assert_string_equal(r.ev[0].id, id);
    assert_string_equal(r.ev[0].version, "1.0");
    assert_string_equal(r.ev[0].lang, "en");
    assert_int_equal(r.ev[0].ns, XF_XML_NS_SERVER);

    /* §4.9.1.3: unknown `to` → from=''; no version for a 0.9 peer */
    n = xf_xml_write_header(buf, sizeof(buf), XF_XML_NS_CLIENT, NULL, NULL, NULL, NULL);
    assert_string_equal(buf, "<?xml version='1.0'?><stream:stream from='' xml:lang='en' "
                             "xmlns='jabber:client' "
                             "xmlns:stream='http://etherx.jabber.org/streams'>");
    scan(buf, &r);
    assert_int_equal(r.ev[0].type, XF_XML_HEADER);
    assert_string_equal(r.ev[0].from, "");
    assert_false(r.ev[0].has_version);
    assert_false(r.ev[0].has_to);
    assert_int_equal(r.ev[0].ns, XF_XML_NS_CLIENT);
    /* too small */
    assert_int_equal(xf_xml_write_header(buf, 20, XF_XML_NS_CLIENT, "a", "b", "c", "1.0"), -1);
    assert_int_equal(xf_xml_write_header(buf, sizeof(buf), 7, "a", "b", "c", "1.0"), -1);
}

static void test_write_error(void **state)
{
    (void)state;
    char buf[512];
    int n = xf_xml_write_error(buf, sizeof(buf), "host-unknown", NULL);
    assert_string_equal(buf, "<stream:error><host-unknown "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
                             "</stream:stream>");
    assert_int_equal((size_t)n, strlen(buf));
    xf_xml_write_error(buf, sizeof(buf), "bogus'/><x", "a<b");
    assert_string_equal(buf, "<stream:error><undefined-condition "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                             "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' "
                             "xml:lang='en'>a&lt;b</text></stream:error></stream:stream>");
    /* the whole response (header + error) scans as header, element, end */
    char all[1024];
    int h = xf_xml_write_header(all, sizeof(all), XF_XML_NS_SERVER, "", NULL, "id1", "1.0");
    assert_true(h > 0);
    assert_true(xf_xml_write_error(all + h, sizeof(all) - (size_t)h, "policy-violation",
                                   "too big") > 0);
    struct run r;
    scan(all, &r);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.ev[1].name, "error");
    assert_string_equal(r.ev[1].ns_uri, XF_NS_STREAMS);
    assert_string_equal(r.ev[1].children[0].name, "policy-violation");
    assert_string_equal(r.ev[1].children[0].ns, XF_NS_STREAM_ERRORS);
    assert_string_equal(r.ev[1].children[1].name, "text");
    assert_int_equal(r.ev[2].type, XF_XML_STREAM_END);
    assert_int_equal(xf_xml_write_error(buf, 10, "reset", NULL), -1);
}

static void test_new_id(void **state)
{
    (void)state;
    char a[32], b[32];
    assert_int_equal(xf_xml_new_id(a, sizeof(a)), 24);
    assert_int_equal(xf_xml_new_id(b, sizeof(b)), 24);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 24; i++) {
        char c = a[i];
        assert_true((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '_');
    }
    assert_int_equal(xf_xml_new_id(a, 10), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_rfc_example),
        cmocka_unit_test(test_every_split_point),
        cmocka_unit_test(test_split_inside_utf8_attribute),
        cmocka_unit_test(test_no_xml_declaration),
        cmocka_unit_test(test_declaration_after_restart),
        cmocka_unit_test(test_whitespace_or_bom_before_declaration),
        cmocka_unit_test(test_encodings),
        cmocka_unit_test(test_standalone),
        cmocka_unit_test(test_prefix_free_header),
        cmocka_unit_test(test_foobar_prefix),
        cmocka_unit_test(test_wrong_namespaces),
        cmocka_unit_test(test_header_attributes),
        cmocka_unit_test(test_restricted_xml),
        cmocka_unit_test(test_not_well_formed),
        cmocka_unit_test(test_oversize_header),
        cmocka_unit_test(test_oversize_element),
        cmocka_unit_test(test_pipelined_after_starttls),
        cmocka_unit_test(test_features_children),
        cmocka_unit_test(test_element_type_attr),
        cmocka_unit_test(test_element_attrs_and_text),
        cmocka_unit_test(test_many_children),
        cmocka_unit_test(test_keepalives_and_stream_end),
        cmocka_unit_test(test_empty_root),
        cmocka_unit_test(test_oversize_element_with_header),
        cmocka_unit_test(test_split_header_reported_at_once),
        cmocka_unit_test(test_trickle_cost_linear),
        cmocka_unit_test(test_held_header_limit_exact),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_write_header_parses_back),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_new_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
