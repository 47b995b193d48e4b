/*
 * config: the main JSON configuration (parsed with yajl) plus the tenant registry it
 * names, as one immutable, reference-counted snapshot. A connection holds a reference
 * to the snapshot it started with.
 */
#ifndef XF_CONFIG_H
#define XF_CONFIG_H

#include <stddef.h>
#include <sys/socket.h>
#include "tenants/registry.h"

enum xf_tls_mode { XF_TLS_STARTTLS = 1, XF_TLS_DIRECT = 2,
                   XF_TLS_NONE = 3 /* plaintext: outbound listeners only */ };
enum xf_svc { XF_SVC_CLIENT = 1, XF_SVC_SERVER = 2, XF_SVC_AUTO = 3,
              XF_SVC_OUTBOUND = 4 /* the backends' outgoing s2s (issue 7) */ };

typedef struct xf_listener_conf {
    char name[80];                     /* "[::]:5222" — used in logs */
    char address[64];
    int port;
    int tls;                           /* enum xf_tls_mode */
    int service;                       /* enum xf_svc */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int transparent;                   /* outbound only: 1 = connections redirected by
                                          netfilter REDIRECT (SO_ORIGINAL_DST logged) */
    int allow_public;                  /* outbound only: 1 = accept peers that are not
                                          loopback/private (default 0: no open relay) */
} xf_listener_conf;

typedef struct xf_limits {
    unsigned handshake_timeout_s;      /* accept -> stream routed; default 30 */
    unsigned max_header_bytes;         /* stream header and pre-TLS elements; default 8192 */
    unsigned max_connections;          /* whole process; default 100000 */
    unsigned max_connections_per_ip;   /* per address or IPv6 prefix; default 1000, 0 = unlimited */
    unsigned backend_timeout_s;        /* backend connect + first response; default 10 */
    unsigned drain_timeout_s;          /* SIGTERM drain deadline; default 30 */
    unsigned idle_timeout_s;           /* no bytes either way; default 0 = never */
    unsigned buffer_high_bytes;        /* backpressure high watermark; default 262144 */
    unsigned buffer_low_bytes;         /* resume below; default 65536 */
    unsigned auth_timeout_s;           /* routing -> SASL success / db:result valid; default 60 */
    unsigned max_unauthenticated_per_ip; /* not yet authenticated; default 100, 0 = unlimited */
    unsigned ipv6_prefix;              /* per-address limits count IPv6 by /N; default 64 */
    unsigned tcp_keepalive_s;          /* idle before keepalive probes; default 60, 0 = off */
} xf_limits;

#define XF_FED_MAX_RESOLVERS 16

/* Main file "federation" object (docs/configuration.md). */
typedef struct xf_federation_conf {
    char *ca_file;                     /* resolved path; default XF_PKIX_SYSTEM_BUNDLE */
    char **resolvers;                  /* normalised "IPv4:port" / "[IPv6]:port" (port 53
                                          when not given); n_resolvers 0 = use
                                          /etc/resolv.conf */
    size_t n_resolvers;
    char *dialback_secret_file;        /* resolved path, or NULL = random per start */
    char *dialback_secret;             /* set by xf_config_load (NULL after parse only):
                                          the file's content without trailing
                                          whitespace, or 64 hex digits of a random
                                          32-byte secret made once per process */
    unsigned connect_timeout_s;        /* TCP connect per address; default 10 */
    unsigned negotiation_timeout_s;    /* TLS + stream + auth to the remote; default 30 */
} xf_federation_conf;

/* Main file "hosting" object (docs/configuration.md): the provider's own identity,
   served for tenants without a certificate of their own (or with "present":
   "hosting") and for the hosting name itself. name NULL = no hosting object. */
typedef struct xf_hosting_conf {
    char *name;                        /* normalised DNS name */
    char *certificate, *key;           /* resolved paths */
    char *next_certificate, *next_key; /* resolved paths, or NULL (both or neither) */
} xf_hosting_conf;

/* Main file "admin" object (docs/configuration.md, docs/metrics.md): the HTTP listener
   for /metrics, /healthz and /readyz (proxy/admin.h). Absent = on at 127.0.0.1:8269,
   best effort (a bind failure is a warning); given = a bind failure stops the start. */
typedef struct xf_admin_conf {
    int enabled;                       /* 0: "admin": false or "port": 0 */
    int configured;                    /* the file has an "admin" key */
    char name[80];                     /* "127.0.0.1:8269", for logs */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int per_tenant_metrics;            /* xmppfront_tenant_connections; default 0 */
} xf_admin_conf;

typedef struct xf_config {
    char *path;                        /* main config file */
    unsigned workers;                  /* 0 in the file = one per core (resolved at load) */
    char *tenants_dir;                 /* resolved against the main file */
    xf_listener_conf *listeners;
    size_t n_listeners;
    xf_limits limits;
    char *log_level;                   /* "debug" | "info" | "warn" | "error"; default info */
    xf_federation_conf federation;
    xf_hosting_conf hosting;
    xf_admin_conf admin;
    xf_registry *registry;
    /* Process (docs/process.md): "user"/"group" to drop to after binding (NULL = none;
       "group" needs "user", default the user's primary group); "key_permissions"
       (enum xf_keyperm, proxy/privdrop.h; default warn); "log_format" (enum
       xf_log_format, proxy/log.h; default text). */
    char *user, *group;
    int key_permissions;
    int log_format;
    int watch;                         /* top-level "watch" (default true): reload when the
                                          tenants folder, the main file or a certificate /
                                          key file changes (proxy/watch.h) */
    struct xf_tickets *tickets;        /* top-level "session_tickets" (proxy/tickets.h):
                                          never NULL after xf_config_parse; its secret
                                          is read by xf_config_load. Owned */
    struct xf_tls_client *tlsc;        /* the client TLS of s2s streams opened with this
                                          snapshot (proxy/tls_client.h), built by
                                          xf_reload_load; NULL after xf_config_load alone.
                                          Owned: freed with the snapshot */
    int refs;                          /* atomic via __atomic builtins */
} xf_config;

/* Parse the main file's bytes (no file I/O; tenants not loaded). `path` names the file
   in errors and anchors relative paths. Returns 0, or -1 with "FILE: KEY: problem". */
int xf_config_parse(const char *json, size_t len, const char *path, xf_config **out,
                    char *err, size_t errlen);
/* Read and parse the main file, read the dialback secret (federation.
   dialback_secret_file: a regular, non-empty file that is not world-readable; else
   the per-process random secret), then load the hosting identity's certificate and
   key (if any) and the tenant registry it names (xf_registry_load). */
int xf_config_load(const char *path, xf_config **out, char *err, size_t errlen);
xf_config *xf_config_ref(xf_config *c);
void xf_config_unref(xf_config *c);

#endif
