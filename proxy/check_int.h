/*
 * check_int: the I/O half of `xmppfront check` (proxy/check_cmd.c drives it):
 *   check_dns.c   proxy/dns.c on a private libuv loop, queries run as a batch;
 *   check_tls.c   TCP connect, the STARTTLS exchange (RFC 6120 §5.4) or direct TLS
 *                 (XEP-0368), the TLS handshake with SNI and ALPN (mbedTLS), the
 *                 presented chain;
 *   check_posh.c  the POSH documents over HTTPS (RFC 7711 §3) with libcurl's easy API.
 * Synchronous: each call returns when done or at its deadline (a monotonic time in
 * milliseconds, xf_check_now_ms). Not for the proxy's loop.
 */
#ifndef XF_CHECK_INT_H
#define XF_CHECK_INT_H

#include <stddef.h>
#include <stdint.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include "proxy/check_cmd.h"
#include "proxy/config.h"
#include "proxy/dns.h"
#include "tenants/registry.h"

uint64_t xf_check_now_ms(void);

/* ---- DNS (check_dns.c) ---- */

enum { XF_CQ_SRV = 1, XF_CQ_ADDR = 2, XF_CQ_TLSA = 3 };

typedef struct xf_cdns_query {
    int kind;                          /* XF_CQ_* */
    char name[XF_DNS_NAME_MAX];        /* SRV owner, host (ADDR, TLSA) */
    unsigned port;                     /* TLSA */
    int done;                          /* 1: res holds the answer (TIMEOUT at deadline) */
    xf_dns_result res;                 /* owned; xf_cdns_query_free */
    uint64_t id;                       /* internal */
} xf_cdns_query;

typedef struct xf_cdns xf_cdns;

/* A channel on a loop of its own. servers as xf_dns_conf (NULL/0 = resolv.conf);
   no cache; per try timeout_ms. NULL with err set on failure. */
xf_cdns *xf_cdns_open(const char *const *servers, size_t n, unsigned timeout_ms, char *err,
                      size_t errlen);
/* 1: the AD bit of answers is trusted (loopback resolvers, proxy/dns.h). */
int xf_cdns_trusted(const xf_cdns *d);
/* Asks every q[i] not yet done, concurrently; returns when all are answered or at
   deadline (the rest get status TIMEOUT). 0, or -1 when a query could not be started
   (its res says ERROR). */
int xf_cdns_run(xf_cdns *d, xf_cdns_query *q, size_t n, uint64_t deadline);
void xf_cdns_query_free(xf_cdns_query *q);
void xf_cdns_close(xf_cdns *d);

/* Command-line values shared by `check` and `rollover`: --timeout seconds in (0, 600]
   (0, or -1 when not), and --resolver IP:PORT ("[IPv6]:port"; a bare IPv4 address gets
   port 53) written to out (0, or -1 when it does not fit). */
int xf_cdns_parse_timeout(const char *s, double *out);
int xf_cdns_resolver_arg(const char *r, char *out, size_t cap);

/* The arguments `check` and `rollover` share: DOMAIN, --config/-c, --timeout, --resolver. */
#define XF_CLI_MAX_RESOLVERS 16
typedef struct xf_cli_common {
    const char *domain;                        /* as given */
    const char *config;
    const char *resolvers[XF_CLI_MAX_RESOLVERS];
    char res_buf[XF_CLI_MAX_RESOLVERS][80];
    size_t n_res;
    double timeout_s;
    char name[XF_REGISTRY_NAME_MAX + 1];       /* DOMAIN normalised (xf_cli_common_done) */
} xf_cli_common;
void xf_cli_common_init(xf_cli_common *o, const char *config, double timeout_s);
/* argv[*i]: 1 when it (and its value, *i advanced) was one of the shared arguments, 0
   when it is not (the caller's own option), -1 with *why and *arg (may be NULL) for a
   bad one (exit 2). */
int xf_cli_common_arg(xf_cli_common *o, int argc, char **argv, int *i, const char **why,
                      const char **arg);
/* After the last argument: 0 with o->name set, or -1 with *why (NULL: no DOMAIN; print
   the usage). */
int xf_cli_common_done(xf_cli_common *o, const char **why);

/* ---- TCP + TLS (check_tls.c) ---- */

typedef struct xf_ctls xf_ctls;

/* Client configurations (no client certificate; verification left to certs/: authmode
   optional), the policy of proxy/tls.c. ca: the trust anchors for the TLS layer's own
   flags (borrowed; certs/pkix.h decides). NULL with err on failure. */
xf_ctls *xf_ctls_new(mbedtls_x509_crt *ca, char *err, size_t errlen);
void xf_ctls_free(xf_ctls *t);

typedef struct xf_ctls_probe {
    /* TCP */
    int tcp_ok;
    char tcp_err[160];
    unsigned tcp_ms;
    /* the pre-TLS stream (STARTTLS) and the handshake */
    int tls_ok;
    char tls_err[240];
    char tls_info[200];                /* "TLSv1.3 TLS1-3-AES-128-GCM-SHA256, ALPN xmpp-server" */
    mbedtls_x509_crt chain;            /* what the server sent, leaf first (copied) */
    /* the stream opened over TLS */
    int stream_ok;
    char stream_info[200];
} xf_ctls_probe;

/* Connects to addr:port (connect by connect_deadline), then STARTTLS (direct 0) or
   direct TLS with ALPN xmpp-server / xmpp-client (server 1 / 0), SNI = domain, and
   opens an XMPP stream to domain over TLS; everything by deadline. out is initialised
   here; free with xf_ctls_probe_free. */
void xf_ctls_run(xf_ctls *t, const xf_dns_addr *addr, unsigned port, int direct, int server,
                 const char *domain, uint64_t connect_deadline, uint64_t deadline,
                 xf_ctls_probe *out);
void xf_ctls_probe_free(xf_ctls_probe *p);

/* "192.0.2.1" / "2001:db8::1" */
const char *xf_check_addr_text(const xf_dns_addr *a, char *buf, size_t len);

/* ---- POSH (check_posh.c) ---- */

/* Resolves host for curl (CURLOPT_RESOLVE): writes "host:443:a1,a2" into out and
   returns 0, or -1 to let curl resolve it itself. */
typedef int (*xf_cposh_resolve_fn)(void *udata, const char *host, char *out, size_t outlen);

/* Fetches https://domain/.well-known/posh/<kind>.json (kind "xmpp-client" or
   "xmpp-server"): HTTPS only, redirects to HTTPS only (at most 10), bodies of at most
   XF_POSH_MAX_DOC bytes, the server validated by PKIX against ca_file (NULL = curl's
   default bundle), by deadline. A reference document is followed once (RFC 7711
   §3.4); the result must then be a fingerprints document. out: see check_cmd.h
   (free out->doc with free()). */
void xf_cposh_fetch(const char *domain, const char *kind, const char *ca_file,
                    xf_cposh_resolve_fn resolve, void *udata, uint64_t deadline,
                    xf_check_posh *out);

/* ---- what `xmppfront records` says (check_records.c) ---- */

typedef struct xf_check_rec {
    char owner[300];                   /* "_xmpp-server._tcp.a.example." */
    char type[16];                     /* "SRV", "TLSA" */
    char rdata[300];                   /* "0 5 5269 t.example." / "3 1 1 hex" */
    int next;                          /* TLSA of the next key (rollover) */
    unsigned port;                     /* TLSA: from the owner */
    char host[XF_DNS_NAME_MAX];        /* TLSA: from the owner, no trailing dot */
} xf_check_rec;

/* The records `xmppfront records domain` prints for cfg (xf_records_print's output
   read back). *out malloc'd (free()). 0, or -1 with err (not a tenant, ...). */
int xf_check_expected(const xf_config *cfg, const char *domain, xf_check_rec **out,
                      size_t *n, char *err, size_t errlen);
/* 1 if the TLSA answer res holds the record `text` ("u s m hex"). */
int xf_check_tlsa_has(const xf_dns_result *res, const char *text);
/* 1 if the SRV answer res holds `rdata` ("prio weight port target", compared on port
   and target; "0 0 0 ." matches the single-"." answer). */
int xf_check_srv_has(const xf_dns_result *res, const char *rdata);
/* The next certificate (rollover) of domain in cfg (a tenant, an alias, the hosting
   name; the hosting's for a hosting-served tenant), or NULL. */
const mbedtls_x509_crt *xf_check_next_leaf(const xf_config *cfg, const char *domain);
/* During a rollover: one "record" item saying whether the fetched fingerprints document
   (fetch VALID) also matches the next certificate (ok / warn). Nothing when there is no
   document or no next certificate. Returns the level. */
int xf_check_posh_next(xf_check_report *rep, const xf_check_posh *fetch,
                       const mbedtls_x509_crt *next);
/* One "record" item per SRV and TLSA record of recs[0..n): SRV compared with the
   answer srv[s] whose owner srv_owner[s] ("_xmpp-server._tcp.D.") it names (ok / warn
   when missing), TLSA with tlsa[i] (the answer at its owner, NULL if not asked; ok /
   fail when missing). trusted: the AD bit means something. */
void xf_check_records_compare(xf_check_report *rep, const xf_check_rec *recs, size_t n,
                              const char *const srv_owner[4], const xf_dns_result *const srv[4],
                              const xf_dns_result *const *tlsa, int trusted);

#endif
