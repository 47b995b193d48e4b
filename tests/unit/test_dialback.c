/* Unit tests for certs/dialback.c: XEP-0185 key, spec-digest §7.1 and §10 item 25. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <psa/crypto.h>

#include "certs/dialback.h"
#include "certs/codec.h"

#define VEC_SECRET "s3cr3tf0rd14lb4ck"
#define VEC_KEY "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"

/* XEP-0185 §4 example: receiving xmpp.example.com, originating example.org,
   stream id D60000229F. */
static void test_xep0185_vector(void **s)
{
    (void)s;
    char key[65];
    assert_int_equal(xf_dialback_key(VEC_SECRET, "xmpp.example.com", "example.org", "D60000229F", key), 0);
    assert_string_equal(key, VEC_KEY);
    assert_int_equal(xf_dialback_verify(VEC_SECRET, "xmpp.example.com", "example.org", "D60000229F",
                                        VEC_KEY, strlen(VEC_KEY)), 1);
}

static void test_verify_variants(void **s)
{
    (void)s;
    const char *nl = "\n  " VEC_KEY "\r\n";
    assert_int_equal(xf_dialback_verify(VEC_SECRET, "xmpp.example.com", "example.org", "D60000229F",
                                        nl, strlen(nl)), 1);
    char up[65];
    strcpy(up, VEC_KEY);
    for (char *p = up; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    assert_int_equal(xf_dialback_verify(VEC_SECRET, "xmpp.example.com", "example.org", "D60000229F",
                                        up, 64), 1);
    /* from/to swapped (db:verify with swapped attributes) → different key. */
    assert_int_equal(xf_dialback_verify(VEC_SECRET, "example.org", "xmpp.example.com", "D60000229F",
                                        VEC_KEY, 64), 0);
    /* Another stream id, another secret, one digit off, truncated, inner space. */
    assert_int_equal(xf_dialback_verify(VEC_SECRET, "xmpp.example.com", "example.org", "D60000229G",
                                        VEC_KEY, 64), 0);
    assert_int_equal(xf_dialback_verify("other", "xmpp.example.com", "example.org", "D60000229F",
                                        VEC_KEY, 64), 0);
    char off[65];
    strcpy(off, VEC_KEY);
    off[63] = off[63] == '3' ? '4' : '3';
    assert_int_equal(xf_dialback_verify(VEC_SECRET, "xmpp.example.com", "example.org", "D60000229F",
                                        off, 64), 0);
    assert_int_equal(xf_dialback_verify(VEC_SECRET, "xmpp.example.com", "example.org", "D60000229F",
                                        VEC_KEY, 63), 0);
    /* Non-hex characters that differ from the key only in case-folding bit 0x20. */
    char g[65];
    strcpy(g, VEC_KEY);
    g[0] = (char)(g[0] & ~0x20); /* '3' -> 0x13 */
    assert_int_equal(xf_dialback_verify(VEC_SECRET, "xmpp.example.com", "example.org", "D60000229F",
                                        g, 64), 0);
    assert_int_equal(xf_dialback_verify(VEC_SECRET, "xmpp.example.com", "example.org", "D60000229F",
                                        "", 0), 0);
}

static void test_bad_args(void **s)
{
    (void)s;
    char key[65];
    assert_int_equal(xf_dialback_key(VEC_SECRET, "", "example.org", "x", key), XF_DIALBACK_ERR_ARG);
    assert_int_equal(xf_dialback_key(VEC_SECRET, "a b", "example.org", "x", key), XF_DIALBACK_ERR_ARG);
    assert_int_equal(xf_dialback_key(NULL, "a", "b", "x", key), XF_DIALBACK_ERR_ARG);
}

static void test_codec(void **s)
{
    (void)s;
    unsigned char b[16];
    char t[32];
    assert_int_equal(xf_b64_encode((const unsigned char *)"ab", 2, t, sizeof t), 4);
    assert_string_equal(t, "YWI=");
    assert_int_equal(xf_b64_decode("YWI=", 4, b, sizeof b), 2);
    assert_int_equal(xf_b64_decode("YWI", 3, b, sizeof b), 2);
    assert_memory_equal(b, "ab", 2);
    assert_true(xf_b64_decode("YW=I", 4, b, sizeof b) < 0);
    assert_true(xf_b64_decode("Y", 1, b, sizeof b) < 0);
    assert_true(xf_b64_decode("YWI==", 5, b, sizeof b) < 0);
    assert_true(xf_b64_decode("YW I", 4, b, sizeof b) < 0);
    assert_true(xf_b64_decode("YWJj", 4, b, 2) < 0);
    assert_int_equal(xf_hex_decode("0A ff", 5, b, sizeof b), 2);
    assert_int_equal(b[0], 0x0a);
    assert_int_equal(b[1], 0xff);
    assert_true(xf_hex_decode("0", 1, b, sizeof b) < 0);
    assert_true(xf_hex_decode("0 A", 3, b, sizeof b) < 0);
    assert_true(xf_hex_decode("zz", 2, b, sizeof b) < 0);
}

int main(void)
{
    psa_crypto_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xep0185_vector),
        cmocka_unit_test(test_verify_variants),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
