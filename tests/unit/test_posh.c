/* Unit tests for certs/posh.c: RFC 7711 documents, spec-digest §5, §10 items 22-24. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "certs/posh.h"
#include "certs/codec.h"
#include "certs_fixtures/mkcert.h"

/* RFC 7711 §3.2 fingerprints example. */
static const char RFC_FP[] =
    "{\n  \"fingerprints\": [\n    {\n"
    "      \"sha-256\": \"4/mggdlVx8A3pvHAWW5sD+qJyMtUHgiRuPjVC48N0XQ=\",\n"
    "      \"sha-512\": \"25N+1hB2Vo42l9lSGqw+n3BKFhDHsyork8ou+D9B43TXeJ1J81mdQEDqm39oR/EHkPBDDG1y5+AG94Kec0xVqA==\"\n"
    "    }\n  ],\n  \"expires\": 604800\n}\n";
/* The same fingerprint without its '=' padding (as one RFC 7711 example prints it). */
static const char RFC_FP_UNPADDED[] =
    "{\"fingerprints\":[{\"sha-256\":\"4/mggdlVx8A3pvHAWW5sD+qJyMtUHgiRuPjVC48N0XQ\"}],\"expires\":604800}";
/* RFC 7711 §3.4 reference example. */
static const char RFC_REF[] =
    "{\n  \"url\":\"https://hosting.example.net/.well-known/posh/spice.json\",\n  \"expires\":86400\n}\n";

static int parse(const char *s, struct xf_posh_doc *d)
{
    char err[160];
    return xf_posh_parse((const unsigned char *)s, strlen(s), d, err, sizeof err);
}

static void test_rfc_examples(void **s)
{
    (void)s;
    struct xf_posh_doc d, u, r;
    assert_int_equal(parse(RFC_FP, &d), 0);
    assert_int_equal(d.kind, XF_POSH_FINGERPRINTS);
    assert_int_equal(d.nfp, 2);
    assert_int_equal(d.fp[0].hash, XF_HASH_SHA256);
    assert_int_equal(d.fp[0].len, 32);
    assert_int_equal(d.fp[1].hash, XF_HASH_SHA512);
    assert_int_equal(d.fp[1].len, 64);
    assert_int_equal(d.expires, 604800);
    assert_int_equal(d.fp[0].digest[0], 0xe3); /* '4/' -> 0xe3 0xf9... */
    assert_int_equal(d.fp[0].digest[1], 0xf9);
    assert_int_equal(parse(RFC_FP_UNPADDED, &u), 0);
    assert_int_equal(u.nfp, 1);
    assert_memory_equal(u.fp[0].digest, d.fp[0].digest, 32);
    assert_int_equal(parse(RFC_REF, &r), 0);
    assert_int_equal(r.kind, XF_POSH_REFERENCE);
    assert_string_equal(r.url, "https://hosting.example.net/.well-known/posh/spice.json");
    assert_int_equal(r.expires, 86400);
}

static void test_invalid_documents(void **s)
{
    (void)s;
    struct xf_posh_doc d;
    char err[160];
    /* §10 item 23 */
    assert_int_equal(parse("{\"fingerprints\":[{\"sha-256\":\"AAAA\"}],\"url\":\"https://x.example/\",\"expires\":1}", &d),
                     XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"fingerprints\":[],\"expires\":10}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"fingerprints\":[{}],\"expires\":\"10\"}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"fingerprints\":[{}],\"expires\":1.5}", &d), XF_POSH_ERR_INVALID);
    /* §10 item 22: expires 0 */
    assert_int_equal(parse("{\"url\":\"https://x.example/a.json\",\"expires\":0}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"url\":\"https://x.example/a.json\",\"expires\":-5}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"url\":\"https://x.example/a.json\"}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"url\":\"http://x.example/a.json\",\"expires\":5}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"url\":5,\"expires\":5}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"expires\":5}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"fingerprints\":{\"sha-256\":\"x\"},\"expires\":5}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"fingerprints\":[\"x\"],\"expires\":5}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("[1,2]", &d), XF_POSH_ERR_JSON);
    assert_int_equal(parse("{\"fingerprints\":", &d), XF_POSH_ERR_JSON);
    assert_int_equal(parse("", &d), XF_POSH_ERR_JSON);
    assert_int_equal(xf_posh_parse((const unsigned char *)"{}\0", 3, &d, err, sizeof err), XF_POSH_ERR_JSON);
    assert_int_equal(parse("{\"fingerprints\":[{}],\"expires\":5}", &d), 0);
    assert_int_equal(d.nfp, 0);
    /* An error message is produced. */
    assert_int_equal(xf_posh_parse((const unsigned char *)"{\"expires\":0,\"url\":\"https://a/\"}", 32, &d, err, sizeof err),
                     XF_POSH_ERR_INVALID);
    assert_non_null(strstr(err, "expires"));
}

static void test_skipped_entries(void **s)
{
    (void)s;
    struct xf_posh_doc d;
    /* unknown hash, wrong length and bad base64 skipped; the valid sha-256 stays */
    assert_int_equal(parse("{\"fingerprints\":[{\"sha3-256\":\"AAAA\",\"sha-256\":\"AAAA\",\"sha-512\":\"!!!\"},"
                           "{\"sha-256\":\"4/mggdlVx8A3pvHAWW5sD+qJyMtUHgiRuPjVC48N0XQ=\"}],\"expires\":5,\"other\":[1]}", &d), 0);
    assert_int_equal(d.nfp, 1);
    assert_int_equal(d.nskipped, 3);
}

/* Generated document matches its certificate and no other; §10 items 23, 24. */
static void test_generate_and_match(void **s)
{
    (void)s;
    mbedtls_x509_crt a, b, old, future;
    char json[1024], why[200];
    struct xf_posh_doc d;
    struct mk_opts oa = { .subject = "CN=a.example", .dns = { "a.example" }, .ca = -1 };
    struct mk_opts ob = { .subject = "CN=b.example", .dns = { "b.example" }, .ca = -1 };
    struct mk_opts oo = { .subject = "CN=a.example", .dns = { "a.example" }, .ca = -1,
                          .not_before = "20100101000000", .not_after = "20110101000000" };
    struct mk_opts of = { .subject = "CN=a.example", .dns = { "a.example" }, .ca = -1,
                          .not_before = "20900101000000", .not_after = "20950101000000" };
    mk_parsed(&oa, &a);
    mk_parsed(&ob, &b);
    mk_parsed(&oo, &old);
    mk_parsed(&of, &future);

    int n = xf_posh_generate(&a, 604800, json, sizeof json);
    assert_true(n > 0);
    assert_non_null(strstr(json, "\"expires\":604800"));
    assert_int_equal(parse(json, &d), 0);
    assert_int_equal(d.nfp, 2);
    assert_int_equal(xf_posh_match(&d, &a, why, sizeof why), XF_POSH_MATCH);
    assert_non_null(strstr(why, "sha-256"));
    assert_int_equal(xf_posh_check(&d, &a, why, sizeof why), XF_POSH_MATCH);
    assert_int_equal(xf_posh_match(&d, &b, why, sizeof why), XF_POSH_NOMATCH);

    /* Hash over the SPKI instead of the full DER → no match. */
    unsigned char dig[32];
    char b64[64], doc[256];
    assert_int_equal(xf_cert_digest(&a, XF_CERT_SPKI, XF_HASH_SHA256, dig, sizeof dig), 32);
    xf_b64_encode(dig, 32, b64, sizeof b64);
    snprintf(doc, sizeof doc, "{\"fingerprints\":[{\"sha-256\":\"%s\"}],\"expires\":60}", b64);
    assert_int_equal(parse(doc, &d), 0);
    assert_int_equal(xf_posh_match(&d, &a, why, sizeof why), XF_POSH_NOMATCH);

    /* Unpadded sha-256 of the full DER plus an unknown key → match. */
    assert_int_equal(xf_cert_digest(&a, XF_CERT_FULL, XF_HASH_SHA256, dig, sizeof dig), 32);
    xf_b64_encode(dig, 32, b64, sizeof b64);
    b64[strlen(b64) - 1] = '\0'; /* drop '=' */
    snprintf(doc, sizeof doc, "{\"fingerprints\":[{\"md5\":\"AAAA\",\"sha-256\":\"%s\"}],\"expires\":60}", b64);
    assert_int_equal(parse(doc, &d), 0);
    assert_int_equal(xf_posh_match(&d, &a, why, sizeof why), XF_POSH_MATCH);

    /* Expired / not-yet-valid certificate: fingerprint matches, check refuses. */
    assert_true(xf_posh_generate(&old, 60, json, sizeof json) > 0);
    assert_int_equal(parse(json, &d), 0);
    assert_int_equal(xf_posh_match(&d, &old, why, sizeof why), XF_POSH_MATCH);
    assert_int_equal(xf_posh_check(&d, &old, why, sizeof why), XF_POSH_NOMATCH);
    assert_non_null(strstr(why, "expired"));
    assert_true(xf_posh_generate(&future, 60, json, sizeof json) > 0);
    assert_int_equal(parse(json, &d), 0);
    assert_int_equal(xf_posh_check(&d, &future, why, sizeof why), XF_POSH_NOMATCH);
    assert_non_null(strstr(why, "not yet valid"));

    /* A reference document never matches by itself. */
    assert_int_equal(parse(RFC_REF, &d), 0);
    assert_int_equal(xf_posh_check(&d, &a, why, sizeof why), XF_POSH_NOMATCH);

    assert_true(xf_posh_generate(&a, 0, json, sizeof json) < 0);
    assert_true(xf_posh_generate(&a, 60, json, 20) < 0);
    mbedtls_x509_crt_free(&a);
    mbedtls_x509_crt_free(&b);
    mbedtls_x509_crt_free(&old);
    mbedtls_x509_crt_free(&future);
}

/* Rollover: one document with the current and the next certificate matches both,
   and a third certificate not. */
static void test_generate_set(void **s)
{
    (void)s;
    mbedtls_x509_crt a, a2, b;
    char json[2048], why[200];
    struct xf_posh_doc d;
    struct mk_opts oa = { .subject = "CN=a.example", .dns = { "a.example" }, .ca = -1 };
    struct mk_opts ob = { .subject = "CN=b.example", .dns = { "b.example" }, .ca = -1 };
    mk_parsed(&oa, &a);
    mk_parsed(&oa, &a2);
    mk_parsed(&ob, &b);
    const mbedtls_x509_crt *both[] = { &a, &a2 };
    assert_true(xf_posh_generate_set(both, 2, 3600, json, sizeof json) > 0);
    assert_int_equal(parse(json, &d), 0);
    assert_int_equal(d.nfp, 4);
    assert_int_equal(d.expires, 3600);
    assert_int_equal(xf_posh_check(&d, &a, why, sizeof why), XF_POSH_MATCH);
    assert_int_equal(xf_posh_check(&d, &a2, why, sizeof why), XF_POSH_MATCH);
    assert_int_equal(xf_posh_check(&d, &b, why, sizeof why), XF_POSH_NOMATCH);
    /* One leaf: byte for byte what xf_posh_generate writes. */
    char one[1024];
    assert_true(xf_posh_generate_set(both, 1, 60, json, sizeof json) > 0);
    assert_true(xf_posh_generate(&a, 60, one, sizeof one) > 0);
    assert_string_equal(json, one);
    assert_true(xf_posh_generate_set(both, 0, 60, json, sizeof json) < 0);
    const mbedtls_x509_crt *holes[] = { &a, NULL };
    assert_true(xf_posh_generate_set(holes, 2, 60, json, sizeof json) < 0);
    mbedtls_x509_crt_free(&a);
    mbedtls_x509_crt_free(&a2);
    mbedtls_x509_crt_free(&b);
}

static void test_generate_reference(void **s)
{
    (void)s;
    char json[512];
    struct xf_posh_doc d;
    assert_true(xf_posh_generate_reference("https://hosting.example.net/.well-known/posh/xmpp-server.json",
                                           86400, json, sizeof json) > 0);
    assert_string_equal(json, "{\"url\":\"https://hosting.example.net/.well-known/posh/xmpp-server.json\",\"expires\":86400}");
    assert_true(xf_posh_generate_reference("https://h.example/a\"b", 5, json, sizeof json) > 0);
    assert_int_equal(parse(json, &d), 0);
    assert_string_equal(d.url, "https://h.example/a\"b");
    assert_true(xf_posh_generate_reference("http://h.example/", 5, json, sizeof json) < 0);
    assert_true(xf_posh_generate_reference("https://h.example/", 0, json, sizeof json) < 0);
}

/* Item 6: a digit-only "expires" too large for 64 bits is a valid non-negative
   integer: clamped to XF_POSH_EXPIRES_MAX, never invalid. */
static void test_expires_overflow(void **s)
{
    (void)s;
    struct xf_posh_doc d;
    assert_int_equal(parse("{\"url\":\"https://x.example/a.json\",\"expires\":99999999999999999999}", &d), 0);
    assert_true(d.expires == XF_POSH_EXPIRES_MAX);
    assert_int_equal(parse("{\"url\":\"https://x.example/a.json\",\"expires\":9223372036854775807}", &d), 0);
    assert_true(d.expires == XF_POSH_EXPIRES_MAX);
    assert_int_equal(parse("{\"url\":\"https://x.example/a.json\",\"expires\":86400}", &d), 0);
    assert_true(d.expires == 86400);
    /* Still invalid: negative overflow, exponent, fraction. */
    assert_int_equal(parse("{\"url\":\"https://x.example/a.json\",\"expires\":-99999999999999999999}", &d),
                     XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"url\":\"https://x.example/a.json\",\"expires\":1e30}", &d), XF_POSH_ERR_INVALID);
    assert_int_equal(parse("{\"url\":\"https://x.example/a.json\",\"expires\":99999999999999999999.0}", &d),
                     XF_POSH_ERR_INVALID);
}

/* Item 7: every fingerprint is matched, not only the first 16: a match in the
   17th entry, and in the last of 1000, is a match. */
static void test_many_fingerprints(void **s)
{
    (void)s;
    mbedtls_x509_crt a, b;
    struct mk_opts oa = { .subject = "CN=a.example", .ca = -1 };
    struct mk_opts ob = { .subject = "CN=b.example", .ca = -1 };
    unsigned char da[32], db[32];
    char ba[64], bb[64], why[200];
    const size_t counts[] = { 17, 1000 };
    struct xf_posh_doc *d = malloc(sizeof *d);
    char *json = malloc(XF_POSH_MAX_DOC + 1);
    assert_non_null(d);
    assert_non_null(json);
    mk_parsed(&oa, &a);
    mk_parsed(&ob, &b);
    assert_int_equal(xf_cert_digest(&a, XF_CERT_FULL, XF_HASH_SHA256, da, 32), 32);
    assert_int_equal(xf_cert_digest(&b, XF_CERT_FULL, XF_HASH_SHA256, db, 32), 32);
    assert_true(xf_b64_encode(da, 32, ba, sizeof ba) > 0);
    assert_true(xf_b64_encode(db, 32, bb, sizeof bb) > 0);
    for (size_t c = 0; c < 2; c++) {
        size_t off = (size_t)snprintf(json, XF_POSH_MAX_DOC, "{\"fingerprints\":[");
        for (size_t i = 0; i < counts[c]; i++)
            off += (size_t)snprintf(json + off, XF_POSH_MAX_DOC - off, "%s{\"sha-256\":\"%s\"}",
                                    i ? "," : "", i + 1 == counts[c] ? ba : bb);
        off += (size_t)snprintf(json + off, XF_POSH_MAX_DOC - off, "],\"expires\":60}");
        assert_true(off < XF_POSH_MAX_DOC);
        assert_int_equal(xf_posh_parse((const unsigned char *)json, off, d, why, sizeof why), 0);
        assert_int_equal(d->nfp, counts[c]);
        assert_int_equal(xf_posh_match(d, &a, why, sizeof why), XF_POSH_MATCH);
        assert_int_equal(xf_posh_match(d, &b, why, sizeof why), XF_POSH_MATCH);
    }
    free(json);
    free(d);
    mbedtls_x509_crt_free(&a);
    mbedtls_x509_crt_free(&b);
}

int main(void)
{
    mk_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_invalid_documents),
        cmocka_unit_test(test_skipped_entries),
        cmocka_unit_test(test_generate_and_match),
        cmocka_unit_test(test_generate_set),
        cmocka_unit_test(test_generate_reference),
        cmocka_unit_test(test_expires_overflow),
        cmocka_unit_test(test_many_fingerprints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
