/* Unit tests for the pure parts of the inbound s2s negotiation: the SASL EXTERNAL
   authzid rule (XEP-0178 §4, spec-digest §10 case 30), what the features offer per
   policy (issue 7 "Inbound"), and proxy/backend_s2s.c, the assertion of a remote domain
   to the backend (its header, the key B = K(T, R, backend id) per XEP-0185, answers
   matched to asserted pairs only, stanzas forwarded only after a valid pair). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "certs/dialback.h"
#include "proxy/backend_s2s.h"
#include "proxy/dnswire.h"
#include "proxy/s2s_in.h"
#include "proxy/srvorder.h"
#include "tenants/policy.h"

static void test_authzid(void **state)
{
    (void)state;
    const char *from = "remote.example";
    assert_int_equal(xf_s2s_in_check_authzid("=", 1, from), 0);
    assert_int_equal(xf_s2s_in_check_authzid(" =\n", 3, from), 0);
    /* base64("remote.example"), also in another case */
    assert_int_equal(xf_s2s_in_check_authzid("cmVtb3RlLmV4YW1wbGU=", 20, from), 0);
    assert_int_equal(xf_s2s_in_check_authzid("UkVNT1RFLmV4YW1wbGU=", 20, from), 0);
    /* base64("evil.example") */
    assert_int_equal(xf_s2s_in_check_authzid("ZXZpbC5leGFtcGxl", 16, from), XF_S2S_AUTHZID_INVALID);
    /* an authzid with no stream from cannot be checked: invalid */
    assert_int_equal(xf_s2s_in_check_authzid("cmVtb3RlLmV4YW1wbGU=", 20, ""), XF_S2S_AUTHZID_INVALID);
    assert_int_equal(xf_s2s_in_check_authzid("", 0, from), XF_S2S_AUTHZID_EMPTY);
    assert_int_equal(xf_s2s_in_check_authzid("  \n", 3, from), XF_S2S_AUTHZID_EMPTY);
    assert_int_equal(xf_s2s_in_check_authzid("!!not base64", 12, from), XF_S2S_AUTHZID_MALFORMED);
    /* base64 of "remote.example\0x": a NUL inside is never a domain */
    assert_int_equal(xf_s2s_in_check_authzid("cmVtb3RlLmV4YW1wbGUAeA==", 24, from),
                     XF_S2S_AUTHZID_MALFORMED);
}

static void test_offer(void **state)
{
    (void)state;
    int ext, db;
    /* encrypted (the default): EXTERNAL only when the certificate proves from */
    xf_s2s_in_offer(XF_FED_ENCRYPTED, 1, 1, 1, &ext, &db);
    assert_true(ext && db);
    xf_s2s_in_offer(XF_FED_ENCRYPTED, 1, 1, 0, &ext, &db);
    assert_true(!ext && db);
    xf_s2s_in_offer(XF_FED_ENCRYPTED, 1, 0, 0, &ext, &db);
    assert_true(!ext && db);
    /* open: the same */
    xf_s2s_in_offer(XF_FED_OPEN, 1, 0, 0, &ext, &db);
    assert_true(!ext && db);
    /* trusted: dialback only over a certificate (XEP-0344 §2.4); none -> nothing */
    xf_s2s_in_offer(XF_FED_TRUSTED, 1, 1, 1, &ext, &db);
    assert_true(ext && db);
    xf_s2s_in_offer(XF_FED_TRUSTED, 1, 1, 0, &ext, &db);
    assert_true(!ext && db);
    xf_s2s_in_offer(XF_FED_TRUSTED, 1, 0, 0, &ext, &db);
    assert_true(!ext && !db);
    /* without TLS encrypted refuses everything, open still allows dialback */
    xf_s2s_in_offer(XF_FED_ENCRYPTED, 0, 0, 0, &ext, &db);
    assert_true(!ext && !db);
    xf_s2s_in_offer(XF_FED_OPEN, 0, 0, 0, &ext, &db);
    assert_true(!ext && db);
}

/* ---- backend_s2s with recording callbacks */

struct rec {
    char sent[8192];
    size_t nsent;
    char fwd[8192];
    size_t nfwd;
    int pairs, last_type;
    char last_remote[64], last_local[64];
    int failed;
    char reason[200];
};

static int r_send(void *ud, const char *d, size_t n)
{
    struct rec *r = ud;
    assert_true(r->nsent + n < sizeof(r->sent));
    memcpy(r->sent + r->nsent, d, n);
    r->nsent += n;
    r->sent[r->nsent] = '\0';
    return 0;
}

static int r_forward(void *ud, const char *d, size_t n)
{
    struct rec *r = ud;
    assert_true(r->nfwd + n < sizeof(r->fwd));
    memcpy(r->fwd + r->nfwd, d, n);
    r->nfwd += n;
    r->fwd[r->nfwd] = '\0';
    return 0;
}

static int r_pair(void *ud, const char *remote, const char *local, enum xf_db_type t,
                  enum xf_db_error e)
{
    struct rec *r = ud;
    (void)e;
    r->pairs++;
    r->last_type = (int)t;
    snprintf(r->last_remote, sizeof(r->last_remote), "%s", remote);
    snprintf(r->last_local, sizeof(r->last_local), "%s", local);
    return 0;
}

static void r_fail(void *ud, const char *reason)
{
    struct rec *r = ud;
    r->failed++;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

static const xf_bs2s_ops ops = {r_send, r_forward, r_pair, r_fail};

static const char BHDR[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams' "
    "from='a.example' id='BID-1' version='1.0'>";
static const char BFEAT[] =
    "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
    "</stream:features>";

static void feed(xf_bs2s *b, const char *s)
{
    /* byte by byte: the module must not depend on how reads are split */
    for (size_t i = 0; s[i]; i++)
        assert_int_equal(xf_bs2s_input(b, s + i, 1), 0);
}

static void test_bs2s_assert(void **state)
{
    (void)state;
    struct rec r;
    memset(&r, 0, sizeof(r));
    xf_bs2s *b = xf_bs2s_new("sekrit", "remote.example", "a.example", 65536, &ops, &r);
    assert_non_null(b);
    assert_int_equal(xf_bs2s_start(b), 0);
    assert_non_null(strstr(r.sent, "from='remote.example' to='a.example' version='1.0'"));
    assert_non_null(strstr(r.sent, "xmlns:db='jabber:server:dialback'"));
    r.nsent = 0;
    /* the header alone: no db:result yet (features first on a 1.0 stream) */
    feed(b, BHDR);
    assert_int_equal(r.nsent, 0);
    assert_string_equal(xf_bs2s_backend_id(b), "BID-1");
    feed(b, BFEAT);
    char key[XF_DIALBACK_KEY_LEN + 1], want[512];
    assert_int_equal(xf_dialback_key("sekrit", "a.example", "remote.example", "BID-1", key), 0);
    snprintf(want, sizeof(want), "<db:result from='remote.example' to='a.example'>%s</db:result>",
             key);
    assert_string_equal(r.sent, want);
    /* a stanza before any valid answer is not forwarded */
    feed(b, "<message from='u@a.example' to='x@remote.example'><body>early</body></message>");
    assert_int_equal(r.nfwd, 0);
    /* an unsolicited answer (another pair) is dropped; the right one counts */
    feed(b, "<db:result from='a.example' to='other.example' type='valid'/>");
    assert_int_equal(r.pairs, 0);
    assert_int_equal(xf_bs2s_valid_count(b), 0);
    feed(b, "<db:result from='a.example' to='remote.example' type='valid'/>");
    assert_int_equal(r.pairs, 1);
    assert_int_equal(r.last_type, XF_DB_TYPE_VALID);
    assert_string_equal(r.last_remote, "remote.example");
    assert_string_equal(r.last_local, "a.example");
    assert_true(xf_bs2s_pair_valid(b, "remote.example", "a.example"));
    /* a repeated answer changes nothing */
    feed(b, "<db:result from='a.example' to='remote.example' type='invalid'/>");
    assert_int_equal(r.pairs, 1);
    /* stanzas now go through whole, dialback does not */
    static const char msg[] = "<message from='u@a.example' to='x@remote.example'><body>hi</body></message>";
    feed(b, "\n");
    feed(b, msg);
    assert_string_equal(r.fwd, msg);
    /* a piggybacked pair: its db:result goes out at once, with its own key */
    r.nsent = 0;
    assert_int_equal(xf_bs2s_assert(b, "piggy.example", "a.example"), 0);
    assert_int_equal(xf_bs2s_assert(b, "piggy.example", "a.example"), -2);
    assert_int_equal(xf_dialback_key("sekrit", "a.example", "piggy.example", "BID-1", key), 0);
    assert_non_null(strstr(r.sent, key));
    feed(b, "<db:result from='a.example' to='piggy.example' type='invalid'/>");
    assert_int_equal(r.pairs, 2);
    assert_int_equal(r.last_type, XF_DB_TYPE_INVALID);
    assert_false(xf_bs2s_pair_valid(b, "piggy.example", "a.example"));
    assert_int_equal(r.failed, 0);
    /* the backend's stream error ends it */
    static const char err[] = "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:"
                              "xmpp-streams'/></stream:error>";
    assert_int_equal(xf_bs2s_input(b, err, sizeof(err) - 1), -1);
    assert_int_equal(r.failed, 1);
    assert_non_null(strstr(r.reason, "host-unknown"));
    assert_int_equal(xf_bs2s_input(b, "x", 1), -1);
    xf_bs2s_free(b);
}

static void test_bs2s_refusals(void **state)
{
    (void)state;
    struct rec r;
    memset(&r, 0, sizeof(r));
    assert_null(xf_bs2s_new("", "r.example", "a.example", 0, &ops, &r));
    assert_null(xf_bs2s_new("s", "", "a.example", 0, &ops, &r));
    assert_null(xf_bs2s_new("s", "bad domain", "a.example", 0, &ops, &r));
    /* a backend header without an id cannot be answered with a key */
    xf_bs2s *b = xf_bs2s_new("s", "r.example", "a.example", 65536, &ops, &r);
    assert_non_null(b);
    assert_int_equal(xf_bs2s_start(b), 0);
    const char *h = "<stream:stream xmlns='jabber:server' xmlns:stream="
                    "'http://etherx.jabber.org/streams' version='1.0'>";
    assert_int_equal(xf_bs2s_input(b, h, strlen(h)), -1);
    assert_int_equal(r.failed, 1);
    xf_bs2s_free(b);
    /* a pre-1.0 stream (no version): the db:result goes right after the header */
    memset(&r, 0, sizeof(r));
    b = xf_bs2s_new("s", "r.example", "a.example", 65536, &ops, &r);
    assert_int_equal(xf_bs2s_start(b), 0);
    r.nsent = 0;
    h = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns:db='jabber:server:dialback' id='old'>";
    assert_int_equal(xf_bs2s_input(b, h, strlen(h)), 0);
    assert_non_null(strstr(r.sent, "<db:result from='r.example' to='a.example'>"));
    /* the backend closing its stream is a failure */
    assert_int_equal(xf_bs2s_input(b, "</stream:stream>", 16), -1);
    assert_int_equal(r.failed, 1);
    xf_bs2s_free(b);
}


/* An SRV answer with n records (targets t[i], port 5269 + i). */
static xf_dns_result srv_answer(int status, int ad, xf_srv_rec *recs, size_t n)
{
    xf_dns_result r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.ad = ad;
    r.srv = recs;
    r.n_srv = n;
    return r;
}

static void test_dane_targets(void **state)
{
    (void)state;
    xf_srv_rec a[3] = { { 5, 0, 5270, "XMPP.Remote.example." }, { 10, 0, 5270, "b.remote.example" },
                        { 20, 0, 5270, "c.remote.example" } };
    xf_srv_rec b[2] = { { 5, 0, 5269, "xmpp.remote.example" }, { 5, 0, 5270, "xmpp.remote.example" } };
    xf_srv_rec dot[1] = { { 0, 0, 0, "." } };
    xf_srv_target t[4];
    char why[160];
    xf_dns_result s1 = srv_answer(XF_DNS_NOERROR, 1, a, 3), s2 = srv_answer(XF_DNS_NOERROR, 1, b, 2);
    /* secure answers: every target, lower case without the dot, duplicates (same host
       and port) dropped, xmpps first; bounded by max */
    assert_int_equal(xf_s2s_in_dane_targets(1, &s1, &s2, t, 4, why, sizeof(why)), 4);
    assert_string_equal(t[0].host, "xmpp.remote.example");
    assert_int_equal(t[0].port, 5270);
    assert_string_equal(t[3].host, "xmpp.remote.example");
    assert_int_equal(t[3].port, 5269);
    assert_int_equal(xf_s2s_in_dane_targets(1, &s1, &s2, t, 2, why, sizeof(why)), 2);
    /* not trusted: absent, never asked */
    assert_int_equal(xf_s2s_in_dane_targets(0, &s1, &s2, t, 4, why, sizeof(why)), XF_S2S_DANE_ABSENT);
    assert_non_null(strstr(why, "not trusted"));
    /* one answer insecure: only the secure one's targets */
    xf_dns_result in1 = srv_answer(XF_DNS_NOERROR, 0, a, 3);
    assert_int_equal(xf_s2s_in_dane_targets(1, &in1, &s2, t, 4, why, sizeof(why)), 2);
    assert_int_equal(t[0].port, 5269);
    assert_int_equal(t[1].port, 5270);
    assert_int_equal(t[0].tls, XF_SRV_TLS_STARTTLS);
    /* both insecure: absent (SRV insecure) */
    xf_dns_result in2 = srv_answer(XF_DNS_NOERROR, 0, b, 2);
    assert_int_equal(xf_s2s_in_dane_targets(1, &in1, &in2, t, 4, why, sizeof(why)), XF_S2S_DANE_ABSENT);
    assert_non_null(strstr(why, "insecure"));
    /* bogus (SERVFAIL) or indeterminate: error, not absent, even beside a secure set */
    xf_dns_result sf = srv_answer(XF_DNS_SERVFAIL, 0, NULL, 0), to = srv_answer(XF_DNS_TIMEOUT, 0, NULL, 0);
    assert_int_equal(xf_s2s_in_dane_targets(1, &sf, &s2, t, 4, why, sizeof(why)), XF_S2S_DANE_ERROR);
    assert_non_null(strstr(why, "bogus"));
    assert_int_equal(xf_s2s_in_dane_targets(1, &s1, &to, t, 4, why, sizeof(why)), XF_S2S_DANE_ERROR);
    /* no SRV at all: the fallback (_5269._tcp.FROM) */
    xf_dns_result nx = srv_answer(XF_DNS_NXDOMAIN, 1, NULL, 0), nd = srv_answer(XF_DNS_NODATA, 1, NULL, 0);
    assert_int_equal(xf_s2s_in_dane_targets(1, &nx, &nd, t, 4, why, sizeof(why)), XF_S2S_DANE_FALLBACK);
    /* only "." targets: no service, nothing to ask */
    xf_dns_result d = srv_answer(XF_DNS_NOERROR, 1, dot, 1);
    assert_int_equal(xf_s2s_in_dane_targets(1, &d, &nd, t, 4, why, sizeof(why)), XF_S2S_DANE_ABSENT);
}

static void test_dane_merge(void **state)
{
    (void)state;
    xf_proof acc = { .result = XF_PROOF_ABSENT, .reason = "start" };
    xf_proof err = { .result = XF_PROOF_ERROR, .reason = "bogus" };
    xf_proof inv = { .result = XF_PROOF_INVALID, .reason = "mismatch" };
    xf_proof ok = { .result = XF_PROOF_VALID, .reason = "match" };
    xf_proof abs = { .result = XF_PROOF_ABSENT, .reason = "none" };
    xf_s2s_in_dane_merge(&acc, &abs);
    assert_string_equal(acc.reason, "start");
    xf_s2s_in_dane_merge(&acc, &err);            /* bogus is never read as absent */
    assert_int_equal(acc.result, XF_PROOF_ERROR);
    xf_s2s_in_dane_merge(&acc, &abs);
    assert_int_equal(acc.result, XF_PROOF_ERROR);
    xf_s2s_in_dane_merge(&acc, &inv);
    assert_int_equal(acc.result, XF_PROOF_INVALID);
    xf_s2s_in_dane_merge(&acc, &err);
    assert_string_equal(acc.reason, "mismatch");
    xf_s2s_in_dane_merge(&acc, &ok);             /* one matching target proves */
    assert_int_equal(acc.result, XF_PROOF_VALID);
    xf_s2s_in_dane_merge(&acc, &inv);
    assert_string_equal(acc.reason, "match");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authzid),
        cmocka_unit_test(test_offer),
        cmocka_unit_test(test_dane_targets),
        cmocka_unit_test(test_dane_merge),
        cmocka_unit_test(test_bs2s_assert),
        cmocka_unit_test(test_bs2s_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
