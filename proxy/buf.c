#include <stdlib.h>
#include <string.h>
#include "proxy/buf.h"

char *xf_buf_reserve(xf_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return b->data + b->len;
    if (b->off > 0) {                       /* compact before growing */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= n)
            return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < n) {
        if (cap > ((size_t)-1) / 2)
            return NULL;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return NULL;
    b->data = p;
    b->cap = cap;
    return b->data + b->len;
}

void xf_buf_commit(xf_buf *b, size_t n) { b->len += n; }

int xf_buf_append(xf_buf *b, const void *p, size_t n)
{
    char *w = xf_buf_reserve(b, n);
    if (w == NULL)
        return -1;
    if (n)
        memcpy(w, p, n);
    b->len += n;
    return 0;
}

void xf_buf_consume(xf_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void xf_buf_reset(xf_buf *b) { b->off = b->len = 0; }

void xf_buf_free(xf_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void xf_buf_release_if_empty(xf_buf *b)
{
    if (b->off >= b->len && b->data != NULL)
        xf_buf_free(b);
}
