/*
 * registry: tenant files -> an immutable registry shared read-only by worker threads.
 *
 * Contracts:
 *  - every error is -1 with err = "FILE: KEY: what is wrong" (FILE = the tenant file,
 *    KEY = "domain", "aliases[1]", "c2s_backend" ...). Unknown keys, duplicate keys and
 *    wrong types are errors.
 *  - names (domain, aliases) are stored lower case without a trailing dot and must be
 *    valid ASCII DNS names (A-labels); the same name in two tenant files is an error
 *    naming both files.
 *  - backends are IP literals only ("192.0.2.1:5222", "[2001:db8::1]:5269"): host names
 *    are NOT resolved, so a backend never depends on DNS at load time.
 *  - a tenant presents its own certificate ("present": "own") or the hosting
 *    identity's ("hosting", the default without a certificate; design.md §2). Its own
 *    certificate (and the next one, for rollover) must cover the domain
 *    (xf_identity_covers_dns) and the key must match the leaf; an alias the served
 *    certificate does not cover is recorded in alias_covered[] and is not an error.
 *  - the hosting identity (main file "hosting") is loaded first with the same checks
 *    against the hosting name; it is not a routing name (xf_registry_find never
 *    returns it), only a certificate for SNI = the hosting name.
 *  - lookups never allocate and never lock, and cost the same for 10 or 10,000 tenants
 *    (issue 10 "Scale"): an open-addressing hash table over the normalised names
 *    (domains and aliases, unique) and one over the distinct wildcard parents
 *    ("*.w.example" -> "w.example"), each slot pointing into the sorted arrays (the
 *    sort finds duplicate names and orders tenants sharing a wildcard parent by file
 *    order). The tables are filled from the configuration only; a client's name
 *    (SNI, stream `to`) is only looked up, so it cannot lengthen a probe sequence:
 *    probes are bounded by the clusters the configured names make, at load factor
 *    <= 1/2.
 *  - the parsed certificate chain and key of a tenant are shared, refcounted, with
 *    every registry that loads the same bytes (see "shared credentials" below): a
 *    reload re-reads every file but parses and checks only the changed ones.
 */
#include "tenants/registry.h"
#include "certs/identity.h"
#include "tenants/jsonconf.h"
#include "tenants/policy.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <psa/crypto.h>

#define XF_TENANT_MAX_BYTES (1u << 20)  /* "1 MiB" in the too-large message */
#define XF_DNS_MAX 253

struct name_ent {
    const char *name;
    size_t ti;                         /* tenant index (file order) */
    long alias;                        /* -1 = the domain, else aliases[alias] */
};

struct wild_ent {
    char *parent;                      /* "w.example" for "*.w.example" */
    size_t ti;
};

struct xf_registry {
    xf_tenant **t;
    size_t n;
    struct name_ent *names;            /* sorted by (name, ti) */
    size_t n_names;
    struct wild_ent *wild;             /* sorted by (parent, ti) */
    size_t n_wild;
    uint64_t *name_slots;              /* hash table: tag | (1 + index into names) */
    uint64_t *wild_slots;              /* tag | (1 + index of a parent's first wild[]) */
    size_t name_mask, wild_mask;       /* table size - 1 (a power of two) */
    xf_tenant *hosting;                /* the hosting identity, or NULL */
};

/* Normalise a DNS name into out[XF_DNS_MAX + 1]: ASCII lower case, one trailing dot
   dropped. Returns NULL, or a reason why the name is not a valid host name. */
static const char *dns_normalise(const char *in, char *out)
{
    size_t n = strlen(in);
    if (n && in[n - 1] == '.') n--;
    if (n == 0) return "is empty";
    if (n > XF_DNS_MAX) return "is longer than 253 characters";
    size_t label = 0;
    int all_digits = 1;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)in[i] : '.';
        if (c == '.') {
            if (label == 0) return "has an empty label";
            if (out[i - 1] == '-') return "has a label ending with '-'";
            if (i == n && all_digits) return "is an IP address, not a domain";
            label = 0;
            all_digits = 1;
            out[i] = '.';
            continue;
        }
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (c == '*') return "contains a wildcard";
        if (c >= 0x80) return "is not ASCII (use the A-label, xn--...)";
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return "contains a character not allowed in a host name";
        if (c == '-' && label == 0) return "has a label starting with '-'";
        if (!(c >= '0' && c <= '9')) all_digits = 0;
        if (++label > 63) return "has a label longer than 63 characters";
        out[i] = (char)c;
    }
    out[n] = '\0';
    return NULL;
}

/* "a.b:port" IPv4 or "[v6]:port" -> sockaddr. Host names are refused (no DNS). */
static int parse_backend(const xf_jconf *p, const char *key, const char *spec,
                         xf_backend *b)
{
    char host[64];
    const char *colon, *hs, *he;
    if (spec[0] == '[') {
        hs = spec + 1;
        he = strchr(hs, ']');
        if (!he || he[1] != ':')
            return xf_jconf_fail(p, key, "\"%.80s\" is not \"[IPv6]:port\"", spec);
        colon = he + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon)
            return xf_jconf_fail(p, key, "\"%.80s\" has no port (\"host:port\")", spec);
        hs = spec;
        he = colon;
    }
    size_t hl = (size_t)(he - hs);
    const char *ps = colon + 1;
    unsigned long port = 0;
    size_t pl = strlen(ps);
    if (pl == 0 || pl > 5 || strspn(ps, "0123456789") != pl ||
        (port = strtoul(ps, NULL, 10)) < 1 || port > 65535)
        return xf_jconf_fail(p, key, "\"%.80s\": port must be 1..65535", spec);
    if (hl == 0 || hl >= sizeof host)
        return xf_jconf_fail(p, key, "\"%.80s\": bad address", spec);
    memcpy(host, hs, hl);
    host[hl] = '\0';

    memset(&b->addr, 0, sizeof b->addr);
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&b->addr;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&b->addr;
    if (spec[0] == '[' && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        b->addrlen = sizeof *a6;
    } else if (spec[0] != '[' && inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        b->addrlen = sizeof *a4;
    } else {
        return xf_jconf_fail(p, key, "\"%.80s\": not an IPv4 address or [IPv6] literal "
                        "(host names are not resolved)", spec);
    }
    if (!(b->spec = strdup(spec))) return xf_jconf_fail(p, key, "out of memory");
    return 0;
}

static const char *const tenant_keys[] = {
    "domain", "aliases", "present", "certificate", "key", "next_certificate", "next_key",
    "c2s_backend", "s2s_backend", "http_backend", "proxy_protocol", "federation", "proofs",
    NULL };

/* ---------------------------------------------------------------- shared credentials

   A parsed certificate chain + private key, shared by every tenant record (of any
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

static void cred_release(struct xf_cred *c)
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

/* Load a certificate chain and its key, check that they pair and that the leaf covers
   `name` (xf_identity_covers_dns). ckey/kkey are the KEYs named in errors
   ("certificate"/"key", "next_certificate"/"next_key", "hosting.certificate"...);
   `what` says what name is ("domain", "hosting name"). *cred gets a reference to the
   shared pair; *chain and *key its read-only views. */
static int load_pair(const xf_jconf *p, const char *ckey, const char *kkey,
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
        cred_release(c);
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

/* A tenant's own certificate and key (and the next pair, when configured); records
   which aliases the current certificate covers. XF_PRESENT_HOSTING tenants have no
   files of their own: the registry loader links them to the hosting identity. */
static int tenant_load_files(const xf_jconf *p, xf_tenant *t)
{
    if (t->present != XF_PRESENT_OWN) return 0;
    if (load_pair(p, "certificate", "key", t->cert_path, t->key_path, t->domain, "domain",
                  &t->cred, &t->chain, &t->key) < 0)
        return -1;
    if (t->next_cert_path &&
        load_pair(p, "next_certificate", "next_key", t->next_cert_path, t->next_key_path,
                  t->domain, "domain", &t->next_cred, &t->next_chain, &t->next_key) < 0)
        return -1;
    for (size_t i = 0; i < t->n_aliases; i++)
        t->alias_covered[i] = xf_identity_covers_dns(&t->chain, t->aliases[i]) ? 1 : 0;
    return 0;
}

/* An optional path member k into *out, resolved against the tenant file. */
static int get_path(const xf_jconf *p, yajl_val root, const char *k, char **out)
{
    const char *s;
    if (xf_jconf_get_str(p, root, k, NULL, &s) < 0) return -1;
    if (s && !(*out = xf_jconf_resolve_path(p->file, s)))
        return xf_jconf_fail(p, k, "out of memory");
    return 0;
}

/* "present" and the certificate keys that go with it (docs/configuration.md):
   "own" needs certificate and key (next_certificate and next_key: both or neither);
   "hosting" takes none of the four. Without "present": "own" when any of the four is
   given, else "hosting". */
static int parse_present(const xf_jconf *p, yajl_val root, xf_tenant *t)
{
    static const char *const own_keys[] = {
        "certificate", "key", "next_certificate", "next_key" };
    const char *s;
    int any = 0;
    for (size_t i = 0; i < 4; i++)
        if (xf_jconf_get(root, own_keys[i])) any = 1;
    if (xf_jconf_get_str(p, root, "present", NULL, &s) < 0) return -1;
    if (!s) t->present = any ? XF_PRESENT_OWN : XF_PRESENT_HOSTING;
    else if (strcmp(s, "own") == 0) t->present = XF_PRESENT_OWN;
    else if (strcmp(s, "hosting") == 0) t->present = XF_PRESENT_HOSTING;
    else return xf_jconf_fail(p, "present", "\"%.40s\" is not \"own\" or \"hosting\"", s);
    if (t->present == XF_PRESENT_HOSTING) {
        for (size_t i = 0; i < 4; i++)
            if (xf_jconf_get(root, own_keys[i]))
                return xf_jconf_fail(p, own_keys[i], "not used with \"present\": "
                                     "\"hosting\" (the hosting certificate is served)");
        return 0;
    }
    if (get_path(p, root, "certificate", &t->cert_path) < 0) return -1;
    if (!t->cert_path) return xf_jconf_fail(p, "certificate", "missing");
    if (get_path(p, root, "key", &t->key_path) < 0) return -1;
    if (!t->key_path) return xf_jconf_fail(p, "key", "missing");
    if (get_path(p, root, "next_certificate", &t->next_cert_path) < 0 ||
        get_path(p, root, "next_key", &t->next_key_path) < 0)
        return -1;
    if (t->next_cert_path && !t->next_key_path)
        return xf_jconf_fail(p, "next_key", "missing (next_certificate is given)");
    if (t->next_key_path && !t->next_cert_path)
        return xf_jconf_fail(p, "next_certificate", "missing (next_key is given)");
    return 0;
}

/* "proofs": an array of distinct prooftype names (tenants/policy.h), in the order of
   preference; absent = the default order. Empty is dialback only, which a trusted
   tenant cannot have (it needs a certificate proof). Parsed after "federation". */
static int parse_proofs(const xf_jconf *p, yajl_val root, xf_tenant *t)
{
    yajl_val v = xf_jconf_get(root, "proofs");
    char key[32];
    if (!v) return 0;
    if (!YAJL_IS_ARRAY(v))
        return xf_jconf_fail(p, "proofs", "must be an array of strings, not %s",
                             xf_jconf_type_name(v));
    size_t n = v->u.array.len;
    xf_proof_order o = { 0, { 0 } };
    for (size_t i = 0; i < n; i++) {
        yajl_val a = v->u.array.values[i];
        snprintf(key, sizeof key, "proofs[%zu]", i);
        if (!YAJL_IS_STRING(a))
            return xf_jconf_fail(p, key, "must be a string, not %s", xf_jconf_type_name(a));
        int pt = xf_proof_parse(a->u.string);
        if (pt < 0)
            return xf_jconf_fail(p, key, "\"%.40s\" is not \"dane\", \"pkix\" or \"posh\"",
                                 a->u.string);
        for (int j = 0; j < o.n; j++)
            if (o.type[j] == pt)
                return xf_jconf_fail(p, key, "\"%s\" repeats proofs[%d]", a->u.string, j);
        o.type[o.n++] = pt;            /* at most XF_PROOF_COUNT: no repeats */
    }
    if (o.n == 0 && t->federation == XF_FED_TRUSTED)
        return xf_jconf_fail(p, "proofs", "empty, but federation \"trusted\" requires a "
                             "certificate proof: name at least one of \"dane\", \"pkix\", "
                             "\"posh\" (or use federation \"encrypted\" for dialback only)");
    t->proofs = o;
    return 0;
}

static xf_tenant *tenant_new(void)
{
    xf_tenant *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    mbedtls_x509_crt_init(&t->chain);
    mbedtls_pk_init(&t->key);
    mbedtls_x509_crt_init(&t->next_chain);
    mbedtls_pk_init(&t->next_key);
    t->federation = XF_FED_DEFAULT;
    t->proofs = xf_proof_order_default;
    t->index = SIZE_MAX;
    return t;
}

int xf_tenant_parse(const char *json, size_t len, const char *file, int load_files,
                    xf_tenant **out, char *err, size_t errlen)
{
    xf_jconf p = { file ? file : "(tenant)", err, errlen };
    yajl_val root = NULL, v;
    xf_tenant *t = NULL;
    const char *s;
    char name[XF_DNS_MAX + 1], key[48];
    const char *why;

    *out = NULL;
    if (err && errlen) err[0] = '\0';
    if (!(root = xf_jconf_parse_object(&p, json, len))) goto fail;
    if (xf_jconf_check_keys(&p, root, NULL, tenant_keys) < 0) goto fail;

    if (!(t = tenant_new())) {
        xf_jconf_fail(&p, "(document)", "out of memory");
        goto fail;
    }
    if (!(t->file = strdup(p.file))) {
        xf_jconf_fail(&p, "(document)", "out of memory");
        goto fail;
    }

    if (xf_jconf_get_str(&p, root, "domain", NULL, &s) < 0) goto fail;
    if (!s) { xf_jconf_fail(&p, "domain", "missing"); goto fail; }
    if ((why = dns_normalise(s, name))) {
        xf_jconf_fail(&p, "domain", "\"%.80s\" %s", s, why);
        goto fail;
    }
    if (!(t->domain = strdup(name))) { xf_jconf_fail(&p, "domain", "out of memory"); goto fail; }

    if ((v = xf_jconf_get(root, "aliases"))) {
        if (!YAJL_IS_ARRAY(v)) {
            xf_jconf_fail(&p, "aliases", "must be an array of strings, not %s",
                          xf_jconf_type_name(v));
            goto fail;
        }
        size_t n = v->u.array.len;
        if (n > 4096) { xf_jconf_fail(&p, "aliases", "more than 4096 aliases"); goto fail; }
        if (n && (!(t->aliases = calloc(n, sizeof *t->aliases)) ||
                  !(t->alias_covered = calloc(n, 1)))) {
            xf_jconf_fail(&p, "aliases", "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            yajl_val a = v->u.array.values[i];
            snprintf(key, sizeof key, "aliases[%zu]", i);
            if (!YAJL_IS_STRING(a)) {
                xf_jconf_fail(&p, key, "must be a string, not %s", xf_jconf_type_name(a));
                goto fail;
            }
            if ((why = dns_normalise(a->u.string, name))) {
                xf_jconf_fail(&p, key, "\"%.80s\" %s", a->u.string, why);
                goto fail;
            }
            if (strcmp(name, t->domain) == 0) {
                xf_jconf_fail(&p, key, "\"%s\" is the domain itself", name);
                goto fail;
            }
            for (size_t j = 0; j < i; j++)
                if (strcmp(name, t->aliases[j]) == 0) {
                    xf_jconf_fail(&p, key, "\"%s\" repeats aliases[%zu]", name, j);
                    goto fail;
                }
            if (!(t->aliases[i] = strdup(name))) {
                xf_jconf_fail(&p, key, "out of memory");
                goto fail;
            }
            t->n_aliases = i + 1;
        }
    }

    if (parse_present(&p, root, t) < 0) goto fail;

    if (xf_jconf_get_str(&p, root, "c2s_backend", NULL, &s) < 0) goto fail;
    if (s && parse_backend(&p, "c2s_backend", s, &t->c2s) < 0) goto fail;
    if (xf_jconf_get_str(&p, root, "s2s_backend", NULL, &s) < 0) goto fail;
    if (s && parse_backend(&p, "s2s_backend", s, &t->s2s) < 0) goto fail;
    /* The tenant's web (plaintext HTTP), for requests on an auto listener that are not
       POSH documents (proxy/http.c). Optional; not an XMPP service. */
    if (xf_jconf_get_str(&p, root, "http_backend", NULL, &s) < 0) goto fail;
    if (s && parse_backend(&p, "http_backend", s, &t->http) < 0) goto fail;
    if (!t->c2s.addrlen && !t->s2s.addrlen) {
        xf_jconf_fail(&p, "c2s_backend", "missing: at least one of c2s_backend and "
                 "s2s_backend is required");
        goto fail;
    }

    if (xf_jconf_get_str(&p, root, "proxy_protocol", NULL, &s) < 0) goto fail;
    if (!s || strcmp(s, "none") == 0) t->proxy_protocol = XF_PP_NONE;
    else if (strcmp(s, "v2") == 0) t->proxy_protocol = XF_PP_V2;
    else {
        xf_jconf_fail(&p, "proxy_protocol", "\"%.40s\" is not \"none\" or \"v2\"", s);
        goto fail;
    }

    if (xf_jconf_get_str(&p, root, "federation", NULL, &s) < 0) goto fail;
    if (!s) t->federation = XF_FED_DEFAULT;
    else if ((t->federation = xf_fed_policy_parse(s)) < 0) {
        xf_jconf_fail(&p, "federation", "\"%.40s\" is not \"open\", \"encrypted\" or "
                      "\"trusted\"", s);
        goto fail;
    }

    if (parse_proofs(&p, root, t) < 0) goto fail;

    if (load_files && tenant_load_files(&p, t) < 0) goto fail;

    yajl_tree_free(root);
    *out = t;
    return 0;
fail:
    if (root) yajl_tree_free(root);
    xf_tenant_free(t);
    return -1;
}

void xf_tenant_free(xf_tenant *t)
{
    if (!t) return;
    free(t->file);
    free(t->domain);
    for (size_t i = 0; i < t->n_aliases; i++) free(t->aliases[i]);
    free(t->aliases);
    free(t->alias_covered);
    free(t->cert_path);
    free(t->key_path);
    free(t->next_cert_path);
    free(t->next_key_path);
    free(t->c2s.spec);
    free(t->s2s.spec);
    free(t->http.spec);
    /* chain/key (next_*) are views of t->cred (next_cred) when loaded; else empty. */
    if (t->cred) cred_release(t->cred);
    else {
        mbedtls_x509_crt_free(&t->chain);
        mbedtls_pk_free(&t->key);
    }
    if (t->next_cred) cred_release(t->next_cred);
    else {
        mbedtls_x509_crt_free(&t->next_chain);
        mbedtls_pk_free(&t->next_key);
    }
    free(t);
}

void xf_registry_free(xf_registry *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) xf_tenant_free(r->t[i]);
    xf_tenant_free(r->hosting);
    for (size_t i = 0; i < r->n_wild; i++) free(r->wild[i].parent);
    free(r->t);
    free(r->names);
    free(r->wild);
    free(r->name_slots);
    free(r->wild_slots);
    free(r);
}

static int cmp_name_ent(const void *a, const void *b)
{
    const struct name_ent *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->ti < y->ti ? -1 : x->ti > y->ti;
}

static int cmp_wild_ent(const void *a, const void *b)
{
    const struct wild_ent *x = a, *y = b;
    int c = strcmp(x->parent, y->parent);
    if (c) return c;
    return x->ti < y->ti ? -1 : x->ti > y->ti;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add one wildcard parent for tenant ti if `v` (length n) is "*.rest". */
static int wild_add(xf_registry *r, size_t *cap, const unsigned char *v, size_t n, size_t ti)
{
    char raw[XF_DNS_MAX + 2], norm[XF_DNS_MAX + 1];
    if (n < 3 || v[0] != '*' || v[1] != '.' || n - 2 > XF_DNS_MAX) return 0;
    memcpy(raw, v + 2, n - 2);
    raw[n - 2] = '\0';
    if (memchr(raw, '\0', n - 2) || dns_normalise(raw, norm)) return 0;
    if (r->n_wild == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct wild_ent *w = realloc(r->wild, nc * sizeof *w);
        if (!w) return -1;
        r->wild = w;
        *cap = nc;
    }
    if (!(r->wild[r->n_wild].parent = strdup(norm))) return -1;
    r->wild[r->n_wild++].ti = ti;
    return 0;
}

/* Wildcard DNS names of the leaf: SAN dNSName entries, or the CN when the certificate
   has no subjectAltName at all (the same rule xf_identity_covers_dns applies). */
static int wild_index_tenant(xf_registry *r, size_t *cap, size_t ti)
{
    const mbedtls_x509_crt *c = &r->t[ti]->chain;
    if (!c->raw.p) return 0;
    if (mbedtls_x509_crt_has_ext_type(c, MBEDTLS_X509_EXT_SUBJECT_ALT_NAME)) {
        for (const mbedtls_x509_sequence *s = &c->subject_alt_names; s; s = s->next)
            if (s->buf.p && s->buf.tag ==
                (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME) &&
                wild_add(r, cap, s->buf.p, s->buf.len, ti) < 0)
                return -1;
        return 0;
    }
    for (const mbedtls_x509_name *nm = &c->subject; nm; nm = nm->next)
        if (nm->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &nm->oid) == 0 &&
            wild_add(r, cap, nm->val.p, nm->val.len, ti) < 0)
            return -1;
    return 0;
}

const char *xf_registry_normalise_name(const char *in, char *out)
{
    return dns_normalise(in, out);
}

/* The hosting identity as a tenant record (registry.h): errors name the main file's
   "hosting.*" keys. */
static int hosting_load(const xf_hosting_spec *h, xf_tenant **out, char *err, size_t errlen)
{
    xf_jconf p = { h->file ? h->file : "(config)", err, errlen };
    char name[XF_DNS_MAX + 1];
    const char *why;
    xf_tenant *t;

    *out = NULL;
    if (!h->name) return xf_jconf_fail(&p, "hosting.name", "missing");
    if ((why = dns_normalise(h->name, name)))
        return xf_jconf_fail(&p, "hosting.name", "\"%.80s\" %s", h->name, why);
    if (!h->cert_path) return xf_jconf_fail(&p, "hosting.certificate", "missing");
    if (!h->key_path) return xf_jconf_fail(&p, "hosting.key", "missing");
    if (!h->next_cert_path != !h->next_key_path)
        return xf_jconf_fail(&p, h->next_cert_path ? "hosting.next_key" : "hosting.next_certificate",
                             "missing (%s is given)", h->next_cert_path ? "next_certificate"
                                                                        : "next_key");
    if (!(t = tenant_new())) return xf_jconf_fail(&p, "hosting", "out of memory");
    if (!(t->file = strdup(p.file)) || !(t->domain = strdup(name)) ||
        !(t->cert_path = strdup(h->cert_path)) || !(t->key_path = strdup(h->key_path)) ||
        (h->next_cert_path && (!(t->next_cert_path = strdup(h->next_cert_path)) ||
                               !(t->next_key_path = strdup(h->next_key_path))))) {
        xf_tenant_free(t);
        return xf_jconf_fail(&p, "hosting", "out of memory");
    }
    if (load_pair(&p, "hosting.certificate", "hosting.key", t->cert_path, t->key_path,
                  t->domain, "hosting name", &t->cred, &t->chain, &t->key) < 0 ||
        (t->next_cert_path &&
         load_pair(&p, "hosting.next_certificate", "hosting.next_key", t->next_cert_path,
                   t->next_key_path, t->domain, "hosting name", &t->next_cred,
                   &t->next_chain, &t->next_key) < 0)) {
        xf_tenant_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* A tenant served with the hosting certificate: link it to the hosting identity and
   record which aliases that certificate covers. Without a hosting identity it is the
   error a tenant without certificate has always been, with the reason. A tenant named
   like the hosting (domain or alias) must be served with the hosting certificate: with
   its own, SNI = the hosting name would never get the hosting certificate, and its POSH
   documents would be the ones the other tenants' references point to. */
static int link_hosting(xf_registry *r, xf_tenant *t, char *err, size_t errlen)
{
    xf_jconf p = { t->file, err, errlen };
    if (t->present != XF_PRESENT_HOSTING) {
        for (long i = -1; r->hosting && i < (long)t->n_aliases; i++) {
            const char *n = i < 0 ? t->domain : t->aliases[i];
            char key[48];
            if (strcmp(n, r->hosting->domain) != 0) continue;
            if (i < 0) snprintf(key, sizeof key, "domain");
            else snprintf(key, sizeof key, "aliases[%ld]", i);
            return xf_jconf_fail(&p, key, "\"%s\" is the hosting name: serve this tenant "
                                 "with the hosting certificate (no certificate of its own)", n);
        }
        return 0;
    }
    if (!r->hosting)
        return xf_jconf_fail(&p, "certificate", "missing (the tenant is to be served with "
                             "the hosting certificate, and the main file has no \"hosting\" "
                             "object)");
    t->hosting = r->hosting;
    for (size_t i = 0; i < t->n_aliases; i++)
        t->alias_covered[i] = xf_identity_covers_dns(&r->hosting->chain, t->aliases[i]) ? 1 : 0;
    return 0;
}

static int index_build(xf_registry *r);

/* ---------------------------------------------------------------- parallel parse */

#define LOAD_THREADS_MAX 4
#define LOAD_FILES_PER_THREAD 64        /* fewer files: one thread */

struct load_job {
    char **files;
    size_t n;
    xf_tenant **t;                     /* [n], filled by the threads */
    size_t next;                       /* next file to take; guarded by lock */
    size_t fail;                       /* lowest index that failed, n = none; lock */
    pthread_mutex_t lock;
    char err[2048];                    /* that file's error; lock */
};

static void load_one(struct load_job *j, size_t i)
{
    char e[sizeof j->err];
    char *buf = NULL;
    size_t len = 0;
    xf_jconf fp = { j->files[i], e, sizeof e };
    e[0] = '\0';
    if (xf_jconf_read_file(&fp, XF_TENANT_MAX_BYTES, "1 MiB", &buf, &len) < 0 ||
        xf_tenant_parse(buf, len, j->files[i], 1, &j->t[i], e, sizeof e) < 0) {
        pthread_mutex_lock(&j->lock);
        if (i < j->fail) {
            j->fail = i;
            snprintf(j->err, sizeof j->err, "%s", e);
        }
        pthread_mutex_unlock(&j->lock);
    }
    free(buf);
}

static void *load_worker(void *arg)
{
    struct load_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        size_t i = j->next < j->fail ? j->next++ : j->n;   /* past a failure: stop */
        pthread_mutex_unlock(&j->lock);
        if (i >= j->n) return NULL;
        load_one(j, i);
    }
}

/* The calling thread plus up to LOAD_THREADS_MAX - 1 more, never more than the CPUs
   this process may run on (a process pinned to one CPU loads on one thread). Thread
   safety: each file is parsed by one thread into its own record; the shared
   credentials are locked (g_cred_lock); mbedTLS parsing uses per-call contexts. */
static void load_parallel(struct load_job *j)
{
    pthread_t th[LOAD_THREADS_MAX - 1];
    size_t nth = 0, want = j->n / LOAD_FILES_PER_THREAD;
    cpu_set_t set;
    size_t cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? (size_t)CPU_COUNT(&set) : 1;
    if (want > cpus) want = cpus;
    if (want > LOAD_THREADS_MAX) want = LOAD_THREADS_MAX;
    while (nth + 1 < want && pthread_create(&th[nth], NULL, load_worker, j) == 0) nth++;
    load_worker(j);
    while (nth) pthread_join(th[--nth], NULL);
}

int xf_registry_load_dir(const char *dir, xf_registry **out, char *err, size_t errlen)
{
    return xf_registry_load(dir, NULL, out, err, errlen);
}

int xf_registry_load(const char *dir, const xf_hosting_spec *hosting, xf_registry **out,
                     char *err, size_t errlen)
{
    xf_jconf dp = { dir, err, errlen };
    xf_registry *r = NULL;
    DIR *d = NULL;
    char **files = NULL, *buf = NULL;
    size_t n_files = 0, cap_files = 0, cap_wild = 0;
    struct dirent *de;

    *out = NULL;
    if (err && errlen) err[0] = '\0';
    if (!(r = calloc(1, sizeof *r))) {
        xf_jconf_fail(&dp, "(directory)", "out of memory");
        goto fail;
    }
    if (hosting && hosting_load(hosting, &r->hosting, err, errlen) < 0) goto fail;
    if (!(d = opendir(dir))) {
        xf_jconf_fail(&dp, "(directory)", "cannot open: %s", strerror(errno));
        goto fail;
    }
    /* Every visible *.json entry; hidden files (editor swaps, Kubernetes "..data")
       are skipped. */
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (de->d_name[0] == '.' || nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0)
            continue;
        if (n_files == cap_files) {
            size_t nc = cap_files ? cap_files * 2 : 16;
            char **nf = realloc(files, nc * sizeof *nf);
            if (!nf) { xf_jconf_fail(&dp, "(directory)", "out of memory"); goto fail; }
            files = nf;
            cap_files = nc;
        }
        size_t pl = strlen(dir) + nl + 2;
        if (!(files[n_files] = malloc(pl))) {
            xf_jconf_fail(&dp, "(directory)", "out of memory");
            goto fail;
        }
        snprintf(files[n_files++], pl, "%s/%s", dir, de->d_name);
    }
    closedir(d);
    d = NULL;
    if (n_files) qsort(files, n_files, sizeof *files, cmp_str);

    if (n_files && !(r->t = calloc(n_files, sizeof *r->t))) {
        xf_jconf_fail(&dp, "(directory)", "out of memory");
        goto fail;
    }
    /* Parse every file (several threads when there are many: the key checks are
       CPU-bound), then link them in file order: the error reported is the first in
       file order, as a serial load would find it. */
    struct load_job job = { files, n_files, r->t, 0, n_files, PTHREAD_MUTEX_INITIALIZER, "" };
    if (n_files) (void)psa_crypto_init();   /* once, before the threads */
    load_parallel(&job);
    size_t n_names = 0;
    for (size_t i = 0; i < n_files; i++) {
        if (i == job.fail) {
            snprintf(err, errlen, "%s", job.err);
            goto fail_tenants;
        }
        if (link_hosting(r, r->t[i], err, errlen) < 0) goto fail_tenants;
        r->t[i]->index = i;
        n_names += 1 + r->t[i]->n_aliases;
    }
    r->n = n_files;

    if (n_names && !(r->names = calloc(n_names, sizeof *r->names))) {
        xf_jconf_fail(&dp, "(directory)", "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < r->n; i++) {
        r->names[r->n_names++] = (struct name_ent){ r->t[i]->domain, i, -1 };
        for (size_t a = 0; a < r->t[i]->n_aliases; a++)
            r->names[r->n_names++] = (struct name_ent){ r->t[i]->aliases[a], i, (long)a };
    }
    if (r->n_names) qsort(r->names, r->n_names, sizeof *r->names, cmp_name_ent);
    /* Equal names sort by file order: report the later file, naming the earlier one. */
    for (size_t i = 1; i < r->n_names; i++) {
        const struct name_ent *a = &r->names[i - 1], *b = &r->names[i];
        if (strcmp(a->name, b->name) != 0) continue;
        xf_jconf fp = { r->t[b->ti]->file, err, errlen };
        char key[48];
        if (b->alias < 0) snprintf(key, sizeof key, "domain");
        else snprintf(key, sizeof key, "aliases[%ld]", b->alias);
        xf_jconf_fail(&fp, key, "\"%s\" is already defined in %s", b->name, r->t[a->ti]->file);
        goto fail;
    }

    for (size_t i = 0; i < r->n; i++)
        if (wild_index_tenant(r, &cap_wild, i) < 0) {
            xf_jconf_fail(&dp, "(directory)", "out of memory");
            goto fail;
        }
    if (r->n_wild) qsort(r->wild, r->n_wild, sizeof *r->wild, cmp_wild_ent);
    if (index_build(r) < 0) {
        xf_jconf_fail(&dp, "(directory)", "out of memory");
        goto fail;
    }

    for (size_t i = 0; i < n_files; i++) free(files[i]);
    free(files);
    *out = r;
    return 0;
fail_tenants:
    for (size_t i = 0; i < n_files; i++) {
        xf_tenant_free(r->t[i]);
        r->t[i] = NULL;
    }
fail:
    if (d) closedir(d);
    free(buf);
    for (size_t i = 0; i < n_files; i++) free(files[i]);
    free(files);
    xf_registry_free(r);
    return -1;
}

size_t xf_registry_count(const xf_registry *r)
{
    return r ? r->n : 0;
}

const xf_tenant *xf_registry_at(const xf_registry *r, size_t i)
{
    return r && i < r->n ? r->t[i] : NULL;
}

const xf_tenant *xf_registry_hosting(const xf_registry *r)
{
    return r ? r->hosting : NULL;
}

const mbedtls_x509_crt *xf_tenant_tls_chain(const xf_tenant *t)
{
    return t->present == XF_PRESENT_HOSTING && t->hosting ? &t->hosting->chain : &t->chain;
}

const mbedtls_pk_context *xf_tenant_tls_key(const xf_tenant *t)
{
    return t->present == XF_PRESENT_HOSTING && t->hosting ? &t->hosting->key : &t->key;
}

/* FNV-1a, 64 bits, of a normalised name. */
static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

/* A table of 2^k slots, k the smallest with 2^k >= 2 * n (load factor <= 1/2). A slot
   is (the hash's high 32 bits << 32) | (1 + index), 0 = empty: a probe compares
   strings only when the tags agree, so a lookup reads one name. */
static int slots_new(size_t n, uint64_t **slots, size_t *mask)
{
    size_t sz = 4;
    while (sz < 2 * n) sz *= 2;
    if (n >= UINT32_MAX / 2 || !(*slots = calloc(sz, sizeof **slots))) return -1;
    *mask = sz - 1;
    return 0;
}

/* Linear probing. */
static void slots_put(uint64_t *slots, size_t mask, const char *key, size_t idx)
{
    uint64_t h = name_hash(key);
    size_t i = (size_t)h & mask;
    while (slots[i]) i = (i + 1) & mask;
    slots[i] = (h & 0xffffffff00000000u) | (uint64_t)(idx + 1);
}

/* Fill name_slots (names unique: checked before) and wild_slots (one per distinct
   parent: the first of its run in the sorted wild[]). */
static int index_build(xf_registry *r)
{
    if (slots_new(r->n_names, &r->name_slots, &r->name_mask) < 0 ||
        slots_new(r->n_wild, &r->wild_slots, &r->wild_mask) < 0)
        return -1;
    for (size_t i = 0; i < r->n_names; i++)
        slots_put(r->name_slots, r->name_mask, r->names[i].name, i);
    for (size_t i = 0; i < r->n_wild; i++)
        if (i == 0 || strcmp(r->wild[i - 1].parent, r->wild[i].parent) != 0)
            slots_put(r->wild_slots, r->wild_mask, r->wild[i].parent, i);
    return 0;
}

/* The names[] entry whose name equals key (normalised), or NULL. */
static const struct name_ent *names_find(const xf_registry *r, const char *key)
{
    if (!r->name_slots) return NULL;
    uint64_t h = name_hash(key), tag = h & 0xffffffff00000000u, s;
    for (size_t i = (size_t)h & r->name_mask; (s = r->name_slots[i]); i = (i + 1) & r->name_mask) {
        const struct name_ent *e = &r->names[(uint32_t)s - 1];
        if ((s & 0xffffffff00000000u) == tag && strcmp(e->name, key) == 0) return e;
    }
    return NULL;
}

/* Index of the first wild[] entry whose parent equals key, or n_wild. */
static size_t wild_find(const xf_registry *r, const char *key)
{
    if (!r->wild_slots) return r->n_wild;
    uint64_t h = name_hash(key), tag = h & 0xffffffff00000000u, s;
    for (size_t i = (size_t)h & r->wild_mask; (s = r->wild_slots[i]); i = (i + 1) & r->wild_mask) {
        size_t k = (uint32_t)s - 1;
        if ((s & 0xffffffff00000000u) == tag && strcmp(r->wild[k].parent, key) == 0) return k;
    }
    return r->n_wild;
}

const xf_tenant *xf_registry_find(const xf_registry *r, const char *domain)
{
    char name[XF_DNS_MAX + 1];
    if (!r || !domain || dns_normalise(domain, name)) return NULL;
    const struct name_ent *e = names_find(r, name);
    return e ? r->t[e->ti] : NULL;
}

/* Exact name or alias first (the owner's certificate is returned even for an alias it
   does not cover: routing and certificate stay with one tenant). Otherwise the first
   tenant, in file order, with a wildcard "*.parent" whose parent is the name minus its
   first label, confirmed by xf_identity_covers_dns. */
const xf_tenant *xf_registry_for_sni(const xf_registry *r, const char *sni)
{
    char name[XF_DNS_MAX + 1];
    if (!r || !sni || dns_normalise(sni, name)) return NULL;
    const struct name_ent *e = names_find(r, name);
    if (e) return r->t[e->ti];
    const char *parent = strchr(name, '.');
    if (!parent) return r->hosting && strcmp(name, r->hosting->domain) == 0 ? r->hosting : NULL;
    parent++;
    size_t lo = wild_find(r, parent);
    for (; lo < r->n_wild && strcmp(r->wild[lo].parent, parent) == 0; lo++) {
        const xf_tenant *t = r->t[r->wild[lo].ti];
        if (xf_identity_covers_dns(&t->chain, name)) return t;
    }
    if (r->hosting && strcmp(name, r->hosting->domain) == 0) return r->hosting;
    return NULL;
}
