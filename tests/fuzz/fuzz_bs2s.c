/* libFuzzer: proxy/backend_s2s.c, the assertion of a remote domain to the backend, fed
   an arbitrary backend stream in pieces. Invariants: nothing is forwarded before the
   backend answered a pair valid, what is forwarded is whole elements ('<' ... '>'),
   answers arrive only for asserted pairs and at most once each, and after a failure
   no callback runs. The first byte picks the piece size; a second pair is asserted
   half-way. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/backend_s2s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct st {
    xf_bs2s *b;
    int failed, answers[2];
};

static int f_send(void *ud, const char *d, size_t n)
{
    struct st *s = ud;
    if (s->failed || n == 0 || d[0] != '<') abort();
    return 0;
}

static int f_forward(void *ud, const char *d, size_t n)
{
    struct st *s = ud;
    if (s->failed || xf_bs2s_valid_count(s->b) == 0 || n < 2 || d[0] != '<' || d[n - 1] != '>')
        abort();
    return 0;
}

static int f_pair(void *ud, const char *remote, const char *local, enum xf_db_type t,
                  enum xf_db_error e)
{
    struct st *s = ud;
    (void)e;
    if (s->failed || strcmp(local, "a.example") != 0) abort();
    int i = strcmp(remote, "r.example") == 0 ? 0 : strcmp(remote, "p.example") == 0 ? 1 : -1;
    if (i < 0 || s->answers[i]++ || t < XF_DB_TYPE_VALID || t > XF_DB_TYPE_ERROR) abort();
    return 0;
}

static void f_fail(void *ud, const char *reason)
{
    struct st *s = ud;
    if (s->failed++ || reason == NULL) abort();
}

static const xf_bs2s_ops ops = {f_send, f_forward, f_pair, f_fail};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)(data[0] % 64) + 1;
    data++, size--;
    struct st s;
    memset(&s, 0, sizeof(s));
    s.b = xf_bs2s_new("secret", "r.example", "a.example", 4096, &ops, &s);
    if (s.b == NULL || xf_bs2s_start(s.b) != 0) abort();
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (off >= size / 2 && off < size / 2 + piece)
            (void)xf_bs2s_assert(s.b, "p.example", "a.example");
        if (xf_bs2s_input(s.b, (const char *)data + off, n) < 0)
            break;
    }
    xf_bs2s_free(s.b);
    return 0;
}
