/* Unit tests for proxy/admin_http.c (xf_admin_serve, the admin listener without I/O):
   the routes and their codes, HEAD without body, keep-alive and Connection: close,
   pipelined requests answered one at a time, bad and oversized heads, bodies closing
   the connection, the POST hook; and proxy/admin.c on a real loop: bind, answer over
   TCP, stop with no handle left; the main file's "admin" key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <uv.h>
#include "proxy/admin.h"
#include "proxy/metrics.h"

static const xf_admin_hooks hooks = { .version = "9.9" };

/* Push req, serve once; returns the event, the answer in *out (caller frees). */
static int serve(xf_http_reader *rd, const xf_admin_hooks *h, const char *req, char **out)
{
    xf_buf b = { 0 };
    if (req)
        assert_int_equal(xf_http_reader_push(rd, req, strlen(req)), 0);
    int ev = xf_admin_serve(rd, h, 1, &b);
    *out = calloc(1, xf_buf_size(&b) + 1);
    if (xf_buf_size(&b))
        memcpy(*out, xf_buf_head(&b), xf_buf_size(&b));
    xf_buf_free(&b);
    return ev;
}

static int status_of(const char *resp)
{
    int st = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.1 %d ", &st), 1);
    return st;
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    assert_non_null(p);
    return p + 4;
}

/* One request on a fresh reader: its status; *ev the event. */
static int one(const char *req, int *ev, char **resp)
{
    xf_http_reader rd;
    xf_http_reader_init(&rd, XF_ADMIN_MAX_HEAD);
    *ev = serve(&rd, &hooks, req, resp);
    xf_http_reader_free(&rd);
    return *resp[0] ? status_of(*resp) : 0;
}

static void routes(void **state)
{
    (void)state;
    int ev;
    char *r;
    xf_metrics_set_state(XF_MSTATE_STARTING);
    assert_int_equal(one("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &ev, &r), 200);
    assert_int_equal(ev, XF_ADMIN_REPLY);
    assert_string_equal(body_of(r), "ok\n");
    assert_non_null(strstr(r, "Content-Length: 3\r\n"));
    assert_non_null(strstr(r, "Connection: keep-alive\r\n"));
    free(r);
    assert_int_equal(one("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", &ev, &r), 503);
    assert_string_equal(body_of(r), "starting\n");
    free(r);
    xf_metrics_set_state(XF_MSTATE_READY);
    assert_int_equal(one("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", &ev, &r), 200);
    free(r);
    xf_metrics_set_state(XF_MSTATE_DRAINING);
    assert_int_equal(one("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", &ev, &r), 503);
    assert_string_equal(body_of(r), "draining\n");
    free(r);
    assert_int_equal(one("GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", &ev, &r), 200);
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(body_of(r), "xmppfront_build_info{version=\"9.9\"} 1\n"));
    assert_non_null(strstr(body_of(r), "xmppfront_draining 1\n"));
    free(r);
    assert_int_equal(one("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", &ev, &r), 404);
    free(r);
    assert_int_equal(one("DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &ev, &r), 405);
    assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
    free(r);
    /* POST without a hook: 405; its body is not read, so the connection closes. */
    assert_int_equal(one("POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
                         &ev, &r), 405);
    assert_int_equal(ev, XF_ADMIN_CLOSE);
    assert_non_null(strstr(r, "Connection: close\r\n"));
    free(r);
    /* HEAD: the same fields, no body. */
    assert_int_equal(one("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &ev, &r), 200);
    assert_non_null(strstr(r, "Content-Length: 3\r\n"));
    assert_string_equal(body_of(r), "");
    free(r);
    /* HTTP/1.0 without keep-alive: answered, then closed. */
    assert_int_equal(one("GET /healthz HTTP/1.0\r\n\r\n", &ev, &r), 200);
    assert_int_equal(ev, XF_ADMIN_CLOSE);
    free(r);
    assert_int_equal(one("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                         &ev, &r), 200);
    assert_int_equal(ev, XF_ADMIN_CLOSE);
    free(r);
    /* The last request a connection may make: Connection: close whatever it asked. */
    xf_http_reader rd;
    xf_http_reader_init(&rd, XF_ADMIN_MAX_HEAD);
    static const char q[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(xf_http_reader_push(&rd, q, sizeof q - 1), 0);
    xf_buf b = { 0 };
    assert_int_equal(xf_admin_serve(&rd, &hooks, 0, &b), XF_ADMIN_CLOSE);
    assert_non_null(memmem(xf_buf_head(&b), xf_buf_size(&b), "Connection: close\r\n", 19));
    xf_buf_free(&b);
    xf_http_reader_free(&rd);
    xf_metrics_set_state(XF_MSTATE_READY);
}

static void bad_requests(void **state)
{
    (void)state;
    int ev;
    char *r;
    assert_int_equal(one("GARBAGE\r\n\r\n", &ev, &r), 400);
    assert_int_equal(ev, XF_ADMIN_CLOSE);
    free(r);
    assert_int_equal(one("GET /healthz HTTP/1.1\r\n\r\n", &ev, &r), 400);   /* no Host */
    free(r);
    char big[XF_ADMIN_MAX_HEAD + 200];
    int n = snprintf(big, sizeof big, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: ");
    memset(big + n, 'a', sizeof big - (size_t)n - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(one(big, &ev, &r), 431);
    assert_int_equal(ev, XF_ADMIN_CLOSE);
    free(r);
    /* Incomplete: nothing yet. */
    assert_int_equal(one("GET /healthz HTTP/1.1\r\nHo", &ev, &r), 0);
    assert_int_equal(ev, XF_ADMIN_NEED);
    free(r);
}

static void pipelined(void **state)
{
    (void)state;
    xf_http_reader rd;
    xf_http_reader_init(&rd, XF_ADMIN_MAX_HEAD);
    char *r;
    /* Two requests in one push, the second split: answered one per call. */
    assert_int_equal(serve(&rd, &hooks, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                           "GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /he", &r), XF_ADMIN_REPLY);
    assert_int_equal(status_of(r), 200);
    free(r);
    assert_int_equal(serve(&rd, &hooks, NULL, &r), XF_ADMIN_REPLY);
    assert_int_equal(status_of(r), 404);
    free(r);
    assert_int_equal(serve(&rd, &hooks, NULL, &r), XF_ADMIN_NEED);
    free(r);
    assert_int_equal(serve(&rd, &hooks, "althz HTTP/1.1\r\nHost: x\r\n\r\n", &r), XF_ADMIN_REPLY);
    assert_int_equal(status_of(r), 200);
    free(r);
    xf_http_reader_free(&rd);
}

static int reload_hook(void *ud, char *msg, size_t cap)
{
    (*(int *)ud)++;
    snprintf(msg, cap, "reloaded");
    return 200;
}

static void post_hook(void **state)
{
    (void)state;
    int calls = 0;
    xf_admin_hooks h = { .version = "1", .post_path = "/reload", .post = reload_hook,
                         .post_ud = &calls };
    xf_http_reader rd;
    xf_http_reader_init(&rd, XF_ADMIN_MAX_HEAD);
    char *r;
    assert_int_equal(serve(&rd, &h, "POST /reload HTTP/1.1\r\nHost: x\r\n\r\n", &r),
                     XF_ADMIN_REPLY);
    assert_int_equal(status_of(r), 200);
    assert_string_equal(body_of(r), "reloaded\n");
    assert_int_equal(calls, 1);
    free(r);
    assert_int_equal(serve(&rd, &h, "POST /other HTTP/1.1\r\nHost: x\r\n\r\n", &r),
                     XF_ADMIN_REPLY);
    assert_int_equal(status_of(r), 405);
    assert_int_equal(calls, 1);
    free(r);
    xf_http_reader_free(&rd);
}

/* ---------------------------------------------------------------- on a loop */

typedef struct client {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    char got[65536];
    size_t n;
    int eof;
    xf_admin *admin;
} client;

static void on_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    client *c = h->data;
    (void)s;
    b->base = c->got + c->n;
    b->len = sizeof c->got - c->n - 1;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    client *c = s->data;
    (void)b;
    if (n > 0) {
        c->n += (size_t)n;
        return;
    }
    if (n < 0) {
        c->eof = n == UV_EOF;
        uv_close((uv_handle_t *)&c->tcp, NULL);
        xf_admin_stop(c->admin);         /* then the loop has nothing left */
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    client *c = req->data;
    assert_int_equal(status, 0);
    /* XF_ADMIN_MAX_REQUESTS + 1 pipelined requests, the last but one for /readyz:
       exactly XF_ADMIN_MAX_REQUESTS answers, the last with Connection: close, then a
       clean EOF (not a reset, though the last request was never read). */
    static char msg[64 * (XF_ADMIN_MAX_REQUESTS + 1) + 6000];
    size_t n = 0;
    for (int i = 0; i <= XF_ADMIN_MAX_REQUESTS; i++)
        n += (size_t)snprintf(msg + n, sizeof msg - n, "GET /%s HTTP/1.1\r\nHost: x\r\n%s",
                              i == XF_ADMIN_MAX_REQUESTS - 1 ? "readyz" : "healthz",
                              i < XF_ADMIN_MAX_REQUESTS ? "\r\n" : "X-Pad: ");
    /* The unread one is large: it is still in the socket when the connection ends. */
    memset(msg + n, 'p', 5000);
    n += 5000;
    memcpy(msg + n, "\r\n\r\n", 4);
    n += 4;
    uv_buf_t b = uv_buf_init(msg, (unsigned)n);
    assert_int_equal(uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, NULL), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read), 0);
}

static void listener(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    xf_admin_conf conf = { .enabled = 1 };
    struct sockaddr_in *a4 = (struct sockaddr_in *)&conf.addr;
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a4->sin_port = 0;                                   /* any free port */
    conf.addrlen = sizeof *a4;
    snprintf(conf.name, sizeof conf.name, "127.0.0.1:0");
    xf_admin *a = NULL;
    char err[200];
    assert_int_equal(xf_admin_start(&loop, &conf, "t", &a, err, sizeof err), 0);
    struct sockaddr_storage bound;
    assert_int_equal(xf_admin_sockname(a, &bound), 0);

    /* A second listener on the same port fails with a message naming it. */
    xf_admin_conf dup = conf;
    memcpy(&dup.addr, &bound, sizeof bound);
    snprintf(dup.name, sizeof dup.name, "dup");
    xf_admin *b = NULL;
    assert_int_equal(xf_admin_start(&loop, &dup, "t", &b, err, sizeof err), -1);
    assert_null(b);
    assert_non_null(strstr(err, "admin listener dup: "));

    xf_metrics_set_state(XF_MSTATE_READY);
    client c = { .admin = a };
    uv_tcp_init(&loop, &c.tcp);
    c.tcp.data = c.creq.data = &c;
    assert_int_equal(uv_tcp_connect(&c.creq, &c.tcp, (struct sockaddr *)&bound, on_connect), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    c.got[c.n] = '\0';
    assert_true(c.eof);
    int answers = 0;
    const char *last = NULL;
    for (const char *p = c.got; (p = strstr(p, "HTTP/1.1 200 OK\r\n")) != NULL; p++) {
        answers++;
        last = p;
    }
    assert_int_equal(answers, XF_ADMIN_MAX_REQUESTS);
    assert_non_null(strstr(last, "Connection: close\r\n"));
    assert_non_null(strstr(last, "ready\n"));
    assert_true(strstr(c.got, "Connection: close\r\n") > last);   /* only the last */
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The main file's "admin" key (proxy/config.c parse_admin). */
static xf_config *parse(const char *admin, char *err, size_t cap)
{
    char json[512];
    snprintf(json, sizeof json, "{\"listeners\": [{\"port\": 5222, \"tls\": \"starttls\", "
             "\"service\": \"client\"}]%s%s}", admin ? ", \"admin\": " : "", admin ? admin : "");
    xf_config *c = NULL;
    if (xf_config_parse(json, strlen(json), "main.json", &c, err, cap) < 0)
        return NULL;
    return c;
}

static void config_admin(void **state)
{
    (void)state;
    char err[300];
    xf_config *c = parse(NULL, err, sizeof err);      /* absent: on, loopback, implicit */
    assert_non_null(c);
    assert_true(c->admin.enabled && !c->admin.configured && !c->admin.per_tenant_metrics);
    assert_string_equal(c->admin.name, "127.0.0.1:8269");
    assert_int_equal(c->admin.addr.ss_family, AF_INET);
    xf_config_unref(c);
    c = parse("false", err, sizeof err);
    assert_true(c && !c->admin.enabled && c->admin.configured);
    xf_config_unref(c);
    c = parse("true", err, sizeof err);
    assert_true(c && c->admin.enabled && c->admin.configured);
    assert_string_equal(c->admin.name, "127.0.0.1:8269");
    xf_config_unref(c);
    c = parse("{\"port\": 0}", err, sizeof err);
    assert_true(c && !c->admin.enabled);
    xf_config_unref(c);
    c = parse("{\"address\": \"[::1]\", \"port\": 9100, \"per_tenant_metrics\": true}",
              err, sizeof err);
    assert_non_null(c);
    assert_true(c->admin.enabled && c->admin.per_tenant_metrics);
    assert_string_equal(c->admin.name, "[::1]:9100");
    assert_int_equal(c->admin.addr.ss_family, AF_INET6);
    xf_config_unref(c);
    static const struct { const char *in, *msg; } bad[] = {
        { "5", "main.json: admin: must be an object or a boolean, not" },
        { "{\"prot\": 1}", "admin.prot" },
        { "{\"port\": 70000}", "admin.port" },
        { "{\"port\": \"8269\"}", "admin.port" },
        { "{\"address\": \"localhost\"}", "admin.address: \"localhost\" is not an IPv4 or IPv6" },
        { "{\"per_tenant_metrics\": 1}", "admin.per_tenant_metrics: must be a boolean" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_null(parse(bad[i].in, err, sizeof err));
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("%s: got \"%s\", want \"%s\"", bad[i].in, err, bad[i].msg);
    }
}

int main(void)
{
    assert_int_equal(xf_metrics_init(0), 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes),
        cmocka_unit_test(bad_requests),
        cmocka_unit_test(pipelined),
        cmocka_unit_test(post_hook),
        cmocka_unit_test(listener),
        cmocka_unit_test(config_admin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
