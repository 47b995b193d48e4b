/*
 * identity: RFC 6125 identity matching as profiled for XMPP (RFC 6120 §13.7.1.2).
 * Pure: no I/O. The certs helper owns and extends this header; the declaration below
 * is the contract the tenant registry relies on.
 */
#ifndef XF_IDENTITY_H
#define XF_IDENTITY_H

#include <stddef.h>
#include <mbedtls/x509_crt.h>

/* 1 if the end-entity certificate crt proves DNS name `name` by DNS-ID (SAN dNSName,
   a wildcard only as the whole left-most label, case-insensitive, IDNA A-labels),
   or by CN when the certificate has no SAN identifiers at all; 0 otherwise. */
int xf_identity_covers_dns(const mbedtls_x509_crt *crt, const char *name);

/* Kinds of presented identifier (RFC 6125 §1.8, RFC 6120 §13.7.1.4). */
enum xf_id_type {
    XF_ID_NONE = 0,
    XF_ID_DNS,       /* SAN dNSName */
    XF_ID_SRV,       /* SAN otherName id-on-dnsSRV 1.3.6.1.5.5.7.8.7 (RFC 4985) */
    XF_ID_XMPPADDR,  /* SAN otherName id-on-xmppAddr 1.3.6.1.5.5.7.8.5 */
    XF_ID_URI,       /* SAN uniformResourceIdentifier: never matched, but blocks CN */
    XF_ID_CN         /* subject commonName, last resort */
};

/* XMPP service for SRV-ID checks: `_xmpp-client` or `_xmpp-server`. */
enum xf_service { XF_SERVICE_CLIENT = 0, XF_SERVICE_SERVER = 1 };

#define XF_ID_VALUE_MAX 256

/* One presented identifier as found in the certificate. `value` is the raw text
   (NUL-terminated, control bytes replaced by '?'); `valid` is 0 when the value
   is malformed for its type (it then never matches, but still counts as a SAN
   identifier for the CN rule). */
struct xf_id_entry {
    enum xf_id_type type;
    int valid;
    char value[XF_ID_VALUE_MAX];
};

#define XF_ID_ERR_BADNAME  -1   /* reference name is not a valid host name */
#define XF_ID_ERR_PARSE    -2   /* subjectAltName could not be walked */
#define XF_ID_ERR_ARG      -3

/* Lists the presented identifiers of crt (leaf only) into out[0..max): SAN entries
   in certificate order, then subject CNs. *n receives the number found (which may
   exceed max; only max are stored). Returns 0 or XF_ID_ERR_PARSE.
   An otherName is classified by its OID alone: a known OID (SRVName, XmppAddr)
   with a malformed value gives an entry with valid == 0 (it blocks the CN).
   xf_identity_check and xf_identity_covers_dns match against every entry, with
   no cap on their number. */
int xf_identity_extract(const mbedtls_x509_crt *crt, struct xf_id_entry *out,
                        size_t max, size_t *n);

/* Result of an identity check. */
struct xf_id_verdict {
    int matched;                       /* 1 match, 0 no match */
    enum xf_id_type type;              /* which kind of identifier matched */
    char presented[XF_ID_VALUE_MAX];   /* the certificate's identifier that matched */
    char reference[XF_ID_VALUE_MAX];   /* the reference identity it matched */
    char reason[320];                  /* one line, for logs and the CLI */
};

/* Checks the leaf crt against the reference identities for an XMPP service domain
   (RFC 6120 §13.7.2.1, RFC 6125 §6):
     DNS-ID   == domain (or srv_target, see below), wildcard rules of §6.4.3 as
                 restricted by RFC 6120: '*' only as the whole left-most label
                 and matching exactly one label;
     SRV-ID   == _xmpp-client.domain or _xmpp-server.domain per `svc` (the
                 service must match, RFC 6125 §6.5.1), no wildcard;
     XmppAddr == domain as a bare-domain JID (a '*' in it is literal);
     CN       == domain, only if the certificate has no DNS-ID, SRV-ID, URI-ID
                 or XmppAddr, and the CN is shaped like a host name.
   srv_target (may be NULL) adds the SRV target host as an extra DNS-ID reference
   for the secure-delegation case (RFC 7673 §3, DNSSEC-secured SRV); the caller
   decides that the SRV answer was secure. Names are compared after
   xf_idna_normalize (ASCII case-insensitive, U-labels as A-labels).
   Returns 1 on match, 0 on no match (v->reason says why), or a negative
   XF_ID_ERR_* if the reference names are not host names. */
int xf_identity_check(const mbedtls_x509_crt *crt, const char *domain,
                      enum xf_service svc, const char *srv_target,
                      struct xf_id_verdict *v);

/* Matches one presented DNS-ID / CN value against an already normalised reference
   host name (RFC 6125 §6.4). Exposed for the tests and fuzzers. 1 or 0. */
int xf_identity_match_dns(const char *presented, size_t len, const char *ref_norm);

const char *xf_identity_type_name(enum xf_id_type t);

#endif
