#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include "certs/pkix.h"
#include "proxy/log.h"
#include "proxy/tls.h"
#include "proxy/tls_client.h"

typedef struct tenant_conf {
    const xf_tenant *tenant;
    mbedtls_ssl_config direct, starttls;
} tenant_conf;

struct xf_tls_client {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;     /* thread-safe: MBEDTLS_THREADING_C guards it */
    mbedtls_x509_crt ca;
    int n_ca;
    tenant_conf *confs;
    size_t n_confs;                    /* initialised so far (for free) */
};

static const char *alpn_server[] = {"xmpp-server", NULL};

static int setup_conf(xf_tls_client *t, mbedtls_ssl_config *conf, const xf_tenant *tenant,
                      int direct)
{
    mbedtls_ssl_config_init(conf);
    int ret = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_CLIENT,
                                          MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0)
        return ret;
    mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &t->drbg);
    xf_tls_apply_policy(conf);          /* the same policy as the server side */
    /* We verify ourselves (remote.c, certs/): the handshake completes whatever the
       peer presents, the verdict goes into the policy decision. */
    mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
    mbedtls_ssl_conf_ca_chain(conf, &t->ca, NULL);
    /* Only reads them; mbedTLS takes non-const pointers. A tenant served with the
       hosting certificate presents that one: a remote offers SASL EXTERNAL only if it
       proves the tenant with it (DANE/POSH delegation), otherwise dialback. */
    ret = mbedtls_ssl_conf_own_cert(conf, (mbedtls_x509_crt *)xf_tenant_tls_chain(tenant),
                                    (mbedtls_pk_context *)xf_tenant_tls_key(tenant));
    if (ret != 0)
        return ret;
    if (direct && (ret = mbedtls_ssl_conf_alpn_protocols(conf, alpn_server)) != 0)
        return ret;
    return 0;
}

int xf_tls_client_init(xf_tls_client **out, const xf_registry *reg, const char *ca_file,
                       char *err, size_t errlen)
{
    char e[128];
    xf_tls_client *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_x509_crt_init(&t->ca);
    int ret = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                    (const unsigned char *)"xmppfront-client", 16);
    if (ret != 0) {
        snprintf(err, errlen, "seeding the DRBG: %s", xf_tls_strerror(ret, e, sizeof(e)));
        goto fail;
    }
    int n = xf_pkix_load_ca(&t->ca, ca_file);
    if (n <= 0)
        xf_warn("federation.ca_file %s: no CA certificate loaded (%d): no remote "
                "certificate will be trusted", ca_file ? ca_file : XF_PKIX_SYSTEM_BUNDLE, n);
    t->n_ca = n > 0 ? n : 0;
    size_t count = xf_registry_count(reg);
    t->confs = calloc(count ? count : 1, sizeof(*t->confs));
    if (t->confs == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < count; i++) {
        tenant_conf *tc = &t->confs[i];
        tc->tenant = xf_registry_at(reg, i);
        t->n_confs++;
        if ((ret = setup_conf(t, &tc->direct, tc->tenant, 1)) != 0 ||
            (ret = setup_conf(t, &tc->starttls, tc->tenant, 0)) != 0) {
            snprintf(err, errlen, "TLS client configuration for %s: %s", tc->tenant->domain,
                     xf_tls_strerror(ret, e, sizeof(e)));
            goto fail;
        }
    }
    *out = t;
    return 0;
fail:
    xf_tls_client_free(t);
    return -1;
}

void xf_tls_client_free(xf_tls_client *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_confs; i++) {
        mbedtls_ssl_config_free(&t->confs[i].direct);
        mbedtls_ssl_config_free(&t->confs[i].starttls);
    }
    free(t->confs);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    free(t);
}

const mbedtls_ssl_config *xf_tls_client_config(const xf_tls_client *t, const xf_tenant *tenant,
                                               int direct)
{
    if (t == NULL)
        return NULL;
    /* confs[] is in registry order: found at once for any number of tenants. */
    if (tenant != NULL && tenant->index < t->n_confs && t->confs[tenant->index].tenant == tenant)
        return direct ? &t->confs[tenant->index].direct : &t->confs[tenant->index].starttls;
    for (size_t i = 0; i < t->n_confs; i++)
        if (t->confs[i].tenant == tenant)
            return direct ? &t->confs[i].direct : &t->confs[i].starttls;
    return NULL;
}

mbedtls_x509_crt *xf_tls_client_ca(const xf_tls_client *t)
{
    return (mbedtls_x509_crt *)&t->ca;
}

int xf_tls_client_ca_count(const xf_tls_client *t) { return t ? t->n_ca : 0; }
