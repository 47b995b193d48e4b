/* tickets: see tickets.h. */
#include "proxy/tickets.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>
#include <psa/crypto.h>

#define NAME_LEN 16
#define NONCE_LEN 12
#define TAG_LEN 16
#define KEY_LEN 32
#define HDR_LEN 11                      /* format, tls_version, issued ms */
#define FORMAT 1
#define LABEL "xmppfront session ticket"
/* A ticket issued by an instance whose clock is ahead is accepted this much early. */
#define FUTURE_SKEW_MS 60000

struct xf_tickets {
    int enabled;
    unsigned rotation_s;
    char *key_file;                     /* resolved path, or NULL */
    unsigned char *secret;              /* set by xf_tickets_load / xf_tickets_new */
    size_t secret_len;
    uint64_t gen;                       /* unique per loaded secret: the cache key */
};

static uint64_t g_gen;                  /* atomic */

/* ------------------------------------------------------------------ settings */

static const char *const keys[] = { "key_file", "rotation_s", NULL };

int xf_tickets_parse(const xf_jconf *p, yajl_val v, xf_tickets **out)
{
    xf_tickets *t = calloc(1, sizeof(*t));
    *out = NULL;
    if (t == NULL)
        return xf_jconf_fail(p, "session_tickets", "out of memory");
    t->enabled = 1;
    t->rotation_s = XF_TICKETS_ROTATION_DEFAULT;
    if (v == NULL || YAJL_IS_TRUE(v)) {
        *out = t;
        return 0;
    }
    if (YAJL_IS_FALSE(v)) {
        t->enabled = 0;
        *out = t;
        return 0;
    }
    const char *s = NULL;
    if (!YAJL_IS_OBJECT(v)) {
        xf_jconf_fail(p, "session_tickets", "must be a boolean or an object, not %s",
                      xf_jconf_type_name(v));
        goto fail;
    }
    if (xf_jconf_check_keys(p, v, "session_tickets.", keys) < 0 ||
        xf_jconf_get_uint(p, v, "rotation_s", "session_tickets.rotation_s",
                          XF_TICKETS_ROTATION_MIN, XF_TICKETS_ROTATION_MAX, &t->rotation_s) < 0 ||
        xf_jconf_get_str(p, v, "key_file", "session_tickets.key_file", &s) < 0)
        goto fail;
    if (s != NULL) {
        if (*s == '\0') {
            xf_jconf_fail(p, "session_tickets.key_file", "must not be empty");
            goto fail;
        }
        if ((t->key_file = xf_jconf_resolve_path(p->file, s)) == NULL) {
            xf_jconf_fail(p, "session_tickets.key_file", "out of memory");
            goto fail;
        }
    }
    *out = t;
    return 0;
fail:
    xf_tickets_free(t);
    return -1;
}

/* The random secret: 32 bytes from getrandom(2), once per process, so that tickets
   survive a reload (not a restart or a binary upgrade: use key_file for that). */
static unsigned char g_random[32];
static int g_random_ok;
static void make_random(void)
{
    size_t got = 0;
    while (got < sizeof(g_random)) {
        ssize_t r = getrandom(g_random + got, sizeof(g_random) - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        got += (size_t)r;
    }
    g_random_ok = 1;
}

static int set_secret(xf_tickets *t, const unsigned char *s, size_t n)
{
    if ((t->secret = malloc(n)) == NULL)
        return -1;
    memcpy(t->secret, s, n);
    t->secret_len = n;
    t->gen = __atomic_add_fetch(&g_gen, 1, __ATOMIC_RELAXED);
    return 0;
}

int xf_tickets_load(const xf_jconf *p, xf_tickets *t)
{
    const char *key = "session_tickets.key_file";
    if (t == NULL || !t->enabled)
        return 0;
    if (t->key_file == NULL) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, make_random);
        if (!g_random_ok)
            return xf_jconf_fail(p, "session_tickets", "no randomness for a ticket secret");
        if (set_secret(t, g_random, sizeof(g_random)) < 0)
            return xf_jconf_fail(p, "session_tickets", "out of memory");
        return 0;
    }
    /* The same checks as federation.dialback_secret_file (proxy/config.c). */
    const char *path = t->key_file;
    unsigned char buf[XF_TICKETS_SECRET_MAX + 1];
    struct stat st;
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return xf_jconf_fail(p, key, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        xf_jconf_fail(p, key, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        xf_jconf_fail(p, key, "%s: is accessible by all users (mode %04o); chmod o-rwx it",
                      path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            xf_jconf_fail(p, key, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0 || (n += (size_t)r) == sizeof(buf))
            break;
    }
    if (n > XF_TICKETS_SECRET_MAX) {
        xf_jconf_fail(p, key, "%s: larger than %u bytes", path, XF_TICKETS_SECRET_MAX);
        goto out;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                 buf[n - 1] == '\t'))
        n--;
    if (n < XF_TICKETS_SECRET_MIN) {
        xf_jconf_fail(p, key, "%s: %zu bytes of secret, at least %u needed (e.g. "
                      "openssl rand -base64 48)", path, n, XF_TICKETS_SECRET_MIN);
        goto out;
    }
    if (set_secret(t, buf, n) < 0) {
        xf_jconf_fail(p, key, "out of memory");
        goto out;
    }
    rc = 0;
out:
    mbedtls_platform_zeroize(buf, sizeof(buf));
    close(fd);
    return rc;
}

xf_tickets *xf_tickets_new(const unsigned char *secret, size_t len, unsigned rotation_s)
{
    xf_tickets *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->enabled = 1;
    t->rotation_s = rotation_s;
    if (rotation_s == 0 || set_secret(t, secret, len) < 0) {
        free(t);
        return NULL;
    }
    return t;
}

void xf_tickets_free(xf_tickets *t)
{
    if (t == NULL)
        return;
    if (t->secret) {
        mbedtls_platform_zeroize(t->secret, t->secret_len);
        free(t->secret);
    }
    free(t->key_file);
    free(t);
}

int xf_tickets_enabled(const xf_tickets *t) { return t != NULL && t->enabled; }
const char *xf_tickets_key_file(const xf_tickets *t) { return t ? t->key_file : NULL; }
unsigned xf_tickets_rotation(const xf_tickets *t) { return t ? t->rotation_s : 0; }

int xf_tickets_same(const xf_tickets *a, const xf_tickets *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a->enabled != b->enabled || a->rotation_s != b->rotation_s ||
        (a->key_file == NULL) != (b->key_file == NULL) ||
        (a->key_file && strcmp(a->key_file, b->key_file) != 0) ||
        a->secret_len != b->secret_len)
        return 0;
    return a->secret_len == 0 || memcmp(a->secret, b->secret, a->secret_len) == 0;
}

/* ------------------------------------------------------------------ keys */

typedef struct period_key {
    uint64_t gen;                       /* 0 = empty slot */
    int64_t period;
    unsigned char name[NAME_LEN];
    unsigned char key[KEY_LEN];
} period_key;

/* Two slots per thread: the current and the previous period of the snapshot in use. */
static _Thread_local period_key cache[2];
static _Thread_local unsigned cache_next;

static const period_key *derive(const xf_tickets *t, int64_t period)
{
    for (int i = 0; i < 2; i++)
        if (cache[i].gen == t->gen && cache[i].period == period)
            return &cache[i];
    unsigned char info[sizeof(LABEL) - 1 + 8], okm[NAME_LEN + KEY_LEN];
    memcpy(info, LABEL, sizeof(LABEL) - 1);
    for (int i = 0; i < 8; i++)
        info[sizeof(LABEL) - 1 + i] = (unsigned char)((uint64_t)period >> (56 - 8 * i));
    if (mbedtls_hkdf(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), NULL, 0, t->secret,
                     t->secret_len, info, sizeof(info), okm, sizeof(okm)) != 0)
        return NULL;
    period_key *k = &cache[cache_next++ & 1];
    k->gen = t->gen;
    k->period = period;
    memcpy(k->name, okm, NAME_LEN);
    memcpy(k->key, okm + NAME_LEN, KEY_LEN);
    mbedtls_platform_zeroize(okm, sizeof(okm));
    return k;
}

static int64_t period_of(const xf_tickets *t, int64_t ms)
{
    int64_t s = ms / 1000, r = (int64_t)t->rotation_s;
    return s >= 0 ? s / r : -((-s + r - 1) / r);
}

/* AAD = key name || len || name. */
static size_t make_aad(unsigned char *aad, const unsigned char *kname, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n > 255)
        n = 255;
    memcpy(aad, kname, NAME_LEN);
    aad[NAME_LEN] = (unsigned char)n;
    if (n)
        memcpy(aad + NAME_LEN + 1, name, n);
    return NAME_LEN + 1 + n;
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* ------------------------------------------------------------------ seal / open */

int xf_tickets_seal(const xf_tickets_ctx *ctx, const mbedtls_ssl_session *session,
                    unsigned char *start, const unsigned char *end, size_t *tlen,
                    uint32_t *lifetime)
{
    *tlen = 0;
    *lifetime = 0;
    if (end < start)
        return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
    size_t avail = (size_t)(end - start);
    if (ctx->refuse || !xf_tickets_enabled(ctx->keys) || ctx->keys->secret == NULL) {
        if (ctx->tls_version != MBEDTLS_SSL_VERSION_TLS1_3)
            return MBEDTLS_ERR_SSL_FEATURE_UNAVAILABLE;
        if (avail < 32 || psa_generate_random(start, 32) != PSA_SUCCESS)
            return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
        *tlen = 32;
        return 0;
    }
    if (avail < XF_TICKETS_OVERHEAD)
        return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
    const period_key *k = derive(ctx->keys, period_of(ctx->keys, ctx->now_ms));
    if (k == NULL)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    unsigned char *nonce = start + NAME_LEN, *pt = nonce + NONCE_LEN;
    size_t slen = 0;
    int r = mbedtls_ssl_session_save(session, pt + HDR_LEN,
                                     avail - XF_TICKETS_OVERHEAD, &slen);
    if (r != 0)
        return r;
    pt[0] = FORMAT;
    put_be(pt + 1, (uint64_t)ctx->tls_version, 2);
    put_be(pt + 3, (uint64_t)ctx->now_ms, 8);
    memcpy(start, k->name, NAME_LEN);
    if (psa_generate_random(nonce, NONCE_LEN) != PSA_SUCCESS)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    unsigned char aad[NAME_LEN + 1 + 255];
    size_t alen = make_aad(aad, k->name, ctx->name);
    size_t ptlen = HDR_LEN + slen;
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    r = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, k->key, KEY_LEN * 8);
    if (r == 0)
        r = mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, ptlen, nonce, NONCE_LEN,
                                      aad, alen, pt, pt, TAG_LEN, pt + ptlen);
    mbedtls_gcm_free(&gcm);
    if (r != 0) {
        mbedtls_platform_zeroize(start, avail);
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    }
    *tlen = NAME_LEN + NONCE_LEN + ptlen + TAG_LEN;
    *lifetime = ctx->keys->rotation_s;
    return 0;
}

int xf_tickets_open(const xf_tickets_ctx *ctx, mbedtls_ssl_session *session,
                    unsigned char *buf, size_t len)
{
    if (ctx->refuse || !xf_tickets_enabled(ctx->keys) || ctx->keys->secret == NULL)
        return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
    if (len < XF_TICKETS_OVERHEAD || len > 0xffff)
        return MBEDTLS_ERR_SSL_INVALID_MAC;
    const xf_tickets *t = ctx->keys;
    int64_t now_p = period_of(t, ctx->now_ms);
    const period_key *k = NULL;
    int64_t p;
    for (p = now_p; p >= now_p - 1; p--) {
        k = derive(t, p);
        if (k == NULL)
            return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
        if (memcmp(k->name, buf, NAME_LEN) == 0)
            break;
        k = NULL;
    }
    if (k == NULL)                      /* another secret, or an older period */
        return MBEDTLS_ERR_SSL_INVALID_MAC;
    unsigned char *nonce = buf + NAME_LEN, *ct = nonce + NONCE_LEN;
    size_t ctlen = len - NAME_LEN - NONCE_LEN - TAG_LEN;
    unsigned char aad[NAME_LEN + 1 + 255];
    size_t alen = make_aad(aad, k->name, ctx->name);
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    int r = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, k->key, KEY_LEN * 8);
    if (r == 0)
        r = mbedtls_gcm_auth_decrypt(&gcm, ctlen, nonce, NONCE_LEN, aad, alen,
                                     ct + ctlen, TAG_LEN, ct, ct);
    mbedtls_gcm_free(&gcm);
    if (r != 0)
        return MBEDTLS_ERR_SSL_INVALID_MAC;
    /* Authentic: written by a holder of the secret. Still checked field by field. */
    r = MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
    if (ct[0] != FORMAT || (int)get_be(ct + 1, 2) != ctx->tls_version)
        goto out;
    int64_t issued = (int64_t)get_be(ct + 3, 8);
    int64_t age = ctx->now_ms - issued;
    if (period_of(t, issued) != p)
        goto out;
    if (age < -FUTURE_SKEW_MS || age > (int64_t)t->rotation_s * 1000) {
        r = MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
        goto out;
    }
    r = mbedtls_ssl_session_load(session, ct + HDR_LEN, ctlen - HDR_LEN);
    if (r != 0) {
        r = MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
        goto out;
    }
    if ((int)session->MBEDTLS_PRIVATE(tls_version) != ctx->tls_version ||
        session->MBEDTLS_PRIVATE(endpoint) != MBEDTLS_SSL_IS_SERVER) {
        r = MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
        goto out;
    }
#if defined(MBEDTLS_SSL_PROTO_TLS1_3) && defined(MBEDTLS_HAVE_TIME)
    if (ctx->tls_version == MBEDTLS_SSL_VERSION_TLS1_3) {
        /* psk_dhe_ke only (RFC 8446 §4.2.9): a ticket of a client that offered only
           psk_ke would never resume here. */
        if (!(session->MBEDTLS_PRIVATE(ticket_flags) &
              MBEDTLS_SSL_TLS1_3_TICKET_ALLOW_PSK_EPHEMERAL_RESUMPTION)) {
            r = MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
            goto out;
        }
        /* mbedTLS checks the client's ticket age against now - ticket_creation_time
           (RFC 8446 §4.2.10), both on CLOCK_BOOTTIME: re-base on this host's clock. */
        session->MBEDTLS_PRIVATE(ticket_creation_time) =
            mbedtls_ms_time() - (age > 0 ? age : 0);
    }
#endif
    r = 0;
out:
    if (r != 0)
        mbedtls_platform_zeroize(ct, ctlen);
    return r;
}
