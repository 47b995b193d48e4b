/*
 * admin: the admin listener (main file "admin", docs/metrics.md) — HTTP/1.1 on the main
 * thread's loop (main.c), never on a worker's: workers only bump atomics (proxy/
 * metrics.h) and nothing here takes a lock they could wait on.
 *
 *   GET|HEAD /metrics  200, Prometheus text format 0.0.4 (xf_metrics_render)
 *   GET|HEAD /healthz  200 "ok" while the process runs (its main loop answers)
 *   GET|HEAD /readyz   200 "ready" once the listeners are up with the configuration
 *                      loaded; 503 "starting" before, 503 "draining" after SIGTERM
 *   POST <path>        the hook set with xf_admin_set_post (e.g. a future /reload),
 *                      else 405 like every other method (Allow: GET, HEAD)
 *   anything else      404
 *
 * Requests are parsed with proxy/http.h's reader (Debian's libhttp-parser): head at most
 * XF_ADMIN_MAX_HEAD bytes (431), one at a time, keep-alive up to XF_ADMIN_MAX_REQUESTS
 * per connection, request bodies never read (answered, then closed). Each connection
 * must complete a request within XF_ADMIN_TIMEOUT_MS of its start or of the previous
 * answer, else it is closed; at most XF_ADMIN_MAX_CONNS at once (more are closed at
 * accept). After a last answer the connection is shut down (FIN) and what the client
 * still sends is read and dropped for up to XF_ADMIN_LINGER_MS, so that its unread
 * bytes do not turn our close into a reset that destroys the answer.
 */
#ifndef XF_ADMIN_H
#define XF_ADMIN_H

#include <stddef.h>
#include <uv.h>
#include "proxy/buf.h"
#include "proxy/config.h"
#include "proxy/http.h"

#define XF_ADMIN_MAX_HEAD 8192
#define XF_ADMIN_MAX_REQUESTS 100
#define XF_ADMIN_TIMEOUT_MS 10000
#define XF_ADMIN_MAX_CONNS 64
#define XF_ADMIN_LINGER_MS 2000

/* A POST hook: returns the HTTP status to answer (200, 500, ...) with msg (a line of
   text, NUL-terminated, at most cap bytes) as the body. Runs on the main loop. */
typedef int (*xf_admin_post_cb)(void *ud, char *msg, size_t cap);

typedef struct xf_admin_hooks {
    const char *version;             /* xmppfront_build_info{version} */
    const char *post_path;           /* NULL: no POST hook */
    xf_admin_post_cb post;
    void *post_ud;
} xf_admin_hooks;

/* ---------------------------------------------------------------- pure part */

enum xf_admin_ev {
    XF_ADMIN_NEED = 0,               /* more bytes needed (nothing appended) */
    XF_ADMIN_REPLY = 1,              /* an answer was appended to out; keep the connection */
    XF_ADMIN_CLOSE = 2,              /* an answer was appended; close after sending it */
};

/* Take the next request out of rd (bytes pushed with xf_http_reader_push; rd made with
   xf_http_reader_init(rd, XF_ADMIN_MAX_HEAD)) and append its whole HTTP/1.1 response
   to out. may_keep 0: the connection ends after this answer whatever the request says
   (the last of XF_ADMIN_MAX_REQUESTS): it says Connection: close. No I/O: admin.c and
   the fuzz target drive it. Out of memory: CLOSE with nothing (or part of an answer)
   appended. */
int xf_admin_serve(xf_http_reader *rd, const xf_admin_hooks *h, int may_keep, xf_buf *out);

/* ---------------------------------------------------------------- listener */

typedef struct xf_admin xf_admin;

/* Bind conf's address on loop and start serving. Returns 0 (*out set), or -1 with err
   ("admin listener 127.0.0.1:8269: address already in use"). `version` must outlive
   the listener. */
int xf_admin_start(uv_loop_t *loop, const xf_admin_conf *conf, const char *version,
                   xf_admin **out, char *err, size_t errlen);
/* The bound address (tests bind port 0). Returns 0 or a negative uv error. */
int xf_admin_sockname(const xf_admin *a, struct sockaddr_storage *ss);
/* The hook for POST requests to `path` (one at a time; NULL cb removes it). */
void xf_admin_set_post(xf_admin *a, const char *path, xf_admin_post_cb cb, void *ud);
/* Stop listening and close every admin connection; the memory goes once the last
   handle's close callback ran (so the loop can end). NULL is allowed. */
void xf_admin_stop(xf_admin *a);
/* The listening socket's descriptor (handed to a binary upgrade), or -1 (a NULL). */
int xf_admin_fd(const xf_admin *a);

#endif
