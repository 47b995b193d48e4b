/*
 * remote_dane: the DANE steps of an outbound stream. Contract in remote_dane.h.
 */
#include "proxy/remote_dane.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "certs/dane.h"

int xf_rdane_applies(int trusted, int srv_secure, int fallback, int addr_ad, char *why,
                     size_t whylen)
{
    const char *w = NULL;
    if (!trusted)
        w = "resolver not trusted for DNSSEC (not on loopback)";
    else if (!fallback && !srv_secure)
        w = "SRV answer insecure (no AD)";
    else if (!addr_ad)
        w = fallback ? "no SRV; the domain's address records are insecure (no AD)"
                     : "the target's address records are insecure (no AD)";
    if (w && why && whylen)
        snprintf(why, whylen, "%s", w);
    return w == NULL;
}

const char *xf_rdane_srv_target(int trusted, int srv_secure, int fallback, const char *host,
                                const char *domain)
{
    if (!trusted || !srv_secure || fallback || !host || !host[0])
        return NULL;
    if (domain && strcasecmp(host, domain) == 0)
        return NULL;
    return host;
}

int xf_rdane_answer(const xf_dns_result *res, const char *owner, xf_proof *p)
{
    const char *o = owner ? owner : "?";
    memset(p, 0, sizeof(*p));
    switch (res ? res->status : XF_DNS_ERROR) {
    case XF_DNS_NOERROR:
        if (!res->ad) {
            p->result = XF_PROOF_ABSENT;
            snprintf(p->reason, sizeof(p->reason), "TLSA %.120s insecure (no AD): PKIX only", o);
            return XF_RDANE_NONE;
        }
        if (res->n_tlsa == 0) {                    /* not produced by dnswire; be safe */
            p->result = XF_PROOF_ABSENT;
            snprintf(p->reason, sizeof(p->reason), "no TLSA at %.120s", o);
            return XF_RDANE_NONE;
        }
        return XF_RDANE_RECORDS;
    case XF_DNS_NXDOMAIN:
    case XF_DNS_NODATA:
        p->result = XF_PROOF_ABSENT;
        snprintf(p->reason, sizeof(p->reason), "no TLSA at %.120s (%s)", o,
                 xf_dns_status_name(res->status));
        return XF_RDANE_NONE;
    case XF_DNS_SERVFAIL:
        p->result = XF_PROOF_ERROR;
        snprintf(p->reason, sizeof(p->reason),
                 "TLSA %.120s bogus (SERVFAIL from the validating resolver): target aborted", o);
        return XF_RDANE_ABORT;
    default:
        p->result = XF_PROOF_ERROR;
        snprintf(p->reason, sizeof(p->reason), "TLSA %.120s indeterminate (%s): target aborted",
                 o, xf_dns_status_name(res ? res->status : XF_DNS_ERROR));
        return XF_RDANE_ABORT;
    }
}

int xf_rdane_verify(const xf_dns_result *res, mbedtls_x509_crt *chain, mbedtls_x509_crt *ca,
                    const char *domain, const char *srv_target, xf_proof *p)
{
    memset(p, 0, sizeof(*p));
    if (!res || res->n_tlsa == 0) {
        p->result = XF_PROOF_ABSENT;
        snprintf(p->reason, sizeof(p->reason), "no TLSA records");
        return XF_RDANE_NONE;
    }
    if (!chain) {
        p->result = XF_PROOF_INVALID;
        snprintf(p->reason, sizeof(p->reason),
                 "usable TLSA records but no certificate presented");
        /* only when usable records exist; checked below otherwise */
    }
    struct xf_tlsa *recs = calloc(res->n_tlsa, sizeof(*recs));
    if (recs == NULL) {
        p->result = XF_PROOF_ERROR;
        snprintf(p->reason, sizeof(p->reason), "out of memory checking TLSA");
        return XF_RDANE_ABORT;
    }
    size_t n = 0, len;
    for (size_t i = 0; i < res->n_tlsa; i++) {
        const unsigned char *rd = xf_dns_tlsa_rdata(res, i, &len);
        if (rd && xf_tlsa_parse_rdata(rd, len, &recs[n]) == 0)
            n++;                                   /* else unusable (data too long) */
    }
    size_t usable = 0;
    for (size_t i = 0; i < n; i++)
        usable += (size_t)xf_tlsa_usable(&recs[i], NULL);
    int rc;
    if (usable == 0) {
        const char *w = NULL;
        if (n > 0)
            xf_tlsa_usable(&recs[0], &w);
        p->result = XF_PROOF_ABSENT;
        snprintf(p->reason, sizeof(p->reason), "no usable TLSA record (%zu published%s%.100s): "
                 "PKIX only", res->n_tlsa, w ? "; record 1: " : "", w ? w : "");
        rc = XF_RDANE_NONE;
    } else if (!chain) {
        rc = XF_RDANE_ABORT;                       /* p set above */
    } else {
        struct xf_dane_verdict *v = calloc(1, sizeof(*v));
        if (v == NULL) {
            p->result = XF_PROOF_ERROR;
            snprintf(p->reason, sizeof(p->reason), "out of memory checking TLSA");
            free(recs);
            return XF_RDANE_ABORT;
        }
        enum xf_dane_result d = xf_dane_check(recs, n, chain, ca, domain, XF_SERVICE_SERVER,
                                              srv_target, v);
        if (d == XF_DANE_MATCH) {
            p->result = XF_PROOF_VALID;
            snprintf(p->reason, sizeof(p->reason), "%.190s", v->reason);
            rc = XF_RDANE_VALID;
        } else {                                   /* usable records: never UNUSABLE */
            p->result = XF_PROOF_INVALID;
            snprintf(p->reason, sizeof(p->reason), "TLSA mismatch, PKIX not enough: %.150s",
                     v->reason);
            rc = XF_RDANE_ABORT;
        }
        free(v);
    }
    free(recs);
    return rc;
}
