/* libFuzzer: xf_tenant_parse with load_files = 0 (no certificate/key I/O). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tenants/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xf_tenant *t = NULL;
    char err[256];
    int rc = xf_tenant_parse((const char *)data, size, "/fuzz/t.json", 0, &t, err, sizeof err);
    if (rc == 0) {
        /* Stored names are normalised: lower case, no trailing dot. */
        size_t n = strlen(t->domain);
        if (!n || t->domain[n - 1] == '.') abort();
        for (const char *p = t->domain; *p; p++)
            if (*p >= 'A' && *p <= 'Z') abort();
        if (!t->c2s.addrlen && !t->s2s.addrlen) abort();
        /* "proofs": distinct prooftypes; trusted never without one. */
        if (t->proofs.n < 0 || t->proofs.n > XF_PROOF_COUNT) abort();
        if (t->federation == XF_FED_TRUSTED && t->proofs.n == 0) abort();
        for (int i = 0; i < t->proofs.n; i++)
            for (int j = 0; j < i; j++)
                if (t->proofs.type[i] == t->proofs.type[j]) abort();
        xf_tenant_free(t);
    } else if (t || strncmp(err, "/fuzz/t.json: ", 14) != 0) {
        abort();
    }
    return 0;
}
