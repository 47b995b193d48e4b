/* Unit tests for certs/pkix.c: chain validation, dates, key usage, cA=TRUE end
   entities (spec-digest §3, §10 item 13), missing intermediates. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "certs/pkix.h"
#include "certs_fixtures/mkcert.h"

struct env {
    struct mk_pki pki;
    mbedtls_x509_crt chain, ca;
};

/* Builds root/intermediate/leaf; chain = leaf [+ intermediate]; ca = root. */
static void setup_env(struct env *e, struct mk_opts leaf, int send_intermediate)
{
    mk_pki_build(&e->pki, leaf);
    const unsigned char *d[2] = { e->pki.leaf, e->pki.inter };
    size_t l[2] = { e->pki.leaf_len, e->pki.inter_len };
    mk_chain(&e->chain, d, l, send_intermediate ? 2 : 1);
    const unsigned char *r[1] = { e->pki.root };
    size_t rl[1] = { e->pki.root_len };
    mk_chain(&e->ca, r, rl, 1);
}

static void free_env(struct env *e)
{
    mbedtls_x509_crt_free(&e->chain);
    mbedtls_x509_crt_free(&e->ca);
    mk_pki_free(&e->pki);
}

static const struct mk_opts GOOD = { .subject = "CN=xmpp.example.com", .dns = { "example.com" },
                                     .ca = 0, .key_usage = MBEDTLS_X509_KU_DIGITAL_SIGNATURE };

static void test_valid_chain(void **s)
{
    (void)s;
    struct env e;
    struct xf_pkix_verdict v;
    setup_env(&e, GOOD, 1);
    assert_int_equal(xf_pkix_verify(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, &v), 1);
    assert_int_equal(v.flags, 0);
    assert_int_equal(xf_pkix_check(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, "example.com", XF_SERVICE_SERVER, NULL, &v), 1);
    assert_int_equal(v.id.type, XF_ID_DNS);
    assert_non_null(strstr(v.reason, "DNS-ID example.com"));
    /* Right chain, wrong name. */
    assert_int_equal(xf_pkix_check(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, "other.example", XF_SERVICE_SERVER, NULL, &v), 0);
    assert_non_null(strstr(v.reason, "chain valid, but no identifier"));
    free_env(&e);
}

static void test_missing_intermediate(void **s)
{
    (void)s;
    struct env e;
    struct xf_pkix_verdict v;
    setup_env(&e, GOOD, 0);
    assert_int_equal(xf_pkix_verify(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, &v), 0);
    assert_true(v.flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
    assert_non_null(strstr(v.reason, "missing intermediate"));
    free_env(&e);
}

static void test_untrusted_root(void **s)
{
    (void)s;
    struct env e, other;
    struct xf_pkix_verdict v;
    setup_env(&e, GOOD, 1);
    setup_env(&other, GOOD, 1);
    assert_int_equal(xf_pkix_verify(&e.chain, &other.ca, XF_PKIX_ROLE_SERVER, &v), 0);
    assert_true(v.flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
    free_env(&e);
    free_env(&other);
}

static void test_dates(void **s)
{
    (void)s;
    struct env e;
    struct xf_pkix_verdict v;
    struct mk_opts old = GOOD;
    old.not_before = "20100101000000";
    old.not_after = "20110101000000";
    setup_env(&e, old, 1);
    assert_int_equal(xf_pkix_verify(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, &v), 0);
    assert_true(v.flags & MBEDTLS_X509_BADCERT_EXPIRED);
    assert_non_null(strstr(v.reason, "expired"));
    free_env(&e);

    struct mk_opts future = GOOD;
    future.not_before = "20900101000000";
    future.not_after = "20950101000000";
    setup_env(&e, future, 1);
    assert_int_equal(xf_pkix_verify(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, &v), 0);
    assert_true(v.flags & MBEDTLS_X509_BADCERT_FUTURE);
    assert_non_null(strstr(v.reason, "not yet valid"));
    free_env(&e);
}

/* §10 item 13: an end-entity certificate with cA=TRUE is refused. */
static void test_leaf_is_ca(void **s)
{
    (void)s;
    struct env e;
    struct xf_pkix_verdict v;
    struct mk_opts ca = GOOD;
    ca.ca = 1;
    ca.key_usage = MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_CERT_SIGN;
    setup_env(&e, ca, 1);
    assert_int_equal(xf_pkix_verify(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, &v), 0);
    assert_non_null(strstr(v.reason, "cA=TRUE"));
    assert_int_equal(xf_pkix_check(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, "example.com", XF_SERVICE_SERVER, NULL, &v), 0);
    free_env(&e);
}

static void test_key_usage(void **s)
{
    (void)s;
    struct env e;
    struct xf_pkix_verdict v;
    struct mk_opts ku = GOOD;
    ku.key_usage = MBEDTLS_X509_KU_CRL_SIGN;
    setup_env(&e, ku, 1);
    assert_int_equal(xf_pkix_verify(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, &v), 0);
    assert_non_null(strstr(v.reason, "keyUsage"));
    free_env(&e);
    /* No keyUsage extension at all is acceptable. */
    struct mk_opts none = GOOD;
    none.key_usage = 0;
    setup_env(&e, none, 1);
    assert_int_equal(xf_pkix_verify(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, &v), 1);
    free_env(&e);
}

static void test_load_ca(void **s)
{
    (void)s;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt_init(&ca);
    assert_int_equal(xf_pkix_load_ca(&ca, "/nonexistent/ca.pem"), XF_PKIX_ERR_IO);
    mbedtls_x509_crt_free(&ca);
    if (access(XF_PKIX_SYSTEM_BUNDLE, R_OK) == 0) {
        mbedtls_x509_crt_init(&ca);
        assert_true(xf_pkix_load_ca(&ca, NULL) > 10);
        mbedtls_x509_crt_free(&ca);
    }
    /* A file written by the test loads back. */
    struct mk_pki p;
    mk_pki_build(&p, GOOD);
    const unsigned char *d[1] = { p.root };
    size_t l[1] = { p.root_len };
    char path[] = "/tmp/xf_pkix_ca_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    mk_write_pem(path, d, l, 1);
    mbedtls_x509_crt_init(&ca);
    assert_int_equal(xf_pkix_load_ca(&ca, path), 1);
    mbedtls_x509_crt_free(&ca);
    unlink(path);
    mk_pki_free(&p);
}

/* Item 11: extendedKeyUsage is tied to the role. A server we connect to needs
   serverAuth; a peer's client certificate (inbound s2s) may carry clientAuth or
   serverAuth (XEP-0178 practice). */
static void test_eku_roles(void **s)
{
    (void)s;
    static const struct { unsigned eku; int as_server, as_peer_client; } cases[] = {
        { 0, 1, 1 },                                    /* no EKU: anything */
        { MK_EKU_SERVER, 1, 1 },                        /* serverAuth only */
        { MK_EKU_CLIENT, 0, 1 },                        /* clientAuth only */
        { MK_EKU_SERVER | MK_EKU_CLIENT, 1, 1 },
        { MK_EKU_ANY, 1, 1 },                           /* anyExtendedKeyUsage */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct env e;
        struct xf_pkix_verdict v;
        struct mk_opts o = GOOD;
        o.eku = cases[i].eku;
        setup_env(&e, o, 1);
        assert_int_equal(xf_pkix_verify(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, &v), cases[i].as_server);
        if (!cases[i].as_server)
            assert_non_null(strstr(v.reason, "serverAuth"));
        assert_int_equal(xf_pkix_check(&e.chain, &e.ca, XF_PKIX_ROLE_SERVER, "example.com",
                                       XF_SERVICE_SERVER, NULL, &v), cases[i].as_server);
        assert_int_equal(xf_pkix_verify(&e.chain, &e.ca, XF_PKIX_ROLE_PEER_CLIENT, &v),
                         cases[i].as_peer_client);
        free_env(&e);
    }
}

/* Item 9: a verification error without flags (mbedTLS sets all flag bits on a
   fatal error such as an over-long chain) is not reported as "expired". */
static void test_fatal_error_text(void **s)
{
    (void)s;
    enum { NI = 10 };
    mbedtls_pk_context keys[NI + 2];
    static unsigned char der[NI + 2][2048];
    size_t len[NI + 2];
    char subj[NI + 2][40];
    struct xf_pkix_verdict v;
    mbedtls_x509_crt chain, ca;
    for (int i = 0; i < NI + 2; i++) {
        mk_key(&keys[i]);
        snprintf(subj[i], sizeof subj[i], "CN=XF Level %d", i);
    }
    for (int i = 0; i < NI + 2; i++) {
        struct mk_opts o = { .subject = subj[i], .issuer = i ? subj[i - 1] : NULL,
                             .ca = i <= NI ? 1 : 0, .serial = (unsigned char)(i + 1),
                             .dns = { "example.com" } };
        if (i > NI)
            o.subject = "CN=example.com";
        mk_cert(&o, &keys[i], &keys[i ? i - 1 : 0], der[i], sizeof der[i], &len[i]);
    }
    mbedtls_x509_crt_init(&chain);
    for (int i = NI + 1; i >= 1; i--)
        assert_int_equal(mbedtls_x509_crt_parse_der(&chain, der[i], len[i]), 0);
    mbedtls_x509_crt_init(&ca);
    assert_int_equal(mbedtls_x509_crt_parse_der(&ca, der[0], len[0]), 0);
    assert_int_equal(xf_pkix_verify(&chain, &ca, XF_PKIX_ROLE_SERVER, &v), 0);
    assert_null(strstr(v.reason, "expired"));
    assert_non_null(strstr(v.reason, "verification error -0x"));
    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&ca);
    for (int i = 0; i < NI + 2; i++)
        mbedtls_pk_free(&keys[i]);
}

/* xf_pkix_fail_text: real flags are described, no flags / all flags give the code. */
static void test_fail_text(void **s)
{
    (void)s;
    char buf[64];
    assert_string_equal(xf_pkix_fail_text(-0x2700, MBEDTLS_X509_BADCERT_EXPIRED, buf, sizeof buf),
                        "a certificate in the chain has expired");
    assert_string_equal(xf_pkix_fail_text(-0x3000, 0, buf, sizeof buf), "verification error -0x3000");
    assert_string_equal(xf_pkix_fail_text(-0x3000, 0xFFFFFFFFu, buf, sizeof buf),
                        "verification error -0x3000");
}

int main(void)
{
    mk_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eku_roles),
        cmocka_unit_test(test_fatal_error_text),
        cmocka_unit_test(test_fail_text),
        cmocka_unit_test(test_valid_chain),
        cmocka_unit_test(test_missing_intermediate),
        cmocka_unit_test(test_untrusted_root),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_leaf_is_ca),
        cmocka_unit_test(test_key_usage),
        cmocka_unit_test(test_load_ca),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
