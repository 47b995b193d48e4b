/*
 * tls: the server-side mbedTLS configuration shared by all workers (read-only after
 * xf_tls_init), and the per-connection certificate choice (RFC 6066 §3, RFC 7590,
 * XEP-0368): by SNI when the client sends one, else by the pre-TLS stream `to`
 * (STARTTLS), else the hosting identity's certificate, else the first tenant's. A
 * tenant served with the hosting certificate (registry.h XF_PRESENT_HOSTING) gets the
 * hosting chain; SNI = the hosting name gets it too (sel.chosen = the hosting record).
 *
 * Policy (RFC 7590 / RFC 9325): TLS 1.2 and 1.3 only, AEAD suites with ECDHE only, no
 * compression (mbedTLS has none), no renegotiation, no 0-RTT. Session resumption by
 * tickets only (proxy/tickets.h, docs/tls.md; no server-side session cache): TLS 1.3
 * with psk_dhe_ke only (RFC 8446 §4.2.9: every resumption still does an ECDHE), TLS 1.2
 * per RFC 5077; on by default ("session_tickets"), never where a client certificate is
 * or may be asked for (server listeners; auto listeners once ALPN chose xmpp-server):
 * a resumed TLS 1.3 session carries no peer certificate, so SASL EXTERNAL (XEP-0178)
 * needs a full handshake.
 * ALPN: client listeners offer xmpp-client, server listeners xmpp-server, auto both and
 * http/1.1 (a direct-TLS auto listener's HTTPS side, proxy/http.h).
 */
#ifndef XF_TLS_H
#define XF_TLS_H

#include <mbedtls/ssl.h>
#include "proxy/config.h"
#include "tenants/registry.h"

typedef struct xf_tls xf_tls;

/* Per-connection handshake context, set with mbedtls_ssl_set_user_data_p(). */
typedef struct xf_tls_select {
    const xf_registry *registry;
    const xf_tenant *hint;          /* tenant of the pre-TLS `to` (STARTTLS), or NULL */
    const xf_tenant *chosen;        /* whose certificate was presented */
    char sni[256];                  /* lower-cased SNI, "" if none */
    /* Client certificates (inbound s2s, XEP-0178; set before the handshake):
       XF_TLS_PEER_CERT_NONE on client listeners, _REQUEST on server listeners,
       _IF_SERVER on auto listeners (requested only when ALPN chose xmpp-server: a c2s
       client, a browser on 443, must not be asked). The request is optional and a
       certificate that does not verify does not fail the handshake: s2s_in.c judges it
       with certs/pkix.h against the stream's `from`. */
    int want_peer_cert;
    mbedtls_x509_crt *peer_ca;      /* CA set for the request (federation.ca_file), or NULL */
    /* Resumption (set by the callbacks): sni_calls counts SNI callbacks, hellos the
       ClientHellos done (on_cert; two after a TLS 1.3 HelloRetryRequest); a ticket was
       accepted (resumed = 1) in ClientHello ticket_hello after ticket_sni_calls SNI
       callbacks. TLS 1.2 parses extensions in the client's order, so on_cert refuses a
       resumption when the SNI arrived after the ticket (opened under another name). */
    unsigned char sni_calls, ticket_sni_calls, hellos, ticket_hello, resumed;
} xf_tls_select;

enum { XF_TLS_PEER_CERT_NONE = 0, XF_TLS_PEER_CERT_REQUEST = 1, XF_TLS_PEER_CERT_IF_SERVER = 2 };

int xf_tls_init(xf_tls **out, char *err, size_t errlen);
void xf_tls_free(xf_tls *t);
/* service: enum xf_svc (config.h). cfg: the connection's snapshot; its
   "session_tickets" picks the configuration with or without ticket callbacks (NULL:
   without). */
const mbedtls_ssl_config *xf_tls_config(const xf_tls *t, int service, const xf_config *cfg);
/* mbedtls_ssl_handshake() of a public-side connection set up with xf_tls_config(...,
   cfg): the ticket callbacks get no ssl pointer, so the connection and its snapshot are
   kept in a thread-local for the call. On success counts the handshake as full or
   resumed (xmppfront_tls_resumption_total). Returns mbedtls_ssl_handshake's result. */
int xf_tls_handshake(mbedtls_ssl_context *ssl, const xf_config *cfg);
/* The CA certificates of `file` (NULL = the system bundle, XF_PKIX_SYSTEM_BUNDLE),
   loaded once per file name and kept until xf_tls_free; thread-safe. NULL when the
   file yields no certificate (logged once). Read-only for the callers. */
mbedtls_x509_crt *xf_tls_peer_ca(const xf_tls *t, const char *file);
/* The TLS policy above (versions, suites, groups, no renegotiation) on a server or
   client configuration; used for every TLS xmppfront speaks (proxy/tls_client.c too). */
void xf_tls_apply_policy(mbedtls_ssl_config *conf);
/* mbedTLS error code -> short text for logs. */
const char *xf_tls_strerror(int code, char *buf, size_t len);

#endif
