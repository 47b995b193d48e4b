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
 *  - lookups never allocate and never lock, and cost the same for 10 or 10,000 tenants:
 *    the name index is built once per registry, after every tenant is linked
 *    (tenants/regindex.c, which also holds the name rule, xf_registry_normalise_name).
 *  - the parsed certificate chain and key of a tenant are shared, refcounted, with
 *    every registry that loads the same bytes (tenants/cred.c, "shared credentials"):
 *    a reload re-reads every file but parses and checks only the changed ones.
 *
 * This file: tenant file parsing, the hosting identity, and the loader (parallel
 * parse, linking in file order).
 */
#include "tenants/registry.h"
#include "certs/identity.h"
#include "tenants/cred.h"
#include "tenants/jsonconf.h"
#include "tenants/policy.h"
#include "tenants/registry_int.h"

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
#include <yajl/yajl_tree.h>

#include <psa/crypto.h>

#define XF_TENANT_MAX_BYTES (1u << 20)  /* "1 MiB" in the too-large message */



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


/* A tenant's own certificate and key (and the next pair, when configured); records
   which aliases the current certificate covers. XF_PRESENT_HOSTING tenants have no
   files of their own: the registry loader links them to the hosting identity. */
static int tenant_load_files(const xf_jconf *p, xf_tenant *t)
{
    if (t->present != XF_PRESENT_OWN) return 0;
    if (xf_cred_load(p, "certificate", "key", t->cert_path, t->key_path, t->domain,
                     "domain", &t->cred, &t->chain, &t->key) < 0)
        return -1;
    if (t->next_cert_path &&
        xf_cred_load(p, "next_certificate", "next_key", t->next_cert_path, t->next_key_path,
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
    char name[XF_REGISTRY_NAME_MAX + 1], key[48];
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
    if ((why = xf_registry_normalise_name(s, name))) {
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
            if ((why = xf_registry_normalise_name(a->u.string, name))) {
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
    if (t->cred) xf_cred_release(t->cred);
    else {
        mbedtls_x509_crt_free(&t->chain);
        mbedtls_pk_free(&t->key);
    }
    if (t->next_cred) xf_cred_release(t->next_cred);
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
    xf_regindex_free(r);
    free(r->t);
    free(r);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}


/* The hosting identity as a tenant record (registry.h): errors name the main file's
   "hosting.*" keys. */
static int hosting_load(const xf_hosting_spec *h, xf_tenant **out, char *err, size_t errlen)
{
    xf_jconf p = { h->file ? h->file : "(config)", err, errlen };
    char name[XF_REGISTRY_NAME_MAX + 1];
    const char *why;
    xf_tenant *t;

    *out = NULL;
    if (!h->name) return xf_jconf_fail(&p, "hosting.name", "missing");
    if ((why = xf_registry_normalise_name(h->name, name)))
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
    if (xf_cred_load(&p, "hosting.certificate", "hosting.key", t->cert_path, t->key_path,
                     t->domain, "hosting name", &t->cred, &t->chain, &t->key) < 0 ||
        (t->next_cert_path &&
         xf_cred_load(&p, "hosting.next_certificate", "hosting.next_key", t->next_cert_path,
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
    size_t n_files = 0, cap_files = 0;
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
    for (size_t i = 0; i < n_files; i++) {
        if (i == job.fail) {
            snprintf(err, errlen, "%s", job.err);
            goto fail_tenants;
        }
        if (link_hosting(r, r->t[i], err, errlen) < 0) goto fail_tenants;
        r->t[i]->index = i;
    }
    r->n = n_files;

    if (xf_regindex_build(r, dir, err, errlen) < 0) goto fail;

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

