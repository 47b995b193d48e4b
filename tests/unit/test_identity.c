/* Unit tests for certs/identity.c and certs/idna.c: RFC 6125 as profiled by
   RFC 6120 §13.7, spec-digest §3 and §10 items 12, 13, 17, 18. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "certs/identity.h"
#include "certs/idna.h"
#include "certs_fixtures/mkcert.h"

static int covers(const struct mk_opts *o, const char *name)
{
    mbedtls_x509_crt c;
    mk_parsed(o, &c);
    int r = xf_identity_covers_dns(&c, name);
    mbedtls_x509_crt_free(&c);
    return r;
}

static int check(const struct mk_opts *o, const char *dom, enum xf_service svc,
                 const char *target, struct xf_id_verdict *v)
{
    mbedtls_x509_crt c;
    mk_parsed(o, &c);
    int r = xf_identity_check(&c, dom, svc, target, v);
    mbedtls_x509_crt_free(&c);
    return r;
}

/* RFC 3492 §7.1 style vectors and well-known IDN names. */
static void test_punycode(void **s)
{
    (void)s;
    char out[128];
    const uint32_t buecher[] = { 'b', 0xFC, 'c', 'h', 'e', 'r' };
    assert_int_equal(xf_idna_punycode_encode(buecher, 6, out, sizeof out), 9);
    assert_string_equal(out, "bcher-kva");
    /* RFC 3492 §7.1 (A) Arabic (Egyptian). */
    const uint32_t arabic[] = { 0x0644, 0x064A, 0x0647, 0x0645, 0x0627, 0x0628, 0x062A, 0x0643,
                                0x0644, 0x0645, 0x0648, 0x0634, 0x0639, 0x0631, 0x0628, 0x064A,
                                0x061F };
    assert_true(xf_idna_punycode_encode(arabic, 17, out, sizeof out) > 0);
    assert_string_equal(out, "egbpdaj6bu4bxfgehfvwxn");
    /* RFC 3492 §7.1 (L) 3<nen>B<gumi><kinpachi><sensei>. */
    const uint32_t l[] = { '3', 0x5E74, 'B', 0x7D44, 0x91D1, 0x516B, 0x5148, 0x751F };
    assert_true(xf_idna_punycode_encode(l, 8, out, sizeof out) > 0);
    assert_string_equal(out, "3B-ww4c5e180e575a65lsy2b");
    assert_int_equal(xf_idna_punycode_encode(buecher, 6, out, 5), XF_IDNA_ERR_TOOLONG);
}

static void test_normalize(void **s)
{
    (void)s;
    char out[256];
    assert_true(xf_idna_normalize("Example.COM.", out, sizeof out) > 0);
    assert_string_equal(out, "example.com");
    assert_true(xf_idna_normalize("b\xC3\xBC" "cher.Example", out, sizeof out) > 0);
    assert_string_equal(out, "xn--bcher-kva.example");
    assert_true(xf_idna_normalize("M\xC3\xBCnchen.example", out, sizeof out) > 0);
    assert_string_equal(out, "xn--mnchen-3ya.example");
    assert_true(xf_idna_normalize("*.example.com", out, sizeof out) < 0);
    assert_true(xf_idna_normalize("a..example", out, sizeof out) < 0);
    assert_true(xf_idna_normalize("-a.example", out, sizeof out) < 0);
    assert_true(xf_idna_normalize("", out, sizeof out) < 0);
    assert_true(xf_idna_normalize("bad\xC3.example", out, sizeof out) < 0);
    assert_true(xf_idna_normalize("_xmpp-server.example", out, sizeof out) < 0);
}

/* §10 item 12: wildcard rules. */
static void test_wildcards(void **s)
{
    (void)s;
    struct mk_opts o = { .subject = "CN=wild", .dns = { "*.example.com" }, .ca = -1 };
    assert_int_equal(covers(&o, "x.example.com"), 1);
    assert_int_equal(covers(&o, "X.Example.COM"), 1);
    assert_int_equal(covers(&o, "example.com"), 0);
    assert_int_equal(covers(&o, "a.b.example.com"), 0);
    struct mk_opts partial = { .subject = "CN=p", .dns = { "f*.example.com" }, .ca = -1 };
    assert_int_equal(covers(&partial, "foo.example.com"), 0);
    struct mk_opts mid = { .subject = "CN=p", .dns = { "a.*.example.com" }, .ca = -1 };
    assert_int_equal(covers(&mid, "a.b.example.com"), 0);
    struct mk_opts tld = { .subject = "CN=p", .dns = { "*.com" }, .ca = -1 };
    assert_int_equal(covers(&tld, "example.com"), 0);
    struct mk_opts idnwild = { .subject = "CN=p", .dns = { "xn--*.example.com" }, .ca = -1 };
    assert_int_equal(covers(&idnwild, "xn--bcher-kva.example.com"), 0);
    struct xf_id_verdict v;
    assert_int_equal(check(&o, "x.example.com", XF_SERVICE_SERVER, NULL, &v), 1);
    assert_int_equal(v.type, XF_ID_DNS);
    assert_string_equal(v.presented, "*.example.com");
}

/* §10 item 13: SAN other.example + CN example.com → no match. */
static void test_cn_only_without_san(void **s)
{
    (void)s;
    struct mk_opts both = { .subject = "CN=example.com", .dns = { "other.example" }, .ca = -1 };
    assert_int_equal(covers(&both, "example.com"), 0);
    assert_int_equal(covers(&both, "other.example"), 1);
    struct xf_id_verdict v;
    assert_int_equal(check(&both, "example.com", XF_SERVICE_SERVER, NULL, &v), 0);
    assert_non_null(strstr(v.reason, "ignored: SAN present"));

    struct mk_opts cn = { .subject = "O=Org,CN=Example.com", .ca = -1 };
    assert_int_equal(covers(&cn, "example.com"), 1);
    assert_int_equal(check(&cn, "example.com", XF_SERVICE_CLIENT, NULL, &v), 1);
    assert_int_equal(v.type, XF_ID_CN);
    /* A CN that is not shaped like a host name is never used. */
    struct mk_opts cnbad = { .subject = "CN=example", .ca = -1 };
    assert_int_equal(covers(&cnbad, "example"), 0);
    /* An XmppAddr alone also blocks the CN. */
    struct mk_opts x = { .subject = "CN=example.com", .xmpp = { "other.example" }, .ca = -1 };
    assert_int_equal(covers(&x, "example.com"), 0);
    assert_int_equal(check(&x, "example.com", XF_SERVICE_SERVER, NULL, &v), 0);
    /* A URI-ID blocks it too. */
    struct mk_opts u = { .subject = "CN=example.com", .uri = "xmpp:example.com", .ca = -1 };
    assert_int_equal(check(&u, "example.com", XF_SERVICE_SERVER, NULL, &v), 0);
}

/* §10 item 13: SRV-ID for the wrong service; SRV-ID never carries a wildcard. */
static void test_srv_id(void **s)
{
    (void)s;
    struct xf_id_verdict v;
    struct mk_opts o = { .subject = "O=x", .srv = { "_xmpp-server.example.com" }, .ca = -1 };
    assert_int_equal(check(&o, "example.com", XF_SERVICE_SERVER, NULL, &v), 1);
    assert_int_equal(v.type, XF_ID_SRV);
    assert_string_equal(v.reference, "_xmpp-server.example.com");
    assert_int_equal(check(&o, "example.com", XF_SERVICE_CLIENT, NULL, &v), 0);
    assert_non_null(strstr(v.reason, "another service"));
    assert_int_equal(check(&o, "other.com", XF_SERVICE_SERVER, NULL, &v), 0);
    struct mk_opts up = { .subject = "O=x", .srv = { "_XMPP-Client.Example.COM" }, .ca = -1 };
    assert_int_equal(check(&up, "example.com", XF_SERVICE_CLIENT, NULL, &v), 1);
    struct mk_opts w = { .subject = "O=x", .srv = { "_xmpp-server.*.example.com" }, .ca = -1 };
    assert_int_equal(check(&w, "a.example.com", XF_SERVICE_SERVER, NULL, &v), 0);
    /* SRV-ID does not satisfy the plain DNS covers check. */
    assert_int_equal(covers(&o, "example.com"), 0);
}

/* XmppAddr-only certificates; a wildcard in an XmppAddr is literal (§10 item 12). */
static void test_xmppaddr(void **s)
{
    (void)s;
    struct xf_id_verdict v;
    struct mk_opts o = { .subject = "O=x", .xmpp = { "Example.com" }, .ca = -1 };
    assert_int_equal(check(&o, "example.com", XF_SERVICE_SERVER, NULL, &v), 1);
    assert_int_equal(v.type, XF_ID_XMPPADDR);
    struct mk_opts w = { .subject = "O=x", .xmpp = { "*.example.com" }, .ca = -1 };
    assert_int_equal(check(&w, "a.example.com", XF_SERVICE_SERVER, NULL, &v), 0);
    struct mk_opts jid = { .subject = "O=x", .xmpp = { "user@example.com" }, .ca = -1 };
    assert_int_equal(check(&jid, "example.com", XF_SERVICE_SERVER, NULL, &v), 0);
    /* UTF-8 XmppAddr compared as A-label. */
    struct mk_opts idn = { .subject = "O=x", .xmpp = { "b\xC3\xBC" "cher.example" }, .ca = -1 };
    assert_int_equal(check(&idn, "xn--bcher-kva.example", XF_SERVICE_SERVER, NULL, &v), 1);
    assert_int_equal(check(&idn, "B\xC3\xBC" "cher.example", XF_SERVICE_SERVER, NULL, &v), 1);
    /* XmppAddr is not a DNS-ID for covers_dns, and blocks the CN. */
    assert_int_equal(covers(&o, "example.com"), 0);
}

/* IDN: DNS-ID A-label vs reference U-label. */
static void test_idn(void **s)
{
    (void)s;
    struct mk_opts o = { .subject = "O=x", .dns = { "xn--bcher-kva.example", "*.xn--mnchen-3ya.example" }, .ca = -1 };
    assert_int_equal(covers(&o, "b\xC3\xBC" "cher.example"), 1);
    assert_int_equal(covers(&o, "BÜCHER.example"), 0); /* non-ASCII case folding not done */
    assert_int_equal(covers(&o, "xmpp.m\xC3\xBCnchen.example"), 1);
    assert_int_equal(covers(&o, "xmpp.muenchen.example"), 0);
}

/* §10 items 17/18: the secure-delegation reference identities. */
static void test_srv_target(void **s)
{
    (void)s;
    struct xf_id_verdict v;
    struct mk_opts o = { .subject = "O=x", .dns = { "xmpp.hosting.example" }, .ca = -1 };
    assert_int_equal(check(&o, "example.com", XF_SERVICE_SERVER, NULL, &v), 0);
    assert_int_equal(check(&o, "example.com", XF_SERVICE_SERVER, "xmpp.hosting.example.", &v), 1);
    assert_non_null(strstr(v.reason, "secure SRV target"));
    /* The target only ever stands in for a DNS-ID, not for SRV-ID or XmppAddr. */
    struct mk_opts x = { .subject = "O=x", .xmpp = { "xmpp.hosting.example" }, .ca = -1 };
    assert_int_equal(check(&x, "example.com", XF_SERVICE_SERVER, "xmpp.hosting.example", &v), 0);
    assert_int_equal(check(&o, "bad..name", XF_SERVICE_SERVER, NULL, &v), XF_ID_ERR_BADNAME);
}

static void test_extract(void **s)
{
    (void)s;
    mbedtls_x509_crt c;
    struct xf_id_entry e[8];
    size_t n = 0;
    struct mk_opts o = { .subject = "CN=cn.example", .dns = { "a.example" },
                         .srv = { "_xmpp-client.b.example" }, .xmpp = { "c.example" }, .ca = -1 };
    mk_parsed(&o, &c);
    assert_int_equal(xf_identity_extract(&c, e, 8, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(e[0].type, XF_ID_DNS);
    assert_string_equal(e[0].value, "a.example");
    assert_int_equal(e[1].type, XF_ID_SRV);
    assert_string_equal(e[1].value, "_xmpp-client.b.example");
    assert_int_equal(e[2].type, XF_ID_XMPPADDR);
    assert_int_equal(e[3].type, XF_ID_CN);
    assert_string_equal(e[3].value, "cn.example");
    /* max smaller than the count: count still reported. */
    assert_int_equal(xf_identity_extract(&c, e, 1, &n), 0);
    assert_int_equal(n, 4);
    mbedtls_x509_crt_free(&c);
}

static void test_match_dns_direct(void **s)
{
    (void)s;
    assert_int_equal(xf_identity_match_dns("Example.com.", 12, "example.com"), 1);
    assert_int_equal(xf_identity_match_dns("example.com\0.evil", 17, "example.com"), 0);
    assert_int_equal(xf_identity_match_dns("*", 1, "example.com"), 0);
    assert_int_equal(xf_identity_match_dns("*.", 2, "example.com"), 0);
    assert_int_equal(xf_identity_match_dns("**.example.com", 14, "a.example.com"), 0);
}

/* Item 3: every SAN entry is matched, not only the first 64 (Let's Encrypt
   issues certificates with 100 names). */
static void test_many_san_entries(void **s)
{
    (void)s;
    static unsigned char raw[8000];
    size_t rl = 0;
    struct xf_id_verdict v;
    for (int i = 0; i < 100; i++) {
        char name[40];
        int n = snprintf(name, sizeof name, "n%d.example.net", i);
        rl += mk_put_tlv(raw + rl, 0x82, name, (size_t)n);
    }
    struct mk_opts o = { .subject = "CN=n0.example.net", .ca = -1, .raw_san = raw, .raw_san_len = rl };
    assert_int_equal(check(&o, "n63.example.net", XF_SERVICE_SERVER, NULL, &v), 1);
    assert_int_equal(check(&o, "n64.example.net", XF_SERVICE_SERVER, NULL, &v), 1);
    assert_int_equal(check(&o, "n99.example.net", XF_SERVICE_SERVER, NULL, &v), 1);
    assert_string_equal(v.presented, "n99.example.net");
    assert_int_equal(check(&o, "n100.example.net", XF_SERVICE_SERVER, NULL, &v), 0);
    assert_int_equal(covers(&o, "n99.example.net"), 1);
    /* The extraction still reports the full count. */
    mbedtls_x509_crt c;
    struct xf_id_entry ids[4];
    size_t n = 0;
    mk_parsed(&o, &c);
    assert_int_equal(xf_identity_extract(&c, ids, 4, &n), 0);
    assert_int_equal(n, 101); /* 100 DNS-IDs + the CN */
    mbedtls_x509_crt_free(&c);
}

/* Item 4: an XmppAddr otherName with the right OID but no [0] wrapper is a
   malformed SAN identifier: it never matches, and it still blocks the CN. */
static void test_malformed_xmppaddr_blocks_cn(void **s)
{
    (void)s;
    static const unsigned char bad[] = {
        0xA0, 0x16,                                            /* otherName */
        0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05, /* id-on-xmppAddr */
        0x0C, 0x0A, 'x', 'm', 'p', 'p', '.', 'e', 'x', 'a', 'm', 'p' /* UTF8String, no [0] */
    };
    struct xf_id_verdict v;
    struct mk_opts o = { .subject = "CN=example.com", .ca = -1, .raw_san = bad, .raw_san_len = sizeof bad };
    assert_int_equal(check(&o, "example.com", XF_SERVICE_SERVER, NULL, &v), 0);
    assert_non_null(strstr(v.reason, "malformed"));
    assert_int_equal(covers(&o, "example.com"), 0);
    /* Same for an SRVName with no [0]. */
    unsigned char bad_srv[sizeof bad];
    memcpy(bad_srv, bad, sizeof bad);
    bad_srv[11] = 0x07;
    bad_srv[12] = 0x16;
    struct mk_opts o2 = { .subject = "CN=example.com", .ca = -1, .raw_san = bad_srv, .raw_san_len = sizeof bad_srv };
    assert_int_equal(check(&o2, "example.com", XF_SERVICE_SERVER, NULL, &v), 0);
    /* An unknown otherName is not an identifier: the CN is still used. */
    unsigned char other[sizeof bad];
    memcpy(other, bad, sizeof bad);
    other[11] = 0x09;
    struct mk_opts o3 = { .subject = "CN=example.com", .ca = -1, .raw_san = other, .raw_san_len = sizeof other };
    assert_int_equal(check(&o3, "example.com", XF_SERVICE_SERVER, NULL, &v), 1);
    assert_int_equal(v.type, XF_ID_CN);
}

/* A dNSName with an embedded NUL ("a.example\0.evil") matches neither half. */
static void test_nul_in_dnsname(void **s)
{
    (void)s;
    static const char name[] = "a.example\0.evil";
    unsigned char raw[64];
    size_t rl = mk_put_tlv(raw, 0x82, name, sizeof name - 1);
    struct xf_id_verdict v;
    struct mk_opts o = { .subject = "CN=a.example", .ca = -1, .raw_san = raw, .raw_san_len = rl };
    assert_int_equal(sizeof name - 1, 15);
    assert_int_equal(check(&o, "a.example", XF_SERVICE_SERVER, NULL, &v), 0);
    assert_int_equal(check(&o, "evil", XF_SERVICE_SERVER, NULL, &v), 0);
    assert_int_equal(check(&o, "a.example.evil", XF_SERVICE_SERVER, NULL, &v), 0);
    assert_int_equal(covers(&o, "a.example"), 0);
    assert_int_equal(covers(&o, "evil"), 0);
    /* It is a (malformed) DNS-ID, so the CN a.example is not used either. */
    assert_non_null(strstr(v.reason, "malformed"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_punycode),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_cn_only_without_san),
        cmocka_unit_test(test_srv_id),
        cmocka_unit_test(test_xmppaddr),
        cmocka_unit_test(test_idn),
        cmocka_unit_test(test_srv_target),
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_match_dns_direct),
        cmocka_unit_test(test_many_san_entries),
        cmocka_unit_test(test_malformed_xmppaddr_blocks_cn),
        cmocka_unit_test(test_nul_in_dnsname),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
