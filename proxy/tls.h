/*
 * tls: the server-side mbedTLS configuration shared by all workers (read-only after
 * xf_tls_init), and the per-connection certificate choice (RFC 6066 §3, RFC 7590,
 * XEP-0368): by SNI when the client sends one, else by the pre-TLS stream `to`
 * (STARTTLS), else the first tenant's certificate.
 *
 * Policy (RFC 7590 / RFC 9325): TLS 1.2 and 1.3 only, AEAD suites with ECDHE only, no
 * compression (mbedTLS has none), no renegotiation, no session resumption, no 0-RTT.
 * ALPN: client listeners offer xmpp-client, server listeners xmpp-server, auto both.
 */
#ifndef XF_TLS_H
#define XF_TLS_H

#include <mbedtls/ssl.h>
#include "tenants/registry.h"

typedef struct xf_tls xf_tls;

/* Per-connection handshake context, set with mbedtls_ssl_set_user_data_p(). */
typedef struct xf_tls_select {
    const xf_registry *registry;
    const xf_tenant *hint;          /* tenant of the pre-TLS `to` (STARTTLS), or NULL */
    const xf_tenant *chosen;        /* whose certificate was presented */
    char sni[256];                  /* lower-cased SNI, "" if none */
} xf_tls_select;

int xf_tls_init(xf_tls **out, char *err, size_t errlen);
void xf_tls_free(xf_tls *t);
/* service: enum xf_svc (config.h). */
const mbedtls_ssl_config *xf_tls_config(const xf_tls *t, int service);
/* mbedTLS error code -> short text for logs. */
const char *xf_tls_strerror(int code, char *buf, size_t len);

#endif
