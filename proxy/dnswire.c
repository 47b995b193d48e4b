/*
 * dnswire: DNS query building and answer parsing. Contract in dnswire.h.
 * Every read is checked against the message length; names are bounded to 255 wire
 * bytes (RFC 1035 §3.1) and compression pointers must point backwards (so a chain
 * of pointers ends), with at most 64 jumps.
 */
#include "proxy/dnswire.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HDR 12
#define MAX_RR_SCAN 512                /* answer records looked at, at most */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Lower-case presentation form of a user-supplied name, without trailing dot.
   0 or -1 when it is not a plain host name. */
static int name_normalise(const char *in, char out[XF_DNS_NAME_MAX])
{
    size_t n = strnlen(in, XF_DNS_NAME_MAX);
    if (n == XF_DNS_NAME_MAX) return -1;
    if (n && in[n - 1] == '.') n--;
    if (n == 0 || n > 253) return -1;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.') {
            if (label == 0) return -1;
            label = 0;
        } else {
            if (!name_char_ok(c) || ++label > 63) return -1;
            if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        }
        out[i] = (char)c;
    }
    if (label == 0) return -1;
    out[n] = '\0';
    return 0;
}

int xf_dnswire_query(uint8_t *buf, size_t len, uint16_t id, const char *name,
                     uint16_t qtype)
{
    char norm[XF_DNS_NAME_MAX];
    if (!buf || !name || len < XF_DNS_QUERY_MAX || name_normalise(name, norm) < 0)
        return XF_DNSWIRE_ERR_ARG;
    uint8_t *p = buf;
    *p++ = (uint8_t)(id >> 8); *p++ = (uint8_t)id;
    *p++ = 0x01;                       /* RD */
    *p++ = 0x20;                       /* AD (RFC 6840 §5.7) */
    *p++ = 0; *p++ = 1;                /* QDCOUNT */
    *p++ = 0; *p++ = 0;                /* ANCOUNT */
    *p++ = 0; *p++ = 0;                /* NSCOUNT */
    *p++ = 0; *p++ = 1;                /* ARCOUNT: the OPT record */
    const char *s = norm;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        *p++ = (uint8_t)l;
        memcpy(p, s, l);
        p += l;
        s += l + (dot ? 1 : 0);
    }
    *p++ = 0;
    *p++ = (uint8_t)(qtype >> 8); *p++ = (uint8_t)qtype;
    *p++ = 0; *p++ = 1;                /* class IN */
    /* OPT: root owner, type 41, class = UDP payload size, TTL = ext-rcode/version/
       flags 0 (no DO), RDLEN 0. */
    *p++ = 0;
    *p++ = 0; *p++ = XF_DNS_T_OPT;
    *p++ = 1232 >> 8; *p++ = 1232 & 0xff;
    *p++ = 0; *p++ = 0; *p++ = 0; *p++ = 0;
    *p++ = 0; *p++ = 0;
    return (int)(p - buf);
}

/* Reads the name at *off into out (lower case, no trailing dot, "." for the root;
   a byte that is not a letter, digit, '-' or '_' becomes '?', so that such a name
   never equals a host name). Advances *off past the name as it appears at *off.
   0 or -1 (malformed). */
static int read_name(const uint8_t *msg, size_t len, size_t *off, char out[XF_DNS_NAME_MAX])
{
    size_t pos = *off, end = 0, o = 0, wire = 0;
    int jumped = 0, jumps = 0;
    for (;;) {
        if (pos >= len) return -1;
        uint8_t l = msg[pos];
        if ((l & 0xC0) == 0xC0) {
            if (pos + 1 >= len || ++jumps > 64) return -1;
            size_t target = (size_t)(l & 0x3F) << 8 | msg[pos + 1];
            if (target >= pos) return -1;          /* only backwards: no loops */
            if (!jumped) { end = pos + 2; jumped = 1; }
            pos = target;
            continue;
        }
        if (l & 0xC0) return -1;                   /* 0x40/0x80: extended labels */
        if (l == 0) {
            if (!jumped) end = pos + 1;
            break;
        }
        if (pos + 1 + l > len) return -1;
        wire += 1u + l;
        if (wire > 254) return -1;                 /* + the root byte: 255 */
        if (o) out[o++] = '.';
        for (size_t i = 0; i < l; i++) {
            unsigned char c = msg[pos + 1 + i];
            if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
            out[o++] = name_char_ok(c) ? (char)c : '?';
        }
        pos += 1u + l;
    }
    if (o == 0) out[o++] = '.';
    out[o] = '\0';
    *off = end;
    return 0;
}

struct rr {
    char owner[XF_DNS_NAME_MAX];
    uint16_t type, cls;
    uint32_t ttl;
    size_t rdoff, rdlen;
};

/* One resource record at *off. */
static int read_rr(const uint8_t *msg, size_t len, size_t *off, struct rr *r)
{
    if (read_name(msg, len, off, r->owner) < 0) return -1;
    if (*off + 10 > len) return -1;
    const uint8_t *p = msg + *off;
    r->type = rd16(p);
    r->cls = rd16(p + 2);
    r->ttl = rd32(p + 4);
    if (r->ttl & 0x80000000u) r->ttl = 0;          /* RFC 2181 §8 */
    r->rdlen = rd16(p + 8);
    r->rdoff = *off + 10;
    if (r->rdoff + r->rdlen > len) return -1;
    *off = r->rdoff + r->rdlen;
    return 0;
}

static void result_init(xf_dns_result *res, uint16_t qtype)
{
    memset(res, 0, sizeof *res);
    res->status = XF_DNS_ERROR;
    res->qtype = qtype;
}

void xf_dns_result_free(xf_dns_result *res)
{
    if (!res) return;
    free(res->srv);
    free(res->addr);
    free(res->tlsa);
    free(res->tlsa_rdata);
    res->srv = NULL;
    res->addr = NULL;
    res->tlsa = NULL;
    res->tlsa_rdata = NULL;
    res->n_srv = res->n_addr = res->n_tlsa = res->tlsa_rdata_len = 0;
}

int xf_dns_result_copy(xf_dns_result *dst, const xf_dns_result *src)
{
    *dst = *src;
    dst->srv = NULL;
    dst->addr = NULL;
    dst->tlsa = NULL;
    dst->tlsa_rdata = NULL;
    if (src->n_srv) {
        if (!(dst->srv = malloc(src->n_srv * sizeof *dst->srv))) goto nomem;
        memcpy(dst->srv, src->srv, src->n_srv * sizeof *dst->srv);
    }
    if (src->n_addr) {
        if (!(dst->addr = malloc(src->n_addr * sizeof *dst->addr))) goto nomem;
        memcpy(dst->addr, src->addr, src->n_addr * sizeof *dst->addr);
    }
    if (src->n_tlsa) {
        if (!(dst->tlsa = malloc(src->n_tlsa * sizeof *dst->tlsa))) goto nomem;
        memcpy(dst->tlsa, src->tlsa, src->n_tlsa * sizeof *dst->tlsa);
    }
    if (src->tlsa_rdata_len) {
        if (!(dst->tlsa_rdata = malloc(src->tlsa_rdata_len))) goto nomem;
        memcpy(dst->tlsa_rdata, src->tlsa_rdata, src->tlsa_rdata_len);
    }
    return 0;
nomem:
    xf_dns_result_free(dst);
    dst->status = XF_DNS_ERROR;
    return XF_DNSWIRE_ERR_NOMEM;
}

/* Negative-answer TTL: the first SOA in the authority section. */
static uint32_t soa_ttl(const uint8_t *msg, size_t len, size_t off, unsigned nscount)
{
    struct rr r;
    for (unsigned i = 0; i < nscount; i++) {
        if (read_rr(msg, len, &off, &r) < 0) return 0;
        if (r.type != XF_DNS_T_SOA || r.cls != 1) continue;
        size_t p = r.rdoff;
        char tmp[XF_DNS_NAME_MAX];
        if (read_name(msg, len, &p, tmp) < 0 || read_name(msg, len, &p, tmp) < 0) return 0;
        if (p + 20 > r.rdoff + r.rdlen) return 0;
        uint32_t minimum = rd32(msg + p + 16);
        if (minimum & 0x80000000u) minimum = 0;
        return r.ttl < minimum ? r.ttl : minimum;
    }
    return 0;
}

int xf_dnswire_parse(const uint8_t *msg, size_t len, const char *qname, uint16_t qtype,
                     xf_dns_result *res)
{
    char want[XF_DNS_NAME_MAX], name[XF_DNS_NAME_MAX];
    struct rr *rrs = NULL;
    size_t off = HDR, nrr = 0;
    int rc = 0;

    if (!res) return XF_DNSWIRE_ERR_ARG;
    result_init(res, qtype);
    if (!msg || !qname || name_normalise(qname, want) < 0) return XF_DNSWIRE_ERR_ARG;
    if (len < HDR) return 0;
    uint16_t flags = rd16(msg + 2);
    unsigned qd = rd16(msg + 4), an = rd16(msg + 6), ns = rd16(msg + 8);
    if (!(flags & 0x8000) || (flags & 0x0200) || qd != 1) return 0;   /* QR, TC */
    res->ad = (flags & 0x0020) ? 1 : 0;

    if (read_name(msg, len, &off, name) < 0 || off + 4 > len) return 0;
    if (strcmp(name, want) != 0 || rd16(msg + off) != qtype || rd16(msg + off + 2) != 1)
        return 0;
    off += 4;

    unsigned rcode = flags & 0x000F;
    if (rcode == 2) { res->status = XF_DNS_SERVFAIL; return 0; }
    if (rcode != 0 && rcode != 3) return 0;

    size_t scan = an < MAX_RR_SCAN ? an : MAX_RR_SCAN;
    if (scan && !(rrs = calloc(scan, sizeof *rrs))) return XF_DNSWIRE_ERR_NOMEM;
    for (size_t i = 0; i < an; i++) {
        struct rr tmp;
        if (read_rr(msg, len, &off, i < scan ? &rrs[i] : &tmp) < 0) goto done;  /* ERROR */
        if (i < scan) nrr++;
    }

    /* Follow the CNAME chain from the question name (RFC 1034 §3.6.2). */
    const char *cur = want;
    char chain[XF_DNS_NAME_MAX];
    uint32_t ttl = UINT32_MAX;
    size_t nrec = 0;
    for (int hop = 0;; hop++) {
        for (size_t i = 0; i < nrr; i++)
            if (rrs[i].cls == 1 && rrs[i].type == qtype && !strcmp(rrs[i].owner, cur)) nrec++;
        if (nrec) break;
        size_t c;
        for (c = 0; c < nrr; c++)
            if (rrs[c].cls == 1 && rrs[c].type == XF_DNS_T_CNAME && !strcmp(rrs[c].owner, cur))
                break;
        if (c == nrr) break;
        if (hop == XF_DNS_MAX_CNAMES) goto done;   /* too long, or a loop: ERROR */
        size_t p = rrs[c].rdoff;
        if (read_name(msg, len, &p, chain) < 0 || p != rrs[c].rdoff + rrs[c].rdlen) goto done;
        if (rrs[c].ttl < ttl) ttl = rrs[c].ttl;
        memcpy(res->cname, chain, sizeof chain);
        cur = res->cname;
    }

    if (rcode == 3) {
        res->status = XF_DNS_NXDOMAIN;
        res->ttl = soa_ttl(msg, len, off, ns);
        goto done;
    }
    if (nrec == 0) {
        res->status = XF_DNS_NODATA;
        res->ttl = soa_ttl(msg, len, off, ns);
        goto done;
    }
    if (nrec > XF_DNS_MAX_RECORDS) nrec = XF_DNS_MAX_RECORDS;
    if (qtype == XF_DNS_T_SRV) {
        if (!(res->srv = calloc(nrec, sizeof *res->srv))) { rc = XF_DNSWIRE_ERR_NOMEM; goto done; }
    } else if (qtype == XF_DNS_T_A || qtype == XF_DNS_T_AAAA) {
        if (!(res->addr = calloc(nrec, sizeof *res->addr))) { rc = XF_DNSWIRE_ERR_NOMEM; goto done; }
    } else if (qtype == XF_DNS_T_TLSA) {
        /* Room for the RDATA of the records kept (bounded by the message). */
        size_t total = 0, k = 0;
        for (size_t i = 0; i < nrr && k < nrec; i++)
            if (rrs[i].cls == 1 && rrs[i].type == qtype && !strcmp(rrs[i].owner, cur)) {
                total += rrs[i].rdlen;
                k++;
            }
        if (!(res->tlsa = calloc(nrec, sizeof *res->tlsa)) ||
            (total && !(res->tlsa_rdata = malloc(total)))) {
            rc = XF_DNSWIRE_ERR_NOMEM;
            goto done;
        }
    } else {
        goto done;                                 /* not a type we read: ERROR */
    }
    for (size_t i = 0; i < nrr && (res->n_srv + res->n_addr + res->n_tlsa) < nrec; i++) {
        const struct rr *r = &rrs[i];
        if (r->cls != 1 || r->type != qtype || strcmp(r->owner, cur)) continue;
        if (qtype == XF_DNS_T_SRV) {
            if (r->rdlen < 7) goto malformed;
            xf_srv_rec *s = &res->srv[res->n_srv];
            size_t p = r->rdoff + 6;
            s->priority = rd16(msg + r->rdoff);
            s->weight = rd16(msg + r->rdoff + 2);
            s->port = rd16(msg + r->rdoff + 4);
            if (read_name(msg, len, &p, s->target) < 0 || p != r->rdoff + r->rdlen)
                goto malformed;
            res->n_srv++;
        } else if (qtype == XF_DNS_T_TLSA) {
            if (r->rdlen < 3) goto malformed;      /* RFC 6698 §2.1: three octets + data */
            xf_dns_tlsa *t = &res->tlsa[res->n_tlsa++];
            t->off = res->tlsa_rdata_len;
            t->len = r->rdlen;
            memcpy(res->tlsa_rdata + t->off, msg + r->rdoff, r->rdlen);
            res->tlsa_rdata_len += r->rdlen;
        } else {
            size_t alen = qtype == XF_DNS_T_A ? 4 : 16;
            if (r->rdlen != alen) goto malformed;
            xf_dns_addr *a = &res->addr[res->n_addr++];
            a->family = qtype == XF_DNS_T_A ? AF_INET : AF_INET6;
            memcpy(a->addr, msg + r->rdoff, alen);
        }
        if (r->ttl < ttl) ttl = r->ttl;
    }
    res->ttl = ttl;
    res->status = XF_DNS_NOERROR;
    goto done;
malformed:
    xf_dns_result_free(res);
    res->status = XF_DNS_ERROR;
done:
    free(rrs);
    if (rc) {
        xf_dns_result_free(res);
        res->status = XF_DNS_ERROR;
    }
    return rc;
}

const unsigned char *xf_dns_tlsa_rdata(const xf_dns_result *res, size_t i, size_t *len)
{
    if (!res || i >= res->n_tlsa || !res->tlsa_rdata) return NULL;
    if (len) *len = res->tlsa[i].len;
    return res->tlsa_rdata + res->tlsa[i].off;
}

const char *xf_dns_status_name(int s)
{
    switch (s) {
    case XF_DNS_NOERROR: return "NOERROR";
    case XF_DNS_NXDOMAIN: return "NXDOMAIN";
    case XF_DNS_NODATA: return "NODATA";
    case XF_DNS_SERVFAIL: return "SERVFAIL";
    case XF_DNS_TIMEOUT: return "TIMEOUT";
    default: return "ERROR";
    }
}

void xf_dns_srv_answer(const xf_dns_result *res, xf_srv_answer *out)
{
    out->recs = NULL;
    out->n = 0;
    switch (res->status) {
    case XF_DNS_NOERROR:
        out->status = XF_SRV_ST_RECORDS;
        out->recs = res->srv;
        out->n = res->n_srv;
        break;
    case XF_DNS_NXDOMAIN:
    case XF_DNS_NODATA:
        out->status = XF_SRV_ST_NONE;
        break;
    default:
        out->status = XF_SRV_ST_FAIL;
    }
}
