/* libFuzzer: session ticket parsing (xf_tickets_open; a ticket is network input, in a
   TLS 1.2 SessionTicket extension or a TLS 1.3 pre_shared_key identity).
   data[0] bit 0: the TLS version of the handshake (0: 1.2, 1: 1.3);
   data[0] bit 1: 0 = the rest is the ticket as received; 1 = the rest is a plaintext
   (format, tls_version, issued ms, session: proxy/tickets.h) that the harness seals
   under the right period key and name, so that the header checks and
   mbedtls_ssl_session_load are reached past the AEAD.
   An opened session must seal again and open again to a session that seals the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <psa/crypto.h>

#include "proxy/tickets.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char secret[] = "fuzz secret: thirty-two bytes or more, fixed";
#define NOW_MS (1796144400LL * 1000 + 10000)   /* 10 s into a period of 3600 s */
#define NAME "a.example"

static xf_tickets *keys;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (psa_crypto_init() != PSA_SUCCESS)
        abort();
    keys = xf_tickets_new(secret, sizeof(secret) - 1, 3600);
    if (keys == NULL)
        abort();
    return 0;
}

/* The ticket layout of proxy/tickets.h, sealed by hand. */
static size_t seal_raw(const uint8_t *pt, size_t n, unsigned char *out, size_t cap)
{
    if (16 + 12 + n + 16 > cap)
        return 0;
    uint64_t p = (uint64_t)(NOW_MS / 1000 / 3600);
    unsigned char info[24 + 8], okm[48], aad[16 + 1 + sizeof(NAME) - 1];
    memcpy(info, "xmppfront session ticket", 24);
    for (int i = 0; i < 8; i++)
        info[24 + i] = (unsigned char)(p >> (56 - 8 * i));
    if (mbedtls_hkdf(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), NULL, 0, secret,
                     sizeof(secret) - 1, info, sizeof(info), okm, sizeof(okm)) != 0)
        abort();
    memcpy(out, okm, 16);
    memset(out + 16, 0, 12);
    memcpy(aad, okm, 16);
    aad[16] = sizeof(NAME) - 1;
    memcpy(aad + 17, NAME, sizeof(NAME) - 1);
    mbedtls_gcm_context g;
    mbedtls_gcm_init(&g);
    if (mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, okm + 16, 256) != 0 ||
        mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, n, out + 16, 12, aad, sizeof(aad),
                                  pt, out + 28, 16, out + 28 + n) != 0)
        abort();
    mbedtls_gcm_free(&g);
    return 16 + 12 + n + 16;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char buf[70000], again[70000];
    if (size < 1 || size > 60000)
        return 0;
    int version = (data[0] & 1) ? MBEDTLS_SSL_VERSION_TLS1_3 : MBEDTLS_SSL_VERSION_TLS1_2;
    size_t len;
    if (data[0] & 2) {
        if ((len = seal_raw(data + 1, size - 1, buf, sizeof(buf))) == 0)
            return 0;
    } else {
        len = size - 1;
        memcpy(buf, data + 1, len);
    }
    xf_tickets_ctx ctx = { keys, NAME, version, 0, NOW_MS };
    mbedtls_ssl_session s;
    mbedtls_ssl_session_init(&s);
    int r = xf_tickets_open(&ctx, &s, buf, len);
    if (r > 0)
        abort();
    if (r == 0) {
        size_t n1 = 0, n2 = 0;
        uint32_t life;
        if (xf_tickets_seal(&ctx, &s, again, again + sizeof(again), &n1, &life) != 0 ||
            life != 3600)
            abort();
        mbedtls_ssl_session s2;
        mbedtls_ssl_session_init(&s2);
        if (xf_tickets_open(&ctx, &s2, again, n1) != 0)
            abort();
        if (xf_tickets_seal(&ctx, &s2, again, again + sizeof(again), &n2, &life) != 0 ||
            n2 != n1)
            abort();
        mbedtls_ssl_session_free(&s2);
    }
    mbedtls_ssl_session_free(&s);
    return 0;
}
