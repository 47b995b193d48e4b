/*
 * registry: the hosted tenants, one JSON file each in the tenants folder, loaded into an
 * immutable registry that connections share read-only (no locks on the data path).
 */
#ifndef XF_REGISTRY_H
#define XF_REGISTRY_H

#include <stddef.h>
#include <sys/socket.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/pk.h>

typedef struct xf_backend {
    char *spec;                        /* as configured, "127.0.0.1:15222" or "[::1]:15222" */
    struct sockaddr_storage addr;
    socklen_t addrlen;                 /* 0 when the tenant has no such backend */
} xf_backend;

enum xf_proxy_protocol { XF_PP_NONE = 0, XF_PP_V2 = 2 };

typedef struct xf_tenant {
    char *file;                        /* the tenant file it came from */
    char *domain;                      /* lower-case A-label, no trailing dot */
    char **aliases;                    /* lower-case, no trailing dot */
    size_t n_aliases;
    char *cert_path, *key_path;        /* resolved against the tenant file */
    mbedtls_x509_crt chain;            /* end entity first */
    mbedtls_pk_context key;
    xf_backend c2s, s2s;
    int proxy_protocol;                /* enum xf_proxy_protocol */
    int federation;                    /* enum xf_fed_policy (tenants/policy.h);
                                          default XF_FED_ENCRYPTED */
    unsigned char *alias_covered;      /* [n_aliases]: 1 if the certificate covers that
                                          alias (checked only when files are loaded; an
                                          uncovered alias is allowed, worth a log line) */
} xf_tenant;

typedef struct xf_registry xf_registry;

/* Load every *.json file of dir (sorted by name). On error returns -1 and writes
   "FILE: KEY: what is wrong" into err. Duplicate domains/aliases across files are errors,
   and so are a certificate that does not cover the domain, or a key not matching it. */
int xf_registry_load_dir(const char *dir, xf_registry **out, char *err, size_t errlen);
/* Parse one tenant file's bytes (no file I/O besides the certificate and key it names,
   resolved against `file`). Used by the loader and the fuzzer (load_files = 0 skips
   reading certificate and key). */
int xf_tenant_parse(const char *json, size_t len, const char *file, int load_files,
                    xf_tenant **out, char *err, size_t errlen);
void xf_tenant_free(xf_tenant *t);
void xf_registry_free(xf_registry *r);

size_t xf_registry_count(const xf_registry *r);
const xf_tenant *xf_registry_at(const xf_registry *r, size_t i);

/* Tenant whose domain or alias is `domain`: case-insensitive, a trailing dot ignored.
   NULL if none. */
const xf_tenant *xf_registry_find(const xf_registry *r, const char *domain);
/* Certificate selection for an SNI name: xf_registry_find() first, else a tenant whose
   certificate covers the name by a wildcard (xf_identity_covers_dns). NULL if none. */
const xf_tenant *xf_registry_for_sni(const xf_registry *r, const char *sni);

#endif
