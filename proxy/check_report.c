/*
 * check_report: the pure half of `xmppfront check` (contract in proxy/check_cmd.h): the
 * list of findings, its text lines and JSON, the exit code, and the rules that turn
 * prooftype verdicts into ok / warn / fail. No I/O besides writing the report.
 */
#include "proxy/check_cmd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>

#include "certs/cert.h"
#include "certs/dane.h"
#include "proxy/remote_dane.h"

void xf_check_report_init(xf_check_report *r, const char *domain)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->domain, sizeof(r->domain), "%s", domain ? domain : "");
}

void xf_check_report_free(xf_check_report *r)
{
    free(r->items);
    r->items = NULL;
    r->n = r->cap = 0;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 §4: no overlongs, no
   surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* Copies s into out as one printable line of valid UTF-8: control bytes, DEL and bytes
   that are not well-formed UTF-8 become '?' (a certificate's names are the peer's
   bytes; the line must stay one line and the JSON valid), cut at a whole character. */
static void copy_line(char *out, size_t outlen, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t o = 0;
    while (*p && o + 1 < outlen) {
        size_t n = *p >= 0x80 ? utf8_len(p) : 1;
        if (n > 1 && o + n < outlen) {
            memcpy(out + o, p, n);
            o += n;
            p += n;
            continue;
        }
        if (n > 1)
            break;
        out[o++] = (*p < 0x20 || *p >= 0x7f) ? '?' : (char)*p;
        p++;
    }
    out[o] = '\0';
}

int xf_check_add(xf_check_report *r, int level, const char *check, const char *subject,
                 const char *hint, const char *fmt, ...)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        xf_check_item *n = realloc(r->items, cap * sizeof(*n));
        if (n == NULL) {
            r->nomem = 1;
            return level;
        }
        r->items = n;
        r->cap = cap;
    }
    xf_check_item *it = &r->items[r->n++];
    char detail[XF_CHECK_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    it->level = level;
    copy_line(it->check, sizeof(it->check), check);
    copy_line(it->subject, sizeof(it->subject), subject);
    copy_line(it->detail, sizeof(it->detail), detail);
    copy_line(it->hint, sizeof(it->hint), level == XF_CHECK_OK ? NULL : hint);
    return level;
}

int xf_check_worst(const xf_check_report *r)
{
    int w = r->nomem ? XF_CHECK_FAIL : XF_CHECK_OK;
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].level > w)
            w = r->items[i].level;
    return w;
}

int xf_check_exit_code(const xf_check_report *r)
{
    switch (xf_check_worst(r)) {
    case XF_CHECK_OK: return 0;
    case XF_CHECK_WARN: return 1;
    default: return 2;
    }
}

const char *xf_check_level_name(int level)
{
    switch (level) {
    case XF_CHECK_OK: return "ok";
    case XF_CHECK_WARN: return "warn";
    default: return "fail";
    }
}

size_t xf_check_format_line(const xf_check_item *it, char *out, size_t outlen)
{
    if (outlen == 0)
        return 0;
    int n = snprintf(out, outlen, "%s %s %s: %s%s%s", xf_check_level_name(it->level),
                     it->check, it->subject, it->detail, it->hint[0] ? " -- hint: " : "",
                     it->hint);
    if (n < 0) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n < outlen ? (size_t)n : outlen - 1;
}

static void count_levels(const xf_check_report *r, size_t c[3])
{
    c[0] = c[1] = c[2] = 0;
    for (size_t i = 0; i < r->n; i++)
        c[r->items[i].level < 0 || r->items[i].level > 2 ? 2 : r->items[i].level]++;
}

int xf_check_print_text(FILE *out, const xf_check_report *r)
{
    char line[XF_CHECK_NAME_MAX + XF_CHECK_SUBJECT_MAX + XF_CHECK_DETAIL_MAX +
              XF_CHECK_HINT_MAX + 32];
    size_t c[3];
    for (size_t i = 0; i < r->n; i++) {
        xf_check_format_line(&r->items[i], line, sizeof(line));
        fprintf(out, "%s\n", line);
    }
    if (r->nomem)
        fprintf(out, "fail report %s: out of memory, findings are missing\n", r->domain);
    count_levels(r, c);
    fprintf(out, "result %s: %zu ok, %zu warn, %zu fail\n",
            xf_check_level_name(xf_check_worst(r)), c[0], c[1], c[2] + (size_t)r->nomem);
    return ferror(out) ? -1 : 0;
}

#define GSTR(g, s) yajl_gen_string((g), (const unsigned char *)(s), strlen(s))

int xf_check_print_json(FILE *out, const xf_check_report *r)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    size_t c[3];
    if (g == NULL)
        return -1;
    yajl_gen_config(g, yajl_gen_beautify, 1);
    count_levels(r, c);
    yajl_gen_map_open(g);
    GSTR(g, "domain");
    GSTR(g, r->domain);
    GSTR(g, "result");
    GSTR(g, xf_check_level_name(xf_check_worst(r)));
    GSTR(g, "exit");
    yajl_gen_integer(g, xf_check_exit_code(r));
    GSTR(g, "counts");
    yajl_gen_map_open(g);
    for (int l = 0; l < 3; l++) {
        GSTR(g, xf_check_level_name(l));
        yajl_gen_integer(g, (long long)(c[l] + (l == 2 ? (size_t)r->nomem : 0)));
    }
    yajl_gen_map_close(g);
    GSTR(g, "checks");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < r->n; i++) {
        const xf_check_item *it = &r->items[i];
        yajl_gen_map_open(g);
        GSTR(g, "status");
        GSTR(g, xf_check_level_name(it->level));
        GSTR(g, "check");
        GSTR(g, it->check);
        GSTR(g, "subject");
        GSTR(g, it->subject);
        GSTR(g, "detail");
        GSTR(g, it->detail);
        GSTR(g, "hint");
        GSTR(g, it->hint);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t len;
    int rc = -1;
    if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
        rc = fwrite(buf, 1, len, out) == len && fputc('\n', out) != EOF ? 0 : -1;
    yajl_gen_free(g);
    return rc;
}

/* ---- the certificate ---- */

int xf_check_cert(xf_check_report *rep, const char *subj, const mbedtls_x509_crt *leaf,
                  size_t n_chain, time_t now)
{
    char sub[200], iss[200], sans[300] = "";
    struct xf_id_entry ids[8];
    size_t n = 0, l = 0;
    if (mbedtls_x509_dn_gets(sub, sizeof(sub), &leaf->subject) < 0)
        snprintf(sub, sizeof(sub), "?");
    if (mbedtls_x509_dn_gets(iss, sizeof(iss), &leaf->issuer) < 0)
        snprintf(iss, sizeof(iss), "?");
    if (xf_identity_extract(leaf, ids, 8, &n) == 0)
        for (size_t i = 0; i < n && i < 8 && l + 1 < sizeof(sans); i++) {
            if (ids[i].type == XF_ID_CN)
                continue;
            int k = snprintf(sans + l, sizeof(sans) - l, "%s%s:%s", l ? " " : "",
                             xf_identity_type_name(ids[i].type), ids[i].value);
            l += k > 0 ? (size_t)k : 0;
        }
    const mbedtls_x509_time *t = &leaf->valid_to;
    struct tm tm = { .tm_year = t->year - 1900, .tm_mon = t->mon - 1, .tm_mday = t->day,
                     .tm_hour = t->hour, .tm_min = t->min, .tm_sec = t->sec };
    long days = (long)((timegm(&tm) - now) / 86400);
    int ts = xf_cert_time_status(leaf), level = XF_CHECK_OK;
    const char *hint = NULL;
    if (ts != 0) {
        level = XF_CHECK_FAIL;
        hint = ts == XF_CERT_EXPIRED ? "renew the certificate" : "check the server's clock "
               "and the certificate's notBefore";
    } else if (days < XF_CHECK_CERT_WARN_DAYS) {
        level = XF_CHECK_WARN;
        hint = "renew the certificate soon (and publish the next key's TLSA first)";
    }
    return xf_check_add(rep, level, "cert", subj, hint,
                 "subject %s; SAN %s; issuer %s; expires %04d-%02d-%02d (%s%ld days); "
                 "%zu certificate%s sent", sub, sans[0] ? sans : "none", iss, t->year,
                 t->mon, t->day, ts == XF_CERT_EXPIRED ? "expired " : "",
                 days < 0 ? -days : days, n_chain, n_chain == 1 ? "" : "s");
}

/* ---- verdict rules ---- */

int xf_check_proof_level(int type, const xf_proof p[XF_PROOF_COUNT])
{
    int res = p[type].result;
    if (res == XF_PROOF_VALID || res == XF_PROOF_ABSENT || res == XF_PROOF_NOT_TRIED)
        return XF_CHECK_OK;
    switch (type) {
    case XF_PROOF_DANE:
        return XF_CHECK_FAIL;
    case XF_PROOF_PKIX:
        if (res == XF_PROOF_INVALID && (p[XF_PROOF_DANE].result == XF_PROOF_VALID ||
                                        p[XF_PROOF_POSH].result == XF_PROOF_VALID))
            return XF_CHECK_WARN;
        return XF_CHECK_FAIL;
    case XF_PROOF_POSH:
        return res == XF_PROOF_INVALID ? XF_CHECK_FAIL : XF_CHECK_WARN;
    default:
        return XF_CHECK_FAIL;
    }
}

static const char *const proof_names[XF_PROOF_COUNT] = { "dane", "pkix", "posh" };

int xf_check_proof_summary(const xf_proof p[XF_PROOF_COUNT], char *detail, size_t dlen)
{
    char valid[64] = "";
    for (int i = 0; i < XF_PROOF_COUNT; i++)
        if (p[i].result == XF_PROOF_VALID) {
            size_t l = strlen(valid);
            snprintf(valid + l, sizeof(valid) - l, "%s%s", l ? ", " : "", proof_names[i]);
        }
    int dane_bad = p[XF_PROOF_DANE].result == XF_PROOF_INVALID ||
                   p[XF_PROOF_DANE].result == XF_PROOF_ERROR;
    if (dane_bad) {
        snprintf(detail, dlen, "DANE-validating peers abort this endpoint (dane: %.300s)%s%s",
                 p[XF_PROOF_DANE].reason, valid[0] ? "; other proofs valid: " : "", valid);
        return XF_CHECK_FAIL;
    }
    if (valid[0] == '\0') {
        snprintf(detail, dlen, "no prooftype proves the domain (pkix: %.200s; dane: %.150s; "
                 "posh: %.150s)", p[XF_PROOF_PKIX].reason, p[XF_PROOF_DANE].reason,
                 p[XF_PROOF_POSH].reason);
        return XF_CHECK_FAIL;
    }
    snprintf(detail, dlen, "proven by %s", valid);
    return XF_CHECK_OK;
}

int xf_check_dane(int trusted, int srv_secure, int fallback, int addr_ad,
                  const xf_dns_result *tlsa, const char *owner, mbedtls_x509_crt *chain,
                  mbedtls_x509_crt *ca, const char *domain, enum xf_service svc,
                  const char *srv_target, xf_proof *p)
{
    char why[160];
    memset(p, 0, sizeof(*p));
    if (!xf_rdane_applies(trusted, srv_secure, fallback, addr_ad, why, sizeof(why))) {
        p->result = XF_PROOF_ABSENT;
        snprintf(p->reason, sizeof(p->reason), "not applicable: %s", why);
        return p->result;
    }
    if (tlsa == NULL) {
        p->result = XF_PROOF_ERROR;
        snprintf(p->reason, sizeof(p->reason), "TLSA %.120s not asked (time out)",
                 owner ? owner : "?");
        return p->result;
    }
    if (xf_rdane_answer(tlsa, owner, p) != XF_RDANE_RECORDS)
        return p->result;
    /* Secure records: the chain against them (xf_rdane_verify fixes the service to
       _xmpp-server; the c2s endpoints need _xmpp-client for DANE-TA / PKIX-* names). */
    memset(p, 0, sizeof(*p));
    size_t n = 0, len, usable = 0;
    struct xf_tlsa *recs = calloc(tlsa->n_tlsa, sizeof(*recs));
    struct xf_dane_verdict *v = calloc(1, sizeof(*v));
    if (recs == NULL || v == NULL) {
        p->result = XF_PROOF_ERROR;
        snprintf(p->reason, sizeof(p->reason), "out of memory checking TLSA");
        goto done;
    }
    for (size_t i = 0; i < tlsa->n_tlsa; i++) {
        const unsigned char *rd = xf_dns_tlsa_rdata(tlsa, i, &len);
        if (rd && xf_tlsa_parse_rdata(rd, len, &recs[n]) == 0)
            n++;
    }
    for (size_t i = 0; i < n; i++)
        usable += (size_t)xf_tlsa_usable(&recs[i], NULL);
    if (usable == 0) {
        p->result = XF_PROOF_ABSENT;
        snprintf(p->reason, sizeof(p->reason), "no usable TLSA record at %.120s (%zu "
                 "published): PKIX only", owner ? owner : "?", tlsa->n_tlsa);
    } else if (chain == NULL || chain->raw.p == NULL) {
        p->result = XF_PROOF_INVALID;
        snprintf(p->reason, sizeof(p->reason), "usable TLSA records, no certificate");
    } else if (xf_dane_check(recs, n, chain, ca, domain, svc, srv_target, v) ==
               XF_DANE_MATCH) {
        p->result = XF_PROOF_VALID;
        snprintf(p->reason, sizeof(p->reason), "%.190s", v->reason);
    } else {
        p->result = XF_PROOF_INVALID;
        snprintf(p->reason, sizeof(p->reason), "TLSA mismatch: %.170s", v->reason);
    }
done:
    free(recs);
    free(v);
    return p->result;
}

int xf_check_posh_verdict(const xf_check_posh *fetch, const mbedtls_x509_crt *leaf,
                          xf_proof *p)
{
    char why[200];
    memset(p, 0, sizeof(*p));
    if (fetch == NULL || fetch->result != XF_PROOF_VALID || fetch->doc == NULL) {
        p->result = fetch && fetch->result != XF_PROOF_VALID ? fetch->result : XF_PROOF_ERROR;
        snprintf(p->reason, sizeof(p->reason), "%.190s", fetch ? fetch->why : "not fetched");
        return p->result;
    }
    if (leaf == NULL || leaf->raw.p == NULL) {
        p->result = XF_PROOF_INVALID;
        snprintf(p->reason, sizeof(p->reason), "no certificate presented");
        return p->result;
    }
    if (xf_posh_check(fetch->doc, leaf, why, sizeof(why)) == XF_POSH_MATCH) {
        p->result = XF_PROOF_VALID;
        snprintf(p->reason, sizeof(p->reason), "%.120s%s%.60s", why,
                 fetch->via[0] ? " (via url " : "", fetch->via[0] ? fetch->via : "");
        if (fetch->via[0]) {
            size_t l = strlen(p->reason);
            snprintf(p->reason + l, sizeof(p->reason) - l, ")");
        }
    } else {
        p->result = XF_PROOF_INVALID;
        snprintf(p->reason, sizeof(p->reason), "document does not match the certificate: "
                 "%.150s", why);
    }
    return p->result;
}
