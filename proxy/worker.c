#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "proxy/conn.h"
#include "proxy/dns.h"
#include "proxy/log.h"
#include "proxy/outbound.h"
#include "proxy/posh_fetch.h"
#include "proxy/stats.h"
#include "proxy/upgrade.h"
#include "proxy/worker.h"

/* Memory back after a burst: glibc keeps freed heap in its arenas (a burst of 8,000
   pre-TLS connections left 184 MB resident after they closed; malloc_trim brought it
   to 4 MB). Every TRIM_CHECK_MS the worker compares its live connections with their
   peak since the last trim and trims once they have fallen below a quarter of a peak of
   at least TRIM_MIN_PEAK. From a timer, never from the close path; at most once per
   TRIM_CHECK_MS per worker. */
#define TRIM_CHECK_MS 2000
#define TRIM_MIN_PEAK 256

static void on_trim_check(uv_timer_t *t)
{
    xf_worker *w = t->data;
    if (w->peak_conns < TRIM_MIN_PEAK || w->n_conns >= w->peak_conns / 4)
        return;
    size_t peak = w->peak_conns;
    w->peak_conns = w->n_conns;
#ifdef __GLIBC__
    uint64_t t0 = uv_hrtime();
    struct mallinfo2 before = mallinfo2();
    malloc_trim(0);
    /* malloc_trim consolidates this thread's arena into its top chunk but releases the
       top only for the main arena; a free of >= 64 KiB that merges into the top makes
       glibc trim a thread arena's heap (heap_trim, above M_TRIM_THRESHOLD). */
    void *volatile nudge = malloc(96 * 1024);
    free(nudge);
    struct mallinfo2 after = mallinfo2();
    xf_stats_inc(XF_STAT_MALLOC_TRIM);
    xf_info("worker %d: %zu connections, down from %zu: memory handed back (%.1f ms; "
            "heap in use %zu kB, free %zu -> %zu kB, releasable %zu kB)",
            w->index, w->n_conns, peak, (double)(uv_hrtime() - t0) / 1e6,
            after.uordblks / 1024, before.fordblks / 1024, after.fordblks / 1024,
            after.keepcost / 1024);
#else
    (void)peak;
#endif
}

static void on_spare_closed(uv_handle_t *h);

/* Take the connection libuv holds for l into the spare handle and close it. */
static void spare_take(xf_listener *l)
{
    uv_tcp_init(l->tcp.loop, &l->spare);     /* AF_UNSPEC: allocates nothing */
    l->spare.data = l;
    l->spare_busy = 1;
    (void)uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&l->spare);
    uv_close((uv_handle_t *)&l->spare, on_spare_closed);
}

static void on_spare_closed(uv_handle_t *h)
{
    xf_listener *l = h->data;
    l->spare_busy = 0;
    if (l->spare_pending && !uv_is_closing((uv_handle_t *)&l->tcp)) {
        l->spare_pending = 0;
        spare_take(l);                       /* resumes the listener's polling */
    }
}

void xf_listener_discard(xf_listener *l, const char *what)
{
    uint64_t now = uv_now(l->tcp.loop);
    xf_stats_inc(XF_STAT_ACCEPT_ALLOC_FAILED);
    l->discarded++;
    if (now - l->last_discard_warn >= 1000 || l->last_discard_warn == 0) {
        xf_error("accept on %s: out of memory for the %s: connection closed "
                 "(%llu since the last warning)", l->conf->name, what,
                 (unsigned long long)l->discarded);
        l->discarded = 0;
        l->last_discard_warn = now ? now : 1;
    }
    if (l->spare_busy)
        l->spare_pending = 1;                /* libuv waits until the spare is free */
    else
        spare_take(l);
}

static void on_connection(uv_stream_t *server, int status)
{
    xf_listener *l = server->data;
    if (status < 0) {
        /* libuv already sheds load on EMFILE with its reserve descriptor; say so at most
           once a second per listener, not once per refused connection. */
        uint64_t now = uv_now(server->loop);
        l->accept_errors++;
        if (now - l->last_accept_warn >= 1000) {
            xf_warn("accept on %s: %s (%llu refused since the last warning)", l->conf->name,
                    uv_strerror(status), (unsigned long long)l->accept_errors);
            l->accept_errors = 0;
            l->last_accept_warn = now;
        }
        return;
    }
    if (l->conf->service == XF_SVC_OUTBOUND)
        xf_outbound_accept(l);
    else
        xf_conn_accept(l);
}

/* Draining, and the last connection and remote stream are gone: the resolver goes
   (its handles close, and with them the loop can end). Never from a DNS callback:
   connections and remotes are freed from close callbacks. */
static void maybe_free_dns(xf_worker *w)
{
    if (w->draining && w->dns != NULL && w->n_conns == 0 && w->n_remotes == 0) {
        xf_dns_free(w->dns);
        w->dns = NULL;
        xf_posh_fetcher_free(w->posh);
        w->posh = NULL;
    }
}

void xf_worker_remote_gone(xf_worker *w)
{
    w->n_remotes--;
    maybe_free_dns(w);
}

static void on_listener_closed(uv_handle_t *h) { (void)h; }

static void on_drain_deadline(uv_timer_t *t)
{
    xf_worker *w = t->data;
    if (w->n_conns > 0)
        xf_info("worker %d: drain deadline reached, closing %zu connections", w->index,
                w->n_conns);
    xf_conn_close_all(w, "shutdown: drain deadline reached");
    xf_outbound_close_all(w, "shutdown: drain deadline reached");
    uv_close((uv_handle_t *)t, NULL);
}

/* Runs in the worker: stop accepting, let established streams finish, bounded by
   limits.drain_timeout_s. The loop ends when the last handle is closed. */
static void on_wakeup(uv_async_t *a)
{
    xf_worker *w = a->data;
    if (w->draining)
        return;
    w->draining = 1;
    for (size_t i = 0; i < w->n_listeners; i++)
        uv_close((uv_handle_t *)&w->listeners[i].tcp, on_listener_closed);
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_mutex_lock(&w->config_mu);
    w->config_closed = 1;
    uv_close((uv_handle_t *)&w->config_async, NULL);
    uv_mutex_unlock(&w->config_mu);
    uv_close((uv_handle_t *)&w->trim_timer, NULL);
    if (!__atomic_load_n(&w->handover, __ATOMIC_ACQUIRE)) {
        xf_conn_drain(w);
        xf_outbound_drain(w);
    }
    maybe_free_dns(w);
    if (w->n_conns == 0) {
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
        return;
    }
    xf_info("worker %d: draining %zu connections", w->index, w->n_conns);
    uv_timer_start(&w->drain_timer, on_drain_deadline,
                   (uint64_t)w->config->limits.drain_timeout_s * 1000, 0);
}

/* Runs in the worker: the snapshot reload.c put in config_pending becomes the one new
   connections take; the worker's reference to the old one goes (in this thread). */
static void on_config_pending(uv_async_t *a)
{
    xf_worker *w = a->data;
    uv_mutex_lock(&w->config_mu);
    xf_config *next = w->config_pending;
    w->config_pending = NULL;
    uv_mutex_unlock(&w->config_mu);
    if (next == NULL)
        return;
    xf_config *old = w->config;
    w->config = next;
    xf_config_unref(old);
}

void xf_worker_set_config(xf_worker *w, xf_config *cfg)
{
    xf_config *drop = NULL;
    uv_mutex_lock(&w->config_mu);
    if (!w->config_closed) {
        drop = w->config_pending;
        w->config_pending = xf_config_ref(cfg);
        uv_async_send(&w->config_async);
    }
    uv_mutex_unlock(&w->config_mu);
    xf_config_unref(drop);
}

void xf_worker_conn_gone(xf_worker *w)
{
    w->n_conns--;
    if (w->draining && w->n_conns == 0 && !uv_is_closing((uv_handle_t *)&w->drain_timer)) {
        uv_timer_stop(&w->drain_timer);
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
    }
    maybe_free_dns(w);
}

static int open_socket(const xf_listener_conf *lc, char *err, size_t errlen)
{
    int fam = lc->addr.ss_family;
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    /* "::" serves IPv4 too where the system allows dual-stack sockets. */
    if (fam == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) < 0)
        goto fail;
    if (listen(fd, 511) < 0)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "listener %s: %s", lc->name, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* SO_REUSEPORT would let a second xmppfront share our ports silently and split the
   traffic: a plain bind first proves that nobody else holds the address. */
static int probe_free(const xf_listener_conf *lc, char *err, size_t errlen)
{
    int fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1, zero = 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lc->addr.ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (const struct sockaddr *)&lc->addr, lc->addrlen) < 0)
        goto fail;
    close(fd);
    return 0;
fail:
    snprintf(err, errlen, "listener %s: %s%s", lc->name, strerror(errno),
             errno == EADDRINUSE ? " (another process, perhaps another xmppfront, holds it)" : "");
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Binary upgrade, k sockets of a listener inherited, n workers: worker i takes over
   inherited sockets i, i+n, i+2n, ... and opens a fresh one only when i >= k. Every
   inherited socket is kept (closing a SO_REUSEPORT socket resets the connections queued
   on it, which the old process can no longer accept), so the sockets of a listener
   number max(k, n) and a worker may hold more than one of them. */
static unsigned socket_share(unsigned k, unsigned n, unsigned i)
{
    return i < k ? (k - i + n - 1) / n : 1;
}

/* Set up listener l of worker w for lc on an inherited socket (inherit) or a new one;
   counted in w->n_listeners once its handle is initialised. */
static int listener_open(xf_worker *w, xf_listener *l, const xf_listener_conf *lc,
                         int inherit, char *err, size_t errlen)
{
    l->worker = w;
    l->conf_copy = *lc;                /* listeners outlive the boot snapshot (reloads) */
    l->conf = &l->conf_copy;
    l->fd = inherit ? xf_upgrade_take(lc) : open_socket(lc, err, errlen);
    if (l->fd < 0) {
        if (inherit)
            snprintf(err, errlen, "listener %s: inherited socket missing", lc->name);
        return -1;
    }
    uv_tcp_init(&w->loop, &l->tcp);
    l->tcp.data = l;
    w->n_listeners++;
    int r = uv_tcp_open(&l->tcp, l->fd);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    if (r < 0) {
        snprintf(err, errlen, "listener %s: %s", lc->name, uv_strerror(r));
        return -1;
    }
    return 0;
}

int xf_workers_create(xf_config *cfg, const xf_tls *tls, xf_worker **out, char *err,
                      size_t errlen)
{
    unsigned n = cfg->workers ? cfg->workers : 1;
    /* Sockets inherited from the old process of a binary upgrade (proxy/upgrade.h) are
       held by it legitimately: no probe for those listeners. */
    unsigned *n_inh = calloc(cfg->n_listeners + 1, sizeof(*n_inh));
    if (n_inh == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t j = 0; j < cfg->n_listeners; j++) {
        n_inh[j] = xf_upgrade_count(&cfg->listeners[j]);
        if (n_inh[j] == 0 && probe_free(&cfg->listeners[j], err, errlen) != 0) {
            free(n_inh);
            return -1;
        }
        if (n_inh[j] > 0)
            xf_info("listener %s: %u sockets inherited, %u workers", cfg->listeners[j].name,
                    n_inh[j], n);
    }
    if (xf_posh_fetch_global_init() != 0) {
        snprintf(err, errlen, "libcurl: global initialisation failed");
        return -1;
    }
    xf_worker *ws = calloc(n, sizeof(*ws));
    if (ws == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        xf_worker *w = &ws[i];
        w->index = (int)i;
        w->config = xf_config_ref(cfg);
        w->tls = tls;
        uv_loop_init(&w->loop);
        /* The worker's resolver (design.md §4: one c-ares channel per worker). */
        xf_dns_conf dc = {0};
        dc.servers = (const char *const *)cfg->federation.resolvers;
        dc.n_servers = cfg->federation.n_resolvers;
        char derr[256];
        w->dns = xf_dns_new(&w->loop, &dc, derr, sizeof(derr));
        if (w->dns == NULL) {
            snprintf(err, errlen, "worker %u resolver: %s", i, derr);
            return -1;
        }
        /* Its POSH fetcher (RFC 7711 documents of remote domains, outbound): web
           servers verified against federation.ca_file, bounded by the connect timeout. */
        xf_posh_fetch_conf pc = {0};
        pc.ca_file = cfg->federation.ca_file;
        pc.timeout_ms = cfg->federation.connect_timeout_s
                        ? cfg->federation.connect_timeout_s * 1000 : 0;
        w->posh = xf_posh_fetcher_new(&w->loop, &pc, derr, sizeof(derr));
        if (w->posh == NULL) {
            snprintf(err, errlen, "worker %u POSH fetcher: %s", i, derr);
            return -1;
        }
        uv_async_init(&w->loop, &w->wakeup, on_wakeup);
        w->wakeup.data = w;
        uv_mutex_init(&w->config_mu);
        uv_async_init(&w->loop, &w->config_async, on_config_pending);
        w->config_async.data = w;
        uv_timer_init(&w->loop, &w->drain_timer);
        w->drain_timer.data = w;
        uv_timer_init(&w->loop, &w->trim_timer);
        w->trim_timer.data = w;
        uv_timer_start(&w->trim_timer, on_trim_check, TRIM_CHECK_MS, TRIM_CHECK_MS);
        /* listeners[0 .. cfg->n_listeners) follow the configuration's order; the
           extra inherited sockets a worker takes over follow them (l->conf says whose). */
        size_t n_l = cfg->n_listeners;
        for (size_t j = 0; j < cfg->n_listeners; j++)
            n_l += socket_share(n_inh[j], n, i) - 1;
        w->listeners = calloc(n_l ? n_l : 1, sizeof(*w->listeners));
        if (w->listeners == NULL) {
            snprintf(err, errlen, "out of memory");
            free(n_inh);
            return -1;
        }
        size_t extra = cfg->n_listeners;
        for (size_t j = 0; j < cfg->n_listeners; j++) {
            unsigned share = socket_share(n_inh[j], n, i);
            for (unsigned s = 0; s < share; s++) {
                xf_listener *l = &w->listeners[s == 0 ? j : extra++];
                if (listener_open(w, l, &cfg->listeners[j], i < n_inh[j], err, errlen) != 0) {
                    free(n_inh);
                    return -1;
                }
            }
        }
    }
    free(n_inh);
    xf_upgrade_close_unused();
    *out = ws;
    return 0;
}

static void worker_main(void *arg)
{
    xf_worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    __atomic_store_n(&w->finished, 1, __ATOMIC_RELEASE);
    if (w->done)
        uv_async_send(w->done);
}

int xf_workers_start(xf_worker *ws, unsigned n, uv_async_t *done)
{
    for (unsigned i = 0; i < n; i++) {
        ws[i].done = done;
        if (uv_thread_create(&ws[i].thread, worker_main, &ws[i]) != 0)
            return -1;
    }
    return 0;
}

int xf_workers_finished(const xf_worker *ws, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (!__atomic_load_n(&ws[i].finished, __ATOMIC_ACQUIRE))
            return 0;
    return 1;
}

void xf_workers_drain(xf_worker *ws, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        uv_async_send(&ws[i].wakeup);
}

void xf_workers_handover(xf_worker *ws, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        __atomic_store_n(&ws[i].handover, 1, __ATOMIC_RELEASE);
    xf_workers_drain(ws, n);
}

void xf_workers_join_and_free(xf_worker *ws, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uv_thread_join(&ws[i].thread);
        if (ws[i].dns != NULL) {             /* the loop never drained (start failed) */
            xf_dns_free(ws[i].dns);
            ws[i].dns = NULL;
            xf_posh_fetcher_free(ws[i].posh);
            ws[i].posh = NULL;
            uv_run(&ws[i].loop, UV_RUN_NOWAIT);
        }
        uv_loop_close(&ws[i].loop);
        free(ws[i].listeners);
        xf_config_unref(ws[i].config);
        xf_config_unref(ws[i].config_pending);
        uv_mutex_destroy(&ws[i].config_mu);
    }
    free(ws);
}
