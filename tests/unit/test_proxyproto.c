/* Unit tests for proxy/proxyproto.c: byte-exact encoding against the HAProxy layout,
   round trips with every TLV, CRC32C, and the strict decoder's refusals (spec-digest
   §8, §10 case 32). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy/proxyproto.h"

static struct sockaddr_in v4(const char *a, uint16_t port)
{
    struct sockaddr_in s;
    memset(&s, 0, sizeof s);
    s.sin_family = AF_INET;
    s.sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
    return s;
}

static struct sockaddr_in6 v6(const char *a, uint16_t port)
{
    struct sockaddr_in6 s;
    memset(&s, 0, sizeof s);
    s.sin6_family = AF_INET6;
    s.sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
    return s;
}

#define SIG 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A

static void test_crc32c_vector(void **state)
{
    (void)state;
    assert_int_equal(xf_crc32c(0, "123456789", 9), 0xE3069283u);
    /* Chained == one shot. */
    assert_int_equal(xf_crc32c(xf_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    assert_int_equal(xf_crc32c(0, "", 0), 0);
}

/* Hand-written from doc/proxy-protocol.txt §2.2: TCP4 192.0.2.1:12345 ->
   198.51.100.2:5222, ALPN "xmpp-client", AUTHORITY "a.example". */
static void test_encode_v4_exact(void **state)
{
    (void)state;
    static const uint8_t want[] = {
        SIG,
        0x21,                               /* version 2, command PROXY */
        0x11,                               /* AF_INET, STREAM */
        0x00, 0x26,                         /* 12 + 14 + 12 = 38 */
        0xC0, 0x00, 0x02, 0x01,             /* src 192.0.2.1 */
        0xC6, 0x33, 0x64, 0x02,             /* dst 198.51.100.2 */
        0x30, 0x39,                         /* sport 12345 */
        0x14, 0x66,                         /* dport 5222 */
        0x01, 0x00, 0x0B, 'x', 'm', 'p', 'p', '-', 'c', 'l', 'i', 'e', 'n', 't',
        0x02, 0x00, 0x09, 'a', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e',
    };
    struct sockaddr_in s = v4("192.0.2.1", 12345), d = v4("198.51.100.2", 5222);
    xf_pp2_info in = { .src = (struct sockaddr *)&s, .dst = (struct sockaddr *)&d,
                       .alpn = "xmpp-client", .authority = "a.example" };
    uint8_t out[256];
    int n = xf_pp2_encode(&in, out, sizeof out);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(out, want, sizeof want);

    /* Every smaller buffer is refused rather than overrun. */
    for (size_t cap = 0; cap < sizeof want; cap++)
        assert_int_equal(xf_pp2_encode(&in, out, cap), -1);

    /* Addresses and no TLVs: exactly 28 bytes. */
    xf_pp2_info bare = { .src = (struct sockaddr *)&s, .dst = (struct sockaddr *)&d };
    assert_int_equal(xf_pp2_encode(&bare, out, sizeof out), 28);
    assert_int_equal(out[15], 12);
}

static void check_ssl(const xf_pp2_header *h)
{
    const xf_pp2_tlv *ssl = xf_pp2_find(h, XF_PP2_TYPE_SSL);
    assert_non_null(ssl);
    uint8_t client;
    uint32_t verify;
    xf_pp2_tlv subs[8];
    int n = xf_pp2_ssl_parse(ssl, &client, &verify, subs, 8);
    assert_int_equal(n, 5);
    assert_int_equal(client, XF_PP2_CLIENT_SSL | XF_PP2_CLIENT_CERT_CONN);
    assert_int_equal(verify, 0);
    static const struct { uint8_t t; const char *v; } want[] = {
        { XF_PP2_SUBTYPE_SSL_VERSION, "TLSv1.3" }, { XF_PP2_SUBTYPE_SSL_CN, "peer.example" },
        { XF_PP2_SUBTYPE_SSL_CIPHER, "TLS_AES_128_GCM_SHA256" },
        { XF_PP2_SUBTYPE_SSL_SIG_ALG, "ECDSA-SHA256" }, { XF_PP2_SUBTYPE_SSL_KEY_ALG, "EC256" },
    };
    for (int i = 0; i < 5; i++) {
        assert_int_equal(subs[i].type, want[i].t);
        assert_int_equal(subs[i].len, strlen(want[i].v));
        assert_memory_equal(subs[i].value, want[i].v, subs[i].len);
    }
}

static void roundtrip(const struct sockaddr *src, const struct sockaddr *dst, int crc,
                      int want_family)
{
    xf_pp2_info in = { .src = src, .dst = dst, .alpn = "xmpp-server",
                       .authority = "b.example", .ssl = 1, .client_cert = 1, .verify = 0,
                       .ssl_version = "TLSv1.3", .ssl_cipher = "TLS_AES_128_GCM_SHA256",
                       .ssl_sig_alg = "ECDSA-SHA256", .ssl_key_alg = "EC256",
                       .ssl_cn = "peer.example", .unique_id = "conn-42", .crc32c = crc };
    uint8_t buf[600];
    int n = xf_pp2_encode(&in, buf, sizeof buf - 4);
    assert_true(n > 16);
    memcpy(buf + n, "<?xm", 4);            /* payload after the header is not consumed */
    xf_pp2_header h;
    assert_int_equal(xf_pp2_decode(buf, (size_t)n + 4, &h), n);
    assert_int_equal(h.command, 1);
    assert_int_equal(h.family, want_family);
    assert_int_equal(h.length, (size_t)n);
    assert_int_equal(h.n_tlvs, crc ? 5 : 4);
    assert_int_equal(h.tlvs[0].type, XF_PP2_TYPE_ALPN);
    assert_memory_equal(h.tlvs[0].value, "xmpp-server", 11);
    assert_int_equal(h.tlvs[1].type, XF_PP2_TYPE_AUTHORITY);
    assert_int_equal(h.tlvs[1].len, 9);
    assert_memory_equal(h.tlvs[1].value, "b.example", 9);
    assert_int_equal(h.tlvs[3].type, XF_PP2_TYPE_UNIQUE_ID);
    assert_memory_equal(h.tlvs[3].value, "conn-42", 7);
    check_ssl(&h);
    if (crc) assert_non_null(xf_pp2_find(&h, XF_PP2_TYPE_CRC32C));

    if (want_family == 0x11) {
        const struct sockaddr_in *s = (const void *)&h.src, *d = (const void *)&h.dst;
        assert_int_equal(s->sin_family, AF_INET);
        assert_int_equal(ntohs(s->sin_port), 40000);
        assert_int_equal(ntohs(d->sin_port), 5269);
        assert_int_equal(ntohl(s->sin_addr.s_addr), 0xC0000201);   /* 192.0.2.1 */
    } else if (want_family == 0x21) {
        const struct sockaddr_in6 *s = (const void *)&h.src, *d = (const void *)&h.dst;
        assert_int_equal(s->sin6_family, AF_INET6);
        assert_memory_equal(&s->sin6_addr, &((const struct sockaddr_in6 *)src)->sin6_addr, 16);
        assert_memory_equal(&d->sin6_addr, &((const struct sockaddr_in6 *)dst)->sin6_addr, 16);
        assert_int_equal(ntohs(s->sin6_port), 40000);
        assert_int_equal(ntohs(d->sin6_port), 5269);
    } else {
        assert_int_equal(h.src.ss_family, 0);
    }

    /* Any strict prefix is incomplete, never invalid. */
    for (int i = 0; i < n; i++)
        assert_int_equal(xf_pp2_decode(buf, (size_t)i, &h), 0);

    if (crc) {
        /* Any single flipped bit after the version byte breaks the checksum (or the
           structure): never accepted. Two exceptions are inherent to the format:
           0x21 ^ 1 is LOCAL, which is skipped unread, and a flipped CRC32C type byte
           turns the checksum into another TLV (it is the last 7 bytes). */
        for (int i = 13; i < n; i++) {
            if (i == n - 7) continue;
            buf[i] ^= 0x01;
            assert_int_not_equal(xf_pp2_decode(buf, (size_t)n, &h), n);
            buf[i] ^= 0x01;
        }
    }
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct sockaddr_in s4 = v4("192.0.2.1", 40000), d4 = v4("198.51.100.7", 5269);
    struct sockaddr_in6 s6 = v6("2001:db8::1", 40000), d6 = v6("2001:db8::2:7", 5269);
    struct sockaddr_in6 m4 = v6("::ffff:192.0.2.1", 40000), md = v6("::ffff:198.51.100.7", 5269);
    roundtrip((struct sockaddr *)&s4, (struct sockaddr *)&d4, 0, 0x11);
    roundtrip((struct sockaddr *)&s4, (struct sockaddr *)&d4, 1, 0x11);
    roundtrip((struct sockaddr *)&s6, (struct sockaddr *)&d6, 0, 0x21);
    roundtrip((struct sockaddr *)&s6, (struct sockaddr *)&d6, 1, 0x21);
    /* v4-mapped on both sides (dual-stack listener) -> TCP4; mixed with v4 too. */
    roundtrip((struct sockaddr *)&m4, (struct sockaddr *)&md, 0, 0x11);
    roundtrip((struct sockaddr *)&m4, (struct sockaddr *)&d4, 1, 0x11);
    /* Mixed families or a missing address -> UNSPEC. */
    roundtrip((struct sockaddr *)&s4, (struct sockaddr *)&d6, 0, 0x00);
    roundtrip(NULL, (struct sockaddr *)&d6, 1, 0x00);
    roundtrip((struct sockaddr *)&s6, NULL, 0, 0x00);
}

static void test_encode_limits(void **state)
{
    (void)state;
    char id[130];
    memset(id, 'x', sizeof id - 1);
    id[129] = '\0';
    uint8_t out[512];
    xf_pp2_info in = { .unique_id = id };
    assert_int_equal(xf_pp2_encode(&in, out, sizeof out), -1);       /* 129 > 128 */
    id[128] = '\0';
    assert_int_equal(xf_pp2_encode(&in, out, sizeof out), 16 + 3 + 128);
}

static void test_decode_local(void **state)
{
    (void)state;
    /* LOCAL with a body that is not even valid TLV structure: skipped whole. */
    static const uint8_t h[] = { SIG, 0x20, 0x00, 0x00, 0x05, 0xFF, 0xFF, 0xFF, 0x01, 0x02,
                                 '<', '?' };
    xf_pp2_header out;
    assert_int_equal(xf_pp2_decode(h, sizeof h, &out), 21);
    assert_int_equal(out.command, 0);
    assert_int_equal(out.n_tlvs, 0);
    assert_int_equal(out.length, 21);
    assert_int_equal(xf_pp2_decode(h, 20, &out), 0);                 /* body incomplete */
    /* LOCAL, TCP4 family, len 0 */
    static const uint8_t h2[] = { SIG, 0x20, 0x11, 0x00, 0x00 };
    assert_int_equal(xf_pp2_decode(h2, sizeof h2, &out), 16);
}

static void test_decode_invalid(void **state)
{
    (void)state;
    xf_pp2_header out;
    /* TLV overrunning len: TCP4 + TLV declaring 5 bytes with 2 present. */
    static const uint8_t overrun[] = { SIG, 0x21, 0x11, 0x00, 0x11, 1, 2, 3, 4, 5, 6, 7, 8,
                                       0, 1, 0, 2, 0x02, 0x00, 0x05, 'a', 'b', 'c', 'd', 'e' };
    assert_int_equal(xf_pp2_decode(overrun, sizeof overrun, &out), -1);
    /* Dangling 2 bytes after the address block. */
    static const uint8_t dangling[] = { SIG, 0x21, 0x11, 0x00, 0x0E, 1, 2, 3, 4, 5, 6, 7, 8,
                                        0, 1, 0, 2, 0x04, 0x00 };
    assert_int_equal(xf_pp2_decode(dangling, sizeof dangling, &out), -1);
    /* len shorter than the TCP4 address block. */
    static const uint8_t shortaddr[] = { SIG, 0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4 };
    assert_int_equal(xf_pp2_decode(shortaddr, sizeof shortaddr, &out), -1);
    /* Version nibble 1 and 3; command 2. */
    static uint8_t ver[] = { SIG, 0x11, 0x11, 0x00, 0x00 };
    assert_int_equal(xf_pp2_decode(ver, sizeof ver, &out), -1);
    assert_int_equal(xf_pp2_decode(ver, 13, &out), -1);              /* seen early */
    ver[12] = 0x31;
    assert_int_equal(xf_pp2_decode(ver, sizeof ver, &out), -1);
    ver[12] = 0x22;
    assert_int_equal(xf_pp2_decode(ver, sizeof ver, &out), -1);
    ver[12] = 0x21;
    ver[13] = 0x00;
    assert_int_equal(xf_pp2_decode(ver, sizeof ver, &out), 16);      /* PROXY UNSPEC ok */
    /* Unknown family bytes. */
    const uint8_t fams[] = { 0x01, 0x10, 0x13, 0x23, 0x33, 0x41, 0xFF };
    for (size_t i = 0; i < sizeof fams; i++) {
        ver[13] = fams[i];
        assert_int_equal(xf_pp2_decode(ver, sizeof ver, &out), -1);
    }
    /* Bad signature, visible before 16 bytes. */
    static const uint8_t badsig[] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x01 };
    assert_int_equal(xf_pp2_decode(badsig, sizeof badsig, &out), -1);
    assert_int_equal(xf_pp2_decode(badsig, 4, &out), 0);
    assert_int_equal(xf_pp2_decode((const uint8_t *)"PROXY TCP4 ", 11, &out), -1);
    assert_int_equal(xf_pp2_decode(badsig, 0, &out), 0);
    /* SSL TLV shorter than client+verify; UNIQUE_ID over 128 bytes. */
    static const uint8_t shortssl[] = { SIG, 0x21, 0x00, 0x00, 0x06, 0x20, 0x00, 0x03, 1, 0, 0 };
    assert_int_equal(xf_pp2_decode(shortssl, sizeof shortssl, &out), -1);
    uint8_t uid[16 + 3 + 129] = { SIG, 0x21, 0x00, 0x00, 3 + 129, 0x05, 0x00, 129 };
    assert_int_equal(xf_pp2_decode(uid, sizeof uid, &out), -1);
    uid[15] = 3 + 128;
    uid[18] = 128;
    assert_int_equal(xf_pp2_decode(uid, sizeof uid - 1, &out), 16 + 3 + 128);
}

static void test_decode_unknown_tlv_and_crc(void **state)
{
    (void)state;
    xf_pp2_header out;
    /* UNSPEC with an unknown custom TLV 0xE0 and a NOOP: both kept. */
    static const uint8_t h[] = { SIG, 0x21, 0x00, 0x00, 0x0A, 0xE0, 0x00, 0x02, 'h', 'i',
                                 0x04, 0x00, 0x02, 0x00, 0x00 };
    assert_int_equal(xf_pp2_decode(h, sizeof h, &out), 26);
    assert_int_equal(out.n_tlvs, 2);
    assert_int_equal(out.tlvs[0].type, 0xE0);
    assert_int_equal(out.tlvs[0].len, 2);
    assert_memory_equal(out.tlvs[0].value, "hi", 2);
    assert_int_equal(out.tlvs[1].type, XF_PP2_TYPE_NOOP);

    /* CRC32C by hand: header with a zeroed CRC TLV, checksum filled in. */
    uint8_t c[] = { SIG, 0x21, 0x11, 0x00, 0x13, 10, 0, 0, 1, 10, 0, 0, 2, 0x1F, 0x90,
                    0x14, 0x66, 0x03, 0x00, 0x04, 0, 0, 0, 0 };
    uint32_t crc = xf_crc32c(0, c, sizeof c);
    c[sizeof c - 4] = (uint8_t)(crc >> 24);
    c[sizeof c - 3] = (uint8_t)(crc >> 16);
    c[sizeof c - 2] = (uint8_t)(crc >> 8);
    c[sizeof c - 1] = (uint8_t)crc;
    assert_int_equal(xf_pp2_decode(c, sizeof c, &out), sizeof c);
    c[sizeof c - 1] ^= 0x80;                                        /* bad CRC32C */
    assert_int_equal(xf_pp2_decode(c, sizeof c, &out), -1);
    c[sizeof c - 1] ^= 0x80;
    c[20] ^= 1;                                                     /* bad payload */
    assert_int_equal(xf_pp2_decode(c, sizeof c, &out), -1);
    /* CRC32C TLV of the wrong length. */
    static const uint8_t c3[] = { SIG, 0x21, 0x00, 0x00, 0x06, 0x03, 0x00, 0x03, 0, 0, 0 };
    assert_int_equal(xf_pp2_decode(c3, sizeof c3, &out), -1);
}

static void test_decode_too_many_tlvs(void **state)
{
    (void)state;
    uint8_t h[16 + 33 * 3] = { SIG, 0x21, 0x00, 0x00, 33 * 3 };
    for (int i = 0; i < 33; i++) h[16 + 3 * i] = XF_PP2_TYPE_NOOP;
    xf_pp2_header out;
    assert_int_equal(xf_pp2_decode(h, sizeof h, &out), -1);
    h[15] = 32 * 3;
    assert_int_equal(xf_pp2_decode(h, sizeof h - 3, &out), 16 + 32 * 3);
    assert_int_equal(out.n_tlvs, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vector),
        cmocka_unit_test(test_encode_v4_exact),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_decode_local),
        cmocka_unit_test(test_decode_invalid),
        cmocka_unit_test(test_decode_unknown_tlv_and_crc),
        cmocka_unit_test(test_decode_too_many_tlvs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
