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
#include "certs/pkix.h"
#include "proxy/tls_client.h"
#include "tenants/jsonconf.h"
#include "proxy/log.h"
#include "proxy/privdrop.h"
#include "proxy/tickets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define XF_CONFIG_MAX_BYTES (1u << 20)  /* a main config over 1 MiB is a mistake */
#define XF_CONFIG_MAX_TEXT "1048576 bytes"   /* XF_CONFIG_MAX_BYTES, for the message */
_Static_assert(XF_CONFIG_MAX_BYTES == 1048576, "XF_CONFIG_MAX_TEXT is out of date");

static const char *const top_keys[] = {
    "workers", "tenants", "listeners", "limits", "log_level", "federation", "hosting",
    "user", "group", "key_permissions", "log_format",
    "admin", "watch", "session_tickets", NULL };
static const char *const listener_keys[] = {
    "address", "port", "tls", "service", "transparent", "allow_public", NULL };
static const char *const limit_keys[] = {
    "handshake_timeout_s", "max_header_bytes", "max_connections",
    "max_connections_per_ip", "backend_timeout_s", "drain_timeout_s",
    "idle_timeout_s", "buffer_high_bytes", "buffer_low_bytes",
    "auth_timeout_s", "max_unauthenticated_per_ip", "ipv6_prefix", "tcp_keepalive_s", NULL };

/* Boolean member k of o into *out (absent: *out unchanged). */
static int get_bool(const xf_jconf *p, yajl_val o, const char *k, const char *key, int *out)
{
    yajl_val v = xf_jconf_get(o, k);
    if (!v) return 0;
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
        return xf_jconf_fail(p, key, "must be a boolean, not %s", xf_jconf_type_name(v));
    *out = YAJL_IS_TRUE(v) ? 1 : 0;
    return 0;
}

/* The outbound listener's rules (issue 7): the backends' outgoing s2s arrives in
   plaintext, so "service": "outbound" goes with "tls": "none" and nothing else does;
   "transparent" and "allow_public" exist only there. The listener is implemented
   by the outbound session; here the fields are checked and stored. */
static int parse_outbound(const xf_jconf *p, yajl_val o, size_t i, xf_listener_conf *l)
{
    char key[64];
    int out = l->service == XF_SVC_OUTBOUND;
    snprintf(key, sizeof key, "listeners[%zu].tls", i);
    if (out && l->tls != XF_TLS_NONE)
        return xf_jconf_fail(p, key, "must be \"none\" for \"service\": \"outbound\" "
                             "(the backend speaks plaintext; TLS is toward the remote)");
    if (!out && l->tls == XF_TLS_NONE)
        return xf_jconf_fail(p, key, "\"none\" is only for \"service\": \"outbound\"");
    static const char *const only_out[] = { "transparent", "allow_public" };
    for (size_t k = 0; k < 2; k++) {
        snprintf(key, sizeof key, "listeners[%zu].%s", i, only_out[k]);
        if (!out && xf_jconf_get(o, only_out[k]))
            return xf_jconf_fail(p, key, "only for \"service\": \"outbound\"");
    }
    snprintf(key, sizeof key, "listeners[%zu].transparent", i);
    if (get_bool(p, o, "transparent", key, &l->transparent) < 0) return -1;
    snprintf(key, sizeof key, "listeners[%zu].allow_public", i);
    if (get_bool(p, o, "allow_public", key, &l->allow_public) < 0) return -1;
    return 0;
}

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
    if (!s) return xf_jconf_fail(p, key, "missing (\"starttls\", \"direct\" or \"none\")");
    if (strcmp(s, "starttls") == 0) l->tls = XF_TLS_STARTTLS;
    else if (strcmp(s, "direct") == 0) l->tls = XF_TLS_DIRECT;
    else if (strcmp(s, "none") == 0) l->tls = XF_TLS_NONE;
    else return xf_jconf_fail(p, key, "\"%.40s\" is not \"starttls\", \"direct\" or "
                              "\"none\"", s);

    snprintf(key, sizeof key, "listeners[%zu].service", i);
    if (xf_jconf_get_str(p, o, "service", key, &s) < 0) return -1;
    if (!s) return xf_jconf_fail(p, key, "missing (\"client\", \"server\", \"auto\" or "
                                 "\"outbound\")");
    if (strcmp(s, "client") == 0) l->service = XF_SVC_CLIENT;
    else if (strcmp(s, "server") == 0) l->service = XF_SVC_SERVER;
    else if (strcmp(s, "auto") == 0) l->service = XF_SVC_AUTO;
    else if (strcmp(s, "outbound") == 0) l->service = XF_SVC_OUTBOUND;
    else return xf_jconf_fail(p, key, "\"%.40s\" is not \"client\", \"server\", \"auto\" "
                              "or \"outbound\"", s);
    if (parse_outbound(p, o, i, l) < 0) return -1;

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
    LIM(auth_timeout_s, 1, 3600);
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

static const char *const federation_keys[] = {
    "ca_file", "resolvers", "dialback_secret_file", "connect_timeout_s",
    "negotiation_timeout_s", NULL };

/* One resolver: "IPv4", "IPv4:port", "IPv6", "[IPv6]" or "[IPv6]:port" -> the
   canonical "IPv4:port" / "[IPv6]:port" (port 53 by default) in out. */
static int parse_resolver(const xf_jconf *p, const char *key, const char *s,
                          char *out, size_t outlen)
{
    char host[64], canon[INET6_ADDRSTRLEN];
    const char *hs = s, *he, *ps = NULL;
    unsigned long port = 53;
    unsigned char bin[16];
    int fam;

    if (s[0] == '[') {
        hs = s + 1;
        if (!(he = strchr(hs, ']')) || (he[1] && he[1] != ':'))
            return xf_jconf_fail(p, key, "\"%.80s\" is not \"[IPv6]\" or \"[IPv6]:port\"", s);
        if (he[1] == ':') ps = he + 2;
        fam = AF_INET6;
    } else if (strchr(s, ':') != strrchr(s, ':')) {
        he = s + strlen(s);            /* bare IPv6, no port */
        fam = AF_INET6;
    } else {
        const char *c = strchr(s, ':');
        he = c ? c : s + strlen(s);
        if (c) ps = c + 1;
        fam = AF_INET;
    }
    if (ps) {
        size_t pl = strlen(ps);
        if (pl == 0 || pl > 5 || strspn(ps, "0123456789") != pl ||
            (port = strtoul(ps, NULL, 10)) < 1 || port > 65535)
            return xf_jconf_fail(p, key, "\"%.80s\": port must be 1..65535", s);
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof host ||
        (memcpy(host, hs, hl), host[hl] = '\0', inet_pton(fam, host, bin) != 1))
        return xf_jconf_fail(p, key, "\"%.80s\" is not an IP address with an optional port "
                             "(host names are not resolved)", s);
    inet_ntop(fam, bin, canon, sizeof canon);
    snprintf(out, outlen, fam == AF_INET6 ? "[%s]:%lu" : "%s:%lu", canon, port);
    return 0;
}

static int parse_federation(const xf_jconf *p, yajl_val o, xf_federation_conf *f)
{
    const char *s;
    yajl_val v;
    char key[48];

    if (!YAJL_IS_OBJECT(o))
        return xf_jconf_fail(p, "federation", "must be an object, not %s",
                             xf_jconf_type_name(o));
    if (xf_jconf_check_keys(p, o, "federation.", federation_keys) < 0) return -1;

    if (xf_jconf_get_str(p, o, "ca_file", "federation.ca_file", &s) < 0) return -1;
    if (s) {
        char *r = xf_jconf_resolve_path(p->file, s);
        if (!r) return xf_jconf_fail(p, "federation.ca_file", "out of memory");
        free(f->ca_file);
        f->ca_file = r;
    }
    if (xf_jconf_get_str(p, o, "dialback_secret_file", "federation.dialback_secret_file",
                         &s) < 0)
        return -1;
    if (s && !(f->dialback_secret_file = xf_jconf_resolve_path(p->file, s)))
        return xf_jconf_fail(p, "federation.dialback_secret_file", "out of memory");
    if (xf_jconf_get_uint(p, o, "connect_timeout_s", "federation.connect_timeout_s", 1, 3600,
                          &f->connect_timeout_s) < 0 ||
        xf_jconf_get_uint(p, o, "negotiation_timeout_s", "federation.negotiation_timeout_s",
                          1, 3600, &f->negotiation_timeout_s) < 0)
        return -1;

    if ((v = xf_jconf_get(o, "resolvers"))) {
        if (!YAJL_IS_ARRAY(v))
            return xf_jconf_fail(p, "federation.resolvers", "must be an array of strings, "
                                 "not %s", xf_jconf_type_name(v));
        size_t n = v->u.array.len;
        if (n == 0)
            return xf_jconf_fail(p, "federation.resolvers", "must not be empty (leave it "
                                 "out to use /etc/resolv.conf)");
        if (n > XF_FED_MAX_RESOLVERS)
            return xf_jconf_fail(p, "federation.resolvers", "more than %d resolvers",
                                 XF_FED_MAX_RESOLVERS);
        if (!(f->resolvers = calloc(n, sizeof *f->resolvers)))
            return xf_jconf_fail(p, "federation.resolvers", "out of memory");
        for (size_t i = 0; i < n; i++) {
            yajl_val e = v->u.array.values[i];
            char canon[80];
            snprintf(key, sizeof key, "federation.resolvers[%zu]", i);
            if (!YAJL_IS_STRING(e))
                return xf_jconf_fail(p, key, "must be a string, not %s", xf_jconf_type_name(e));
            if (parse_resolver(p, key, e->u.string, canon, sizeof canon) < 0) return -1;
            if (!(f->resolvers[i] = strdup(canon))) return xf_jconf_fail(p, key, "out of memory");
            f->n_resolvers = i + 1;
        }
    }
    return 0;
}

static const char *const hosting_keys[] = {
    "name", "certificate", "key", "next_certificate", "next_key", NULL };

/* hosting.<k>: a path resolved against the main file into *out (absent: NULL). */
static int hosting_path(const xf_jconf *p, yajl_val o, const char *k, char **out)
{
    char key[40];
    const char *s;
    snprintf(key, sizeof key, "hosting.%s", k);
    if (xf_jconf_get_str(p, o, k, key, &s) < 0) return -1;
    if (s && !(*out = xf_jconf_resolve_path(p->file, s)))
        return xf_jconf_fail(p, key, "out of memory");
    return 0;
}

/* The hosting identity (design.md §2): name, certificate and key required;
   next_certificate and next_key both or neither. Files are read by xf_config_load. */
static int parse_hosting(const xf_jconf *p, yajl_val o, xf_hosting_conf *h)
{
    char name[XF_REGISTRY_NAME_MAX + 1];
    const char *s, *why;
    if (!YAJL_IS_OBJECT(o))
        return xf_jconf_fail(p, "hosting", "must be an object, not %s", xf_jconf_type_name(o));
    if (xf_jconf_check_keys(p, o, "hosting.", hosting_keys) < 0) return -1;
    if (xf_jconf_get_str(p, o, "name", "hosting.name", &s) < 0) return -1;
    if (!s) return xf_jconf_fail(p, "hosting.name", "missing (the provider's own host name)");
    if ((why = xf_registry_normalise_name(s, name)))
        return xf_jconf_fail(p, "hosting.name", "\"%.80s\" %s", s, why);
    if (!(h->name = strdup(name))) return xf_jconf_fail(p, "hosting.name", "out of memory");
    if (hosting_path(p, o, "certificate", &h->certificate) < 0 ||
        hosting_path(p, o, "key", &h->key) < 0 ||
        hosting_path(p, o, "next_certificate", &h->next_certificate) < 0 ||
        hosting_path(p, o, "next_key", &h->next_key) < 0)
        return -1;
    if (!h->certificate) return xf_jconf_fail(p, "hosting.certificate", "missing");
    if (!h->key) return xf_jconf_fail(p, "hosting.key", "missing");
    if (h->next_certificate && !h->next_key)
        return xf_jconf_fail(p, "hosting.next_key", "missing (next_certificate is given)");
    if (h->next_key && !h->next_certificate)
        return xf_jconf_fail(p, "hosting.next_certificate", "missing (next_key is given)");
    return 0;
}

static const char *const admin_keys[] = { "address", "port", "per_tenant_metrics", NULL };

/* "admin": false | true | {"address": IP literal (default 127.0.0.1), "port": 0..65535
   (default 8269, 0 = off), "per_tenant_metrics": bool}; absent = the defaults, not
   "configured" (see config.h). */
static int parse_admin(const xf_jconf *p, yajl_val o, xf_admin_conf *a)
{
    const char *s = "127.0.0.1";
    unsigned port = 8269;
    *a = (xf_admin_conf){ .enabled = 1, .configured = o != NULL };
    if (o && (YAJL_IS_TRUE(o) || YAJL_IS_FALSE(o))) {
        a->enabled = YAJL_IS_TRUE(o);
    } else if (o) {
        if (!YAJL_IS_OBJECT(o))
            return xf_jconf_fail(p, "admin", "must be an object or a boolean, not %s",
                                 xf_jconf_type_name(o));
        if (xf_jconf_check_keys(p, o, "admin.", admin_keys) < 0 ||
            xf_jconf_get_uint(p, o, "port", "admin.port", 0, 65535, &port) < 0 ||
            get_bool(p, o, "per_tenant_metrics", "admin.per_tenant_metrics",
                     &a->per_tenant_metrics) < 0 ||
            xf_jconf_get_str(p, o, "address", "admin.address", &s) < 0)
            return -1;
        if (!s) s = "127.0.0.1";
        a->enabled = port != 0;
    }
    char host[64];
    size_t sl = strlen(s);
    if (s[0] == '[' && sl >= 2 && s[sl - 1] == ']') { s++; sl -= 2; }
    if (sl >= sizeof host) return xf_jconf_fail(p, "admin.address", "too long");
    memcpy(host, s, sl);
    host[sl] = '\0';
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a->addr;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&a->addr;
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        a->addrlen = sizeof *a6;
        snprintf(a->name, sizeof a->name, "[%s]:%u", host, port);
    } else if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        a->addrlen = sizeof *a4;
        snprintf(a->name, sizeof a->name, "%s:%u", host, port);
    } else {
        return xf_jconf_fail(p, "admin.address", "\"%.64s\" is not an IPv4 or IPv6 "
                             "address (host names are not resolved)", host);
    }
    return 0;
}

/* "user", "group", "key_permissions", "log_format" (docs/process.md). Names are
   resolved at start (xf_privdrop_resolve), not here: the file can be checked elsewhere. */
static int parse_process(const xf_jconf *p, yajl_val root, xf_config *c)
{
    static const char *const kp[] = { "warn", "refuse", "ignore", NULL };
    static const char *const lf[] = { "text", "json", NULL };
    _Static_assert(XF_KEYPERM_REFUSE == 1 && XF_KEYPERM_IGNORE == 2 && XF_LOG_JSON == 1,
                   "names[] follow the enums");
    const char *s;
    for (int i = 0; i < 2; i++) {
        const char *k = i ? "group" : "user";
        if (xf_jconf_get_str(p, root, k, k, &s) < 0) return -1;
        if (!s) continue;
        if (!*s || strlen(s) > 32 || strpbrk(s, ":/ \t\n"))
            return xf_jconf_fail(p, k, "\"%.40s\" is not a user or group name", s);
        if (!(*(i ? &c->group : &c->user) = strdup(s))) return xf_jconf_fail(p, k, "out of memory");
    }
    if (c->group && !c->user)
        return xf_jconf_fail(p, "group", "needs \"user\" (the user to drop to)");
    for (int i = 0; i < 2; i++) {
        const char *k = i ? "log_format" : "key_permissions";
        const char *const *names = i ? lf : kp;
        int v = 0;
        if (xf_jconf_get_str(p, root, k, k, &s) < 0) return -1;
        if (!s) continue;
        while (names[v] && strcmp(names[v], s)) v++;
        if (!names[v])
            return xf_jconf_fail(p, k, i ? "\"%.40s\" is not \"text\" or \"json\""
                                 : "\"%.40s\" is not \"warn\", \"refuse\" or \"ignore\"", s);
        *(i ? &c->log_format : &c->key_permissions) = v;
    }
    return 0;
}

static void hosting_free(xf_hosting_conf *h)
{
    free(h->name);
    free(h->certificate);
    free(h->key);
    free(h->next_certificate);
    free(h->next_key);
}

/* The random dialback secret: 32 bytes from getrandom(2), made once per process so
   that keys survive a reload (XEP-0185 keys are checked statelessly). NULL if the
   kernel gave no randomness. */
static char g_random_secret[65];
static int g_random_ok;
static void make_random_secret(void)
{
    unsigned char b[32];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(g_random_secret + 2 * i, 3, "%02x", b[i]);
    g_random_ok = 1;
}

#define XF_SECRET_MAX 4096

/* Fill c->federation.dialback_secret (see config.h). */
static int load_secret(const xf_jconf *p, xf_federation_conf *f)
{
    const char *key = "federation.dialback_secret_file";
    if (!f->dialback_secret_file) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, make_random_secret);
        if (!g_random_ok) return xf_jconf_fail(p, key, "no randomness for a dialback secret");
        if (!(f->dialback_secret = strdup(g_random_secret)))
            return xf_jconf_fail(p, key, "out of memory");
        return 0;
    }
    const char *path = f->dialback_secret_file;
    struct stat st;
    char buf[XF_SECRET_MAX + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return xf_jconf_fail(p, key, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return xf_jconf_fail(p, key, "%s: not a regular file", path);
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        close(fd);
        return xf_jconf_fail(p, key, "%s: is accessible by all users (mode %04o); "
                             "chmod o-rwx it", path, (unsigned)(st.st_mode & 07777));
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return xf_jconf_fail(p, key, "%s: %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n == sizeof buf) break;
    }
    close(fd);
    if (n > XF_SECRET_MAX)
        return xf_jconf_fail(p, key, "%s: larger than %d bytes", path, XF_SECRET_MAX);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                 buf[n - 1] == '\t'))
        n--;
    if (n == 0) return xf_jconf_fail(p, key, "%s: is empty", path);
    if (memchr(buf, '\0', n)) return xf_jconf_fail(p, key, "%s: contains a NUL byte", path);
    buf[n] = '\0';
    f->dialback_secret = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    if (!f->dialback_secret) return xf_jconf_fail(p, key, "out of memory");
    return 0;
}

static void federation_free(xf_federation_conf *f)
{
    free(f->ca_file);
    for (size_t i = 0; i < f->n_resolvers; i++) free(f->resolvers[i]);
    free(f->resolvers);
    free(f->dialback_secret_file);
    if (f->dialback_secret) {
        explicit_bzero(f->dialback_secret, strlen(f->dialback_secret));
        free(f->dialback_secret);
    }
}

static void config_free(xf_config *c)
{
    if (!c) return;
    xf_tls_client_free(c->tlsc);       /* before the registry its configurations name */
    xf_tickets_free(c->tickets);
    federation_free(&c->federation);
    hosting_free(&c->hosting);
    free(c->path);
    free(c->tenants_dir);
    free(c->listeners);
    free(c->log_level);
    free(c->user);
    free(c->group);
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
    c->limits.auth_timeout_s = 60;
    c->federation.connect_timeout_s = 10;
    c->federation.negotiation_timeout_s = 30;
    if (!(c->path = strdup(p.file)) ||
        !(c->federation.ca_file = strdup(XF_PKIX_SYSTEM_BUNDLE))) {
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

    if (parse_process(&p, root, c) < 0) goto fail;
    c->watch = 1;                      /* "watch": reload on file changes (proxy/watch.h) */
    if (get_bool(&p, root, "watch", "watch", &c->watch) < 0) goto fail;
    if ((v = xf_jconf_get(root, "limits")) && parse_limits(&p, v, &c->limits) < 0) goto fail;
    if ((v = xf_jconf_get(root, "federation")) &&
        parse_federation(&p, v, &c->federation) < 0)
        goto fail;
    if ((v = xf_jconf_get(root, "hosting")) && parse_hosting(&p, v, &c->hosting) < 0)
        goto fail;
    if (parse_admin(&p, xf_jconf_get(root, "admin"), &c->admin) < 0) goto fail;
    if (xf_tickets_parse(&p, xf_jconf_get(root, "session_tickets"), &c->tickets) < 0) goto fail;

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
    if (load_secret(&p, &c->federation) < 0) goto fail;
    if (xf_tickets_load(&p, c->tickets) < 0) goto fail;
    if (stat(c->tenants_dir, &st) < 0) {
        xf_jconf_fail(&p, "tenants", "%s: %s", c->tenants_dir, strerror(errno));
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        xf_jconf_fail(&p, "tenants", "%s: not a directory", c->tenants_dir);
        goto fail;
    }
    const xf_hosting_conf *h = &c->hosting;
    xf_hosting_spec hs = { c->path, h->name, h->certificate, h->key, h->next_certificate,
                           h->next_key };
    if (xf_registry_load(c->tenants_dir, h->name ? &hs : NULL, &c->registry, err, errlen) < 0)
        goto fail;
    if (xf_keyperm_check(c, err, errlen) < 0) goto fail;
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
