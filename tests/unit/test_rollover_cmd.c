/* Unit tests for proxy/rollover_cmd.c: the 2 x TTL rule (xf_rollover_decide), the state
   file (format / parse) and the JSON rewrite of a tenant file or the main file's
   "hosting" object (docs/rollover.md). The DNS half is tests/lab/test_rollover.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "proxy/rollover_cmd.h"

#define NEXT "3 1 1 9838aaaa"
#define T0 1764590000

static void test_first_sight_waits(void **state)
{
    (void)state;
    xf_rollover_state st;
    long long wait;
    assert_int_equal(xf_rollover_decide(NULL, "a.example", NEXT, 3600, T0, &st, &wait),
                     XF_ROLLOVER_WAIT);
    assert_string_equal(st.domain, "a.example");
    assert_string_equal(st.next_tlsa, NEXT);
    assert_int_equal(st.first_seen, T0);
    assert_int_equal(st.ttl, 3600);
    assert_int_equal(wait, 7200);
    /* TTL 0 counts as 1: never a switch on the first run */
    assert_int_equal(xf_rollover_decide(NULL, "a.example", NEXT, 0, T0, &st, &wait),
                     XF_ROLLOVER_WAIT);
    assert_int_equal(st.ttl, 1);
    assert_int_equal(wait, 2);
}

static void test_two_ttls(void **state)
{
    (void)state;
    xf_rollover_state prev, st;
    long long wait;
    xf_rollover_decide(NULL, "a.example", NEXT, 2, T0, &prev, &wait);
    /* one TTL later: still waiting, first_seen kept */
    assert_int_equal(xf_rollover_decide(&prev, "a.example", NEXT, 2, T0 + 2, &st, &wait),
                     XF_ROLLOVER_WAIT);
    assert_int_equal(st.first_seen, T0);
    assert_int_equal(wait, 2);
    assert_int_equal(xf_rollover_decide(&prev, "a.example", NEXT, 2, T0 + 3, &st, &wait),
                     XF_ROLLOVER_WAIT);
    assert_int_equal(wait, 1);
    /* exactly 2 x TTL: allowed */
    assert_int_equal(xf_rollover_decide(&prev, "a.example", NEXT, 2, T0 + 4, &st, &wait),
                     XF_ROLLOVER_SWITCH);
    assert_int_equal(wait, 0);
    assert_int_equal(xf_rollover_decide(&prev, "a.example", NEXT, 1, T0 + 100, &st, &wait),
                     XF_ROLLOVER_SWITCH);
}

/* A resolver reports what is left of its cached TTL: the highest seen counts. */
static void test_highest_ttl_kept(void **state)
{
    (void)state;
    xf_rollover_state prev, st;
    long long wait;
    xf_rollover_decide(NULL, "a.example", NEXT, 300, T0, &prev, &wait);
    assert_int_equal(xf_rollover_decide(&prev, "a.example", NEXT, 10, T0 + 100, &st, &wait),
                     XF_ROLLOVER_WAIT);
    assert_int_equal(st.ttl, 300);
    assert_int_equal(wait, 500);
    /* a higher TTL seen later lengthens the wait */
    assert_int_equal(xf_rollover_decide(&st, "a.example", NEXT, 3600, T0 + 700, &prev, &wait),
                     XF_ROLLOVER_WAIT);
    assert_int_equal(prev.ttl, 3600);
    assert_int_equal(wait, 7200 - 700);
}

/* A state about another domain, another next key or from the future starts again. */
static void test_state_not_ours(void **state)
{
    (void)state;
    xf_rollover_state prev, st;
    long long wait;
    xf_rollover_decide(NULL, "a.example", NEXT, 2, T0, &prev, &wait);
    assert_int_equal(xf_rollover_decide(&prev, "a.example", "3 1 1 ffff", 2, T0 + 10, &st,
                                        &wait), XF_ROLLOVER_WAIT);
    assert_int_equal(st.first_seen, T0 + 10);
    assert_string_equal(st.next_tlsa, "3 1 1 ffff");
    assert_int_equal(xf_rollover_decide(&prev, "b.example", NEXT, 2, T0 + 10, &st, &wait),
                     XF_ROLLOVER_WAIT);
    assert_int_equal(st.first_seen, T0 + 10);
    assert_int_equal(xf_rollover_decide(&prev, "a.example", NEXT, 2, T0 - 50, &st, &wait),
                     XF_ROLLOVER_WAIT);
    assert_int_equal(st.first_seen, T0 - 50);
    assert_int_equal(wait, 4);
}

static void test_state_round_trip(void **state)
{
    (void)state;
    xf_rollover_state st = { .first_seen = T0, .ttl = 3600 }, back;
    char buf[512], err[256];
    snprintf(st.domain, sizeof st.domain, "a.example");
    snprintf(st.next_tlsa, sizeof st.next_tlsa, NEXT);
    int n = xf_rollover_state_format(&st, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    assert_int_equal(buf[n - 1], '\n');
    assert_non_null(strstr(buf, "\"first_seen\":1764590000"));
    assert_int_equal(xf_rollover_state_parse(buf, (size_t)n, &back, err, sizeof err), 0);
    assert_string_equal(back.domain, "a.example");
    assert_string_equal(back.next_tlsa, NEXT);
    assert_int_equal(back.first_seen, T0);
    assert_int_equal(back.ttl, 3600);
    /* too small a buffer */
    assert_int_equal(xf_rollover_state_format(&st, buf, 20), -1);
}

static void test_state_parse_errors(void **state)
{
    (void)state;
    xf_rollover_state st;
    char err[256];
    static const char *const bad[] = {
        "not json",
        "[1]",
        "{\"next_tlsa\": \"3 1 1 aa\", \"first_seen\": 1, \"ttl\": 2}",
        "{\"domain\": \"a.example\", \"first_seen\": 1, \"ttl\": 2}",
        "{\"domain\": \"a.example\", \"next_tlsa\": \"x\", \"first_seen\": \"1\", \"ttl\": 2}",
        "{\"domain\": \"a.example\", \"next_tlsa\": \"x\", \"first_seen\": -1, \"ttl\": 2}",
        "{\"domain\": \"a.example\", \"next_tlsa\": \"x\", \"first_seen\": 1, \"ttl\": -2}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (xf_rollover_state_parse(bad[i], strlen(bad[i]), &st, err, sizeof err) != -1)
            print_error("accepted: %s\n", bad[i]);
        assert_int_equal(xf_rollover_state_parse(bad[i], strlen(bad[i]), &st, err, sizeof err),
                         -1);
        assert_true(err[0] != '\0');
    }
}

static const char *str_at(yajl_val root, const char *a, const char *b)
{
    const char *path[3] = { a, b, NULL };
    yajl_val v = yajl_tree_get(root, path, yajl_t_string);
    return v ? YAJL_GET_STRING(v) : NULL;
}

static void test_rewrite_tenant(void **state)
{
    (void)state;
    const char *in =
        "{\"domain\": \"a.example\", \"aliases\": [\"b.example\", \"c.example\"],\n"
        " \"certificate\": \"certs/old.pem\", \"key\": \"certs/old.key\",\n"
        " \"next_certificate\": \"certs/new.pem\", \"next_key\": \"certs/new.key\",\n"
        " \"s2s_backend\": \"127.0.0.1:5269\", \"x_unknown\": {\"certificate\": \"keep\","
        " \"n\": 1.50, \"t\": true, \"f\": false, \"z\": null}}";
    char *out = NULL, err[256];
    size_t len = 0;
    assert_int_equal(xf_rollover_rewrite(in, strlen(in), NULL, &out, &len, err, sizeof err), 0);
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    assert_int_equal(out[len - 1], '\n');
    yajl_val root = yajl_tree_parse(out, err, sizeof err);
    assert_non_null(root);
    assert_string_equal(str_at(root, "certificate", NULL), "certs/new.pem");
    assert_string_equal(str_at(root, "key", NULL), "certs/new.key");
    assert_null(str_at(root, "next_certificate", NULL));
    assert_null(str_at(root, "next_key", NULL));
    assert_string_equal(str_at(root, "domain", NULL), "a.example");
    assert_string_equal(str_at(root, "s2s_backend", NULL), "127.0.0.1:5269");
    /* other objects untouched, even their "certificate"; numbers as written */
    assert_string_equal(str_at(root, "x_unknown", "certificate"), "keep");
    assert_non_null(strstr(out, "1.50"));
    assert_non_null(strstr(out, "true"));
    assert_non_null(strstr(out, "false"));
    assert_non_null(strstr(out, "null"));
    assert_non_null(strstr(out, "\"c.example\""));
    /* order kept: domain, aliases, certificate, key, s2s_backend, x_unknown */
    const char *p[] = { "\"domain\"", "\"aliases\"", "\"certificate\"", "\"key\"",
                        "\"s2s_backend\"", "\"x_unknown\"" };
    for (size_t i = 1; i < sizeof p / sizeof p[0]; i++)
        assert_true(strstr(out, p[i - 1]) < strstr(out, p[i]));
    /* indented, one member a line */
    assert_non_null(strstr(out, "\n  \"domain\": \"a.example\""));
    yajl_tree_free(root);
    free(out);
}

static void test_rewrite_hosting(void **state)
{
    (void)state;
    const char *in =
        "{\"tenants\": \"tenants\", \"workers\": 2,\n"
        " \"hosting\": {\"name\": \"hosting.example\", \"certificate\": \"h.pem\","
        " \"key\": \"h.key\", \"next_certificate\": \"h2.pem\", \"next_key\": \"h2.key\"},\n"
        " \"listeners\": [{\"address\": \"::\", \"port\": 5269, \"tls\": \"starttls\"}]}";
    char *out = NULL, err[256];
    size_t len = 0;
    assert_int_equal(xf_rollover_rewrite(in, strlen(in), "hosting", &out, &len, err,
                                         sizeof err), 0);
    yajl_val root = yajl_tree_parse(out, err, sizeof err);
    assert_non_null(root);
    assert_string_equal(str_at(root, "hosting", "certificate"), "h2.pem");
    assert_string_equal(str_at(root, "hosting", "key"), "h2.key");
    assert_string_equal(str_at(root, "hosting", "name"), "hosting.example");
    assert_null(str_at(root, "hosting", "next_certificate"));
    assert_null(str_at(root, "hosting", "next_key"));
    assert_string_equal(str_at(root, "tenants", NULL), "tenants");
    assert_non_null(strstr(out, "5269"));
    assert_non_null(strstr(out, "\"workers\": 2"));
    yajl_tree_free(root);
    free(out);
}

static void test_rewrite_errors(void **state)
{
    (void)state;
    char *out = (char *)1, err[256];
    size_t len = 7;
    static const struct { const char *json, *obj; } bad[] = {
        { "{\"certificate\": \"a\", \"key\": \"b\"}", NULL },            /* no next */
        { "{\"certificate\": \"a\", \"next_certificate\": \"c\"}", NULL }, /* no next_key */
        { "{\"next_certificate\": 1, \"next_key\": \"d\"}", NULL },     /* not a string */
        { "{\"tenants\": \"t\"}", "hosting" },                          /* no hosting */
        { "{\"hosting\": \"x\"}", "hosting" },
        { "{\"hosting\": {\"next_certificate\": \"c\", \"next_key\": \"d\"}", "hosting" },
        { "[]", NULL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(xf_rollover_rewrite(bad[i].json, strlen(bad[i].json), bad[i].obj, &out,
                                             &len, err, sizeof err), -1);
        assert_null(out);
        assert_int_equal(len, 0);
        assert_true(err[0] != '\0');
    }
    /* the pair is added when the current one was not named (hosting-served before) */
    const char *in = "{\"domain\": \"a.example\", \"next_certificate\": \"c\", \"next_key\": \"d\"}";
    assert_int_equal(xf_rollover_rewrite(in, strlen(in), NULL, &out, &len, err, sizeof err), 0);
    assert_non_null(strstr(out, "\"certificate\": \"c\""));
    assert_non_null(strstr(out, "\"key\": \"d\""));
    assert_null(strstr(out, "next_"));
    free(out);
}

static int run(int argc, const char **argv)
{
    return xf_rollover_main(argc, (char **)argv);
}

/* Bad input is exit 2, before any DNS. */
static void test_arguments(void **state)
{
    (void)state;
    const char *none[] = { "rollover" };
    const char *unknown[] = { "rollover", "a.example", "--frobnicate" };
    const char *two[] = { "rollover", "a.example", "b.example" };
    const char *timeout0[] = { "rollover", "a.example", "--timeout", "0" };
    const char *noval[] = { "rollover", "a.example", "--state" };
    const char *badname[] = { "rollover", "*.example", "--config", "/nonexistent.json" };
    const char *nocfg[] = { "rollover", "a.example", "--config", "/nonexistent/x.json" };
    const char *help[] = { "rollover", "--help" };
    assert_int_equal(run(1, none), 2);
    assert_int_equal(run(3, unknown), 2);
    assert_int_equal(run(3, two), 2);
    assert_int_equal(run(4, timeout0), 2);
    assert_int_equal(run(3, noval), 2);
    assert_int_equal(run(4, badname), 2);
    assert_int_equal(run(4, nocfg), 2);
    assert_int_equal(run(2, help), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_sight_waits),
        cmocka_unit_test(test_two_ttls),
        cmocka_unit_test(test_highest_ttl_kept),
        cmocka_unit_test(test_state_not_ours),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_parse_errors),
        cmocka_unit_test(test_rewrite_tenant),
        cmocka_unit_test(test_rewrite_hosting),
        cmocka_unit_test(test_rewrite_errors),
        cmocka_unit_test(test_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
