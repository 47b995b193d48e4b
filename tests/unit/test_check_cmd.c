/* Unit tests for the pure parts of `xmppfront check` (proxy/check_report.c,
   proxy/check_records.c; contract in proxy/check_cmd.h): the exit code from the worst
   finding, the text line, the JSON shape (parsed back with yajl_tree), the prooftype
   levels and the endpoint aggregate, the DANE verdict of an endpoint (RFC 7673 §3:
   not applicable / bogus / match / mismatch, c2s names), the POSH verdict (RFC 7711:
   match, mismatch, url delegation, expired certificate, the next certificate during a
   rollover), the certificate line (names,
   expiry, the 14-day warning), and the comparison of `xmppfront records` lines with DNS
   answers (SRV, TLSA of the current and the next key). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "certs/dane.h"
#include "certs_fixtures/mkcert.h"
#include "proxy/check_cmd.h"
#include "proxy/check_int.h"

/* ---- report, exit code, line ---- */

static void test_exit_code(void **st)
{
    (void)st;
    xf_check_report r;
    xf_check_report_init(&r, "example.net");
    assert_int_equal(xf_check_exit_code(&r), 0);         /* nothing found: nothing bad */
    xf_check_add(&r, XF_CHECK_OK, "srv", "s", "unused", "fine");
    assert_int_equal(xf_check_exit_code(&r), 0);
    xf_check_add(&r, XF_CHECK_WARN, "srv", "s", "h", "meh");
    assert_int_equal(xf_check_exit_code(&r), 1);
    assert_int_equal(xf_check_worst(&r), XF_CHECK_WARN);
    xf_check_add(&r, XF_CHECK_FAIL, "tcp", "s", "h", "refused");
    xf_check_add(&r, XF_CHECK_OK, "tls", "s", NULL, "later ok does not lower it");
    assert_int_equal(xf_check_exit_code(&r), 2);
    assert_int_equal(r.n, 4);
    /* many items: the array grows */
    for (int i = 0; i < 100; i++)
        xf_check_add(&r, XF_CHECK_OK, "x", "s", NULL, "%d", i);
    assert_int_equal(r.n, 104);
    assert_string_equal(r.items[103].detail, "99");
    xf_check_report_free(&r);

    xf_check_report_init(&r, "example.net");
    r.nomem = 1;                                         /* a lost finding is a failure */
    assert_int_equal(xf_check_exit_code(&r), 2);
    xf_check_report_free(&r);
    assert_string_equal(xf_check_level_name(XF_CHECK_OK), "ok");
    assert_string_equal(xf_check_level_name(XF_CHECK_WARN), "warn");
    assert_string_equal(xf_check_level_name(XF_CHECK_FAIL), "fail");
}

static void test_line(void **st)
{
    (void)st;
    xf_check_report r;
    char line[2000];
    xf_check_report_init(&r, "example.net");
    xf_check_add(&r, XF_CHECK_OK, "srv", "_xmpp-server._tcp.example.net", "dropped on ok",
                 "%d record, %s", 1, "secure (AD)");
    xf_check_add(&r, XF_CHECK_FAIL, "tcp", "xmpp-server x.example:5269 192.0.2.1",
                 "is it listening?", "Connection refused");
    /* a certificate's text: newline, escape and a stray byte cannot make a second line
       or break UTF-8; a well-formed character stays */
    xf_check_add(&r, XF_CHECK_WARN, "cert", "s\nfail forged", "h\r\n",
                 "CN=a\x1b[31m\xff\xc3 \xc2\xa7 ok");
    size_t n = xf_check_format_line(&r.items[0], line, sizeof line);
    assert_string_equal(line, "ok srv _xmpp-server._tcp.example.net: 1 record, secure (AD)");
    assert_int_equal(n, strlen(line));
    xf_check_format_line(&r.items[1], line, sizeof line);
    assert_string_equal(line, "fail tcp xmpp-server x.example:5269 192.0.2.1: Connection "
                              "refused -- hint: is it listening?");
    xf_check_format_line(&r.items[2], line, sizeof line);
    assert_string_equal(line, "warn cert s?fail forged: CN=a?[31m?? \xc2\xa7 ok -- hint: h??");
    /* truncation: NUL-terminated, length reported within the buffer */
    char small[12];
    n = xf_check_format_line(&r.items[1], small, sizeof small);
    assert_int_equal(n, sizeof small - 1);
    assert_string_equal(small, "fail tcp xm");
    /* a detail longer than the item keeps a whole UTF-8 character at the cut */
    char big[XF_CHECK_DETAIL_MAX + 10];
    memset(big, 'a', sizeof big);
    memcpy(big + XF_CHECK_DETAIL_MAX - 2, "\xc2\xa7", 2);
    big[sizeof big - 1] = '\0';
    xf_check_add(&r, XF_CHECK_OK, "x", "s", NULL, "%s", big);
    size_t dl = strlen(r.items[3].detail);
    assert_true(dl < XF_CHECK_DETAIL_MAX);
    assert_true((unsigned char)r.items[3].detail[dl - 1] != 0xc2);

    /* the text report: every line, then the result line */
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    assert_non_null(f);
    assert_int_equal(xf_check_print_text(f, &r), 0);
    fclose(f);
    assert_non_null(strstr(buf, "ok srv _xmpp-server._tcp.example.net: 1 record"));
    assert_non_null(strstr(buf, "\nresult fail: 2 ok, 1 warn, 1 fail\n"));
    int lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 5);
    free(buf);
    xf_check_report_free(&r);
}

static const char *jstr(yajl_val v, const char *key)
{
    const char *path[] = { key, NULL };
    yajl_val s = yajl_tree_get(v, path, yajl_t_string);
    assert_non_null(s);
    return YAJL_GET_STRING(s);
}

static long long jint(yajl_val v, const char *k1, const char *k2)
{
    const char *path[] = { k1, k2, NULL };
    yajl_val s = yajl_tree_get(v, path, yajl_t_number);
    assert_non_null(s);
    return YAJL_GET_INTEGER(s);
}

static void test_json(void **st)
{
    (void)st;
    xf_check_report r;
    xf_check_report_init(&r, "example.net");
    xf_check_add(&r, XF_CHECK_OK, "srv", "_xmpp-server._tcp.example.net", NULL, "ok \"quoted\"");
    xf_check_add(&r, XF_CHECK_WARN, "pkix", "xmpp-server a:5269 192.0.2.1", "get a CA cert",
                 "invalid \xc2\xa7 \\ \x01");
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    assert_int_equal(xf_check_print_json(f, &r), 0);
    fclose(f);
    char err[200];
    yajl_val v = yajl_tree_parse(buf, err, sizeof err);
    if (v == NULL)
        print_error("%s\n%s\n", err, buf);
    assert_non_null(v);
    assert_string_equal(jstr(v, "domain"), "example.net");
    assert_string_equal(jstr(v, "result"), "warn");
    assert_int_equal(jint(v, "exit", NULL), 1);
    assert_int_equal(jint(v, "counts", "ok"), 1);
    assert_int_equal(jint(v, "counts", "warn"), 1);
    assert_int_equal(jint(v, "counts", "fail"), 0);
    const char *cp[] = { "checks", NULL };
    yajl_val checks = yajl_tree_get(v, cp, yajl_t_array);
    assert_non_null(checks);
    assert_int_equal(YAJL_GET_ARRAY(checks)->len, 2);
    yajl_val c0 = YAJL_GET_ARRAY(checks)->values[0], c1 = YAJL_GET_ARRAY(checks)->values[1];
    assert_string_equal(jstr(c0, "status"), "ok");
    assert_string_equal(jstr(c0, "check"), "srv");
    assert_string_equal(jstr(c0, "subject"), "_xmpp-server._tcp.example.net");
    assert_string_equal(jstr(c0, "detail"), "ok \"quoted\"");
    assert_string_equal(jstr(c0, "hint"), "");
    assert_string_equal(jstr(c1, "status"), "warn");
    assert_string_equal(jstr(c1, "check"), "pkix");
    assert_string_equal(jstr(c1, "detail"), "invalid \xc2\xa7 \\ ?");
    assert_string_equal(jstr(c1, "hint"), "get a CA cert");
    assert_int_equal(YAJL_GET_OBJECT(c1)->len, 5);
    yajl_tree_free(v);
    free(buf);
    xf_check_report_free(&r);
}

/* ---- the certificate line ---- */

static void test_cert(void **st)
{
    (void)st;
    xf_check_report r;
    mbedtls_x509_crt ok, soon, old;
    struct mk_opts o = { .subject = "CN=x.example", .dns = { "x.example" },
                         .srv = { "_xmpp-server.x.example" }, .ca = 0,
                         .not_after = "20991231000000" };
    mk_parsed(&o, &ok);
    o.not_after = "20300110000000";
    mk_parsed(&o, &soon);
    o.not_after = "20200601000000";
    mk_parsed(&o, &old);
    struct tm tm = { .tm_year = 130, .tm_mon = 0, .tm_mday = 1 };   /* 2030-01-01 */
    time_t t2030 = timegm(&tm);
    xf_check_report_init(&r, "x.example");
    assert_int_equal(xf_check_cert(&r, "s", &ok, 2, t2030), XF_CHECK_OK);
    assert_non_null(strstr(r.items[0].detail, "subject CN=x.example; SAN DNS-ID:x.example "
                                              "SRV-ID:_xmpp-server.x.example; issuer CN=x.example; "
                                              "expires 2099-12-31"));
    assert_non_null(strstr(r.items[0].detail, "2 certificates sent"));
    /* 9 days before its end (as seen from 2030-01-01): warn. The clock for validity is
       the real one, and 2030 is still ahead of it. */
    assert_int_equal(xf_check_cert(&r, "s", &soon, 1, t2030), XF_CHECK_WARN);
    assert_non_null(strstr(r.items[1].detail, "(9 days); 1 certificate sent"));
    assert_non_null(strstr(r.items[1].hint, "renew"));
    assert_int_equal(xf_check_cert(&r, "s", &old, 1, time(NULL)), XF_CHECK_FAIL);
    assert_non_null(strstr(r.items[2].detail, "expires 2020-06-01 (expired "));
    xf_check_report_free(&r);
    mbedtls_x509_crt_free(&ok);
    mbedtls_x509_crt_free(&soon);
    mbedtls_x509_crt_free(&old);
}

/* ---- verdict rules ---- */

static void set3(xf_proof p[3], int dane, int pkix, int posh)
{
    memset(p, 0, 3 * sizeof(*p));
    p[XF_PROOF_DANE].result = dane;
    p[XF_PROOF_PKIX].result = pkix;
    p[XF_PROOF_POSH].result = posh;
    snprintf(p[XF_PROOF_DANE].reason, XF_PROOF_REASON_MAX, "dane-why");
    snprintf(p[XF_PROOF_PKIX].reason, XF_PROOF_REASON_MAX, "pkix-why");
    snprintf(p[XF_PROOF_POSH].reason, XF_PROOF_REASON_MAX, "posh-why");
}

static void test_proof_levels(void **st)
{
    (void)st;
    xf_proof p[3];
    enum { V = XF_PROOF_VALID, I = XF_PROOF_INVALID, A = XF_PROOF_ABSENT, E = XF_PROOF_ERROR };
    set3(p, A, V, A);
    assert_int_equal(xf_check_proof_level(XF_PROOF_DANE, p), XF_CHECK_OK);  /* absent */
    assert_int_equal(xf_check_proof_level(XF_PROOF_PKIX, p), XF_CHECK_OK);
    assert_int_equal(xf_check_proof_level(XF_PROOF_POSH, p), XF_CHECK_OK);
    set3(p, I, V, A);                    /* TLSA mismatch: fail whatever PKIX says */
    assert_int_equal(xf_check_proof_level(XF_PROOF_DANE, p), XF_CHECK_FAIL);
    set3(p, E, V, A);                    /* bogus / indeterminate TLSA */
    assert_int_equal(xf_check_proof_level(XF_PROOF_DANE, p), XF_CHECK_FAIL);
    set3(p, V, I, A);                    /* self-signed proven by DANE: PKIX only warns */
    assert_int_equal(xf_check_proof_level(XF_PROOF_PKIX, p), XF_CHECK_WARN);
    set3(p, A, I, V);                    /* ... or by POSH */
    assert_int_equal(xf_check_proof_level(XF_PROOF_PKIX, p), XF_CHECK_WARN);
    set3(p, A, I, A);                    /* nothing else: PKIX fails */
    assert_int_equal(xf_check_proof_level(XF_PROOF_PKIX, p), XF_CHECK_FAIL);
    set3(p, A, I, I);
    assert_int_equal(xf_check_proof_level(XF_PROOF_PKIX, p), XF_CHECK_FAIL);
    set3(p, A, V, I);                    /* POSH document that does not match */
    assert_int_equal(xf_check_proof_level(XF_PROOF_POSH, p), XF_CHECK_FAIL);
    set3(p, A, V, E);                    /* POSH fetch/document error */
    assert_int_equal(xf_check_proof_level(XF_PROOF_POSH, p), XF_CHECK_WARN);
}

static void test_proof_summary(void **st)
{
    (void)st;
    xf_proof p[3];
    char d[XF_CHECK_DETAIL_MAX];
    enum { V = XF_PROOF_VALID, I = XF_PROOF_INVALID, A = XF_PROOF_ABSENT, E = XF_PROOF_ERROR };
    set3(p, V, V, V);
    assert_int_equal(xf_check_proof_summary(p, d, sizeof d), XF_CHECK_OK);
    assert_string_equal(d, "proven by dane, pkix, posh");
    set3(p, A, I, V);
    assert_int_equal(xf_check_proof_summary(p, d, sizeof d), XF_CHECK_OK);
    assert_string_equal(d, "proven by posh");
    set3(p, I, V, V);                    /* DANE mismatch: the endpoint fails */
    assert_int_equal(xf_check_proof_summary(p, d, sizeof d), XF_CHECK_FAIL);
    assert_non_null(strstr(d, "DANE-validating peers abort"));
    assert_non_null(strstr(d, "dane-why"));
    assert_non_null(strstr(d, "other proofs valid: pkix, posh"));
    set3(p, E, V, A);
    assert_int_equal(xf_check_proof_summary(p, d, sizeof d), XF_CHECK_FAIL);
    set3(p, A, I, A);
    assert_int_equal(xf_check_proof_summary(p, d, sizeof d), XF_CHECK_FAIL);
    assert_non_null(strstr(d, "no prooftype proves the domain"));
    assert_non_null(strstr(d, "pkix-why"));
    set3(p, A, I, E);
    assert_int_equal(xf_check_proof_summary(p, d, sizeof d), XF_CHECK_FAIL);
}

/* ---- DANE ---- */

static void answer_of(xf_dns_result *r, int ad, const char *const *texts, size_t n)
{
    memset(r, 0, sizeof(*r));
    r->status = XF_DNS_NOERROR;
    r->qtype = XF_DNS_T_TLSA;
    r->ad = ad;
    r->tlsa = calloc(n ? n : 1, sizeof(*r->tlsa));
    r->tlsa_rdata = calloc(n ? n : 1, 3 + XF_TLSA_DATA_MAX);
    assert_non_null(r->tlsa);
    assert_non_null(r->tlsa_rdata);
    static struct xf_tlsa t;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(xf_tlsa_parse_text(texts[i], &t), 0);
        unsigned char *p = r->tlsa_rdata + r->tlsa_rdata_len;
        p[0] = t.usage;
        p[1] = t.selector;
        p[2] = t.mtype;
        memcpy(p + 3, t.data, t.len);
        r->tlsa[i].off = r->tlsa_rdata_len;
        r->tlsa[i].len = 3 + t.len;
        r->tlsa_rdata_len += 3 + t.len;
    }
    r->n_tlsa = n;
}

static void test_dane(void **st)
{
    (void)st;
    mbedtls_x509_crt leaf, other;
    struct mk_opts o = { .subject = "CN=wrong.example", .dns = { "wrong.example" }, .ca = 0,
                         .not_after = "20200601000000", .eku = MK_EKU_SERVER };
    mk_parsed(&o, &leaf);                /* self-signed, expired, wrong name */
    struct mk_opts o2 = { .subject = "CN=x.example", .dns = { "x.example" }, .ca = 0 };
    mk_parsed(&o2, &other);
    char mine[300], theirs[300];
    assert_true(xf_dane_generate(&leaf, 3, 1, 1, mine, sizeof mine) > 0);
    assert_true(xf_dane_generate(&other, 3, 1, 1, theirs, sizeof theirs) > 0);
    const char *m[] = { theirs, mine }, *t[] = { theirs };
    xf_dns_result r;
    xf_proof p;
    const char *own = "_5222._tcp.x.example";

    /* not applicable: resolver not trusted / insecure SRV / insecure address */
    assert_int_equal(xf_check_dane(0, 1, 0, 1, NULL, own, &leaf, NULL, "x.example",
                                   XF_SERVICE_SERVER, NULL, &p), XF_PROOF_ABSENT);
    assert_non_null(strstr(p.reason, "not applicable: resolver not trusted"));
    assert_int_equal(xf_check_dane(1, 0, 0, 1, NULL, own, &leaf, NULL, "x.example",
                                   XF_SERVICE_SERVER, NULL, &p), XF_PROOF_ABSENT);
    assert_int_equal(xf_check_dane(1, 1, 0, 0, NULL, own, &leaf, NULL, "x.example",
                                   XF_SERVICE_SERVER, NULL, &p), XF_PROOF_ABSENT);
    /* applies but was not asked in time */
    assert_int_equal(xf_check_dane(1, 1, 0, 1, NULL, own, &leaf, NULL, "x.example",
                                   XF_SERVICE_SERVER, NULL, &p), XF_PROOF_ERROR);
    /* bogus */
    memset(&r, 0, sizeof r);
    r.status = XF_DNS_SERVFAIL;
    assert_int_equal(xf_check_dane(1, 1, 0, 1, &r, own, &leaf, NULL, "x.example",
                                   XF_SERVICE_SERVER, NULL, &p), XF_PROOF_ERROR);
    assert_non_null(strstr(p.reason, "bogus"));
    /* none */
    r.status = XF_DNS_NXDOMAIN;
    assert_int_equal(xf_check_dane(1, 1, 0, 1, &r, own, &leaf, NULL, "x.example",
                                   XF_SERVICE_SERVER, NULL, &p), XF_PROOF_ABSENT);
    /* DANE-EE match among others, for a c2s endpoint: names and dates ignored */
    answer_of(&r, 1, m, 2);
    assert_int_equal(xf_check_dane(1, 1, 0, 1, &r, own, &leaf, NULL, "x.example",
                                   XF_SERVICE_CLIENT, NULL, &p), XF_PROOF_VALID);
    assert_non_null(strstr(p.reason, "record 2"));
    /* insecure records are ignored */
    r.ad = 0;
    assert_int_equal(xf_check_dane(1, 1, 0, 1, &r, own, &leaf, NULL, "x.example",
                                   XF_SERVICE_CLIENT, NULL, &p), XF_PROOF_ABSENT);
    xf_dns_result_free(&r);
    /* mismatch */
    answer_of(&r, 1, t, 1);
    assert_int_equal(xf_check_dane(1, 0, 1, 1, &r, own, &leaf, NULL, "x.example",
                                   XF_SERVICE_SERVER, NULL, &p), XF_PROOF_INVALID);
    assert_non_null(strstr(p.reason, "TLSA mismatch"));
    xf_dns_result_free(&r);
    /* only unusable records (unknown usage): PKIX decides */
    const char *u[] = { "7 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" };
    answer_of(&r, 1, u, 1);
    assert_int_equal(xf_check_dane(1, 1, 0, 1, &r, own, &leaf, NULL, "x.example",
                                   XF_SERVICE_SERVER, NULL, &p), XF_PROOF_ABSENT);
    assert_non_null(strstr(p.reason, "no usable TLSA"));
    xf_dns_result_free(&r);
    mbedtls_x509_crt_free(&leaf);
    mbedtls_x509_crt_free(&other);
}

/* ---- POSH ---- */

static void fetched(xf_check_posh *f, const mbedtls_x509_crt *leaf, const char *via)
{
    char doc[1024], err[200];
    memset(f, 0, sizeof(*f));
    f->result = XF_PROOF_VALID;
    f->doc = malloc(sizeof(*f->doc));
    assert_non_null(f->doc);
    int n = xf_posh_generate(leaf, 3600, doc, sizeof doc);
    assert_true(n > 0);
    assert_int_equal(xf_posh_parse((const unsigned char *)doc, (size_t)n, f->doc, err,
                                   sizeof err), 0);
    snprintf(f->url, sizeof f->url, "https://x.example/.well-known/posh/xmpp-server.json");
    snprintf(f->via, sizeof f->via, "%s", via ? via : "");
}

static void test_posh(void **st)
{
    (void)st;
    mbedtls_x509_crt leaf, other, expired;
    struct mk_opts o = { .subject = "CN=x.example", .dns = { "x.example" }, .ca = 0 };
    mk_parsed(&o, &leaf);
    mk_parsed(&o, &other);               /* same names, another key and certificate */
    struct mk_opts oe = { .subject = "CN=x.example", .dns = { "x.example" }, .ca = 0,
                          .not_after = "20200601000000" };
    mk_parsed(&oe, &expired);
    xf_check_posh f;
    xf_proof p;

    fetched(&f, &leaf, NULL);
    assert_int_equal(xf_check_posh_verdict(&f, &leaf, &p), XF_PROOF_VALID);
    assert_int_equal(xf_check_posh_verdict(&f, &other, &p), XF_PROOF_INVALID);
    assert_non_null(strstr(p.reason, "does not match"));
    free(f.doc);
    fetched(&f, &leaf, "https://hosting.example/.well-known/posh/xmpp-server.json");
    assert_int_equal(xf_check_posh_verdict(&f, &leaf, &p), XF_PROOF_VALID);
    assert_non_null(strstr(p.reason, "(via url https://hosting.example/"));
    free(f.doc);
    fetched(&f, &expired, NULL);         /* RFC 7711 §4: not when expired */
    assert_int_equal(xf_check_posh_verdict(&f, &expired, &p), XF_PROOF_INVALID);
    free(f.doc);

    memset(&f, 0, sizeof f);
    f.result = XF_PROOF_ABSENT;
    snprintf(f.why, sizeof f.why, "HTTP 404 (no POSH document)");
    assert_int_equal(xf_check_posh_verdict(&f, &leaf, &p), XF_PROOF_ABSENT);
    assert_string_equal(p.reason, "HTTP 404 (no POSH document)");
    f.result = XF_PROOF_ERROR;
    assert_int_equal(xf_check_posh_verdict(&f, &leaf, &p), XF_PROOF_ERROR);
    assert_int_equal(xf_check_posh_verdict(NULL, &leaf, &p), XF_PROOF_ERROR);
    /* rollover: the document must also hold the next certificate */
    xf_check_report r;
    xf_check_report_init(&r, "x.example");
    fetched(&f, &leaf, NULL);
    assert_int_equal(xf_check_posh_next(&r, &f, &other), XF_CHECK_WARN);
    assert_non_null(strstr(r.items[0].detail, "lacks the next certificate's fingerprint"));
    assert_string_equal(r.items[0].subject, "https://x.example/.well-known/posh/xmpp-server.json");
    assert_int_equal(xf_check_posh_next(&r, &f, &leaf), XF_CHECK_OK);
    assert_int_equal(xf_check_posh_next(&r, &f, NULL), XF_CHECK_OK);   /* no rollover */
    assert_int_equal(r.n, 2);
    free(f.doc);
    f.doc = NULL;
    f.result = XF_PROOF_ABSENT;                      /* no document: nothing to say */
    assert_int_equal(xf_check_posh_next(&r, &f, &other), XF_CHECK_OK);
    assert_int_equal(r.n, 2);
    xf_check_report_free(&r);
    mbedtls_x509_crt_free(&leaf);
    mbedtls_x509_crt_free(&other);
    mbedtls_x509_crt_free(&expired);
}

/* ---- `records` lines against DNS ---- */

static void test_records_match(void **st)
{
    (void)st;
    const char *a = "3 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const char *b = "3 1 1 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    const char *both[] = { b, a };
    xf_dns_result r;
    answer_of(&r, 1, both, 2);
    assert_int_equal(xf_check_tlsa_has(&r, a), 1);
    assert_int_equal(xf_check_tlsa_has(&r, "3 1 1 00112233445566778899AABBCCDDEEFF"
                                           "00112233445566778899aabbccddeeff"), 1);
    assert_int_equal(xf_check_tlsa_has(&r, "3 0 1 00112233445566778899aabbccddeeff"
                                           "00112233445566778899aabbccddeeff"), 0);
    assert_int_equal(xf_check_tlsa_has(&r, "3 1 1 00"), 0);
    xf_dns_result_free(&r);
    answer_of(&r, 1, both, 1);           /* only b */
    assert_int_equal(xf_check_tlsa_has(&r, a), 0);
    r.status = XF_DNS_SERVFAIL;
    assert_int_equal(xf_check_tlsa_has(&r, b), 0);
    xf_dns_result_free(&r);
    assert_int_equal(xf_check_tlsa_has(NULL, a), 0);

    xf_srv_rec recs[2] = { { 0, 5, 5269, "xmpp.hosting.example." }, { 10, 5, 5270, "b.example" } };
    memset(&r, 0, sizeof r);
    r.status = XF_DNS_NOERROR;
    r.srv = recs;
    r.n_srv = 2;
    assert_int_equal(xf_check_srv_has(&r, "0 5 5269 xmpp.hosting.example."), 1);
    assert_int_equal(xf_check_srv_has(&r, "1 1 5269 XMPP.Hosting.Example"), 1);
    assert_int_equal(xf_check_srv_has(&r, "0 5 5270 b.example."), 1);
    assert_int_equal(xf_check_srv_has(&r, "0 5 5270 xmpp.hosting.example."), 0);
    assert_int_equal(xf_check_srv_has(&r, "0 0 0 ."), 0);
    xf_srv_rec dot = { 0, 0, 0, "." };
    r.srv = &dot;
    r.n_srv = 1;
    assert_int_equal(xf_check_srv_has(&r, "0 0 0 ."), 1);
    assert_int_equal(xf_check_srv_has(&r, "0 5 5269 a.example."), 0);
    r.status = XF_DNS_NXDOMAIN;
    assert_int_equal(xf_check_srv_has(&r, "0 0 0 ."), 0);
}

static void test_records_compare(void **st)
{
    (void)st;
    const char *cur = "3 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const char *nxt = "3 1 1 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    xf_check_rec recs[5];
    memset(recs, 0, sizeof recs);
    snprintf(recs[0].owner, sizeof recs[0].owner, "_xmpp-server._tcp.a.example.");
    snprintf(recs[0].type, sizeof recs[0].type, "SRV");
    snprintf(recs[0].rdata, sizeof recs[0].rdata, "0 5 5269 a.example.");
    recs[1] = recs[0];
    snprintf(recs[1].owner, sizeof recs[1].owner, "_xmpps-server._tcp.a.example.");
    snprintf(recs[1].rdata, sizeof recs[1].rdata, "0 5 5270 a.example.");
    for (int i = 2; i < 5; i++) {
        snprintf(recs[i].type, sizeof recs[i].type, "TLSA");
        snprintf(recs[i].owner, sizeof recs[i].owner, "_5269._tcp.a.example.");
    }
    snprintf(recs[2].rdata, sizeof recs[2].rdata, "%s", cur);
    snprintf(recs[3].rdata, sizeof recs[3].rdata, "%s", nxt);
    recs[3].next = 1;
    snprintf(recs[4].rdata, sizeof recs[4].rdata, "%s", nxt);
    recs[4].next = 1;
    snprintf(recs[4].owner, sizeof recs[4].owner, "_5270._tcp.a.example.");

    xf_srv_rec s1 = { 0, 5, 5269, "a.example." };
    xf_dns_result srv_ok = { .status = XF_DNS_NOERROR, .srv = &s1, .n_srv = 1 };
    xf_dns_result srv_none = { .status = XF_DNS_NXDOMAIN };
    const xf_dns_result *srv[4] = { &srv_none, &srv_none, &srv_ok, &srv_none };
    const char *owners[4] = { "_xmpp-client._tcp.a.example.", "_xmpps-client._tcp.a.example.",
                              "_xmpp-server._tcp.a.example.", "_xmpps-server._tcp.a.example." };
    const char *only_cur[] = { cur };
    xf_dns_result t5269, t5270;
    answer_of(&t5269, 1, only_cur, 1);             /* the next key is not there yet */
    memset(&t5270, 0, sizeof t5270);
    t5270.status = XF_DNS_NXDOMAIN;
    const xf_dns_result *tlsa[5] = { NULL, NULL, &t5269, &t5269, &t5270 };
    xf_check_report r;
    xf_check_report_init(&r, "a.example");
    xf_check_records_compare(&r, recs, 5, owners, srv, tlsa, 1);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.items[0].level, XF_CHECK_OK);
    assert_string_equal(r.items[0].subject, "_xmpp-server._tcp.a.example. SRV 0 5 5269 a.example.");
    assert_int_equal(r.items[1].level, XF_CHECK_WARN);       /* xmpps SRV not published */
    assert_non_null(strstr(r.items[1].detail, "not in DNS (NXDOMAIN)"));
    assert_int_equal(r.items[2].level, XF_CHECK_OK);
    assert_string_equal(r.items[2].detail, "in DNS, secure (AD)");
    assert_int_equal(r.items[3].level, XF_CHECK_FAIL);       /* next key missing */
    assert_non_null(strstr(r.items[3].subject, "(next key)"));
    assert_string_equal(r.items[3].detail, "not in DNS (NOERROR: other records only)");
    assert_non_null(strstr(r.items[3].hint, "rollover"));
    assert_int_equal(r.items[4].level, XF_CHECK_FAIL);
    assert_string_equal(r.items[4].detail, "not in DNS (NXDOMAIN)");
    assert_int_equal(xf_check_exit_code(&r), 2);
    xf_check_report_free(&r);
    /* insecure: present, but said to be ignored by peers */
    t5269.ad = 0;
    xf_check_report_init(&r, "a.example");
    xf_check_records_compare(&r, recs + 2, 1, owners, srv, tlsa + 2, 1);
    assert_string_equal(r.items[0].detail, "in DNS, insecure (no AD): peers ignore it");
    xf_check_report_free(&r);
    xf_dns_result_free(&t5269);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_code),
        cmocka_unit_test(test_line),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_proof_levels),
        cmocka_unit_test(test_proof_summary),
        cmocka_unit_test(test_dane),
        cmocka_unit_test(test_posh),
        cmocka_unit_test(test_records_match),
        cmocka_unit_test(test_records_compare),
        cmocka_unit_test(test_cert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
