/*
 * cred: shared, refcounted certificate chain + private key pairs (tenants/cred.c).
 * Private to tenants/: the registry loads a tenant's pairs through it; everyone else
 * sees only the read-only views in xf_tenant (registry.h).
 */
#ifndef XF_CRED_H
#define XF_CRED_H

#include <stddef.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>               /* MBEDTLS_SSL_OUT_CONTENT_LEN, with its default */
#include <mbedtls/x509_crt.h>
#include "tenants/jsonconf.h"

struct xf_cred;

/* Load a certificate chain (PEM or DER) and its key, check that they pair and that the
   leaf covers `name` (xf_identity_covers_dns). ckey/kkey are the KEYs named in errors
   ("certificate"/"key", "next_certificate"/"next_key", "hosting.certificate"...);
   `what` says what name is ("domain", "hosting name"). On success *cred gets a
   reference to the shared pair (another live registry's, when it loaded the same
   bytes) and *chain and *key shallow, read-only views of its head structures: never
   free them, drop *cred instead. A chain whose Certificate message exceeds
   XF_CRED_TLS_OUT_LEN is refused (xf_cred_check_msg_len). On error -1 with p's err
   written, nothing held. Any thread. */
int xf_cred_load(const xf_jconf *p, const char *ckey, const char *kkey,
                 const char *cert_path, const char *key_path, const char *name,
                 const char *what, struct xf_cred **cred, mbedtls_x509_crt *chain,
                 mbedtls_pk_context *key);

/* Drop one reference (NULL: nothing); the last one frees the pair. Any thread. */
void xf_cred_release(struct xf_cred *c);

/* The TLS output buffer of the mbedTLS this program is compiled against: 16384 by
   default (Debian's packages), 4096 with -DXF_MBEDTLS_FROM_SOURCE=ON
   (deploy/mbedtls/xf_proxy_config.h, docs/build.md). mbedTLS 3.6 does not fragment an
   outgoing handshake message, so every TLS Certificate message must fit in it. */
#define XF_CRED_TLS_OUT_LEN ((size_t)MBEDTLS_SSL_OUT_CONTENT_LEN)

/* Bytes of the TLS Certificate handshake message that sends `chain` (every certificate
   of it, in order), header included: the larger of TLS 1.3's (4 + 1 + 3 +
   sum(3 + DER + 2)) and TLS 1.2's (4 + 3 + sum(3 + DER)). An empty chain: 8. */
size_t xf_cred_cert_msg_len(const mbedtls_x509_crt *chain);

/* 0 if chain's Certificate message fits in `limit` bytes, else -1 with err =
   "FILE: KEY: CERT_PATH: chain needs a N-byte TLS Certificate message, over this
   build's LIMIT-byte TLS output buffer (MBEDTLS_SSL_OUT_CONTENT_LEN; docs/build.md)". */
int xf_cred_check_msg_len(const xf_jconf *p, const char *ckey, const char *cert_path,
                          const mbedtls_x509_crt *chain, size_t limit);

#endif
