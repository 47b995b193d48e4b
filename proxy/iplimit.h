/*
 * iplimit: live connections per source address, across all workers (design.md §5:
 * "too many connections (global, per source address) -> refuse at accept").
 * Touched only at accept and close, never on the data path; one mutex.
 * IPv4-mapped IPv6 addresses count as their IPv4 address.
 */
#ifndef XF_IPLIMIT_H
#define XF_IPLIMIT_H

#include <sys/socket.h>

/* Count one more connection from ss. Returns 0, or -1 (not counted) when that would
   exceed max. max == 0 means unlimited, and then nothing is tracked. */
int xf_iplimit_acquire(const struct sockaddr_storage *ss, unsigned max);
/* Forget one connection counted by a successful acquire. */
void xf_iplimit_release(const struct sockaddr_storage *ss);

#endif
