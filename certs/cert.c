/* cert: see cert.h. */
#include "certs/cert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/sha256.h>
#include <mbedtls/sha512.h>

#define XF_CERT_FILE_MAX (1024 * 1024)

int xf_cert_load_chain(mbedtls_x509_crt *chain, const char *path)
{
    FILE *f;
    unsigned char *buf = NULL;
    long sz;
    int r, count = 0;

    if (!chain || !path)
        return XF_CERT_ERR_ARG;
    if (!(f = fopen(path, "rb")))
        return XF_CERT_ERR_IO;
    if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || sz > XF_CERT_FILE_MAX
        || fseek(f, 0, SEEK_SET) != 0)
        goto fail_io;
    if (!(buf = malloc((size_t)sz + 1)))
        goto fail_io;
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz)
        goto fail_io;
    fclose(f);
    buf[sz] = '\0';
    if (strstr((const char *)buf, "-----BEGIN CERTIFICATE-----")) {
        /* mbedtls_x509_crt_parse returns >0 for the number of certificates that
           failed; we refuse partially parsed chains. */
        r = mbedtls_x509_crt_parse(chain, buf, (size_t)sz + 1);
    } else {
        r = mbedtls_x509_crt_parse_der(chain, buf, (size_t)sz);
    }
    free(buf);
    if (r != 0)
        return XF_CERT_ERR_PARSE;
    for (const mbedtls_x509_crt *c = chain; c && c->raw.p; c = c->next)
        count++;
    return count > 0 ? count : XF_CERT_ERR_PARSE;
fail_io:
    free(buf);
    fclose(f);
    return XF_CERT_ERR_IO;
}

size_t xf_cert_hash_len(enum xf_cert_hash hash)
{
    switch (hash) {
    case XF_HASH_SHA256: return 32;
    case XF_HASH_SHA384: return 48;
    case XF_HASH_SHA512: return 64;
    default: return 0;
    }
}

int xf_cert_digest(const mbedtls_x509_crt *crt, enum xf_cert_part part,
                   enum xf_cert_hash hash, unsigned char *out, size_t outlen)
{
    const mbedtls_x509_buf *b;
    if (!crt || !out)
        return XF_CERT_ERR_ARG;
    b = part == XF_CERT_SPKI ? &crt->pk_raw : &crt->raw;
    if (!b->p)
        return XF_CERT_ERR_ARG;
    switch (hash) {
    case XF_HASH_NONE:
        if (b->len > outlen)
            return XF_CERT_ERR_SPACE;
        memcpy(out, b->p, b->len);
        return (int)b->len;
    case XF_HASH_SHA256:
        if (outlen < 32 || mbedtls_sha256(b->p, b->len, out, 0) != 0)
            return XF_CERT_ERR_SPACE;
        return 32;
    case XF_HASH_SHA384:
        if (outlen < 48 || mbedtls_sha512(b->p, b->len, out, 1) != 0)
            return XF_CERT_ERR_SPACE;
        return 48;
    case XF_HASH_SHA512:
        if (outlen < 64 || mbedtls_sha512(b->p, b->len, out, 0) != 0)
            return XF_CERT_ERR_SPACE;
        return 64;
    }
    return XF_CERT_ERR_ARG;
}

int xf_cert_time_status(const mbedtls_x509_crt *crt)
{
    if (mbedtls_x509_time_is_past(&crt->valid_to))
        return XF_CERT_EXPIRED;
    if (mbedtls_x509_time_is_future(&crt->valid_from))
        return XF_CERT_NOT_YET_VALID;
    return 0;
}
