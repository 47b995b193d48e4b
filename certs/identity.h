/*
 * identity: RFC 6125 identity matching as profiled for XMPP (RFC 6120 §13.7.1.2).
 * Pure: no I/O. The certs helper owns and extends this header; the declaration below
 * is the contract the tenant registry relies on.
 */
#ifndef XF_IDENTITY_H
#define XF_IDENTITY_H

#include <mbedtls/x509_crt.h>

/* 1 if the end-entity certificate crt proves DNS name `name` by DNS-ID (SAN dNSName,
   a wildcard only as the whole left-most label, case-insensitive, IDNA A-labels),
   or by CN when the certificate has no SAN identifiers at all; 0 otherwise. */
int xf_identity_covers_dns(const mbedtls_x509_crt *crt, const char *name);

#endif
