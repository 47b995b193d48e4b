/* pkix: see pkix.h. */
#include "certs/pkix.h"

#include <stdio.h>
#include <string.h>
#include <mbedtls/oid.h>

int xf_pkix_load_ca(mbedtls_x509_crt *ca, const char *file)
{
    int r, count = 0;
    if (!ca)
        return XF_PKIX_ERR_ARG;
    r = mbedtls_x509_crt_parse_file(ca, file ? file : XF_PKIX_SYSTEM_BUNDLE);
    if (r == MBEDTLS_ERR_PK_FILE_IO_ERROR || r == MBEDTLS_ERR_X509_FILE_IO_ERROR)
        return XF_PKIX_ERR_IO;
    for (const mbedtls_x509_crt *c = ca; c && c->raw.p; c = c->next)
        count++;
    if (r < 0 || count == 0)
        return XF_PKIX_ERR_PARSE;
    return count;
}

const char *xf_pkix_flags_text(uint32_t flags)
{
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        return "a certificate in the chain has expired";
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        return "a certificate in the chain is not yet valid";
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        return "no path to a trusted CA (unknown issuer or missing intermediate)";
    if (flags & (MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK | MBEDTLS_X509_BADCERT_BAD_KEY))
        return "weak signature algorithm or key";
    if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE
                 | MBEDTLS_X509_BADCERT_NS_CERT_TYPE))
        return "key usage does not allow this use";
    if (flags & MBEDTLS_X509_BADCERT_REVOKED)
        return "a certificate is revoked";
    if (flags & MBEDTLS_X509_BADCERT_MISSING)
        return "no certificate";
    if (flags)
        return "chain validation failed";
    return "ok";
}

const char *xf_pkix_fail_text(int ret, uint32_t flags, char *buf, size_t len)
{
    if (flags != 0 && flags != UINT32_MAX)
        return xf_pkix_flags_text(flags);
    snprintf(buf, len, "verification error -0x%04x", (unsigned)(ret < 0 ? -ret : ret));
    return buf;
}

static int has_eku(const mbedtls_x509_crt *leaf, const char *oid, size_t len)
{
    return mbedtls_x509_crt_check_extended_key_usage(leaf, oid, len) == 0;
}

int xf_pkix_leaf_ok(const mbedtls_x509_crt *leaf, enum xf_pkix_role role,
                    char *reason, size_t rlen)
{
    int server, client;
    if (mbedtls_x509_crt_get_ca_istrue(leaf) == 1) {
        snprintf(reason, rlen, "end-entity certificate has cA=TRUE");
        return 0;
    }
    if (mbedtls_x509_crt_has_ext_type(leaf, MBEDTLS_X509_EXT_KEY_USAGE)
        && mbedtls_x509_crt_check_key_usage(leaf, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0
        && mbedtls_x509_crt_check_key_usage(leaf, MBEDTLS_X509_KU_KEY_ENCIPHERMENT) != 0
        && mbedtls_x509_crt_check_key_usage(leaf, MBEDTLS_X509_KU_KEY_AGREEMENT) != 0) {
        snprintf(reason, rlen, "keyUsage allows no TLS use");
        return 0;
    }
    /* Both checks succeed when there is no extendedKeyUsage extension or it
       contains anyExtendedKeyUsage. */
    server = has_eku(leaf, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH));
    client = has_eku(leaf, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH));
    if (role == XF_PKIX_ROLE_SERVER && !server) {
        snprintf(reason, rlen, "extendedKeyUsage lacks serverAuth (needed for a server we connect to)");
        return 0;
    }
    if (role != XF_PKIX_ROLE_SERVER && !server && !client) {
        snprintf(reason, rlen, "extendedKeyUsage allows neither clientAuth nor serverAuth");
        return 0;
    }
    return 1;
}

/* Verify callback: records the path mbedTLS built (called from the top, the
   trust anchor, down to depth 0). Flags are left untouched. */
static int path_cb(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct xf_pkix_verdict *v = p;
    (void)flags;
    if (depth >= 0 && (size_t)depth < XF_PKIX_PATH_MAX) {
        v->path[depth] = crt;
        if ((size_t)depth + 1 > v->npath)
            v->npath = (size_t)depth + 1;
    }
    return 0;
}

int xf_pkix_verify(mbedtls_x509_crt *chain, mbedtls_x509_crt *ca, enum xf_pkix_role role,
                   struct xf_pkix_verdict *v)
{
    uint32_t flags = 0;
    char ebuf[64];
    int r;

    if (!chain || !chain->raw.p || !ca || !v)
        return XF_PKIX_ERR_ARG;
    memset(v, 0, sizeof *v);
    r = mbedtls_x509_crt_verify_with_profile(chain, ca, NULL, &mbedtls_x509_crt_profile_default,
                                             NULL, &flags, path_cb, v);
    v->flags = flags;
    if (r != 0 || flags != 0) {
        v->npath = 0;
        snprintf(v->reason, sizeof v->reason, "PKIX: %s",
                 xf_pkix_fail_text(r, flags, ebuf, sizeof ebuf));
        return 0;
    }
    for (size_t i = 0; i < v->npath; i++)
        if (!v->path[i]) { /* cannot happen: mbedTLS reports every depth */
            v->npath = 0;
            snprintf(v->reason, sizeof v->reason, "PKIX: incomplete path");
            return 0;
        }
    if (!xf_pkix_leaf_ok(chain, role, v->reason, sizeof v->reason)) {
        v->npath = 0;
        return 0;
    }
    v->valid = 1;
    snprintf(v->reason, sizeof v->reason, "chain valid to a trusted CA");
    return 1;
}

int xf_pkix_check(mbedtls_x509_crt *chain, mbedtls_x509_crt *ca, enum xf_pkix_role role,
                  const char *domain, enum xf_service svc, const char *srv_target,
                  struct xf_pkix_verdict *v)
{
    struct xf_id_verdict id;
    int r = xf_pkix_verify(chain, ca, role, v);
    if (r < 0)
        return r;
    r = xf_identity_check(chain, domain, svc, srv_target, &id);
    v->id = id;
    if (r < 0) {
        v->valid = 0;
        snprintf(v->reason, sizeof v->reason, "%s", id.reason);
        return r;
    }
    if (!v->valid)
        return 0;
    if (r == 0) {
        v->valid = 0;
        snprintf(v->reason, sizeof v->reason, "chain valid, but %.280s", id.reason);
        return 0;
    }
    snprintf(v->reason, sizeof v->reason, "chain valid; %.280s", id.reason);
    return 1;
}
