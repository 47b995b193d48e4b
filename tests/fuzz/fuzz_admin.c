/* libFuzzer: the admin listener's request handling (proxy/admin.h xf_admin_serve) as
   admin.c drives it — bytes pushed in chunks of a size the first byte picks, requests
   answered one at a time until the connection would close — with the POST hook on or
   off (second byte). Every answer must be one complete HTTP/1.1 response with a known
   status whose Content-Length matches its body (none for HEAD); the /metrics body is
   rendered with the fuzzed bytes' tenants counted, so label escaping runs on hostile
   names too. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin.h"
#include "proxy/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hook(void *ud, char *msg, size_t cap)
{
    (void)ud;
    snprintf(msg, cap, "hooked");
    return 200;
}

static void check_answer(const char *p, size_t n, int head_only)
{
    int st = 0;
    if (n < 17 || sscanf(p, "HTTP/1.1 %d ", &st) != 1)
        abort();
    if (st != 200 && st != 400 && st != 404 && st != 405 && st != 431 && st != 503)
        abort();
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    const char *cl = memmem(p, n, "\r\nContent-Length: ", 18);
    if (end == NULL || cl == NULL || cl > end)
        abort();
    size_t len = strtoul(cl + 18, NULL, 10), body = n - (size_t)(end + 4 - p);
    if (body != (head_only ? 0 : len))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        if (xf_metrics_init(1) < 0)
            abort();
        xf_metrics_set_state(XF_MSTATE_READY);
        init = 1;
    }
    if (size < 2)
        return 0;
    size_t chunk = (data[0] & 127) + 1;
    xf_admin_hooks h = { .version = "fuzz" };
    if (data[1] & 1) {
        h.post_path = "/reload";
        h.post = hook;
    }
    data += 2;
    size -= 2;
    /* The input's first line, as a tenant name: escaped in the exposition. */
    char name[XF_METRICS_TENANT_NAME_MAX + 1];
    size_t nl = 0;
    while (nl < size && nl < sizeof name - 1 && data[nl] != '\n' && data[nl] != '\0')
        nl++;
    memcpy(name, data, nl);
    name[nl] = '\0';
    int slot = 0;
    xf_metrics_tenant_enter(&slot, name, XF_MSVC_CLIENT);

    xf_http_reader rd;
    xf_http_reader_init(&rd, XF_ADMIN_MAX_HEAD);
    int closed = 0;
    unsigned answers = 0;
    for (size_t off = 0; off < size && !closed; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (xf_http_reader_push(&rd, (const char *)data + off, n) != 0)
            abort();
        for (;;) {
            xf_buf out = { 0 };
            int ev = xf_admin_serve(&rd, &h, answers + 1 < XF_ADMIN_MAX_REQUESTS, &out);
            if (ev == XF_ADMIN_NEED) {
                if (xf_buf_size(&out) != 0)
                    abort();
                break;
            }
            if (ev != XF_ADMIN_REPLY && ev != XF_ADMIN_CLOSE)
                abort();
            check_answer(xf_buf_head(&out), xf_buf_size(&out),
                         rd.state != 0 && rd.req.method == HTTP_HEAD && rd.status == 0);
            xf_buf_free(&out);
            if (answers + 1 >= XF_ADMIN_MAX_REQUESTS && ev != XF_ADMIN_CLOSE)
                abort();             /* the last answer must end the connection */
            if (ev == XF_ADMIN_CLOSE || ++answers >= XF_ADMIN_MAX_REQUESTS) {
                closed = 1;
                break;
            }
        }
    }
    xf_http_reader_free(&rd);
    xf_metrics_tenant_leave(&slot);
    return 0;
}
