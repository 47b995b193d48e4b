/* Unit tests for proxy/srvorder.c: XEP-0368 merge, RFC 2782 "." and fallback rules
   (spec-digest §10 case 15), and the weighted pick over many draws (case 16). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/srvorder.h"

#define A_RECS(arr) { XF_SRV_ST_RECORDS, arr, sizeof arr / sizeof arr[0] }
static const xf_srv_answer NONE = { XF_SRV_ST_NONE, NULL, 0 };
static const xf_srv_answer FAIL = { XF_SRV_ST_FAIL, NULL, 0 };
static const xf_srv_rec DOT[] = { { 0, 0, 0, "." } };

/* xorshift64*: deterministic, good enough for distribution tests. */
static uint32_t xs_rand(void *ctx, uint32_t bound)
{
    uint64_t *s = ctx;
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    uint64_t v = (*s * 0x2545F4914F6CDD1DULL) >> 32;
    return (uint32_t)(v % ((uint64_t)bound + 1));
}

/* Replays a fixed list of draws; counts the calls and records the bounds. */
struct script { const uint32_t *v; size_t n, i; uint32_t bounds[16]; };
static uint32_t script_rand(void *ctx, uint32_t bound)
{
    struct script *s = ctx;
    assert_true(s->i < s->n);
    if (s->i < 16) s->bounds[s->i] = bound;
    return s->v[s->i++];
}

static void test_fallback_when_both_absent(void **st)
{
    (void)st;
    xf_srv_target t[4];
    int n = xf_srv_order("Example.NET.", &NONE, &NONE, NULL, NULL, t, 4);
    assert_int_equal(n, 1);
    assert_string_equal(t[0].host, "example.net");
    assert_int_equal(t[0].port, 5269);
    assert_int_equal(t[0].tls, XF_SRV_TLS_STARTTLS);
    assert_int_equal(t[0].fallback, 1);
}

static void test_dot_rules(void **st)
{
    (void)st;
    static const xf_srv_rec recs[] = { { 5, 0, 5269, "xmpp.example.net." } };
    const xf_srv_answer dot = A_RECS(DOT), some = A_RECS(recs);
    xf_srv_target t[4];

    /* "." in _xmpp-server: decidedly not available, no A/AAAA fallback. */
    assert_int_equal(xf_srv_order("example.net", &NONE, &dot, NULL, NULL, t, 4),
                     XF_SRV_NO_SERVICE);
    /* "." in both. */
    assert_int_equal(xf_srv_order("example.net", &dot, &dot, NULL, NULL, t, 4),
                     XF_SRV_NO_SERVICE);
    /* "." in _xmpps-server alone: SRV is in use, so no fallback either (XEP-0368 §5). */
    assert_int_equal(xf_srv_order("example.net", &dot, &NONE, NULL, NULL, t, 4),
                     XF_SRV_NO_SERVICE);
    /* "." in _xmpps-server with _xmpp-server records: the xmpp set only. */
    assert_int_equal(xf_srv_order("example.net", &dot, &some, NULL, NULL, t, 4), 1);
    assert_string_equal(t[0].host, "xmpp.example.net");
    assert_int_equal(t[0].tls, XF_SRV_TLS_STARTTLS);
    assert_int_equal(t[0].fallback, 0);
    /* "." in _xmpp-server with _xmpps-server records: direct TLS only. */
    assert_int_equal(xf_srv_order("example.net", &some, &dot, NULL, NULL, t, 4), 1);
    assert_int_equal(t[0].tls, XF_SRV_TLS_DIRECT);
    /* Records exist: the domain's A/AAAA is never added ("all SRV targets down ->
       no fallback"). */
    assert_int_equal(xf_srv_order("example.net", &NONE, &some, NULL, NULL, t, 4), 1);
    assert_int_equal(t[0].fallback, 0);
    assert_string_not_equal(t[0].host, "example.net");
}

static void test_lookup_failure(void **st)
{
    (void)st;
    static const xf_srv_rec recs[] = { { 5, 0, 5269, "xmpp.example.net" } };
    const xf_srv_answer some = A_RECS(recs);
    xf_srv_target t[4];
    assert_int_equal(xf_srv_order("example.net", &FAIL, &some, NULL, NULL, t, 4),
                     XF_SRV_ERR_LOOKUP);
    assert_int_equal(xf_srv_order("example.net", &some, &FAIL, NULL, NULL, t, 4),
                     XF_SRV_ERR_LOOKUP);
    assert_int_equal(xf_srv_order("example.net", &FAIL, &NONE, NULL, NULL, t, 4),
                     XF_SRV_ERR_LOOKUP);
    assert_int_equal(xf_srv_order("", &NONE, &NONE, NULL, NULL, t, 4), XF_SRV_ERR_ARG);
    assert_int_equal(xf_srv_order("example.net", &NONE, &NONE, NULL, NULL, t, 0),
                     XF_SRV_ERR_ARG);
    assert_int_equal(xf_srv_order("exa mple.net", &NONE, &NONE, NULL, NULL, t, 4),
                     XF_SRV_ERR_ARG);
}

/* Priorities are merged across both sets: xmpps at 10 comes after xmpp at 5 and
   before xmpp at 20. Bad records are dropped. */
static void test_priority_merge(void **st)
{
    (void)st;
    static const xf_srv_rec s[] = { { 10, 0, 443, "tls.example.net" },
                                    { 10, 0, 0, "portzero.example.net" },
                                    { 1, 0, 5270, "bad name.example.net" } };
    static const xf_srv_rec x[] = { { 20, 0, 5269, "c.example.net" },
                                    { 5, 0, 5269, "A.example.net." },
                                    { 7, 0, 5269, "." } };
    const xf_srv_answer as = A_RECS(s), ax = A_RECS(x);
    xf_srv_target t[8];
    uint64_t seed = 1;
    int n = xf_srv_order("example.net", &as, &ax, xs_rand, &seed, t, 8);
    assert_int_equal(n, 3);
    assert_string_equal(t[0].host, "a.example.net");
    assert_int_equal(t[0].tls, XF_SRV_TLS_STARTTLS);
    assert_int_equal(t[0].priority, 5);
    assert_string_equal(t[1].host, "tls.example.net");
    assert_int_equal(t[1].tls, XF_SRV_TLS_DIRECT);
    assert_int_equal(t[1].port, 443);
    assert_string_equal(t[2].host, "c.example.net");
    /* max truncates the list. */
    assert_int_equal(xf_srv_order("example.net", &as, &ax, xs_rand, &seed, t, 2), 2);
    assert_string_equal(t[1].host, "tls.example.net");
}

/* The RFC 2782 procedure step by step with scripted draws: weights 0, 2, 3 at one
   priority. Arrangement (weight-0 first): z(0) a(2) b(3); running sums 0, 2, 5.
   Draw 3 -> first sum >= 3 is b. Remaining z(0) a(2), sums 0, 2, total 2; draw 0 ->
   z. Remaining a alone (no weight 0): r = draw + 1 in [1, 2]; draw 1 -> a. */
static void test_rfc2782_procedure(void **st)
{
    (void)st;
    static const xf_srv_rec x[] = { { 1, 2, 5269, "a.example" },
                                    { 1, 3, 5269, "b.example" },
                                    { 1, 0, 5269, "z.example" } };
    const xf_srv_answer ax = A_RECS(x);
    static const uint32_t draws[] = { 3, 0, 1 };
    struct script sc = { draws, 3, 0, { 0 } };
    xf_srv_target t[4];
    assert_int_equal(xf_srv_order("example", &NONE, &ax, script_rand, &sc, t, 4), 3);
    assert_int_equal(sc.i, 3);
    assert_int_equal(sc.bounds[0], 5);
    assert_int_equal(sc.bounds[1], 2);
    assert_int_equal(sc.bounds[2], 1);
    assert_string_equal(t[0].host, "b.example");
    assert_string_equal(t[1].host, "z.example");
    assert_string_equal(t[2].host, "a.example");

    /* Draw 2 with sums 0, 2, 5 picks a (sum == r counts); then 0 picks z (sums 0, 3). */
    static const uint32_t d2[] = { 2, 0, 0 };
    struct script s2 = { d2, 3, 0, { 0 } };
    assert_int_equal(xf_srv_order("example", &NONE, &ax, script_rand, &s2, t, 4), 3);
    assert_string_equal(t[0].host, "a.example");
    assert_string_equal(t[1].host, "z.example");
    assert_string_equal(t[2].host, "b.example");
}

/* Case 16: xmpps weight 1 and xmpp weight 3 at equal priority: over 20000 orderings
   the xmpps target comes first ~25% of the time. Every ordering is a permutation. */
static void test_weight_distribution(void **st)
{
    (void)st;
    static const xf_srv_rec s[] = { { 10, 1, 5270, "direct.example" } };
    static const xf_srv_rec x[] = { { 10, 3, 5269, "plain.example" } };
    const xf_srv_answer as = A_RECS(s), ax = A_RECS(x);
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    const int N = 20000;
    int first_direct = 0;
    for (int i = 0; i < N; i++) {
        xf_srv_target t[4];
        assert_int_equal(xf_srv_order("example", &as, &ax, xs_rand, &seed, t, 4), 2);
        assert_string_not_equal(t[0].host, t[1].host);
        if (t[0].tls == XF_SRV_TLS_DIRECT) {
            assert_string_equal(t[0].host, "direct.example");
            first_direct++;
        }
    }
    double p = (double)first_direct / N;
    print_message("xmpps weight 1 vs xmpp weight 3: first %.4f (expect 0.25)\n", p);
    assert_true(p > 0.23 && p < 0.27);
}

/* Weight-0 entries: with weights 0, 10, 10 the weight-0 target is first only when
   r == 0, i.e. 1/21 of the draws (~4.8%); the two others share the rest. The
   weight-0 entry still always appears in the list. */
static void test_weight_zero(void **st)
{
    (void)st;
    static const xf_srv_rec x[] = { { 1, 10, 5269, "a.example" },
                                    { 1, 0, 5269, "zero.example" },
                                    { 1, 10, 5269, "b.example" } };
    const xf_srv_answer ax = A_RECS(x);
    uint64_t seed = 42;
    const int N = 20000;
    int first[3] = { 0, 0, 0 }, last_zero = 0;
    for (int i = 0; i < N; i++) {
        xf_srv_target t[4];
        assert_int_equal(xf_srv_order("example", &NONE, &ax, xs_rand, &seed, t, 4), 3);
        if (!strcmp(t[0].host, "a.example")) first[0]++;
        else if (!strcmp(t[0].host, "zero.example")) first[1]++;
        else first[2]++;
        if (!strcmp(t[2].host, "zero.example")) last_zero++;
        int seen = 0;
        for (int k = 0; k < 3; k++) seen |= !strcmp(t[k].host, "zero.example");
        assert_true(seen);
    }
    double pz = (double)first[1] / N, pa = (double)first[0] / N, pb = (double)first[2] / N;
    print_message("weights 10/0/10: first a %.4f zero %.4f b %.4f\n", pa, pz, pb);
    assert_true(pz > 0.03 && pz < 0.07);
    assert_true(pa > 0.45 && pa < 0.50);
    assert_true(pb > 0.45 && pb < 0.50);
    /* After one of a/b is taken, zero vs the other (0 vs 10): zero second w.p. 1/11;
       so it is last most of the time. */
    assert_true((double)last_zero / N > 0.80);
}

/* Three-way weights 1:2:7, and a second priority group that always follows. */
static void test_weights_three_way(void **st)
{
    (void)st;
    static const xf_srv_rec s[] = { { 0, 2, 5270, "two.example" },
                                    { 9, 50, 5270, "backup.example" } };
    static const xf_srv_rec x[] = { { 0, 1, 5269, "one.example" },
                                    { 0, 7, 5269, "seven.example" } };
    const xf_srv_answer as = A_RECS(s), ax = A_RECS(x);
    uint64_t seed = 7;
    const int N = 20000;
    int c1 = 0, c2 = 0, c7 = 0;
    for (int i = 0; i < N; i++) {
        xf_srv_target t[8];
        assert_int_equal(xf_srv_order("example", &as, &ax, xs_rand, &seed, t, 8), 4);
        assert_string_equal(t[3].host, "backup.example");
        if (!strcmp(t[0].host, "one.example")) c1++;
        else if (!strcmp(t[0].host, "two.example")) c2++;
        else if (!strcmp(t[0].host, "seven.example")) c7++;
    }
    print_message("weights 1/2/7: %.4f %.4f %.4f\n", (double)c1 / N, (double)c2 / N,
                  (double)c7 / N);
    /* No weight 0: r in [1, 10] over sums 2, 3, 10 (xmpps set first in the group):
       exactly 2/10, 1/10, 7/10. */
    assert_true((double)c2 / N > 0.18 && (double)c2 / N < 0.22);
    assert_true((double)c1 / N > 0.08 && (double)c1 / N < 0.12);
    assert_true((double)c7 / N > 0.68 && (double)c7 / N < 0.72);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fallback_when_both_absent),
        cmocka_unit_test(test_dot_rules),
        cmocka_unit_test(test_lookup_failure),
        cmocka_unit_test(test_priority_merge),
        cmocka_unit_test(test_rfc2782_procedure),
        cmocka_unit_test(test_weight_distribution),
        cmocka_unit_test(test_weight_zero),
        cmocka_unit_test(test_weights_three_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
