/*
 * config: the main JSON file (yajl tree API) -> one immutable, reference-counted
 * xf_config snapshot, plus the tenant registry it names.
 *
 * Contract for every error: -1 and err = "FILE: KEY: what is wrong", KEY being a path
 * such as "listeners[2].port" or "limits.max_header_bytes" ("(document)" for errors
 * that are about the file as a whole). Unknown keys, duplicate keys and wrong types are
 * errors everywhere: a typo must never silently fall back to a default.
 * The key reference lives in docs/configuration.md.
 */
#include "proxy/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define XF_CONFIG_MAX_BYTES (1u << 20)  /* a main config over 1 MiB is a mistake */
#define XF_JSON_MAX_DEPTH 32            /* yajl_tree_free recurses: bound nesting */

struct pctx {
    const char *path;
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int cfg_fail(const struct pctx *p, const char *key, const char *fmt, ...)
{
    if (p->err && p->errlen) {
        int n = snprintf(p->err, p->errlen, "%s: %s: ", p->path, key);
        if (n >= 0 && (size_t)n < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static const char *json_type_name(yajl_val v)
{
    if (!v) return "null";
    switch (v->type) {
    case yajl_t_string: return "a string";
    case yajl_t_number: return "a number";
    case yajl_t_object: return "an object";
    case yajl_t_array: return "an array";
    case yajl_t_true: case yajl_t_false: return "a boolean";
    default: return "null";
    }
}

/* Reject nesting deeper than XF_JSON_MAX_DEPTH before yajl builds a tree (its free is
   recursive). Strings are skipped so brackets inside them do not count. */
static int json_depth_ok(const char *s, size_t len)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > XF_JSON_MAX_DEPTH) return 0;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 1;
}

/* Parse bytes into a yajl tree; the document must be a JSON object. */
static yajl_val json_parse_object(const struct pctx *p, const char *json, size_t len)
{
    char ebuf[256];
    if (memchr(json, '\0', len)) {
        cfg_fail(p, "(document)", "contains a NUL byte");
        return NULL;
    }
    if (!json_depth_ok(json, len)) {
        cfg_fail(p, "(document)", "nested deeper than %d levels", XF_JSON_MAX_DEPTH);
        return NULL;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        cfg_fail(p, "(document)", "out of memory");
        return NULL;
    }
    memcpy(copy, json, len);
    copy[len] = '\0';
    ebuf[0] = '\0';
    yajl_val root = yajl_tree_parse(copy, ebuf, sizeof ebuf);
    free(copy);
    if (!root) {
        /* yajl's message is "parse error: what\n  context\n  (right here)": keep
           the first line. */
        ebuf[strcspn(ebuf, "\r\n")] = '\0';
        size_t el = strlen(ebuf);
        while (el && ebuf[el - 1] == ' ') ebuf[--el] = '\0';
        cfg_fail(p, "(document)", "invalid JSON: %s", ebuf[0] ? ebuf : "parse error");
        return NULL;
    }
    if (!YAJL_IS_OBJECT(root)) {
        cfg_fail(p, "(document)", "must be a JSON object, not %s", json_type_name(root));
        yajl_tree_free(root);
        return NULL;
    }
    return root;
}

/* Check object o's keys: every key must be in `known` (NULL-terminated) and appear
   once. `where` is the path prefix ("" for top level, "limits." ...). */
static int check_keys(const struct pctx *p, yajl_val o, const char *where,
                      const char *const *known)
{
    char key[160];
    for (size_t i = 0; i < o->u.object.len; i++) {
        const char *k = o->u.object.keys[i];
        int ok = 0;
        for (const char *const *kn = known; *kn; kn++)
            if (strcmp(*kn, k) == 0) { ok = 1; break; }
        snprintf(key, sizeof key, "%s%s", where, k);
        if (!ok)
            return cfg_fail(p, key, "unknown key");
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->u.object.keys[j], k) == 0)
                return cfg_fail(p, key, "duplicate key");
    }
    return 0;
}

static yajl_val obj_get(yajl_val o, const char *k)
{
    for (size_t i = 0; i < o->u.object.len; i++)
        if (strcmp(o->u.object.keys[i], k) == 0)
            return o->u.object.values[i];
    return NULL;
}

/* Integer in [lo, hi]; absent keeps *out. */
static int get_uint(const struct pctx *p, yajl_val o, const char *k, const char *key,
                    long long lo, long long hi, unsigned *out)
{
    yajl_val v = obj_get(o, k);
    if (!v) return 0;
    if (!YAJL_IS_NUMBER(v))
        return cfg_fail(p, key, "must be an integer, not %s", json_type_name(v));
    if (!YAJL_IS_INTEGER(v))
        return cfg_fail(p, key, "must be an integer in %lld..%lld", lo, hi);
    long long n = YAJL_GET_INTEGER(v);
    if (n < lo || n > hi)
        return cfg_fail(p, key, "%lld is out of range %lld..%lld", n, lo, hi);
    *out = (unsigned)n;
    return 0;
}

/* String value; absent leaves *out NULL. Empty strings are rejected. */
static int get_str(const struct pctx *p, yajl_val o, const char *k, const char *key,
                   const char **out)
{
    yajl_val v = obj_get(o, k);
    *out = NULL;
    if (!v) return 0;
    if (!YAJL_IS_STRING(v))
        return cfg_fail(p, key, "must be a string, not %s", json_type_name(v));
    if (!v->u.string[0])
        return cfg_fail(p, key, "must not be empty");
    *out = v->u.string;
    return 0;
}

/* `rel` resolved against the directory of `file`: absolute paths are kept, a file
   without a directory part leaves `rel` as is (relative to the working directory). */
static char *resolve_path(const char *file, const char *rel)
{
    const char *slash = strrchr(file, '/');
    if (rel[0] == '/' || !slash)
        return strdup(rel);
    size_t dl = (size_t)(slash - file);
    if (dl == 0) dl = 1;                /* "/x.json" -> "/" */
    size_t n = dl + 1 + strlen(rel) + 1;
    char *r = malloc(n);
    if (!r) return NULL;
    if (dl == 1 && file[0] == '/')
        snprintf(r, n, "/%s", rel);
    else
        snprintf(r, n, "%.*s/%s", (int)dl, file, rel);
    return r;
}

static const char *const top_keys[] = {
    "workers", "tenants", "listeners", "limits", "log_level", NULL };
static const char *const listener_keys[] = {
    "address", "port", "tls", "service", NULL };
static const char *const limit_keys[] = {
    "handshake_timeout_s", "max_header_bytes", "max_connections",
    "max_connections_per_ip", "backend_timeout_s", "drain_timeout_s",
    "idle_timeout_s", "buffer_high_bytes", "buffer_low_bytes", NULL };

/* Fill l from listeners[i]. Address: IPv6 or IPv4 literal, optionally in brackets;
   "::" binds every IPv6 address and, where the OS allows dual-stack sockets
   (IPV6_V6ONLY off, Linux default), IPv4 too. */
static int parse_listener(const struct pctx *p, yajl_val o, size_t i, xf_listener_conf *l)
{
    char key[64], host[64];
    const char *s;
    unsigned port = 0;

    snprintf(key, sizeof key, "listeners[%zu]", i);
    if (!YAJL_IS_OBJECT(o))
        return cfg_fail(p, key, "must be an object, not %s", json_type_name(o));
    snprintf(key, sizeof key, "listeners[%zu].", i);
    if (check_keys(p, o, key, listener_keys) < 0) return -1;

    snprintf(key, sizeof key, "listeners[%zu].port", i);
    if (!obj_get(o, "port")) return cfg_fail(p, key, "missing");
    if (get_uint(p, o, "port", key, 1, 65535, &port) < 0) return -1;
    l->port = (int)port;

    snprintf(key, sizeof key, "listeners[%zu].tls", i);
    if (get_str(p, o, "tls", key, &s) < 0) return -1;
    if (!s) return cfg_fail(p, key, "missing (\"starttls\" or \"direct\")");
    if (strcmp(s, "starttls") == 0) l->tls = XF_TLS_STARTTLS;
    else if (strcmp(s, "direct") == 0) l->tls = XF_TLS_DIRECT;
    else return cfg_fail(p, key, "\"%.40s\" is not \"starttls\" or \"direct\"", s);

    snprintf(key, sizeof key, "listeners[%zu].service", i);
    if (get_str(p, o, "service", key, &s) < 0) return -1;
    if (!s) return cfg_fail(p, key, "missing (\"client\", \"server\" or \"auto\")");
    if (strcmp(s, "client") == 0) l->service = XF_SVC_CLIENT;
    else if (strcmp(s, "server") == 0) l->service = XF_SVC_SERVER;
    else if (strcmp(s, "auto") == 0) l->service = XF_SVC_AUTO;
    else return cfg_fail(p, key, "\"%.40s\" is not \"client\", \"server\" or \"auto\"", s);

    snprintf(key, sizeof key, "listeners[%zu].address", i);
    if (get_str(p, o, "address", key, &s) < 0) return -1;
    if (!s) s = "::";
    size_t sl = strlen(s);
    if (s[0] == '[' && sl >= 2 && s[sl - 1] == ']') { s++; sl -= 2; }
    if (sl >= sizeof host || sl >= sizeof l->address)
        return cfg_fail(p, key, "too long");
    memcpy(host, s, sl);
    host[sl] = '\0';

    memset(&l->addr, 0, sizeof l->addr);
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l->addr;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&l->addr;
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        l->addrlen = sizeof *a6;
        snprintf(l->name, sizeof l->name, "[%s]:%u", host, port);
    } else if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        l->addrlen = sizeof *a4;
        snprintf(l->name, sizeof l->name, "%s:%u", host, port);
    } else {
        return cfg_fail(p, key, "\"%.64s\" is not an IPv4 or IPv6 address "
                        "(host names are not resolved)", host);
    }
    memcpy(l->address, host, sl + 1);
    return 0;
}

/* Same bound address and port (compared on the parsed sockaddr, so "::0" == "::"). */
static int same_endpoint(const xf_listener_conf *a, const xf_listener_conf *b)
{
    if (a->addr.ss_family != b->addr.ss_family) return 0;
    if (a->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->addr, *y = (const void *)&b->addr;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    const struct sockaddr_in *x = (const void *)&a->addr, *y = (const void *)&b->addr;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

static int parse_limits(const struct pctx *p, yajl_val o, xf_limits *lim)
{
    if (!YAJL_IS_OBJECT(o))
        return cfg_fail(p, "limits", "must be an object, not %s", json_type_name(o));
    if (check_keys(p, o, "limits.", limit_keys) < 0) return -1;
#define LIM(name, lo, hi) \
    if (get_uint(p, o, #name, "limits." #name, lo, hi, &lim->name) < 0) return -1
    LIM(handshake_timeout_s, 1, 3600);
    LIM(max_header_bytes, 512, 1048576);
    LIM(max_connections, 1, 10000000);
    LIM(max_connections_per_ip, 0, 10000000);
    LIM(backend_timeout_s, 1, 3600);
    LIM(drain_timeout_s, 0, 86400);
    LIM(idle_timeout_s, 0, 604800);
    LIM(buffer_high_bytes, 4096, 1073741824);
    LIM(buffer_low_bytes, 0, 1073741824);
#undef LIM
    if (lim->buffer_low_bytes >= lim->buffer_high_bytes)
        return cfg_fail(p, "limits.buffer_low_bytes", "%u must be lower than "
                        "limits.buffer_high_bytes (%u)", lim->buffer_low_bytes,
                        lim->buffer_high_bytes);
    if (lim->max_connections_per_ip > lim->max_connections)
        return cfg_fail(p, "limits.max_connections_per_ip", "%u exceeds "
                        "limits.max_connections (%u)", lim->max_connections_per_ip,
                        lim->max_connections);
    return 0;
}

static void config_free(xf_config *c)
{
    if (!c) return;
    free(c->path);
    free(c->tenants_dir);
    free(c->listeners);
    free(c->log_level);
    if (c->registry) xf_registry_free(c->registry);
    free(c);
}

int xf_config_parse(const char *json, size_t len, const char *path, xf_config **out,
                    char *err, size_t errlen)
{
    struct pctx p = { path ? path : "(config)", err, errlen };
    xf_config *c = NULL;
    yajl_val root = NULL, v;
    const char *s;

    *out = NULL;
    if (err && errlen) err[0] = '\0';
    if (!(root = json_parse_object(&p, json, len))) goto fail;
    if (check_keys(&p, root, "", top_keys) < 0) goto fail;

    if (!(c = calloc(1, sizeof *c))) { cfg_fail(&p, "(document)", "out of memory"); goto fail; }
    c->refs = 1;
    c->limits = (xf_limits){ .handshake_timeout_s = 30, .max_header_bytes = 8192,
                             .max_connections = 100000, .max_connections_per_ip = 0,
                             .backend_timeout_s = 10, .drain_timeout_s = 30,
                             .idle_timeout_s = 0, .buffer_high_bytes = 262144,
                             .buffer_low_bytes = 65536 };
    if (!(c->path = strdup(p.path))) { cfg_fail(&p, "(document)", "out of memory"); goto fail; }

    if (get_uint(&p, root, "workers", "workers", 0, 256, &c->workers) < 0) goto fail;
    if (c->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
    }

    if (get_str(&p, root, "tenants", "tenants", &s) < 0) goto fail;
    if (!(c->tenants_dir = resolve_path(p.path, s ? s : "tenants"))) {
        cfg_fail(&p, "tenants", "out of memory");
        goto fail;
    }

    if (get_str(&p, root, "log_level", "log_level", &s) < 0) goto fail;
    if (!s) s = "info";
    if (strcmp(s, "debug") && strcmp(s, "info") && strcmp(s, "warn") && strcmp(s, "error")) {
        cfg_fail(&p, "log_level", "\"%.40s\" is not \"debug\", \"info\", \"warn\" or \"error\"", s);
        goto fail;
    }
    if (!(c->log_level = strdup(s))) { cfg_fail(&p, "log_level", "out of memory"); goto fail; }

    if ((v = obj_get(root, "limits")) && parse_limits(&p, v, &c->limits) < 0) goto fail;

    v = obj_get(root, "listeners");
    if (!v) { cfg_fail(&p, "listeners", "missing: at least one listener is required"); goto fail; }
    if (!YAJL_IS_ARRAY(v)) {
        cfg_fail(&p, "listeners", "must be an array, not %s", json_type_name(v));
        goto fail;
    }
    if (v->u.array.len == 0) { cfg_fail(&p, "listeners", "must not be empty"); goto fail; }
    if (v->u.array.len > 256) { cfg_fail(&p, "listeners", "more than 256 listeners"); goto fail; }
    if (!(c->listeners = calloc(v->u.array.len, sizeof *c->listeners))) {
        cfg_fail(&p, "listeners", "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < v->u.array.len; i++) {
        if (parse_listener(&p, v->u.array.values[i], i, &c->listeners[i]) < 0) goto fail;
        for (size_t j = 0; j < i; j++) {
            if (same_endpoint(&c->listeners[i], &c->listeners[j])) {
                char key[32];
                snprintf(key, sizeof key, "listeners[%zu]", i);
                cfg_fail(&p, key, "%s is already listeners[%zu]", c->listeners[i].name, j);
                goto fail;
            }
        }
        c->n_listeners = i + 1;
    }

    yajl_tree_free(root);
    *out = c;
    return 0;
fail:
    if (root) yajl_tree_free(root);
    config_free(c);
    return -1;
}

/* Read the whole file (bounded) into a malloc'd buffer. */
static int read_file(const struct pctx *p, char **buf, size_t *len)
{
    FILE *f = fopen(p->path, "rb");
    char *b = NULL;
    size_t n = 0;
    if (!f) return cfg_fail(p, "(document)", "cannot open: %s", strerror(errno));
    if (!(b = malloc(XF_CONFIG_MAX_BYTES + 1))) {
        fclose(f);
        return cfg_fail(p, "(document)", "out of memory");
    }
    n = fread(b, 1, XF_CONFIG_MAX_BYTES + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) { free(b); return cfg_fail(p, "(document)", "read error"); }
    if (n > XF_CONFIG_MAX_BYTES) {
        free(b);
        return cfg_fail(p, "(document)", "larger than %u bytes", XF_CONFIG_MAX_BYTES);
    }
    *buf = b;
    *len = n;
    return 0;
}

int xf_config_load(const char *path, xf_config **out, char *err, size_t errlen)
{
    struct pctx p = { path, err, errlen };
    char *buf = NULL;
    size_t len = 0;
    xf_config *c = NULL;
    struct stat st;

    *out = NULL;
    if (read_file(&p, &buf, &len) < 0) goto fail;
    if (xf_config_parse(buf, len, path, &c, err, errlen) < 0) goto fail;
    if (stat(c->tenants_dir, &st) < 0) {
        cfg_fail(&p, "tenants", "%s: %s", c->tenants_dir, strerror(errno));
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        cfg_fail(&p, "tenants", "%s: not a directory", c->tenants_dir);
        goto fail;
    }
    if (xf_registry_load_dir(c->tenants_dir, &c->registry, err, errlen) < 0) goto fail;
    free(buf);
    *out = c;
    return 0;
fail:
    free(buf);
    config_free(c);
    return -1;
}

xf_config *xf_config_ref(xf_config *c)
{
    if (c) __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

/* The last unref frees the snapshot and its registry; acq_rel orders every reader's
   last use before the free. */
void xf_config_unref(xf_config *c)
{
    if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(c);
}
