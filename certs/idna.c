/* idna: see idna.h. Punycode follows RFC 3492 §6 (bootstring parameters §5). */
#include "certs/idna.h"

#include <string.h>

enum { PC_BASE = 36, PC_TMIN = 1, PC_TMAX = 26, PC_SKEW = 38, PC_DAMP = 700,
       PC_INITIAL_BIAS = 72, PC_INITIAL_N = 128 };

#define XF_LABEL_MAX 63
#define XF_NAME_MAX 253

/* RFC 3492 §6.1 bias adaptation. */
static uint32_t adapt(uint32_t delta, uint32_t numpoints, int firsttime)
{
    uint32_t k = 0;
    delta = firsttime ? delta / PC_DAMP : delta / 2;
    delta += delta / numpoints;
    while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
        delta /= PC_BASE - PC_TMIN;
        k += PC_BASE;
    }
    return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

static char encode_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

int xf_idna_punycode_encode(const uint32_t *cp, size_t n, char *out, size_t outlen)
{
    size_t o = 0, b = 0, h;
    uint32_t code = PC_INITIAL_N, delta = 0, bias = PC_INITIAL_BIAS;

    if (outlen == 0)
        return XF_IDNA_ERR_TOOLONG;
    for (size_t i = 0; i < n; i++) {
        if (cp[i] < 0x80) {
            if (o + 1 >= outlen)
                return XF_IDNA_ERR_TOOLONG;
            out[o++] = (char)cp[i];
            b++;
        } else if (cp[i] > 0x10FFFF) {
            return XF_IDNA_ERR_UTF8;
        }
    }
    h = b;
    if (b > 0) {
        if (o + 1 >= outlen)
            return XF_IDNA_ERR_TOOLONG;
        out[o++] = '-';
    }
    while (h < n) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cp[i] >= code && cp[i] < m)
                m = cp[i];
        if ((uint64_t)(m - code) * (h + 1) > UINT32_MAX - delta)
            return XF_IDNA_ERR_TOOLONG; /* §6.4 overflow */
        delta += (m - code) * (uint32_t)(h + 1);
        code = m;
        for (size_t i = 0; i < n; i++) {
            if (cp[i] < code) {
                if (++delta == 0)
                    return XF_IDNA_ERR_TOOLONG;
            }
            if (cp[i] == code) {
                uint32_t q = delta;
                for (uint32_t k = PC_BASE;; k += PC_BASE) {
                    uint32_t t = k <= bias ? PC_TMIN
                               : k >= bias + PC_TMAX ? PC_TMAX : k - bias;
                    if (q < t)
                        break;
                    if (o + 1 >= outlen)
                        return XF_IDNA_ERR_TOOLONG;
                    out[o++] = encode_digit(t + (q - t) % (PC_BASE - t));
                    q = (q - t) / (PC_BASE - t);
                }
                if (o + 1 >= outlen)
                    return XF_IDNA_ERR_TOOLONG;
                out[o++] = encode_digit(q);
                bias = adapt(delta, (uint32_t)(h + 1), h == b);
                delta = 0;
                h++;
            }
        }
        delta++;
        code++;
    }
    out[o] = '\0';
    return (int)o;
}

int xf_idna_is_ldh_label(const char *s, size_t len)
{
    if (len == 0 || len > XF_LABEL_MAX || s[0] == '-' || s[len - 1] == '-')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

/* Decodes one UTF-8 sequence at s[*i] (strict: no overlongs, no surrogates). */
static int utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
    unsigned char c = s[*i];
    size_t need;
    uint32_t v, min;

    if (c < 0x80) { *cp = c; (*i)++; return 0; }
    if ((c & 0xE0) == 0xC0) { need = 1; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { need = 2; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { need = 3; v = c & 0x07; min = 0x10000; }
    else return XF_IDNA_ERR_UTF8;
    if (*i + need >= len)
        return XF_IDNA_ERR_UTF8;
    for (size_t k = 1; k <= need; k++) {
        if ((s[*i + k] & 0xC0) != 0x80)
            return XF_IDNA_ERR_UTF8;
        v = (v << 6) | (s[*i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return XF_IDNA_ERR_UTF8;
    *cp = v;
    *i += need + 1;
    return 0;
}

/* Normalises one label s[0..len) into out; returns bytes written or error. */
static int normalize_label(const unsigned char *s, size_t len, char *out, size_t outlen)
{
    int ascii = 1;
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 0x80)
            ascii = 0;
    if (ascii) {
        if (len + 1 > outlen)
            return XF_IDNA_ERR_TOOLONG;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = s[i];
            out[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
        if (!xf_idna_is_ldh_label(out, len))
            return XF_IDNA_ERR_SYNTAX;
        out[len] = '\0';
        return (int)len;
    }
    /* U-label: RFC 5891 §4.4 ToASCII, limited to ASCII lower-casing (see idna.h). */
    uint32_t cps[XF_LABEL_MAX + 1];
    size_t n = 0, i = 0;
    while (i < len) {
        uint32_t cp;
        if (n == XF_LABEL_MAX)
            return XF_IDNA_ERR_TOOLONG;
        if (utf8_next(s, len, &i, &cp) < 0)
            return XF_IDNA_ERR_UTF8;
        if (cp >= 'A' && cp <= 'Z')
            cp += 32;
        if (cp < 0x80 && !((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') || cp == '-'))
            return XF_IDNA_ERR_SYNTAX;
        cps[n++] = cp;
    }
    if (outlen < 5)
        return XF_IDNA_ERR_TOOLONG;
    memcpy(out, "xn--", 4);
    int r = xf_idna_punycode_encode(cps, n, out + 4, outlen - 4);
    if (r < 0)
        return r;
    if (!xf_idna_is_ldh_label(out, (size_t)r + 4))
        return (size_t)r + 4 > XF_LABEL_MAX ? XF_IDNA_ERR_TOOLONG : XF_IDNA_ERR_SYNTAX;
    return r + 4;
}

int xf_idna_normalize(const char *in, char *out, size_t outlen)
{
    size_t len, o = 0, start = 0;
    if (!in || !out || outlen == 0)
        return XF_IDNA_ERR_SYNTAX;
    len = strlen(in);
    if (len > 0 && in[len - 1] == '.')
        len--;  /* one trailing dot: absolute form of the same name */
    if (len == 0)
        return XF_IDNA_ERR_SYNTAX;
    while (start <= len) {
        size_t end = start;
        while (end < len && in[end] != '.')
            end++;
        if (end == start)
            return XF_IDNA_ERR_SYNTAX; /* empty label */
        if (o > 0) {
            if (o + 1 >= outlen)
                return XF_IDNA_ERR_TOOLONG;
            out[o++] = '.';
        }
        int r = normalize_label((const unsigned char *)in + start, end - start,
                                out + o, outlen - o);
        if (r < 0)
            return r;
        o += (size_t)r;
        start = end + 1;
    }
    if (o > XF_NAME_MAX)
        return XF_IDNA_ERR_TOOLONG;
    out[o] = '\0';
    return (int)o;
}
