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
#include "tenants/jsonconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define XF_CONFIG_MAX_BYTES (1u << 20)  /* a main config over 1 MiB is a mistake */
#define XF_CONFIG_MAX_TEXT "1048576 bytes"   /* XF_CONFIG_MAX_BYTES, for the message */
_Static_assert(XF_CONFIG_MAX_BYTES == 1048576, "XF_CONFIG_MAX_TEXT is out of date");

static const char *const top_keys[] = {
    "workers", "tenants", "listeners", "limits", "log_level", NULL };
static const char *const listener_keys[] = {
    "address", "port", "tls", "service", NULL };
static const char *const limit_keys[] = {
    "handshake_timeout_s", "max_header_bytes", "max_connections",
    "max_connections_per_ip", "backend_timeout_s", "drain_timeout_s",
    "idle_timeout_s", "buffer_high_bytes", "buffer_low_bytes",
    "max_unauthenticated_per_ip", "ipv6_prefix", "tcp_keepalive_s", NULL };

/* Fill l from listeners[i]. Address: IPv6 or IPv4 literal, optionally in brackets;
   "::" binds every IPv6 address and, where the OS allows dual-stack sockets
   (IPV6_V6ONLY off, Linux default), IPv4 too. */
static int parse_listener(const xf_jconf *p, yajl_val o, size_t i, xf_listener_conf *l)
{
    char key[64], host[64];
    const char *s;
    unsigned port = 0;

    snprintf(key, sizeof key, "listeners[%zu]", i);
    if (!YAJL_IS_OBJECT(o))
        return xf_jconf_fail(p, key, "must be an object, not %s", xf_jconf_type_name(o));
    snprintf(key, sizeof key, "listeners[%zu].", i);
    if (xf_jconf_check_keys(p, o, key, listener_keys) < 0) return -1;

    snprintf(key, sizeof key, "listeners[%zu].port", i);
    if (!xf_jconf_get(o, "port")) return xf_jconf_fail(p, key, "missing");
    if (xf_jconf_get_uint(p, o, "port", key, 1, 65535, &port) < 0) return -1;
    l->port = (int)port;

    snprintf(key, sizeof key, "listeners[%zu].tls", i);
    if (xf_jconf_get_str(p, o, "tls", key, &s) < 0) return -1;
    if (!s) return xf_jconf_fail(p, key, "missing (\"starttls\" or \"direct\")");
    if (strcmp(s, "starttls") == 0) l->tls = XF_TLS_STARTTLS;
    else if (strcmp(s, "direct") == 0) l->tls = XF_TLS_DIRECT;
    else return xf_jconf_fail(p, key, "\"%.40s\" is not \"starttls\" or \"direct\"", s);

    snprintf(key, sizeof key, "listeners[%zu].service", i);
    if (xf_jconf_get_str(p, o, "service", key, &s) < 0) return -1;
    if (!s) return xf_jconf_fail(p, key, "missing (\"client\", \"server\" or \"auto\")");
    if (strcmp(s, "client") == 0) l->service = XF_SVC_CLIENT;
    else if (strcmp(s, "server") == 0) l->service = XF_SVC_SERVER;
    else if (strcmp(s, "auto") == 0) l->service = XF_SVC_AUTO;
    else return xf_jconf_fail(p, key, "\"%.40s\" is not \"client\", \"server\" or \"auto\"", s);

    snprintf(key, sizeof key, "listeners[%zu].address", i);
    if (xf_jconf_get_str(p, o, "address", key, &s) < 0) return -1;
    if (!s) s = "::";
    size_t sl = strlen(s);
    if (s[0] == '[' && sl >= 2 && s[sl - 1] == ']') { s++; sl -= 2; }
    if (sl >= sizeof host || sl >= sizeof l->address)
        return xf_jconf_fail(p, key, "too long");
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
        return xf_jconf_fail(p, key, "\"%.64s\" is not an IPv4 or IPv6 address "
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

static int parse_limits(const xf_jconf *p, yajl_val o, xf_limits *lim)
{
    if (!YAJL_IS_OBJECT(o))
        return xf_jconf_fail(p, "limits", "must be an object, not %s", xf_jconf_type_name(o));
    if (xf_jconf_check_keys(p, o, "limits.", limit_keys) < 0) return -1;
#define LIM(name, lo, hi) \
    if (xf_jconf_get_uint(p, o, #name, "limits." #name, lo, hi, &lim->name) < 0) return -1
    LIM(handshake_timeout_s, 1, 3600);
    LIM(max_header_bytes, 512, 1048576);
    LIM(max_connections, 1, 10000000);
    LIM(max_connections_per_ip, 0, 10000000);
    LIM(backend_timeout_s, 1, 3600);
    LIM(drain_timeout_s, 0, 86400);
    LIM(idle_timeout_s, 0, 604800);
    LIM(buffer_high_bytes, 4096, 1073741824);
    LIM(buffer_low_bytes, 0, 1073741824);
    LIM(max_unauthenticated_per_ip, 0, 10000000);
    LIM(ipv6_prefix, 32, 128);
    LIM(tcp_keepalive_s, 0, 7200);
#undef LIM
    if (lim->buffer_low_bytes >= lim->buffer_high_bytes)
        return xf_jconf_fail(p, "limits.buffer_low_bytes", "%u must be lower than "
                        "limits.buffer_high_bytes (%u)", lim->buffer_low_bytes,
                        lim->buffer_high_bytes);
    /* The per-address defaults are not errors under a smaller explicit cap: they shrink
       to it. Values written in the file must be consistent. */
    int per_ip_set = xf_jconf_get(o, "max_connections_per_ip") != NULL;
    int unauth_set = xf_jconf_get(o, "max_unauthenticated_per_ip") != NULL;
    if (lim->max_connections_per_ip > lim->max_connections) {
        if (per_ip_set)
            return xf_jconf_fail(p, "limits.max_connections_per_ip", "%u exceeds "
                            "limits.max_connections (%u)", lim->max_connections_per_ip,
                            lim->max_connections);
        lim->max_connections_per_ip = lim->max_connections;
    }
    if (lim->max_connections_per_ip &&
        lim->max_unauthenticated_per_ip > lim->max_connections_per_ip) {
        if (unauth_set)
            return xf_jconf_fail(p, "limits.max_unauthenticated_per_ip", "%u exceeds "
                            "limits.max_connections_per_ip (%u)",
                            lim->max_unauthenticated_per_ip, lim->max_connections_per_ip);
        lim->max_unauthenticated_per_ip = lim->max_connections_per_ip;
    }
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
    xf_jconf p = { path ? path : "(config)", err, errlen };
    xf_config *c = NULL;
    yajl_val root = NULL, v;
    const char *s;

    *out = NULL;
    if (err && errlen) err[0] = '\0';
    if (!(root = xf_jconf_parse_object(&p, json, len))) goto fail;
    if (xf_jconf_check_keys(&p, root, "", top_keys) < 0) goto fail;

    if (!(c = calloc(1, sizeof *c))) {
        xf_jconf_fail(&p, "(document)", "out of memory");
        goto fail;
    }
    c->refs = 1;
    c->limits = (xf_limits){ .handshake_timeout_s = 30, .max_header_bytes = 8192,
                             .max_connections = 100000, .max_connections_per_ip = 1000,
                             .max_unauthenticated_per_ip = 100, .ipv6_prefix = 64,
                             .tcp_keepalive_s = 60,
                             .backend_timeout_s = 10, .drain_timeout_s = 30,
                             .idle_timeout_s = 0, .buffer_high_bytes = 262144,
                             .buffer_low_bytes = 65536 };
    if (!(c->path = strdup(p.file))) {
        xf_jconf_fail(&p, "(document)", "out of memory");
        goto fail;
    }

    if (xf_jconf_get_uint(&p, root, "workers", "workers", 0, 256, &c->workers) < 0) goto fail;
    if (c->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
    }

    if (xf_jconf_get_str(&p, root, "tenants", "tenants", &s) < 0) goto fail;
    if (!(c->tenants_dir = xf_jconf_resolve_path(p.file, s ? s : "tenants"))) {
        xf_jconf_fail(&p, "tenants", "out of memory");
        goto fail;
    }

    if (xf_jconf_get_str(&p, root, "log_level", "log_level", &s) < 0) goto fail;
    if (!s) s = "info";
    if (strcmp(s, "debug") && strcmp(s, "info") && strcmp(s, "warn") && strcmp(s, "error")) {
        xf_jconf_fail(&p, "log_level",
                      "\"%.40s\" is not \"debug\", \"info\", \"warn\" or \"error\"", s);
        goto fail;
    }
    if (!(c->log_level = strdup(s))) { xf_jconf_fail(&p, "log_level", "out of memory"); goto fail; }

    if ((v = xf_jconf_get(root, "limits")) && parse_limits(&p, v, &c->limits) < 0) goto fail;

    v = xf_jconf_get(root, "listeners");
    if (!v) {
        xf_jconf_fail(&p, "listeners", "missing: at least one listener is required");
        goto fail;
    }
    if (!YAJL_IS_ARRAY(v)) {
        xf_jconf_fail(&p, "listeners", "must be an array, not %s", xf_jconf_type_name(v));
        goto fail;
    }
    if (v->u.array.len == 0) { xf_jconf_fail(&p, "listeners", "must not be empty"); goto fail; }
    if (v->u.array.len > 256) {
        xf_jconf_fail(&p, "listeners", "more than 256 listeners");
        goto fail;
    }
    if (!(c->listeners = calloc(v->u.array.len, sizeof *c->listeners))) {
        xf_jconf_fail(&p, "listeners", "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < v->u.array.len; i++) {
        if (parse_listener(&p, v->u.array.values[i], i, &c->listeners[i]) < 0) goto fail;
        for (size_t j = 0; j < i; j++) {
            if (same_endpoint(&c->listeners[i], &c->listeners[j])) {
                char key[32];
                snprintf(key, sizeof key, "listeners[%zu]", i);
                xf_jconf_fail(&p, key, "%s is already listeners[%zu]", c->listeners[i].name, j);
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

int xf_config_load(const char *path, xf_config **out, char *err, size_t errlen)
{
    xf_jconf p = { path, err, errlen };
    char *buf = NULL;
    size_t len = 0;
    xf_config *c = NULL;
    struct stat st;

    *out = NULL;
    if (xf_jconf_read_file(&p, XF_CONFIG_MAX_BYTES, XF_CONFIG_MAX_TEXT, &buf, &len) < 0)
        goto fail;
    if (xf_config_parse(buf, len, path, &c, err, errlen) < 0) goto fail;
    if (stat(c->tenants_dir, &st) < 0) {
        xf_jconf_fail(&p, "tenants", "%s: %s", c->tenants_dir, strerror(errno));
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        xf_jconf_fail(&p, "tenants", "%s: not a directory", c->tenants_dir);
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
