/* admin_http: the admin listener's request routing and responses, without I/O
   (admin.h "pure part"); fuzzed by tests/fuzz/fuzz_admin.c. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "proxy/admin.h"
#include "proxy/metrics.h"

typedef struct answer {
    int status;
    const char *type;                /* Content-Type */
    const char *allow;               /* 405: the Allow field */
    xf_buf body;
} answer;

static unsigned code_index(int status)
{
    switch (status) {
    case 200: return XF_MA_200;
    case 400: return XF_MA_400;
    case 404: return XF_MA_404;
    case 405: return XF_MA_405;
    case 408: return XF_MA_408;
    case 431: return XF_MA_431;
    default:  return XF_MA_503;      /* 503 and the hook's other codes */
    }
}

static int text(answer *a, int status, const char *body)
{
    a->status = status;
    a->type = "text/plain; charset=utf-8";
    return xf_buf_append(&a->body, body, strlen(body));
}

/* Status line, Date (RFC 9110 §6.6.1), Content-Type, Content-Length, Allow, Connection,
   then the body unless head_only (HEAD: the same fields, RFC 9110 §9.3.2). */
static int emit(const answer *a, int head_only, int keep, xf_buf *out)
{
    char date[64], hdr[512];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(hdr, sizeof hdr, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n%s%s%sCache-Control: no-store\r\n"
                     "Connection: %s\r\n\r\n", a->status, xf_http_status_text(a->status), date,
                     a->type, xf_buf_size(&a->body), a->allow ? "Allow: " : "",
                     a->allow ? a->allow : "", a->allow ? "\r\n" : "",
                     keep ? "keep-alive" : "close");
    if (n < 0 || (size_t)n >= sizeof hdr || xf_buf_append(out, hdr, (size_t)n) < 0)
        return -1;
    if (!head_only && xf_buf_append(out, xf_buf_head(&a->body), xf_buf_size(&a->body)) < 0)
        return -1;
    xf_metrics_inc(XF_MF_ADMIN_REQUESTS, code_index(a->status));
    return 0;
}

/* The answer to a complete request head q. */
static int route(const xf_http_req *q, const xf_admin_hooks *h, answer *a)
{
    int get = q->method == HTTP_GET || q->method == HTTP_HEAD;
    if (!get) {
        if (q->method == HTTP_POST && h->post != NULL && h->post_path != NULL &&
            strcmp(q->path, h->post_path) == 0) {
            char msg[512] = "";
            int st = h->post(h->post_ud, msg, sizeof msg);
            msg[sizeof msg - 1] = '\0';
            if (st < 200 || st > 599)
                st = 500;
            if (text(a, st, msg) < 0 || xf_buf_append(&a->body, "\n", 1) < 0)
                return -1;
            return 0;
        }
        a->allow = "GET, HEAD";
        return text(a, 405, "405 Method Not Allowed\n");
    }
    if (strcmp(q->path, "/metrics") == 0) {
        a->status = 200;
        a->type = "text/plain; version=0.0.4; charset=utf-8";
        return xf_metrics_render(&a->body, h->version ? h->version : "unknown");
    }
    if (strcmp(q->path, "/healthz") == 0)
        return text(a, 200, "ok\n");
    if (strcmp(q->path, "/readyz") == 0) {
        switch (xf_metrics_state()) {
        case XF_MSTATE_READY:    return text(a, 200, "ready\n");
        case XF_MSTATE_DRAINING: return text(a, 503, "draining\n");
        default:                 return text(a, 503, "starting\n");
        }
    }
    return text(a, 404, "404 Not Found\n");
}

int xf_admin_serve(xf_http_reader *rd, const xf_admin_hooks *h, int may_keep, xf_buf *out)
{
    answer a = { 0 };
    int ev, keep = 0, head_only = 0, r = XF_ADMIN_CLOSE;
    while ((ev = xf_http_reader_next(rd)) == XF_HTTP_END)
        ;                            /* the previous request ended: the next one */
    if (ev == XF_HTTP_NEED)
        return XF_ADMIN_NEED;
    if (ev == XF_HTTP_BAD) {
        char msg[200];
        snprintf(msg, sizeof msg, "%d %s: %s\n", rd->status, xf_http_status_text(rd->status),
                 rd->reason);
        if (text(&a, rd->status == 431 ? 431 : 400, msg) < 0)
            goto done;
    } else {
        const xf_http_req *q = &rd->req;
        head_only = q->method == HTTP_HEAD;
        /* A body is never read, so the connection cannot go on after it; an Upgrade
           is not offered. */
        keep = may_keep && q->keep_alive && !q->has_body && !q->upgrade;
        if (route(q, h, &a) < 0)
            goto done;
    }
    if (emit(&a, head_only, keep, out) < 0)
        goto done;
    r = keep ? XF_ADMIN_REPLY : XF_ADMIN_CLOSE;
done:
    xf_buf_free(&a.body);
    return r;
}
