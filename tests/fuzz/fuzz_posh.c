/* libFuzzer target: POSH document parser (certs/posh.c) and, for documents that
   parse, matching against a fixed certificate-less path and regeneration. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "certs/posh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct xf_posh_doc doc;
    char err[160];
    int r = xf_posh_parse(data, size, &doc, err, sizeof err);
    if (r == 0) {
        /* Invariants of a parsed document. */
        if (doc.expires <= 0 || doc.nfp > XF_POSH_MAX_FP)
            __builtin_trap();
        if (doc.kind == XF_POSH_REFERENCE) {
            char out[XF_POSH_URL_MAX * 8];
            struct xf_posh_doc again;
            /* A reference document regenerates and reparses to the same URL. */
            if (xf_posh_generate_reference(doc.url, doc.expires, out, sizeof out) > 0) {
                if (xf_posh_parse((const uint8_t *)out, strlen(out), &again, NULL, 0) != 0
                    || strcmp(again.url, doc.url) != 0)
                    __builtin_trap();
            }
        }
        for (size_t i = 0; i < doc.nfp; i++)
            if (doc.fp[i].len != xf_cert_hash_len(doc.fp[i].hash))
                __builtin_trap();
    }
    return 0;
}
