#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>
#include "proxy/iplimit.h"

static struct sockaddr_storage v4(const char *a)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    inet_pton(AF_INET, a, &s->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *a)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
    s->sin6_family = AF_INET6;
    inet_pton(AF_INET6, a, &s->sin6_addr);
    return ss;
}

static void limit_per_address(void **state)
{
    (void)state;
    struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.2");
    assert_int_equal(xf_iplimit_acquire(&a, 2), 0);
    assert_int_equal(xf_iplimit_acquire(&a, 2), 0);
    assert_int_equal(xf_iplimit_acquire(&a, 2), -1);      /* third from a: refused */
    assert_int_equal(xf_iplimit_acquire(&b, 2), 0);       /* b is counted apart */
    xf_iplimit_release(&a);
    assert_int_equal(xf_iplimit_acquire(&a, 2), 0);       /* room again */
    xf_iplimit_release(&a);
    xf_iplimit_release(&a);
    xf_iplimit_release(&b);
}

static void mapped_v4_is_the_same_address(void **state)
{
    (void)state;
    struct sockaddr_storage a = v4("198.51.100.7"), m = v6("::ffff:198.51.100.7");
    assert_int_equal(xf_iplimit_acquire(&a, 1), 0);
    assert_int_equal(xf_iplimit_acquire(&m, 1), -1);
    xf_iplimit_release(&m);                               /* releases a's count */
    assert_int_equal(xf_iplimit_acquire(&a, 1), 0);
    xf_iplimit_release(&a);
}

static void zero_means_unlimited(void **state)
{
    (void)state;
    struct sockaddr_storage a = v6("2001:db8::1");
    for (int i = 0; i < 1000; i++)
        assert_int_equal(xf_iplimit_acquire(&a, 0), 0);
    /* Nothing was tracked: a limit of 1 still admits the first connection. */
    assert_int_equal(xf_iplimit_acquire(&a, 1), 0);
    xf_iplimit_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limit_per_address),
        cmocka_unit_test(mapped_v4_is_the_same_address),
        cmocka_unit_test(zero_means_unlimited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
