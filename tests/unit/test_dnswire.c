/* Unit tests for proxy/dnswire.c: the query bytes, and answer parsing including the
   hostile cases (compression loops, forward pointers, truncation, mismatched
   questions, CNAME loops, bad lengths, odd bytes in names, TTLs with the top bit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "proxy/dnswire.h"

struct msg { uint8_t b[1024]; size_t n; };
static void p8(struct msg *m, unsigned v) { m->b[m->n++] = (uint8_t)v; }
static void p16(struct msg *m, unsigned v) { p8(m, v >> 8); p8(m, v & 0xff); }
static void p32(struct msg *m, uint32_t v) { p16(m, v >> 16); p16(m, v & 0xffff); }
static void pname(struct msg *m, const char *n)
{
    while (*n) {
        const char *d = strchr(n, '.');
        size_t l = d ? (size_t)(d - n) : strlen(n);
        p8(m, (unsigned)l);
        memcpy(m->b + m->n, n, l);
        m->n += l;
        n += l + (d ? 1 : 0);
    }
    p8(m, 0);
}
static void hdr(struct msg *m, unsigned flags, unsigned an, unsigned ns)
{
    m->n = 0;
    p16(m, 0x4242); p16(m, flags); p16(m, 1); p16(m, an); p16(m, ns); p16(m, 0);
}
static void question(struct msg *m, const char *n, unsigned t) { pname(m, n); p16(m, t); p16(m, 1); }
static void rrh(struct msg *m, unsigned type, uint32_t ttl, unsigned rdlen)
{
    p16(m, 0xC00C); p16(m, type); p16(m, 1); p32(m, ttl); p16(m, rdlen);
}

#define SRVQ "_xmpp-server._tcp.example.net"

static void test_query_bytes(void **st)
{
    (void)st;
    uint8_t buf[XF_DNS_QUERY_MAX];
    int n = xf_dnswire_query(buf, sizeof buf, 0xBEEF, "Example.NET.", XF_DNS_T_SRV);
    static const uint8_t want[] = {
        0xBE, 0xEF, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1,       /* RD, AD; 1 q, 1 ar */
        7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'n', 'e', 't', 0, 0, 33, 0, 1,
        0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0 };              /* OPT, 1232, no DO */
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    assert_int_equal(xf_dnswire_query(buf, sizeof buf, 1, "a..b", 1), XF_DNSWIRE_ERR_ARG);
    assert_int_equal(xf_dnswire_query(buf, sizeof buf, 1, "a b", 1), XF_DNSWIRE_ERR_ARG);
    assert_int_equal(xf_dnswire_query(buf, sizeof buf, 1, "", 1), XF_DNSWIRE_ERR_ARG);
    assert_int_equal(xf_dnswire_query(buf, 10, 1, "a.b", 1), XF_DNSWIRE_ERR_ARG);
    char big[300];
    memset(big, 'a', sizeof big);
    big[299] = '\0';
    assert_int_equal(xf_dnswire_query(buf, sizeof buf, 1, big, 1), XF_DNSWIRE_ERR_ARG);
}

static void test_srv_compressed(void **st)
{
    (void)st;
    struct msg m;
    xf_dns_result r;
    hdr(&m, 0x81A0, 2, 0);
    question(&m, SRVQ, XF_DNS_T_SRV);
    /* target "xmpp" + pointer to "example.net" inside the question (offset 12+13+5). */
    rrh(&m, XF_DNS_T_SRV, 0x80000001u, 6 + 5 + 2);    /* TTL with the top bit -> 0 */
    p16(&m, 5); p16(&m, 10); p16(&m, 5269); pname(&m, "xmpp"); m.n--; p16(&m, 0xC000 | 30);
    rrh(&m, XF_DNS_T_SRV, 100, 6 + 1);
    p16(&m, 0); p16(&m, 0); p16(&m, 0); p8(&m, 0);    /* "." target */
    assert_int_equal(xf_dnswire_parse(m.b, m.n, "_XMPP-Server._tcp.example.net.",
                                      XF_DNS_T_SRV, &r), 0);
    assert_int_equal(r.status, XF_DNS_NOERROR);
    assert_int_equal(r.ad, 1);
    assert_int_equal(r.ttl, 0);
    assert_int_equal(r.n_srv, 2);
    assert_string_equal(r.srv[0].target, "xmpp.example.net");
    assert_int_equal(r.srv[0].priority, 5);
    assert_int_equal(r.srv[0].weight, 10);
    assert_int_equal(r.srv[0].port, 5269);
    assert_string_equal(r.srv[1].target, ".");
    xf_dns_result_free(&r);
}

static void expect_status(const struct msg *m, const char *q, uint16_t t, int want)
{
    xf_dns_result r;
    assert_int_equal(xf_dnswire_parse(m->b, m->n, q, t, &r), 0);
    assert_int_equal(r.status, want);
    if (want != XF_DNS_NOERROR) {
        assert_int_equal(r.n_srv, 0);
        assert_int_equal(r.n_addr, 0);
    }
    xf_dns_result_free(&r);
}

static void test_hostile(void **st)
{
    (void)st;
    struct msg m;
    /* A pointer to itself / forward: refused. */
    hdr(&m, 0x8180, 1, 0);
    question(&m, "a.example", XF_DNS_T_A);
    size_t at = m.n;
    p16(&m, 0xC000 | (unsigned)at); p16(&m, 1); p16(&m, 1); p32(&m, 1); p16(&m, 4); p32(&m, 0);
    expect_status(&m, "a.example", XF_DNS_T_A, XF_DNS_ERROR);
    m.b[at + 1] = (uint8_t)(at + 2);
    expect_status(&m, "a.example", XF_DNS_T_A, XF_DNS_ERROR);

    /* Truncated record. */
    hdr(&m, 0x8180, 1, 0);
    question(&m, "a.example", XF_DNS_T_A);
    rrh(&m, XF_DNS_T_A, 60, 4); p16(&m, 0xC000);
    expect_status(&m, "a.example", XF_DNS_T_A, XF_DNS_ERROR);

    /* A with 5 bytes of RDATA. */
    hdr(&m, 0x8180, 1, 0);
    question(&m, "a.example", XF_DNS_T_A);
    rrh(&m, XF_DNS_T_A, 60, 5); p32(&m, 0x01020304); p8(&m, 5);
    expect_status(&m, "a.example", XF_DNS_T_A, XF_DNS_ERROR);

    /* A good answer, then the wrong question / not a response / truncated (TC). */
    hdr(&m, 0x8180, 1, 0);
    question(&m, "a.example", XF_DNS_T_A);
    rrh(&m, XF_DNS_T_A, 60, 4); p32(&m, 0xC0000201);
    expect_status(&m, "a.example", XF_DNS_T_A, XF_DNS_NOERROR);
    expect_status(&m, "b.example", XF_DNS_T_A, XF_DNS_ERROR);
    expect_status(&m, "a.example", XF_DNS_T_AAAA, XF_DNS_ERROR);
    m.b[2] = 0x01;
    expect_status(&m, "a.example", XF_DNS_T_A, XF_DNS_ERROR);
    m.b[2] = 0x83;
    expect_status(&m, "a.example", XF_DNS_T_A, XF_DNS_ERROR);
    m.b[2] = 0x81; m.b[3] = 0x85;                          /* REFUSED */
    expect_status(&m, "a.example", XF_DNS_T_A, XF_DNS_ERROR);
    expect_status(&m, "a.example", XF_DNS_T_A, XF_DNS_ERROR);
    assert_int_equal(xf_dnswire_parse(m.b, 11, "a.example", 1, &(xf_dns_result){ 0 }), 0);

    /* CNAME loop a -> b -> a: no records, refused as ERROR (not NODATA). */
    hdr(&m, 0x8180, 2, 0);
    question(&m, "a.example", XF_DNS_T_A);
    rrh(&m, XF_DNS_T_CNAME, 60, 11); pname(&m, "b.example");
    pname(&m, "b.example"); p16(&m, XF_DNS_T_CNAME); p16(&m, 1); p32(&m, 60); p16(&m, 2);
    p16(&m, 0xC00C);
    expect_status(&m, "a.example", XF_DNS_T_A, XF_DNS_ERROR);

    /* An SRV target with a dot and a space inside a label: kept, but as '?'. */
    hdr(&m, 0x8180, 1, 0);
    question(&m, SRVQ, XF_DNS_T_SRV);
    rrh(&m, XF_DNS_T_SRV, 60, 6 + 6);
    p16(&m, 0); p16(&m, 0); p16(&m, 5269); p8(&m, 4); p8(&m, 'a'); p8(&m, '.'); p8(&m, ' ');
    p8(&m, 'b'); p8(&m, 0);
    xf_dns_result r;
    assert_int_equal(xf_dnswire_parse(m.b, m.n, SRVQ, XF_DNS_T_SRV, &r), 0);
    assert_int_equal(r.status, XF_DNS_NOERROR);
    assert_string_equal(r.srv[0].target, "a??b");
    xf_srv_answer a, none = { XF_SRV_ST_NONE, NULL, 0 };
    xf_srv_target t[2];
    xf_dns_srv_answer(&r, &a);
    assert_int_equal(xf_srv_order("example.net", &none, &a, NULL, NULL, t, 2),
                     XF_SRV_NO_SERVICE);                   /* unusable -> dropped */
    xf_dns_result_free(&r);
}

static void test_negative_ttl(void **st)
{
    (void)st;
    struct msg m;
    xf_dns_result r;
    hdr(&m, 0x8183, 0, 1);
    question(&m, SRVQ, XF_DNS_T_SRV);
    pname(&m, "example.net"); p16(&m, XF_DNS_T_SOA); p16(&m, 1); p32(&m, 900);
    size_t at = m.n;
    p16(&m, 0);
    pname(&m, "ns.example.net"); pname(&m, "h.example.net");
    p32(&m, 1); p32(&m, 2); p32(&m, 3); p32(&m, 4); p32(&m, 45);
    m.b[at + 1] = (uint8_t)(m.n - at - 2);
    assert_int_equal(xf_dnswire_parse(m.b, m.n, SRVQ, XF_DNS_T_SRV, &r), 0);
    assert_int_equal(r.status, XF_DNS_NXDOMAIN);
    assert_int_equal(r.ttl, 45);                             /* min(900, 45) */
    xf_dns_result_free(&r);
    m.b[3] = 0x80;                                           /* NOERROR: NODATA */
    assert_int_equal(xf_dnswire_parse(m.b, m.n, SRVQ, XF_DNS_T_SRV, &r), 0);
    assert_int_equal(r.status, XF_DNS_NODATA);
    assert_int_equal(r.ttl, 45);
    xf_dns_result_free(&r);
    assert_string_equal(xf_dns_status_name(XF_DNS_NODATA), "NODATA");
}

#define TLSAQ "_5269._tcp.xmpp.example.net"

/* TLSA (RFC 6698 §2.1): RDATA kept whole, AD read from the header, records of other
   owners/types skipped, a CNAME followed, a short RDATA refused, SERVFAIL distinct,
   and the deep copy. */
static void test_tlsa(void **st)
{
    (void)st;
    struct msg m;
    xf_dns_result r, c;
    size_t len;
    unsigned char d1[32], d2[64];
    for (size_t i = 0; i < sizeof d1; i++) d1[i] = (unsigned char)i;
    for (size_t i = 0; i < sizeof d2; i++) d2[i] = (unsigned char)(0xA0 + i);

    hdr(&m, 0x81A0, 3, 0);                                   /* QR RD RA, AD */
    question(&m, TLSAQ, XF_DNS_T_TLSA);
    rrh(&m, XF_DNS_T_TLSA, 300, 3 + 32);
    p8(&m, 3); p8(&m, 1); p8(&m, 1);
    memcpy(m.b + m.n, d1, 32); m.n += 32;
    rrh(&m, XF_DNS_T_A, 300, 4);                             /* another type: skipped */
    p32(&m, 0x7F000001);
    rrh(&m, XF_DNS_T_TLSA, 120, 3 + 64);
    p8(&m, 2); p8(&m, 0); p8(&m, 2);
    memcpy(m.b + m.n, d2, 64); m.n += 64;
    assert_int_equal(xf_dnswire_parse(m.b, m.n, TLSAQ, XF_DNS_T_TLSA, &r), 0);
    assert_int_equal(r.status, XF_DNS_NOERROR);
    assert_int_equal(r.ad, 1);
    assert_int_equal(r.ttl, 120);
    assert_int_equal(r.n_tlsa, 2);
    assert_int_equal(r.n_srv + r.n_addr, 0);
    const unsigned char *rd = xf_dns_tlsa_rdata(&r, 0, &len);
    assert_non_null(rd);
    assert_int_equal(len, 35);
    assert_int_equal(rd[0], 3); assert_int_equal(rd[1], 1); assert_int_equal(rd[2], 1);
    assert_memory_equal(rd + 3, d1, 32);
    rd = xf_dns_tlsa_rdata(&r, 1, &len);
    assert_int_equal(len, 67);
    assert_int_equal(rd[0], 2); assert_int_equal(rd[2], 2);
    assert_memory_equal(rd + 3, d2, 64);
    assert_null(xf_dns_tlsa_rdata(&r, 2, &len));
    assert_int_equal(xf_dns_result_copy(&c, &r), 0);
    xf_dns_result_free(&r);                                  /* the copy is deep */
    rd = xf_dns_tlsa_rdata(&c, 1, &len);
    assert_int_equal(len, 67);
    assert_memory_equal(rd + 3, d2, 64);
    xf_dns_result_free(&c);
    assert_int_equal(c.n_tlsa, 0);

    /* Without AD: the same records, ad 0 (the caller then treats them as insecure). */
    m.b[3] = 0x80;
    assert_int_equal(xf_dnswire_parse(m.b, m.n, TLSAQ, XF_DNS_T_TLSA, &r), 0);
    assert_int_equal(r.status, XF_DNS_NOERROR);
    assert_int_equal(r.ad, 0);
    assert_int_equal(r.n_tlsa, 2);
    xf_dns_result_free(&r);

    /* Asked for TLSA, the answer is for SRV: mismatched question, ERROR. */
    expect_status(&m, SRVQ, XF_DNS_T_SRV, XF_DNS_ERROR);

    /* RDATA shorter than the three parameter octets: malformed. */
    hdr(&m, 0x8180, 1, 0);
    question(&m, TLSAQ, XF_DNS_T_TLSA);
    rrh(&m, XF_DNS_T_TLSA, 300, 2);
    p8(&m, 3); p8(&m, 1);
    assert_int_equal(xf_dnswire_parse(m.b, m.n, TLSAQ, XF_DNS_T_TLSA, &r), 0);
    assert_int_equal(r.status, XF_DNS_ERROR);
    assert_int_equal(r.n_tlsa, 0);
    assert_null(r.tlsa_rdata);
    xf_dns_result_free(&r);

    /* Through a CNAME to the records of the alias. */
    hdr(&m, 0x81A0, 2, 0);
    question(&m, TLSAQ, XF_DNS_T_TLSA);
    rrh(&m, XF_DNS_T_CNAME, 300, 0);
    size_t rdl = m.n - 2;
    size_t at = m.n;
    pname(&m, "_5269._tcp.hosting.example.net");
    m.b[rdl] = 0; m.b[rdl + 1] = (uint8_t)(m.n - at);
    pname(&m, "_5269._tcp.hosting.example.net");
    p16(&m, XF_DNS_T_TLSA); p16(&m, 1); p32(&m, 60); p16(&m, 3 + 32);
    p8(&m, 3); p8(&m, 1); p8(&m, 1);
    memcpy(m.b + m.n, d1, 32); m.n += 32;
    assert_int_equal(xf_dnswire_parse(m.b, m.n, TLSAQ, XF_DNS_T_TLSA, &r), 0);
    assert_int_equal(r.status, XF_DNS_NOERROR);
    assert_string_equal(r.cname, "_5269._tcp.hosting.example.net");
    assert_int_equal(r.n_tlsa, 1);
    xf_dns_result_free(&r);

    /* SERVFAIL (a validating resolver's "bogus") and NXDOMAIN stay apart. */
    hdr(&m, 0x8182, 0, 0);
    question(&m, TLSAQ, XF_DNS_T_TLSA);
    expect_status(&m, TLSAQ, XF_DNS_T_TLSA, XF_DNS_SERVFAIL);
    hdr(&m, 0x81A3, 0, 0);
    question(&m, TLSAQ, XF_DNS_T_TLSA);
    assert_int_equal(xf_dnswire_parse(m.b, m.n, TLSAQ, XF_DNS_T_TLSA, &r), 0);
    assert_int_equal(r.status, XF_DNS_NXDOMAIN);
    assert_int_equal(r.ad, 1);                               /* a secure denial */
    xf_dns_result_free(&r);

    /* The query for it. */
    uint8_t buf[XF_DNS_QUERY_MAX];
    int n = xf_dnswire_query(buf, sizeof buf, 7, TLSAQ, XF_DNS_T_TLSA);
    assert_true(n > 0);
    assert_int_equal(buf[n - 11 - 4 + 0], 0);
    assert_int_equal(buf[n - 11 - 4 + 1], XF_DNS_T_TLSA);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_bytes),
        cmocka_unit_test(test_srv_compressed),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_negative_ttl),
        cmocka_unit_test(test_tlsa),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
