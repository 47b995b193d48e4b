/*
 * stats: per-process event counters (atomic, lock-free), for the future metrics
 * endpoint and for tests. Counters only grow; readers see a relaxed snapshot.
 */
#ifndef XF_STATS_H
#define XF_STATS_H

#include <stddef.h>
#include <stdint.h>

enum xf_stat {
    XF_STAT_CLOSE_KEEPALIVE,         /* peer unreachable: TCP keepalive timed out */
    XF_STAT_REFUSED_PER_IP,          /* limits.max_connections_per_ip */
    XF_STAT_REFUSED_UNAUTH_PER_IP,   /* limits.max_unauthenticated_per_ip */
    XF_STAT_REFUSED_GLOBAL,          /* limits.max_connections */
    XF_STAT_ACCEPT_ALLOC_FAILED,     /* accepted into the spare handle and closed */
    XF_STAT_MALLOC_TRIM,             /* memory handed back after a burst */
    XF_STAT_RELOAD_OK,               /* configuration reloads put in service */
    XF_STAT_RELOAD_FAILED,           /* reloads refused (the old configuration stays) */
    XF_STAT_UPGRADE_STARTED,         /* binary upgrades begun (a new process started) */
    XF_STAT_UPGRADE_FAILED,          /* binary upgrades that did not take over */
    XF_STAT__COUNT
};

void xf_stats_inc(enum xf_stat s);
uint64_t xf_stats_get(enum xf_stat s);
/* Stable snake_case name of s ("close_keepalive", ...), for logs and the endpoint. */
const char *xf_stats_name(enum xf_stat s);
/* Every counter as "name=value name=value ..." into out (cut to cap); returns out. */
const char *xf_stats_format(char *out, size_t cap);

#endif
