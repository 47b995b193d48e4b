/*
 * mbedtls_heap: what one server-side mbedtls_ssl_context costs on the heap after a
 * TLS 1.3 handshake, and the handshake's CPU time, for whichever mbedTLS it is compiled
 * against (bench_mbedtls_src.sh builds it twice: Debian's libmbedtls-dev and the prefix of
 * deploy/build-mbedtls.sh). In memory, no sockets: client and server contexts exchange
 * records through two byte queues.
 *
 *   mbedtls_heap CERT.pem KEY.pem [CONNS] [ROUNDS]
 *
 * Prints one line of key=value: the mbedTLS version, MBEDTLS_SSL_OUT/IN_CONTENT_LEN,
 * heap bytes per idle server context (glibc mallinfo2 in-use bytes with CONNS server
 * contexts alive after their handshakes, client contexts freed, minus before), and
 * microseconds of CPU per full handshake (client + server, TLS 1.3, X25519, ECDSA P-256
 * as the certificate gives) over ROUNDS handshakes. A figure, never a test.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

typedef struct {
    unsigned char *d;
    size_t len, cap;
} queue;

typedef struct {
    queue *in, *out;
} pipe_end;

static int q_send(void *ctx, const unsigned char *buf, size_t len)
{
    queue *q = ((pipe_end *)ctx)->out;
    if (q->len + len > q->cap) {
        size_t cap = (q->len + len) * 2;
        unsigned char *n = realloc(q->d, cap);
        if (n == NULL)
            return MBEDTLS_ERR_SSL_ALLOC_FAILED;
        q->d = n;
        q->cap = cap;
    }
    memcpy(q->d + q->len, buf, len);
    q->len += len;
    return (int)len;
}

static int q_recv(void *ctx, unsigned char *buf, size_t len)
{
    queue *q = ((pipe_end *)ctx)->in;
    if (q->len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > q->len)
        len = q->len;
    memcpy(buf, q->d, len);
    memmove(q->d, q->d + len, q->len - len);
    q->len -= len;
    return (int)len;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One handshake between a fresh client context and *srv (set up already). 0 or error. */
static int handshake(mbedtls_ssl_context *srv, const mbedtls_ssl_config *ccfg, queue *c2s,
                     queue *s2c, pipe_end *sp, pipe_end *cp)
{
    mbedtls_ssl_context cli;
    mbedtls_ssl_init(&cli);
    int ret = mbedtls_ssl_setup(&cli, ccfg);
    if (ret == 0)
        ret = mbedtls_ssl_set_hostname(&cli, "a.example");
    c2s->len = s2c->len = 0;
    mbedtls_ssl_set_bio(srv, sp, q_send, q_recv, NULL);
    mbedtls_ssl_set_bio(&cli, cp, q_send, q_recv, NULL);
    for (int i = 0; ret == 0 && i < 100; i++) {
        int rc = mbedtls_ssl_handshake(&cli);
        int rs = mbedtls_ssl_handshake(srv);
        if (rc != 0 && rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
            ret = rc;
        else if (rs != 0 && rs != MBEDTLS_ERR_SSL_WANT_READ && rs != MBEDTLS_ERR_SSL_WANT_WRITE)
            ret = rs;
        else if (rc == 0 && rs == 0)
            break;
    }
    if (ret == 0 && !(mbedtls_ssl_is_handshake_over(srv) && mbedtls_ssl_is_handshake_over(&cli)))
        ret = -1;
    mbedtls_ssl_free(&cli);
    return ret;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CERT.pem KEY.pem [CONNS] [ROUNDS]\n", argv[0]);
        return 2;
    }
    int conns = argc > 3 ? atoi(argv[3]) : 200;
    int rounds = argc > 4 ? atoi(argv[4]) : 300;
    if (psa_crypto_init() != PSA_SUCCESS)
        return 1;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_ssl_config scfg, ccfg;
    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&key);
    mbedtls_ssl_config_init(&scfg);
    mbedtls_ssl_config_init(&ccfg);
    static const uint16_t groups[] = { MBEDTLS_SSL_IANA_TLS_GROUP_X25519, 0 };
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0) != 0 ||
        mbedtls_x509_crt_parse_file(&crt, argv[1]) != 0 ||
        mbedtls_pk_parse_keyfile(&key, argv[2], NULL, mbedtls_ctr_drbg_random, &drbg) != 0 ||
        mbedtls_ssl_config_defaults(&scfg, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0 ||
        mbedtls_ssl_config_defaults(&ccfg, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0 ||
        mbedtls_ssl_conf_own_cert(&scfg, &crt, &key) != 0) {
        fprintf(stderr, "mbedtls_heap: setup failed\n");
        return 1;
    }
    mbedtls_ssl_config *cfgs[] = { &scfg, &ccfg };
    for (int i = 0; i < 2; i++) {
        mbedtls_ssl_conf_rng(cfgs[i], mbedtls_ctr_drbg_random, &drbg);
        mbedtls_ssl_conf_min_tls_version(cfgs[i], MBEDTLS_SSL_VERSION_TLS1_3);
        mbedtls_ssl_conf_groups(cfgs[i], groups);
    }
    mbedtls_ssl_conf_authmode(&ccfg, MBEDTLS_SSL_VERIFY_NONE);
    mbedtls_ssl_conf_authmode(&scfg, MBEDTLS_SSL_VERIFY_NONE);
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    mbedtls_ssl_conf_session_tickets(&ccfg, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#endif

    queue c2s = { 0 }, s2c = { 0 };
    pipe_end sp = { &c2s, &s2c }, cp = { &s2c, &c2s };
    /* heap per idle server context */
    mbedtls_ssl_context *srv = calloc((size_t)conns, sizeof(*srv));
    if (srv == NULL)
        return 1;
    mbedtls_ssl_init(&srv[0]);                      /* warm-up: lazy allocations */
    int wret = mbedtls_ssl_setup(&srv[0], &scfg);
    if (wret == 0)
        wret = handshake(&srv[0], &ccfg, &c2s, &s2c, &sp, &cp);
    if (wret != 0) {
        /* e.g. -0x6a00 (BUFFER_TOO_SMALL): a chain longer than MBEDTLS_SSL_OUT_CONTENT_LEN */
        fprintf(stderr, "mbedtls_heap: handshake failed: -0x%04x\n", (unsigned)-wret);
        return 1;
    }
    mbedtls_ssl_free(&srv[0]);
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < conns; i++) {
        mbedtls_ssl_init(&srv[i]);
        int ret = mbedtls_ssl_setup(&srv[i], &scfg);
        if (ret == 0)
            ret = handshake(&srv[i], &ccfg, &c2s, &s2c, &sp, &cp);
        if (ret != 0) {
            fprintf(stderr, "mbedtls_heap: handshake failed: -0x%04x\n", (unsigned)-ret);
            return 1;
        }
    }
    size_t after = mallinfo2().uordblks;
    for (int i = 0; i < conns; i++)
        mbedtls_ssl_free(&srv[i]);
    /* CPU per handshake */
    double t0 = cpu_now();
    for (int i = 0; i < rounds; i++) {
        mbedtls_ssl_init(&srv[0]);
        if (mbedtls_ssl_setup(&srv[0], &scfg) != 0 ||
            handshake(&srv[0], &ccfg, &c2s, &s2c, &sp, &cp) != 0)
            return 1;
        mbedtls_ssl_free(&srv[0]);
    }
    double t1 = cpu_now();
    printf("mbedtls=%s out_content_len=%d in_content_len=%d use_psa=%d "
           "heap_per_ctx=%zu handshake_us=%.0f conns=%d rounds=%d\n",
           MBEDTLS_VERSION_STRING, MBEDTLS_SSL_OUT_CONTENT_LEN, MBEDTLS_SSL_IN_CONTENT_LEN,
#if defined(MBEDTLS_USE_PSA_CRYPTO)
           1,
#else
           0,
#endif
           (after - before) / (size_t)conns, (t1 - t0) / rounds * 1e6, conns, rounds);
    free(srv);
    free(c2s.d);
    free(s2c.d);
    return 0;
}
