#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>
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

/* ---------------------------------------------------------------- json, journal */

/* Parse a captured JSON line (exactly one line, one object); fail the test otherwise. */
static yajl_val parse_json_line(const char *out)
{
    char ebuf[256];
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    for (const char *p = out; *p != '\n'; p++)
        assert_true((unsigned char)*p >= 0x20);       /* no raw control byte */
    yajl_val v = yajl_tree_parse(out, ebuf, sizeof ebuf);
    if (v == NULL) fail_msg("not JSON: %s: %s", ebuf, out);
    assert_true(YAJL_IS_OBJECT(v));
    return v;
}

static const char *jstr(yajl_val o, const char *k)
{
    const char *path[] = {k, NULL};
    yajl_val v = yajl_tree_get(o, path, yajl_t_string);
    return v ? YAJL_GET_STRING(v) : NULL;
}

static size_t key_count(yajl_val o, const char *k)
{
    size_t n = 0;
    for (size_t i = 0; i < o->u.object.len; i++)
        n += strcmp(o->u.object.keys[i], k) == 0;
    return n;
}

/* The close line's fields become members; a quoted value that looks like fields stays
   one value, unescaped; numbers are numbers. */
static void json_line_carries_the_fields(void **state)
{
    (void)state;
    char out[8192], q[256], line[512];
    xf_log_set_level(XF_LOG_INFO);
    xf_log_set_format(XF_LOG_JSON);
    xf_log_quote(q, sizeof(q), "\" tenant=evil.example peer=1.2.3.4 x=\"\\\n");
    snprintf(line, sizeof line, "conn id=7 close tenant=\"a.example\" peer=127.0.0.1:5 "
             "in=012 out=34 reason=%s", q);
    capture(out, sizeof(out), XF_LOG_INFO, "%s", line);
    xf_log_set_format(XF_LOG_TEXT);
    yajl_val v = parse_json_line(out);
    assert_string_equal(jstr(v, "level"), "info");
    assert_non_null(jstr(v, "time"));
    assert_int_equal(strlen(jstr(v, "time")), 24);
    assert_string_equal(jstr(v, "message"), line);
    assert_string_equal(jstr(v, "tenant"), "a.example");
    assert_string_equal(jstr(v, "peer"), "127.0.0.1:5");
    assert_string_equal(jstr(v, "in"), "012");                 /* not a plain number */
    assert_string_equal(jstr(v, "reason"), "\" tenant=evil.example peer=1.2.3.4 x=\"\\\n");
    const char *path[] = {"id", NULL}, *po[] = {"out", NULL};
    assert_true(YAJL_IS_INTEGER(yajl_tree_get(v, path, yajl_t_number)));
    assert_int_equal(YAJL_GET_INTEGER(yajl_tree_get(v, po, yajl_t_number)), 34);
    assert_int_equal(key_count(v, "tenant"), 1);
    assert_int_equal(key_count(v, "peer"), 1);
    assert_int_equal(key_count(v, "x"), 0);
    assert_int_equal(v->u.object.len, 3 + 6);                  /* time level message + 6 */
    yajl_tree_free(v);
}

/* Control bytes are JSON escapes, bytes that are not UTF-8 the text \xNN; UTF-8 stays;
   a field named like a fixed member, or a second time, or cut before its closing quote,
   is not a member. */
static void json_escapes_and_odd_fields(void **state)
{
    (void)state;
    char out[8192];
    xf_log_set_level(XF_LOG_INFO);
    xf_log_set_format(XF_LOG_JSON);
    capture(out, sizeof(out), XF_LOG_WARN, "%s",
            "to 'e\n{\"level\":\"error\"}\x01\xff\xc3\xa9' level=error a=1 a=2 cut=\"open");
    xf_log_set_format(XF_LOG_TEXT);
    yajl_val v = parse_json_line(out);
    assert_string_equal(jstr(v, "level"), "warn");
    assert_string_equal(jstr(v, "message"),
                        "to 'e\n{\"level\":\"error\"}\x01\\xff\xc3\xa9' level=error a=1 a=2 cut=\"open");
    assert_int_equal(key_count(v, "level"), 1);
    assert_int_equal(key_count(v, "a"), 1);
    assert_int_equal(key_count(v, "cut"), 0);
    assert_non_null(strstr(out, "\\u0001"));
    yajl_tree_free(v);
}

/* Under the journal: the sd-daemon priority first, and no timestamp in text lines. */
static void journal_priority_prefix(void **state)
{
    (void)state;
    char out[4096];
    xf_log_set_level(XF_LOG_DEBUG);
    xf_log_set_journal(1);
    capture(out, sizeof(out), XF_LOG_WARN, "%s", "careful");
    assert_string_equal(out, "<4>warn careful\n");
    capture(out, sizeof(out), XF_LOG_ERROR, "%s", "bad");
    assert_string_equal(out, "<3>error bad\n");
    capture(out, sizeof(out), XF_LOG_DEBUG, "%s", "fine");
    assert_string_equal(out, "<7>debug fine\n");
    xf_log_set_format(XF_LOG_JSON);
    capture(out, sizeof(out), XF_LOG_INFO, "%s", "up n=2");
    assert_memory_equal(out, "<6>{\"time\":", 11);
    yajl_val v = parse_json_line(out + 3);
    assert_string_equal(jstr(v, "message"), "up n=2");
    yajl_tree_free(v);
    xf_log_set_format(XF_LOG_TEXT);
    xf_log_set_journal(0);
    unsetenv("JOURNAL_STREAM");
    assert_int_equal(xf_log_detect_journal(), 0);
    setenv("JOURNAL_STREAM", "1:2", 1);                        /* not stderr */
    assert_int_equal(xf_log_detect_journal(), 0);
    struct stat st;
    char js[64];
    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);                           /* stderr itself */
    assert_int_equal(xf_log_detect_journal(), 1);
    capture(out, sizeof(out), XF_LOG_INFO, "%s", "via journal");
    assert_string_equal(out, "<6>info via journal\n");
    xf_log_set_journal(0);
    unsetenv("JOURNAL_STREAM");
    xf_log_set_level(XF_LOG_INFO);
}

/* Held lines come out on release, in the format set by then. */
static void held_lines_come_out_on_release(void **state)
{
    (void)state;
    char out[4096];
    xf_log_set_level(XF_LOG_INFO);
    xf_log_hold();
    assert_int_equal(capture(out, sizeof(out), XF_LOG_WARN, "%s", "early k=v"), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    xf_log_set_format(XF_LOG_JSON);
    xf_log_release();
    xf_log_set_format(XF_LOG_TEXT);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    out[n > 0 ? n : 0] = '\0';
    yajl_val v = parse_json_line(out);
    assert_string_equal(jstr(v, "k"), "v");
    yajl_tree_free(v);
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
        cmocka_unit_test(json_line_carries_the_fields),
        cmocka_unit_test(json_escapes_and_odd_fields),
        cmocka_unit_test(journal_priority_prefix),
        cmocka_unit_test(held_lines_come_out_on_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
