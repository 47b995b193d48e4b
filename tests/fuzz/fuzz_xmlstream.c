/*
 * libFuzzer target for proxy/xmlstream.c.
 *
 * Input layout: byte 0 picks the limits, bytes 1-2 a split seed, the rest is the
 * stream. The stream is scanned three ways: in one push, in pieces whose sizes
 * come from the seed, and byte by byte after a reset of the first scanner. All three
 * must produce identical events (the scanner's core promise: delivery does not
 * matter). Per event we also check the invariants the connection code relies on:
 * offsets monotonic and never past the pushed bytes, children inside their element,
 * limits honoured, strings terminated. And the scan work (xf_xml_scan_cost) stays
 * linear in the bytes pushed for every delivery: a lexer/expat disagreement that
 * made the scanner feed expat inside a long token would show up here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/xmlstream.h"

#define MAX_EV 256
#define MAX_COST_PER_BYTE 8   /* as in tests/unit/test_xmlstream.c */

struct ev_sum {
    int type;
    uint64_t start, end;
    char name[64], ns_uri[128];
    int n_children, truncated, ns, db;
    uint64_t cs[XF_XML_MAX_CHILDREN], ce[XF_XML_MAX_CHILDREN];
    char error[32];
    char to[64];
};

struct trace {
    struct ev_sum ev[MAX_EV];
    int n;
    int done;
    uint64_t last_end;
};

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void check_str(const char *s, size_t cap)
{
    CHECK(memchr(s, '\0', cap) != NULL);
}

static void add_event(struct trace *t, const xf_xml_event *e, uint64_t pushed,
                      size_t max_header, size_t max_element)
{
    CHECK(e->span.start <= e->span.end);
    CHECK(e->span.end <= pushed);
    struct ev_sum s;
    memset(&s, 0, sizeof(s));
    s.type = e->type;
    switch (e->type) {
    case XF_XML_HEADER:
        CHECK(t->n == 0);
        CHECK(e->span.start == 0);
        CHECK(max_header == 0 || e->span.end <= max_header);
        CHECK(e->ns == XF_XML_NS_NONE || e->ns == XF_XML_NS_CLIENT ||
              e->ns == XF_XML_NS_SERVER);
        s.ns = e->ns;
        s.db = e->has_dialback_ns;
        if (e->to)
            strncpy(s.to, e->to, sizeof(s.to) - 1);
        break;
    case XF_XML_ELEMENT:
        CHECK(t->n > 0 && t->ev[0].type == XF_XML_HEADER);
        CHECK(e->span.start >= t->last_end);
        CHECK(max_element == 0 || e->span.end - e->span.start <= max_element);
        check_str(e->name, sizeof(e->name));
        check_str(e->ns_uri, sizeof(e->ns_uri));
        CHECK(e->n_children >= 0 && e->n_children <= XF_XML_MAX_CHILDREN);
        {
            uint64_t prev = e->span.start;
            for (int i = 0; i < e->n_children; i++) {
                const xf_xml_child *c = &e->children[i];
                check_str(c->name, sizeof(c->name));
                check_str(c->ns, sizeof(c->ns));
                CHECK(c->span.start > prev || (i == 0 && c->span.start > e->span.start));
                CHECK(c->span.start < c->span.end);
                CHECK(c->span.end < e->span.end);
                prev = c->span.end - 1;
                s.cs[i] = c->span.start;
                s.ce[i] = c->span.end;
            }
        }
        memcpy(s.name, e->name, sizeof(s.name));
        memcpy(s.ns_uri, e->ns_uri, sizeof(s.ns_uri));
        s.n_children = e->n_children;
        s.truncated = e->children_truncated;
        break;
    case XF_XML_STREAM_END:
        CHECK(t->n > 0 && t->ev[0].type == XF_XML_HEADER);
        CHECK(e->span.start >= t->last_end);
        t->done = 1;
        break;
    case XF_XML_ERROR:
        CHECK(e->error != NULL && e->reason != NULL);
        strncpy(s.error, e->error, sizeof(s.error) - 1);
        t->done = 1;
        break;
    default:
        abort();
    }
    s.start = e->span.start;
    s.end = e->span.end;
    if (e->type != XF_XML_ERROR)
        t->last_end = e->span.end;
    if (t->n < MAX_EV)
        t->ev[t->n++] = s;
    else
        t->done = 1;
}

static void drain(xf_xml *x, struct trace *t, size_t mh, size_t me)
{
    xf_xml_event e;
    while (!t->done) {
        int type = xf_xml_next(x, &e);
        CHECK(type == (int)e.type);
        if (type == XF_XML_NONE)
            return;
        add_event(t, &e, xf_xml_offset(x), mh, me);
    }
}

/* Scan data in pieces; piece sizes come from seed (0 = one push, 1 = bytewise). */
static void run(xf_xml *x, const uint8_t *data, size_t len, unsigned seed,
                struct trace *t, size_t mh, size_t me)
{
    memset(t, 0, sizeof(*t));
    size_t at = 0;
    unsigned r = seed;
    while (at < len && !t->done) {
        size_t n;
        if (seed == 0)
            n = len - at;
        else if (seed == 1)
            n = 1;
        else {
            r = r * 1103515245u + 12345u;
            n = 1 + (r >> 16) % 97;
        }
        if (n > len - at)
            n = len - at;
        CHECK(xf_xml_push(x, (const char *)data + at, n) == 0);
        at += n;
        CHECK(xf_xml_offset(x) == at);
        drain(x, t, mh, me);
        CHECK(xf_xml_scan_cost(x) <= MAX_COST_PER_BYTE * at + 64);
    }
}

/* Set per input: it contains "]]>" (see same()). */
static int input_has_rsqb;

/* 1 if {a, b} is {bad-format, not-well-formed}. */
static int text_condition_pair(const char *a, const char *b)
{
    return (strcmp(a, "bad-format") == 0 && strcmp(b, "not-well-formed") == 0) ||
           (strcmp(a, "not-well-formed") == 0 && strcmp(b, "bad-format") == 0);
}

/* Identical traces, except for two final-error cases where the condition depends on
   how the bytes were cut (the offset, the events before it and the fact of an error
   do not):
   - a size limit is crossed: policy-violation in one delivery and an expat error in
     the other (expat sees the malformed token whole in one, cut at the limit in the
     other);
   - text between first-level elements that contains "]]>": expat reports the text as
     character data (bad-format) when it arrived before the "]]>", or the whole run as
     an invalid token (not-well-formed) when the text that came first has already left
     the scanner's buffer. Known limitation (session note, issue 7 follow-ups); both
     close the stream at the same point. */
static void same(const struct trace *a, const struct trace *b)
{
    CHECK(a->n == b->n);
    for (int i = 0; i < a->n; i++) {
        const struct ev_sum *x = &a->ev[i], *y = &b->ev[i];
        if (i == a->n - 1 && x->type == XF_XML_ERROR && y->type == XF_XML_ERROR &&
            (strcmp(x->error, "policy-violation") == 0 ||
             strcmp(y->error, "policy-violation") == 0 ||
             (input_has_rsqb && text_condition_pair(x->error, y->error))))
            continue;
        CHECK(memcmp(x, y, sizeof(*x)) == 0);
    }
}

static struct trace t1, t2, t3;   /* fuzzer is single-threaded; keeps stack small */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    static const size_t limits[4] = { 0, 64, 256, 4096 };
    size_t mh = limits[data[0] & 3];
    size_t me = limits[(data[0] >> 2) & 3];
    unsigned seed = 2u + ((unsigned)data[1] << 8 | data[2]);
    data += 3;
    size -= 3;
    input_has_rsqb = memmem(data, size, "]]>", 3) != NULL;

    xf_xml *x = xf_xml_new(mh, me);
    CHECK(x != NULL);
    run(x, data, size, 0, &t1, mh, me);
    xf_xml_free(x);

    x = xf_xml_new(mh, me);
    CHECK(x != NULL);
    run(x, data, size, seed, &t2, mh, me);
    same(&t1, &t2);
    /* reuse after reset must behave like a fresh scanner */
    xf_xml_reset(x);
    CHECK(xf_xml_offset(x) == 0);
    run(x, data, size, 1, &t3, mh, me);
    same(&t1, &t3);
    xf_xml_free(x);

    /* writers: escaping leaves no markup characters, and the result fits */
    if (size < 512) {
        char in[512], out[512 * 6 + 1];
        memcpy(in, data, size);
        in[size] = '\0';
        int n = xf_xml_escape(out, sizeof(out), in);
        CHECK(n >= 0 && (size_t)n == strlen(out));
        CHECK(strpbrk(out, "<>'\"") == NULL);
        char hdr[4096];
        int h = xf_xml_write_header(hdr, sizeof(hdr), XF_XML_NS_SERVER, in, in, NULL, "1.0");
        if (h > 0) {
            /* our own header, with fuzzed attribute values, must scan as a header
               unless the value is not valid UTF-8 / has forbidden characters */
            xf_xml *y = xf_xml_new(0, 0);
            CHECK(y != NULL);
            CHECK(xf_xml_push(y, hdr, (size_t)h) == 0);
            xf_xml_event e;
            int type = xf_xml_next(y, &e);
            CHECK(type == XF_XML_HEADER || (type == XF_XML_ERROR &&
                  strcmp(e.error, "not-well-formed") == 0));
            if (type == XF_XML_HEADER)
                CHECK(e.span.end == (uint64_t)h);
            xf_xml_free(y);
        }
    }
    return 0;
}
