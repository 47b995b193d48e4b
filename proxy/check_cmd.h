/* check_cmd: `xmppfront check DOMAIN [--config FILE] [--json] [--timeout S]
   [--resolver IP:PORT ...] [--ca FILE]`, the operator's audit of a domain as a careful
   peer sees it (docs/check.md): SRV (and XEP-0368 xmpps SRV) of the four services with
   their DNSSEC status, every target's addresses, TCP reachability, STARTTLS and direct
   TLS handshakes with SNI = DOMAIN and ALPN, the presented chain, the verdict of each
   prooftype (PKIX, DANE, POSH; RFC 7712) and whether the published records match what
   `xmppfront records` says (next key during a rollover).
   argv[0] is "check". Returns the process exit code: 0 every check ok, 1 a warning and
   no failure, 2 a failure or bad input.

   The pure parts (the report, its line and JSON forms, the exit code, the verdict
   rules) are declared here for the unit tests (tests/unit/test_check_cmd.c). */
#ifndef XF_CHECK_CMD_H
#define XF_CHECK_CMD_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <mbedtls/x509_crt.h>
#include "certs/identity.h"
#include "certs/posh.h"
#include "proxy/dnswire.h"
#include "tenants/policy.h"

int xf_check_main(int argc, char **argv);

/* ---- the report ---- */

enum xf_check_level { XF_CHECK_OK = 0, XF_CHECK_WARN = 1, XF_CHECK_FAIL = 2 };

#define XF_CHECK_NAME_MAX 16
#define XF_CHECK_SUBJECT_MAX 320
#define XF_CHECK_DETAIL_MAX 720
#define XF_CHECK_HINT_MAX 400

/* One check: what was looked at (`check`: "srv", "addr", "tcp", "tls", "cert", "pkix",
   "dane", "posh", "proof", "record", "dnssec", "posh-doc"), the thing it was about
   (`subject`: "_xmpp-server._tcp.example.net", "xmpp.example.net:5269 [192.0.2.1]"),
   the finding and, on warn/fail, what to do. Texts are one printable line of valid UTF-8:
   control bytes and malformed UTF-8 are replaced by '?' when added (a certificate's
   names are the peer's bytes). */
typedef struct xf_check_item {
    int level;                          /* enum xf_check_level */
    char check[XF_CHECK_NAME_MAX];
    char subject[XF_CHECK_SUBJECT_MAX];
    char detail[XF_CHECK_DETAIL_MAX];
    char hint[XF_CHECK_HINT_MAX];       /* "" for none */
} xf_check_item;

typedef struct xf_check_report {
    char domain[256];
    xf_check_item *items;
    size_t n, cap;
    int nomem;                          /* an item could not be stored: counts as fail */
} xf_check_report;

void xf_check_report_init(xf_check_report *r, const char *domain);
void xf_check_report_free(xf_check_report *r);

/* Appends an item; detail is printf-formatted; hint may be NULL. Out of memory sets
   r->nomem (the exit code is then 2). Returns the level given. */
int xf_check_add(xf_check_report *r, int level, const char *check, const char *subject,
                 const char *hint, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Highest level among the items (XF_CHECK_FAIL when r->nomem). */
int xf_check_worst(const xf_check_report *r);
/* The exit code: 0 all ok, 1 warn (no fail), 2 any fail. */
int xf_check_exit_code(const xf_check_report *r);

/* "ok", "warn", "fail". */
const char *xf_check_level_name(int level);

/* The text line of an item, without newline:
     "<level> <check> <subject>: <detail>" [" -- hint: <hint>"]
   Returns the length written (truncated to outlen - 1, always NUL-terminated). */
size_t xf_check_format_line(const xf_check_item *it, char *out, size_t outlen);

/* Every line, then "result <level>: N ok, N warn, N fail". Returns 0 or -1 (write). */
int xf_check_print_text(FILE *out, const xf_check_report *r);

/* The JSON form (yajl generator):
     {"domain": D, "result": "ok"|"warn"|"fail", "exit": 0|1|2,
      "counts": {"ok": N, "warn": N, "fail": N},
      "checks": [{"status": "ok", "check": "srv", "subject": S, "detail": T,
                  "hint": H}, ...]}
   "hint" is "" when there is none. Returns 0 or -1. */
int xf_check_print_json(FILE *out, const xf_check_report *r);

#define XF_CHECK_CERT_WARN_DAYS 14

/* The "cert" item for the chain an endpoint presented (leaf first, n_chain
   certificates): subject, SAN identifiers, issuer, expiry in days from `now`; fail when
   expired or not yet valid (certs/cert.h xf_cert_time_status, the current clock), warn
   within XF_CHECK_CERT_WARN_DAYS.
   Returns the level. */
int xf_check_cert(xf_check_report *r, const char *subject, const mbedtls_x509_crt *leaf,
                  size_t n_chain, time_t now);

/* ---- verdict rules (pure) ---- */

/* The level of prooftype `type` (enum xf_prooftype) for one endpoint, given the
   verdicts of all three (p[XF_PROOF_*]):
   - VALID → ok; ABSENT / NOT_TRIED → ok (nothing published is not an error);
   - DANE INVALID or ERROR → fail (a DANE-validating peer aborts this target, RFC 7671
     §4.1, RFC 7673 §3: no downgrade to PKIX);
   - PKIX INVALID → warn when DANE or POSH proves the domain (peers without them
     refuse it), fail otherwise;
   - POSH INVALID (document served, no fingerprint matches) → fail; POSH ERROR (fetch
     or document failed) → warn. */
int xf_check_proof_level(int type, const xf_proof p[XF_PROOF_COUNT]);

/* The endpoint's aggregate (the "proof" item): fail when DANE failed (invalid or
   bogus) or when no prooftype is valid, else ok. detail gets "proven by dane, pkix" or
   the reasons. Returns the level. */
int xf_check_proof_summary(const xf_proof p[XF_PROOF_COUNT], char *detail, size_t dlen);

/* The DANE prooftype of one endpoint (RFC 7673 §3, spec-digest §6; the steps of
   proxy/remote_dane.h with the service given): trusted = the resolver's AD bit is
   trusted; srv_secure = the SRV answer had AD; fallback = no SRV, the endpoint is the
   domain itself (plain RFC 6698, local policy); addr_ad = the endpoint host's address
   answer had AD; tlsa = the TLSA answer at owner (NULL when DANE does not apply or it
   was not asked); chain as the peer sent it; ca for PKIX-TA/EE records; srv_target
   the extra reference identity (or NULL). Fills p; returns p->result. */
int xf_check_dane(int trusted, int srv_secure, int fallback, int addr_ad,
                  const xf_dns_result *tlsa, const char *owner, mbedtls_x509_crt *chain,
                  mbedtls_x509_crt *ca, const char *domain, enum xf_service svc,
                  const char *srv_target, xf_proof *p);

/* What a POSH fetch for one service gave (RFC 7711 §3): */
typedef struct xf_check_posh {
    int result;                         /* XF_PROOF_VALID: a fingerprints document is in
                                           doc (directly or via one `url`); ABSENT: 404
                                           or no web server; ERROR: HTTP/TLS error,
                                           invalid document, a second reference */
    char url[XF_POSH_URL_MAX];          /* what was fetched first */
    char via[XF_POSH_URL_MAX];          /* the `url` followed, "" if none */
    char why[400];                      /* ABSENT/ERROR: the reason */
    struct xf_posh_doc *doc;            /* VALID: the fingerprints document (owned) */
} xf_check_posh;

/* The POSH prooftype of a presented leaf against what the fetch gave: VALID when a
   fingerprint matches and the leaf is inside its validity period (certs/posh.h
   xf_posh_check), INVALID when a document was served but does not match, ABSENT /
   ERROR as the fetch. Fills p; returns p->result. */
int xf_check_posh_verdict(const xf_check_posh *fetch, const mbedtls_x509_crt *leaf,
                          xf_proof *p);

#endif
