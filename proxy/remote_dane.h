/*
 * remote_dane: the DANE prooftype of an outbound s2s stream (RFC 7673 DANE for SRV,
 * RFC 6698 / 7671 TLSA rules, spec-digest §6), as pure steps that proxy/remote_connect.c
 * and remote_negotiate.c drive with what DNS and TLS delivered. No I/O.
 *
 * Per candidate target (one SRV target, or the domain itself without SRV):
 *   1. xf_rdane_applies: ask TLSA at _PORT._tcp.TARGET only when the AD bit is trusted
 *      (proxy/dns.h: loopback resolvers), the SRV answer the target came from was
 *      secure (AD) — or, without SRV, on local policy, the domain's own address answer
 *      (plain RFC 6698 at _5269._tcp.DOMAIN) — and the target's address answer was
 *      secure (RFC 7673 §3: insecure addresses → no TLSA lookup).
 *   2. xf_rdane_answer: the TLSA answer. Bogus (SERVFAIL from the validating resolver)
 *      or indeterminate (timeout, malformed) → abort this target, never downgrade to
 *      PKIX (RFC 7673 §3.1, RFC 7671 §4); none (NXDOMAIN/NODATA) or insecure (no AD)
 *      → DANE absent, PKIX decides; secure records → step 3.
 *   3. xf_rdane_verify: the peer's chain against the records (certs/dane.h
 *      xf_dane_check: DANE-EE ignores names and dates, DANE-TA and PKIX-TA/EE check
 *      the chain and the names, digest agility). Match → DANE valid. Usable records
 *      but no match → abort this target: PKIX alone is then not enough (RFC 7671 §4.1,
 *      RFC 7673 §3). No usable record → DANE absent, PKIX decides.
 * With a secure SRV answer the SRV target is an accepted reference identity besides
 * the domain (RFC 7673 §4), for PKIX and DANE-TA alike: xf_rdane_srv_target.
 */
#ifndef XF_REMOTE_DANE_H
#define XF_REMOTE_DANE_H

#include <stddef.h>
#include <mbedtls/x509_crt.h>
#include "proxy/dnswire.h"
#include "tenants/policy.h"

/* 1 if TLSA is to be asked for this target; else 0 with why[0..whylen) saying why DANE
   does not apply (for the log: "resolver not trusted for DNSSEC", ...).
   trusted: xf_dns_ad_trusted; srv_secure: the target's SRV answer had AD (ignored
   for the fallback); fallback: no SRV, the target is the domain; addr_ad: its
   A/AAAA answer had AD. */
int xf_rdane_applies(int trusted, int srv_secure, int fallback, int addr_ad, char *why,
                     size_t whylen);

/* The reference identity the SRV target adds (RFC 7673 §4): host when the SRV answer
   was secure and trusted and the target is not the domain itself, else NULL. */
const char *xf_rdane_srv_target(int trusted, int srv_secure, int fallback, const char *host,
                                const char *domain);

enum xf_rdane {
    XF_RDANE_ABORT = -1,               /* abort this target (p: ERROR or INVALID) */
    XF_RDANE_NONE = 0,                 /* DANE does not decide (p: ABSENT): PKIX only */
    XF_RDANE_RECORDS = 1,              /* secure TLSA records: xf_rdane_verify */
    XF_RDANE_VALID = 2                 /* a record matched (p: VALID) */
};

/* Reads the TLSA answer res for owner ("_5269._tcp.xmpp.example.net", for the
   reasons) into p. Returns ABORT, NONE or RECORDS (see the top of this file). */
int xf_rdane_answer(const xf_dns_result *res, const char *owner, xf_proof *p);

/* Authenticates the peer's chain (leaf first, as mbedtls_ssl_get_peer_cert gives it)
   with the records of res (an answer xf_rdane_answer said RECORDS for), for domain,
   with srv_target (may be NULL) as extra reference identity and ca as trust anchors
   for PKIX-TA/PKIX-EE (may be NULL). Returns VALID, NONE (no usable record) or ABORT
   (usable records, none matched; p INVALID), with p filled. */
int xf_rdane_verify(const xf_dns_result *res, mbedtls_x509_crt *chain, mbedtls_x509_crt *ca,
                    const char *domain, const char *srv_target, xf_proof *p);

#endif
