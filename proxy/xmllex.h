/*
 * xmllex: the held-token lexer of the XMPP stream scanner (proxy/xmlstream.c). It
 * decides which of the bytes pushed into the scanner may be handed to expat now and
 * which must be held, so that input trickled in small pieces costs O(n), not O(n^2).
 *
 * Why (the cost of a partial token). Expat re-scans an incomplete token from its
 * start on every XML_Parse() call, so feeding a 1 MiB start tag one byte per call
 * costs O(n^2) (issue 6, before this scheme: a max_header_bytes header trickled a
 * byte per segment took 50 ms of CPU at 8 KiB, 3.6 s at 64 KiB, 56 s at 256 KiB).
 * Expat >= 2.6 (and Debian 12's 2.5.0-1+deb12u2+) "defers reparsing" instead, which
 * holds back the event of a token that arrived in pieces until more bytes come: a
 * peer that sends its header in two segments and waits gets nothing. The scanner
 * switches that off (events stay immediate) and bounds the cost with this lexer:
 * xf_xml_push() runs a tiny O(n) lexer over the bytes (text, tag, quoted attribute
 * value, comment, CDATA, PI) and records `safe`, the offset just past the last token
 * end or text byte; xf_xml_next() feeds expat up to `safe` and holds the rest, an
 * incomplete token, in its buffer. Two safety nets make the lexer a pure
 * optimisation:
 *  - growth: held bytes are fed anyway at offsets safe + HOLD_MIN * HOLD_GROWTH^k,
 *    so if the lexer misjudges a token end, events come late but always come, and
 *    expat's re-scans still sum to a geometric series (O(n));
 *  - limits: once the bytes pushed pass the active limit, expat is fed up to the
 *    limit so that an oversize header or element is refused exactly as before.
 * Every feed point is a function of the bytes pushed so far, not of how they were
 * split, so the events (errors included) stay independent of delivery.
 * xf_xml_scan_cost() counts the work so tests can prove it linear.
 */
#ifndef XF_XMLLEX_H
#define XF_XMLLEX_H

#include <stddef.h>
#include <stdint.h>

/* Lexer states (see lex_byte in xmllex.c). Only markup whose end expat must see
   before it can report anything is held: a start/end tag, a declaration, a comment,
   a CDATA section, a PI, an entity reference. Text goes to expat as it comes (expat
   reports character data without re-scanning it). */
enum xf_lex_state {
    XF_LX_TEXT = 0,     /* character data, or whitespace before the root element */
    XF_LX_REF,          /* after '&' in text, until ';' */
    XF_LX_LT,           /* after '<' */
    XF_LX_BANG,         /* after "<!": "--" or "[CDATA[" or a declaration */
    XF_LX_BANG_DASH,    /* after "<!-" */
    XF_LX_BANG_CDATA,   /* inside "<![CDATA[", lx_n characters matched */
    XF_LX_TAG,          /* inside a tag or <!DECL ...> */
    XF_LX_SQ,           /* inside '...' within a tag */
    XF_LX_DQ,           /* inside "..." within a tag */
    XF_LX_COMMENT,      /* inside <!-- ... -->, lx_n = trailing '-' count */
    XF_LX_CDATA,        /* inside <![CDATA[ ... ]]>, lx_n = trailing ']' count */
    XF_LX_PI,           /* inside <? ... ?>, lx_n = 1 after '?' */
    XF_LX_LIT_SQ,       /* inside '...' before the root element (a prolog literal) */
    XF_LX_LIT_DQ,       /* inside "..." before the root element */
};

/* The lexer over the bytes pushed since the scanner's last reset. Embedded in the
   scanner; all-zero (or xf_xmllex_reset) is the state at the start of a stream. */
typedef struct xf_xmllex {
    enum xf_lex_state lx;
    unsigned lx_n;
    int lx_decl;              /* XF_LX_TAG is a <!...> declaration, not a tag */
    int lx_content;           /* a start tag has ended: text is content from now */
    uint64_t safe;            /* offset just past the last token end or text byte */
} xf_xmllex;

/* Back to the start of a stream (offset 0). */
void xf_xmllex_reset(xf_xmllex *l);
/* Run the lexer over len pushed bytes whose first byte is at absolute offset `at`
   (the bytes pushed before them). Advances l->safe. O(len), never fails. */
void xf_xmllex_push(xf_xmllex *l, uint64_t at, const char *data, size_t len);
/* The feed point: the absolute offset up to which expat may be given bytes now,
   given `pushed` bytes pushed, `fed` already given, and the active limit `lim`
   (UINT64_MAX for none). A result <= fed means an incomplete token is held and
   nothing is to be fed. Depends only on the bytes pushed, never on their split. */
uint64_t xf_xmllex_feed_point(const xf_xmllex *l, uint64_t pushed, uint64_t fed, uint64_t lim);

#endif
