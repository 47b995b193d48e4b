/* Unit tests for proxy/records_cmd.c: the SRV target rule for tenants with a certificate
   of their own (xf_records_target, docs/records.md), and the command's argument errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/records_cmd.h"

static void expect_target(const char *domain, const char *hosting, const char *want)
{
    char out[300];
    int n = xf_records_target(domain, hosting, out, sizeof out);
    if (n < 0 || strcmp(out, want) != 0)
        print_error("%s under %s: got '%s' (%d), want '%s'\n", domain, hosting,
                    n < 0 ? "" : out, n, want);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);
}

static void test_readable(void **state)
{
    (void)state;
    expect_target("a.example", "hosting.example", "a-example.hosting.example");
    expect_target("chat.b.example.org", "xmpp.hosting.example",
                  "chat-b-example-org.xmpp.hosting.example");
    expect_target("localhost", "h.example", "localhost.h.example");
    /* 63 octets exactly still fit one label. */
    char d[80], want[120];
    memset(d, 'a', 55);
    memcpy(d + 55, ".example", 9);            /* 63 characters */
    snprintf(want, sizeof want, "%.55s-example.h.example", d);
    expect_target(d, "h.example", want);
}

/* A '-' in the domain (or a label over 63 octets) gives the hashed form, so that
   "a-b.example" and "a.b-example" (both "a-b-example" if read as dots -> dashes) get
   different targets. Expected values: SHA-256 of the domain, first 10 octets, by
   python3 hashlib. */
static void test_hashed(void **state)
{
    (void)state;
    expect_target("a-b.example", "hosting.example", "t--119c49fea604f2eae017.hosting.example");
    expect_target("a.b-example", "hosting.example", "t--53407e003270a49c5605.hosting.example");
    expect_target("xn--bcher-kva.example", "hosting.example",
                  "t--970ca6b73eaf2630a6b8.hosting.example");
    char d[80];
    memset(d, 'a', 60);
    memcpy(d + 60, ".example", 9);            /* 68 characters: too long for one label */
    expect_target(d, "hosting.example", "t--19dbfa489d12899a270f.hosting.example");
}

static void test_limits(void **state)
{
    (void)state;
    char out[300], host[260];
    /* Too small a buffer: -1, never a truncated name. */
    assert_int_equal(xf_records_target("a.example", "hosting.example", out, 25), -1);
    assert_int_equal(xf_records_target("a.example", "hosting.example", out, 26), 25);
    /* The whole name must fit 253 octets. */
    memset(host, 'h', 240);
    memcpy(host + 240, ".example", 9);        /* 248 characters */
    assert_int_equal(xf_records_target("ab.cd", host, out, sizeof out), -1);   /* 5+1+248 */
    assert_int_equal(xf_records_target("a.cd", host, out, sizeof out), 253);   /* 4+1+248 */
    assert_int_equal(xf_records_target("a", host, out, sizeof out), 250);
    assert_int_equal(xf_records_target("", "h.example", out, sizeof out), -1);
    assert_int_equal(xf_records_target("a.example", "", out, sizeof out), -1);
}

/* Argument errors end with exit 2 before any configuration is read. */
static void test_main_args(void **state)
{
    (void)state;
    char *none[] = { "records", NULL };
    char *two[] = { "records", "a.example", "b.example", NULL };
    char *opt[] = { "records", "a.example", "--frobnicate", NULL };
    char *nofile[] = { "records", "a.example", "--config", NULL };
    char *help[] = { "records", "--help", NULL };
    char *missing[] = { "records", "a.example", "--config", "/nonexistent/xf.json", NULL };
    assert_int_equal(xf_records_main(1, none), 2);
    assert_int_equal(xf_records_main(3, two), 2);
    assert_int_equal(xf_records_main(3, opt), 2);
    assert_int_equal(xf_records_main(3, nofile), 2);
    assert_int_equal(xf_records_main(2, help), 0);
    assert_int_equal(xf_records_main(4, missing), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readable),
        cmocka_unit_test(test_hashed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_main_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
