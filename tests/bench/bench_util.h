/*
 * bench_util.h: the small helpers the benchmark clients (loadc.c, loginc.c) share —
 * a monotonic clock in seconds and percentiles of a sorted sample. Header-only, so each
 * client still builds with one `cc` line.
 */
#ifndef XF_BENCH_UTIL_H
#define XF_BENCH_UTIL_H

#include <stddef.h>
#include <time.h>

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* qsort comparator for doubles, ascending. */
static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile (0..1) of v[0..n), which is sorted ascending; 0 for no samples. */
static inline double pct(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

#endif
