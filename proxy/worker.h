/*
 * worker: one thread, one uv loop, its own SO_REUSEPORT listening socket per configured
 * listener, and the connections it accepted. No locks on the data path: workers share
 * only the immutable config snapshot and the TLS configuration.
 */
#ifndef XF_WORKER_H
#define XF_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "proxy/config.h"
#include "proxy/tls.h"

struct xf_conn;
struct xf_dns;
struct xf_posh_fetcher;
struct xf_remote;
struct xf_outbound;

typedef struct xf_listener {
    uv_tcp_t tcp;
    struct xf_worker *worker;
    const xf_listener_conf *conf;    /* = &conf_copy: listeners outlive any snapshot */
    xf_listener_conf conf_copy;      /* the boot snapshot's (a reload keeps listeners) */
    int fd;                          /* bound socket, handed over to the loop */
    uint64_t last_accept_warn;       /* loop time of the last accept warning */
    uint64_t accept_errors;          /* accept failures since then */
    uv_tcp_t spare;                  /* takes a connection we cannot afford, to close it */
    int spare_busy;                  /* spare is closing: not reusable yet */
    int spare_pending;               /* a connection waits for the spare (listener paused) */
    uint64_t last_discard_warn;      /* loop time of the last discard warning */
    uint64_t discarded;              /* connections discarded since then */
} xf_listener;

typedef struct xf_worker {
    int index;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wakeup;               /* main -> worker: start draining */
    uv_timer_t drain_timer;
    int draining;
    xf_config *config;               /* snapshot reference held by the worker: what new
                                        connections take (replaced by a reload) */
    uv_async_t config_async;         /* main -> worker: config_pending is set */
    uv_mutex_t config_mu;            /* guards config_pending and config_closed */
    xf_config *config_pending;       /* the next snapshot, taken by the worker's thread */
    int config_closed;               /* config_async closed (draining): no more sends */
    const xf_tls *tls;
    xf_listener *listeners;
    size_t n_listeners;
    struct xf_conn *conns;           /* intrusive list of live connections */
    size_t n_conns;
    size_t peak_conns;               /* most live connections since the last trim */
    uv_timer_t trim_timer;           /* gives memory back after a burst (worker.c) */
    uv_async_t *done;                /* main's: told when this worker's loop has ended */
    /* Federation (issue 7): the worker's resolver (c-ares on this loop, from
       federation.resolvers), the shared client TLS configuration, the s2s streams
       xmppfront opened itself (proxy/remote.c) and the backends' outgoing s2s sessions
       (proxy/outbound.c; they also count in n_conns). The resolver is freed once the
       worker drains and the last connection and remote stream are gone. The client
       TLS is the snapshot's (xf_config.tlsc): a remote stream keeps its own. */
    struct xf_dns *dns;
    struct xf_posh_fetcher *posh;    /* POSH documents (proxy/posh_fetch.h), freed with dns */
    struct xf_remote *remotes;
    size_t n_remotes;
    struct xf_outbound *obs;
    int finished;                    /* set (atomically) when the loop has ended */
    int handover;                    /* (atomic) drain after a binary upgrade: keep the
                                        connections not yet routed (proxy/upgrade.h) */
} xf_worker;

/* Create the workers' listening sockets (SO_REUSEPORT, one per worker per listener) in
   the calling thread, so bind errors are reported before anything starts. After a
   binary upgrade the inherited sockets are taken instead (proxy/upgrade.h; a worker
   may then hold more than one socket of a listener: listeners[] has the configured
   listeners in order first, extra sockets after them). */
int xf_workers_create(xf_config *cfg, const xf_tls *tls, xf_worker **out, char *err,
                      size_t errlen);
/* Start the threads; each signals `done` (main's loop) when its loop has ended. */
int xf_workers_start(xf_worker *ws, unsigned n, uv_async_t *done);
/* 1 when every worker's loop has ended. */
int xf_workers_finished(const xf_worker *ws, unsigned n);
/* Ask every worker to stop accepting and drain (async-signal context not allowed). */
void xf_workers_drain(xf_worker *ws, unsigned n);
/* The same after a binary upgrade handed the listening sockets over: connections still
   in their TLS handshake or not yet routed are left to finish too (bounded by their own
   timeouts and limits.drain_timeout_s), not ended with <system-shutdown/>. */
void xf_workers_handover(xf_worker *ws, unsigned n);
void xf_workers_join_and_free(xf_worker *ws, unsigned n);
/* Hand w a new snapshot (any thread; takes a reference of its own). The worker swaps
   w->config in its own thread and unrefs the old one there; connections keep theirs.
   A snapshot still pending is replaced (and unref'd). A no-op once w drains. */
void xf_worker_set_config(xf_worker *w, xf_config *cfg);

/* Called by conn.c (and outbound.c) when a connection is gone. */
void xf_worker_conn_gone(xf_worker *w);
/* Called by remote.c when a remote stream's memory is gone (from a close callback). */
void xf_worker_remote_gone(xf_worker *w);
/* Called by conn.c when it cannot allocate what a new connection of l needs: the
   pending connection is accepted into l's spare handle and closed (libuv stops polling
   a listener whose accepted connection nobody takes), counted and logged at most once
   a second. `what` names what could not be allocated. */
void xf_listener_discard(xf_listener *l, const char *what);

#endif
