#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <psa/crypto.h>
#include "certs/pkix.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/tickets.h"
#include "proxy/tls.h"

struct xf_tls {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;   /* thread-safe: MBEDTLS_THREADING_C guards it */
    mbedtls_ssl_config conf[3];      /* client, server, auto: no session tickets */
    mbedtls_ssl_config conf_tk[2];   /* client, auto with session tickets (a server
                                        listener always asks for a certificate) */
    pthread_mutex_t ca_lock;         /* guards cas (xf_tls_peer_ca) */
    struct ca_entry {
        struct ca_entry *next;
        char *file;
        int n;                       /* certificates loaded, or a negative error */
        mbedtls_x509_crt crt;
    } *cas;
};

/* RFC 9325 §4.2: AEAD with forward secrecy only. TLS 1.3 suites first. */
static const int ciphersuites[] = {
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0
};

static const uint16_t groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE
};

void xf_tls_apply_policy(mbedtls_ssl_config *conf)
{
    mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_ciphersuites(conf, ciphersuites);
    mbedtls_ssl_conf_groups(conf, groups);
    mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_legacy_renegotiation(conf, MBEDTLS_SSL_LEGACY_NO_RENEGOTIATION);
}

static const char *alpn_client[] = {"xmpp-client", NULL};
static const char *alpn_server[] = {"xmpp-server", NULL};
/* Auto listeners (443) share the port with HTTPS: http/1.1 goes to the HTTP side
   (proxy/http.h). Last, so that a client offering an XMPP name gets it (the server's
   order decides, RFC 7301 §3.2); h2 is not offered. */
static const char *alpn_auto[] = {"xmpp-client", "xmpp-server", "http/1.1", NULL};

/* Present t's certificate: its own, or for a tenant served with the hosting
   certificate ("present": "hosting", design.md §2) the hosting identity's. sel->chosen
   stays the tenant, so that routing and the SNI/`to` agreement check (inbound.c) see
   the tenant whose name chose the certificate. */
static int use_tenant(mbedtls_ssl_context *ssl, xf_tls_select *sel, const xf_tenant *t)
{
    sel->chosen = t;
    /* mbedtls_ssl_set_hs_own_cert takes non-const pointers but only reads them. */
    return mbedtls_ssl_set_hs_own_cert(ssl, (mbedtls_x509_crt *)xf_tenant_tls_chain(t),
                                       (mbedtls_pk_context *)xf_tenant_tls_key(t));
}

/* SNI callback: called only when the ClientHello has server_name. Unknown name ->
   nonzero, and mbedTLS sends the fatal unrecognized_name(112) alert (RFC 6066 §3). */
static int on_sni(void *unused, mbedtls_ssl_context *ssl, const unsigned char *name,
                  size_t len)
{
    xf_tls_select *sel = mbedtls_ssl_get_user_data_p(ssl);
    if (sel == NULL || len == 0 || len >= sizeof(sel->sni))
        return -1;
    if (sel->sni_calls < 255)
        sel->sni_calls++;
    /* RFC 6066 §3: an ASCII host name, no trailing dot, no IP literal. Anything else is
       refused with unrecognized_name like an unknown name. */
    int letters = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = name[i];
        if (ch >= 'A' && ch <= 'Z')
            ch += 32;
        if (ch >= 'a' && ch <= 'z')
            letters = 1;
        else if (!((ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
            return -1;
        sel->sni[i] = (char)ch;
    }
    sel->sni[len] = '\0';
    if (!letters || name[0] == '.' || name[len - 1] == '.')
        return -1;
    const xf_tenant *t = xf_registry_for_sni(sel->registry, sel->sni);
    if (t == NULL)
        return -1;
    return use_tenant(ssl, sel, t);
}

/* Is (or may) a client certificate be asked for on this connection? XEP-0178 §3: a
   receiving server asks for the initiator's certificate. ALPN is chosen while the
   ClientHello is parsed: final in on_cert, maybe not yet in a TLS 1.2 ticket parse. */
static int peer_cert_wanted(mbedtls_ssl_context *ssl, const xf_tls_select *sel)
{
    const char *alpn = mbedtls_ssl_get_alpn_protocol(ssl);
    return sel->want_peer_cert == XF_TLS_PEER_CERT_REQUEST ||
           (sel->want_peer_cert == XF_TLS_PEER_CERT_IF_SERVER && alpn &&
            strcmp(alpn, "xmpp-server") == 0);
}

/* Certificate callback: always called after the ClientHello is parsed (TLS 1.2 and 1.3,
   after any ticket was opened). Without SNI the pre-TLS `to` picks the certificate
   (RFC 6120 §5.4.3.1 note, RFC 7590 §3.1), else the default: the hosting identity's
   certificate when there is one, else the first tenant's. */
static int on_cert(mbedtls_ssl_context *ssl)
{
    xf_tls_select *sel = mbedtls_ssl_get_user_data_p(ssl);
    if (sel == NULL)
        return -1;
    /* A resumption whose ticket was opened before an SNI (TLS 1.2 extension order), or
       on a connection that turns out to want a client certificate (ALPN after the
       ticket), cannot be undone: the handshake fails. Clients do not send that. */
    if (sel->resumed && sel->ticket_hello != sel->hellos)
        sel->resumed = 0;             /* accepted in a ClientHello before an HRR only */
    if (sel->hellos < 255)
        sel->hellos++;
    if (sel->resumed && (sel->sni_calls != sel->ticket_sni_calls ||
                         peer_cert_wanted(ssl, sel))) {
        xf_debug("TLS: session ticket refused after the ClientHello (SNI or ALPN came "
                 "after it)");
        return -1;
    }
    if (peer_cert_wanted(ssl, sel)) {
        mbedtls_ssl_set_hs_authmode(ssl, MBEDTLS_SSL_VERIFY_OPTIONAL);
        if (sel->peer_ca)
            mbedtls_ssl_set_hs_ca_chain(ssl, sel->peer_ca, NULL);
    }
    if (sel->chosen != NULL)
        return 0;
    const xf_tenant *t = sel->hint;
    if (t == NULL)
        t = xf_registry_hosting(sel->registry);
    if (t == NULL && xf_registry_count(sel->registry) > 0)
        t = xf_registry_at(sel->registry, 0);
    if (t == NULL)
        return -1;
    return use_tenant(ssl, sel, t);
}

/* Called by mbedTLS for every certificate of the peer's chain: the flags are cleared
   so that the handshake never fails on them (s2s_in.c runs xf_pkix_check itself). */
static int verify_keep_going(void *unused, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    (void)unused;
    (void)crt;
    (void)depth;
    *flags = 0;
    return 0;
}

/* ---------------------------------------------------------------- session tickets */

/* The connection in mbedtls_ssl_handshake on this thread (xf_tls_handshake). */
static _Thread_local struct {
    mbedtls_ssl_context *ssl;
    const xf_config *cfg;
} cur;

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The context of a ticket operation on the current connection; NULL when there is
   none (a handshake not driven by xf_tls_handshake). */
static xf_tls_select *ticket_ctx(xf_tickets_ctx *ctx)
{
    if (cur.ssl == NULL || cur.cfg == NULL)
        return NULL;
    xf_tls_select *sel = mbedtls_ssl_get_user_data_p(cur.ssl);
    if (sel == NULL)
        return NULL;
    ctx->keys = cur.cfg->tickets;
    ctx->name = sel->sni[0] ? sel->sni : sel->hint ? sel->hint->domain : "";
    ctx->tls_version = (int)mbedtls_ssl_get_version_number(cur.ssl);
    ctx->refuse = peer_cert_wanted(cur.ssl, sel);
    ctx->now_ms = unix_ms();
    return sel;
}

static int on_ticket_write(void *unused, const mbedtls_ssl_session *session,
                           unsigned char *start, const unsigned char *end, size_t *tlen,
                           uint32_t *lifetime)
{
    (void)unused;
    xf_tickets_ctx ctx;
    *tlen = 0;
    *lifetime = 0;
    if (ticket_ctx(&ctx) == NULL)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    return xf_tickets_seal(&ctx, session, start, end, tlen, lifetime);
}

static int on_ticket_parse(void *unused, mbedtls_ssl_session *session, unsigned char *buf,
                           size_t len)
{
    (void)unused;
    xf_tickets_ctx ctx;
    xf_tls_select *sel = ticket_ctx(&ctx);
    if (sel == NULL)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    int r = xf_tickets_open(&ctx, session, buf, len);
    if (r == 0) {
        sel->resumed = 1;
        sel->ticket_sni_calls = sel->sni_calls;
        sel->ticket_hello = sel->hellos;
    } else {
        char e[100];
        xf_debug("TLS: session ticket not accepted%s%s: %s", ctx.name[0] ? " for " : "",
                 ctx.name, xf_tls_strerror(r, e, sizeof(e)));
    }
    return r;
}

int xf_tls_handshake(mbedtls_ssl_context *ssl, const xf_config *cfg)
{
    cur.ssl = ssl;
    cur.cfg = cfg;
    int r = mbedtls_ssl_handshake(ssl);
    cur.ssl = NULL;
    cur.cfg = NULL;
    if (r == 0) {
        const xf_tls_select *sel = mbedtls_ssl_get_user_data_p(ssl);
        xf_metrics_inc(XF_MF_TLS_RESUMPTION, sel != NULL && sel->resumed);
    }
    return r;
}

static int setup_conf(xf_tls *t, mbedtls_ssl_config *conf, const char **alpn,
                      int tickets, char *err, size_t errlen)
{
    int ret;
    mbedtls_ssl_config_init(conf);
    ret = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0)
        goto fail;
    mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &t->drbg);
    xf_tls_apply_policy(conf);
    /* No client certificate by default; on_cert asks for one on s2s streams
       (xf_tls_select.want_peer_cert), optionally: the verdict is ours (s2s_in.c), so
       verify_keep_going lets an untrusted or self-signed one through the handshake
       (dialback may still authenticate that peer). The CertificateRequest carries no
       CA names: with the system bundle they would be ~150 names in every handshake,
       and servers send their one certificate whatever the list says. */
    mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_NONE);
    mbedtls_ssl_conf_verify(conf, verify_keep_going, NULL);
    mbedtls_ssl_conf_cert_req_ca_list(conf, MBEDTLS_SSL_CERT_REQ_CA_LIST_DISABLED);
    mbedtls_ssl_conf_sni(conf, on_sni, NULL);
    mbedtls_ssl_conf_cert_cb(conf, on_cert);
#if defined(MBEDTLS_SSL_EARLY_DATA)
    mbedtls_ssl_conf_early_data(conf, MBEDTLS_SSL_EARLY_DATA_DISABLED);   /* no 0-RTT */
#endif
    /* RFC 8446 §4.2.9: resumption only with a fresh (EC)DHE (psk_dhe_ke), never psk_ke. */
    mbedtls_ssl_conf_tls13_key_exchange_modes(conf,
        MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL |
        (tickets ? MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL : 0));
    if (tickets)
        mbedtls_ssl_conf_session_tickets_cb(conf, on_ticket_write, on_ticket_parse, NULL);
    ret = mbedtls_ssl_conf_alpn_protocols(conf, alpn);
    if (ret != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "TLS configuration: %s", xf_tls_strerror(ret, (char[128]){0}, 128));
    return -1;
}

int xf_tls_init(xf_tls **out, char *err, size_t errlen)
{
    psa_status_t st = psa_crypto_init();
    if (st != PSA_SUCCESS) {
        snprintf(err, errlen, "psa_crypto_init failed: %d", (int)st);
        return -1;
    }
    xf_tls *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&t->ca_lock, NULL);
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    int ret = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                    (const unsigned char *)"xmppfront", 9);
    if (ret != 0) {
        snprintf(err, errlen, "seeding the DRBG: %s", xf_tls_strerror(ret, (char[128]){0}, 128));
        goto fail;
    }
    if (setup_conf(t, &t->conf[0], alpn_client, 0, err, errlen) != 0 ||
        setup_conf(t, &t->conf[1], alpn_server, 0, err, errlen) != 0 ||
        setup_conf(t, &t->conf[2], alpn_auto, 0, err, errlen) != 0 ||
        setup_conf(t, &t->conf_tk[0], alpn_client, 1, err, errlen) != 0 ||
        setup_conf(t, &t->conf_tk[1], alpn_auto, 1, err, errlen) != 0)
        goto fail;
    *out = t;
    return 0;
fail:
    xf_tls_free(t);
    return -1;
}

void xf_tls_free(xf_tls *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < 3; i++)
        mbedtls_ssl_config_free(&t->conf[i]);
    for (int i = 0; i < 2; i++)
        mbedtls_ssl_config_free(&t->conf_tk[i]);
    while (t->cas) {
        struct ca_entry *e = t->cas;
        t->cas = e->next;
        mbedtls_x509_crt_free(&e->crt);
        free(e->file);
        free(e);
    }
    pthread_mutex_destroy(&t->ca_lock);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    free(t);
}

const mbedtls_ssl_config *xf_tls_config(const xf_tls *t, int service, const xf_config *cfg)
{
    int tk = cfg != NULL && xf_tickets_enabled(cfg->tickets);
    switch (service) {
    case XF_SVC_CLIENT: return tk ? &t->conf_tk[0] : &t->conf[0];
    case XF_SVC_SERVER: return &t->conf[1];
    default:            return tk ? &t->conf_tk[1] : &t->conf[2];
    }
}

mbedtls_x509_crt *xf_tls_peer_ca(const xf_tls *tc, const char *file)
{
    xf_tls *t = (xf_tls *)tc;          /* the cache is the one mutable part, locked */
    const char *name = file ? file : XF_PKIX_SYSTEM_BUNDLE;
    mbedtls_x509_crt *out = NULL;
    pthread_mutex_lock(&t->ca_lock);
    struct ca_entry *e;
    for (e = t->cas; e; e = e->next)
        if (strcmp(e->file, name) == 0)
            break;
    if (e == NULL && (e = calloc(1, sizeof(*e))) != NULL) {
        e->file = strdup(name);
        if (e->file == NULL) {
            free(e);
            e = NULL;
        } else {
            mbedtls_x509_crt_init(&e->crt);
            e->n = xf_pkix_load_ca(&e->crt, name);
            if (e->n <= 0)
                xf_warn("federation CA file %s: no certificate loaded (%d); peer "
                        "certificates cannot be proven", name, e->n);
            e->next = t->cas;
            t->cas = e;
        }
    }
    if (e && e->n > 0)
        out = &e->crt;
    pthread_mutex_unlock(&t->ca_lock);
    return out;
}

const char *xf_tls_strerror(int code, char *buf, size_t len)
{
    mbedtls_strerror(code, buf, len);
    return buf;
}
