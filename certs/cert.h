/* cert: loading certificate chains and computing the digests that DANE (RFC 6698
   §2.1.2-2.1.3) and POSH (RFC 7711 §3.2) compare. Pure apart from file loading. */
#ifndef XF_CERT_H
#define XF_CERT_H

#include <stddef.h>
#include <mbedtls/x509_crt.h>

#define XF_CERT_ERR_IO     -1
#define XF_CERT_ERR_PARSE  -2
#define XF_CERT_ERR_ARG    -3
#define XF_CERT_ERR_SPACE  -4

/* What is hashed: the whole certificate DER (TLSA selector 0, POSH) or the
   SubjectPublicKeyInfo DER (TLSA selector 1). */
enum xf_cert_part { XF_CERT_FULL = 0, XF_CERT_SPKI = 1 };

/* Digest used: none (the part itself, TLSA mtype 0), SHA-256, SHA-384, SHA-512. */
enum xf_cert_hash { XF_HASH_NONE = 0, XF_HASH_SHA256, XF_HASH_SHA384, XF_HASH_SHA512 };

/* Loads every certificate of a PEM (or single DER) file into chain, end entity
   first as in a TLS Certificate message. chain must be initialised by the caller.
   Returns the number of certificates or a negative XF_CERT_ERR_*. Any certificate
   that fails to parse makes the whole file fail. */
int xf_cert_load_chain(mbedtls_x509_crt *chain, const char *path);

/* The digest (or the raw bytes for XF_HASH_NONE) of the chosen part of crt into
   out. Returns its length or a negative XF_CERT_ERR_*. */
int xf_cert_digest(const mbedtls_x509_crt *crt, enum xf_cert_part part,
                   enum xf_cert_hash hash, unsigned char *out, size_t outlen);

/* Digest length in bytes for hash (0 for XF_HASH_NONE). */
size_t xf_cert_hash_len(enum xf_cert_hash hash);

/* Validity period against the current clock (RFC 5280 §4.1.2.5):
   0 inside, XF_CERT_EXPIRED, or XF_CERT_NOT_YET_VALID. */
#define XF_CERT_EXPIRED        1
#define XF_CERT_NOT_YET_VALID  2
int xf_cert_time_status(const mbedtls_x509_crt *crt);

#endif
