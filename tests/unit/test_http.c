/* Unit tests for proxy/http.c: sniffing the first bytes, reading requests with
   libhttp-parser (events, pipelining, split input, limits, Host rules), routing to the
   POSH documents / http_backend / refusals, response formatting and the request head
   sent to the http_backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <psa/crypto.h>

#include "certs/posh.h"
#include "proxy/http.h"

/* ---------------------------------------------------------------- sniff */

static void test_sniff(void **state)
{
    (void)state;
    assert_int_equal(xf_http_sniff("GET / HTTP/1.1\r\n", 16), XF_HTTP_SNIFF_YES);
    assert_int_equal(xf_http_sniff("HEAD ", 5), XF_HTTP_SNIFF_YES);
    assert_int_equal(xf_http_sniff("OPTIONS * HTTP/1.1", 18), XF_HTTP_SNIFF_YES);
    assert_int_equal(xf_http_sniff("POST /x", 7), XF_HTTP_SNIFF_YES);
    assert_int_equal(xf_http_sniff("CONNECT a:1", 11), XF_HTTP_SNIFF_YES);
    assert_int_equal(xf_http_sniff("", 0), XF_HTTP_SNIFF_MORE);
    assert_int_equal(xf_http_sniff("G", 1), XF_HTTP_SNIFF_MORE);
    assert_int_equal(xf_http_sniff("GET", 3), XF_HTTP_SNIFF_MORE);
    assert_int_equal(xf_http_sniff("OPTIO", 5), XF_HTTP_SNIFF_MORE);
    assert_int_equal(xf_http_sniff("P", 1), XF_HTTP_SNIFF_MORE);  /* POST PUT PATCH */
    /* XMPP and other things never start like a method. */
    assert_int_equal(xf_http_sniff("<?xml version='1.0'?>", 21), XF_HTTP_SNIFF_NO);
    assert_int_equal(xf_http_sniff("<stream:stream", 14), XF_HTTP_SNIFF_NO);
    assert_int_equal(xf_http_sniff("\xef\xbb\xbf<", 4), XF_HTTP_SNIFF_NO);
    assert_int_equal(xf_http_sniff(" <", 2), XF_HTTP_SNIFF_NO);
    assert_int_equal(xf_http_sniff("get / HTTP/1.1", 14), XF_HTTP_SNIFF_NO);
    assert_int_equal(xf_http_sniff("GETX", 4), XF_HTTP_SNIFF_NO);
    assert_int_equal(xf_http_sniff("GET\t/", 5), XF_HTTP_SNIFF_NO);
    assert_int_equal(xf_http_sniff("HELLO", 5), XF_HTTP_SNIFF_NO);
    assert_int_equal(xf_http_sniff("\x16\x03\x01", 3), XF_HTTP_SNIFF_NO);
}

/* ---------------------------------------------------------------- reader */

static int push_all(xf_http_reader *r, const char *s)
{
    assert_int_equal(xf_http_reader_push(r, s, strlen(s)), 0);
    return xf_http_reader_next(r);
}

#define REQ1 "GET /.well-known/posh/xmpp-client.json?x=1 HTTP/1.1\r\n" \
             "Host: A.Example.:443\r\nUser-Agent: t\r\n\r\n"

static void test_reader_one(void **state)
{
    (void)state;
    xf_http_reader r;
    xf_http_reader_init(&r, 8192);
    assert_int_equal(push_all(&r, REQ1), XF_HTTP_HEAD);
    assert_int_equal(r.req.method, HTTP_GET);
    assert_int_equal(r.req.major, 1);
    assert_int_equal(r.req.minor, 1);
    assert_string_equal(r.req.name, "a.example");
    assert_string_equal(r.req.path, XF_HTTP_POSH_CLIENT);
    assert_int_equal(r.req.head_len, strlen(REQ1));
    assert_int_equal(r.req.keep_alive, 1);
    assert_int_equal(r.req.has_body, 0);
    assert_int_equal(r.req.upgrade, 0);
    assert_int_equal(r.req.n_fields, 2);
    assert_memory_equal(xf_http_reader_head(&r) + r.req.fields[1].name, "User-Agent", 10);
    assert_memory_equal(xf_http_reader_head(&r) + r.req.fields[1].value, "t", 1);
    assert_int_equal(r.req.fields[1].value_len, 1);
    assert_int_equal(xf_http_reader_next(&r), XF_HTTP_END);
    assert_int_equal(xf_http_reader_size(&r), 0);
    assert_int_equal(xf_http_reader_next(&r), XF_HTTP_NEED);
    xf_http_reader_free(&r);
}

/* One byte at a time: the same events, the same offsets. */
static void test_reader_bytewise(void **state)
{
    (void)state;
    xf_http_reader r;
    xf_http_reader_init(&r, 8192);
    const char *s = REQ1;
    size_t n = strlen(s), i;
    int ev = XF_HTTP_NEED;
    for (i = 0; i < n && ev == XF_HTTP_NEED; i++) {
        assert_int_equal(xf_http_reader_push(&r, s + i, 1), 0);
        ev = xf_http_reader_next(&r);
    }
    assert_int_equal(ev, XF_HTTP_HEAD);
    assert_int_equal(i, n);                  /* only at the last byte */
    assert_string_equal(r.req.name, "a.example");
    assert_string_equal(r.req.path, XF_HTTP_POSH_CLIENT);
    assert_int_equal(r.req.head_len, n);
    assert_memory_equal(xf_http_reader_head(&r) + r.req.fields[0].value, "A.Example.:443", 14);
    assert_int_equal(r.req.fields[0].value_len, 14);
    assert_int_equal(xf_http_reader_next(&r), XF_HTTP_END);
    xf_http_reader_free(&r);
}

static void test_reader_pipelined(void **state)
{
    (void)state;
    xf_http_reader r;
    xf_http_reader_init(&r, 8192);
    const char *two = "HEAD /a HTTP/1.1\r\nHost: one.example\r\n\r\n"
                      "GET /b HTTP/1.1\r\nHost: two.example\r\nConnection: close\r\n\r\nGE";
    assert_int_equal(push_all(&r, two), XF_HTTP_HEAD);
    assert_int_equal(r.req.method, HTTP_HEAD);
    assert_string_equal(r.req.name, "one.example");
    assert_string_equal(r.req.path, "/a");
    assert_int_equal(xf_http_reader_next(&r), XF_HTTP_END);
    assert_int_equal(xf_http_reader_next(&r), XF_HTTP_HEAD);
    assert_string_equal(r.req.name, "two.example");
    assert_string_equal(r.req.path, "/b");
    assert_int_equal(r.req.keep_alive, 0);
    /* Offsets are relative to this request's first byte. */
    assert_memory_equal(xf_http_reader_head(&r), "GET /b", 6);
    assert_memory_equal(xf_http_reader_head(&r) + r.req.fields[0].name, "Host", 4);
    assert_int_equal(xf_http_reader_next(&r), XF_HTTP_END);
    assert_int_equal(xf_http_reader_next(&r), XF_HTTP_NEED);
    assert_int_equal(xf_http_reader_size(&r), 2);          /* "GE" of a third one */
    xf_http_reader_free(&r);
}

static int read_one(const char *s, xf_http_reader *r)
{
    xf_http_reader_init(r, 8192);
    return push_all(r, s);
}

static void test_reader_host_rules(void **state)
{
    (void)state;
    xf_http_reader r;
    /* RFC 9112 §3.2: HTTP/1.1 needs exactly one valid Host. */
    assert_int_equal(read_one("GET / HTTP/1.1\r\n\r\n", &r), XF_HTTP_BAD);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.reason, "without Host"));
    assert_int_equal(xf_http_reader_next(&r), XF_HTTP_BAD);   /* stays bad */
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", &r),
                     XF_HTTP_BAD);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.reason, "more than one Host"));
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost: a_b!.example\r\n\r\n", &r), XF_HTTP_BAD);
    assert_int_equal(r.status, 400);
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost: a.example:44x\r\n\r\n", &r), XF_HTTP_BAD);
    xf_http_reader_free(&r);
    /* IP literals are valid but name no tenant: the SNI will. */
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n", &r), XF_HTTP_HEAD);
    assert_string_equal(r.req.name, "");
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", &r), XF_HTTP_HEAD);
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost: [2001:db8::1]x\r\n\r\n", &r), XF_HTTP_BAD);
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost: [2001:db8::1]:4a\r\n\r\n", &r), XF_HTTP_BAD);
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n", &r), XF_HTTP_HEAD);
    assert_string_equal(r.req.name, "a.example");          /* empty port: RFC 3986 §3.2.3 */
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost:\r\n\r\n", &r), XF_HTTP_HEAD);
    assert_string_equal(r.req.name, "");                   /* empty Host: the SNI decides */
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost: :443\r\n\r\n", &r), XF_HTTP_BAD);
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET / HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n", &r), XF_HTTP_HEAD);
    assert_string_equal(r.req.name, "");
    assert_int_equal(r.req.has_host, 1);
    xf_http_reader_free(&r);
    /* HTTP/1.0 may go without Host; its default is close. */
    assert_int_equal(read_one("GET /x HTTP/1.0\r\n\r\n", &r), XF_HTTP_HEAD);
    assert_string_equal(r.req.name, "");
    assert_int_equal(r.req.keep_alive, 0);
    assert_int_equal(r.req.head_len, 19);
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), XF_HTTP_HEAD);
    assert_int_equal(r.req.keep_alive, 1);
    xf_http_reader_free(&r);
    /* RFC 9112 §3.2.2: the absolute-form target's host wins. */
    assert_int_equal(read_one("GET https://B.example/p?q HTTP/1.1\r\nHost: a.example\r\n\r\n", &r),
                     XF_HTTP_HEAD);
    assert_string_equal(r.req.name, "b.example");
    assert_string_equal(r.req.path, "/p");
    xf_http_reader_free(&r);
    /* Bare LF line ends are read (RFC 9112 §2.2); head_len counts them. */
    const char *lf = "GET /lf HTTP/1.1\nHost: a.example\n\n";
    assert_int_equal(read_one(lf, &r), XF_HTTP_HEAD);
    assert_int_equal(r.req.head_len, strlen(lf));
    assert_string_equal(r.req.path, "/lf");
    xf_http_reader_free(&r);
}

static void test_reader_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "HELLO WORLD\r\n\r\n", "GET\r\n\r\n", "GET / FTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHo st: a\r\n\r\n", "\x16\x03\x01\x02\x00",
        "GET / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example\r\nContent-Length: x\r\n\r\n",
        "GET /\r\n\r\n",                         /* HTTP/0.9 */
        "GET / HTTP/1.1\r\nHost: a.example\r\n\rX", /* the head must end in LF */
        NULL
    };
    for (const char *const *b = bad; *b; b++) {
        xf_http_reader r;
        int ev = read_one(*b, &r);
        if (ev != XF_HTTP_BAD)
            print_error("not refused: %s\n", *b);
        assert_int_equal(ev, XF_HTTP_BAD);
        assert_int_equal(r.status, 400);
        assert_true(r.reason[0] != '\0');
        xf_http_reader_free(&r);
    }
}

static void test_reader_limits(void **state)
{
    (void)state;
    xf_http_reader r;
    char big[600];
    /* A head that never ends: 431 once the limit is passed, not before. */
    xf_http_reader_init(&r, 200);
    assert_int_equal(push_all(&r, "GET / HTTP/1.1\r\nHost: a.example\r\nX-Pad: "), XF_HTTP_NEED);
    memset(big, 'a', 170);
    big[170] = '\0';
    assert_int_equal(push_all(&r, big), XF_HTTP_BAD);
    assert_int_equal(r.status, 431);
    assert_non_null(strstr(r.reason, "over 200 bytes"));
    xf_http_reader_free(&r);
    /* A complete head over the limit in one piece: 431 too. */
    xf_http_reader_init(&r, 200);
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a.example\r\nX-Pad: %0300d\r\n\r\n", 7);
    assert_int_equal(push_all(&r, big), XF_HTTP_BAD);
    assert_int_equal(r.status, 431);
    xf_http_reader_free(&r);
    /* Empty lines before a request are skipped, but count toward the limit. */
    xf_http_reader_init(&r, 200);
    for (int i = 0; i < 60; i++)
        assert_int_equal(push_all(&r, "\r\n"), XF_HTTP_NEED);
    assert_int_equal(push_all(&r, "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
                                  "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
                                  "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"),
                     XF_HTTP_BAD);
    assert_int_equal(r.status, 431);
    xf_http_reader_free(&r);
    /* More than XF_HTTP_MAX_FIELDS field lines: 431. */
    xf_http_reader_init(&r, 65536);
    assert_int_equal(push_all(&r, "GET / HTTP/1.1\r\nHost: a.example\r\n"), XF_HTTP_NEED);
    int ev = XF_HTTP_NEED;
    for (int i = 0; i < XF_HTTP_MAX_FIELDS && ev == XF_HTTP_NEED; i++)
        ev = push_all(&r, "X: y\r\n");
    assert_int_equal(ev, XF_HTTP_BAD);
    assert_int_equal(r.status, 431);
    xf_http_reader_free(&r);
    /* Exactly XF_HTTP_MAX_FIELDS is fine. */
    xf_http_reader_init(&r, 65536);
    assert_int_equal(push_all(&r, "GET / HTTP/1.1\r\nHost: a.example\r\n"), XF_HTTP_NEED);
    for (int i = 1; i < XF_HTTP_MAX_FIELDS; i++)
        assert_int_equal(push_all(&r, "X: y\r\n"), XF_HTTP_NEED);
    assert_int_equal(push_all(&r, "\r\n"), XF_HTTP_HEAD);
    assert_int_equal(r.req.n_fields, XF_HTTP_MAX_FIELDS);
    xf_http_reader_free(&r);
    /* A path longer than XF_HTTP_PATH_MAX is kept as "". */
    char *longp = malloc(XF_HTTP_PATH_MAX + 100);
    assert_non_null(longp);
    memset(longp, 'p', XF_HTTP_PATH_MAX + 50);
    longp[0] = '/';
    longp[XF_HTTP_PATH_MAX + 50] = '\0';
    xf_http_reader_init(&r, 8192);
    assert_int_equal(push_all(&r, "GET "), XF_HTTP_NEED);
    assert_int_equal(push_all(&r, longp), XF_HTTP_NEED);
    assert_int_equal(push_all(&r, " HTTP/1.1\r\nHost: a.example\r\n\r\n"), XF_HTTP_HEAD);
    assert_string_equal(r.req.path, "");
    xf_http_reader_free(&r);
    free(longp);
}

static void test_reader_body_upgrade(void **state)
{
    (void)state;
    xf_http_reader r;
    assert_int_equal(read_one("POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello",
                              &r), XF_HTTP_HEAD);
    assert_int_equal(r.req.has_body, 1);
    assert_int_equal(xf_http_reader_size(&r) - r.req.head_len, 5);  /* the body, unread */
    assert_int_equal(xf_http_reader_next(&r), XF_HTTP_NEED);       /* never read here */
    xf_http_reader_free(&r);
    assert_int_equal(read_one("POST /x HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked"
                              "\r\n\r\n5\r\nhello\r\n0\r\n\r\n", &r), XF_HTTP_HEAD);
    assert_int_equal(r.req.has_body, 1);
    xf_http_reader_free(&r);
    assert_int_equal(read_one("POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\n\r\n",
                              &r), XF_HTTP_HEAD);
    assert_int_equal(r.req.has_body, 0);
    assert_int_equal(xf_http_reader_next(&r), XF_HTTP_END);
    xf_http_reader_free(&r);
    assert_int_equal(read_one("GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\n"
                              "Upgrade: websocket\r\n\r\n", &r), XF_HTTP_HEAD);
    assert_int_equal(r.req.upgrade, 1);
    xf_http_reader_free(&r);
}

/* ---------------------------------------------------------------- backend head */

static char *backend_head(const char *req, const struct sockaddr *peer)
{
    xf_http_reader r;
    xf_buf out = { 0 };
    assert_int_equal(read_one(req, &r), XF_HTTP_HEAD);
    assert_int_equal(xf_http_backend_head(xf_http_reader_head(&r), &r.req, peer, &out), 0);
    xf_http_reader_free(&r);
    char *s = strndup(xf_buf_head(&out), xf_buf_size(&out));
    xf_buf_free(&out);
    return s;
}

static void test_backend_head(void **state)
{
    (void)state;
    struct sockaddr_in a4 = { .sin_family = AF_INET };
    inet_pton(AF_INET, "192.0.2.7", &a4.sin_addr);
    char *s = backend_head("POST /form HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Secret\r\n"
                           "X-Forwarded-For: 6.6.6.6\r\nKeep-Alive: timeout=5\r\n"
                           "x-secret: 1\r\nforwarded: for=6.6.6.6\r\nContent-Length: 3\r\n"
                           "Cookie: c=1\r\n\r\nabc", (struct sockaddr *)&a4);
    assert_string_equal(s, "POST /form HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n"
                           "Cookie: c=1\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
                           "Forwarded: for=192.0.2.7;proto=https\r\nConnection: close\r\n\r\n");
    free(s);

    struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
    s = backend_head("GET / HTTP/1.1\nHost: a.example\n\n", (struct sockaddr *)&a6);
    assert_string_equal(s, "GET / HTTP/1.1\nHost: a.example\nX-Forwarded-For: 2001:db8::1\r\n"
                           "X-Forwarded-Proto: https\r\nForwarded: for=\"[2001:db8::1]\";proto=https\r\n"
                           "Connection: close\r\n\r\n");
    free(s);
    inet_pton(AF_INET6, "::ffff:198.51.100.2", &a6.sin6_addr);
    s = backend_head("GET / HTTP/1.0\r\n\r\n", (struct sockaddr *)&a6);
    assert_string_equal(s, "GET / HTTP/1.0\r\nX-Forwarded-For: 198.51.100.2\r\n"
                           "X-Forwarded-Proto: https\r\nForwarded: for=198.51.100.2;proto=https\r\n"
                           "Connection: close\r\n\r\n");
    free(s);
    /* An Upgrade keeps its hop-by-hop fields: the backend needs them (WebSocket). */
    s = backend_head("GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\nX-Forwarded-Proto: http\r\n\r\n", (struct sockaddr *)&a4);
    assert_string_equal(s, "GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\n"
                           "Upgrade: websocket\r\nX-Forwarded-For: 192.0.2.7\r\n"
                           "X-Forwarded-Proto: https\r\nForwarded: for=192.0.2.7;proto=https\r\n\r\n");
    free(s);
}

/* ---------------------------------------------------------------- format */

static void test_format(void **state)
{
    (void)state;
    xf_http_answer a = { 0 };
    char out[8192];
    a.action = XF_HTTP_RESPOND;
    a.status = 200;
    a.content_type = "application/json";
    a.max_age = 86400;
    strcpy(a.body, "{\"x\":1}");
    a.body_len = 7;
    int n = xf_http_format(&a, 0, 1, 0, out, sizeof out);
    assert_true(n > 0);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                             "Content-Type: application/json\r\nContent-Length: 7\r\n"
                             "Cache-Control: max-age=86400\r\nX-Content-Type-Options: nosniff\r\n"
                             "Connection: keep-alive\r\n\r\n{\"x\":1}");
    assert_int_equal(n, (int)strlen(out));
    /* HEAD: the same fields, Content-Length included, no body (RFC 9110 §9.3.2). */
    int h = xf_http_format(&a, 1, 0, 0, out, sizeof out);
    assert_int_equal(h, n - 7 - 5);          /* no body, "close" for "keep-alive" */
    assert_non_null(strstr(out, "Content-Length: 7\r\n"));
    assert_non_null(strstr(out, "Connection: close\r\n\r\n"));
    assert_int_equal(out[h - 1], '\n');
    /* Too small: -1, never a cut response. */
    assert_int_equal(xf_http_format(&a, 0, 1, 0, out, (size_t)n), -1);
    assert_int_equal(xf_http_format(&a, 0, 1, 0, out, (size_t)n + 1), n);

    xf_http_answer_status(&a, 405, "test");
    n = xf_http_format(&a, 0, 1, 0, out, sizeof out);
    assert_true(n > 0);
    assert_non_null(strstr(out, "HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_non_null(strstr(out, "Allow: GET, HEAD\r\n"));
    assert_null(strstr(out, "Cache-Control"));
    assert_non_null(strstr(out, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(out, "\r\n\r\n405 Method Not Allowed\n"));
    xf_http_answer_status(&a, 431, "t");
    assert_int_equal(a.body_len, strlen("431 Request Header Fields Too Large\n"));
    assert_null(a.allow);
}

/* ---------------------------------------------------------------- route */

static char g_dir[256];
static xf_registry *g_reg;

__attribute__((format(printf, 1, 2)))
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

static void mkcert(const char *name, const char *cn)
{
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout '%s/%s.key' -out '%s/%s.crt' -days 30 -subj '/CN=%s' "
       "-addext 'subjectAltName=DNS:%s' >/dev/null 2>&1", g_dir, name, g_dir, name, cn, cn);
}

static void put(const char *file, const char *json)
{
    char p[512];
    snprintf(p, sizeof p, "%s/t/%s", g_dir, file);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
}

static int setup_reg(void **state)
{
    (void)state;
    char err[1024], t[300], hc[300], hk[300];
    snprintf(g_dir, sizeof g_dir, "/tmp/xf-test-http-XXXXXX");
    if (!mkdtemp(g_dir) || psa_crypto_init() != PSA_SUCCESS)
        return -1;
    mkcert("own", "own.example");
    mkcert("s2s", "s2s.example");
    mkcert("h", "hosting.example");
    snprintf(t, sizeof t, "%s/t", g_dir);
    if (mkdir(t, 0700) != 0)
        return -1;
    put("own.json", "{\"domain\": \"own.example\", \"aliases\": [\"www.own.example\"], "
        "\"certificate\": \"../own.crt\", \"key\": \"../own.key\", "
        "\"c2s_backend\": \"127.0.0.1:5\", \"s2s_backend\": \"127.0.0.1:6\", "
        "\"http_backend\": \"127.0.0.1:8080\"}");
    put("s2s.json", "{\"domain\": \"s2s.example\", \"certificate\": \"../s2s.crt\", "
        "\"key\": \"../s2s.key\", \"s2s_backend\": \"[::1]:6\"}");
    put("shared.json", "{\"domain\": \"shared.example\", \"c2s_backend\": \"127.0.0.1:5\", "
        "\"s2s_backend\": \"127.0.0.1:6\"}");
    snprintf(hc, sizeof hc, "%s/h.crt", g_dir);
    snprintf(hk, sizeof hk, "%s/h.key", g_dir);
    const xf_hosting_spec hs = { "/etc/main.json", "hosting.example", hc, hk, NULL, NULL };
    if (xf_registry_load(t, &hs, &g_reg, err, sizeof err) != 0) {
        print_error("%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown_reg(void **state)
{
    (void)state;
    xf_registry_free(g_reg);
    sh("rm -rf '%s'", g_dir);
    return 0;
}

/* Route `request` (one head) received with SNI `sni` (or ""). */
static void route(const char *request, const char *sni, xf_http_answer *a)
{
    xf_http_reader r;
    assert_int_equal(read_one(request, &r), XF_HTTP_HEAD);
    const xf_tenant *chosen = sni[0] ? xf_registry_for_sni(g_reg, sni) : NULL;
    assert_int_equal(xf_http_route(g_reg, sni, chosen, &r.req, a), 0);
    xf_http_reader_free(&r);
}

static void get(const char *method, const char *host, const char *path, const char *sni,
                xf_http_answer *a)
{
    char req[600];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, path, host);
    route(req, sni, a);
}

/* The body of a is a fingerprints document that matches leaf (xf_posh_match). */
static void expect_fingerprints(const xf_http_answer *a, const mbedtls_x509_crt *leaf)
{
    static struct xf_posh_doc doc;
    assert_int_equal(a->status, 200);
    assert_int_equal(a->action, XF_HTTP_RESPOND);
    assert_string_equal(a->content_type, "application/json");
    assert_int_equal(a->max_age, 86400);
    assert_int_equal(xf_posh_parse((const unsigned char *)a->body, a->body_len, &doc, NULL, 0), 0);
    assert_int_equal(doc.kind, XF_POSH_FINGERPRINTS);
    assert_int_equal(doc.expires, a->max_age);
    assert_int_equal(xf_posh_match(&doc, leaf, NULL, 0), 1);
}

static void test_route_posh(void **state)
{
    (void)state;
    static struct xf_posh_doc doc;
    xf_http_answer a;
    const xf_tenant *own = xf_registry_find(g_reg, "own.example");
    const xf_tenant *host = xf_registry_hosting(g_reg);
    const xf_tenant *s2s = xf_registry_find(g_reg, "s2s.example");
    assert_non_null(own);
    assert_non_null(host);

    get("GET", "own.example", XF_HTTP_POSH_CLIENT, "own.example", &a);
    expect_fingerprints(&a, &own->chain);
    assert_ptr_equal(a.tenant, own);
    assert_int_equal(xf_posh_parse((const unsigned char *)a.body, a.body_len, &doc, NULL, 0), 0);
    assert_int_equal(xf_posh_match(&doc, &host->chain, NULL, 0), 0);   /* only its own */
    get("HEAD", "own.example", XF_HTTP_POSH_SERVER, "own.example", &a);
    expect_fingerprints(&a, &own->chain);
    /* The alias; no SNI (the default certificate): routed by Host alone. */
    get("GET", "WWW.own.example.", XF_HTTP_POSH_SERVER, "", &a);
    expect_fingerprints(&a, &own->chain);
    /* The hosting name: the hosting certificate, both services. */
    get("GET", "hosting.example", XF_HTTP_POSH_CLIENT, "hosting.example", &a);
    expect_fingerprints(&a, &host->chain);
    assert_ptr_equal(a.tenant, host);
    get("GET", "hosting.example:443", XF_HTTP_POSH_SERVER, "", &a);
    expect_fingerprints(&a, &host->chain);
    /* A hosting-served tenant: a reference to the hosting's document (RFC 7711 §3.4). */
    get("GET", "shared.example", XF_HTTP_POSH_SERVER, "shared.example", &a);
    assert_int_equal(a.status, 200);
    assert_int_equal(xf_posh_parse((const unsigned char *)a.body, a.body_len, &doc, NULL, 0), 0);
    assert_int_equal(doc.kind, XF_POSH_REFERENCE);
    assert_string_equal(doc.url, "https://hosting.example/.well-known/posh/xmpp-server.json");
    get("GET", "shared.example", XF_HTTP_POSH_CLIENT, "shared.example", &a);
    assert_int_equal(xf_posh_parse((const unsigned char *)a.body, a.body_len, &doc, NULL, 0), 0);
    assert_string_equal(doc.url, "https://hosting.example/.well-known/posh/xmpp-client.json");
    /* An s2s-only tenant publishes no xmpp-client document (as `records`), and has no
       http_backend: 404. */
    get("GET", "s2s.example", XF_HTTP_POSH_SERVER, "s2s.example", &a);
    expect_fingerprints(&a, &s2s->chain);
    get("GET", "s2s.example", XF_HTTP_POSH_CLIENT, "s2s.example", &a);
    assert_int_equal(a.status, 404);
    /* Other methods on a document: 405 with Allow. */
    get("POST", "own.example", XF_HTTP_POSH_CLIENT, "own.example", &a);
    assert_int_equal(a.status, 405);
    assert_string_equal(a.allow, "GET, HEAD");
    get("DELETE", "hosting.example", XF_HTTP_POSH_SERVER, "", &a);
    assert_int_equal(a.status, 405);
    /* The query does not matter; a different path does. */
    get("GET", "own.example", XF_HTTP_POSH_CLIENT "?v=2", "", &a);
    expect_fingerprints(&a, &own->chain);
    get("GET", "shared.example", "/.well-known/posh/xmpp-CLIENT.json", "", &a);
    assert_int_equal(a.status, 404);
}

static void test_route_other(void **state)
{
    (void)state;
    xf_http_answer a;
    const xf_tenant *own = xf_registry_find(g_reg, "own.example");
    /* Everything else goes to the tenant's http_backend ... */
    get("GET", "own.example", "/index.html", "own.example", &a);
    assert_int_equal(a.action, XF_HTTP_TO_BACKEND);
    assert_ptr_equal(a.backend, &own->http);
    assert_string_equal(a.backend->spec, "127.0.0.1:8080");
    get("POST", "own.example", "/.well-known/posh/other.json", "", &a);
    assert_int_equal(a.action, XF_HTTP_TO_BACKEND);
    /* ... or is 404 without one. */
    get("GET", "shared.example", "/", "shared.example", &a);
    assert_int_equal(a.action, XF_HTTP_RESPOND);
    assert_int_equal(a.status, 404);
    get("GET", "hosting.example", "/", "", &a);
    assert_int_equal(a.status, 404);
    /* A name that is not served here. */
    get("GET", "nobody.example", XF_HTTP_POSH_CLIENT, "", &a);
    assert_int_equal(a.status, 404);
    assert_null(a.tenant);
    /* Host names another tenant than the SNI, and the certificate does not cover it. */
    get("GET", "shared.example", XF_HTTP_POSH_CLIENT, "own.example", &a);
    assert_int_equal(a.status, 421);
    get("GET", "own.example", "/", "hosting.example", &a);
    assert_int_equal(a.status, 421);
    /* The SNI's own alias is covered by nothing else here, but it is the same tenant. */
    get("GET", "www.own.example", XF_HTTP_POSH_CLIENT, "own.example", &a);
    assert_int_equal(a.status, 200);
    /* No Host name (IP literal, HTTP/1.0 without Host): the SNI names the tenant. */
    route("GET " XF_HTTP_POSH_CLIENT " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "own.example", &a);
    assert_int_equal(a.status, 200);
    assert_ptr_equal(a.tenant, own);
    route("GET / HTTP/1.0\r\n\r\n", "own.example", &a);
    assert_int_equal(a.action, XF_HTTP_TO_BACKEND);
    route("GET / HTTP/1.0\r\n\r\n", "", &a);
    assert_int_equal(a.status, 404);
    /* CONNECT: not a proxy. */
    route("CONNECT own.example:443 HTTP/1.1\r\nHost: own.example:443\r\n\r\n", "", &a);
    assert_int_equal(a.status, 405);
}

/* The tenant key: "http_backend" as the other backends, IP literals only. */
static void test_tenant_key(void **state)
{
    (void)state;
    xf_tenant *t = NULL;
    char err[512];
    const char *ok = "{\"domain\": \"x.example\", \"c2s_backend\": \"127.0.0.1:5\", "
                     "\"http_backend\": \"[::1]:8080\"}";
    assert_int_equal(xf_tenant_parse(ok, strlen(ok), "/t/x.json", 0, &t, err, sizeof err), 0);
    assert_int_equal(t->http.addr.ss_family, AF_INET6);
    assert_string_equal(t->http.spec, "[::1]:8080");
    xf_tenant_free(t);
    const char *none = "{\"domain\": \"x.example\", \"c2s_backend\": \"127.0.0.1:5\"}";
    assert_int_equal(xf_tenant_parse(none, strlen(none), "/t/x.json", 0, &t, err, sizeof err), 0);
    assert_int_equal(t->http.addrlen, 0);
    xf_tenant_free(t);
    const char *bad = "{\"domain\": \"x.example\", \"c2s_backend\": \"127.0.0.1:5\", "
                      "\"http_backend\": \"web.example:80\"}";
    assert_int_equal(xf_tenant_parse(bad, strlen(bad), "/t/x.json", 0, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "http_backend"));
    const char *only = "{\"domain\": \"x.example\", \"http_backend\": \"127.0.0.1:80\"}";
    assert_int_equal(xf_tenant_parse(only, strlen(only), "/t/x.json", 0, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "c2s_backend"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_reader_one),
        cmocka_unit_test(test_reader_bytewise),
        cmocka_unit_test(test_reader_pipelined),
        cmocka_unit_test(test_reader_host_rules),
        cmocka_unit_test(test_reader_garbage),
        cmocka_unit_test(test_reader_limits),
        cmocka_unit_test(test_reader_body_upgrade),
        cmocka_unit_test(test_backend_head),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_route_posh),
        cmocka_unit_test(test_route_other),
        cmocka_unit_test(test_tenant_key),
    };
    return cmocka_run_group_tests(tests, setup_reg, teardown_reg);
}
