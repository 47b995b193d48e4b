/* Unit tests for proxy/remote_dane.c: when DANE applies to an outbound target (AD
   trust, secure SRV, secure addresses, the no-SRV fallback), the SRV target as
   reference identity, the TLSA answer (bogus / indeterminate abort, none / insecure →
   PKIX), and verification of a chain (DANE-EE match on a self-signed, expired,
   wrongly named certificate; mismatch aborts; unusable records → PKIX; DANE-TA names
   with the SRV target). RFC 7673 §3-4, RFC 7671 §4-5, spec-digest §6. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include "certs/dane.h"
#include "certs/cert.h"
#include "certs_fixtures/mkcert.h"
#include "proxy/remote_dane.h"

/* A TLSA answer holding the records given as "u s m hex" texts (AD as given). */
static void answer_of(xf_dns_result *r, int ad, const char *const *texts, size_t n)
{
    memset(r, 0, sizeof(*r));
    r->status = XF_DNS_NOERROR;
    r->qtype = XF_DNS_T_TLSA;
    r->ad = ad;
    r->tlsa = calloc(n, sizeof(*r->tlsa));
    r->tlsa_rdata = calloc(n, 3 + XF_TLSA_DATA_MAX);
    assert_non_null(r->tlsa);
    assert_non_null(r->tlsa_rdata);
    static struct xf_tlsa t;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(xf_tlsa_parse_text(texts[i], &t), 0);
        unsigned char *p = r->tlsa_rdata + r->tlsa_rdata_len;
        p[0] = t.usage;
        p[1] = t.selector;
        p[2] = t.mtype;
        memcpy(p + 3, t.data, t.len);
        r->tlsa[i].off = r->tlsa_rdata_len;
        r->tlsa[i].len = 3 + t.len;
        r->tlsa_rdata_len += 3 + t.len;
    }
    r->n_tlsa = n;
}

static char *text_for(const mbedtls_x509_crt *c, int u, int s, int m)
{
    static char buf[4][20000];
    static int k;
    char *t = buf[k++ % 4];
    assert_true(xf_dane_generate(c, u, s, m, t, sizeof buf[0]) > 0);
    return t;
}

static void test_applies(void **st)
{
    (void)st;
    char why[120];
    assert_int_equal(xf_rdane_applies(1, 1, 0, 1, why, sizeof why), 1);
    assert_int_equal(xf_rdane_applies(0, 1, 0, 1, why, sizeof why), 0);
    assert_non_null(strstr(why, "not trusted"));
    assert_int_equal(xf_rdane_applies(1, 0, 0, 1, why, sizeof why), 0);
    assert_non_null(strstr(why, "SRV answer insecure"));
    assert_int_equal(xf_rdane_applies(1, 1, 0, 0, why, sizeof why), 0);
    assert_non_null(strstr(why, "address records are insecure"));
    /* No SRV: the domain's own secure address answer is enough (local policy). */
    assert_int_equal(xf_rdane_applies(1, 0, 1, 1, why, sizeof why), 1);
    assert_int_equal(xf_rdane_applies(1, 0, 1, 0, why, sizeof why), 0);
    assert_non_null(strstr(why, "no SRV"));

    assert_string_equal(xf_rdane_srv_target(1, 1, 0, "xmpp.hosting.example", "t.example"),
                        "xmpp.hosting.example");
    assert_null(xf_rdane_srv_target(0, 1, 0, "xmpp.hosting.example", "t.example"));
    assert_null(xf_rdane_srv_target(1, 0, 0, "xmpp.hosting.example", "t.example"));
    assert_null(xf_rdane_srv_target(1, 1, 1, "t.example", "t.example"));
    assert_null(xf_rdane_srv_target(1, 1, 0, "T.Example", "t.example"));
}

static void test_answer(void **st)
{
    (void)st;
    xf_dns_result r;
    xf_proof p;
    static const char *const one[] = {
        "3 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" };
    memset(&r, 0, sizeof r);
    r.status = XF_DNS_SERVFAIL;
    assert_int_equal(xf_rdane_answer(&r, "_5269._tcp.x.example", &p), XF_RDANE_ABORT);
    assert_int_equal(p.result, XF_PROOF_ERROR);
    assert_non_null(strstr(p.reason, "bogus"));
    assert_non_null(strstr(p.reason, "_5269._tcp.x.example"));
    r.status = XF_DNS_TIMEOUT;
    assert_int_equal(xf_rdane_answer(&r, "o", &p), XF_RDANE_ABORT);
    assert_non_null(strstr(p.reason, "indeterminate (TIMEOUT)"));
    r.status = XF_DNS_ERROR;
    assert_int_equal(xf_rdane_answer(&r, "o", &p), XF_RDANE_ABORT);
    r.status = XF_DNS_NXDOMAIN;
    assert_int_equal(xf_rdane_answer(&r, "o", &p), XF_RDANE_NONE);
    assert_int_equal(p.result, XF_PROOF_ABSENT);
    r.status = XF_DNS_NODATA;
    r.ad = 1;
    assert_int_equal(xf_rdane_answer(&r, "o", &p), XF_RDANE_NONE);
    assert_non_null(strstr(p.reason, "no TLSA"));
    answer_of(&r, 0, one, 1);                     /* insecure records: as if none */
    assert_int_equal(xf_rdane_answer(&r, "o", &p), XF_RDANE_NONE);
    assert_non_null(strstr(p.reason, "insecure"));
    xf_dns_result_free(&r);
    answer_of(&r, 1, one, 1);
    assert_int_equal(xf_rdane_answer(&r, "o", &p), XF_RDANE_RECORDS);
    xf_dns_result_free(&r);
    assert_int_equal(xf_rdane_answer(NULL, NULL, &p), XF_RDANE_ABORT);
}

/* DANE-EE 3 1 1: a self-signed, expired certificate for another name is accepted when
   its key matches; another key is refused (abort, PKIX never consulted); only
   unusable records leave PKIX to decide. */
static void test_verify_ee(void **st)
{
    (void)st;
    mbedtls_x509_crt c, other;
    xf_dns_result r;
    xf_proof p;
    struct mk_opts o = { .subject = "CN=elsewhere.example", .dns = { "elsewhere.example" },
                         .ca = 0, .not_after = "20200601000000", .eku = MK_EKU_SERVER };
    mk_parsed(&o, &c);
    mk_parsed(&o, &other);

    const char *match[] = { text_for(&c, 3, 1, 1) };
    answer_of(&r, 1, match, 1);
    assert_int_equal(xf_rdane_verify(&r, &c, NULL, "dane.example", NULL, &p), XF_RDANE_VALID);
    assert_int_equal(p.result, XF_PROOF_VALID);
    assert_non_null(strstr(p.reason, "DANE-EE"));
    assert_int_equal(xf_rdane_verify(&r, &other, NULL, "dane.example", NULL, &p), XF_RDANE_ABORT);
    assert_int_equal(p.result, XF_PROOF_INVALID);
    assert_non_null(strstr(p.reason, "PKIX not enough"));
    /* No certificate at all with usable records: abort. */
    assert_int_equal(xf_rdane_verify(&r, NULL, NULL, "dane.example", NULL, &p), XF_RDANE_ABORT);
    assert_int_equal(p.result, XF_PROOF_INVALID);
    xf_dns_result_free(&r);

    /* One matching among others, and 3 0 1 (the whole certificate). */
    const char *two[] = { text_for(&other, 3, 1, 1), text_for(&c, 3, 0, 1) };
    answer_of(&r, 1, two, 2);
    assert_int_equal(xf_rdane_verify(&r, &c, NULL, "dane.example", NULL, &p), XF_RDANE_VALID);
    assert_non_null(strstr(p.reason, "record 2"));
    xf_dns_result_free(&r);

    /* Unusable only (usage 4, a SHA-256 digest of the wrong length): PKIX decides. */
    const char *unusable[] = { "4 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                               "3 1 1 0011" };
    answer_of(&r, 1, unusable, 2);
    assert_int_equal(xf_rdane_verify(&r, &c, NULL, "dane.example", NULL, &p), XF_RDANE_NONE);
    assert_int_equal(p.result, XF_PROOF_ABSENT);
    assert_non_null(strstr(p.reason, "no usable TLSA record"));
    xf_dns_result_free(&r);

    /* Digest agility: 3 1 1 of c beside 3 1 2 of another key: the SHA-512 one rules. */
    const char *agile[] = { text_for(&c, 3, 1, 1), text_for(&other, 3, 1, 2) };
    answer_of(&r, 1, agile, 2);
    assert_int_equal(xf_rdane_verify(&r, &c, NULL, "dane.example", NULL, &p), XF_RDANE_ABORT);
    xf_dns_result_free(&r);

    mbedtls_x509_crt_free(&c);
    mbedtls_x509_crt_free(&other);
}

/* DANE-TA 2 x x: names are checked, and the secure SRV target is a reference identity. */
static void test_verify_ta_srv_target(void **st)
{
    (void)st;
    static const struct mk_opts leaf = { .subject = "CN=xmpp.hosting.example",
                                         .dns = { "xmpp.hosting.example" }, .ca = 0,
                                         .key_usage = MBEDTLS_X509_KU_DIGITAL_SIGNATURE };
    struct mk_pki pk;
    mbedtls_x509_crt chain, inter;
    xf_dns_result r;
    xf_proof p;
    mk_pki_build(&pk, leaf);
    const unsigned char *d[2] = { pk.leaf, pk.inter };
    size_t l[2] = { pk.leaf_len, pk.inter_len };
    mk_chain(&chain, d, l, 2);
    const unsigned char *di[1] = { pk.inter };
    mk_chain(&inter, di, &pk.inter_len, 1);
    const char *ta[] = { text_for(&inter, 2, 1, 1) };
    answer_of(&r, 1, ta, 1);
    assert_int_equal(xf_rdane_verify(&r, &chain, NULL, "tenant.example", NULL, &p), XF_RDANE_ABORT);
    assert_int_equal(xf_rdane_verify(&r, &chain, NULL, "tenant.example", "xmpp.hosting.example", &p),
                     XF_RDANE_VALID);
    assert_non_null(strstr(p.reason, "DANE-TA"));
    xf_dns_result_free(&r);
    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&inter);
    mk_pki_free(&pk);
}

/* A DANE-valid certificate that no CA signed counts like a PKIX-valid one in the tenant
   policy (tenants/policy.h): `trusted` accepts it, SASL EXTERNAL is used when offered,
   otherwise dialback over the proven certificate (XEP-0344); the reason names dane first. */
static void test_policy_counts_dane(void **st)
{
    (void)st;
    xf_peer_facts f;
    xf_fed_verdict v;
    memset(&f, 0, sizeof f);
    f.tls = 1;
    f.proof[XF_PROOF_DANE].result = XF_PROOF_VALID;
    snprintf(f.proof[XF_PROOF_DANE].reason, sizeof f.proof[XF_PROOF_DANE].reason,
             "record 1 (3 1 1): DANE-EE matches");
    f.proof[XF_PROOF_PKIX].result = XF_PROOF_INVALID;
    snprintf(f.proof[XF_PROOF_PKIX].reason, sizeof f.proof[XF_PROOF_PKIX].reason, "self-signed");
    f.sasl_external = 1;
    assert_int_equal(xf_fed_decide(XF_FED_TRUSTED, NULL, &f, &v), XF_FED_ACCEPT_EXTERNAL);
    assert_int_equal(v.proven_by, XF_PROOF_DANE);
    assert_non_null(strstr(v.reason, "tls; decided by dane; dane: valid (record 1 (3 1 1)"));
    assert_non_null(strstr(v.reason, "pkix: invalid (self-signed)"));
    f.sasl_external = 0;
    f.dialback = XF_DB_NOT_TRIED;
    assert_int_equal(xf_fed_decide(XF_FED_TRUSTED, NULL, &f, &v), XF_FED_NEED_DIALBACK);
    assert_non_null(strstr(v.reason, "the certificate proves the domain"));
    f.dialback = XF_DB_VALID;
    assert_int_equal(xf_fed_decide(XF_FED_TRUSTED, NULL, &f, &v), XF_FED_ACCEPT_DIALBACK);
    /* DANE absent: PKIX invalid alone is refused under trusted. */
    f.proof[XF_PROOF_DANE].result = XF_PROOF_ABSENT;
    assert_int_equal(xf_fed_decide(XF_FED_TRUSTED, NULL, &f, &v), XF_FED_REFUSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_applies),
        cmocka_unit_test(test_answer),
        cmocka_unit_test(test_verify_ee),
        cmocka_unit_test(test_verify_ta_srv_target),
        cmocka_unit_test(test_policy_counts_dane),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
