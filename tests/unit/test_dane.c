/* Unit tests for certs/dane.c: TLSA parsing, usability, DANE-EE/TA, PKIX usages,
   digest agility; spec-digest §6 and §10 items 17, 20, 21. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "certs/dane.h"
#include "certs/cert.h"
#include "certs_fixtures/mkcert.h"

static struct xf_tlsa recs[8];

static void rec_for(struct xf_tlsa *t, const mbedtls_x509_crt *c, int u, int s, int m)
{
    char text[20000];
    assert_true(xf_dane_generate(c, u, s, m, text, sizeof text) > 0);
    assert_int_equal(xf_tlsa_parse_text(text, t), 0);
}

static void test_parse(void **s)
{
    (void)s;
    struct xf_tlsa t;
    assert_int_equal(xf_tlsa_parse_text("3 1 1 00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF", &t), 0);
    assert_int_equal(t.usage, 3);
    assert_int_equal(t.selector, 1);
    assert_int_equal(t.mtype, 1);
    assert_int_equal(t.len, 32);
    assert_int_equal(t.data[31], 0xff);
    assert_int_equal(xf_tlsa_usable(&t, NULL), 1);
    assert_int_equal(xf_tlsa_parse_text("DANE-EE spki sha2-256 0011 2233", &t), 0);
    assert_int_equal(t.usage, 3);
    assert_int_equal(t.len, 4);
    assert_int_equal(xf_tlsa_parse_text("  2   0   0  ab", &t), 0);
    assert_int_equal(t.usage, 2);
    assert_int_equal(xf_tlsa_parse_text("3 1 1", &t), XF_TLSA_ERR_SYNTAX);
    assert_int_equal(xf_tlsa_parse_text("3 1 1 abc", &t), XF_TLSA_ERR_SYNTAX);
    assert_int_equal(xf_tlsa_parse_text("3 1 1 zz", &t), XF_TLSA_ERR_SYNTAX);
    assert_int_equal(xf_tlsa_parse_text("256 1 1 00", &t), XF_TLSA_ERR_SYNTAX);
    assert_int_equal(xf_tlsa_parse_text("3 x 1 00", &t), XF_TLSA_ERR_SYNTAX);
    assert_int_equal(xf_tlsa_parse_text("", &t), XF_TLSA_ERR_SYNTAX);
    const unsigned char wire[] = { 3, 1, 2, 0xAA, 0xBB };
    assert_int_equal(xf_tlsa_parse_rdata(wire, sizeof wire, &t), 0);
    assert_int_equal(t.mtype, 2);
    assert_int_equal(t.len, 2);
    assert_int_equal(xf_tlsa_parse_rdata(wire, 2, &t), XF_TLSA_ERR_SYNTAX);
}

/* §10 item 20: usage 4, mtype 3, wrong digest length → unusable. */
static void test_usable(void **s)
{
    (void)s;
    struct xf_tlsa t;
    const char *why;
    char hex32[65];
    memset(hex32, 'a', 64);
    hex32[64] = '\0';
    char buf[200];
    snprintf(buf, sizeof buf, "4 1 1 %s", hex32);
    assert_int_equal(xf_tlsa_parse_text(buf, &t), 0);
    assert_int_equal(xf_tlsa_usable(&t, &why), 0);
    assert_string_equal(why, "unknown certificate usage");
    snprintf(buf, sizeof buf, "3 2 1 %s", hex32);
    assert_int_equal(xf_tlsa_parse_text(buf, &t), 0);
    assert_int_equal(xf_tlsa_usable(&t, NULL), 0);
    snprintf(buf, sizeof buf, "3 1 3 %s", hex32);
    assert_int_equal(xf_tlsa_parse_text(buf, &t), 0);
    assert_int_equal(xf_tlsa_usable(&t, NULL), 0);
    snprintf(buf, sizeof buf, "3 1 2 %s", hex32); /* 32 bytes for SHA2-512 */
    assert_int_equal(xf_tlsa_parse_text(buf, &t), 0);
    assert_int_equal(xf_tlsa_usable(&t, &why), 0);
    assert_non_null(strstr(why, "64"));
    assert_int_equal(xf_tlsa_parse_text("3 1 1 aabb", &t), 0);
    assert_int_equal(xf_tlsa_usable(&t, NULL), 0);
    const unsigned char empty[] = { 3, 1, 0 };
    assert_int_equal(xf_tlsa_parse_rdata(empty, 3, &t), 0);
    assert_int_equal(xf_tlsa_usable(&t, NULL), 0);

    /* Only unusable records → UNUSABLE (caller falls back to PKIX). */
    mbedtls_x509_crt c;
    struct mk_opts o = { .subject = "CN=x.example", .dns = { "x.example" }, .ca = -1 };
    mk_parsed(&o, &c);
    struct xf_dane_verdict v;
    rec_for(&recs[0], &c, 3, 1, 1);
    recs[0].usage = 4;
    rec_for(&recs[1], &c, 3, 1, 1);
    recs[1].mtype = 3;
    assert_int_equal(xf_dane_check(recs, 2, &c, NULL, "x.example", XF_SERVICE_SERVER, NULL, &v), XF_DANE_UNUSABLE);
    /* An unusable record next to a usable matching one is skipped. */
    rec_for(&recs[2], &c, 3, 1, 1);
    assert_int_equal(xf_dane_check(recs, 3, &c, NULL, "x.example", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    assert_int_equal(v.record, 2);
    mbedtls_x509_crt_free(&c);
}

/* §10 item 17: DANE-EE matches an expired, wrongly named certificate. */
static void test_dane_ee(void **s)
{
    (void)s;
    mbedtls_x509_crt c, other;
    struct xf_dane_verdict v;
    struct mk_opts o = { .subject = "CN=wrong.example", .dns = { "wrong.example" }, .ca = -1,
                         .not_before = "20100101000000", .not_after = "20110101000000" };
    struct mk_opts o2 = { .subject = "CN=x.example", .dns = { "example.com" }, .ca = -1 };
    mk_parsed(&o, &c);
    mk_parsed(&o2, &other);
    const int combos[][2] = { { 1, 1 }, { 1, 2 }, { 0, 1 }, { 0, 2 }, { 1, 0 }, { 0, 0 } };
    for (size_t i = 0; i < 6; i++) {
        rec_for(&recs[0], &c, 3, combos[i][0], combos[i][1]);
        assert_int_equal(xf_dane_check(recs, 1, &c, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v),
                         XF_DANE_MATCH);
        assert_int_equal(v.record, 0);
        assert_non_null(strstr(v.reason, "DANE-EE"));
        assert_int_equal(xf_dane_check(recs, 1, &other, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v),
                         XF_DANE_NOMATCH);
    }
    mbedtls_x509_crt_free(&c);
    mbedtls_x509_crt_free(&other);
}

/* §10 item 20: 3 1 1 + 3 1 2 with a match only on 3 1 1 → reject. */
static void test_digest_agility(void **s)
{
    (void)s;
    mbedtls_x509_crt c, other;
    struct xf_dane_verdict v;
    struct mk_opts o = { .subject = "CN=x.example", .dns = { "x.example" }, .ca = -1 };
    mk_parsed(&o, &c);
    mk_parsed(&o, &other);
    rec_for(&recs[0], &c, 3, 1, 1);
    rec_for(&recs[1], &other, 3, 1, 2);
    assert_int_equal(xf_dane_check(recs, 2, &c, NULL, "x.example", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    assert_non_null(strstr(v.reason, "stronger digest"));
    /* Match only on the strongest digest → accept. */
    rec_for(&recs[0], &other, 3, 1, 1);
    rec_for(&recs[1], &c, 3, 1, 2);
    assert_int_equal(xf_dane_check(recs, 2, &c, NULL, "x.example", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    assert_int_equal(v.record, 1);
    /* Agility is per usage/selector: 3 0 1 still counts next to 3 1 2. */
    rec_for(&recs[0], &c, 3, 0, 1);
    rec_for(&recs[1], &other, 3, 1, 2);
    assert_int_equal(xf_dane_check(recs, 2, &c, NULL, "x.example", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    /* A malformed 3 1 2 (wrong length) does not disable a good 3 1 1. */
    rec_for(&recs[0], &c, 3, 1, 1);
    rec_for(&recs[1], &other, 3, 1, 2);
    recs[1].len = 10;
    assert_int_equal(xf_dane_check(recs, 2, &c, NULL, "x.example", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    mbedtls_x509_crt_free(&c);
    mbedtls_x509_crt_free(&other);
}

static const struct mk_opts LEAF = { .subject = "CN=xmpp.example.com", .dns = { "example.com" },
                                     .ca = 0, .key_usage = MBEDTLS_X509_KU_DIGITAL_SIGNATURE };

/* DANE-TA(2): validate to the matched anchor, check names; §10 item 21. */
static void test_dane_ta(void **s)
{
    (void)s;
    struct mk_pki p;
    mbedtls_x509_crt chain, leaf_only, inter, root;
    struct xf_dane_verdict v;
    mk_pki_build(&p, LEAF);
    const unsigned char *d[2] = { p.leaf, p.inter };
    size_t l[2] = { p.leaf_len, p.inter_len };
    mk_chain(&chain, d, l, 2);
    mk_chain(&leaf_only, d, l, 1);
    const unsigned char *di[1] = { p.inter };
    mk_chain(&inter, di, &p.inter_len, 1);
    const unsigned char *dr[1] = { p.root };
    mk_chain(&root, dr, &p.root_len, 1);

    /* Anchor = the intermediate the peer sent. */
    rec_for(&recs[0], &inter, 2, 1, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    assert_non_null(strstr(v.reason, "DANE-TA"));
    /* Names are checked for DANE-TA. */
    assert_int_equal(xf_dane_check(recs, 1, &chain, NULL, "other.example", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    /* ... and the SRV target counts as a reference identity when the caller says so. */
    assert_int_equal(xf_dane_check(recs, 1, &chain, NULL, "other.example", XF_SERVICE_SERVER, "example.com", &v), XF_DANE_MATCH);
    /* TA not in the chain (only the leaf sent) → no match. */
    assert_int_equal(xf_dane_check(recs, 1, &leaf_only, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    assert_non_null(strstr(v.reason, "no certificate sent"));
    /* A DANE-TA record naming the leaf itself is not an anchor. */
    rec_for(&recs[0], &leaf_only, 2, 1, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    /* Root digest, root not sent → no match; "2 0 0" with the full root → match. */
    rec_for(&recs[0], &root, 2, 0, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    rec_for(&recs[0], &root, 2, 0, 0);
    assert_int_equal(xf_dane_check(recs, 1, &chain, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    /* Root as anchor but the intermediate missing → no path. */
    assert_int_equal(xf_dane_check(recs, 1, &leaf_only, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);

    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&leaf_only);
    mbedtls_x509_crt_free(&inter);
    mbedtls_x509_crt_free(&root);
    mk_pki_free(&p);

    /* DANE-TA checks the leaf's dates. */
    struct mk_opts old = LEAF;
    old.not_before = "20100101000000";
    old.not_after = "20110101000000";
    mk_pki_build(&p, old);
    const unsigned char *d2[2] = { p.leaf, p.inter };
    size_t l2[2] = { p.leaf_len, p.inter_len };
    mk_chain(&chain, d2, l2, 2);
    mk_chain(&inter, d2 + 1, l2 + 1, 1);
    rec_for(&recs[0], &inter, 2, 1, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    assert_non_null(strstr(v.reason, "expired"));
    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&inter);
    mk_pki_free(&p);
}

static void test_pkix_usages(void **s)
{
    (void)s;
    struct mk_pki p;
    mbedtls_x509_crt chain, ca, inter;
    struct xf_dane_verdict v;
    mk_pki_build(&p, LEAF);
    const unsigned char *d[2] = { p.leaf, p.inter };
    size_t l[2] = { p.leaf_len, p.inter_len };
    mk_chain(&chain, d, l, 2);
    mk_chain(&inter, d + 1, l + 1, 1);
    const unsigned char *dr[1] = { p.root };
    mk_chain(&ca, dr, &p.root_len, 1);

    rec_for(&recs[0], &chain, 1, 1, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain, &ca, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    assert_int_equal(xf_dane_check(recs, 1, &chain, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    assert_int_equal(xf_dane_check(recs, 1, &chain, &ca, "other.example", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    rec_for(&recs[0], &inter, 0, 0, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain, &ca, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    /* PKIX-TA digest of the leaf is not an anchor. */
    rec_for(&recs[0], &chain, 0, 0, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain, &ca, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    /* Item 2: PKIX-TA naming the root that comes from the CA store (not sent by
       the peer, the usual case) matches: RFC 6698 allows any certificate on the
       validated path. */
    rec_for(&recs[0], &ca, 0, 0, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain, &ca, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    rec_for(&recs[0], &ca, 0, 1, 2);
    assert_int_equal(xf_dane_check(recs, 1, &chain, &ca, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);

    /* Item 1: pin bypass. A second trusted root (caA) is appended to the chain,
       but the path validates through our root: a PKIX-TA pin on caA must not
       match, since caA is not on the validated path. */
    struct mk_opts ao = { .subject = "CN=XF Other Root,O=xf", .ca = 1,
                          .key_usage = MBEDTLS_X509_KU_KEY_CERT_SIGN, .serial = 9 };
    mbedtls_pk_context ak;
    unsigned char ader[4096];
    size_t alen;
    mk_key(&ak);
    mk_cert(&ao, &ak, &ak, ader, sizeof ader, &alen);
    mbedtls_x509_crt chain3, both, caA;
    const unsigned char *d3[3] = { p.leaf, p.inter, ader };
    size_t l3[3] = { p.leaf_len, p.inter_len, alen };
    mk_chain(&chain3, d3, l3, 3);
    const unsigned char *db[2] = { p.root, ader };
    size_t lb[2] = { p.root_len, alen };
    mk_chain(&both, db, lb, 2);
    mk_chain(&caA, d3 + 2, l3 + 2, 1);
    rec_for(&recs[0], &caA, 0, 0, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain3, &both, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    assert_non_null(strstr(v.reason, "validated path"));
    /* ... while the root the path really ends at does match. */
    rec_for(&recs[0], &ca, 0, 0, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain3, &both, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    /* PKIX-EE only against the leaf after a valid chain: caA as EE → no match. */
    rec_for(&recs[0], &caA, 1, 0, 1);
    assert_int_equal(xf_dane_check(recs, 1, &chain3, &both, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    mbedtls_x509_crt_free(&chain3);
    mbedtls_x509_crt_free(&both);
    mbedtls_x509_crt_free(&caA);
    mbedtls_pk_free(&ak);

    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&inter);
    mbedtls_x509_crt_free(&ca);
    mk_pki_free(&p);
}

/* Item 5: DANE-TA never takes the leaf as its own anchor (that would skip the
   leaf's dates): an expired self-signed CA:FALSE leaf with "2 0 0 <its DER>". */
static void test_dane_ta_leaf_is_not_anchor(void **s)
{
    (void)s;
    mbedtls_x509_crt c;
    struct xf_dane_verdict v;
    struct mk_opts o = { .subject = "CN=example.com", .dns = { "example.com" }, .ca = 0,
                         .not_before = "20100101000000", .not_after = "20110101000000" };
    mk_parsed(&o, &c);
    rec_for(&recs[0], &c, 2, 0, 0);
    assert_int_equal(xf_dane_check(recs, 1, &c, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    assert_non_null(strstr(v.reason, "end-entity"));
    /* Same when the peer sends its leaf twice. */
    mbedtls_x509_crt twice;
    const unsigned char *d[2] = { c.raw.p, c.raw.p };
    size_t l[2] = { c.raw.len, c.raw.len };
    mk_chain(&twice, d, l, 2);
    rec_for(&recs[0], &c, 2, 1, 1);
    assert_int_equal(xf_dane_check(recs, 1, &twice, NULL, "example.com", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    mbedtls_x509_crt_free(&twice);
    mbedtls_x509_crt_free(&c);
}

/* Item 10: more than 64 records is not "unusable" (that would be a downgrade to
   PKIX): every usable record is considered. */
static void test_many_records(void **s)
{
    (void)s;
    mbedtls_x509_crt c, other;
    struct xf_dane_verdict v;
    struct mk_opts o = { .subject = "CN=x.example", .dns = { "x.example" }, .ca = -1 };
    const size_t n = 100;
    struct xf_tlsa *many = calloc(n, sizeof *many);
    assert_non_null(many);
    mk_parsed(&o, &c);
    mk_parsed(&o, &other);
    for (size_t i = 0; i < n - 1; i++)
        rec_for(&many[i], &other, 3, 1, 1);
    rec_for(&many[n - 1], &c, 3, 1, 1);
    assert_int_equal(xf_dane_check(many, n, &c, NULL, "x.example", XF_SERVICE_SERVER, NULL, &v), XF_DANE_MATCH);
    assert_int_equal(v.record, (int)(n - 1));
    /* None matching → no-match, never unusable. */
    assert_int_equal(xf_dane_check(many, n - 1, &c, NULL, "x.example", XF_SERVICE_SERVER, NULL, &v), XF_DANE_NOMATCH);
    free(many);
    mbedtls_x509_crt_free(&c);
    mbedtls_x509_crt_free(&other);
}

static void test_generate(void **s)
{
    (void)s;
    mbedtls_x509_crt c;
    char text[300];
    unsigned char spki_hash[32];
    char hex[65];
    struct mk_opts o = { .subject = "CN=x.example", .ca = -1 };
    mk_parsed(&o, &c);
    assert_int_equal(xf_dane_generate(&c, 3, 1, 1, text, sizeof text), 6 + 64);
    assert_int_equal(xf_cert_digest(&c, XF_CERT_SPKI, XF_HASH_SHA256, spki_hash, 32), 32);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", spki_hash[i]);
    assert_memory_equal(text, "3 1 1 ", 6);
    assert_string_equal(text + 6, hex);
    assert_int_equal(xf_dane_generate(&c, 3, 1, 2, text, sizeof text), 6 + 128);
    assert_true(xf_dane_generate(&c, 3, 1, 1, text, 20) < 0);
    assert_true(xf_dane_generate(&c, 4, 1, 1, text, sizeof text) < 0);
    mbedtls_x509_crt_free(&c);
}

int main(void)
{
    mk_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_usable),
        cmocka_unit_test(test_dane_ee),
        cmocka_unit_test(test_digest_agility),
        cmocka_unit_test(test_dane_ta),
        cmocka_unit_test(test_pkix_usages),
        cmocka_unit_test(test_dane_ta_leaf_is_not_anchor),
        cmocka_unit_test(test_many_records),
        cmocka_unit_test(test_generate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
