/*
 * xmllex: the held-token lexer and the feed-point rules of the XMPP stream scanner.
 * Why it exists and what it guarantees: proxy/xmllex.h.
 */
#include "proxy/xmllex.h"

#define HOLD_MIN 4096      /* held bytes fed regardless of the lexer from here ... */
#define HOLD_GROWTH 4      /* ... and at every HOLD_GROWTH-fold of the held span */

/* One byte of the lexer. Returns 1 when expat may be given everything up to and
   including this byte without being left inside a token it would re-scan: a text
   byte, or the '>' (';' for a reference) that ends a token. The states follow XML 1.0
   §2.4-2.8, §3.1, §4.1 closely enough for well-formed input ('>' inside quoted
   attribute values, comments, CDATA and PIs does not end the token). Before the
   root element only whitespace is text; a name (also %name, #name) or a quoted
   literal there is a prolog token that expat would hold and re-scan (it is
   malformed anyway): it is held to its end, and expat then reports the error. On malformed input the lexer may be wrong; that only delays the data to
   the growth rule, and expat then reports the error. */
static int lex_byte(xf_xmllex *l, unsigned char c)
{
    static const char cdata_open[] = "[CDATA[";
    switch (l->lx) {
    case XF_LX_TEXT:
        if (c == '<')
            l->lx = XF_LX_LT;
        else if (!l->lx_content && (c == '\'' || c == '"'))
            l->lx = c == '"' ? XF_LX_LIT_DQ : XF_LX_LIT_SQ;
        else if (!l->lx_content)
            return !(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
                     c == ':' || c == '%' || c == '#');
        else if (c == '&')
            l->lx = XF_LX_REF;
        else
            return 1;
        return 0;
    case XF_LX_REF:
        if (c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            l->lx = XF_LX_TEXT;      /* whitespace: not a reference; let expat say so */
            return 1;
        }
        if (c == '<')
            l->lx = XF_LX_LT;
        return 0;
    case XF_LX_LT:
        if (c == '!') {
            l->lx = XF_LX_BANG;
            return 0;
        }
        if (c == '?') {
            l->lx = XF_LX_PI;
            l->lx_n = 0;
            return 0;
        }
        break;                    /* a start or end tag: c is its first byte */
    case XF_LX_BANG:
        if (c == '-') {
            l->lx = XF_LX_BANG_DASH;
            return 0;
        }
        if (c == (unsigned char)cdata_open[0]) {
            l->lx = XF_LX_BANG_CDATA;
            l->lx_n = 1;
            return 0;
        }
        break;                    /* <!DOCTYPE ...>: a tag with quoted literals */
    case XF_LX_BANG_DASH:
        if (c == '-') {
            l->lx = XF_LX_COMMENT;
            l->lx_n = 0;
            return 0;
        }
        break;
    case XF_LX_BANG_CDATA:
        if (c == (unsigned char)cdata_open[l->lx_n]) {
            if (++l->lx_n == sizeof(cdata_open) - 1) {
                l->lx = XF_LX_CDATA;
                l->lx_n = 0;
            }
            return 0;
        }
        break;
    case XF_LX_TAG:
        break;
    case XF_LX_SQ:
        if (c == '\'')
            l->lx = XF_LX_TAG;
        return 0;
    case XF_LX_DQ:
        if (c == '"')
            l->lx = XF_LX_TAG;
        return 0;
    case XF_LX_COMMENT:
    case XF_LX_CDATA:
        if (c == (l->lx == XF_LX_COMMENT ? '-' : ']')) {
            if (l->lx_n < 2)
                l->lx_n++;
            return 0;
        }
        if (c == '>' && l->lx_n == 2) {
            l->lx = XF_LX_TEXT;
            return 1;
        }
        l->lx_n = 0;
        return 0;
    case XF_LX_LIT_SQ:
    case XF_LX_LIT_DQ:
        if (c == (l->lx == XF_LX_LIT_DQ ? '"' : '\'')) {
            l->lx = XF_LX_TEXT;
            return 1;
        }
        return 0;
    case XF_LX_PI:
        if (c == '>' && l->lx_n) {
            l->lx = XF_LX_TEXT;
            return 1;
        }
        l->lx_n = c == '?';
        return 0;
    }
    /* XF_LX_TAG, or a state above that found c starts/continues a tag or declaration */
    if (l->lx != XF_LX_TAG)
        l->lx_decl = l->lx != XF_LX_LT;
    l->lx = XF_LX_TAG;
    if (c == '\'')
        l->lx = XF_LX_SQ;
    else if (c == '"')
        l->lx = XF_LX_DQ;
    else if (c == '>') {
        l->lx = XF_LX_TEXT;
        if (!l->lx_decl)
            l->lx_content = 1;
        return 1;
    }
    return 0;
}

void xf_xmllex_reset(xf_xmllex *l)
{
    l->lx = XF_LX_TEXT;
    l->lx_n = 0;
    l->lx_decl = l->lx_content = 0;
    l->safe = 0;
}

void xf_xmllex_push(xf_xmllex *l, uint64_t at, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (lex_byte(l, (unsigned char)data[i]))
            l->safe = at + i + 1;
    }
}

/* Absolute offset up to which the bytes pushed may go to expat without limits in
   view: `safe` (the lexer's last token end), or, when more than HOLD_MIN bytes are
   held after it, the largest safe + HOLD_MIN * HOLD_GROWTH^k within what was pushed.
   A partial token held that way is re-scanned by expat at most at each of those
   points, whose distances from `safe` form a geometric series: total work stays
   within HOLD_GROWTH / (HOLD_GROWTH - 1) times the token. Both depend only on the
   bytes pushed, never on how they were split. */
static uint64_t feed_target(const xf_xmllex *l, uint64_t pushed)
{
    uint64_t held = pushed - l->safe;
    if (held < HOLD_MIN)
        return l->safe;
    uint64_t span = HOLD_MIN;
    while (span <= held / HOLD_GROWTH)
        span *= HOLD_GROWTH;
    return l->safe + span;
}

/* Feed up to the target, never past the limit. Once that is done and more than the
   limit has been pushed, expat must see the rest up to the limit, held or not, to
   tell whether the header or element completes in time. Only then: feeding to the
   limit first would let expat interpret bytes after a header that the target had
   not reached yet, which would make the events depend on how the input was split. */
uint64_t xf_xmllex_feed_point(const xf_xmllex *l, uint64_t pushed, uint64_t fed, uint64_t lim)
{
    uint64_t to = feed_target(l, pushed);
    if (to > lim)
        to = lim;
    if (to <= fed && pushed > lim)
        to = lim;
    return to;
}
