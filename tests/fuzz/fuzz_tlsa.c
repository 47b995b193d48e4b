/* libFuzzer target: TLSA RDATA (wire) and presentation parsers (certs/dane.c),
   with the usability rules. The first input byte picks the parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "certs/dane.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct xf_tlsa t;
    const char *why;
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        if (xf_tlsa_parse_rdata(data + 1, size - 1, &t) == 0) {
            if (t.len != size - 4)
                __builtin_trap();
            (void)xf_tlsa_usable(&t, &why);
        }
    } else {
        char *text = malloc(size);
        if (!text)
            return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        if (xf_tlsa_parse_text(text, &t) == 0) {
            if (t.len == 0 || t.len > XF_TLSA_DATA_MAX)
                __builtin_trap();
            if (xf_tlsa_usable(&t, &why) && t.mtype == 1 && t.len != 32)
                __builtin_trap();
        }
        free(text);
    }
    return 0;
}
