/*
 * identity: RFC 6125 identity matching as profiled by RFC 6120 §13.7.1.2.
 * See identity.h for the contract. The subjectAltName otherName entries
 * (SRVName, XmppAddr) are decoded here because mbedTLS 3.6 only decodes the
 * hardware-module-name otherName.
 */
#include "certs/identity.h"
#include "certs/idna.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>

/* id-pkix id-on (1.3.6.1.5.5.7.8) arcs, DER-encoded OID contents. */
static const unsigned char OID_ON_XMPPADDR[] = { 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05 };
static const unsigned char OID_ON_DNSSRV[]   = { 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07 };

#define SAN_TAG_OTHERNAME (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0)
#define SAN_TAG_DNSNAME   (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)
#define SAN_TAG_URI       (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 6)

const char *xf_identity_type_name(enum xf_id_type t)
{
    switch (t) {
    case XF_ID_DNS: return "DNS-ID";
    case XF_ID_SRV: return "SRV-ID";
    case XF_ID_XMPPADDR: return "XmppAddr";
    case XF_ID_URI: return "URI-ID";
    case XF_ID_CN: return "CN-ID";
    default: return "none";
    }
}

/* Copies a presented value for display: NUL-terminated, control bytes and NULs
   replaced by '?', truncated to fit. */
static void copy_display(char *dst, const unsigned char *p, size_t len)
{
    size_t n = len < XF_ID_VALUE_MAX - 1 ? len : XF_ID_VALUE_MAX - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (p[i] < 0x20 || p[i] == 0x7F) ? '?' : (char)p[i];
    dst[n] = '\0';
}

/* 1 if p[0..len) has no NUL or control byte (an embedded NUL is a classic
   certificate-name attack, e.g. "good.example\0.evil.example"). */
static int clean_bytes(const unsigned char *p, size_t len, int ascii_only)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F)
            return 0;
        if (ascii_only && p[i] >= 0x80)
            return 0;
    }
    return 1;
}

/* Decodes an otherName body: type-id OID, then [0] EXPLICIT value.
   The type is decided by the OID alone, before the value is parsed: *type is
   XF_ID_XMPPADDR / XF_ID_SRV for an OID we know (even if what follows is
   malformed: that is still a SAN identifier, which blocks the CN fallback), and
   XF_ID_NONE for any other otherName. Returns 0 with *val / *vlen pointing at the
   string, or XF_ID_ERR_PARSE if the body is malformed. */
static int decode_othername(const unsigned char *p, size_t len, enum xf_id_type *type,
                            const unsigned char **val, size_t *vlen)
{
    unsigned char *q = (unsigned char *)p;
    const unsigned char *end = p + len;
    size_t olen, xlen, slen;
    int strtag;

    *type = XF_ID_NONE;
    if (mbedtls_asn1_get_tag(&q, end, &olen, MBEDTLS_ASN1_OID) != 0)
        return XF_ID_ERR_PARSE;
    if (olen == sizeof OID_ON_XMPPADDR && memcmp(q, OID_ON_XMPPADDR, olen) == 0) {
        *type = XF_ID_XMPPADDR;
        strtag = MBEDTLS_ASN1_UTF8_STRING;
    } else if (olen == sizeof OID_ON_DNSSRV && memcmp(q, OID_ON_DNSSRV, olen) == 0) {
        *type = XF_ID_SRV;
        strtag = MBEDTLS_ASN1_IA5_STRING;
    } else {
        return 0; /* an otherName we do not use */
    }
    q += olen;
    if (mbedtls_asn1_get_tag(&q, end, &xlen,
                             MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0) != 0)
        return XF_ID_ERR_PARSE;
    if (q + xlen != end)
        return XF_ID_ERR_PARSE;
    if (mbedtls_asn1_get_tag(&q, end, &slen, strtag) != 0)
        return XF_ID_ERR_PARSE;
    if (q + slen != end)
        return XF_ID_ERR_PARSE;
    *val = q;
    *vlen = slen;
    return 0;
}

static void put_entry(struct xf_id_entry *out, size_t max, size_t *n,
                      enum xf_id_type type, int valid, const unsigned char *p, size_t len)
{
    if (*n < max) {
        out[*n].type = type;
        out[*n].valid = valid && len < XF_ID_VALUE_MAX;
        copy_display(out[*n].value, p, len);
    }
    (*n)++;
}

int xf_identity_extract(const mbedtls_x509_crt *crt, struct xf_id_entry *out,
                        size_t max, size_t *n)
{
    if (!crt || !n || (max > 0 && !out))
        return XF_ID_ERR_ARG;
    *n = 0;
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s; s = s->next) {
        const unsigned char *p = s->buf.p;
        size_t len = s->buf.len;
        if (!p)
            continue;
        switch (s->buf.tag) {
        case SAN_TAG_DNSNAME:
            put_entry(out, max, n, XF_ID_DNS, clean_bytes(p, len, 1), p, len);
            break;
        case SAN_TAG_URI:
            put_entry(out, max, n, XF_ID_URI, 0, p, len);
            break;
        case SAN_TAG_OTHERNAME: {
            enum xf_id_type t;
            const unsigned char *v = NULL;
            size_t vlen = 0;
            int r = decode_othername(p, len, &t, &v, &vlen);
            if (t == XF_ID_NONE)
                break; /* unknown otherName (or no OID at all): not an identifier */
            if (r < 0)
                put_entry(out, max, n, t, 0, (const unsigned char *)"", 0);
            else
                put_entry(out, max, n, t, clean_bytes(v, vlen, t == XF_ID_SRV), v, vlen);
            break;
        }
        default:
            break; /* rfc822Name, iPAddress, directoryName...: not used by XMPP */
        }
    }
    for (const mbedtls_x509_name *nm = &crt->subject; nm; nm = nm->next) {
        if (!nm->oid.p || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &nm->oid) != 0)
            continue;
        put_entry(out, max, n, XF_ID_CN, clean_bytes(nm->val.p, nm->val.len, 1),
                  nm->val.p, nm->val.len);
    }
    return 0;
}

/* Lower-cases presented[0..len) into buf, dropping one trailing dot.
   Returns the length or -1 if it does not fit / is empty / not clean ASCII. */
static int lower_presented(const char *presented, size_t len, char *buf, size_t buflen)
{
    if (len > 0 && presented[len - 1] == '.')
        len--;
    if (len == 0 || len >= buflen)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)presented[i];
        if (c < 0x21 || c >= 0x7F)
            return -1;
        buf[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    buf[len] = '\0';
    return (int)len;
}

/* 1 if every label of s (dot-separated, already lower case) is an LDH label. */
static int all_ldh(const char *s)
{
    size_t count = 0;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        if (!xf_idna_is_ldh_label(s, l))
            return 0;
        count++;
        if (!dot)
            break;
        s = dot + 1;
        if (!*s)
            return 0; /* empty last label */
    }
    return count > 0;
}

int xf_identity_match_dns(const char *presented, size_t len, const char *ref_norm)
{
    char buf[XF_ID_VALUE_MAX];
    int l = lower_presented(presented, len, buf, sizeof buf);
    if (l < 0 || !ref_norm)
        return 0;
    if (buf[0] == '*' && buf[1] == '.') {
        /* RFC 6120 §13.7.1.2 / RFC 6125 §6.4.3: '*' is the whole left-most label
           and stands for exactly one label of the reference. The rest must be at
           least two labels (no "*.com") and contain no further '*'. */
        const char *rest = buf + 2;
        const char *ref_rest = strchr(ref_norm, '.');
        if (!strchr(rest, '.') || !all_ldh(rest) || !ref_rest)
            return 0;
        return strcmp(rest, ref_rest + 1) == 0;
    }
    if (!all_ldh(buf))
        return 0; /* partial wildcards ("f*.example.com") and junk never match */
    return strcmp(buf, ref_norm) == 0;
}

/* SRV-ID (RFC 4985 SRVName, RFC 6125 §6.5.1): "_service.domain". The service
   label is compared case-insensitively to want_svc; the domain exactly, no
   wildcard. Returns 1 match, 0 no, 2 domain matches but the service differs. */
static int match_srv(const char *presented, const char *want_svc, const char *ref_norm)
{
    char buf[XF_ID_VALUE_MAX];
    int l = lower_presented(presented, strlen(presented), buf, sizeof buf);
    char *dot;
    if (l < 0 || buf[0] != '_' || !(dot = strchr(buf, '.')))
        return 0;
    *dot = '\0';
    if (!all_ldh(dot + 1) || strcmp(dot + 1, ref_norm) != 0)
        return 0;
    return strcmp(buf, want_svc) == 0 ? 1 : 2;
}

/* XmppAddr (RFC 6120 §13.7.1.4): a JID; for a domain reference only a bare
   domain JID counts. It is UTF-8, so it is normalised like a reference name
   (U-labels to A-labels); a '*' makes it fail normalisation, i.e. literal. */
static int match_xmppaddr(const char *presented, const char *ref_norm)
{
    char norm[XF_ID_VALUE_MAX];
    if (strchr(presented, '@') || strchr(presented, '/'))
        return 0;
    if (xf_idna_normalize(presented, norm, sizeof norm) < 0)
        return 0;
    return strcmp(norm, ref_norm) == 0;
}

/* 1 if a CN looks like a host name we may use as CN-ID (RFC 6125 §6.4.4):
   at least two labels, LDH or a whole left-most '*'. */
static int cn_is_hostname(const char *cn)
{
    char buf[XF_ID_VALUE_MAX];
    int l = lower_presented(cn, strlen(cn), buf, sizeof buf);
    if (l < 0 || !strchr(buf, '.'))
        return 0;
    if (buf[0] == '*' && buf[1] == '.')
        return all_ldh(buf + 2) && strchr(buf + 2, '.') != NULL;
    return all_ldh(buf);
}

/* All presented identifiers of crt, in a heap array (*out, free() it): matching
   must see every SAN entry, however many there are. Returns 0, or -1 if the
   SAN cannot be walked or memory is short. */
static int extract_all(const mbedtls_x509_crt *crt, struct xf_id_entry **out, size_t *n)
{
    size_t count = 0, got = 0;
    *out = NULL;
    *n = 0;
    if (xf_identity_extract(crt, NULL, 0, &count) < 0)
        return -1;
    if (count == 0)
        return 0;
    if (!(*out = calloc(count, sizeof **out)))
        return -1;
    if (xf_identity_extract(crt, *out, count, &got) < 0 || got != count) {
        free(*out);
        *out = NULL;
        return -1;
    }
    *n = count;
    return 0;
}

static void copy_trunc(char *dst, size_t dstlen, const char *src)
{
    size_t l = strlen(src);
    if (l >= dstlen)
        l = dstlen - 1;
    memcpy(dst, src, l);
    dst[l] = '\0';
}

static void set_match(struct xf_id_verdict *v, enum xf_id_type t, const char *pres,
                      const char *ref, const char *why)
{
    v->matched = 1;
    v->type = t;
    copy_trunc(v->presented, sizeof v->presented, pres);
    copy_trunc(v->reference, sizeof v->reference, ref);
    snprintf(v->reason, sizeof v->reason, "%s %.128s matches %.128s%s",
             xf_identity_type_name(t), pres, ref, why);
}

int xf_identity_check(const mbedtls_x509_crt *crt, const char *domain,
                      enum xf_service svc, const char *srv_target,
                      struct xf_id_verdict *v)
{
    struct xf_id_entry *ids = NULL;
    char dom[XF_ID_VALUE_MAX], tgt[XF_ID_VALUE_MAX];
    const char *want_svc = svc == XF_SERVICE_SERVER ? "_xmpp-server" : "_xmpp-client";
    size_t n = 0, stored;
    int have_target = 0, san_ids = 0, wrong_service = 0, r = 0;
    struct xf_id_verdict scratch;

    if (!v)
        v = &scratch;
    memset(v, 0, sizeof *v);
    if (!crt || !domain) {
        snprintf(v->reason, sizeof v->reason, "no reference domain or certificate");
        return XF_ID_ERR_ARG;
    }
    if (xf_idna_normalize(domain, dom, sizeof dom) < 0) {
        snprintf(v->reason, sizeof v->reason, "reference domain is not a host name");
        return XF_ID_ERR_BADNAME;
    }
    if (srv_target && *srv_target) {
        if (xf_idna_normalize(srv_target, tgt, sizeof tgt) < 0) {
            snprintf(v->reason, sizeof v->reason, "SRV target is not a host name");
            return XF_ID_ERR_BADNAME;
        }
        have_target = 1;
    }
    if (extract_all(crt, &ids, &n) < 0) {
        snprintf(v->reason, sizeof v->reason, "cannot decode subjectAltName");
        return 0;
    }
    stored = n;

    for (size_t i = 0; i < stored; i++) {
        const struct xf_id_entry *e = &ids[i];
        if (e->type == XF_ID_DNS || e->type == XF_ID_SRV || e->type == XF_ID_XMPPADDR
            || e->type == XF_ID_URI)
            san_ids = 1;
        if (!e->valid)
            continue;
        switch (e->type) {
        case XF_ID_DNS:
            if (xf_identity_match_dns(e->value, strlen(e->value), dom)) {
                set_match(v, XF_ID_DNS, e->value, dom, "");
                r = 1;
                goto out;
            }
            if (have_target && xf_identity_match_dns(e->value, strlen(e->value), tgt)) {
                set_match(v, XF_ID_DNS, e->value, tgt, " (secure SRV target)");
                r = 1;
                goto out;
            }
            break;
        case XF_ID_SRV: {
            int sr = match_srv(e->value, want_svc, dom);
            if (sr == 1) {
                char ref[XF_ID_VALUE_MAX + 16];
                snprintf(ref, sizeof ref, "%s.%s", want_svc, dom);
                set_match(v, XF_ID_SRV, e->value, ref, "");
                r = 1;
                goto out;
            }
            if (sr == 2)
                wrong_service = 1;
            break;
        }
        case XF_ID_XMPPADDR:
            if (match_xmppaddr(e->value, dom)) {
                set_match(v, XF_ID_XMPPADDR, e->value, dom, "");
                r = 1;
                goto out;
            }
            break;
        default:
            break;
        }
    }
    if (!san_ids) {
        for (size_t i = 0; i < stored; i++) {
            const struct xf_id_entry *e = &ids[i];
            if (e->type != XF_ID_CN || !e->valid || !cn_is_hostname(e->value))
                continue;
            if (xf_identity_match_dns(e->value, strlen(e->value), dom)) {
                set_match(v, XF_ID_CN, e->value, dom, " (no subjectAltName identifiers)");
                r = 1;
                goto out;
            }
        }
    }

    /* No match: say what was presented. */
    size_t off = (size_t)snprintf(v->reason, sizeof v->reason, "no identifier matches %s%s%s%s;",
                                  dom, have_target ? " or " : "", have_target ? tgt : "",
                                  wrong_service ? " (SRV-ID for another service)" : "");
    if (stored == 0 && off < sizeof v->reason)
        off += (size_t)snprintf(v->reason + off, sizeof v->reason - off, " certificate has no identifiers");
    for (size_t i = 0; i < stored && off < sizeof v->reason; i++) {
        const char *note = "";
        if (ids[i].type == XF_ID_CN && san_ids)
            note = " (ignored: SAN present)";
        else if (!ids[i].valid)
            note = " (malformed)";
        off += (size_t)snprintf(v->reason + off, sizeof v->reason - off, " %s %s%s",
                                xf_identity_type_name(ids[i].type), ids[i].value, note);
    }
out:
    free(ids);
    return r;
}

int xf_identity_covers_dns(const mbedtls_x509_crt *crt, const char *name)
{
    struct xf_id_entry *ids = NULL;
    char ref[XF_ID_VALUE_MAX];
    size_t n = 0;
    int san_ids = 0, r = 0;

    if (!crt || !name || xf_idna_normalize(name, ref, sizeof ref) < 0)
        return 0;
    if (extract_all(crt, &ids, &n) < 0)
        return 0;
    for (size_t i = 0; i < n && !r; i++) {
        if (ids[i].type == XF_ID_CN)
            continue;
        san_ids = 1;
        if (ids[i].type == XF_ID_DNS && ids[i].valid
            && xf_identity_match_dns(ids[i].value, strlen(ids[i].value), ref))
            r = 1;
    }
    for (size_t i = 0; i < n && !r && !san_ids; i++)
        if (ids[i].type == XF_ID_CN && ids[i].valid && cn_is_hostname(ids[i].value)
            && xf_identity_match_dns(ids[i].value, strlen(ids[i].value), ref))
            r = 1;
    free(ids);
    return r;
}
