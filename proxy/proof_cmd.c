/*
 * proof_cmd: `xmppfront proof ...`, the operator's command line onto certs/.
 * Every verdict is one line: "match|no-match|unusable|invalid <reason>";
 * generation commands print the record or JSON. Exit codes: 0 match/success,
 * 1 no-match or unusable, 2 bad input. See docs/proof.md.
 */
#include "proxy/proof_cmd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <psa/crypto.h>

#include "certs/cert.h"
#include "certs/dane.h"
#include "certs/dialback.h"
#include "certs/identity.h"
#include "certs/pkix.h"
#include "certs/posh.h"

enum { EXIT_MATCH = 0, EXIT_NOMATCH = 1, EXIT_BAD = 2 };

#define MAX_REPEAT 16

struct opts {
    const char *cert, *domain, *service, *srv_target, *document, *delegate, *expires;
    const char *secret, *receiving, *originating, *stream_id, *key;
    const char *ca[MAX_REPEAT];
    size_t nca;
    const char *record[MAX_REPEAT];
    size_t nrecord;
    int generate;
};

__attribute__((format(printf, 1, 2)))
static int invalid(const char *fmt, ...)
{
    va_list ap;
    fputs("invalid ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    return EXIT_BAD;
}

/* The one-line verdict of a check returning 1 match, 0 no match, <0 bad input. */
static int report(int r, const char *reason)
{
    if (r < 0)
        return invalid("%s", reason);
    printf("%s %s\n", r == 1 ? "match" : "no-match", reason);
    return r == 1 ? EXIT_MATCH : EXIT_NOMATCH;
}

/* Parses "--name value" pairs and the "--generate" flag. Returns 0 or EXIT_BAD
   (after printing the invalid line). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    struct { const char *name; const char **slot; } single[] = {
        { "--cert", &o->cert }, { "--domain", &o->domain }, { "--service", &o->service },
        { "--srv-target", &o->srv_target }, { "--document", &o->document },
        { "--delegate", &o->delegate }, { "--expires", &o->expires }, { "--secret", &o->secret },
        { "--receiving", &o->receiving }, { "--originating", &o->originating },
        { "--stream-id", &o->stream_id }, { "--key", &o->key },
    };
    memset(o, 0, sizeof *o);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int done = 0;
        if (strcmp(a, "--generate") == 0) {
            o->generate = 1;
            continue;
        }
        if (i + 1 >= argc)
            return invalid("option %s needs a value", a);
        if (strcmp(a, "--ca") == 0 || strcmp(a, "--record") == 0) {
            int is_ca = a[2] == 'c';
            size_t *n = is_ca ? &o->nca : &o->nrecord;
            if (*n == MAX_REPEAT)
                return invalid("too many %s options", a);
            (is_ca ? o->ca : o->record)[(*n)++] = argv[++i];
            continue;
        }
        for (size_t k = 0; k < sizeof single / sizeof single[0]; k++) {
            if (strcmp(a, single[k].name) == 0) {
                *single[k].slot = argv[++i];
                done = 1;
                break;
            }
        }
        if (!done)
            return invalid("unknown option %s", a);
    }
    return 0;
}

static int get_service(const struct opts *o, enum xf_service *svc)
{
    if (!o->service || strcmp(o->service, "server") == 0) {
        *svc = XF_SERVICE_SERVER;
        return 0;
    }
    if (strcmp(o->service, "client") == 0) {
        *svc = XF_SERVICE_CLIENT;
        return 0;
    }
    return -1;
}

static int load_cert(const struct opts *o, mbedtls_x509_crt *chain)
{
    int r;
    mbedtls_x509_crt_init(chain);
    if (!o->cert)
        return invalid("--cert is required");
    r = xf_cert_load_chain(chain, o->cert);
    if (r < 0) {
        /* A parse error may leave the certificates before it in chain. */
        mbedtls_x509_crt_free(chain);
        mbedtls_x509_crt_init(chain);
        if (r == XF_CERT_ERR_IO)
            return invalid("cannot read certificate file %s", o->cert);
        return invalid("cannot parse certificate file %s", o->cert);
    }
    return 0;
}

/* Loads every --ca file into ca (initialised here), or with none given and
   system_default set, the system bundle. A file that cannot be loaded is
   invalid input. Returns 0 or EXIT_BAD (after printing; ca is then freed). */
static int load_cas(const struct opts *o, mbedtls_x509_crt *ca, int system_default)
{
    size_t n = o->nca ? o->nca : (system_default ? 1 : 0);
    mbedtls_x509_crt_init(ca);
    for (size_t i = 0; i < n; i++) {
        const char *f = o->nca ? o->ca[i] : NULL;
        if (xf_pkix_load_ca(ca, f) < 0) {
            mbedtls_x509_crt_free(ca);
            mbedtls_x509_crt_init(ca);
            return invalid("cannot load CA file %s", f ? f : XF_PKIX_SYSTEM_BUNDLE);
        }
    }
    return 0;
}

static int parse_expires(const char *s, long long dflt, long long *out)
{
    char *end;
    long long v;
    if (!s) {
        *out = dflt;
        return 0;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v <= 0)
        return -1;
    *out = v;
    return 0;
}

static int cmd_identity(const struct opts *o)
{
    mbedtls_x509_crt chain;
    struct xf_id_verdict v;
    enum xf_service svc;
    int r;
    if (!o->domain)
        return invalid("--domain is required");
    if (get_service(o, &svc) < 0)
        return invalid("--service must be client or server, not %s", o->service);
    if ((r = load_cert(o, &chain)) != 0)
        return r;
    r = xf_identity_check(&chain, o->domain, svc, o->srv_target, &v);
    mbedtls_x509_crt_free(&chain);
    return report(r, v.reason);
}

static int cmd_pkix(const struct opts *o)
{
    mbedtls_x509_crt chain, ca;
    struct xf_pkix_verdict v;
    enum xf_service svc;
    int r;
    if (!o->domain)
        return invalid("--domain is required");
    if (get_service(o, &svc) < 0)
        return invalid("--service must be client or server, not %s", o->service);
    if ((r = load_cert(o, &chain)) != 0)
        return r;
    if ((r = load_cas(o, &ca, 1)) != 0) {
        mbedtls_x509_crt_free(&chain);
        return r;
    }
    r = xf_pkix_check(&chain, &ca, XF_PKIX_ROLE_SERVER, o->domain, svc, o->srv_target, &v);
    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&ca);
    return report(r, v.reason);
}

static int cmd_tlsa(const struct opts *o)
{
    mbedtls_x509_crt chain, ca;
    struct xf_tlsa *recs;
    struct xf_dane_verdict v;
    enum xf_service svc;
    int r, need_domain = 0;

    if (get_service(o, &svc) < 0)
        return invalid("--service must be client or server, not %s", o->service);
    if (!o->generate && o->nrecord == 0)
        return invalid("give --record \"U S M hex\" (repeatable) or --generate");
    if ((r = load_cert(o, &chain)) != 0)
        return r;
    if (o->generate) {
        char line[300];
        /* RFC 7671 §5.1 recommends 3 1 1; 3 1 2 for digest agility. */
        if (xf_dane_generate(&chain, 3, 1, 1, line, sizeof line) < 0) {
            mbedtls_x509_crt_free(&chain);
            return invalid("cannot hash the certificate");
        }
        printf("%s\n", line);
        xf_dane_generate(&chain, 3, 1, 2, line, sizeof line);
        printf("%s\n", line);
        mbedtls_x509_crt_free(&chain);
        return EXIT_MATCH;
    }
    if (!(recs = calloc(o->nrecord, sizeof *recs))) {
        mbedtls_x509_crt_free(&chain);
        return invalid("out of memory");
    }
    for (size_t i = 0; i < o->nrecord; i++) {
        if (xf_tlsa_parse_text(o->record[i], &recs[i]) != 0) {
            free(recs);
            mbedtls_x509_crt_free(&chain);
            return invalid("record is not \"usage selector mtype hex\": %s", o->record[i]);
        }
        if (recs[i].usage <= XF_TLSA_DANE_TA)
            need_domain = 1;
    }
    /* DANE-TA and PKIX-TA/EE check names: without a domain they could only
       fail, which would be reported as a misleading no-match. */
    if (need_domain && !o->domain) {
        free(recs);
        mbedtls_x509_crt_free(&chain);
        return invalid("--domain is required for DANE-TA (2) and PKIX-TA/EE (0, 1) records");
    }
    if ((r = load_cas(o, &ca, 0)) != 0) {
        free(recs);
        mbedtls_x509_crt_free(&chain);
        return r;
    }
    xf_dane_check(recs, o->nrecord, &chain, o->nca ? &ca : NULL,
                  o->domain ? o->domain : "", svc, o->srv_target, &v);
    free(recs);
    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&ca);
    printf("%s %s\n", v.result == XF_DANE_MATCH ? "match"
                      : v.result == XF_DANE_UNUSABLE ? "unusable" : "no-match", v.reason);
    return v.result == XF_DANE_MATCH ? EXIT_MATCH : EXIT_NOMATCH;
}

static int read_file(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = XF_POSH_MAX_DOC + 1;
    if (!f)
        return -1;
    *buf = malloc(cap);
    if (!*buf) {
        fclose(f);
        return -1;
    }
    *len = fread(*buf, 1, cap, f);
    fclose(f);
    return 0;
}

static int cmd_posh(const struct opts *o)
{
    mbedtls_x509_crt chain;
    long long expires;
    char *json;
    int r;

    if (o->delegate) {
        if (parse_expires(o->expires, 86400, &expires) < 0)
            return invalid("--expires must be a positive integer, not %s", o->expires);
        json = malloc(XF_POSH_URL_MAX * 2);
        if (!json || xf_posh_generate_reference(o->delegate, expires, json, XF_POSH_URL_MAX * 2) < 0) {
            free(json);
            return invalid("--delegate must be an https:// URL, not %s", o->delegate);
        }
        printf("%s\n", json);
        free(json);
        return EXIT_MATCH;
    }
    if (o->generate) {
        if (parse_expires(o->expires, 604800, &expires) < 0)
            return invalid("--expires must be a positive integer, not %s", o->expires);
        if ((r = load_cert(o, &chain)) != 0)
            return r;
        json = malloc(1024);
        r = json ? xf_posh_generate(&chain, expires, json, 1024) : -1;
        mbedtls_x509_crt_free(&chain);
        if (r < 0) {
            free(json);
            return invalid("cannot generate the document");
        }
        printf("%s\n", json);
        free(json);
        return EXIT_MATCH;
    }
    if (!o->document)
        return invalid("give --document FILE, --generate or --delegate URL");

    unsigned char *buf = NULL;
    size_t len = 0;
    struct xf_posh_doc *doc;
    char why[200];
    if (read_file(o->document, &buf, &len) < 0)
        return invalid("cannot read %s", o->document);
    if (!(doc = malloc(sizeof *doc))) {
        free(buf);
        return invalid("out of memory");
    }
    r = xf_posh_parse(buf, len, doc, why, sizeof why);
    free(buf);
    if (r < 0) {
        free(doc);
        return invalid("%s", why);
    }
    if (doc->kind == XF_POSH_REFERENCE) {
        printf("no-match reference document: fetch %s (expires %lld) and check that\n",
               doc->url, doc->expires);
        free(doc);
        return EXIT_NOMATCH;
    }
    if ((r = load_cert(o, &chain)) != 0) {
        free(doc);
        return r;
    }
    r = xf_posh_check(doc, &chain, why, sizeof why);
    printf("%s %s (expires %lld)\n", r == XF_POSH_MATCH ? "match" : "no-match", why, doc->expires);
    free(doc);
    mbedtls_x509_crt_free(&chain);
    return r == XF_POSH_MATCH ? EXIT_MATCH : EXIT_NOMATCH;
}

static int cmd_dialback(const struct opts *o)
{
    char key[XF_DIALBACK_KEY_LEN + 1];
    if (!o->secret || !o->receiving || !o->originating || !o->stream_id)
        return invalid("--secret, --receiving, --originating and --stream-id are required");
    if (xf_dialback_key(o->secret, o->receiving, o->originating, o->stream_id, key) != 0)
        return invalid("names and stream id must be non-empty and without spaces");
    if (!o->key) {
        printf("%s\n", key);
        return EXIT_MATCH;
    }
    if (xf_dialback_verify(o->secret, o->receiving, o->originating, o->stream_id, o->key, strlen(o->key))) {
        printf("match key is valid for %s %s %s\n", o->receiving, o->originating, o->stream_id);
        return EXIT_MATCH;
    }
    printf("no-match key differs from the one computed for %s %s %s\n",
           o->receiving, o->originating, o->stream_id);
    return EXIT_NOMATCH;
}

int xf_proof_main(int argc, char **argv)
{
    struct opts o;
    const char *sub;
    int r;

    if (argc < 2)
        return invalid("usage: xmppfront proof identity|pkix|tlsa|posh|dialback-key [options]");
    sub = argv[1];
    if ((r = parse_opts(argc, argv, &o)) != 0)
        return r;
    if (psa_crypto_init() != PSA_SUCCESS)
        return invalid("cannot initialise the crypto library");
    if (strcmp(sub, "identity") == 0)
        return cmd_identity(&o);
    if (strcmp(sub, "pkix") == 0)
        return cmd_pkix(&o);
    if (strcmp(sub, "tlsa") == 0)
        return cmd_tlsa(&o);
    if (strcmp(sub, "posh") == 0)
        return cmd_posh(&o);
    if (strcmp(sub, "dialback-key") == 0)
        return cmd_dialback(&o);
    return invalid("unknown proof subcommand %s", sub);
}
