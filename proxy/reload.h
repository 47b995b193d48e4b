/*
 * reload: hot configuration reload with no dropped stream (issue 9, docs/reload.md).
 *
 * A reload (SIGHUP, or proxy/watch.h seeing a file change) builds a whole new snapshot
 * (xf_reload_load) on libuv's thread pool, never on a worker's loop. Back on the main
 * loop the snapshot is handed to every worker (xf_worker_set_config: a pending pointer
 * and a uv_async per worker; the worker swaps w->config in its own thread). New
 * connections take the new snapshot; established ones keep the one they started with
 * (their tenant, certificate, backends, client TLS) until they close.
 *
 *  - A new configuration that does not load is refused with ONE error line carrying
 *    xf_config_load's "FILE: KEY: problem"; the old snapshot stays in service.
 *    Counted: XF_STAT_RELOAD_OK / XF_STAT_RELOAD_FAILED.
 *  - What a reload cannot change (listeners, workers, federation.resolvers, the CA file
 *    and timeout of POSH fetches) keeps its old value, with one warning line.
 *  - The log says what changed: tenants added / removed / changed (by domain),
 *    certificates renewed (served chain compared per tenant and for the hosting
 *    identity, with old and new serial), or "no change".
 *  - Requests coalesce: one made while a reload runs makes exactly one more afterwards.
 *  - sd_notify RELOADING=1 at the start, READY=1 at the end (ok or refused).
 *
 * Everything here runs on the main loop's thread except the load itself.
 */
#ifndef XF_RELOAD_H
#define XF_RELOAD_H

#include <stddef.h>
#include <uv.h>
#include "proxy/config.h"
#include "proxy/worker.h"

typedef struct xf_reload xf_reload;

/* A complete snapshot: xf_config_load(path) plus its client TLS (cfg->tlsc, for s2s
   streams xmppfront opens). Any thread. Returns 0, or -1 with "FILE: KEY: problem". */
int xf_reload_load(const char *path, xf_config **out, char *err, size_t errlen);

/* The reload controller on `loop` (main's): cur is the snapshot the workers run (the
   controller takes over the caller's reference); ws/n the workers. Arms the file
   watches when cur->watch. NULL when out of memory. */
xf_reload *xf_reload_new(uv_loop_t *loop, const char *path, xf_config *cur, xf_worker *ws,
                         unsigned n);
/* Ask for a reload; `why` ("SIGHUP", "file change: PATH") goes into the log. */
void xf_reload_request(xf_reload *rl, const char *why);
/* Shutdown begins: no more reloads, the watches close (a load in flight finishes and is
   dropped). The loop can end once that is done. */
void xf_reload_stop(xf_reload *rl);
/* After the loop has ended: drops the current snapshot and frees rl. */
void xf_reload_free(xf_reload *rl);
/* The snapshot in service (borrowed). */
xf_config *xf_reload_current(const xf_reload *rl);

#endif
