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
        if (xf_identity_extract(&crt, ids, 16, &n) == 0) {
            for (size_t i = 0; i < n && i < 16; i++)
                if (strlen(ids[i].value) >= XF_ID_VALUE_MAX)
                    __builtin_trap();
        }
        static const char *refs[] = { "example.com", "a.example.com", "xn--bcher-kva.example" };
        for (size_t i = 0; i < 3; i++) {
            int a = xf_identity_covers_dns(&crt, refs[i]);
            int b = xf_identity_check(&crt, refs[i], XF_SERVICE_SERVER, NULL, &v);
            /* A DNS-ID/CN proof for covers_dns is also a match for the full check. */
            if (a == 1 && b != 1)
                __builtin_trap();
            (void)xf_identity_check(&crt, refs[i], XF_SERVICE_CLIENT, "xmpp.example.net", &v);
        }
    }
    mbedtls_x509_crt_free(&crt);
    return 0;
}
