/* codec: see codec.h. */
#include "certs/codec.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int xf_b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
    size_t need = ((len + 2) / 3) * 4, o = 0;
    if (need + 1 > outlen)
        return XF_CODEC_ERR_SPACE;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len) v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? B64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? B64[v & 63] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int xf_b64_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
    size_t pad = 0, o = 0, n;
    unsigned acc = 0, bits = 0;

    while (pad < 2 && len > 0 && in[len - 1] == '=') {
        len--;
        pad++;
    }
    if (pad && (len + pad) % 4 != 0)
        return XF_CODEC_ERR_SYNTAX;
    if (len % 4 == 1)
        return XF_CODEC_ERR_SYNTAX;
    n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (n > outlen)
        return XF_CODEC_ERR_SPACE;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val(in[i]);
        if (v < 0)
            return XF_CODEC_ERR_SYNTAX;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (int)o;
}

int xf_hex_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
    static const char H[] = "0123456789abcdef";
    if (2 * len + 1 > outlen)
        return XF_CODEC_ERR_SPACE;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = H[in[i] >> 4];
        out[2 * i + 1] = H[in[i] & 15];
    }
    out[2 * len] = '\0';
    return (int)(2 * len);
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int xf_hex_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
    size_t o = 0;
    int hi = -1;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (hi >= 0)
                return XF_CODEC_ERR_SYNTAX; /* space inside a digit pair */
            continue;
        }
        int v = hex_val(c);
        if (v < 0)
            return XF_CODEC_ERR_SYNTAX;
        if (hi < 0) {
            hi = v;
        } else {
            if (o >= outlen)
                return XF_CODEC_ERR_SPACE;
            out[o++] = (unsigned char)(hi << 4 | v);
            hi = -1;
        }
    }
    if (hi >= 0)
        return XF_CODEC_ERR_SYNTAX;
    return (int)o;
}
