/*
 * dns: a c-ares channel on a libuv loop (design.md §4: one per worker), with a small
 * per-channel cache. Sockets are watched with uv_poll, c-ares timeouts run on a
 * uv_timer. Queries go out with RD and AD set (and EDNS(0)); answers are parsed by
 * proxy/dnswire.c, so the result carries records, TTL and the answer's AD bit on
 * every c-ares version. c-ares does not validate DNSSEC: the caller decides whether
 * AD can be trusted (spec-digest §6: only from a validating resolver on a secure
 * path, e.g. loopback).
 *
 * Results come back by id (style.md §7): a query returns an id, its callback gets the
 * id back, and xf_dns_cancel(id) guarantees the callback is never called. A callback
 * is never called from inside xf_dns_query_* (a cache hit is delivered on the next
 * loop iteration). A failed xf_dns_query_* (returns 0) never calls back.
 *
 * Threading: an xf_dns belongs to the loop's thread; nothing is shared.
 */
#ifndef XF_DNS_H
#define XF_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "proxy/dnswire.h"

typedef struct xf_dns xf_dns;

typedef struct xf_dns_conf {
    const char *const *servers;        /* "IPv4:port" / "[IPv6]:port" (as config.c
                                          normalises federation.resolvers); NULL or
                                          n_servers 0 = /etc/resolv.conf */
    size_t n_servers;
    unsigned timeout_ms;               /* per try; 0 = 2000 */
    unsigned tries;                    /* per server; 0 = 2 */
    unsigned cache_max;                /* cached answers; 0 = 1024 */
    int no_cache;                      /* 1: no caching at all */
    unsigned ttl_max_s;                /* positive answers kept min(TTL, this); 0 = 300 */
    unsigned neg_ttl_max_s;            /* NXDOMAIN/NODATA kept min(SOA TTL, this) (RFC
                                          2308 §5; without SOA not cached); 0 = 60 */
} xf_dns_conf;

/* res is borrowed for the duration of the call. For xf_dns_query_a_aaaa, res->addr
   holds the AAAA addresses first, then the A addresses; status is NOERROR if either
   had addresses, NXDOMAIN if both said NXDOMAIN, NODATA if both had none, otherwise
   the failure (SERVFAIL / TIMEOUT / ERROR); ad = both answers had AD; ttl = the
   lower; from_cache = both came from the cache. Callbacks may start new queries and
   cancel others, but must not call xf_dns_free. */
typedef void (*xf_dns_cb)(void *udata, uint64_t id, const xf_dns_result *res);

/* New channel on loop. conf NULL = all defaults. NULL on failure with err set
   ("c-ares: ..."). */
xf_dns *xf_dns_new(uv_loop_t *loop, const xf_dns_conf *conf, char *err, size_t errlen);

/* SRV lookup of name (e.g. "_xmpp-server._tcp.example.net"). Returns the query id
   (never 0), or 0 when name is not a host name (letters, digits, '-', '_') or memory
   ran out. */
uint64_t xf_dns_query_srv(xf_dns *dns, const char *name, xf_dns_cb cb, void *udata);

/* A and AAAA of name, asked together, one callback (see xf_dns_cb). */
uint64_t xf_dns_query_a_aaaa(xf_dns *dns, const char *name, xf_dns_cb cb, void *udata);

/* TLSA records at "_PORT._tcp.HOST" (RFC 6698 §3, RFC 7673 §3: HOST is the SRV target,
   or the domain itself without SRV). res->tlsa holds the records' RDATA; res->ad the
   answer's AD bit (trust it only when xf_dns_ad_trusted). A SERVFAIL (how a validating
   resolver reports bogus) stays XF_DNS_SERVFAIL, distinct from NXDOMAIN / NODATA (no
   TLSA) and TIMEOUT / ERROR (indeterminate). Returns the id, or 0 for a bad host or
   port. */
uint64_t xf_dns_query_tlsa(xf_dns *dns, unsigned port, const char *host, xf_dns_cb cb,
                           void *udata);

/* Cancels query id: its callback will not be called. 1 if it was pending, 0 if the id
   is unknown or already delivered (safe to call with stale ids and 0). */
int xf_dns_cancel(xf_dns *dns, uint64_t id);

/* ---- trusting the AD bit (spec-digest §6, RFC 6698 §4.2 / RFC 7673 §3) ----
   c-ares does not validate DNSSEC; the AD bit of an answer is trusted only when every
   resolver the channel asks is on loopback (IPv4 127.0.0.0/8, IPv6 ::1), i.e. a
   validating resolver on this host (or this network namespace) where nothing on the
   network can forge the bit. conf->servers when given, else the nameserver lines of
   /etc/resolv.conf (what c-ares reads). With any resolver elsewhere (or none found)
   every answer counts as insecure: DANE does not apply, PKIX (and POSH) only. */

/* 1 if servers[0..n) (as xf_dns_conf.servers: "IPv4:port" / "[IPv6]:port", also
   bare addresses) are all loopback and n > 0; else 0. *first_bad (may be NULL) gets
   the index of the first one that is not (or n when none). Pure. */
int xf_dns_servers_loopback(const char *const *servers, size_t n, size_t *first_bad);

/* The same for the "nameserver" lines of a resolv.conf file: 1 if there is at least
   one and all are loopback; 0 otherwise (or unreadable), with the first offending
   address (or a reason) copied to bad[0..badlen). */
int xf_dns_resolvconf_loopback(const char *path, char *bad, size_t badlen);

/* 1: the AD bit of this channel's answers is trusted (decided by xf_dns_new, see
   above). xf_dns_new logs one warning line the first time a channel is not trusted
   (and one info line when trust returns, e.g. after a reload). */
int xf_dns_ad_trusted(const xf_dns *dns);

/* Queries pending delivery (for tests and metrics). */
size_t xf_dns_pending(const xf_dns *dns);

/* Destroys the channel: every pending query is cancelled (no callbacks), sockets and
   timers are uv_close()d, and the memory is freed from the last close callback, so the
   loop must run once more (as for any libuv handle). Not from inside an xf_dns_cb. */
void xf_dns_free(xf_dns *dns);

#endif
