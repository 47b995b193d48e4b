/* stats: see stats.h. One array of 64-bit counters updated with relaxed atomics: each
   counter is independent, no ordering with other memory is promised. */
#include <stdio.h>
#include "proxy/stats.h"

static uint64_t counters[XF_STAT__COUNT];
static const char *const names[XF_STAT__COUNT] = {
    [XF_STAT_CLOSE_KEEPALIVE] = "close_keepalive",
    [XF_STAT_REFUSED_PER_IP] = "refused_per_ip",
    [XF_STAT_REFUSED_UNAUTH_PER_IP] = "refused_unauthenticated_per_ip",
    [XF_STAT_REFUSED_GLOBAL] = "refused_global",
    [XF_STAT_ACCEPT_ALLOC_FAILED] = "accept_alloc_failed",
    [XF_STAT_MALLOC_TRIM] = "malloc_trim",
    [XF_STAT_RELOAD_OK] = "reload_ok",
    [XF_STAT_RELOAD_FAILED] = "reload_failed",
    [XF_STAT_UPGRADE_STARTED] = "upgrade_started",
    [XF_STAT_UPGRADE_FAILED] = "upgrade_failed",
};

void xf_stats_inc(enum xf_stat s)
{
    if ((unsigned)s < XF_STAT__COUNT)
        __atomic_fetch_add(&counters[s], 1, __ATOMIC_RELAXED);
}

uint64_t xf_stats_get(enum xf_stat s)
{
    return (unsigned)s < XF_STAT__COUNT ? __atomic_load_n(&counters[s], __ATOMIC_RELAXED) : 0;
}

const char *xf_stats_name(enum xf_stat s)
{
    return (unsigned)s < XF_STAT__COUNT ? names[s] : "?";
}

const char *xf_stats_format(char *out, size_t cap)
{
    size_t n = 0;
    if (cap)
        out[0] = '\0';
    for (int i = 0; i < XF_STAT__COUNT && n < cap; i++) {
        int m = snprintf(out + n, cap - n, "%s%s=%llu", i ? " " : "", names[i],
                         (unsigned long long)xf_stats_get((enum xf_stat)i));
        if (m < 0)
            break;
        n += (size_t)m;
    }
    return out;
}
