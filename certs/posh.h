/*
 * posh: RFC 7711 (PKIX over Secure HTTP) documents: parse, match, generate.
 * Pure: fetching the document over HTTPS (and following at most one `url`
 * reference and ≤10 redirects, RFC 7711 §3.3-3.4) is the caller's job.
 */
#ifndef XF_POSH_H
#define XF_POSH_H

#include <stddef.h>
#include <mbedtls/x509_crt.h>
#include "certs/cert.h"

#define XF_POSH_MAX_DOC   65536  /* larger documents are refused */
/* Room for every usable fingerprint a document of at most XF_POSH_MAX_DOC bytes
   can hold: the shortest one, `"sha-256":"<43 base64 chars>",`, takes 56 bytes.
   So no fingerprint is ever dropped; should the bound still be exceeded the
   document is refused as invalid, never silently truncated. */
#define XF_POSH_MAX_FP    (XF_POSH_MAX_DOC / 56 + 1)
/* "expires" values above this (including digit-only integers too large for 64
   bits) are clamped to it: 2^31-1 seconds, about 68 years. Caching uses the
   lower of the two values anyway, so clamping never extends trust. */
#define XF_POSH_EXPIRES_MAX 2147483647LL
#define XF_POSH_URL_MAX   1024

#define XF_POSH_ERR_JSON    -1   /* not JSON, or not an object */
#define XF_POSH_ERR_INVALID -2   /* JSON but not a valid POSH document */
#define XF_POSH_ERR_ARG     -3

enum xf_posh_kind { XF_POSH_FINGERPRINTS = 1, XF_POSH_REFERENCE = 2 };

struct xf_posh_fp {
    enum xf_cert_hash hash;
    size_t len;
    unsigned char digest[64];
};

struct xf_posh_doc {
    enum xf_posh_kind kind;
    long long expires;                 /* seconds, > 0 (RFC 7711 §3.2) */
    size_t nfp;                        /* usable fingerprints in fp[] */
    struct xf_posh_fp fp[XF_POSH_MAX_FP];
    size_t nskipped;                   /* hash entries skipped (unknown name, bad value) */
    char url[XF_POSH_URL_MAX];         /* XF_POSH_REFERENCE: https URL */
};

/* Parses a POSH document (RFC 7711 §3.2 fingerprints document or §3.4 reference
   document). Rules applied:
   - the top level is an object; unknown top-level keys are ignored;
   - exactly one of "fingerprints" (non-empty array of objects) and "url"
     (https string) is present: both, or neither, is invalid;
   - "expires" is required, an integer > 0 (0 and negative values, floats,
     strings are invalid); values above XF_POSH_EXPIRES_MAX, including
     digit-only integers that overflow 64 bits, are clamped to it;
   - every fingerprint is kept and matched (see XF_POSH_MAX_FP);
   - in a fingerprint object each key is an IANA hash name; sha-256, sha-384 and
     sha-512 are used, others are skipped; a known name whose value is not base64
     (padded or not) of the right length is skipped too (counted in nskipped);
   - a fingerprints document whose entries were all skipped is valid but has
     nfp == 0 and cannot match.
   err (may be NULL) receives a one-line reason on failure. */
int xf_posh_parse(const unsigned char *json, size_t len, struct xf_posh_doc *doc,
                  char *err, size_t errlen);

/* 1 if a fingerprint of doc equals the hash of the whole DER of `leaf` (the end
   entity; RFC 7711 §3.2 hashes the certificate, not the SPKI); 0 otherwise.
   reason (may be NULL) says which hash matched or why not. Only the fingerprint is
   compared: validity dates and names are the caller's policy, see xf_posh_check. */
int xf_posh_match(const struct xf_posh_doc *doc, const mbedtls_x509_crt *leaf,
                  char *reason, size_t rlen);

/* Verdicts of xf_posh_check. */
#define XF_POSH_MATCH      1
#define XF_POSH_NOMATCH    0

/* The delegation decision (docs/proof.md): a fingerprints document matches the
   leaf AND the leaf is inside its validity period (RFC 7711 §4: the certificate
   must not be expired). No RFC 6125 name check and no PKIX chain is required: the
   fingerprint, served over PKIX-validated HTTPS by the source domain, is the proof.
   A reference document never matches directly (resolve its url first). */
int xf_posh_check(const struct xf_posh_doc *doc, const mbedtls_x509_crt *leaf,
                  char *reason, size_t rlen);

/* {"fingerprints":[{"sha-256":"…","sha-512":"…"}],"expires":N} for leaf.
   Returns the length written (NUL-terminated) or a negative error. */
int xf_posh_generate(const mbedtls_x509_crt *leaf, long long expires, char *out, size_t outlen);

/* The same with one fingerprint object per leaf, in order (key rollover: the current
   and the next certificate, so that a peer's cached document keeps matching across
   the switch; RFC 7711 §3.2 allows several, any one match is enough). */
int xf_posh_generate_set(const mbedtls_x509_crt *const *leaves, size_t n_leaves,
                         long long expires, char *out, size_t outlen);

/* {"url":"<url>","expires":N}; url must start with https://. */
int xf_posh_generate_reference(const char *url, long long expires, char *out, size_t outlen);

#endif
