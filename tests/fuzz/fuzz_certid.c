/* libFuzzer target: certificate identity extraction and matching
   (certs/identity.c, certs/idna.c) on arbitrary DER given to mbedTLS. The input
   is a DER certificate; a few fixed reference names are checked against it,
   and the tail of the input is also used as a reference name for the IDNA code. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/x509_crt.h>
#include "certs/identity.h"
#include "certs/idna.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mbedtls_x509_crt crt;
    struct xf_id_entry ids[16];
    struct xf_id_verdict v;
    size_t n = 0;
    char name[128], norm[300];
    size_t nl = size < sizeof name - 1 ? size : sizeof name - 1;

    /* The IDNA normaliser on the raw tail bytes. */
    memcpy(name, data + size - nl, nl);
    name[nl] = '\0';
    if (xf_idna_normalize(name, norm, sizeof norm) > 0) {
        char again[300];
        /* Idempotent: a normalised name normalises to itself. */
        if (xf_idna_normalize(norm, again, sizeof again) < 0 || strcmp(norm, again) != 0)
            __builtin_trap();
    }

    mbedtls_x509_crt_init(&crt);
    if (mbedtls_x509_crt_parse_der(&crt, data, size) == 0) {
        int san = 0;
        if (xf_identity_extract(&crt, ids, 16, &n) == 0) {
            size_t n2 = 0;
            struct xf_id_entry *all = n ? calloc(n, sizeof *all) : NULL;
            /* The count does not depend on the room given, and the first
               entries are the same. */
            if (n && !all)
                goto done;
            if (xf_identity_extract(&crt, all, n, &n2) != 0 || n2 != n)
                __builtin_trap();
            for (size_t i = 0; i < n; i++) {
                /* Display values never carry control bytes (they go to logs). */
                for (const char *c = all[i].value; *c; c++)
                    if ((unsigned char)*c < 0x20 || *c == 0x7F)
                        __builtin_trap();
                if (i < 16 && (ids[i].type != all[i].type || ids[i].valid != all[i].valid
                               || strcmp(ids[i].value, all[i].value) != 0))
                    __builtin_trap();
                if (all[i].type != XF_ID_CN)
                    san = 1;
            }
            free(all);
        }
        static const char *refs[] = { "example.com", "a.example.com", "xn--bcher-kva.example" };
        for (size_t i = 0; i < 3; i++) {
            int a = xf_identity_covers_dns(&crt, refs[i]);
            int b = xf_identity_check(&crt, refs[i], XF_SERVICE_SERVER, NULL, &v);
            /* A DNS-ID/CN proof for covers_dns is also a match for the full check. */
            if (a == 1 && b != 1)
                __builtin_trap();
            /* A match names a presented identifier of a real type; the CN is
               used only when the certificate has no SAN identifier. */
            if (b == 1 && (v.type == XF_ID_NONE || v.type == XF_ID_URI || !v.presented[0]))
                __builtin_trap();
            if (b == 1 && v.type == XF_ID_CN && san)
                __builtin_trap();
            if (b != 1 && v.matched)
                __builtin_trap();
            (void)xf_identity_check(&crt, refs[i], XF_SERVICE_CLIENT, "xmpp.example.net", &v);
        }
    }
done:
    mbedtls_x509_crt_free(&crt);
    return 0;
}
