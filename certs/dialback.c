/* dialback: see dialback.h. XEP-0185 §3 "Key generation". */
#include "certs/dialback.h"
#include "certs/codec.h"

#include <string.h>
#include <stdlib.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

static int bad_part(const char *s)
{
    return !s || !*s || strpbrk(s, " \t\r\n") != NULL;
}

int xf_dialback_key(const char *secret, const char *receiving, const char *originating,
                    const char *stream_id, char out[XF_DIALBACK_KEY_LEN + 1])
{
    unsigned char sh[32], mac[32];
    char hexkey[65];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    mbedtls_md_context_t ctx;
    int r = XF_DIALBACK_ERR_CRYPTO;

    if (!secret || !out || bad_part(receiving) || bad_part(originating) || bad_part(stream_id))
        return XF_DIALBACK_ERR_ARG;
    if (!md || mbedtls_sha256((const unsigned char *)secret, strlen(secret), sh, 0) != 0)
        return XF_DIALBACK_ERR_CRYPTO;
    xf_hex_encode(sh, sizeof sh, hexkey, sizeof hexkey);   /* the HMAC key is the hex text */
    mbedtls_md_init(&ctx);
    if (mbedtls_md_setup(&ctx, md, 1) != 0
        || mbedtls_md_hmac_starts(&ctx, (const unsigned char *)hexkey, 64) != 0
        || mbedtls_md_hmac_update(&ctx, (const unsigned char *)receiving, strlen(receiving)) != 0
        || mbedtls_md_hmac_update(&ctx, (const unsigned char *)" ", 1) != 0
        || mbedtls_md_hmac_update(&ctx, (const unsigned char *)originating, strlen(originating)) != 0
        || mbedtls_md_hmac_update(&ctx, (const unsigned char *)" ", 1) != 0
        || mbedtls_md_hmac_update(&ctx, (const unsigned char *)stream_id, strlen(stream_id)) != 0
        || mbedtls_md_hmac_finish(&ctx, mac) != 0)
        goto out;
    xf_hex_encode(mac, sizeof mac, out, XF_DIALBACK_KEY_LEN + 1);
    r = 0;
out:
    mbedtls_md_free(&ctx);
    return r;
}

static int is_xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int xf_dialback_verify(const char *secret, const char *receiving, const char *originating,
                       const char *stream_id, const char *key, size_t len)
{
    char want[XF_DIALBACK_KEY_LEN + 1];
    unsigned diff = 0;

    if (!key || xf_dialback_key(secret, receiving, originating, stream_id, want) != 0)
        return 0;
    while (len > 0 && is_xml_space(key[0])) {
        key++;
        len--;
    }
    while (len > 0 && is_xml_space(key[len - 1]))
        len--;
    if (len != XF_DIALBACK_KEY_LEN)
        return 0; /* the length is public: every valid key has 64 digits */
    for (size_t i = 0; i < XF_DIALBACK_KEY_LEN; i++) {
        unsigned char c = (unsigned char)key[i];
        c |= (unsigned char)(((unsigned)(c - 'A') < 6u) << 5); /* A-F -> a-f, branch-free */
        diff |= (unsigned)(c ^ (unsigned char)want[i]);
    }
    return diff == 0;
}
