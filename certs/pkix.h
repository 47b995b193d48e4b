/*
 * pkix: RFC 5280 chain building and validation with mbedTLS against a CA set,
 * plus the XMPP end-entity rules (RFC 6120 §13.7.2: an end entity with cA=TRUE is
 * refused; keyUsage/extendedKeyUsage must allow TLS). Names are checked by
 * identity.h; xf_pkix_check combines both. Revocation (CRL/OCSP) is not checked.
 */
#ifndef XF_PKIX_H
#define XF_PKIX_H

#include <stddef.h>
#include <stdint.h>
#include <mbedtls/x509_crt.h>
#include "certs/identity.h"

#define XF_PKIX_SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

#define XF_PKIX_ERR_IO    -1
#define XF_PKIX_ERR_PARSE -2
#define XF_PKIX_ERR_ARG   -3

/* Longest path mbedTLS will build (leaf + intermediates + trust anchor). */
#define XF_PKIX_PATH_MAX (MBEDTLS_X509_MAX_INTERMEDIATE_CA + 2)

/* Whose certificate is being verified; it decides the extendedKeyUsage rule.
   XF_PKIX_ROLE_SERVER: a server we connect to (outbound c2s/s2s, and every
     DANE check): if extendedKeyUsage is present it must contain serverAuth
     (or anyExtendedKeyUsage); a clientAuth-only certificate is refused.
   XF_PKIX_ROLE_PEER_CLIENT: the client certificate of a peer server that
     connected to us (inbound s2s, XEP-0178): clientAuth or serverAuth is
     accepted, because in practice many s2s certificates carry only serverAuth
     and are presented in both directions. */
enum xf_pkix_role { XF_PKIX_ROLE_SERVER = 0, XF_PKIX_ROLE_PEER_CLIENT = 1 };

struct xf_pkix_verdict {
    int valid;                 /* 1: chain valid to a trusted CA and leaf acceptable */
    uint32_t flags;            /* mbedTLS MBEDTLS_X509_BADCERT_* flags, 0 if none */
    struct xf_id_verdict id;   /* filled by xf_pkix_check only */
    char reason[320];
    /* The validated path when valid == 1: path[0] is the leaf, path[npath-1] the
       trust anchor (from `ca`; it is the leaf itself if the leaf is trusted
       directly). Pointers into the chain and ca lists given: valid only while
       those are. Used for PKIX-TA(0) matching (RFC 6698 §2.1.1). */
    const mbedtls_x509_crt *path[XF_PKIX_PATH_MAX];
    size_t npath;
};

/* Adds the CA certificates of `file` (PEM bundle or DER; NULL = the system bundle)
   to ca (initialised by the caller). Returns the number loaded or a negative
   XF_PKIX_ERR_*. Unparseable entries in a bundle are skipped if at least one
   certificate loads. */
int xf_pkix_load_ca(mbedtls_x509_crt *ca, const char *file);

/* End-entity rules alone: not a CA (basicConstraints cA=TRUE refused); if
   keyUsage is present it allows digitalSignature or keyEncipherment or
   keyAgreement; if extendedKeyUsage is present it fits `role` (see enum
   xf_pkix_role). 1 acceptable, 0 not (reason says why). */
int xf_pkix_leaf_ok(const mbedtls_x509_crt *leaf, enum xf_pkix_role role,
                    char *reason, size_t rlen);

/* Validates chain (leaf first, then the intermediates the peer sent, in any
   order) to a certificate in ca, with the default mbedTLS profile (SHA-256+,
   RSA ≥ 2048, curves ≥ 255 bits), the current time for validity dates, and
   xf_pkix_leaf_ok(role). Fills v->path on success. Returns 1 valid, 0 invalid
   (v->reason, v->flags), negative on bad arguments. */
int xf_pkix_verify(mbedtls_x509_crt *chain, mbedtls_x509_crt *ca, enum xf_pkix_role role,
                   struct xf_pkix_verdict *v);

/* xf_pkix_verify plus xf_identity_check(domain, svc, srv_target): the RFC 6120
   §13.7.2 PKIX prooftype. 1 only if both hold. */
int xf_pkix_check(mbedtls_x509_crt *chain, mbedtls_x509_crt *ca, enum xf_pkix_role role,
                  const char *domain, enum xf_service svc, const char *srv_target,
                  struct xf_pkix_verdict *v);

/* One-line text for mbedTLS verify flags (the most telling one first). Not for
   flags 0 or 0xFFFFFFFF (mbedTLS's "fatal error" marker): see xf_pkix_fail_text. */
const char *xf_pkix_flags_text(uint32_t flags);

/* Text for a failed mbedtls_x509_crt_verify*: ret is its return value, flags the
   flags it set. When there are no meaningful flags (0, or all bits set on a fatal
   error) it says "verification error -0xNNNN" rather than guessing a flag. */
const char *xf_pkix_fail_text(int ret, uint32_t flags, char *buf, size_t len);

#endif
