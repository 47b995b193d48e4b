/*
 * cred: shared, refcounted certificate chain + private key pairs (tenants/cred.c).
 * Private to tenants/: the registry loads a tenant's pairs through it; everyone else
 * sees only the read-only views in xf_tenant (registry.h).
 */
#ifndef XF_CRED_H
#define XF_CRED_H

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include "tenants/jsonconf.h"

struct xf_cred;

/* Load a certificate chain (PEM or DER) and its key, check that they pair and that the
   leaf covers `name` (xf_identity_covers_dns). ckey/kkey are the KEYs named in errors
   ("certificate"/"key", "next_certificate"/"next_key", "hosting.certificate"...);
   `what` says what name is ("domain", "hosting name"). On success *cred gets a
   reference to the shared pair (another live registry's, when it loaded the same
   bytes) and *chain and *key shallow, read-only views of its head structures: never
   free them, drop *cred instead. On error -1 with p's err written, nothing held. Any
   thread. */
int xf_cred_load(const xf_jconf *p, const char *ckey, const char *kkey,
                 const char *cert_path, const char *key_path, const char *name,
                 const char *what, struct xf_cred **cred, mbedtls_x509_crt *chain,
                 mbedtls_pk_context *key);

/* Drop one reference (NULL: nothing); the last one frees the pair. Any thread. */
void xf_cred_release(struct xf_cred *c);

#endif
