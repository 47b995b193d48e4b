/*
 * proxy/tickets.c: the sealed session ticket (round trip for TLS 1.2 and 1.3 sessions),
 * the tenant binding (AAD = key name + name), the period keys (current and previous
 * accepted, older refused, the advertised lifetime enforced), tampering, the key file
 * (checks, shared by instances, a change invalidates old tickets), the refusal mode
 * where a client certificate is asked for, and the "session_tickets" settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <psa/crypto.h>
#include "proxy/tickets.h"

#define HOUR_MS 3600000LL
/* A period boundary: 2026-12-01T17:00:00Z (divisible by 3600 s). */
#define T0 (1796144400LL * 1000)

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-test-secret";

static int setup(void **state)
{
    (void)state;
    return psa_crypto_init() == PSA_SUCCESS ? 0 : -1;
}

/* A server-side session as mbedTLS would hand to the write callback. */
static void make_session(mbedtls_ssl_session *s, int version)
{
    mbedtls_ssl_session_init(s);
    s->MBEDTLS_PRIVATE(endpoint) = MBEDTLS_SSL_IS_SERVER;
    s->MBEDTLS_PRIVATE(tls_version) = (mbedtls_ssl_protocol_version)version;
    if (version == MBEDTLS_SSL_VERSION_TLS1_3) {
        s->MBEDTLS_PRIVATE(ciphersuite) = MBEDTLS_TLS1_3_AES_128_GCM_SHA256;
        s->MBEDTLS_PRIVATE(ticket_flags) =
            MBEDTLS_SSL_TLS1_3_TICKET_ALLOW_PSK_EPHEMERAL_RESUMPTION;
        s->MBEDTLS_PRIVATE(resumption_key_len) = 32;
        memset(s->MBEDTLS_PRIVATE(resumption_key), 0x5a, 32);
        s->MBEDTLS_PRIVATE(ticket_age_add) = 0x01020304;
    } else {
        s->MBEDTLS_PRIVATE(ciphersuite) = MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
        memset(s->MBEDTLS_PRIVATE(master), 0xa5, 48);
    }
}

typedef struct sealed {
    unsigned char buf[2048];
    size_t len;
    uint32_t lifetime;
} sealed;

static int seal(const xf_tickets *k, const char *name, int version, int64_t now, sealed *out)
{
    mbedtls_ssl_session s;
    make_session(&s, version);
    xf_tickets_ctx ctx = { k, name, version, 0, now };
    int r = xf_tickets_seal(&ctx, &s, out->buf, out->buf + sizeof(out->buf), &out->len,
                            &out->lifetime);
    mbedtls_ssl_session_free(&s);
    return r;
}

/* Open a copy (open decrypts in place). */
static int open_copy(const xf_tickets *k, const char *name, int version, int64_t now,
                     const sealed *in, mbedtls_ssl_session *s)
{
    unsigned char b[2048];
    memcpy(b, in->buf, in->len);
    xf_tickets_ctx ctx = { k, name, version, 0, now };
    mbedtls_ssl_session_init(s);
    int r = xf_tickets_open(&ctx, s, b, in->len);
    return r;
}

static int try_open(const xf_tickets *k, const char *name, int version, int64_t now,
                    const sealed *in)
{
    mbedtls_ssl_session s;
    int r = open_copy(k, name, version, now, in, &s);
    mbedtls_ssl_session_free(&s);
    return r;
}

static void round_trip_tls13(void **state)
{
    (void)state;
    xf_tickets *k = xf_tickets_new(secret, sizeof(secret) - 1, 3600);
    sealed t;
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 + 1000, &t), 0);
    assert_int_equal(t.lifetime, 3600);
    assert_true(t.len > XF_TICKETS_OVERHEAD);
    mbedtls_ssl_session s;
    assert_int_equal(open_copy(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 + 5000, &t, &s), 0);
    assert_int_equal(s.MBEDTLS_PRIVATE(tls_version), MBEDTLS_SSL_VERSION_TLS1_3);
    assert_int_equal(s.MBEDTLS_PRIVATE(resumption_key_len), 32);
    assert_int_equal(s.MBEDTLS_PRIVATE(resumption_key)[31], 0x5a);
    assert_int_equal(s.MBEDTLS_PRIVATE(ticket_age_add), 0x01020304);
    /* Re-based on this host's clock: 4 s old. */
    mbedtls_ms_time_t age = mbedtls_ms_time() - s.MBEDTLS_PRIVATE(ticket_creation_time);
    assert_true(age >= 4000 && age < 5000);
    mbedtls_ssl_session_free(&s);
    /* Two tickets of the same session differ (random nonce). */
    sealed u;
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 + 1000, &u), 0);
    assert_int_equal(u.len, t.len);
    assert_memory_not_equal(u.buf + 16, t.buf + 16, t.len - 16);
    assert_memory_equal(u.buf, t.buf, 16);         /* same period: same key name */
    xf_tickets_free(k);
}

static void round_trip_tls12(void **state)
{
    (void)state;
    xf_tickets *k = xf_tickets_new(secret, sizeof(secret) - 1, 3600);
    sealed t;
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2, T0 + 1000, &t), 0);
    mbedtls_ssl_session s;
    assert_int_equal(open_copy(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2, T0 + 2000, &t, &s), 0);
    assert_int_equal(s.MBEDTLS_PRIVATE(master)[47], 0xa5);
    assert_int_equal(s.MBEDTLS_PRIVATE(ciphersuite),
                     MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    mbedtls_ssl_session_free(&s);
    /* A TLS 1.2 ticket is no TLS 1.3 PSK, and the other way round. */
    assert_int_not_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 + 2000, &t), 0);
    sealed u;
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 + 1000, &u), 0);
    assert_int_not_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2, T0 + 2000, &u), 0);
    xf_tickets_free(k);
}

static void wrong_name_refused(void **state)
{
    (void)state;
    xf_tickets *k = xf_tickets_new(secret, sizeof(secret) - 1, 3600);
    sealed t, n;
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0, &t), 0);
    assert_int_equal(try_open(k, "b.example", MBEDTLS_SSL_VERSION_TLS1_3, T0, &t),
                     MBEDTLS_ERR_SSL_INVALID_MAC);
    assert_int_equal(try_open(k, "", MBEDTLS_SSL_VERSION_TLS1_3, T0, &t),
                     MBEDTLS_ERR_SSL_INVALID_MAC);
    assert_int_equal(try_open(k, "a.example.b", MBEDTLS_SSL_VERSION_TLS1_3, T0, &t),
                     MBEDTLS_ERR_SSL_INVALID_MAC);
    /* Issued without a name (no SNI, no `to`): opens only without a name. */
    assert_int_equal(seal(k, "", MBEDTLS_SSL_VERSION_TLS1_2, T0, &n), 0);
    assert_int_equal(try_open(k, "", MBEDTLS_SSL_VERSION_TLS1_2, T0, &n), 0);
    assert_int_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2, T0, &n),
                     MBEDTLS_ERR_SSL_INVALID_MAC);
    xf_tickets_free(k);
}

static void periods(void **state)
{
    (void)state;
    xf_tickets *k = xf_tickets_new(secret, sizeof(secret) - 1, 3600);
    sealed late, early;
    /* Issued 100 s before the end of a period, used 200 s into the next: previous key. */
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 - 100000, &late), 0);
    assert_int_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 + 200000, &late), 0);
    /* The same ticket two periods later: its key is gone. */
    assert_int_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3,
                              T0 + HOUR_MS + 200000, &late), MBEDTLS_ERR_SSL_INVALID_MAC);
    /* Issued at the start of a period: its key still opens in the next period, but the
       advertised lifetime (rotation_s) is over. */
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2, T0 + 10000, &early), 0);
    assert_int_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2,
                              T0 + HOUR_MS + 5000, &early), 0);
    assert_int_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2,
                              T0 + HOUR_MS + 20000, &early),
                     MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED);
    /* From the future (another instance's clock far ahead): refused; 30 s is tolerated. */
    sealed fut;
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2, T0 + 1800000, &fut), 0);
    assert_int_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2, T0 + 1770000, &fut), 0);
    assert_int_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2, T0 + 1000000, &fut),
                     MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED);
    xf_tickets_free(k);
}

/* The key name is HKDF-SHA256(secret, info = label || P)[0..16): the contract another
   instance (or another implementation) must follow to share tickets. */
static void key_derivation_contract(void **state)
{
    (void)state;
    xf_tickets *k = xf_tickets_new(secret, sizeof(secret) - 1, 3600);
    sealed t;
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 + 1000, &t), 0);
    uint64_t p = (uint64_t)(T0 / 1000 / 3600);
    unsigned char info[24 + 8], okm[48];
    memcpy(info, "xmppfront session ticket", 24);
    for (int i = 0; i < 8; i++)
        info[24 + i] = (unsigned char)(p >> (56 - 8 * i));
    assert_int_equal(mbedtls_hkdf(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), NULL, 0,
                                  secret, sizeof(secret) - 1, info, sizeof(info), okm,
                                  sizeof(okm)), 0);
    assert_memory_equal(t.buf, okm, 16);
    xf_tickets_free(k);
}

static void tampered_refused(void **state)
{
    (void)state;
    xf_tickets *k = xf_tickets_new(secret, sizeof(secret) - 1, 3600);
    sealed t;
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0, &t), 0);
    for (size_t i = 0; i < t.len; i++) {
        sealed c = t;
        c.buf[i] ^= 0x01;
        assert_int_not_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0, &c), 0);
    }
    sealed c = t;
    c.len--;                                        /* truncated */
    assert_int_not_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0, &c), 0);
    c.len = 10;
    assert_int_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0, &c),
                     MBEDTLS_ERR_SSL_INVALID_MAC);
    xf_tickets_free(k);
}

/* Where a client certificate is asked for: TLS 1.2 sends the empty ticket (RFC 5077
   §3.3), TLS 1.3 a lifetime-0 blob that never opens; nothing opens there. */
static void refuse_mode(void **state)
{
    (void)state;
    xf_tickets *k = xf_tickets_new(secret, sizeof(secret) - 1, 3600);
    mbedtls_ssl_session s;
    unsigned char b[512];
    size_t len;
    uint32_t life = 99;
    make_session(&s, MBEDTLS_SSL_VERSION_TLS1_2);
    xf_tickets_ctx ctx = { k, "a.example", MBEDTLS_SSL_VERSION_TLS1_2, 1, T0 };
    assert_int_equal(xf_tickets_seal(&ctx, &s, b, b + sizeof(b), &len, &life),
                     MBEDTLS_ERR_SSL_FEATURE_UNAVAILABLE);
    mbedtls_ssl_session_free(&s);
    make_session(&s, MBEDTLS_SSL_VERSION_TLS1_3);
    ctx.tls_version = MBEDTLS_SSL_VERSION_TLS1_3;
    assert_int_equal(xf_tickets_seal(&ctx, &s, b, b + sizeof(b), &len, &life), 0);
    assert_int_equal(len, 32);
    assert_int_equal(life, 0);
    mbedtls_ssl_session_free(&s);
    sealed t = { .len = len };
    memcpy(t.buf, b, len);
    assert_int_not_equal(try_open(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0, &t), 0);
    /* A real ticket is not accepted on such a connection either. */
    assert_int_equal(seal(k, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0, &t), 0);
    ctx.refuse = 1;
    mbedtls_ssl_session_init(&s);
    assert_int_not_equal(xf_tickets_open(&ctx, &s, t.buf, t.len), 0);
    mbedtls_ssl_session_free(&s);
    xf_tickets_free(k);
}

/* ---------------------------------------------------------------- settings, key file */

static char g_dir[64];

static xf_tickets *parse(const char *json, char *err, size_t errlen)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/xmppfront.json", g_dir);
    xf_jconf p = { path, err, errlen };
    yajl_val root = xf_jconf_parse_object(&p, json, strlen(json));
    assert_non_null(root);
    xf_tickets *t = NULL;
    int r = xf_tickets_parse(&p, xf_jconf_get(root, "session_tickets"), &t);
    yajl_tree_free(root);
    if (r == 0 && xf_tickets_load(&p, t) != 0) {
        xf_tickets_free(t);
        return NULL;
    }
    return r == 0 ? t : NULL;
}

static void write_key(const char *name, const char *text, mode_t mode)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", g_dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(p, mode), 0);
}

static void settings(void **state)
{
    (void)state;
    char err[512];
    snprintf(g_dir, sizeof(g_dir), "/tmp/xf-test-tickets.XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    xf_tickets *t = parse("{}", err, sizeof(err));
    assert_non_null(t);
    assert_true(xf_tickets_enabled(t));
    assert_int_equal(xf_tickets_rotation(t), 3600);
    assert_null(xf_tickets_key_file(t));
    xf_tickets *t2 = parse("{\"session_tickets\": true}", err, sizeof(err));
    assert_true(xf_tickets_same(t, t2));      /* the process's one random secret */
    xf_tickets_free(t2);
    xf_tickets_free(t);
    t = parse("{\"session_tickets\": false}", err, sizeof(err));
    assert_false(xf_tickets_enabled(t));
    xf_tickets_free(t);
    assert_null(parse("{\"session_tickets\": 1}", err, sizeof(err)));
    assert_non_null(strstr(err, "session_tickets: must be a boolean or an object"));
    assert_null(parse("{\"session_tickets\": {\"rotation_s\": 5}}", err, sizeof(err)));
    assert_non_null(strstr(err, "session_tickets.rotation_s"));
    assert_null(parse("{\"session_tickets\": {\"rotation_s\": 86401}}", err, sizeof(err)));
    assert_null(parse("{\"session_tickets\": {\"key\": \"x\"}}", err, sizeof(err)));
    assert_non_null(strstr(err, "session_tickets.key"));
    assert_null(parse("{\"session_tickets\": {\"key_file\": \"missing.key\"}}", err, sizeof(err)));
    assert_non_null(strstr(err, "session_tickets.key_file"));
    assert_non_null(strstr(err, "missing.key"));
}

static void key_file(void **state)
{
    (void)state;
    char err[512];
    const char *cfg = "{\"session_tickets\": {\"key_file\": \"t.key\", \"rotation_s\": 600}}";
    write_key("t.key", "short secret\n", 0600);
    assert_null(parse(cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "at least 32"));
    write_key("t.key", "Z3pQ8m1dK9vT2xR7bN4cF6hJ0sL5wE8yU3iO1aP2qM7nV9tR\n", 0644);
    assert_null(parse(cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "accessible by all users"));
    write_key("t.key", "Z3pQ8m1dK9vT2xR7bN4cF6hJ0sL5wE8yU3iO1aP2qM7nV9tR\n", 0600);
    xf_tickets *a = parse(cfg, err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(xf_tickets_rotation(a), 600);
    /* Another instance with the same file (trailing whitespace differs): same keys. */
    write_key("t.key", "Z3pQ8m1dK9vT2xR7bN4cF6hJ0sL5wE8yU3iO1aP2qM7nV9tR \r\n", 0640);
    xf_tickets *b = parse(cfg, err, sizeof(err));
    assert_non_null(b);
    assert_true(xf_tickets_same(a, b));
    sealed t;
    assert_int_equal(seal(a, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0, &t), 0);
    assert_int_equal(t.lifetime, 600);
    assert_int_equal(try_open(b, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 + 1000, &t), 0);
    /* The file changes (reload): the old tickets no longer open. */
    write_key("t.key", "another secret of more than thirty-two bytes....\n", 0600);
    xf_tickets *c = parse(cfg, err, sizeof(err));
    assert_non_null(c);
    assert_false(xf_tickets_same(a, c));
    assert_int_equal(try_open(c, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 + 1000, &t),
                     MBEDTLS_ERR_SSL_INVALID_MAC);
    /* The random secret is not the file's. */
    xf_tickets *r = parse("{}", err, sizeof(err));
    assert_int_equal(try_open(r, "a.example", MBEDTLS_SSL_VERSION_TLS1_3, T0 + 1000, &t),
                     MBEDTLS_ERR_SSL_INVALID_MAC);
    xf_tickets_free(a);
    xf_tickets_free(b);
    xf_tickets_free(c);
    xf_tickets_free(r);
    char p[128];
    snprintf(p, sizeof(p), "%s/t.key", g_dir);
    unlink(p);
    rmdir(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_tls13),
        cmocka_unit_test(round_trip_tls12),
        cmocka_unit_test(wrong_name_refused),
        cmocka_unit_test(periods),
        cmocka_unit_test(key_derivation_contract),
        cmocka_unit_test(tampered_refused),
        cmocka_unit_test(refuse_mode),
        cmocka_unit_test(settings),
        cmocka_unit_test(key_file),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
