/*
 * records_cmd: `xmppfront records DOMAIN [--config FILE]` prints, in zone-file syntax
 * with a comment on each group, what the operator publishes for DOMAIN (docs/records.md):
 *   - the four SRV records (RFC 6120 §3.2.1, XEP-0368), ports taken from the listeners;
 *     the target is the hosting name for a tenant served with the hosting certificate,
 *     a target of its own under the hosting name (xf_records_target) for a tenant with
 *     a certificate of its own (design.md §2 "Which certificate a peer sees");
 *   - TLSA 3 1 1 (RFC 6698, RFC 7671 §5.1, RFC 7673 §3) at _PORT._tcp.TARGET for the
 *     current and the next key presented on every TLS port the services use;
 *   - the POSH documents (RFC 7711): fingerprints of the certificate served for DOMAIN
 *     (current and next), or for a hosting-served tenant a `url` reference to the
 *     hosting's document (RFC 7711 §3.4), as comments: they are HTTPS, not DNS.
 * The record texts come from certs/ (xf_dane_generate, xf_posh_generate_set,
 * xf_posh_generate_reference), the same generators as `xmppfront proof`.
 */
#include "proxy/records_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/sha256.h>
#include <psa/crypto.h>

#include "certs/dane.h"
#include "certs/posh.h"

enum { EXIT_OK = 0, EXIT_BAD = 2 };

#define DEFAULT_CONFIG "/etc/xmppfront/xmppfront.json"
#define MAX_PORTS 256                  /* listeners are capped at 256 (config.c) */

/* The four SRV services of a domain, and which listeners serve each. */
static const struct service {
    const char *owner;                 /* "_xmpp-client._tcp" */
    int tls;                           /* enum xf_tls_mode of the listener */
    int server;                        /* 1 = s2s (s2s_backend), 0 = c2s (c2s_backend) */
    const char *what;
} services[4] = {
    { "_xmpp-client._tcp", XF_TLS_STARTTLS, 0, "clients, STARTTLS (RFC 6120 §3.2.1)" },
    { "_xmpps-client._tcp", XF_TLS_DIRECT, 0, "clients, direct TLS (XEP-0368)" },
    { "_xmpp-server._tcp", XF_TLS_STARTTLS, 1, "servers, STARTTLS (RFC 6120 §3.2.1)" },
    { "_xmpps-server._tcp", XF_TLS_DIRECT, 1, "servers, direct TLS (XEP-0368)" },
};

int xf_records_target(const char *domain, const char *hosting, char *out, size_t outlen)
{
    size_t dl = strlen(domain), hl = strlen(hosting);
    char label[64];
    if (dl == 0 || hl == 0)
        return -1;
    if (dl <= 63 && strchr(domain, '-') == NULL) {
        for (size_t i = 0; i < dl; i++)
            label[i] = domain[i] == '.' ? '-' : domain[i];
        label[dl] = '\0';
    } else {
        unsigned char h[32];
        if (mbedtls_sha256((const unsigned char *)domain, dl, h, 0) != 0)
            return -1;
        memcpy(label, "t--", 3);
        for (size_t i = 0; i < 10; i++)
            snprintf(label + 3 + 2 * i, 3, "%02x", h[i]);
    }
    size_t n = strlen(label) + 1 + hl;
    if (n > XF_REGISTRY_NAME_MAX || n + 1 > outlen)
        return -1;
    snprintf(out, outlen, "%s.%s", label, hosting);
    return (int)n;
}

static int listener_serves(const xf_listener_conf *l, const struct service *s)
{
    if (l->tls != s->tls)
        return 0;
    return l->service == XF_SVC_AUTO ||
           l->service == (s->server ? XF_SVC_SERVER : XF_SVC_CLIENT);
}

/* Ports of cfg's listeners serving s, each once, in file order. */
static size_t service_ports(const xf_config *cfg, const struct service *s, int *ports)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_listeners && n < MAX_PORTS; i++) {
        const xf_listener_conf *l = &cfg->listeners[i];
        size_t j;
        if (!listener_serves(l, s))
            continue;
        for (j = 0; j < n && ports[j] != l->port; j++)
            ;
        if (j == n)
            ports[n++] = l->port;
    }
    return n;
}

/* offered[0] = c2s, offered[1] = s2s. */
static void tenant_offers(const xf_tenant *t, int offered[2])
{
    offered[0] = t->c2s.addrlen > 0;
    offered[1] = t->s2s.addrlen > 0;
}

static void print_srv(FILE *out, const xf_config *cfg, const char *name, const char *target,
                      const int offered[2])
{
    int ports[MAX_PORTS];
    char owner[300];
    fprintf(out, "\n; SRV: where clients and servers connect for %s (RFC 6120 §3.2.1, "
            "XEP-0368);\n; a DNSSEC-signed SRV makes the target a name peers accept "
            "(RFC 7673 §4)\n", name);
    for (size_t i = 0; i < 4; i++) {
        const struct service *s = &services[i];
        size_t n = service_ports(cfg, s, ports);
        snprintf(owner, sizeof owner, "%s.%s.", s->owner, name);
        if (!offered[s->server]) {
            fprintf(out, "; %s: not offered (the tenant has no %s); \".\" = decidedly not "
                    "available\n", s->what, s->server ? "s2s_backend" : "c2s_backend");
            fprintf(out, "%-48s %d IN SRV 0 0 0 .\n", owner, XF_RECORDS_TTL);
            continue;
        }
        if (n == 0) {
            fprintf(out, "; %s: no %s %s listener\n", s->what,
                    s->tls == XF_TLS_DIRECT ? "direct" : "starttls",
                    s->server ? "server/auto" : "client/auto");
            fprintf(out, "%-48s %d IN SRV 0 0 0 .\n", owner, XF_RECORDS_TTL);
            continue;
        }
        fprintf(out, "; %s\n", s->what);
        for (size_t k = 0; k < n; k++)
            fprintf(out, "%-48s %d IN SRV 0 5 %d %s.\n", owner, XF_RECORDS_TTL, ports[k],
                    target);
    }
}

/* TLSA 3 1 1 at _PORT._tcp.target for every port of the offered services, for the
   current and (during a rollover) the next key of `cred`. Returns 0 or -1. */
static int print_tlsa(FILE *out, const xf_config *cfg, const char *target,
                      const xf_tenant *cred, const int offered[2], const char *note)
{
    int ports[MAX_PORTS], all[MAX_PORTS];
    size_t n_all = 0;
    char cur[300], next[300], owner[300];
    for (size_t i = 0; i < 4; i++) {
        if (!offered[services[i].server])
            continue;
        size_t n = service_ports(cfg, &services[i], ports);
        for (size_t k = 0; k < n; k++) {
            size_t j;
            for (j = 0; j < n_all && all[j] != ports[k]; j++)
                ;
            if (j == n_all && n_all < MAX_PORTS)
                all[n_all++] = ports[k];
        }
    }
    if (xf_dane_generate(&cred->chain, 3, 1, 1, cur, sizeof cur) < 0)
        return -1;
    int has_next = cred->next_chain.raw.p != NULL;
    if (has_next && xf_dane_generate(&cred->next_chain, 3, 1, 1, next, sizeof next) < 0)
        return -1;
    fprintf(out, "\n; TLSA: DANE-EE(3) SPKI(1) SHA-256(1) of each key presented on each TLS "
            "port\n; (RFC 6698, RFC 7671 §5.1, RFC 7673 §3); peers use them only when "
            "the zone is DNSSEC-signed.\n");
    if (note)
        fprintf(out, "; %s\n", note);
    fprintf(out, "; current key: %s\n", cred->cert_path);
    if (has_next)
        fprintf(out, "; next key: %s -- publish it now; switch keys only after DNS has "
                "served it\n; for two TTLs, then drop the old record\n", cred->next_cert_path);
    if (n_all == 0)
        fprintf(out, "; (no TLS listener serves these services: no TLSA to publish)\n");
    for (size_t k = 0; k < n_all; k++) {
        snprintf(owner, sizeof owner, "_%d._tcp.%s.", all[k], target);
        fprintf(out, "%-48s %d IN TLSA %s\n", owner, XF_RECORDS_TTL, cur);
        if (has_next)
            fprintf(out, "%-48s %d IN TLSA %s\n", owner, XF_RECORDS_TTL, next);
    }
    return 0;
}

/* POSH documents for `name`: a fingerprints document of cred's certificates, or with
   ref_host a reference to ref_host's document. Returns 0 or -1. */
static int print_posh(FILE *out, const char *name, const xf_tenant *cred,
                      const char *ref_host, const int offered[2])
{
    static const char *const kinds[2] = { "xmpp-client", "xmpp-server" };
    char doc[2048], url[XF_POSH_URL_MAX];
    const mbedtls_x509_crt *leaves[2] = { &cred->chain, &cred->next_chain };
    size_t n_leaves = cred->next_chain.raw.p ? 2 : 1;

    fprintf(out, "\n; POSH (RFC 7711): not DNS. Serve each document over HTTPS, with a "
            "certificate valid\n; for %s, as application/json at the URL above it.\n", name);
    if (ref_host)
        fprintf(out, "; Reference documents (RFC 7711 §3.4): peers follow the url to the "
                "hosting's fingerprints.\n");
    else
        fprintf(out, "; Fingerprints: SHA-256 and SHA-512 of the whole certificate "
                "(RFC 7711 §3.2)%s.\n", n_leaves == 2 ? ", current then next" : "");
    for (int k = 0; k < 2; k++) {
        if (!offered[k])
            continue;
        int r;
        if (ref_host) {
            snprintf(url, sizeof url, "https://%s/.well-known/posh/%s.json", ref_host, kinds[k]);
            r = xf_posh_generate_reference(url, XF_RECORDS_POSH_EXPIRES, doc, sizeof doc);
        } else {
            r = xf_posh_generate_set(leaves, n_leaves, XF_RECORDS_POSH_EXPIRES, doc,
                                     sizeof doc);
        }
        if (r < 0)
            return -1;
        fprintf(out, "; https://%s/.well-known/posh/%s.json\n;   %s\n", name, kinds[k], doc);
    }
    return 0;
}

static int print_tenant(FILE *out, const xf_config *cfg, const xf_tenant *t, const char *name)
{
    const xf_tenant *host = xf_registry_hosting(cfg->registry);
    int hosted = t->present == XF_PRESENT_HOSTING;
    const xf_tenant *cred = hosted ? t->hosting : t;
    char target[XF_REGISTRY_NAME_MAX + 1];
    int offered[2];
    tenant_offers(t, offered);

    fprintf(out, "; xmppfront records %s\n; configuration %s, tenant file %s\n", name,
            cfg->path, t->file);
    if (strcmp(name, t->domain) != 0)
        fprintf(out, "; %s is an alias of %s: same certificate, same target\n", name,
                t->domain);
    if (hosted) {
        snprintf(target, sizeof target, "%s", host->domain);
        fprintf(out, "; %s is served with the hosting certificate (%s, %s).\n; Its SRV "
                "records point at the hosting name; peers prove it by secure delegation\n"
                "; (DNSSEC-signed SRV -> %s, whose TLSA matches; RFC 7673) or by POSH "
                "delegation.\n", name, host->domain, host->cert_path, host->domain);
    } else if (host) {
        if (xf_records_target(t->domain, host->domain, target, sizeof target) < 0) {
            fprintf(stderr, "xmppfront records: no target name for %s fits under %s\n",
                    t->domain, host->domain);
            return -1;
        }
        fprintf(out, "; %s presents its own certificate (%s).\n; Its SRV records point at "
                "a target of its own, %s, so that the TLSA\n; RRset there holds only its "
                "keys (docs/records.md).\n", name, t->cert_path, target);
    } else {
        snprintf(target, sizeof target, "%s", t->domain);
        fprintf(out, "; %s presents its own certificate (%s). No hosting identity is "
                "configured:\n; the SRV target is the domain itself; give it the proxy's "
                "addresses.\n", name, t->cert_path);
    }

    char note[400];
    print_srv(out, cfg, name, target, offered);
    if (!hosted && host) {
        fprintf(out, "\n; Addresses of %s: the same as %s (copy its A/AAAA records;\n"
                "; an SRV target must not be a CNAME, RFC 2782)\n", target, host->domain);
        snprintf(note, sizeof note, "%s.", target);
        fprintf(out, "; %-46s %d IN A     <the IPv4 addresses of %s>\n", note,
                XF_RECORDS_TTL, host->domain);
        fprintf(out, "; %-46s %d IN AAAA  <the IPv6 addresses of %s>\n", note,
                XF_RECORDS_TTL, host->domain);
    }
    snprintf(note, sizeof note, "At the hosting name, shared by every tenant served with "
             "its certificate\n; (`xmppfront records %s` prints them for every port).",
             hosted ? host->domain : "");
    /* A tenant named like the hosting (always hosting-served, registry.c) publishes the
       hosting's records: TLSA on every port, both fingerprints documents. */
    int is_host = hosted && strcmp(name, host->domain) == 0;
    static const int all[2] = { 1, 1 };
    if (print_tlsa(out, cfg, target, cred, is_host ? all : offered,
                   hosted && !is_host ? note : NULL) < 0 ||
        print_posh(out, name, cred, hosted && !is_host ? host->domain : NULL,
                   is_host ? all : offered) < 0) {
        fprintf(stderr, "xmppfront records: cannot hash the certificate of %s\n", name);
        return -1;
    }
    return 0;
}

/* The hosting name itself: the target of every hosting-served tenant. */
static int print_hosting(FILE *out, const xf_config *cfg, const xf_tenant *host)
{
    size_t served = 0;
    for (size_t i = 0; i < xf_registry_count(cfg->registry); i++)
        served += xf_registry_at(cfg->registry, i)->present == XF_PRESENT_HOSTING;
    fprintf(out, "; xmppfront records %s\n; configuration %s\n", host->domain, cfg->path);
    fprintf(out, "; %s is the hosting identity (certificate %s).\n; The SRV records of the "
            "%zu tenant(s) served with its certificate point here, and\n; tenants with a "
            "certificate of their own use targets under it with the same addresses.\n"
            "; Give %s the proxy's addresses (A/AAAA).\n", host->domain, host->cert_path,
            served, host->domain);
    static const int all[2] = { 1, 1 };
    if (print_tlsa(out, cfg, host->domain, host, all, NULL) < 0 ||
        print_posh(out, host->domain, host, NULL, all) < 0) {
        fprintf(stderr, "xmppfront records: cannot hash the hosting certificate\n");
        return -1;
    }
    return 0;
}

int xf_records_print(FILE *out, const xf_config *cfg, const char *domain, char *err,
                     size_t errlen)
{
    char name[XF_REGISTRY_NAME_MAX + 1];
    const char *why = xf_registry_normalise_name(domain, name);
    if (why) {
        snprintf(err, errlen, "'%.100s' %s", domain, why);
        return -1;
    }
    const xf_tenant *host = xf_registry_hosting(cfg->registry);
    const xf_tenant *t = xf_registry_find(cfg->registry, name);
    if (t == NULL && !(host && strcmp(name, host->domain) == 0)) {
        snprintf(err, errlen, "%s is not a tenant, a tenant alias or the hosting name in %s",
                 name, cfg->path);
        return -1;
    }
    int r = t ? print_tenant(out, cfg, t, name) : print_hosting(out, cfg, host);
    if (r < 0)
        snprintf(err, errlen, "cannot print the records of %s", name);
    return r;
}

static void usage(FILE *f)
{
    fputs("usage: xmppfront records DOMAIN [--config FILE]\n"
          "  prints the SRV, TLSA and POSH records to publish for DOMAIN (a tenant, an\n"
          "  alias or the hosting name); FILE defaults to " DEFAULT_CONFIG "\n"
          "  (docs/records.md)\n", f);
}

int xf_records_main(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG, *domain = NULL;
    char err[1024];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "xmppfront records: %s needs a file\n", a);
                return EXIT_BAD;
            }
            path = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "xmppfront records: unknown option %s\n", a);
            usage(stderr);
            return EXIT_BAD;
        } else if (domain) {
            fprintf(stderr, "xmppfront records: one DOMAIN only (%s, %s)\n", domain, a);
            return EXIT_BAD;
        } else {
            domain = a;
        }
    }
    if (!domain) {
        usage(stderr);
        return EXIT_BAD;
    }
    /* Key parsing in the registry needs PSA (the daemon gets it from xf_tls_init). */
    if (psa_crypto_init() != PSA_SUCCESS) {
        fprintf(stderr, "xmppfront records: cannot initialise the crypto library\n");
        return EXIT_BAD;
    }
    xf_config *cfg = NULL;
    if (xf_config_load(path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "xmppfront records: configuration error: %s\n", err);
        return EXIT_BAD;
    }
    int r = xf_records_print(stdout, cfg, domain, err, sizeof err);
    xf_config_unref(cfg);
    if (r < 0) {
        fprintf(stderr, "xmppfront records: %s\n", err);
        return EXIT_BAD;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "xmppfront records: cannot write the output\n");
        return EXIT_BAD;
    }
    return EXIT_OK;
}
