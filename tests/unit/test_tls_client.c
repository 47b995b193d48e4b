/* Unit tests for proxy/tls_client.c: the client certificate presented on the s2s streams
   xmppfront opens. A tenant with a certificate of its own presents it; a tenant served
   with the hosting certificate presents the hosting one (the remote may prove it by
   DANE/POSH delegation and offer SASL EXTERNAL, otherwise dialback). Checked by a real
   in-memory handshake against a server that asks for a client certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <psa/crypto.h>

#include "proxy/tls.h"
#include "proxy/tls_client.h"
#include "tenants/registry.h"

static char g_dir[256];

__attribute__((format(printf, 1, 2)))
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) fail_msg("command failed: %s", cmd);
}

static void mkcert(const char *name)
{
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
       "-keyout '%s/%s.key' -out '%s/%s.crt' -days 30 -subj '/CN=%s' "
       "-addext 'subjectAltName=DNS:%s' >/dev/null 2>&1", g_dir, name, g_dir, name, name, name);
}

static void put(const char *file, const char *json)
{
    char p[512];
    snprintf(p, sizeof p, "%s/tenants/%s", g_dir, file);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/xf-test-tlsc-XXXXXX");
    if (!mkdtemp(g_dir) || psa_crypto_init() != PSA_SUCCESS) return -1;
    sh("mkdir '%s/tenants'", g_dir);
    mkcert("hosting.example");
    mkcert("own.example");
    mkcert("remote.example");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sh("rm -rf '%s'", g_dir);
    return 0;
}

/* Two byte queues between the client and the server. */
struct pipe {
    unsigned char b[65536];
    size_t n;
};
struct end {
    struct pipe *in, *out;
};

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct end *e = ctx;
    if (len > sizeof e->out->b - e->out->n) len = sizeof e->out->b - e->out->n;
    if (len == 0) return MBEDTLS_ERR_SSL_WANT_WRITE;
    memcpy(e->out->b + e->out->n, buf, len);
    e->out->n += len;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct end *e = ctx;
    if (e->in->n == 0) return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > e->in->n) len = e->in->n;
    memcpy(buf, e->in->b, len);
    memmove(e->in->b, e->in->b + len, e->in->n - len);
    e->in->n -= len;
    return (int)len;
}

/* Handshake client conf `cc` against a server presenting remote.example that requests a
   client certificate; returns the DER of the certificate the server received (copied
   into out, length in *outlen). */
static void handshake(const mbedtls_ssl_config *cc, unsigned char *out, size_t *outlen)
{
    char p[512];
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config sc;
    mbedtls_x509_crt scrt;
    mbedtls_pk_context skey;
    mbedtls_ssl_context cs, ss;
    static struct pipe c2s, s2c;
    struct end ce = { &s2c, &c2s }, se = { &c2s, &s2c };
    c2s.n = s2c.n = 0;

    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_ssl_config_init(&sc);
    mbedtls_x509_crt_init(&scrt);
    mbedtls_pk_init(&skey);
    mbedtls_ssl_init(&cs);
    mbedtls_ssl_init(&ss);
    assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
    snprintf(p, sizeof p, "%s/remote.example.crt", g_dir);
    assert_int_equal(mbedtls_x509_crt_parse_file(&scrt, p), 0);
    snprintf(p, sizeof p, "%s/remote.example.key", g_dir);
    assert_int_equal(mbedtls_pk_parse_keyfile(&skey, p, NULL, mbedtls_ctr_drbg_random, &drbg), 0);
    assert_int_equal(mbedtls_ssl_config_defaults(&sc, MBEDTLS_SSL_IS_SERVER,
                                                 MBEDTLS_SSL_TRANSPORT_STREAM,
                                                 MBEDTLS_SSL_PRESET_DEFAULT), 0);
    mbedtls_ssl_conf_rng(&sc, mbedtls_ctr_drbg_random, &drbg);
    xf_tls_apply_policy(&sc);
    mbedtls_ssl_conf_authmode(&sc, MBEDTLS_SSL_VERIFY_OPTIONAL);
    mbedtls_ssl_conf_ca_chain(&sc, &scrt, NULL);   /* any CA: the request is what counts */
    assert_int_equal(mbedtls_ssl_conf_own_cert(&sc, &scrt, &skey), 0);

    assert_int_equal(mbedtls_ssl_setup(&cs, cc), 0);
    assert_int_equal(mbedtls_ssl_set_hostname(&cs, "remote.example"), 0);
    assert_int_equal(mbedtls_ssl_setup(&ss, &sc), 0);
    mbedtls_ssl_set_bio(&cs, &ce, bio_send, bio_recv, NULL);
    mbedtls_ssl_set_bio(&ss, &se, bio_send, bio_recv, NULL);
    int rc = 1, rs = 1;
    for (int i = 0; i < 200 && (rc != 0 || rs != 0); i++) {
        if (rc != 0) {
            rc = mbedtls_ssl_handshake(&cs);
            if (rc != 0 && rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
                fail_msg("client handshake: -0x%04x", (unsigned)-rc);
        }
        if (rs != 0) {
            rs = mbedtls_ssl_handshake(&ss);
            if (rs != 0 && rs != MBEDTLS_ERR_SSL_WANT_READ && rs != MBEDTLS_ERR_SSL_WANT_WRITE)
                fail_msg("server handshake: -0x%04x", (unsigned)-rs);
        }
    }
    assert_int_equal(rc, 0);
    assert_int_equal(rs, 0);
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&ss);
    assert_non_null(peer);
    assert_true(peer->raw.len <= 4096);
    memcpy(out, peer->raw.p, peer->raw.len);
    *outlen = peer->raw.len;

    mbedtls_ssl_free(&cs);
    mbedtls_ssl_free(&ss);
    mbedtls_ssl_config_free(&sc);
    mbedtls_x509_crt_free(&scrt);
    mbedtls_pk_free(&skey);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
}

static void test_client_certificate(void **state)
{
    (void)state;
    char err[1024] = "", hc[400], hk[400], tdir[300];
    xf_registry *r = NULL;
    xf_tls_client *tc = NULL;
    snprintf(hc, sizeof hc, "%s/hosting.example.crt", g_dir);
    snprintf(hk, sizeof hk, "%s/hosting.example.key", g_dir);
    snprintf(tdir, sizeof tdir, "%s/tenants", g_dir);
    put("own.json", "{\"domain\": \"own.example\", \"certificate\": \"../own.example.crt\", "
                    "\"key\": \"../own.example.key\", \"s2s_backend\": \"127.0.0.1:1\"}");
    put("shared.json", "{\"domain\": \"shared.example\", \"s2s_backend\": \"127.0.0.1:1\"}");
    const xf_hosting_spec hs = { "/etc/main.json", "hosting.example", hc, hk, NULL, NULL };
    int rc = xf_registry_load(tdir, &hs, &r, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(xf_tls_client_init(&tc, r, NULL, err, sizeof err), 0);

    const xf_tenant *own = xf_registry_find(r, "own.example");
    const xf_tenant *shared = xf_registry_find(r, "shared.example");
    const xf_tenant *host = xf_registry_hosting(r);
    static unsigned char got[4096];
    size_t n = 0;
    for (int direct = 0; direct < 2; direct++) {
        handshake(xf_tls_client_config(tc, shared, direct), got, &n);
        assert_int_equal(n, host->chain.raw.len);
        assert_memory_equal(got, host->chain.raw.p, n);
        handshake(xf_tls_client_config(tc, own, direct), got, &n);
        assert_int_equal(n, own->chain.raw.len);
        assert_memory_equal(got, own->chain.raw.p, n);
    }
    /* The hosting identity itself is not a tenant: no client configuration. */
    assert_null(xf_tls_client_config(tc, host, 0));
    xf_tls_client_free(tc);
    xf_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_certificate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
