#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "proxy/buf.h"

static void zero_struct_is_empty(void **state)
{
    (void)state;
    xf_buf b = {0};
    assert_int_equal(xf_buf_size(&b), 0);
    xf_buf_consume(&b, 0);
    xf_buf_free(&b);                 /* freeing an empty buffer is fine */
    assert_null(b.data);
}

static void append_consume_keeps_order(void **state)
{
    (void)state;
    xf_buf b = {0};
    assert_int_equal(xf_buf_append(&b, "hello ", 6), 0);
    assert_int_equal(xf_buf_append(&b, "world", 5), 0);
    assert_int_equal(xf_buf_size(&b), 11);
    assert_memory_equal(xf_buf_head(&b), "hello world", 11);
    xf_buf_consume(&b, 6);
    assert_int_equal(xf_buf_size(&b), 5);
    assert_memory_equal(xf_buf_head(&b), "world", 5);
    xf_buf_consume(&b, 5);
    assert_int_equal(xf_buf_size(&b), 0);
    assert_int_equal(b.off, 0);      /* fully consumed: rewound */
    xf_buf_free(&b);
}

static void reserve_compacts_before_growing(void **state)
{
    (void)state;
    xf_buf b = {0};
    char *w = xf_buf_reserve(&b, 1000);
    assert_non_null(w);
    memset(w, 'a', 1000);
    xf_buf_commit(&b, 1000);
    size_t cap = b.cap;
    xf_buf_consume(&b, 900);         /* 100 left at offset 900 */
    w = xf_buf_reserve(&b, cap - 100);
    assert_non_null(w);
    assert_int_equal(b.cap, cap);    /* room found by moving, not by growing */
    assert_int_equal(b.off, 0);
    assert_int_equal(xf_buf_size(&b), 100);
    assert_int_equal(xf_buf_head(&b)[0], 'a');
    xf_buf_free(&b);
}

static void grows_for_large_appends(void **state)
{
    (void)state;
    xf_buf b = {0};
    static char big[300000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    assert_int_equal(xf_buf_append(&b, big, sizeof(big)), 0);
    assert_int_equal(xf_buf_append(&b, big, 10), 0);
    assert_int_equal(xf_buf_size(&b), sizeof(big) + 10);
    assert_memory_equal(xf_buf_head(&b), big, sizeof(big));
    assert_memory_equal(xf_buf_head(&b) + sizeof(big), big, 10);
    xf_buf_reset(&b);
    assert_int_equal(xf_buf_size(&b), 0);
    assert_non_null(b.data);         /* reset keeps the memory */
    xf_buf_free(&b);
}

/* A drained buffer gives its storage back; one with unread bytes keeps them intact. */
static void release_if_empty_frees_only_drained(void **state)
{
    (void)state;
    xf_buf b = {0};
    xf_buf_release_if_empty(&b);             /* the empty struct stays valid */
    assert_null(b.data);
    assert_int_equal(xf_buf_append(&b, "abcdef", 6), 0);
    xf_buf_consume(&b, 4);
    xf_buf_release_if_empty(&b);
    assert_non_null(b.data);
    assert_int_equal(xf_buf_size(&b), 2);
    assert_memory_equal(xf_buf_head(&b), "ef", 2);
    xf_buf_consume(&b, 2);
    xf_buf_release_if_empty(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    assert_int_equal(xf_buf_size(&b), 0);
    assert_int_equal(xf_buf_append(&b, "x", 1), 0);   /* usable again */
    assert_int_equal(xf_buf_size(&b), 1);
    xf_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zero_struct_is_empty),
        cmocka_unit_test(append_consume_keeps_order),
        cmocka_unit_test(reserve_compacts_before_growing),
        cmocka_unit_test(grows_for_large_appends),
        cmocka_unit_test(release_if_empty_frees_only_drained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
