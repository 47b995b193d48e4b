/*
 * dane: TLSA records (RFC 6698 §2, RFC 7218 acronyms) and their use for XMPP
 * (RFC 7671 operational rules, RFC 7673 SRV). Pure: the caller supplies records
 * that came from a DNSSEC-secure answer; deciding "secure" is not done here.
 */
#ifndef XF_DANE_H
#define XF_DANE_H

#include <stddef.h>
#include <stdint.h>
#include <mbedtls/x509_crt.h>
#include "certs/identity.h"

#define XF_TLSA_DATA_MAX 8192

#define XF_TLSA_ERR_SYNTAX -1
#define XF_TLSA_ERR_SPACE  -2

/* Certificate usages (RFC 7218 §2.1), selectors (§2.2), matching types (§2.3). */
enum { XF_TLSA_PKIX_TA = 0, XF_TLSA_PKIX_EE = 1, XF_TLSA_DANE_TA = 2, XF_TLSA_DANE_EE = 3 };
enum { XF_TLSA_SEL_CERT = 0, XF_TLSA_SEL_SPKI = 1 };
enum { XF_TLSA_MT_FULL = 0, XF_TLSA_MT_SHA256 = 1, XF_TLSA_MT_SHA512 = 2 };

struct xf_tlsa {
    uint8_t usage, selector, mtype;
    size_t len;
    unsigned char data[XF_TLSA_DATA_MAX];
};

/* Wire-format RDATA (RFC 6698 §2.1): three octets then the association data.
   Any parameter values are accepted here (usability is a separate question).
   Returns 0 or XF_TLSA_ERR_*. */
int xf_tlsa_parse_rdata(const unsigned char *rdata, size_t len, struct xf_tlsa *out);

/* Presentation format (RFC 6698 §2.2): "usage selector mtype hex", fields as
   decimal 0..255 or RFC 7218 acronyms (PKIX-TA, PKIX-EE, DANE-TA, DANE-EE; Cert,
   SPKI; Full, SHA2-256, SHA2-512), case-insensitive; the hex may contain spaces.
   Returns 0 or XF_TLSA_ERR_*. */
int xf_tlsa_parse_text(const char *text, struct xf_tlsa *out);

/* 1 if the record is usable (RFC 7671 §4.1, RFC 6698 §4.1): usage 0-3, selector
   0-1, mtype 0-2, digest length 32/64 for mtypes 1/2, non-empty data. Otherwise 0,
   with *why (may be NULL) set to a static explanation. */
int xf_tlsa_usable(const struct xf_tlsa *t, const char **why);

enum xf_dane_result { XF_DANE_NOMATCH = 0, XF_DANE_MATCH = 1, XF_DANE_UNUSABLE = 2 };

struct xf_dane_verdict {
    enum xf_dane_result result;
    int record;                 /* index of the record that matched, else -1 */
    char reason[400];
};

/* Authenticates chain (leaf first, then what the peer sent) with TLSA records
   recs[0..n) from a secure answer (any number of records; all are considered):
   - unusable records are skipped; if none is usable the verdict is
     XF_DANE_UNUSABLE and the caller falls back to PKIX (RFC 7671 §4.1);
     with at least one usable record the result is MATCH or NOMATCH, never
     UNUSABLE (falling back to PKIX then would be a downgrade);
   - digest agility (RFC 7671 §9): per usage+selector, Full(0) records and only
     records of the strongest digest present (SHA2-512 over SHA2-256) are used;
   - DANE-EE(3): the leaf's certificate or SPKI matches; names, dates and chain
     are ignored (RFC 7671 §5.1);
   - DANE-TA(2): a certificate the peer sent (not the leaf) matches, or a `2 0 0`
     record carries the whole anchor; an anchor equal to the leaf is refused
     (no-match: the leaf is not a TA); the chain must validate up to that anchor
     (the anchor's own dates ignored) and the leaf must pass
     xf_identity_check(domain, svc, srv_target) (RFC 7671 §5.2, RFC 7673 §3);
   - PKIX-EE(1) / PKIX-TA(0): full PKIX validation against `ca` (may be NULL:
     then they cannot match), the identity check, and the record matching the
     leaf or, for PKIX-TA, a CA certificate on the path that was actually
     validated: an intermediate or the trust anchor from `ca` (RFC 6698
     §2.1.1); a certificate the peer sent that is not on that path never counts.
   Every chain check uses XF_PKIX_ROLE_SERVER (extendedKeyUsage must allow
   serverAuth): DANE authenticates a server we connect to.
   Returns the result (also in v->result). */
enum xf_dane_result xf_dane_check(const struct xf_tlsa *recs, size_t n,
                                  mbedtls_x509_crt *chain, mbedtls_x509_crt *ca,
                                  const char *domain, enum xf_service svc,
                                  const char *srv_target, struct xf_dane_verdict *v);

/* "usage selector mtype hex" for crt, e.g. "3 1 1 <sha256 of SPKI>" (RFC 7671
   §5.1 recommends 3 1 1). Returns the text length or a negative error. */
int xf_dane_generate(const mbedtls_x509_crt *crt, int usage, int selector, int mtype,
                     char *out, size_t outlen);

#endif
