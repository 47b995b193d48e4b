/* Unit tests for proxy/s2s.c: s2s element writers, the dialback bridge's answer to a
   <db:verify/>, and the per-stream domain pair table (spec-digest §7.1, §10 cases
   25–28). Written elements are checked byte-exact and re-read with the project's own
   scanner, so a writer that produced malformed XML would fail here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "certs/dialback.h"
#include "proxy/s2s.h"
#include "proxy/xmlstream.h"

/* Parses `elem` as the first element of a jabber:server stream with the db prefix
   declared; returns the event type of the element and fills *ev. The event points into
   the scanner, which lives until the next call (one static scanner). */
static xf_xml *scanner;

static int scan_one(const char *elem, xf_xml_event *ev)
{
    static const char hdr[] =
        "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
        "xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>";
    xf_xml_free(scanner);
    xf_xml *x = scanner = xf_xml_new(0, 0);
    assert_non_null(x);
    assert_int_equal(xf_xml_push(x, hdr, strlen(hdr)), 0);
    assert_int_equal(xf_xml_next(x, ev), XF_XML_HEADER);
    assert_int_equal(xf_xml_push(x, elem, strlen(elem)), 0);
    /* a trailing element makes sure the scanner has seen the end of `elem` */
    assert_int_equal(xf_xml_push(x, "<x/>", 4), 0);
    return xf_xml_next(x, ev);
}

static void test_features(void **state)
{
    (void)state;
    char out[512];
    int n = xf_s2s_write_features(out, sizeof(out), 1, 1);
    assert_true(n > 0);
    assert_string_equal(out,
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        "<mechanism>EXTERNAL</mechanism></mechanisms>"
        "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>");
    xf_xml_event ev;
    assert_int_equal(scan_one(out, &ev), XF_XML_ELEMENT);
    assert_string_equal(ev.name, "features");
    assert_int_equal(ev.n_children, 2);
    assert_string_equal(ev.children[0].name, "mechanisms");   /* EXTERNAL listed first */
    assert_string_equal(ev.children[1].ns, XF_NS_DIALBACK_FEATURE);

    n = xf_s2s_write_features(out, sizeof(out), 0, 1);
    assert_true(n > 0);
    assert_null(strstr(out, "EXTERNAL"));
    assert_non_null(strstr(out, "<errors/>"));
    n = xf_s2s_write_features(out, sizeof(out), 0, 0);
    assert_string_equal(out, "<stream:features></stream:features>");
    assert_int_equal(xf_s2s_write_features(out, 20, 1, 1), -1);   /* too small */

    /* Before TLS (policy open): <starttls/> offered, never required. */
    n = xf_s2s_write_plain_features(out, sizeof(out), 1);
    assert_true(n > 0);
    assert_string_equal(out,
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>");
    assert_int_equal(scan_one(out, &ev), XF_XML_ELEMENT);
    assert_int_equal(ev.n_children, 2);
    assert_string_equal(ev.children[0].name, "starttls");
    assert_null(strstr(out, "required"));
    n = xf_s2s_write_plain_features(out, sizeof(out), 0);
    assert_string_equal(out, "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                             "</stream:features>");
    assert_int_equal(xf_s2s_write_plain_features(out, 30, 1), -1);
}

static void test_db_requests(void **state)
{
    (void)state;
    char out[512];
    int n = xf_s2s_write_db_result_request(out, sizeof(out), NULL, "capulet.example",
                                           "montague.example", "abc123");
    assert_int_equal(n, (int)strlen(out));
    assert_string_equal(out, "<db:result from='capulet.example' to='montague.example'>abc123</db:result>");
    xf_xml_event ev;
    assert_int_equal(scan_one(out, &ev), XF_XML_ELEMENT);
    assert_string_equal(ev.name, "result");
    assert_string_equal(ev.ns_uri, XF_NS_DIALBACK);

    n = xf_s2s_write_db_verify_request(out, sizeof(out), "db", "montague.example",
                                       "capulet.example", "SID1", "abc123");
    assert_true(n > 0);
    assert_string_equal(out, "<db:verify from='montague.example' to='capulet.example' id='SID1'>"
                             "abc123</db:verify>");
    /* another declared prefix is echoed (XEP-0220 §2.1) */
    n = xf_s2s_write_db_result_request(out, sizeof(out), "dbk", "a", "b", "k");
    assert_string_equal(out, "<dbk:result from='a' to='b'>k</dbk:result>");
    /* attribute values are escaped: a peer's from cannot break out of the attribute */
    n = xf_s2s_write_db_result_request(out, sizeof(out), NULL, "a'/><x", "b", "k");
    assert_true(n > 0);
    assert_non_null(strstr(out, "from='a&apos;/&gt;&lt;x'"));
    /* missing pieces and a prefix that is not a name are refused */
    assert_int_equal(xf_s2s_write_db_result_request(out, sizeof(out), NULL, "", "b", "k"), -1);
    assert_int_equal(xf_s2s_write_db_result_request(out, sizeof(out), NULL, "a", NULL, "k"), -1);
    assert_int_equal(xf_s2s_write_db_result_request(out, sizeof(out), NULL, "a", "b", ""), -1);
    assert_int_equal(xf_s2s_write_db_verify_request(out, sizeof(out), NULL, "a", "b", NULL, "k"), -1);
    assert_int_equal(xf_s2s_write_db_verify_request(out, sizeof(out), NULL, "a", "b", "", "k"), -1);
    assert_int_equal(xf_s2s_write_db_result_request(out, sizeof(out), "d b", "a", "b", "k"), -1);
    assert_int_equal(xf_s2s_write_db_result_request(out, sizeof(out), "x'", "a", "b", "k"), -1);
    assert_string_equal(out, "");
}

static void test_db_answers(void **state)
{
    (void)state;
    char out[512];
    assert_true(xf_s2s_write_db_answer(out, sizeof(out), NULL, 1, "capulet.example",
                                       "montague.example", "SID1", XF_DB_TYPE_VALID,
                                       XF_DB_ERR_NONE) > 0);
    assert_string_equal(out, "<db:verify from='capulet.example' to='montague.example' id='SID1' "
                             "type='valid'/>");
    assert_true(xf_s2s_write_db_answer(out, sizeof(out), NULL, 0, "m", "c", NULL, XF_DB_TYPE_INVALID,
                                       XF_DB_ERR_NONE) > 0);
    assert_string_equal(out, "<db:result from='m' to='c' type='invalid'/>");
    assert_true(xf_s2s_write_db_answer(out, sizeof(out), NULL, 0, "m", "c", NULL, XF_DB_TYPE_ERROR,
                                       XF_DB_ERR_ITEM_NOT_FOUND) > 0);
    assert_string_equal(out, "<db:result from='m' to='c' type='error'><error type='cancel'>"
                             "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                             "</error></db:result>");
    xf_xml_event ev;
    assert_int_equal(scan_one(out, &ev), XF_XML_ELEMENT);
    assert_int_equal(ev.n_children, 1);
    assert_string_equal(ev.children[0].name, "error");
    assert_true(xf_s2s_write_db_answer(out, sizeof(out), NULL, 0, "m", "c", NULL, XF_DB_TYPE_ERROR,
                                       XF_DB_ERR_RESOURCE_CONSTRAINT) > 0);
    assert_non_null(strstr(out, "<error type='wait'><resource-constraint "));
    /* a verify answer needs the id; an error needs a condition */
    assert_int_equal(xf_s2s_write_db_answer(out, sizeof(out), NULL, 1, "m", "c", NULL,
                                            XF_DB_TYPE_VALID, XF_DB_ERR_NONE), -1);
    assert_int_equal(xf_s2s_write_db_answer(out, sizeof(out), NULL, 0, "m", "c", NULL,
                                            XF_DB_TYPE_ERROR, XF_DB_ERR_NONE), -1);
    assert_int_equal(xf_s2s_write_db_answer(out, sizeof(out), NULL, 0, "m", "c", NULL,
                                            (enum xf_db_type)9, XF_DB_ERR_NONE), -1);
    assert_string_equal(xf_db_error_name(XF_DB_ERR_FORBIDDEN), "forbidden");
    assert_string_equal(xf_db_error_name((enum xf_db_error)99), "undefined-condition");
}

static void test_sasl_external(void **state)
{
    (void)state;
    char out[256];
    assert_true(xf_s2s_write_sasl_external(out, sizeof(out), NULL) > 0);
    assert_string_equal(out, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>");
    assert_true(xf_s2s_write_sasl_external(out, sizeof(out), "example.org") > 0);
    /* base64("example.org") */
    assert_string_equal(out, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>"
                             "ZXhhbXBsZS5vcmc=</auth>");
    assert_int_equal(xf_s2s_write_sasl_external(out, 70, "example.org"), -1);
}

static int hosted(void *ud, const char *d)
{
    return strcmp(d, (const char *)ud) == 0;
}

/* The bridge: the remote R asks us whether the key our tenant A sent on R's stream SID is
   ours. A key made for another stream id, other domains, or swapped from/to is invalid. */
static void test_answer_verify(void **state)
{
    (void)state;
    const char *secret = "s3cr3tf0rd14lb4ck";
    char key[XF_DIALBACK_KEY_LEN + 1];
    /* XEP-0185 vector: receiving xmpp.example.com, originating example.org */
    assert_int_equal(xf_dialback_key(secret, "xmpp.example.com", "example.org", "D60000229F", key), 0);
    assert_string_equal(key, "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643");
    enum xf_db_error err;
    /* db:verify from = the receiving server, to = our tenant */
    assert_int_equal(xf_s2s_answer_verify(secret, hosted, "example.org", "xmpp.example.com",
                                          "example.org", "D60000229F", key, strlen(key), &err),
                     XF_DB_TYPE_VALID);
    assert_int_equal(err, XF_DB_ERR_NONE);
    /* with whitespace around it and in upper case (spec-digest §10 case 25) */
    char padded[100];
    snprintf(padded, sizeof(padded), "\n  %s \n", "37C69B1CF07A3F67C04A5EF5902FA5114F2C76FE4A2686482BA5B89323075643");
    assert_int_equal(xf_s2s_answer_verify(secret, hosted, "example.org", "xmpp.example.com",
                                          "example.org", "D60000229F", padded, strlen(padded), &err),
                     XF_DB_TYPE_VALID);
    /* from/to swapped */
    assert_int_equal(xf_s2s_answer_verify(secret, NULL, NULL, "example.org", "xmpp.example.com",
                                          "D60000229F", key, strlen(key), &err),
                     XF_DB_TYPE_INVALID);
    /* another stream id */
    assert_int_equal(xf_s2s_answer_verify(secret, hosted, "example.org", "xmpp.example.com",
                                          "example.org", "D60000229G", key, strlen(key), &err),
                     XF_DB_TYPE_INVALID);
    /* another secret (another cluster) */
    assert_int_equal(xf_s2s_answer_verify("other", hosted, "example.org", "xmpp.example.com",
                                          "example.org", "D60000229F", key, strlen(key), &err),
                     XF_DB_TYPE_INVALID);
    /* a truncated key */
    assert_int_equal(xf_s2s_answer_verify(secret, hosted, "example.org", "xmpp.example.com",
                                          "example.org", "D60000229F", key, 63, &err),
                     XF_DB_TYPE_INVALID);
    /* `to` not hosted here: item-not-found, the stream stays (spec-digest §10 case 27) */
    assert_int_equal(xf_s2s_answer_verify(secret, hosted, "example.net", "xmpp.example.com",
                                          "example.org", "D60000229F", key, strlen(key), &err),
                     XF_DB_TYPE_ERROR);
    assert_int_equal(err, XF_DB_ERR_ITEM_NOT_FOUND);
    /* missing attributes: the caller answers improper-addressing */
    assert_int_equal(xf_s2s_answer_verify(secret, hosted, "example.org", "xmpp.example.com",
                                          "example.org", NULL, key, strlen(key), &err), -1);
    assert_int_equal(xf_s2s_answer_verify(secret, hosted, "example.org", "", "example.org",
                                          "D60000229F", key, strlen(key), &err), -1);
}

static void test_pairs(void **state)
{
    (void)state;
    xf_pairs *p = xf_pairs_new(3);
    assert_non_null(p);
    /* an answer nobody asked for authorises nothing (case 26) */
    assert_int_equal(xf_pairs_answer(p, "a.example", "remote.example", XF_DB_TYPE_VALID), 0);
    assert_int_equal(xf_pairs_state(p, "a.example", "remote.example"), 0);
    assert_int_equal(xf_pairs_add(p, "a.example", "remote.example"), 0);
    assert_int_equal(xf_pairs_add(p, "A.Example", "remote.example."), -2);   /* same pair */
    assert_int_equal(xf_pairs_state(p, "a.example", "remote.example"), XF_PAIR_PENDING);
    /* an answer for another pair on this stream does not touch this one */
    assert_int_equal(xf_pairs_answer(p, "b.example", "remote.example", XF_DB_TYPE_VALID), 0);
    assert_int_equal(xf_pairs_answer(p, "a.example", "REMOTE.example", XF_DB_TYPE_VALID), 1);
    assert_int_equal(xf_pairs_state(p, "a.example", "remote.example"), XF_PAIR_VALID);
    /* a repeated answer is dropped and cannot flip the state */
    assert_int_equal(xf_pairs_answer(p, "a.example", "remote.example", XF_DB_TYPE_INVALID), 0);
    assert_int_equal(xf_pairs_state(p, "a.example", "remote.example"), XF_PAIR_VALID);
    /* piggybacked second pair: invalid */
    assert_int_equal(xf_pairs_add(p, "a.example", "forged.example"), 0);
    assert_int_equal(xf_pairs_answer(p, "a.example", "forged.example", XF_DB_TYPE_INVALID), 1);
    assert_int_equal(xf_pairs_state(p, "a.example", "forged.example"), XF_PAIR_INVALID);
    assert_int_equal(xf_pairs_valid_count(p), 1);
    /* SASL EXTERNAL validates directly */
    assert_int_equal(xf_pairs_set_valid(p, "b.example", "remote.example"), 0);
    assert_int_equal(xf_pairs_count(p), 3);
    /* bounded */
    assert_int_equal(xf_pairs_add(p, "c.example", "remote.example"), -1);
    assert_int_equal(xf_pairs_add(p, "", "remote.example"), -1);

    /* stanza checks (case 28) */
    assert_null(xf_pairs_check_stanza(p, "juliet@remote.example/balcony", "romeo@a.example"));
    assert_null(xf_pairs_check_stanza(p, "remote.example", "B.EXAMPLE"));
    assert_string_equal(xf_pairs_check_stanza(p, "x@forged.example", "romeo@a.example"), "invalid-from");
    assert_string_equal(xf_pairs_check_stanza(p, "x@other.example", "romeo@a.example"), "invalid-from");
    assert_string_equal(xf_pairs_check_stanza(p, "juliet@remote.example", "x@c.example"), "host-unknown");
    assert_string_equal(xf_pairs_check_stanza(p, NULL, "romeo@a.example"), "improper-addressing");
    assert_string_equal(xf_pairs_check_stanza(p, "juliet@remote.example", ""), "improper-addressing");
    assert_string_equal(xf_pairs_check_stanza(p, "juliet@/x", "romeo@a.example"), "improper-addressing");
    /* '@' inside the resource is not the domain separator */
    assert_null(xf_pairs_check_stanza(p, "remote.example/res@ource", "a.example"));
    xf_pairs_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_db_requests),
        cmocka_unit_test(test_db_answers),
        cmocka_unit_test(test_sasl_external),
        cmocka_unit_test(test_answer_verify),
        cmocka_unit_test(test_pairs),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    xf_xml_free(scanner);
    return failed;
}
