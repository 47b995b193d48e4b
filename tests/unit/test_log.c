#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "proxy/log.h"

/* Run one xf_log call with stderr redirected to a pipe; return what was written. */
__attribute__((format(printf, 4, 0)))
static size_t capture(char *out, size_t cap, int level, const char *fmt, const char *arg)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    xf_log(level, fmt, arg);
#pragma GCC diagnostic pop
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], out, cap - 1);
    close(fds[0]);
    out[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

static void one_line_with_level(void **state)
{
    (void)state;
    char out[4096];
    xf_log_set_level(XF_LOG_INFO);
    capture(out, sizeof(out), XF_LOG_INFO, "conn id=%s close", "7");
    assert_non_null(strstr(out, " info conn id=7 close\n"));
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);   /* exactly one line */
}

static void peer_text_cannot_forge_lines(void **state)
{
    (void)state;
    char out[4096];
    xf_log_set_level(XF_LOG_INFO);
    capture(out, sizeof(out), XF_LOG_WARN, "to '%s' is not hosted",
            "evil\n2026-01-01T00:00:00.000Z info FORGED\r\x1b[2J");
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    assert_non_null(strstr(out, "evil\\x0a2026-01-01T00:00:00.000Z info FORGED\\x0d\\x1b[2J"));
}

static void below_level_is_silent(void **state)
{
    (void)state;
    char out[256];
    xf_log_set_level(XF_LOG_WARN);
    assert_int_equal(capture(out, sizeof(out), XF_LOG_INFO, "%s", "quiet"), 0);
    assert_int_equal(xf_log_parse_level("debug"), XF_LOG_DEBUG);
    assert_int_equal(xf_log_parse_level("error"), XF_LOG_ERROR);
    assert_int_equal(xf_log_parse_level("verbose"), -1);
    xf_log_set_level(XF_LOG_INFO);
}

static void long_messages_are_cut_not_overrun(void **state)
{
    (void)state;
    static char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    char out[8192];
    size_t n = capture(out, sizeof(out), XF_LOG_ERROR, "%s", big);
    assert_true(n > 1000 && n < 2100);
    assert_int_equal(out[n - 1], '\n');
}

/* A value with quotes, backslashes and field-shaped text stays one quoted value. */
static void quote_escapes_quote_backslash_and_controls(void **state)
{
    (void)state;
    char q[256];
    assert_string_equal(xf_log_quote(q, sizeof(q), "a.example"), "\"a.example\"");
    assert_string_equal(xf_log_quote(q, sizeof(q), NULL), "\"-\"");
    assert_string_equal(xf_log_quote(q, sizeof(q), ""), "\"-\"");
    assert_string_equal(xf_log_quote(q, sizeof(q), "x\" tenant=evil.example peer=1.2.3.4 y=\"\\"),
                        "\"x\\\" tenant=evil.example peer=1.2.3.4 y=\\\"\\\\\"");
    assert_string_equal(xf_log_quote(q, sizeof(q), "a\nb\x7f"), "\"a\\x0ab\\x7f\"");
    /* the only unescaped quotes are the first and the last byte */
    xf_log_quote(q, sizeof(q), "\"\"\\\"");
    size_t len = strlen(q);
    for (size_t i = 1; i + 1 < len; i++)
        if (q[i] == '"')
            assert_int_equal(q[i - 1], '\\');
    assert_int_equal(q[0], '"');
    assert_int_equal(q[len - 1], '"');
}

/* Too small an output cuts at a whole escape and still closes the quote. */
static void quote_truncates_at_an_escape_boundary(void **state)
{
    (void)state;
    char q[8];
    assert_string_equal(xf_log_quote(q, sizeof(q), "abcdefghij"), "\"abcde\"");
    assert_string_equal(xf_log_quote(q, sizeof(q), "ab\"\"\"\""), "\"ab\\\"\"");
    assert_string_equal(xf_log_quote(q, sizeof(q), "a\x01\x02"), "\"a\\x01\"");
    char tiny[3];
    assert_string_equal(xf_log_quote(tiny, sizeof(tiny), "abc"), "\"\"");
    assert_string_equal(xf_log_quote(tiny, 2, "abc"), "");
}

/* Through xf_log: a quoted value cannot be parsed as two fields. */
static void quoted_field_in_a_line(void **state)
{
    (void)state;
    char out[4096], q[256];
    xf_log_set_level(XF_LOG_INFO);
    xf_log_quote(q, sizeof(q), "\" tenant=evil.example peer=1.2.3.4 x=\"\\");
    capture(out, sizeof(out), XF_LOG_INFO, "close reason=%s", q);
    assert_non_null(strstr(out, "close reason=\"\\\" tenant=evil.example peer=1.2.3.4 x=\\\"\\\\\"\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_line_with_level),
        cmocka_unit_test(peer_text_cannot_forge_lines),
        cmocka_unit_test(below_level_is_silent),
        cmocka_unit_test(long_messages_are_cut_not_overrun),
        cmocka_unit_test(quote_escapes_quote_backslash_and_controls),
        cmocka_unit_test(quote_truncates_at_an_escape_boundary),
        cmocka_unit_test(quoted_field_in_a_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
