/*
 * iplimit: live connections per source address, across all workers (design.md §5:
 * "too many connections (global, per source address) -> refuse at accept").
 * Touched only at accept, at authentication and at close, never on the data path; one
 * mutex.
 *
 * What counts as one "address": an IPv4 address (IPv4-mapped IPv6 counts as its IPv4
 * address), or an IPv6 prefix of limits.ipv6_prefix bits (default /64: one subscriber's
 * network, RFC 6177, which its owner can fill with as many addresses as it likes).
 * Each address has two counts: every live connection, and those not yet authenticated.
 */
#ifndef XF_IPLIMIT_H
#define XF_IPLIMIT_H

#include <stdint.h>
#include <sys/socket.h>

/* The counting key of an address: 16 bytes, IPv4 as ::ffff:a.b.c.d, IPv6 masked to its
   prefix. A connection keeps its key so that release counts what acquire counted. */
typedef struct xf_ipkey {
    uint8_t b[16];
} xf_ipkey;

enum {
    XF_IPLIMIT_OVER_TOTAL = -1,     /* max_connections_per_ip reached */
    XF_IPLIMIT_OVER_UNAUTH = -2,    /* max_unauthenticated_per_ip reached */
    XF_IPLIMIT_NOMEM = -3,
};

/* The key of ss for an IPv6 prefix length v6_prefix (32..128). Returns 0, or -1 for
   an address family other than IPv4/IPv6 (not counted). */
int xf_iplimit_key(const struct sockaddr_storage *ss, unsigned v6_prefix, xf_ipkey *out);
/* Count one more unauthenticated connection under k. Returns 0 (counted in both counts),
   or a negative XF_IPLIMIT_* (nothing counted) when that would exceed max_total or
   max_unauth; 0 means unlimited for either. */
int xf_iplimit_acquire(const xf_ipkey *k, unsigned max_total, unsigned max_unauth);
/* The connection authenticated: it leaves the unauthenticated count (once). */
void xf_iplimit_authenticated(const xf_ipkey *k);
/* Forget one connection counted by a successful acquire; `unauth` says whether it
   still holds an unauthenticated slot (xf_iplimit_authenticated not called). */
void xf_iplimit_release(const xf_ipkey *k, int unauth);
/* Current counts under k (0 when untracked); for tests and diagnostics. */
unsigned xf_iplimit_count(const xf_ipkey *k, unsigned *unauth);

#endif
