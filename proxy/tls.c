#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <psa/crypto.h>
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/tls.h"

struct xf_tls {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;   /* thread-safe: MBEDTLS_THREADING_C guards it */
    mbedtls_ssl_config conf[3];      /* client, server, auto */
};

/* RFC 9325 §4.2: AEAD with forward secrecy only. TLS 1.3 suites first. */
static const int ciphersuites[] = {
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0
};

static const uint16_t groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE
};

static const char *alpn_client[] = {"xmpp-client", NULL};
static const char *alpn_server[] = {"xmpp-server", NULL};
static const char *alpn_auto[] = {"xmpp-client", "xmpp-server", NULL};

static int use_tenant(mbedtls_ssl_context *ssl, xf_tls_select *sel, const xf_tenant *t)
{
    sel->chosen = t;
    /* mbedtls_ssl_set_hs_own_cert takes non-const pointers but only reads them. */
    return mbedtls_ssl_set_hs_own_cert(ssl, (mbedtls_x509_crt *)&t->chain,
                                       (mbedtls_pk_context *)&t->key);
}

/* SNI callback: called only when the ClientHello has server_name. Unknown name ->
   nonzero, and mbedTLS sends the fatal unrecognized_name(112) alert (RFC 6066 §3). */
static int on_sni(void *unused, mbedtls_ssl_context *ssl, const unsigned char *name,
                  size_t len)
{
    xf_tls_select *sel = mbedtls_ssl_get_user_data_p(ssl);
    if (sel == NULL || len == 0 || len >= sizeof(sel->sni))
        return -1;
    /* RFC 6066 §3: an ASCII host name, no trailing dot, no IP literal. Anything else is
       refused with unrecognized_name like an unknown name. */
    int letters = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = name[i];
        if (ch >= 'A' && ch <= 'Z')
            ch += 32;
        if (ch >= 'a' && ch <= 'z')
            letters = 1;
        else if (!((ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
            return -1;
        sel->sni[i] = (char)ch;
    }
    sel->sni[len] = '\0';
    if (!letters || name[0] == '.' || name[len - 1] == '.')
        return -1;
    const xf_tenant *t = xf_registry_for_sni(sel->registry, sel->sni);
    if (t == NULL)
        return -1;
    return use_tenant(ssl, sel, t);
}

/* Certificate callback: always called after the ClientHello is parsed. Without SNI the
   pre-TLS `to` picks the certificate (RFC 6120 §5.4.3.1 note, RFC 7590 §3.1), else the
   first tenant's certificate is the default. */
static int on_cert(mbedtls_ssl_context *ssl)
{
    xf_tls_select *sel = mbedtls_ssl_get_user_data_p(ssl);
    if (sel == NULL)
        return -1;
    if (sel->chosen != NULL)
        return 0;
    const xf_tenant *t = sel->hint;
    if (t == NULL && xf_registry_count(sel->registry) > 0)
        t = xf_registry_at(sel->registry, 0);
    if (t == NULL)
        return -1;
    return use_tenant(ssl, sel, t);
}

static int setup_conf(xf_tls *t, mbedtls_ssl_config *conf, const char **alpn,
                      char *err, size_t errlen)
{
    int ret;
    mbedtls_ssl_config_init(conf);
    ret = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0)
        goto fail;
    mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &t->drbg);
    mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_ciphersuites(conf, ciphersuites);
    mbedtls_ssl_conf_groups(conf, groups);
    mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_legacy_renegotiation(conf, MBEDTLS_SSL_LEGACY_NO_RENEGOTIATION);
    /* Peer verification of client certificates belongs to the s2s authentication work;
       until then no certificate is requested. */
    mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_NONE);
    mbedtls_ssl_conf_sni(conf, on_sni, NULL);
    mbedtls_ssl_conf_cert_cb(conf, on_cert);
    ret = mbedtls_ssl_conf_alpn_protocols(conf, alpn);
    if (ret != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "TLS configuration: %s", xf_tls_strerror(ret, (char[128]){0}, 128));
    return -1;
}

int xf_tls_init(xf_tls **out, char *err, size_t errlen)
{
    psa_status_t st = psa_crypto_init();
    if (st != PSA_SUCCESS) {
        snprintf(err, errlen, "psa_crypto_init failed: %d", (int)st);
        return -1;
    }
    xf_tls *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    int ret = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                    (const unsigned char *)"xmppfront", 9);
    if (ret != 0) {
        snprintf(err, errlen, "seeding the DRBG: %s", xf_tls_strerror(ret, (char[128]){0}, 128));
        goto fail;
    }
    if (setup_conf(t, &t->conf[0], alpn_client, err, errlen) != 0 ||
        setup_conf(t, &t->conf[1], alpn_server, err, errlen) != 0 ||
        setup_conf(t, &t->conf[2], alpn_auto, err, errlen) != 0)
        goto fail;
    *out = t;
    return 0;
fail:
    xf_tls_free(t);
    return -1;
}

void xf_tls_free(xf_tls *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < 3; i++)
        mbedtls_ssl_config_free(&t->conf[i]);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    free(t);
}

const mbedtls_ssl_config *xf_tls_config(const xf_tls *t, int service)
{
    switch (service) {
    case XF_SVC_CLIENT: return &t->conf[0];
    case XF_SVC_SERVER: return &t->conf[1];
    default:            return &t->conf[2];
    }
}

const char *xf_tls_strerror(int code, char *buf, size_t len)
{
    mbedtls_strerror(code, buf, len);
    return buf;
}
