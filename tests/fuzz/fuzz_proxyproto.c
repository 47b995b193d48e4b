/* libFuzzer: the strict PROXY v2 decoder; an accepted header is re-encoded when it is
   a PROXY TCP4/TCP6 one and must decode again to the same addresses. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xf_pp2_header h, h2;
    int n = xf_pp2_decode(data, size, &h);
    if (n < -1 || (size_t)(n > 0 ? n : 0) > size) abort();
    if (n <= 0) return 0;
    if ((size_t)n != h.length || h.n_tlvs < 0 || h.n_tlvs > 32) abort();
    for (int i = 0; i < h.n_tlvs; i++)
        if (h.tlvs[i].value < data || h.tlvs[i].value + h.tlvs[i].len > data + n) abort();
    if (h.command == 1 && (h.family == 0x11 || h.family == 0x21)) {
        uint8_t out[128];
        xf_pp2_info in = { .src = (const struct sockaddr *)&h.src,
                           .dst = (const struct sockaddr *)&h.dst, .crc32c = 1 };
        int m = xf_pp2_encode(&in, out, sizeof out);
        if (m <= 0 || xf_pp2_decode(out, (size_t)m, &h2) != m) abort();
        /* TCP6 carrying v4-mapped addresses is re-encoded as TCP4 by design. */
        if (h2.family != h.family && !(h.family == 0x21 && h2.family == 0x11)) abort();
        if (h2.family == h.family && memcmp(&h.src, &h2.src, sizeof h.src) != 0) abort();
    }
    return 0;
}
