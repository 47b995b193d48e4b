/*
 * buf: a growable byte buffer with a read offset. The all-zero struct is a valid empty
 * buffer; xf_buf_free returns it to that state. Bytes are appended at the end and
 * consumed from the front; the front is compacted lazily.
 */
#ifndef XF_BUF_H
#define XF_BUF_H

#include <stddef.h>

typedef struct xf_buf {
    char *data;
    size_t off;    /* first unread byte */
    size_t len;    /* one past the last byte */
    size_t cap;
} xf_buf;

static inline size_t xf_buf_size(const xf_buf *b) { return b->len - b->off; }
static inline const char *xf_buf_head(const xf_buf *b) { return b->data + b->off; }

/* Make room for n more bytes; returns the write position, or NULL on ENOMEM. */
char *xf_buf_reserve(xf_buf *b, size_t n);
/* Mark n reserved bytes as written. */
void xf_buf_commit(xf_buf *b, size_t n);
int xf_buf_append(xf_buf *b, const void *p, size_t n);
void xf_buf_consume(xf_buf *b, size_t n);
void xf_buf_reset(xf_buf *b);
void xf_buf_free(xf_buf *b);
/* Give the storage back when nothing is left to read (a connection that relays holds
   no heap for a buffer it is not using); a buffer with bytes in it is left alone. */
void xf_buf_release_if_empty(xf_buf *b);

#endif
