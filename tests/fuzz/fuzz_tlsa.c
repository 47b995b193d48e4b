/* libFuzzer target: TLSA RDATA (wire) and presentation parsers (certs/dane.c),
   with the usability rules. The first input byte picks the parser. Invariants:
   wire -> text -> wire and text -> wire -> text round trips give the same
   record, and xf_tlsa_usable agrees with an independent statement of RFC 7671
   §4.1 / RFC 6698 (usage 0-3, selector 0-1, mtype 0-2, non-empty data, 32 / 64
   bytes for SHA2-256 / SHA2-512). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "certs/dane.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const struct xf_tlsa *a, const struct xf_tlsa *b)
{
    return a->usage == b->usage && a->selector == b->selector && a->mtype == b->mtype
        && a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void check_record(const struct xf_tlsa *t)
{
    static struct xf_tlsa back;
    static char text[16 + 2 * XF_TLSA_DATA_MAX];
    static unsigned char wire[3 + XF_TLSA_DATA_MAX];
    const char *why = NULL;
    int usable = xf_tlsa_usable(t, &why);
    int expect = t->usage <= 3 && t->selector <= 1 && t->mtype <= 2 && t->len > 0
              && (t->mtype != 1 || t->len == 32) && (t->mtype != 2 || t->len == 64);
    if (usable != expect || (!usable && !why) || (usable && why))
        __builtin_trap();
    /* To presentation format and back (only records with data can be written). */
    if (t->len > 0) {
        int off = snprintf(text, sizeof text, "%u %u %u ", t->usage, t->selector, t->mtype);
        for (size_t i = 0; i < t->len; i++)
            off += snprintf(text + off, sizeof text - (size_t)off, "%02X", t->data[i]);
        if (xf_tlsa_parse_text(text, &back) != 0 || !same(t, &back))
            __builtin_trap();
    }
    /* To wire format and back. */
    wire[0] = t->usage;
    wire[1] = t->selector;
    wire[2] = t->mtype;
    memcpy(wire + 3, t->data, t->len);
    if (xf_tlsa_parse_rdata(wire, 3 + t->len, &back) != 0 || !same(t, &back))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct xf_tlsa t;
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        int r = xf_tlsa_parse_rdata(data + 1, size - 1, &t);
        /* Accepted exactly when there are 3 header bytes and the data fits. */
        if ((r == 0) != (size - 1 >= 3 && size - 4 <= XF_TLSA_DATA_MAX))
            __builtin_trap();
        if (r == 0) {
            if (t.usage != data[1] || t.selector != data[2] || t.mtype != data[3]
                || t.len != size - 4 || memcmp(t.data, data + 4, t.len) != 0)
                __builtin_trap();
            check_record(&t);
        }
    } else {
        char *text = malloc(size);
        if (!text)
            return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        if (xf_tlsa_parse_text(text, &t) == 0)
            check_record(&t);
        free(text);
    }
    return 0;
}
