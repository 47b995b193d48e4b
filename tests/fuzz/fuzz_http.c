/* libFuzzer: the HTTP request reader of the auto listener's HTTPS side (proxy/http.h),
   fed in chunks of a size the first byte picks and with a head limit the second picks;
   every head it accepts is checked (offsets inside the head, a normalised name) and
   rewritten for the http_backend, whose result must be a complete head. Also the
   first-bytes sniffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "proxy/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_head(const xf_http_reader *r)
{
    const xf_http_req *q = &r->req;
    const char *head = xf_http_reader_head(r);
    size_t have = xf_http_reader_size(r);
    if (q->head_len == 0 || q->head_len > have || q->head_len > r->max_head ||
        head[q->head_len - 1] != '\n')
        abort();
    if (q->n_fields > XF_HTTP_MAX_FIELDS || (size_t)q->url + q->url_len > q->head_len)
        abort();
    for (size_t i = 0; i < q->n_fields; i++) {
        const xf_http_field *f = &q->fields[i];
        if (f->name_len == 0 || (size_t)f->name + f->name_len > q->head_len ||
            (size_t)f->value + f->value_len > q->head_len)
            abort();
    }
    for (const char *p = q->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            abort();
    if (strlen(q->path) > XF_HTTP_PATH_MAX)
        abort();
    struct sockaddr_in6 peer = { .sin6_family = AF_INET6 };
    peer.sin6_addr.s6_addr[15] = 1;
    xf_buf out = { 0 };
    if (xf_http_backend_head(head, q, (const struct sockaddr *)&peer, &out) != 0)
        abort();
    size_t n = xf_buf_size(&out);
    if (n < 4 || memcmp(xf_buf_head(&out) + n - 4, "\r\n\r\n", 4) != 0 ||
        n > q->head_len + 512)
        abort();
    xf_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int s = xf_http_sniff((const char *)data, size);
    if (s != XF_HTTP_SNIFF_NO && s != XF_HTTP_SNIFF_YES && s != XF_HTTP_SNIFF_MORE)
        abort();
    if (size < 2)
        return 0;
    size_t chunk = (data[0] & 63) + 1, max_head = 64 + (size_t)data[1] * 32;
    data += 2;
    size -= 2;
    xf_http_reader r;
    xf_http_reader_init(&r, max_head);
    int done = 0, requests = 0;
    for (size_t off = 0; off < size && !done; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (xf_http_reader_push(&r, (const char *)data + off, n) != 0)
            abort();
        for (;;) {
            int ev = xf_http_reader_next(&r);
            if (ev == XF_HTTP_NEED)
                break;
            if (ev == XF_HTTP_BAD) {
                if ((r.status != 400 && r.status != 431) || r.reason[0] == '\0')
                    abort();
                done = 1;
                break;
            }
            if (ev == XF_HTTP_HEAD) {
                check_head(&r);
                requests++;
                xf_http_answer a = { 0 };
                xf_http_answer_status(&a, requests % 2 ? 404 : 405, "fuzz");
                char resp[XF_HTTP_BODY_MAX + 1024];
                if (xf_http_format(&a, r.req.method == HTTP_HEAD, r.req.keep_alive, 0, resp,
                                   sizeof resp) <= 0)
                    abort();
                if (r.req.has_body || r.req.upgrade) {
                    done = 1;            /* answered and closed, as http_conn.c does */
                    break;
                }
                continue;
            }
            if (ev != XF_HTTP_END)
                abort();
        }
    }
    xf_http_reader_free(&r);
    return 0;
}
