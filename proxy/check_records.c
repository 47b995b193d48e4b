/*
 * check_records: what `xmppfront records DOMAIN` says should be published, as a list
 * that `xmppfront check --config` compares with DNS (proxy/check_int.h). The list is
 * read from xf_records_print's own output, so that check and records can never
 * disagree on targets, ports or keys: every line that is not a comment is
 * "OWNER TTL IN TYPE RDATA". TLSA records of the next key (rollover) are marked.
 */
#include "proxy/check_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "certs/dane.h"
#include "proxy/records_cmd.h"

const mbedtls_x509_crt *xf_check_next_leaf(const xf_config *cfg, const char *domain)
{
    const xf_tenant *t = xf_registry_find(cfg->registry, domain);
    const xf_tenant *host = xf_registry_hosting(cfg->registry);
    const xf_tenant *cred = t ? (t->present == XF_PRESENT_HOSTING ? t->hosting : t)
                              : (host && strcmp(host->domain, domain) == 0 ? host : NULL);
    return cred && cred->next_chain.raw.p ? &cred->next_chain : NULL;
}

/* The TLSA text ("3 1 1 hex") of the next key, or "" when there is none. */
static void next_tlsa(const xf_config *cfg, const char *domain, char *out, size_t outlen)
{
    const mbedtls_x509_crt *next = xf_check_next_leaf(cfg, domain);
    out[0] = '\0';
    if (next && xf_dane_generate(next, 3, 1, 1, out, outlen) < 0)
        out[0] = '\0';
}

int xf_check_expected(const xf_config *cfg, const char *domain, xf_check_rec **out,
                      size_t *n, char *err, size_t errlen)
{
    char *text = NULL, next[300];
    size_t tlen = 0, cap = 0;
    *out = NULL;
    *n = 0;
    FILE *f = open_memstream(&text, &tlen);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int r = xf_records_print(f, cfg, domain, err, errlen);
    fclose(f);
    if (r != 0) {
        free(text);
        return -1;
    }
    next_tlsa(cfg, domain, next, sizeof(next));
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char owner[300], type[16];
        unsigned ttl;
        int off = 0;
        if (line[0] == ';' || line[0] == '\0')
            continue;
        if (sscanf(line, "%299s %u IN %15s %n", owner, &ttl, type, &off) != 3 || off == 0)
            continue;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            xf_check_rec *m = realloc(*out, nc * sizeof(*m));
            if (m == NULL) {
                snprintf(err, errlen, "out of memory");
                free(*out);
                *out = NULL;
                *n = 0;
                free(text);
                return -1;
            }
            *out = m;
            cap = nc;
        }
        xf_check_rec *rec = &(*out)[(*n)++];
        memset(rec, 0, sizeof(*rec));
        snprintf(rec->owner, sizeof(rec->owner), "%s", owner);
        snprintf(rec->type, sizeof(rec->type), "%s", type);
        snprintf(rec->rdata, sizeof(rec->rdata), "%s", line + off);
        rec->next = strcmp(type, "TLSA") == 0 && next[0] && strcmp(rec->rdata, next) == 0;
        /* "_5269._tcp.T." -> port and host for the TLSA question */
        if (strcmp(type, "TLSA") == 0 && sscanf(owner, "_%u._tcp.%253s", &rec->port,
                                                rec->host) == 2) {
            size_t l = strlen(rec->host);
            if (l > 1 && rec->host[l - 1] == '.')
                rec->host[l - 1] = '\0';
        }
    }
    free(text);
    return 0;
}

int xf_check_tlsa_has(const xf_dns_result *res, const char *text)
{
    struct xf_tlsa *want = malloc(sizeof(*want)), *got = malloc(sizeof(*got));
    int found = 0;
    if (want && got && xf_tlsa_parse_text(text, want) == 0 && res &&
        res->status == XF_DNS_NOERROR) {
        for (size_t i = 0; i < res->n_tlsa && !found; i++) {
            size_t len;
            const unsigned char *rd = xf_dns_tlsa_rdata(res, i, &len);
            found = rd && xf_tlsa_parse_rdata(rd, len, got) == 0 && got->usage == want->usage &&
                    got->selector == want->selector && got->mtype == want->mtype &&
                    got->len == want->len && memcmp(got->data, want->data, got->len) == 0;
        }
    }
    free(want);
    free(got);
    return found;
}

int xf_check_srv_has(const xf_dns_result *res, const char *rdata)
{
    unsigned prio, weight, port;
    char target[XF_DNS_NAME_MAX + 1];
    if (res == NULL || res->status != XF_DNS_NOERROR ||
        sscanf(rdata, "%u %u %u %254s", &prio, &weight, &port, target) != 4)
        return 0;
    size_t l = strlen(target);
    if (l > 1 && target[l - 1] == '.')
        target[--l] = '\0';
    for (size_t i = 0; i < res->n_srv; i++) {
        char got[XF_DNS_NAME_MAX];
        snprintf(got, sizeof(got), "%s", res->srv[i].target);
        size_t gl = strlen(got);
        if (gl > 1 && got[gl - 1] == '.')
            got[gl - 1] = '\0';
        if (strcmp(target, ".") == 0 ? (res->n_srv == 1 && (strcmp(got, ".") == 0 || !got[0]))
                                     : (res->srv[i].port == port && strcasecmp(got, target) == 0))
            return 1;
    }
    return 0;
}

void xf_check_records_compare(xf_check_report *rep, const xf_check_rec *recs, size_t n,
                              const char *const srv_owner[4], const xf_dns_result *const srv[4],
                              const xf_dns_result *const *tlsa, int trusted)
{
    char subj[XF_CHECK_SUBJECT_MAX], hint[XF_CHECK_HINT_MAX];
    for (size_t i = 0; i < n; i++) {
        const xf_check_rec *r = &recs[i];
        snprintf(subj, sizeof(subj), "%.120s %.8s %.160s%s", r->owner, r->type, r->rdata,
                 r->next ? " (next key)" : "");
        snprintf(hint, sizeof(hint), "publish it: %.110s IN %.8s %.150s (`xmppfront "
                 "records`)%s", r->owner, r->type, r->rdata,
                 r->next ? "; `xmppfront rollover` waits for it" : "");
        if (strcmp(r->type, "SRV") == 0) {
            int s;
            for (s = 0; s < 4 && strcasecmp(srv_owner[s], r->owner) != 0; s++)
                ;
            if (s == 4)
                continue;
            if (xf_check_srv_has(srv[s], r->rdata))
                xf_check_add(rep, XF_CHECK_OK, "record", subj, NULL, "in DNS");
            else
                xf_check_add(rep, XF_CHECK_WARN, "record", subj, hint,
                             "not in DNS (%s): peers do not reach this configuration's "
                             "listeners as `records` intends", xf_dns_status_name(srv[s]->status));
        } else if (strcmp(r->type, "TLSA") == 0) {
            const xf_dns_result *res = tlsa[i];
            if (res && xf_check_tlsa_has(res, r->rdata))
                xf_check_add(rep, XF_CHECK_OK, "record", subj, NULL, "in DNS, %s",
                             !trusted ? "DNSSEC unknown (resolver not trusted)"
                             : res->ad ? "secure (AD)" : "insecure (no AD): peers ignore it");
            else
                xf_check_add(rep, XF_CHECK_FAIL, "record", subj, hint, "not in DNS (%s%s)",
                             res ? xf_dns_status_name(res->status) : "not asked",
                             res && res->status == XF_DNS_NOERROR ? ": other records only" : "");
        }
    }
}

int xf_check_posh_next(xf_check_report *rep, const xf_check_posh *fetch,
                       const mbedtls_x509_crt *next)
{
    char why[200];
    if (fetch == NULL || fetch->result != XF_PROOF_VALID || fetch->doc == NULL || next == NULL)
        return XF_CHECK_OK;
    if (xf_posh_match(fetch->doc, next, why, sizeof(why)) == 1)
        return xf_check_add(rep, XF_CHECK_OK, "record", fetch->url, NULL,
                            "POSH document%s%s holds the next certificate's fingerprint",
                            fetch->via[0] ? " via " : "", fetch->via);
    return xf_check_add(rep, XF_CHECK_WARN, "record", fetch->url,
                        "serve the fingerprints of the current and the next certificate "
                        "(`xmppfront records` prints that document)",
                        "POSH document%s%s lacks the next certificate's fingerprint: peers "
                        "that cached it refuse the new certificate after the switch",
                        fetch->via[0] ? " via " : "", fetch->via);
}
