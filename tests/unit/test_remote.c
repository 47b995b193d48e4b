/* Unit tests for the pure parts of proxy/remote.c and proxy/outbound.c: what a remote's
   <stream:features/> offers (STARTTLS, SASL EXTERNAL, dialback — RFC 6120 §4.3.2, §5.3.1,
   §6.3.3, XEP-0220 §2.1), the dialback error given to the backend for a refusal
   (XEP-0220 §2.4), and which peers an outbound listener serves (no open relay). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>
#include "proxy/outbound.h"
#include "proxy/remote.h"
#include "proxy/xmlstream.h"

static xf_xml *scanner;
static char held[8192];

/* Scans `elem` after a server stream header; returns the element event (pointing into
   the static scanner) and leaves its bytes in held[0..*len). */
static int scan_features(const char *elem, xf_xml_event *ev, size_t *len)
{
    static const char hdr[] =
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        "from='r.example' id='x' version='1.0'>";
    xf_xml_free(scanner);
    scanner = xf_xml_new(0, 0);
    assert_non_null(scanner);
    char all[8192];
    snprintf(all, sizeof(all), "%s%s<x/>", hdr, elem);
    assert_int_equal(xf_xml_push(scanner, all, strlen(all)), 0);
    assert_int_equal(xf_xml_next(scanner, ev), XF_XML_HEADER);
    int t = xf_xml_next(scanner, ev);
    if (t == XF_XML_ELEMENT) {
        *len = (size_t)(ev->span.end - ev->span.start);
        memcpy(held, all + ev->span.start, *len);
    }
    return t;
}

static void parse(const char *elem, xf_remote_features *f, int expect_rc)
{
    xf_xml_event ev;
    size_t len = 0;
    assert_int_equal(scan_features(elem, &ev, &len), XF_XML_ELEMENT);
    assert_int_equal(xf_remote_parse_features(&ev, held, len, f), expect_rc);
}

static void test_features_prosody_type6(void **state)
{
    (void)state;
    xf_remote_features f;
    /* Prosody 0.12 after TLS, with a client certificate it accepts */
    parse("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
          "<mechanism>EXTERNAL</mechanism></mechanisms></stream:features>", &f, 0);
    assert_int_equal(f.external, 1);
    assert_int_equal(f.mechanisms, 1);
    assert_int_equal(f.dialback, 0);
    assert_int_equal(f.starttls, 0);
}

static void test_features_starttls_and_dialback(void **state)
{
    (void)state;
    xf_remote_features f;
    parse("<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
          "</starttls><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
          "</stream:features>", &f, 0);
    assert_int_equal(f.starttls, 1);
    assert_int_equal(f.dialback, 1);
    assert_int_equal(f.external, 0);
    assert_int_equal(f.mechanisms, 0);
}

static void test_features_wrong_namespaces_ignored(void **state)
{
    (void)state;
    xf_remote_features f;
    /* right names, wrong namespaces: nothing is offered */
    parse("<stream:features><starttls xmlns='urn:example'/><dialback xmlns='jabber:server:dialback'/>"
          "<mechanisms xmlns='urn:example'><mechanism>EXTERNAL</mechanism></mechanisms>"
          "</stream:features>", &f, 0);
    assert_int_equal(f.starttls + f.dialback + f.external + f.mechanisms, 0);
    /* EXTERNAL only counts inside the SASL mechanisms */
    parse("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
          "<mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms>"
          "<x>EXTERNAL</x></stream:features>", &f, 0);
    assert_int_equal(f.mechanisms, 1);
    assert_int_equal(f.external, 0);
}

static void test_features_not_features(void **state)
{
    (void)state;
    xf_remote_features f;
    parse("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", &f, -1);
    assert_int_equal(xf_remote_parse_features(NULL, "", 0, &f), -1);
}

static void test_mechanisms_have(void **state)
{
    (void)state;
    const char *m = "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                    "<mechanism>PLAIN</mechanism><mechanism>\n  EXTERNAL \n</mechanism>"
                    "</mechanisms>";
    assert_int_equal(xf_remote_mechanisms_have(m, strlen(m), "EXTERNAL"), 1);
    assert_int_equal(xf_remote_mechanisms_have(m, strlen(m), "PLAIN"), 1);
    assert_int_equal(xf_remote_mechanisms_have(m, strlen(m), "SCRAM-SHA-1"), 0);
    /* a prefixed element counts; a longer name or a prefix of the name does not */
    const char *p = "<s:mechanisms xmlns:s='urn:ietf:params:xml:ns:xmpp-sasl'>"
                    "<s:mechanism>EXTERNAL</s:mechanism></s:mechanisms>";
    assert_int_equal(xf_remote_mechanisms_have(p, strlen(p), "EXTERNAL"), 1);
    const char *q = "<mechanisms><mechanism>EXTERNALX</mechanism><mechanisms2>EXTERNAL"
                    "</mechanisms2><mechanism/>EXTERNAL</mechanisms>";
    assert_int_equal(xf_remote_mechanisms_have(q, strlen(q), "EXTERNAL"), 0);
    assert_int_equal(xf_remote_mechanisms_have(q, strlen(q), "EXTERNA"), 0);
    /* truncated input never reads past len */
    assert_int_equal(xf_remote_mechanisms_have(m, 60, "EXTERNAL"), 0);
    assert_int_equal(xf_remote_mechanisms_have("<mechanism", 10, "EXTERNAL"), 0);
    assert_int_equal(xf_remote_mechanisms_have("", 0, "EXTERNAL"), 0);
}

static void test_condition_error(void **state)
{
    (void)state;
    /* the policy's refusal conditions (tenants/policy.h) */
    assert_int_equal(xf_remote_condition_error("policy-violation"), XF_DB_ERR_POLICY_VIOLATION);
    assert_int_equal(xf_remote_condition_error("not-authorized"), XF_DB_ERR_NOT_AUTHORIZED);
    assert_int_equal(xf_remote_condition_error("forbidden"), XF_DB_ERR_FORBIDDEN);
    assert_int_equal(xf_remote_condition_error("remote-connection-failed"),
                     XF_DB_ERR_REMOTE_CONNECTION_FAILED);
    /* a remote's stream errors */
    assert_int_equal(xf_remote_condition_error("host-unknown"), XF_DB_ERR_ITEM_NOT_FOUND);
    assert_int_equal(xf_remote_condition_error("connection-timeout"), XF_DB_ERR_REMOTE_SERVER_TIMEOUT);
    /* anything else: the connection failed */
    assert_int_equal(xf_remote_condition_error("see-other-host"), XF_DB_ERR_REMOTE_CONNECTION_FAILED);
    assert_int_equal(xf_remote_condition_error(NULL), XF_DB_ERR_REMOTE_CONNECTION_FAILED);
    assert_string_equal(xf_db_error_name(xf_remote_condition_error("not-authorized")), "not-authorized");
}

static int allowed4(const char *a, int pub)
{
    struct sockaddr_in in;
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, a, &in.sin_addr), 1);
    return xf_outbound_peer_allowed((struct sockaddr *)&in, pub);
}

static int allowed6(const char *a, int pub)
{
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, a, &in6.sin6_addr), 1);
    return xf_outbound_peer_allowed((struct sockaddr *)&in6, pub);
}

static void test_peer_allowed(void **state)
{
    (void)state;
    const char *ok4[] = {"127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1", "172.31.255.255",
                         "192.168.1.1", "100.64.0.1", "100.127.255.254", "169.254.1.1"};
    const char *no4[] = {"8.8.8.8", "172.15.255.255", "172.32.0.1", "192.169.0.1",
                         "100.63.255.255", "100.128.0.1", "11.0.0.1", "0.0.0.0"};
    for (size_t i = 0; i < sizeof(ok4) / sizeof(*ok4); i++)
        assert_int_equal(allowed4(ok4[i], 0), 1);
    for (size_t i = 0; i < sizeof(no4) / sizeof(*no4); i++) {
        assert_int_equal(allowed4(no4[i], 0), 0);
        assert_int_equal(allowed4(no4[i], 1), 1);       /* allow_public */
    }
    assert_int_equal(allowed6("::1", 0), 1);
    assert_int_equal(allowed6("fd00:1ab::5", 0), 1);
    assert_int_equal(allowed6("fc00::1", 0), 1);
    assert_int_equal(allowed6("fe80::1", 0), 1);
    assert_int_equal(allowed6("::ffff:127.0.0.1", 0), 1);
    assert_int_equal(allowed6("::ffff:192.168.0.2", 0), 1);
    assert_int_equal(allowed6("::ffff:8.8.8.8", 0), 0);
    assert_int_equal(allowed6("2001:db8::1", 0), 0);
    assert_int_equal(allowed6("fec0::1", 0), 0);
    assert_int_equal(allowed6("::", 0), 0);
    assert_int_equal(allowed6("2001:db8::1", 1), 1);
    struct sockaddr other = {.sa_family = AF_UNIX};
    assert_int_equal(xf_outbound_peer_allowed(&other, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features_prosody_type6),
        cmocka_unit_test(test_features_starttls_and_dialback),
        cmocka_unit_test(test_features_wrong_namespaces_ignored),
        cmocka_unit_test(test_features_not_features),
        cmocka_unit_test(test_mechanisms_have),
        cmocka_unit_test(test_condition_error),
        cmocka_unit_test(test_peer_allowed),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xf_xml_free(scanner);
    return rc;
}
