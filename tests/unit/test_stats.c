/* Unit tests for proxy/stats.c: counters start at zero, count from several threads
   without losing increments, and format as name=value pairs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <string.h>
#include "proxy/stats.h"

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++)
        xf_stats_inc(XF_STAT_REFUSED_PER_IP);
    return NULL;
}

static void counts_from_threads(void **state)
{
    (void)state;
    assert_int_equal(xf_stats_get(XF_STAT_REFUSED_PER_IP), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, bump, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(xf_stats_get(XF_STAT_REFUSED_PER_IP), 400000);
    assert_int_equal(xf_stats_get(XF_STAT_CLOSE_KEEPALIVE), 0);
    xf_stats_inc((enum xf_stat)XF_STAT__COUNT);           /* out of range: ignored */
    assert_int_equal(xf_stats_get((enum xf_stat)XF_STAT__COUNT), 0);
}

static void names_and_format(void **state)
{
    (void)state;
    xf_stats_inc(XF_STAT_CLOSE_KEEPALIVE);
    assert_string_equal(xf_stats_name(XF_STAT_CLOSE_KEEPALIVE), "close_keepalive");
    assert_string_equal(xf_stats_name(XF_STAT_ACCEPT_ALLOC_FAILED), "accept_alloc_failed");
    for (int i = 0; i < XF_STAT__COUNT; i++)
        assert_non_null(xf_stats_name((enum xf_stat)i));
    char out[512];
    xf_stats_format(out, sizeof(out));
    assert_non_null(strstr(out, "close_keepalive=1"));
    assert_non_null(strstr(out, "refused_per_ip=400000"));
    assert_non_null(strstr(out, "refused_unauthenticated_per_ip=0"));
    char small[20];
    xf_stats_format(small, sizeof(small));                 /* cut, still terminated */
    assert_true(strlen(small) < sizeof(small));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_from_threads),
        cmocka_unit_test(names_and_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
