/*
 * tls_client: the client-side mbedTLS configuration for s2s streams xmppfront opens
 * itself (proxy/remote.c), shared read-only by all workers after xf_tls_client_init.
 *
 * Per tenant two configurations (mbedTLS keeps ALPN on the config): one for direct TLS
 * (ALPN xmpp-server, XEP-0368 §3) and one for STARTTLS (no ALPN). Each presents the
 * tenant's own certificate and key, so that a remote can accept SASL EXTERNAL for the
 * tenant's domain (XEP-0178 §3). The CA set is federation.ca_file.
 *
 * Verification: authmode OPTIONAL. mbedTLS completes the handshake whatever the peer's
 * certificate; remote.c decides with certs/pkix.h + certs/identity.h against the remote
 * domain (the PKIX prooftype) and the tenant's policy, and logs the verdict.
 * Policy as proxy/tls.c (RFC 7590 / RFC 9325): TLS 1.2 and 1.3, ECDHE + AEAD only, no
 * renegotiation. psa_crypto_init() must already have run (xf_tls_init does it).
 */
#ifndef XF_TLS_CLIENT_H
#define XF_TLS_CLIENT_H

#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include "tenants/registry.h"

typedef struct xf_tls_client xf_tls_client;

/* Builds the configurations for every tenant of reg, with the CA certificates of
   ca_file (NULL = the system bundle). A CA file that cannot be read is not fatal: it
   is logged, and no remote certificate will then prove anything (PKIX invalid).
   Returns 0, or -1 with err set. */
int xf_tls_client_init(xf_tls_client **out, const xf_registry *reg, const char *ca_file,
                       char *err, size_t errlen);
void xf_tls_client_free(xf_tls_client *t);

/* The configuration for tenant t (direct: 1 = direct TLS with ALPN, 0 = STARTTLS);
   NULL when t is not in the registry given at init. */
const mbedtls_ssl_config *xf_tls_client_config(const xf_tls_client *t, const xf_tenant *tenant,
                                               int direct);
/* The trust anchors (for xf_pkix_check). Read-only use: mbedTLS takes non-const. */
mbedtls_x509_crt *xf_tls_client_ca(const xf_tls_client *t);
/* Number of CA certificates loaded (0 when ca_file could not be read). */
int xf_tls_client_ca_count(const xf_tls_client *t);

#endif
