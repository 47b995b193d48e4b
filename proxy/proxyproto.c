/*
 * proxyproto: PROXY protocol v2 encoder and strict decoder (HAProxy
 * doc/proxy-protocol.txt §2.2, 2020-03-05; spec-digest §8, §10 case 32).
 *
 * Encoder choices:
 *  - command is always PROXY; TCP4 when both addresses are IPv4, TCP6 when both are
 *    IPv6, UNSPEC (no address block) when one is missing or the families differ.
 *    An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack "::" listener
 *    reports for IPv4 peers) is sent as the IPv4 address it carries, so a v4 client on
 *    a dual-stack listener talking to a v4 backend yields TCP4.
 *  - TLVs in this order: ALPN, AUTHORITY, SSL{VERSION, CN, CIPHER, SIG_ALG, KEY_ALG},
 *    UNIQUE_ID, CRC32C (last, optional).
 * Decoder contract: see proxyproto.h; it never reads past `len` and never allocates.
 */
#include "proxy/proxyproto.h"

#include <netinet/in.h>
#include <string.h>

static const uint8_t pp2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), bitwise: headers are a few
   hundred bytes, and no table means no shared state between worker threads.
   xf_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t xf_crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put16(uint8_t *p, size_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

/* IPv4 address and port of sa (IPv4, or IPv4-mapped IPv6); 0 if not IPv4. */
static int as_v4(const struct sockaddr *sa, uint8_t addr[4], uint16_t *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)sa;
        memcpy(addr, &s->sin_addr, 4);
        *port = s->sin_port;
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)sa;
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp(s->sin6_addr.s6_addr, mapped, 12) == 0) {
            memcpy(addr, s->sin6_addr.s6_addr + 12, 4);
            *port = s->sin6_port;
            return 1;
        }
    }
    return 0;
}

/* Append one TLV at *pos if it fits; returns -1 when it does not. */
static int put_tlv(uint8_t *out, size_t cap, size_t *pos, uint8_t type,
                   const void *v, size_t vl)
{
    if (vl > 0xffff || *pos + 3 + vl > cap) return -1;
    out[*pos] = type;
    put16(out + *pos + 1, vl);
    if (vl) memcpy(out + *pos + 3, v, vl);
    *pos += 3 + vl;
    return 0;
}

static int put_str_tlv(uint8_t *out, size_t cap, size_t *pos, uint8_t type, const char *s)
{
    return s ? put_tlv(out, cap, pos, type, s, strlen(s)) : 0;
}

int xf_pp2_encode(const xf_pp2_info *in, uint8_t *out, size_t cap)
{
    size_t pos = 16;
    uint8_t fam = 0x00, s4[4], d4[4];
    uint16_t sp = 0, dp = 0;

    if (cap < 16) return -1;
    memcpy(out, pp2_sig, 12);
    out[12] = 0x21;                                   /* version 2, PROXY */

    if (in->src && in->dst && as_v4(in->src, s4, &sp) && as_v4(in->dst, d4, &dp)) {
        if (cap < pos + 12) return -1;
        fam = 0x11;
        memcpy(out + pos, s4, 4);
        memcpy(out + pos + 4, d4, 4);
        memcpy(out + pos + 8, &sp, 2);                /* already network order */
        memcpy(out + pos + 10, &dp, 2);
        pos += 12;
    } else if (in->src && in->dst && in->src->sa_family == AF_INET6 &&
               in->dst->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)in->src, *d = (const void *)in->dst;
        if (cap < pos + 36) return -1;
        fam = 0x21;
        memcpy(out + pos, &s->sin6_addr, 16);
        memcpy(out + pos + 16, &d->sin6_addr, 16);
        memcpy(out + pos + 32, &s->sin6_port, 2);
        memcpy(out + pos + 34, &d->sin6_port, 2);
        pos += 36;
    }
    out[13] = fam;

    if (in->alpn && put_str_tlv(out, cap, &pos, XF_PP2_TYPE_ALPN, in->alpn) < 0) return -1;
    if (in->authority &&
        put_str_tlv(out, cap, &pos, XF_PP2_TYPE_AUTHORITY, in->authority) < 0) return -1;
    if (in->ssl) {
        size_t start = pos;
        if (pos + 3 + 5 > cap) return -1;
        out[pos] = XF_PP2_TYPE_SSL;
        pos += 3;
        out[pos] = XF_PP2_CLIENT_SSL | (in->client_cert ? XF_PP2_CLIENT_CERT_CONN : 0);
        out[pos + 1] = (uint8_t)(in->verify >> 24);
        out[pos + 2] = (uint8_t)(in->verify >> 16);
        out[pos + 3] = (uint8_t)(in->verify >> 8);
        out[pos + 4] = (uint8_t)in->verify;
        pos += 5;
        if (put_str_tlv(out, cap, &pos, XF_PP2_SUBTYPE_SSL_VERSION, in->ssl_version) < 0 ||
            put_str_tlv(out, cap, &pos, XF_PP2_SUBTYPE_SSL_CN, in->ssl_cn) < 0 ||
            put_str_tlv(out, cap, &pos, XF_PP2_SUBTYPE_SSL_CIPHER, in->ssl_cipher) < 0 ||
            put_str_tlv(out, cap, &pos, XF_PP2_SUBTYPE_SSL_SIG_ALG, in->ssl_sig_alg) < 0 ||
            put_str_tlv(out, cap, &pos, XF_PP2_SUBTYPE_SSL_KEY_ALG, in->ssl_key_alg) < 0)
            return -1;
        if (pos - start - 3 > 0xffff) return -1;
        put16(out + start + 1, pos - start - 3);
    }
    if (in->unique_id) {
        if (strlen(in->unique_id) > 128) return -1;
        if (put_str_tlv(out, cap, &pos, XF_PP2_TYPE_UNIQUE_ID, in->unique_id) < 0) return -1;
    }
    size_t crc_at = 0;
    if (in->crc32c) {
        static const uint8_t zero[4];
        crc_at = pos + 3;
        if (put_tlv(out, cap, &pos, XF_PP2_TYPE_CRC32C, zero, 4) < 0) return -1;
    }
    if (pos - 16 > 0xffff) return -1;
    put16(out + 14, pos - 16);
    if (crc_at) {
        uint32_t c = xf_crc32c(0, out, pos);
        out[crc_at] = (uint8_t)(c >> 24);
        out[crc_at + 1] = (uint8_t)(c >> 16);
        out[crc_at + 2] = (uint8_t)(c >> 8);
        out[crc_at + 3] = (uint8_t)c;
    }
    return (int)pos;
}

/* Walk TLVs in v[0..n): each must fit entirely. Returns the count, -1 if malformed. */
static int tlv_walk(const uint8_t *v, size_t n, xf_pp2_tlv *tlvs, int max)
{
    size_t off = 0;
    int count = 0;
    while (off < n) {
        if (n - off < 3) return -1;
        uint16_t l = get16(v + off + 1);
        if (n - off - 3 < l) return -1;
        if (tlvs) {
            if (count >= max) return -1;
            tlvs[count] = (xf_pp2_tlv){ v[off], l, v + off + 3 };
        }
        count++;
        off += 3 + (size_t)l;
    }
    return count;
}

int xf_pp2_decode(const uint8_t *in, size_t len, xf_pp2_header *out)
{
    memset(out, 0, sizeof *out);
    /* Reject a wrong prefix as soon as it is visible; wait for the rest otherwise. */
    size_t cmp = len < 12 ? len : 12;
    if (memcmp(in, pp2_sig, cmp) != 0) return -1;
    if (len < 13) return 0;
    if ((in[12] >> 4) != 2) return -1;
    int cmd = in[12] & 0x0f;
    if (cmd > 1) return -1;
    if (len < 14) return 0;
    uint8_t fam = in[13];
    size_t alen;
    switch (fam) {
    case 0x00: alen = 0; break;
    case 0x11: case 0x12: alen = 12; break;
    case 0x21: case 0x22: alen = 36; break;
    case 0x31: case 0x32: alen = 216; break;
    default: return -1;
    }
    if (len < 16) return 0;
    size_t body = get16(in + 14), total = 16 + body;
    if (len < total) return 0;

    out->command = cmd;
    out->family = fam;
    out->length = total;
    /* LOCAL: the endpoints are the real ones; skip the whole body unread. */
    if (cmd == 0) return (int)total;
    if (body < alen) return -1;

    const uint8_t *a = in + 16;
    if (fam == 0x11 || fam == 0x12) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
    } else if (fam == 0x21 || fam == 0x22) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
    }

    int n = tlv_walk(in + 16 + alen, body - alen, out->tlvs,
                     (int)(sizeof out->tlvs / sizeof out->tlvs[0]));
    if (n < 0) return -1;
    out->n_tlvs = n;

    int seen_crc = 0;
    for (int i = 0; i < n; i++) {
        const xf_pp2_tlv *t = &out->tlvs[i];
        if (t->type == XF_PP2_TYPE_CRC32C) {
            if (seen_crc++ || t->len != 4) return -1;
            uint8_t zero[4] = { 0 };
            size_t at = (size_t)(t->value - in);
            uint32_t c = xf_crc32c(0, in, at);
            c = xf_crc32c(c, zero, 4);
            c = xf_crc32c(c, in + at + 4, total - at - 4);
            uint32_t want = ((uint32_t)t->value[0] << 24) | ((uint32_t)t->value[1] << 16) |
                            ((uint32_t)t->value[2] << 8) | t->value[3];
            if (c != want) return -1;
        } else if (t->type == XF_PP2_TYPE_UNIQUE_ID) {
            if (t->len > 128) return -1;
        } else if (t->type == XF_PP2_TYPE_SSL) {
            if (t->len < 5 || tlv_walk(t->value + 5, t->len - 5u, NULL, 0) < 0) return -1;
        }
    }
    return (int)total;
}

const xf_pp2_tlv *xf_pp2_find(const xf_pp2_header *h, uint8_t type)
{
    for (int i = 0; i < h->n_tlvs; i++)
        if (h->tlvs[i].type == type) return &h->tlvs[i];
    return NULL;
}

int xf_pp2_ssl_parse(const xf_pp2_tlv *ssl, uint8_t *client, uint32_t *verify,
                     xf_pp2_tlv *subs, int max)
{
    if (!ssl || ssl->type != XF_PP2_TYPE_SSL || ssl->len < 5) return -1;
    *client = ssl->value[0];
    *verify = ((uint32_t)ssl->value[1] << 24) | ((uint32_t)ssl->value[2] << 16) |
              ((uint32_t)ssl->value[3] << 8) | ssl->value[4];
    return tlv_walk(ssl->value + 5, ssl->len - 5u, subs, max);
}
