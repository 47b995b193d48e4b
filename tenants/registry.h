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
#include "tenants/policy.h"

typedef struct xf_backend {
    char *spec;                        /* as configured, "127.0.0.1:15222" or "[::1]:15222" */
    struct sockaddr_storage addr;
    socklen_t addrlen;                 /* 0 when the tenant has no such backend */
} xf_backend;

enum xf_proxy_protocol { XF_PP_NONE = 0, XF_PP_V2 = 2 };

/* Which certificate a peer sees for the tenant (design.md §2 "Which certificate a peer
   sees"): its own, or the hosting identity's (the main file's "hosting" object). */
enum xf_present { XF_PRESENT_OWN = 0, XF_PRESENT_HOSTING = 1 };

struct xf_cred;                        /* a shared, parsed certificate chain + key */

typedef struct xf_tenant {
    char *file;                        /* the tenant file it came from */
    char *domain;                      /* lower-case A-label, no trailing dot */
    char **aliases;                    /* lower-case, no trailing dot */
    size_t n_aliases;
    int present;                       /* enum xf_present. Tenant file "present":
                                          "own" (default when a certificate is named)
                                          or "hosting" (default without one) */
    char *cert_path, *key_path;        /* resolved against the tenant file; NULL for
                                          XF_PRESENT_HOSTING */
    mbedtls_x509_crt chain;            /* the tenant's own, end entity first; empty
                                          (raw.p NULL) for XF_PRESENT_HOSTING: what is
                                          served is xf_tenant_tls_chain() */
    mbedtls_pk_context key;
    /* Once loaded, chain and key (and next_chain / next_key) are shallow copies of the
       head structures of a credential shared by every registry that loaded the same
       bytes (cred / next_cred, refcounted; xf_tenant_free drops the reference).
       Read-only: never free or modify them, never copy them further. */
    struct xf_cred *cred, *next_cred;
    size_t index;                      /* xf_registry_at(r, index) == this tenant, once
                                          loaded into registry r (SIZE_MAX for the
                                          hosting identity and a parsed-only tenant) */
    /* Key rollover: the next certificate and key (tenant file "next_certificate" /
       "next_key"), loaded and checked like the current pair but not served yet; their
       TLSA and POSH are published beside the current ones (`xmppfront records`).
       NULL paths and an empty chain when not configured. */
    char *next_cert_path, *next_key_path;
    mbedtls_x509_crt next_chain;
    mbedtls_pk_context next_key;
    const struct xf_tenant *hosting;   /* XF_PRESENT_HOSTING, once loaded into a
                                          registry: its hosting identity */
    xf_backend c2s, s2s;
    xf_backend http;                   /* "http_backend": the tenant's web, plaintext
                                          HTTP/1.1, for every request on an auto
                                          listener other than the POSH documents
                                          (proxy/http.h); addrlen 0 = none (404) */
    int proxy_protocol;                /* enum xf_proxy_protocol */
    int federation;                    /* enum xf_fed_policy (tenants/policy.h);
                                          default XF_FED_ENCRYPTED */
    xf_proof_order proofs;             /* tenant file "proofs": the certificate
                                          prooftypes accepted, in order of preference
                                          (tenants/policy.h); default dane, pkix,
                                          posh; empty = dialback only (not with
                                          trusted) */
    unsigned char *alias_covered;      /* [n_aliases]: 1 if the certificate covers that
                                          alias (checked only when files are loaded; an
                                          uncovered alias is allowed, worth a log line) */
} xf_tenant;

typedef struct xf_registry xf_registry;

/* The hosting identity (main file "hosting", proxy/config.h): the provider's own name,
   certificate and key, presented for every XF_PRESENT_HOSTING tenant and for the
   hosting name itself. Paths are resolved already; next_* are NULL when absent.
   `file` and `key_prefix` ("hosting.") name the main file's keys in errors. */
typedef struct xf_hosting_spec {
    const char *file;
    const char *name;                  /* normalised (xf_registry_normalise_name) */
    const char *cert_path, *key_path;
    const char *next_cert_path, *next_key_path;
} xf_hosting_spec;

/* Load every *.json file of dir (sorted by name). On error returns -1 and writes
   "FILE: KEY: what is wrong" into err. Duplicate domains/aliases across files are errors,
   and so are a certificate that does not cover the domain, or a key not matching it
   (current and next pair alike). hosting (may be NULL) is loaded first, into the
   registry: its certificate must cover its name and its key match; a tenant that
   presents the hosting certificate without a hosting identity is an error
   ("certificate: missing ..."). The files are parsed on up to 4 threads (never more
   than the CPUs the process may run on); the error reported is still the first in
   file order. A certificate+key pair whose bytes another live registry loaded already
   is shared with it, not parsed again (tenants/cred.c, "shared credentials"). Any
   thread. */
int xf_registry_load(const char *dir, const xf_hosting_spec *hosting, xf_registry **out,
                     char *err, size_t errlen);
/* xf_registry_load(dir, NULL, ...). */
int xf_registry_load_dir(const char *dir, xf_registry **out, char *err, size_t errlen);
/* Parse one tenant file's bytes (no file I/O besides the certificate and key it names,
   resolved against `file`). Used by the loader and the fuzzer (load_files = 0 skips
   reading certificate and key). */
int xf_tenant_parse(const char *json, size_t len, const char *file, int load_files,
                    xf_tenant **out, char *err, size_t errlen);
void xf_tenant_free(xf_tenant *t);
void xf_registry_free(xf_registry *r);

/* The hosting identity as a tenant record (domain = the hosting name, no backends,
   never returned by xf_registry_find), or NULL when none is configured. */
const xf_tenant *xf_registry_hosting(const xf_registry *r);

/* The certificate chain and key served for t: its own, or for XF_PRESENT_HOSTING its
   hosting identity's. Read-only (mbedTLS takes non-const pointers). The chain is empty
   for a hosting-served tenant parsed without a registry (load_files = 0). */
const mbedtls_x509_crt *xf_tenant_tls_chain(const xf_tenant *t);
const mbedtls_pk_context *xf_tenant_tls_key(const xf_tenant *t);

/* Normalise a DNS name into out (XF_REGISTRY_NAME_MAX + 1 bytes): ASCII lower case,
   one trailing dot dropped. Returns NULL, or why the name is not a valid host name
   (the rule applied to tenant domains and aliases and to the hosting name). */
#define XF_REGISTRY_NAME_MAX 253
const char *xf_registry_normalise_name(const char *in, char *out);

/* Shared credentials alive in the process (distinct certificate+key pairs held by
   any registry), and in *parsed (may be NULL) how many pairs were parsed and checked
   so far (the rest of the loads found theirs shared). For tests and the log. */
size_t xf_registry_shared_pairs(size_t *parsed);

size_t xf_registry_count(const xf_registry *r);
const xf_tenant *xf_registry_at(const xf_registry *r, size_t i);

/* Tenant whose domain or alias is `domain`: case-insensitive, a trailing dot ignored.
   NULL if none. */
const xf_tenant *xf_registry_find(const xf_registry *r, const char *domain);
/* Certificate selection for an SNI name: xf_registry_find() first, else a tenant whose
   own certificate covers the name by a wildcard (xf_identity_covers_dns), else the
   hosting identity when the name is the hosting name. NULL if none. */
const xf_tenant *xf_registry_for_sni(const xf_registry *r, const char *sni);

#endif
