/* admin: the admin listener's sockets on the main loop (admin.h). One struct per
   connection owns its TCP handle, timer and request reader; one close function; freed
   after both close callbacks. At most one answer is being written per connection, and
   its reads are stopped meanwhile, so what a client can make us buffer is bounded by
   XF_ADMIN_MAX_HEAD plus one read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/admin.h"
#include "proxy/upgrade.h"
#include "proxy/log.h"

typedef struct aconn {
    struct aconn *next, *prev;
    struct xf_admin *a;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t sreq;
    xf_http_reader rd;
    unsigned requests;
    int writing;                     /* an answer is in uv_write */
    int close_after;                 /* close once it is written */
    int lingering;                   /* shut down: reading and dropping until EOF */
    int closed;
    int handles;
} aconn;

typedef struct wreq {
    uv_write_t req;
    aconn *c;
    xf_buf buf;
} wreq;

struct xf_admin {
    uv_tcp_t tcp;
    xf_admin_hooks hooks;
    char post_path[128];
    aconn *conns;
    unsigned n_conns;
    int stopped;
    int handles;                     /* the listener's, plus one per live connection */
    char name[80];
};

static void maybe_free_admin(xf_admin *a)
{
    if (a->stopped && a->handles == 0)
        free(a);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    aconn *c = h->data;
    if (--c->handles > 0)
        return;
    xf_admin *a = c->a;
    xf_http_reader_free(&c->rd);
    free(c);
    a->handles--;
    maybe_free_admin(a);
}

static void conn_close(aconn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    xf_admin *a = c->a;
    if (c->prev) c->prev->next = c->next;
    else a->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    a->n_conns--;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);             /* no request (or no complete one) in time */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static char slab[4096];          /* the main loop reads one connection at a time */
    (void)h;
    (void)suggested;
    b->base = slab;
    b->len = sizeof slab;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void on_written(uv_write_t *req, int status);

/* Answer what the reader holds, one request at a time. */
static void process(aconn *c)
{
    if (c->closed || c->writing)
        return;
    wreq *w = calloc(1, sizeof *w);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    int r = xf_admin_serve(&c->rd, &c->a->hooks, c->requests + 1 < XF_ADMIN_MAX_REQUESTS,
                           &w->buf);
    if (r == XF_ADMIN_NEED) {
        free(w);
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0 &&
            !uv_is_active((uv_handle_t *)&c->tcp))
            conn_close(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->requests++;
    c->close_after = r == XF_ADMIN_CLOSE;
    uv_timer_start(&c->timer, on_timeout, XF_ADMIN_TIMEOUT_MS, 0);
    if (xf_buf_size(&w->buf) == 0) {
        xf_buf_free(&w->buf);
        free(w);
        conn_close(c);
        return;
    }
    uv_buf_t ub = uv_buf_init((char *)xf_buf_head(&w->buf), (unsigned)xf_buf_size(&w->buf));
    w->c = c;
    w->req.data = w;
    c->writing = 1;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_written) < 0) {
        xf_buf_free(&w->buf);
        free(w);
        c->writing = 0;
        conn_close(c);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;                    /* the linger timer or the client's EOF closes */
}

/* The last answer is written: FIN, then drop what still comes (admin.h). */
static void linger(aconn *c)
{
    c->lingering = 1;
    xf_http_reader_free(&c->rd);
    uv_timer_start(&c->timer, on_timeout, XF_ADMIN_LINGER_MS, 0);
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0 ||
        (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0 &&
         !uv_is_active((uv_handle_t *)&c->tcp)))
        conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = req->data;
    aconn *c = w->c;
    xf_buf_free(&w->buf);
    free(w);
    c->writing = 0;
    if (c->closed)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after) {
        linger(c);
        return;
    }
    process(c);                      /* a pipelined request may be waiting */
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    aconn *c = s->data;
    if (n == 0 || c->closed)
        return;
    if (c->lingering) {
        if (n < 0)
            conn_close(c);           /* the client's EOF (or an error): done */
        return;
    }
    if (n < 0 || xf_http_reader_size(&c->rd) > 2 * XF_ADMIN_MAX_HEAD ||
        xf_http_reader_push(&c->rd, b->base, (size_t)n) < 0) {
        conn_close(c);               /* EOF, error, or a client that does not stop */
        return;
    }
    process(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    xf_admin *a = server->data;
    if (status < 0 || a->stopped)
        return;
    aconn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        xf_warn("admin listener %s: out of memory at accept", a->name);
        return;                      /* libuv retries on the next readiness */
    }
    c->a = a;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    a->handles++;
    xf_http_reader_init(&c->rd, XF_ADMIN_MAX_HEAD);
    c->next = a->conns;
    if (a->conns) a->conns->prev = c;
    a->conns = c;
    a->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || a->n_conns > XF_ADMIN_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, XF_ADMIN_TIMEOUT_MS, 0);
    process(c);                      /* starts reading */
}

int xf_admin_start(uv_loop_t *loop, const xf_admin_conf *conf, const char *version,
                   xf_admin **out, char *err, size_t errlen)
{
    *out = NULL;
    xf_admin *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errlen, "admin listener %s: out of memory", conf->name);
        return -1;
    }
    snprintf(a->name, sizeof a->name, "%s", conf->name);
    a->hooks.version = version;
    uv_tcp_init(loop, &a->tcp);
    a->tcp.data = a;
    a->handles = 1;
    /* Started by a binary upgrade: the old process's socket, already listening. */
    int fd = xf_upgrade_take_addr(&conf->addr);
    int r = fd >= 0 ? uv_tcp_open(&a->tcp, fd)
                    : uv_tcp_bind(&a->tcp, (const struct sockaddr *)&conf->addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&a->tcp, 64, on_connection);
    if (r < 0) {
        snprintf(err, errlen, "admin listener %s: %s", conf->name, uv_strerror(r));
        xf_admin_stop(a);
        return -1;
    }
    *out = a;
    return 0;
}

int xf_admin_fd(const xf_admin *a)
{
    uv_os_fd_t fd;
    if (a == NULL || a->stopped || uv_fileno((const uv_handle_t *)&a->tcp, &fd) != 0)
        return -1;
    return fd;
}

int xf_admin_sockname(const xf_admin *a, struct sockaddr_storage *ss)
{
    int len = sizeof *ss;
    return uv_tcp_getsockname(&a->tcp, (struct sockaddr *)ss, &len);
}

void xf_admin_set_post(xf_admin *a, const char *path, xf_admin_post_cb cb, void *ud)
{
    snprintf(a->post_path, sizeof a->post_path, "%s", path ? path : "");
    a->hooks.post_path = cb ? a->post_path : NULL;
    a->hooks.post = cb;
    a->hooks.post_ud = ud;
}

static void on_listener_closed(uv_handle_t *h)
{
    xf_admin *a = h->data;
    a->handles--;
    maybe_free_admin(a);
}

void xf_admin_stop(xf_admin *a)
{
    if (a == NULL || a->stopped)
        return;
    a->stopped = 1;
    while (a->conns)
        conn_close(a->conns);
    uv_close((uv_handle_t *)&a->tcp, on_listener_closed);
}
