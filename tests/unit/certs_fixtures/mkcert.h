/*
 * mkcert.h: test-only certificate factory on mbedTLS's x509write API, included by
 * the certs/ unit tests. Everything is generated at run time (no fixture files),
 * including SAN otherName entries (SRVName, XmppAddr) that the openssl command
 * line in Debian cannot produce easily, and arbitrary validity dates.
 * Header-only (static functions) because the build links one source per test.
 */
#ifndef XF_TEST_MKCERT_H
#define XF_TEST_MKCERT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

static mbedtls_entropy_context mk_entropy;
static mbedtls_ctr_drbg_context mk_drbg;
static int mk_ready;

static int mk_rng(void *p, unsigned char *out, size_t len)
{
    return mbedtls_ctr_drbg_random(p, out, len);
}

static void mk_init(void)
{
    if (mk_ready)
        return;
    if (psa_crypto_init() != PSA_SUCCESS)
        abort();
    mbedtls_entropy_init(&mk_entropy);
    mbedtls_ctr_drbg_init(&mk_drbg);
    if (mbedtls_ctr_drbg_seed(&mk_drbg, mbedtls_entropy_func, &mk_entropy,
                              (const unsigned char *)"xf-mkcert", 9) != 0)
        abort();
    mk_ready = 1;
}

/* A fresh P-256 key. */
static inline void mk_key(mbedtls_pk_context *pk)
{
    mk_init();
    mbedtls_pk_init(pk);
    if (mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0
        || mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk), mk_rng, &mk_drbg) != 0)
        abort();
}

struct mk_opts {
    const char *subject;          /* "CN=example.com" or "O=x" */
    const char *issuer;           /* NULL: self-signed (issuer = subject) */
    const char *dns[8];           /* SAN dNSName */
    const char *srv[4];           /* SAN otherName SRVName (IA5) */
    const char *xmpp[4];          /* SAN otherName XmppAddr (UTF8) */
    const char *uri;              /* SAN URI */
    const char *not_before;       /* "YYYYMMDDhhmmss", NULL: 20200101000000 */
    const char *not_after;        /* NULL: 20991231235959 */
    int ca;                       /* -1 omit basicConstraints, 0 cA=FALSE, 1 cA=TRUE */
    unsigned key_usage;           /* 0 omit */
    unsigned char serial;
    unsigned eku;                 /* 0 omit; MK_EKU_* bits: extendedKeyUsage */
    const unsigned char *raw_san; /* raw GeneralName TLVs appended to the SAN */
    size_t raw_san_len;
};

#define MK_EKU_SERVER 1u
#define MK_EKU_CLIENT 2u
#define MK_EKU_ANY    4u

static size_t mk_put_len(unsigned char *p, size_t len)
{
    if (len < 128) { p[0] = (unsigned char)len; return 1; }
    if (len < 256) { p[0] = 0x81; p[1] = (unsigned char)len; return 2; }
    p[0] = 0x82; p[1] = (unsigned char)(len >> 8); p[2] = (unsigned char)len; return 3;
}

static size_t mk_put_tlv(unsigned char *p, unsigned char tag, const void *v, size_t len)
{
    size_t o = 0;
    p[o++] = tag;
    o += mk_put_len(p + o, len);
    memcpy(p + o, v, len);
    return o + len;
}

static size_t mk_othername(unsigned char *p, const unsigned char *oid, size_t oidlen,
                           unsigned char strtag, const char *s)
{
    unsigned char inner[600], expl[600], body[700];
    size_t il = mk_put_tlv(inner, strtag, s, strlen(s));
    size_t el = mk_put_tlv(expl, 0xA0, inner, il);
    size_t bl = mk_put_tlv(body, 0x06, oid, oidlen);
    memcpy(body + bl, expl, el);
    bl += el;
    return mk_put_tlv(p, 0xA0, body, bl);
}

/* Issues a certificate for subject_key signed by issuer_key; DER into der
   (size cap), length into *der_len. Returns 0 or aborts the test binary. */
static inline void mk_cert(const struct mk_opts *o, mbedtls_pk_context *subject_key,
                    mbedtls_pk_context *issuer_key, unsigned char *der, size_t cap,
                    size_t *der_len)
{
    static const unsigned char oid_xmpp[] = { 0x2B, 6, 1, 5, 5, 7, 8, 5 };
    static const unsigned char oid_srv[] = { 0x2B, 6, 1, 5, 5, 7, 8, 7 };
    mbedtls_x509write_cert w;
    static unsigned char san[16000], seq[16100];
    size_t sl = 0;
    unsigned char serial = o->serial ? o->serial : 1;
    unsigned char *buf = malloc(8192);
    int r;

    mk_init();
    mbedtls_x509write_crt_init(&w);
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, subject_key);
    mbedtls_x509write_crt_set_issuer_key(&w, issuer_key);
    if (mbedtls_x509write_crt_set_serial_raw(&w, &serial, 1) != 0
        || mbedtls_x509write_crt_set_subject_name(&w, o->subject) != 0
        || mbedtls_x509write_crt_set_issuer_name(&w, o->issuer ? o->issuer : o->subject) != 0
        || mbedtls_x509write_crt_set_validity(&w, o->not_before ? o->not_before : "20200101000000",
                                              o->not_after ? o->not_after : "20991231235959") != 0)
        abort();
    for (int i = 0; i < 8 && o->dns[i]; i++)
        sl += mk_put_tlv(san + sl, 0x82, o->dns[i], strlen(o->dns[i]));
    for (int i = 0; i < 4 && o->srv[i]; i++)
        sl += mk_othername(san + sl, oid_srv, sizeof oid_srv, 0x16, o->srv[i]);
    for (int i = 0; i < 4 && o->xmpp[i]; i++)
        sl += mk_othername(san + sl, oid_xmpp, sizeof oid_xmpp, 0x0C, o->xmpp[i]);
    if (o->uri)
        sl += mk_put_tlv(san + sl, 0x86, o->uri, strlen(o->uri));
    if (o->raw_san_len) {
        if (sl + o->raw_san_len > sizeof san)
            abort();
        memcpy(san + sl, o->raw_san, o->raw_san_len);
        sl += o->raw_san_len;
    }
    if (sl > 0) {
        size_t ql = mk_put_tlv(seq, 0x30, san, sl);
        if (mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
                                                0, seq, ql) != 0)
            abort();
    }
    if (o->ca >= 0 && mbedtls_x509write_crt_set_basic_constraints(&w, o->ca, -1) != 0)
        abort();
    if (o->key_usage && mbedtls_x509write_crt_set_key_usage(&w, o->key_usage) != 0)
        abort();
    if (o->eku) {
        static const unsigned char srv[] = { 0x2B, 6, 1, 5, 5, 7, 3, 1 };
        static const unsigned char cli[] = { 0x2B, 6, 1, 5, 5, 7, 3, 2 };
        static const unsigned char any[] = { 0x55, 0x1D, 0x25, 0x00 };
        unsigned char oids[64], ext[70];
        size_t ol = 0;
        if (o->eku & MK_EKU_SERVER)
            ol += mk_put_tlv(oids + ol, 0x06, srv, sizeof srv);
        if (o->eku & MK_EKU_CLIENT)
            ol += mk_put_tlv(oids + ol, 0x06, cli, sizeof cli);
        if (o->eku & MK_EKU_ANY)
            ol += mk_put_tlv(oids + ol, 0x06, any, sizeof any);
        size_t el = mk_put_tlv(ext, 0x30, oids, ol);
        if (mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
                                                0, ext, el) != 0)
            abort();
    }
    r = mbedtls_x509write_crt_der(&w, buf, 8192, mk_rng, &mk_drbg);
    if (r <= 0 || (size_t)r > cap)
        abort();
    memcpy(der, buf + 8192 - r, (size_t)r);
    *der_len = (size_t)r;
    free(buf);
    mbedtls_x509write_crt_free(&w);
}

/* Convenience: self-signed leaf parsed into crt (caller frees crt). */
static inline void mk_parsed(const struct mk_opts *o, mbedtls_x509_crt *crt)
{
    mbedtls_pk_context k;
    unsigned char der[4096];
    size_t len;
    mk_key(&k);
    mk_cert(o, &k, &k, der, sizeof der, &len);
    mbedtls_x509_crt_init(crt);
    if (mbedtls_x509_crt_parse_der(crt, der, len) != 0)
        abort();
    mbedtls_pk_free(&k);
}

/* Writes DER certificates as a PEM chain file. */
static inline void mk_write_pem(const char *path, const unsigned char *const *ders,
                         const size_t *lens, size_t count)
{
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    for (size_t i = 0; i < count; i++) {
        unsigned char pem[8192];
        size_t olen = 0;
        if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
                                     ders[i], lens[i], pem, sizeof pem, &olen) != 0)
            abort();
        fputs((const char *)pem, f);
    }
    fclose(f);
}

/* A three-level PKI: root (self-signed CA) -> intermediate CA -> leaf.
   leaf_opts supplies the leaf's names and dates; its issuer is set here. */
struct mk_pki {
    mbedtls_pk_context root_key, inter_key, leaf_key;
    unsigned char root[4096], inter[4096], leaf[4096];
    size_t root_len, inter_len, leaf_len;
};

static inline void mk_pki_build(struct mk_pki *p, struct mk_opts leaf_opts)
{
    struct mk_opts ro = { .subject = "CN=XF Test Root,O=xf", .ca = 1,
                          .key_usage = MBEDTLS_X509_KU_KEY_CERT_SIGN, .serial = 1 };
    struct mk_opts io = { .subject = "CN=XF Test Intermediate,O=xf", .issuer = "CN=XF Test Root,O=xf",
                          .ca = 1, .key_usage = MBEDTLS_X509_KU_KEY_CERT_SIGN, .serial = 2 };
    mk_key(&p->root_key);
    mk_key(&p->inter_key);
    mk_key(&p->leaf_key);
    mk_cert(&ro, &p->root_key, &p->root_key, p->root, sizeof p->root, &p->root_len);
    mk_cert(&io, &p->inter_key, &p->root_key, p->inter, sizeof p->inter, &p->inter_len);
    leaf_opts.issuer = "CN=XF Test Intermediate,O=xf";
    if (!leaf_opts.serial)
        leaf_opts.serial = 3;
    mk_cert(&leaf_opts, &p->leaf_key, &p->inter_key, p->leaf, sizeof p->leaf, &p->leaf_len);
}

static inline void mk_pki_free(struct mk_pki *p)
{
    mbedtls_pk_free(&p->root_key);
    mbedtls_pk_free(&p->inter_key);
    mbedtls_pk_free(&p->leaf_key);
}

/* Parses DER certificates into chain (initialised here), in the order given. */
static inline void mk_chain(mbedtls_x509_crt *chain, const unsigned char *const *ders,
                            const size_t *lens, size_t count)
{
    mbedtls_x509_crt_init(chain);
    for (size_t i = 0; i < count; i++)
        if (mbedtls_x509_crt_parse_der(chain, ders[i], lens[i]) != 0)
            abort();
}

#endif
