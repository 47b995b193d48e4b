/*
 * cred: the shared certificate chain + private key pairs of the tenant records.
 *
 * Contracts (cred.h is the interface, private to tenants/):
 *  - a pair is keyed by the SHA-256 of its files' bytes, refcounted, and shared by
 *    every tenant record of every registry in the process that loads the same bytes;
 *    a record holds one reference per pair (xf_cred_load) and drops it once
 *    (xf_cred_release, from xf_tenant_free).
 *  - errors are -1 with "FILE: KEY: what is wrong" written through the xf_jconf the
 *    caller passes (KEY = the certificate or key member the pair came from).
 *  - any thread: the table and the refcounts are guarded by one mutex; the parsed
 *    mbedTLS objects are read-only once published.
 *  - a chain is refused when its TLS Certificate message would not fit in this
 *    build's TLS output buffer (xf_cred_cert_msg_len): mbedTLS does not fragment
 *    handshake messages, so such a tenant would fail every handshake.
 */
#include "tenants/cred.h"
#include "certs/identity.h"
#include "tenants/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <psa/crypto.h>

/* A parsed certificate chain + private key, shared by every tenant record (of any
   registry in the process) whose files hold the same bytes: keyed by the SHA-256 of
   both files' contents, never by path or stat data. A reload re-reads every file (a few
   microseconds each) but parses and checks a pair (~0.6 ms of scalar multiplications
   for P-256) only when its bytes are new; the previous snapshot keeps its pairs alive
   while the next one is built, so an unchanged pair is found here. Content, not
   (inode, size, mtime): an in-place rewrite of equal size within one tick of the
   kernel's coarse file-time clock leaves all of those equal, and a certbot renewal or a
   Kubernetes "..data" swap changes the path's target, which reading through the
   symlinks follows by itself.

   Threads: the table and every refcount are guarded by g_cred_lock (a reload builds on
   a pool thread while workers drop old snapshots, each dropping its references). The
   mbedTLS objects are read-only once published, and were already used by all workers
   at once (x509_crt reads; ECDSA signing reads the key and the curve's static tables;
   an RSA key's blinding state has its own mutex under MBEDTLS_THREADING_C). The tenant
   records hold shallow copies of the head structures (registry.h: never freed through
   the tenant). */

struct xf_cred {
    struct xf_cred *next;              /* bucket chain */
    unsigned char digest[32];
    size_t refs;                       /* guarded by g_cred_lock */
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
};

#define CRED_BUCKETS 4096u             /* chains of ~2.5 at 10,000 pairs */
#define CRED_FILE_MAX (4u << 20)
static pthread_mutex_t g_cred_lock = PTHREAD_MUTEX_INITIALIZER;
static struct xf_cred *g_cred[CRED_BUCKETS];
static size_t g_cred_n, g_cred_parsed;

size_t xf_registry_shared_pairs(size_t *parsed)
{
    pthread_mutex_lock(&g_cred_lock);
    size_t n = g_cred_n;
    if (parsed) *parsed = g_cred_parsed;
    pthread_mutex_unlock(&g_cred_lock);
    return n;
}

static struct xf_cred **cred_slot(const unsigned char *digest)
{
    unsigned b = ((unsigned)digest[0] << 8 | digest[1]) % CRED_BUCKETS;
    struct xf_cred **pp = &g_cred[b];
    while (*pp && memcmp((*pp)->digest, digest, 32) != 0) pp = &(*pp)->next;
    return pp;
}

void xf_cred_release(struct xf_cred *c)
{
    if (!c) return;
    pthread_mutex_lock(&g_cred_lock);
    int last = --c->refs == 0;
    if (last) {
        *cred_slot(c->digest) = c->next;
        g_cred_n--;
    }
    pthread_mutex_unlock(&g_cred_lock);
    if (!last) return;
    mbedtls_x509_crt_free(&c->chain);
    mbedtls_pk_free(&c->key);
    free(c);
}

/* The whole file into a NUL-terminated buffer (PEM parsers want the NUL counted).
   Returns 0, or an errno value (EFBIG beyond CRED_FILE_MAX). */
static int read_whole(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    int e = 0;
    *buf = NULL;
    if (!f) return errno ? errno : EIO;
    if (fstat(fileno(f), &st) != 0) e = errno ? errno : EIO;
    else if (st.st_size < 0 || (size_t)st.st_size > CRED_FILE_MAX) e = EFBIG;
    else if (!(*buf = malloc((size_t)st.st_size + 1))) e = ENOMEM;
    else if ((*len = fread(*buf, 1, (size_t)st.st_size, f)) != (size_t)st.st_size ||
             getc(f) != EOF)
        e = ferror(f) ? EIO : EAGAIN;  /* changed while read: the watcher reloads again */
    fclose(f);
    if (e) {
        free(*buf);
        *buf = NULL;
        return e;
    }
    (*buf)[*len] = '\0';
    return 0;
}

/* Parse cert (PEM or DER, NUL-terminated) and key, check that they pair: a new
   credential with refs = 1, or -1 with the error. */
static int cred_parse(const xf_jconf *p, const char *ckey, const char *kkey,
                      const char *cert_path, const char *key_path,
                      const unsigned char *cb, size_t cl, const unsigned char *kb, size_t kl,
                      struct xf_cred **out)
{
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    char ebuf[160];
    int ret, rc = -1;
    struct xf_cred *c = calloc(1, sizeof *c);

    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    if (!c) {
        xf_jconf_fail(p, ckey, "out of memory");
        goto fail;
    }
    mbedtls_x509_crt_init(&c->chain);
    mbedtls_pk_init(&c->key);
    c->refs = 1;
    if ((ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent,
                                     (const unsigned char *)"xf-registry", 11)) != 0) {
        xf_jconf_fail(p, kkey, "RNG seed failed (-0x%04x)", (unsigned)-ret);
        goto fail;
    }
    /* As mbedtls_x509_crt_parse_file / mbedtls_pk_parse_keyfile: the PEM text with its
       terminating NUL. */
    if ((ret = mbedtls_x509_crt_parse(&c->chain, cb, cl + 1)) != 0) {
        if (ret > 0) snprintf(ebuf, sizeof ebuf, "%d certificate(s) could not be parsed", ret);
        else mbedtls_strerror(ret, ebuf, sizeof ebuf);
        xf_jconf_fail(p, ckey, "%s: %s", cert_path, ebuf);
        goto fail;
    }
    if ((ret = mbedtls_pk_parse_key(&c->key, kb, kl + 1, NULL, 0,
                                    mbedtls_ctr_drbg_random, &drbg)) != 0) {
        mbedtls_strerror(ret, ebuf, sizeof ebuf);
        xf_jconf_fail(p, kkey, "%s: %s", key_path, ebuf);
        goto fail;
    }
    if ((ret = mbedtls_pk_check_pair(&c->chain.pk, &c->key, mbedtls_ctr_drbg_random,
                                     &drbg)) != 0) {
        xf_jconf_fail(p, kkey, "%s does not match the certificate %s", key_path, cert_path);
        goto fail;
    }
    *out = c;
    c = NULL;
    rc = 0;
fail:
    if (c) {
        mbedtls_x509_crt_free(&c->chain);
        mbedtls_pk_free(&c->key);
        free(c);
    }
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
    return rc;
}

/* cred.h. The pair is found by the digest of its bytes; only bytes not seen before
   are parsed and checked (cred_parse), outside the lock. */
int xf_cred_load(const xf_jconf *p, const char *ckey, const char *kkey,
                 const char *cert_path, const char *key_path, const char *name,
                 const char *what, struct xf_cred **cred, mbedtls_x509_crt *chain,
                 mbedtls_pk_context *key)
{
    unsigned char *cb = NULL, *kb = NULL, digest[32];
    size_t cl = 0, kl = 0;
    struct xf_cred *c = NULL;
    int e, rc = -1;

    if (psa_crypto_init() != PSA_SUCCESS) {
        xf_jconf_fail(p, kkey, "PSA crypto initialisation failed");
        goto fail;
    }
    /* mbedTLS says only "Read/write of file failed" for a file it cannot open: name
       the reason (after a privilege drop, a reload reads as the dropped user). */
    const char *unreadable = access(cert_path, R_OK) != 0 ? cert_path
                             : access(key_path, R_OK) != 0 ? key_path : NULL;
    if (unreadable != NULL) {
        xf_jconf_fail(p, unreadable == cert_path ? ckey : kkey, "%s: cannot be read: %s",
                      unreadable, strerror(errno));
        goto fail;
    }
    if ((e = read_whole(cert_path, &cb, &cl)) != 0) {
        xf_jconf_fail(p, ckey, "%s: cannot be read: %s", cert_path,
                      e == EAGAIN ? "changed while being read" : strerror(e));
        goto fail;
    }
    if ((e = read_whole(key_path, &kb, &kl)) != 0) {
        xf_jconf_fail(p, kkey, "%s: cannot be read: %s", key_path,
                      e == EAGAIN ? "changed while being read" : strerror(e));
        goto fail;
    }
    /* SHA-256 over len(cert) || cert || key: no two different pairs share a digest. */
    {
        unsigned char lenb[8];
        for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)cl >> (8 * i));
        mbedtls_sha256_context h;
        mbedtls_sha256_init(&h);
        if (mbedtls_sha256_starts(&h, 0) || mbedtls_sha256_update(&h, lenb, 8) ||
            mbedtls_sha256_update(&h, cb, cl) || mbedtls_sha256_update(&h, kb, kl) ||
            mbedtls_sha256_finish(&h, digest)) {
            mbedtls_sha256_free(&h);
            xf_jconf_fail(p, kkey, "SHA-256 failed");
            goto fail;
        }
        mbedtls_sha256_free(&h);
    }
    pthread_mutex_lock(&g_cred_lock);
    if ((c = *cred_slot(digest)) != NULL) c->refs++;
    pthread_mutex_unlock(&g_cred_lock);
    if (!c) {
        struct xf_cred *n = NULL;
        if (cred_parse(p, ckey, kkey, cert_path, key_path, cb, cl, kb, kl, &n) < 0)
            goto fail;
        memcpy(n->digest, digest, sizeof digest);
        pthread_mutex_lock(&g_cred_lock);
        struct xf_cred **slot = cred_slot(digest);
        g_cred_parsed++;
        if ((c = *slot) != NULL) {     /* another thread parsed the same bytes meanwhile */
            c->refs++;
        } else {
            *slot = c = n;
            n = NULL;
            g_cred_n++;
        }
        pthread_mutex_unlock(&g_cred_lock);
        if (n) {
            mbedtls_x509_crt_free(&n->chain);
            mbedtls_pk_free(&n->key);
            free(n);
        }
    }
    if (!xf_identity_covers_dns(&c->chain, name)) {
        xf_jconf_fail(p, ckey, "%s does not cover the %s %s", cert_path, what, name);
        xf_cred_release(c);
        goto fail;
    }
    if (xf_cred_check_msg_len(p, ckey, cert_path, &c->chain, XF_CRED_TLS_OUT_LEN) < 0) {
        xf_cred_release(c);
        goto fail;
    }
    *cred = c;
    *chain = c->chain;                 /* shallow, read-only views (registry.h) */
    *key = c->key;
    rc = 0;
fail:
    free(cb);
    if (kb) {
        mbedtls_platform_zeroize(kb, kl);
        free(kb);
    }
    return rc;
}

/* cred.h. RFC 8446 §4.4.2: Certificate = certificate_request_context<0..2^8-1> +
   certificate_list<0..2^24-1> of CertificateEntry { cert_data<1..2^24-1>,
   extensions<0..2^16-1> }, the context empty (from a server always; from a client
   too, RFC 8446 §4.3.2 sets one only for post-handshake authentication, which mbedTLS
   does not do) and no extensions. RFC 5246 §7.4.2: certificate_list<0..2^24-1> of
   ASN.1Cert<1..2^24-1>. Both behind the 4-byte handshake header (RFC 8446 §4, RFC
   5246 §7.4); mbedTLS checks exactly these sums against MBEDTLS_SSL_OUT_CONTENT_LEN
   (ssl_tls13_write_certificate_body, mbedtls_ssl_write_certificate). */
size_t xf_cred_cert_msg_len(const mbedtls_x509_crt *chain)
{
    size_t tls13 = 4 + 1 + 3, tls12 = 4 + 3;
    for (const mbedtls_x509_crt *c = chain; c && c->raw.p; c = c->next) {
        tls13 += 3 + c->raw.len + 2;
        tls12 += 3 + c->raw.len;
    }
    return tls13 > tls12 ? tls13 : tls12;
}

int xf_cred_check_msg_len(const xf_jconf *p, const char *ckey, const char *cert_path,
                          const mbedtls_x509_crt *chain, size_t limit)
{
    size_t need = xf_cred_cert_msg_len(chain);
    if (need <= limit) return 0;
    return xf_jconf_fail(p, ckey, "%s: chain needs a %zu-byte TLS Certificate message, "
                         "over this build's %zu-byte TLS output buffer "
                         "(MBEDTLS_SSL_OUT_CONTENT_LEN; docs/build.md)", cert_path, need,
                         limit);
}
