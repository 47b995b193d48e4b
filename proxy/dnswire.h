/*
 * dnswire: DNS wire format (RFC 1035 §4) for the few questions xmppfront asks: build a
 * query, and parse an answer into SRV / A / AAAA / TLSA records with TTLs, the AD bit
 * and the CNAME chain. Pure: no I/O. proxy/dns.c sends and receives through c-ares and uses
 * this parser on both c-ares 1.18 and 1.34 (whose own parsers differ and are
 * deprecated in the newer one). Fuzzed by tests/fuzz/fuzz_dnswire.c.
 */
#ifndef XF_DNSWIRE_H
#define XF_DNSWIRE_H

#include <stddef.h>
#include <stdint.h>
#include "proxy/srvorder.h"

#define XF_DNS_T_A     1
#define XF_DNS_T_CNAME 5
#define XF_DNS_T_SOA   6
#define XF_DNS_T_AAAA  28
#define XF_DNS_T_SRV   33
#define XF_DNS_T_OPT   41
#define XF_DNS_T_TLSA  52            /* RFC 6698 §7.1 */

#define XF_DNS_NAME_MAX 254            /* 253 characters + NUL, presentation form */
#define XF_DNS_MAX_RECORDS 64          /* records of the asked type kept per answer */
#define XF_DNS_MAX_CNAMES 8            /* CNAME hops followed inside one answer */
#define XF_DNS_QUERY_MAX 300           /* room for any query xf_dnswire_query builds */

/* Outcome of one question (spec-digest §6: NODATA/NXDOMAIN are answers, the rest
   failures). */
enum xf_dns_status {
    XF_DNS_NOERROR = 0,                /* records of the asked type present */
    XF_DNS_NXDOMAIN,                   /* RCODE 3 */
    XF_DNS_NODATA,                     /* NOERROR, no record of that type */
    XF_DNS_SERVFAIL,                   /* RCODE 2 (also how a validating resolver
                                          reports bogus DNSSEC) */
    XF_DNS_TIMEOUT,                    /* no answer from any resolver (dns.c) */
    XF_DNS_ERROR                       /* other RCODE, malformed or mismatched answer,
                                          resolver unreachable, out of memory */
};

typedef struct xf_dns_addr {
    int family;                        /* AF_INET or AF_INET6 */
    unsigned char addr[16];            /* 4 or 16 bytes, network order */
} xf_dns_addr;

/* One TLSA record (RFC 6698 §2.1) of a result: its whole RDATA — certificate usage,
   selector, matching type (one octet each), then the association data — is
   res->tlsa_rdata[off .. off + len), len >= 3 (as certs/dane.h xf_tlsa_parse_rdata
   takes it). Offsets, not pointers, so that a result can be copied. */
typedef struct xf_dns_tlsa {
    size_t off, len;
} xf_dns_tlsa;

/* One answer, owned by whoever holds it (xf_dns_result_free). */
typedef struct xf_dns_result {
    int status;                        /* enum xf_dns_status */
    int ad;                            /* 1: the answer header had AD set. c-ares does
                                          not validate: this only means something when
                                          the resolver validates and the path to it is
                                          trusted (spec-digest §6); the caller decides */
    uint32_t ttl;                      /* NOERROR: lowest TTL of the records used (CNAMEs
                                          included); NXDOMAIN/NODATA: min(SOA TTL, SOA
                                          MINIMUM) from the authority section (RFC 2308
                                          §5), 0 when there was no SOA */
    int from_cache;                    /* set by dns.c */
    char cname[XF_DNS_NAME_MAX];       /* the name the records belong to when a CNAME
                                          chain was followed; "" otherwise */
    uint16_t qtype;
    xf_srv_rec *srv;                   /* qtype SRV: n_srv records, answer order */
    size_t n_srv;
    xf_dns_addr *addr;                 /* qtype A/AAAA: n_addr addresses */
    size_t n_addr;
    xf_dns_tlsa *tlsa;                 /* qtype TLSA: n_tlsa records, answer order */
    size_t n_tlsa;
    unsigned char *tlsa_rdata;         /* the records' RDATA, back to back */
    size_t tlsa_rdata_len;
} xf_dns_result;

#define XF_DNSWIRE_ERR_ARG -1
#define XF_DNSWIRE_ERR_NOMEM -2

/* Writes a query for (name, qtype) into buf: ID id, RD=1, AD=1 (RFC 6840 §5.7: ask
   for the AD bit without DO), one question of class IN, an EDNS(0) OPT record with a
   1232-byte UDP size (RFC 6891). name: presentation form, one trailing dot allowed,
   labels 1..63, total <= 253, no escapes. Returns the length or XF_DNSWIRE_ERR_ARG
   (bad name, len < XF_DNS_QUERY_MAX). */
int xf_dnswire_query(uint8_t *buf, size_t len, uint16_t id, const char *name,
                     uint16_t qtype);

/* Parses the answer msg[0..len) to the question (qname, qtype) into *res (which it
   initialises; free with xf_dns_result_free even on error). Checks QR=1, one question
   equal to (qname, qtype, IN) ignoring ASCII case, and every length against len;
   name compression is followed with a bound on jumps. Records of qtype are taken
   from the answer section when their owner is qname or the end of the CNAME chain
   from qname (at most XF_DNS_MAX_CNAMES hops, loops refused); others are ignored.
   SRV targets come back in presentation form ("." for the root); an SRV target or
   owner with a byte outside letters, digits, '-', '_' is kept as received but never
   matches a name. TLSA records keep their RDATA as received (an RDATA shorter than
   the three parameter octets makes the answer malformed: ERROR); whether a record is
   usable is certs/dane.h's question. At most XF_DNS_MAX_RECORDS records are kept.
   Returns 0 with res->status set (including NXDOMAIN, NODATA, SERVFAIL, ERROR for
   other RCODEs and for a malformed answer), or XF_DNSWIRE_ERR_NOMEM / _ARG. */
int xf_dnswire_parse(const uint8_t *msg, size_t len, const char *qname, uint16_t qtype,
                     xf_dns_result *res);

void xf_dns_result_free(xf_dns_result *res);
/* Deep copy of src into dst (initialised by the call). 0 or XF_DNSWIRE_ERR_NOMEM. */
int xf_dns_result_copy(xf_dns_result *dst, const xf_dns_result *src);

/* The RDATA of TLSA record i of res (NULL when i is out of range); *len its length. */
const unsigned char *xf_dns_tlsa_rdata(const xf_dns_result *res, size_t i, size_t *len);

/* "NOERROR", "NXDOMAIN", "NODATA", "SERVFAIL", "TIMEOUT", "ERROR". */
const char *xf_dns_status_name(int status);

/* The SRV answer in the form xf_srv_order takes (borrows res->srv). */
void xf_dns_srv_answer(const xf_dns_result *res, xf_srv_answer *out);

#endif
