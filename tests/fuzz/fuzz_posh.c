/* libFuzzer target: POSH document parser (certs/posh.c). Every document that
   parses is matched against a fixed certificate, and the verdict is checked
   against an independent comparison of the parsed fingerprints with the
   certificate's digests; reference documents must regenerate to themselves. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>
#include "certs/cert.h"
#include "certs/posh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A self-signed P-256 certificate for fuzz.example, valid until 2125. A seed
   in corpus/posh (fixed-cert.json) carries its fingerprints. */
static const char FIXED_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBnjCCAUSgAwIBAgIUSEYV3KnbZsK9Pu9R+B88/YdJqwAwCgYIKoZIzj0EAwIw\n"
    "FzEVMBMGA1UEAwwMZnV6ei5leGFtcGxlMCAXDTI2MTEyMjAzNTkxNFoYDzIxMjYx\n"
    "MDI5MDM1OTE0WjAXMRUwEwYDVQQDDAxmdXp6LmV4YW1wbGUwWTATBgcqhkjOPQIB\n"
    "BggqhkjOPQMBBwNCAATDEX8hc1awyCoYYk8hd8kLMkH+jrhb4BkkQY9sVDRV9um4\n"
    "Dzjlu4t1HF10gnkamwlPgSpRjQGSJkuJWputDW0To2wwajAdBgNVHQ4EFgQUP7IM\n"
    "IJWovmOUxBDnq0EAV8R1Qt0wHwYDVR0jBBgwFoAUP7IMIJWovmOUxBDnq0EAV8R1\n"
    "Qt0wDwYDVR0TAQH/BAUwAwEB/zAXBgNVHREEEDAOggxmdXp6LmV4YW1wbGUwCgYI\n"
    "KoZIzj0EAwIDSAAwRQIhAJRH/FEVmVTJ+6/h4/lbF6TVSSkCEQNpW4bW3MTRavR2\n"
    "AiBeyFAbQ4hfpOoafJDsllnIV2wvUb1lv1XDul59tAvdXA==\n"
    "-----END CERTIFICATE-----\n"
    ;

static mbedtls_x509_crt fixed;
static unsigned char dig[3][64];  /* sha-256, sha-384, sha-512 of the DER */
static int ready;

static void init_fixed(void)
{
    static const enum xf_cert_hash h[3] = { XF_HASH_SHA256, XF_HASH_SHA384, XF_HASH_SHA512 };
    if (ready)
        return;
    if (psa_crypto_init() != PSA_SUCCESS)
        abort();
    mbedtls_x509_crt_init(&fixed);
    if (mbedtls_x509_crt_parse(&fixed, (const unsigned char *)FIXED_PEM, sizeof FIXED_PEM) != 0)
        abort();
    for (int i = 0; i < 3; i++)
        if (xf_cert_digest(&fixed, XF_CERT_FULL, h[i], dig[i], 64) != (int)xf_cert_hash_len(h[i]))
            abort();
    ready = 1;
}

static const unsigned char *digest_for(enum xf_cert_hash h)
{
    return h == XF_HASH_SHA256 ? dig[0] : h == XF_HASH_SHA384 ? dig[1] : h == XF_HASH_SHA512 ? dig[2] : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct xf_posh_doc doc, again;
    static char out[XF_POSH_URL_MAX * 8];
    char err[160], why[200];
    int r, m, expect = 0;

    init_fixed();
    r = xf_posh_parse(data, size, &doc, err, sizeof err);
    if (r != 0) {
        /* A refused document leaves nothing behind that could match. */
        if (doc.nfp != 0 || doc.kind != 0 || xf_posh_match(&doc, &fixed, why, sizeof why) != XF_POSH_NOMATCH)
            __builtin_trap();
        return 0;
    }
    if (doc.expires <= 0 || doc.expires > XF_POSH_EXPIRES_MAX)
        __builtin_trap();
    if (doc.kind == XF_POSH_REFERENCE) {
        if (doc.nfp != 0 || strncasecmp(doc.url, "https://", 8) != 0
            || xf_posh_match(&doc, &fixed, why, sizeof why) != XF_POSH_NOMATCH)
            __builtin_trap();
        /* A reference document regenerates and reparses to the same URL. */
        if (xf_posh_generate_reference(doc.url, doc.expires, out, sizeof out) <= 0
            || xf_posh_parse((const uint8_t *)out, strlen(out), &again, NULL, 0) != 0
            || strcmp(again.url, doc.url) != 0 || again.expires != doc.expires)
            __builtin_trap();
        return 0;
    }
    if (doc.kind != XF_POSH_FINGERPRINTS)
        __builtin_trap();
    /* Independent matching: any stored fingerprint equal to the certificate's
       digest for that hash. */
    for (size_t i = 0; i < doc.nfp; i++) {
        const unsigned char *d = digest_for(doc.fp[i].hash);
        if (!d || doc.fp[i].len != xf_cert_hash_len(doc.fp[i].hash))
            __builtin_trap();
        if (memcmp(d, doc.fp[i].digest, doc.fp[i].len) == 0)
            expect = 1;
    }
    m = xf_posh_match(&doc, &fixed, why, sizeof why);
    if ((m == XF_POSH_MATCH) != expect)
        __builtin_trap();
    /* The certificate is valid now, so the decision equals the match. */
    if (xf_posh_check(&doc, &fixed, why, sizeof why) != m)
        __builtin_trap();
    /* The generated document for the certificate always matches it. */
    if (xf_posh_generate(&fixed, doc.expires, out, sizeof out) <= 0
        || xf_posh_parse((const uint8_t *)out, strlen(out), &again, NULL, 0) != 0
        || xf_posh_match(&again, &fixed, why, sizeof why) != XF_POSH_MATCH)
        __builtin_trap();
    return 0;
}
