#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <string.h>
#include "proxy/iplimit.h"

static xf_ipkey key(const char *a, unsigned prefix)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    xf_ipkey k;
    if (strchr(a, ':')) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
        s->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, a, &s->sin6_addr), 1);
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;
        s->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, a, &s->sin_addr), 1);
    }
    assert_int_equal(xf_iplimit_key(&ss, prefix, &k), 0);
    return k;
}

static void limit_per_address(void **state)
{
    (void)state;
    xf_ipkey a = key("192.0.2.1", 64), b = key("192.0.2.2", 64);
    assert_int_equal(xf_iplimit_acquire(&a, 2, 0), 0);
    assert_int_equal(xf_iplimit_acquire(&a, 2, 0), 0);
    assert_int_equal(xf_iplimit_acquire(&a, 2, 0), XF_IPLIMIT_OVER_TOTAL); /* third: refused */
    assert_int_equal(xf_iplimit_acquire(&b, 2, 0), 0);    /* b is counted apart */
    assert_int_equal(xf_iplimit_count(&a, NULL), 2);
    xf_iplimit_release(&a, 1);
    assert_int_equal(xf_iplimit_acquire(&a, 2, 0), 0);    /* room again */
    xf_iplimit_release(&a, 1);
    xf_iplimit_release(&a, 1);
    xf_iplimit_release(&b, 1);
    assert_int_equal(xf_iplimit_count(&a, NULL), 0);
}

static void mapped_v4_is_the_same_address(void **state)
{
    (void)state;
    xf_ipkey a = key("198.51.100.7", 64), m = key("::ffff:198.51.100.7", 64);
    xf_ipkey other = key("::ffff:198.51.100.8", 64);
    assert_memory_equal(a.b, m.b, 16);
    /* IPv4 is per address even though a /64 would cover all of ::ffff:0:0/96 */
    assert_memory_not_equal(m.b, other.b, 16);
    assert_int_equal(xf_iplimit_acquire(&a, 1, 0), 0);
    assert_int_equal(xf_iplimit_acquire(&m, 1, 0), XF_IPLIMIT_OVER_TOTAL);
    assert_int_equal(xf_iplimit_acquire(&other, 1, 0), 0);
    xf_iplimit_release(&m, 1);                            /* releases a's count */
    assert_int_equal(xf_iplimit_acquire(&a, 1, 0), 0);
    xf_iplimit_release(&a, 1);
    xf_iplimit_release(&other, 1);
}

/* Two addresses of one /64 share the count; another /64 has its own. */
static void ipv6_aggregated_by_64(void **state)
{
    (void)state;
    xf_ipkey x = key("2001:db8:1:2::1", 64), y = key("2001:db8:1:2:ffff:1:2:3", 64);
    xf_ipkey z = key("2001:db8:1:3::1", 64);
    assert_memory_equal(x.b, y.b, 16);
    assert_memory_not_equal(x.b, z.b, 16);
    assert_int_equal(xf_iplimit_acquire(&x, 2, 0), 0);
    assert_int_equal(xf_iplimit_acquire(&y, 2, 0), 0);
    assert_int_equal(xf_iplimit_acquire(&y, 2, 0), XF_IPLIMIT_OVER_TOTAL);
    assert_int_equal(xf_iplimit_acquire(&x, 2, 0), XF_IPLIMIT_OVER_TOTAL);
    assert_int_equal(xf_iplimit_acquire(&z, 2, 0), 0);    /* the next /64 is apart */
    assert_int_equal(xf_iplimit_count(&x, NULL), 2);
    xf_iplimit_release(&x, 1);
    xf_iplimit_release(&y, 1);
    xf_iplimit_release(&z, 1);
    assert_int_equal(xf_iplimit_count(&x, NULL), 0);
}

/* A /56 setting joins what /64 keeps apart, and splits the next /56. */
static void ipv6_prefix_56(void **state)
{
    (void)state;
    xf_ipkey a = key("2001:db8:0:1200::1", 56), b = key("2001:db8:0:12ff:1::1", 56);
    xf_ipkey c = key("2001:db8:0:1300::1", 56);
    assert_memory_equal(a.b, b.b, 16);
    assert_memory_not_equal(a.b, c.b, 16);
    assert_memory_not_equal(key("2001:db8:0:1200::1", 64).b, key("2001:db8:0:12ff::1", 64).b, 16);
    assert_int_equal(xf_iplimit_acquire(&a, 1, 0), 0);
    assert_int_equal(xf_iplimit_acquire(&b, 1, 0), XF_IPLIMIT_OVER_TOTAL);
    assert_int_equal(xf_iplimit_acquire(&c, 1, 0), 0);
    xf_iplimit_release(&a, 1);
    xf_iplimit_release(&c, 1);
    /* odd prefix lengths mask inside a byte; /128 is per address */
    assert_memory_equal(key("2001:db8::7f", 121).b, key("2001:db8::00", 121).b, 16);
    assert_memory_not_equal(key("2001:db8::80", 121).b, key("2001:db8::00", 121).b, 16);
    assert_memory_not_equal(key("2001:db8::1", 128).b, key("2001:db8::2", 128).b, 16);
}

/* The unauthenticated count is bounded on its own and released by authentication. */
static void unauthenticated_slots(void **state)
{
    (void)state;
    xf_ipkey a = key("203.0.113.9", 64);
    unsigned u = 99;
    assert_int_equal(xf_iplimit_acquire(&a, 10, 2), 0);
    assert_int_equal(xf_iplimit_acquire(&a, 10, 2), 0);
    assert_int_equal(xf_iplimit_acquire(&a, 10, 2), XF_IPLIMIT_OVER_UNAUTH);
    assert_int_equal(xf_iplimit_count(&a, &u), 2);
    assert_int_equal(u, 2);
    xf_iplimit_authenticated(&a);                          /* one logged in */
    assert_int_equal(xf_iplimit_acquire(&a, 10, 2), 0);    /* room for one more */
    assert_int_equal(xf_iplimit_count(&a, &u), 3);
    assert_int_equal(u, 2);
    xf_iplimit_release(&a, 0);                             /* the authenticated one */
    xf_iplimit_release(&a, 1);
    xf_iplimit_release(&a, 1);
    assert_int_equal(xf_iplimit_count(&a, &u), 0);
    assert_int_equal(u, 0);
}

static void other_families_are_not_counted(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    xf_ipkey k;
    assert_int_equal(xf_iplimit_key(&ss, 64, &k), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limit_per_address),
        cmocka_unit_test(mapped_v4_is_the_same_address),
        cmocka_unit_test(ipv6_aggregated_by_64),
        cmocka_unit_test(ipv6_prefix_56),
        cmocka_unit_test(unauthenticated_slots),
        cmocka_unit_test(other_families_are_not_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
