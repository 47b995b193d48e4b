/* Unit tests for proxy/config.c: schema, defaults, every error's "FILE: KEY: problem"
   shape, path resolution, load with a tenants folder, reference counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/config.h"

static const char *FULL =
    "{\"workers\": 3, \"tenants\": \"tenants\", \"log_level\": \"debug\",\n"
    " \"listeners\": [\n"
    "  {\"address\": \"::\", \"port\": 5222, \"tls\": \"starttls\", \"service\": \"client\"},\n"
    "  {\"address\": \"127.0.0.1\", \"port\": 5269, \"tls\": \"starttls\", \"service\": \"server\"},\n"
    "  {\"address\": \"::1\", \"port\": 443, \"tls\": \"direct\", \"service\": \"auto\"}],\n"
    " \"limits\": {\"handshake_timeout_s\": 20, \"max_header_bytes\": 4096,\n"
    "  \"max_connections\": 500, \"max_connections_per_ip\": 10, \"backend_timeout_s\": 5,\n"
    "  \"drain_timeout_s\": 7, \"idle_timeout_s\": 600, \"buffer_high_bytes\": 131072,\n"
    "  \"buffer_low_bytes\": 1024, \"max_unauthenticated_per_ip\": 4, \"ipv6_prefix\": 56,\n"
    "  \"tcp_keepalive_s\": 15}}";

/* Parse `json` as /etc/xf/main.json; expect failure with exactly `want`. */
static void expect_err(const char *json, const char *want)
{
    xf_config *c = (xf_config *)0x1;
    char err[512];
    int rc = xf_config_parse(json, strlen(json), "/etc/xf/main.json", &c, err, sizeof err);
    if (rc == 0 || strcmp(err, want) != 0)
        print_error("json: %s\nwant: %s\ngot:  %s (rc %d)\n", json, want, err, rc);
    assert_int_equal(rc, -1);
    assert_null(c);
    assert_string_equal(err, want);
}

#define L1 "\"listeners\": [{\"port\": 5222, \"tls\": \"starttls\", \"service\": \"client\"}]"

static void test_full(void **state)
{
    (void)state;
    xf_config *c = NULL;
    char err[512] = "";
    assert_int_equal(xf_config_parse(FULL, strlen(FULL), "/etc/xf/main.json", &c, err,
                                     sizeof err), 0);
    assert_non_null(c);
    assert_string_equal(c->path, "/etc/xf/main.json");
    assert_int_equal(c->workers, 3);
    assert_string_equal(c->tenants_dir, "/etc/xf/tenants");
    assert_string_equal(c->log_level, "debug");
    assert_int_equal(c->n_listeners, 3);

    const xf_listener_conf *l = &c->listeners[0];
    assert_string_equal(l->name, "[::]:5222");
    assert_string_equal(l->address, "::");
    assert_int_equal(l->port, 5222);
    assert_int_equal(l->tls, XF_TLS_STARTTLS);
    assert_int_equal(l->service, XF_SVC_CLIENT);
    assert_int_equal(l->addr.ss_family, AF_INET6);
    assert_int_equal(l->addrlen, sizeof(struct sockaddr_in6));
    const struct sockaddr_in6 *a6 = (const void *)&l->addr;
    assert_int_equal(ntohs(a6->sin6_port), 5222);
    assert_memory_equal(&a6->sin6_addr, &in6addr_any, sizeof in6addr_any);

    l = &c->listeners[1];
    assert_string_equal(l->name, "127.0.0.1:5269");
    assert_int_equal(l->service, XF_SVC_SERVER);
    assert_int_equal(l->addr.ss_family, AF_INET);
    assert_int_equal(l->addrlen, sizeof(struct sockaddr_in));
    const struct sockaddr_in *a4 = (const void *)&l->addr;
    assert_int_equal(ntohs(a4->sin_port), 5269);
    assert_int_equal(ntohl(a4->sin_addr.s_addr), 0x7f000001);

    l = &c->listeners[2];
    assert_string_equal(l->name, "[::1]:443");
    assert_int_equal(l->tls, XF_TLS_DIRECT);
    assert_int_equal(l->service, XF_SVC_AUTO);

    assert_int_equal(c->limits.handshake_timeout_s, 20);
    assert_int_equal(c->limits.max_header_bytes, 4096);
    assert_int_equal(c->limits.max_connections, 500);
    assert_int_equal(c->limits.max_connections_per_ip, 10);
    assert_int_equal(c->limits.backend_timeout_s, 5);
    assert_int_equal(c->limits.drain_timeout_s, 7);
    assert_int_equal(c->limits.idle_timeout_s, 600);
    assert_int_equal(c->limits.buffer_high_bytes, 131072);
    assert_int_equal(c->limits.buffer_low_bytes, 1024);
    assert_int_equal(c->limits.max_unauthenticated_per_ip, 4);
    assert_int_equal(c->limits.ipv6_prefix, 56);
    assert_int_equal(c->limits.tcp_keepalive_s, 15);
    assert_null(c->registry);
    xf_config_unref(c);
}

static void test_defaults(void **state)
{
    (void)state;
    const char *j = "{" L1 "}";
    xf_config *c = NULL;
    char err[256];
    assert_int_equal(xf_config_parse(j, strlen(j), "main.json", &c, err, sizeof err), 0);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c->workers, cores < 1 ? 1 : cores > 256 ? 256 : cores);
    assert_string_equal(c->tenants_dir, "tenants");  /* no directory part: as is */
    assert_string_equal(c->log_level, "info");
    assert_string_equal(c->listeners[0].name, "[::]:5222");
    assert_int_equal(c->limits.handshake_timeout_s, 30);
    assert_int_equal(c->limits.max_header_bytes, 8192);
    assert_int_equal(c->limits.max_connections, 100000);
    assert_int_equal(c->limits.max_connections_per_ip, 1000);
    assert_int_equal(c->limits.backend_timeout_s, 10);
    assert_int_equal(c->limits.drain_timeout_s, 30);
    assert_int_equal(c->limits.idle_timeout_s, 0);
    assert_int_equal(c->limits.buffer_high_bytes, 262144);
    assert_int_equal(c->limits.buffer_low_bytes, 65536);
    assert_int_equal(c->limits.max_unauthenticated_per_ip, 100);
    assert_int_equal(c->limits.ipv6_prefix, 64);
    assert_int_equal(c->limits.tcp_keepalive_s, 60);
    assert_string_equal(c->federation.ca_file, "/etc/ssl/certs/ca-certificates.crt");
    assert_int_equal(c->federation.n_resolvers, 0);
    assert_null(c->federation.resolvers);
    assert_null(c->federation.dialback_secret_file);
    assert_null(c->federation.dialback_secret);     /* made by xf_config_load */
    assert_int_equal(c->federation.connect_timeout_s, 10);
    assert_int_equal(c->federation.negotiation_timeout_s, 30);
    assert_int_equal(c->listeners[0].transparent, 0);
    assert_int_equal(c->listeners[0].allow_public, 0);
    xf_config_unref(c);
}

static void test_federation(void **state)
{
    (void)state;
    const char *j = "{" L1 ", \"federation\": {\"ca_file\": \"ca/bundle.pem\", "
        "\"resolvers\": [\"127.0.0.1\", \"192.0.2.53:5353\", \"::1\", \"[2001:DB8::53]:53\", "
        "\"[::1]\"], \"dialback_secret_file\": \"/run/secrets/db\", "
        "\"connect_timeout_s\": 3, \"negotiation_timeout_s\": 12}}";
    xf_config *c = NULL;
    char err[512] = "";
    int rc = xf_config_parse(j, strlen(j), "/etc/xf/main.json", &c, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c->federation.ca_file, "/etc/xf/ca/bundle.pem");
    assert_int_equal(c->federation.n_resolvers, 5);
    assert_string_equal(c->federation.resolvers[0], "127.0.0.1:53");
    assert_string_equal(c->federation.resolvers[1], "192.0.2.53:5353");
    assert_string_equal(c->federation.resolvers[2], "[::1]:53");
    assert_string_equal(c->federation.resolvers[3], "[2001:db8::53]:53");
    assert_string_equal(c->federation.resolvers[4], "[::1]:53");
    assert_string_equal(c->federation.dialback_secret_file, "/run/secrets/db");
    assert_int_equal(c->federation.connect_timeout_s, 3);
    assert_int_equal(c->federation.negotiation_timeout_s, 12);
    xf_config_unref(c);
}

static void test_federation_errors(void **state)
{
    (void)state;
    expect_err("{" L1 ", \"federation\": []}",
               "/etc/xf/main.json: federation: must be an object, not an array");
    expect_err("{" L1 ", \"federation\": {\"resolver\": []}}",
               "/etc/xf/main.json: federation.resolver: unknown key");
    expect_err("{" L1 ", \"federation\": {\"resolvers\": \"127.0.0.1\"}}",
               "/etc/xf/main.json: federation.resolvers: must be an array of strings, not a string");
    expect_err("{" L1 ", \"federation\": {\"resolvers\": []}}",
               "/etc/xf/main.json: federation.resolvers: must not be empty (leave it out to "
               "use /etc/resolv.conf)");
    expect_err("{" L1 ", \"federation\": {\"resolvers\": [\"127.0.0.1\", 53]}}",
               "/etc/xf/main.json: federation.resolvers[1]: must be a string, not a number");
    expect_err("{" L1 ", \"federation\": {\"resolvers\": [\"dns.example\"]}}",
               "/etc/xf/main.json: federation.resolvers[0]: \"dns.example\" is not an IP "
               "address with an optional port (host names are not resolved)");
    expect_err("{" L1 ", \"federation\": {\"resolvers\": [\"127.0.0.1:0\"]}}",
               "/etc/xf/main.json: federation.resolvers[0]: \"127.0.0.1:0\": port must be 1..65535");
    expect_err("{" L1 ", \"federation\": {\"resolvers\": [\"[::1]53\"]}}",
               "/etc/xf/main.json: federation.resolvers[0]: \"[::1]53\" is not \"[IPv6]\" or "
               "\"[IPv6]:port\"");
    expect_err("{" L1 ", \"federation\": {\"resolvers\": [\"\", \"1.1.1.1\"]}}",
               "/etc/xf/main.json: federation.resolvers[0]: \"\" is not an IP address with an "
               "optional port (host names are not resolved)");
    expect_err("{" L1 ", \"federation\": {\"connect_timeout_s\": 0}}",
               "/etc/xf/main.json: federation.connect_timeout_s: 0 is out of range 1..3600");
    expect_err("{" L1 ", \"federation\": {\"negotiation_timeout_s\": \"30\"}}",
               "/etc/xf/main.json: federation.negotiation_timeout_s: must be an integer, not a string");
    expect_err("{" L1 ", \"federation\": {\"ca_file\": \"\"}}",
               "/etc/xf/main.json: federation.ca_file: must not be empty");
    expect_err("{" L1 ", \"federation\": {\"dialback_secret_file\": 1}}",
               "/etc/xf/main.json: federation.dialback_secret_file: must be a string, not a number");
}

#define OUTL(extra) "{\"listeners\": [{\"address\": \"127.0.0.1\", \"port\": 15269, " \
    "\"tls\": \"none\", \"service\": \"outbound\"" extra "}]}"

static void test_outbound_listener(void **state)
{
    (void)state;
    const char *j = "{\"listeners\": ["
        "{\"address\": \"127.0.0.1\", \"port\": 15269, \"tls\": \"none\", "
        "\"service\": \"outbound\", \"transparent\": true},"
        "{\"address\": \"10.0.0.1\", \"port\": 15270, \"tls\": \"none\", "
        "\"service\": \"outbound\", \"transparent\": false, \"allow_public\": true},"
        "{\"port\": 5269, \"tls\": \"starttls\", \"service\": \"server\"}]}";
    xf_config *c = NULL;
    char err[512] = "";
    int rc = xf_config_parse(j, strlen(j), "/etc/xf/main.json", &c, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(c->listeners[0].service, XF_SVC_OUTBOUND);
    assert_int_equal(c->listeners[0].tls, XF_TLS_NONE);
    assert_int_equal(c->listeners[0].transparent, 1);
    assert_int_equal(c->listeners[0].allow_public, 0);
    assert_string_equal(c->listeners[0].name, "127.0.0.1:15269");
    assert_int_equal(c->listeners[1].transparent, 0);
    assert_int_equal(c->listeners[1].allow_public, 1);
    assert_int_equal(c->listeners[2].transparent, 0);
    xf_config_unref(c);

    expect_err(OUTL(", \"transparent\": \"yes\""),
               "/etc/xf/main.json: listeners[0].transparent: must be a boolean, not a string");
    expect_err(OUTL(", \"allow_public\": 1"),
               "/etc/xf/main.json: listeners[0].allow_public: must be a boolean, not a number");
    expect_err("{\"listeners\": [{\"port\": 1, \"tls\": \"starttls\", \"service\": \"outbound\"}]}",
               "/etc/xf/main.json: listeners[0].tls: must be \"none\" for \"service\": "
               "\"outbound\" (the backend speaks plaintext; TLS is toward the remote)");
    expect_err("{\"listeners\": [{\"port\": 1, \"tls\": \"none\", \"service\": \"server\"}]}",
               "/etc/xf/main.json: listeners[0].tls: \"none\" is only for \"service\": \"outbound\"");
    expect_err("{\"listeners\": [{\"port\": 1, \"tls\": \"direct\", \"service\": \"server\", "
               "\"transparent\": false}]}",
               "/etc/xf/main.json: listeners[0].transparent: only for \"service\": \"outbound\"");
    expect_err("{\"listeners\": [{\"port\": 1, \"tls\": \"direct\", \"service\": \"client\", "
               "\"allow_public\": true}]}",
               "/etc/xf/main.json: listeners[0].allow_public: only for \"service\": \"outbound\"");
}

/* The per-address defaults shrink under smaller explicit caps; 0 turns them off. */
static void test_per_ip_defaults_follow_caps(void **state)
{
    (void)state;
    struct { const char *limits; unsigned per_ip, unauth; } cases[] = {
        { "\"max_connections\": 50", 50, 50 },
        { "\"max_connections_per_ip\": 3", 3, 3 },
        { "\"max_connections_per_ip\": 0", 0, 100 },
        { "\"max_connections_per_ip\": 0, \"max_unauthenticated_per_ip\": 0", 0, 0 },
        { "\"max_unauthenticated_per_ip\": 1000", 1000, 1000 },
        { "\"tcp_keepalive_s\": 0, \"ipv6_prefix\": 128", 1000, 100 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char j[512];
        snprintf(j, sizeof j, "{" L1 ", \"limits\": {%s}}", cases[i].limits);
        xf_config *c = NULL;
        char err[256] = "";
        if (xf_config_parse(j, strlen(j), "main.json", &c, err, sizeof err) != 0)
            print_error("%s: %s\n", j, err);
        assert_non_null(c);
        assert_int_equal(c->limits.max_connections_per_ip, cases[i].per_ip);
        assert_int_equal(c->limits.max_unauthenticated_per_ip, cases[i].unauth);
        xf_config_unref(c);
    }
}

static void test_paths(void **state)
{
    (void)state;
    struct { const char *file, *tenants, *want; } cases[] = {
        { "/etc/xf/main.json", "t", "/etc/xf/t" },
        { "/etc/xf/main.json", "../shared/t", "/etc/xf/../shared/t" },
        { "/etc/xf/main.json", "/srv/tenants", "/srv/tenants" },
        { "conf/main.json", "t", "conf/t" },
        { "main.json", "t", "t" },
        { "/main.json", "t", "/t" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char j[256], err[256];
        xf_config *c = NULL;
        snprintf(j, sizeof j, "{\"tenants\": \"%s\", " L1 "}", cases[i].tenants);
        assert_int_equal(xf_config_parse(j, strlen(j), cases[i].file, &c, err, sizeof err), 0);
        assert_string_equal(c->tenants_dir, cases[i].want);
        xf_config_unref(c);
    }
}

static void test_errors_unknown_keys(void **state)
{
    (void)state;
    expect_err("{\"worker\": 2, " L1 "}", "/etc/xf/main.json: worker: unknown key");
    expect_err("{\"listeners\": [{\"port\": 5222, \"tls\": \"starttls\", "
               "\"service\": \"client\", \"proxy\": true}]}",
               "/etc/xf/main.json: listeners[0].proxy: unknown key");
    expect_err("{" L1 ", \"limits\": {\"max_header\": 1}}",
               "/etc/xf/main.json: limits.max_header: unknown key");
    expect_err("{\"workers\": 1, \"workers\": 2, " L1 "}",
               "/etc/xf/main.json: workers: duplicate key");
}

static void test_errors_types(void **state)
{
    (void)state;
    expect_err("{\"workers\": \"2\", " L1 "}",
               "/etc/xf/main.json: workers: must be an integer, not a string");
    expect_err("{\"workers\": 1.5, " L1 "}",
               "/etc/xf/main.json: workers: must be an integer in 0..256");
    expect_err("{\"tenants\": 5, " L1 "}",
               "/etc/xf/main.json: tenants: must be a string, not a number");
    expect_err("{\"listeners\": {}}",
               "/etc/xf/main.json: listeners: must be an array, not an object");
    expect_err("{\"listeners\": [5222]}",
               "/etc/xf/main.json: listeners[0]: must be an object, not a number");
    expect_err("{" L1 ", \"limits\": []}",
               "/etc/xf/main.json: limits: must be an object, not an array");
    expect_err("{" L1 ", \"limits\": {\"max_header_bytes\": true}}",
               "/etc/xf/main.json: limits.max_header_bytes: must be an integer, not a boolean");
    expect_err("[]", "/etc/xf/main.json: (document): must be a JSON object, not an array");
    expect_err("", "/etc/xf/main.json: (document): invalid JSON: parse error: premature EOF");
}

static void test_errors_values(void **state)
{
    (void)state;
    expect_err("{\"listeners\": [{\"port\": 0, \"tls\": \"direct\", \"service\": \"client\"}]}",
               "/etc/xf/main.json: listeners[0].port: 0 is out of range 1..65535");
    expect_err("{\"listeners\": [{\"port\": 65536, \"tls\": \"direct\", \"service\": \"client\"}]}",
               "/etc/xf/main.json: listeners[0].port: 65536 is out of range 1..65535");
    expect_err("{\"listeners\": [{\"tls\": \"direct\", \"service\": \"client\"}]}",
               "/etc/xf/main.json: listeners[0].port: missing");
    expect_err("{\"listeners\": [{\"port\": 1, \"tls\": \"tls\", \"service\": \"client\"}]}",
               "/etc/xf/main.json: listeners[0].tls: \"tls\" is not \"starttls\", \"direct\" "
               "or \"none\"");
    expect_err("{\"listeners\": [{\"port\": 1, \"tls\": \"direct\", \"service\": \"c2s\"}]}",
               "/etc/xf/main.json: listeners[0].service: \"c2s\" is not \"client\", "
               "\"server\", \"auto\" or \"outbound\"");
    expect_err("{\"listeners\": [{\"address\": \"localhost\", \"port\": 1, \"tls\": \"direct\", "
               "\"service\": \"client\"}]}",
               "/etc/xf/main.json: listeners[0].address: \"localhost\" is not an IPv4 or "
               "IPv6 address (host names are not resolved)");
    expect_err("{\"workers\": 257, " L1 "}",
               "/etc/xf/main.json: workers: 257 is out of range 0..256");
    expect_err("{" L1 ", \"limits\": {\"buffer_low_bytes\": 300000}}",
               "/etc/xf/main.json: limits.buffer_low_bytes: 300000 must be lower than "
               "limits.buffer_high_bytes (262144)");
    expect_err("{" L1 ", \"limits\": {\"ipv6_prefix\": 24}}",
               "/etc/xf/main.json: limits.ipv6_prefix: 24 is out of range 32..128");
    expect_err("{" L1 ", \"limits\": {\"ipv6_prefix\": 129}}",
               "/etc/xf/main.json: limits.ipv6_prefix: 129 is out of range 32..128");
    expect_err("{" L1 ", \"limits\": {\"tcp_keepalive_s\": 7201}}",
               "/etc/xf/main.json: limits.tcp_keepalive_s: 7201 is out of range 0..7200");
    expect_err("{" L1 ", \"limits\": {\"max_connections_per_ip\": 10, "
               "\"max_unauthenticated_per_ip\": 11}}",
               "/etc/xf/main.json: limits.max_unauthenticated_per_ip: 11 exceeds "
               "limits.max_connections_per_ip (10)");
    expect_err("{" L1 ", \"limits\": {\"max_unauthenticated_per_ip\": 1001}}",
               "/etc/xf/main.json: limits.max_unauthenticated_per_ip: 1001 exceeds "
               "limits.max_connections_per_ip (1000)");
    expect_err("{" L1 ", \"limits\": {\"max_connections\": 10, \"max_connections_per_ip\": 11}}",
               "/etc/xf/main.json: limits.max_connections_per_ip: 11 exceeds "
               "limits.max_connections (10)");
    expect_err("{" L1 ", \"limits\": {\"max_header_bytes\": 100}}",
               "/etc/xf/main.json: limits.max_header_bytes: 100 is out of range 512..1048576");
    expect_err("{" L1 ", \"log_level\": \"verbose\"}",
               "/etc/xf/main.json: log_level: \"verbose\" is not \"debug\", \"info\", "
               "\"warn\" or \"error\"");
    expect_err("{\"workers\": 1}",
               "/etc/xf/main.json: listeners: missing: at least one listener is required");
    expect_err("{\"listeners\": []}", "/etc/xf/main.json: listeners: must not be empty");
}

/* limits.auth_timeout_s: routing until authentication (issue 6 §2); default 60, 1..3600. */
static void test_auth_timeout(void **state)
{
    (void)state;
    const char *j = "{" L1 ", \"limits\": {\"auth_timeout_s\": 2}}";
    xf_config *c = NULL;
    char err[256];
    assert_int_equal(xf_config_parse(j, strlen(j), "main.json", &c, err, sizeof err), 0);
    assert_int_equal(c->limits.auth_timeout_s, 2);
    xf_config_unref(c);
    j = "{" L1 "}";
    assert_int_equal(xf_config_parse(j, strlen(j), "main.json", &c, err, sizeof err), 0);
    assert_int_equal(c->limits.auth_timeout_s, 60);
    xf_config_unref(c);
    expect_err("{" L1 ", \"limits\": {\"auth_timeout_s\": 0}}",
               "/etc/xf/main.json: limits.auth_timeout_s: 0 is out of range 1..3600");
    expect_err("{" L1 ", \"limits\": {\"auth_timeout_s\": 3601}}",
               "/etc/xf/main.json: limits.auth_timeout_s: 3601 is out of range 1..3600");
    expect_err("{" L1 ", \"limits\": {\"auth_timeout_s\": \"60\"}}",
               "/etc/xf/main.json: limits.auth_timeout_s: must be an integer, not a string");
}

static void test_errors_duplicate_listener(void **state)
{
    (void)state;
    expect_err("{\"listeners\": ["
               "{\"address\": \"::\", \"port\": 5222, \"tls\": \"starttls\", \"service\": \"client\"},"
               "{\"address\": \"127.0.0.1\", \"port\": 5222, \"tls\": \"starttls\", \"service\": \"client\"},"
               "{\"address\": \"[0::0]\", \"port\": 5222, \"tls\": \"direct\", \"service\": \"server\"}]}",
               "/etc/xf/main.json: listeners[2]: [0::0]:5222 is already listeners[0]");
}

/* A scratch directory with main.json and (optionally) an empty tenants folder. */
static char *scratch(int with_tenants, const char *json)
{
    char tmpl[] = "/tmp/xf-test-config-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    char path[512];
    if (with_tenants) {
        snprintf(path, sizeof path, "%s/tenants.d", dir);
        assert_int_equal(mkdir(path, 0700), 0);
    }
    snprintf(path, sizeof path, "%s/main.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    return strdup(dir);
}

static void rm_scratch(char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

static const char *LOADJ = "{\"tenants\": \"tenants.d\", " L1 "}";

static void test_load(void **state)
{
    (void)state;
    char *dir = scratch(1, LOADJ);
    char path[512], want[600], err[512] = "";
    xf_config *c = NULL;
    snprintf(path, sizeof path, "%s/main.json", dir);
    assert_int_equal(xf_config_load(path, &c, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s/tenants.d", dir);
    assert_string_equal(c->tenants_dir, want);
    assert_non_null(c->registry);
    assert_int_equal(xf_registry_count(c->registry), 0);

    /* Reference counting: the snapshot survives until the last unref. */
    assert_ptr_equal(xf_config_ref(c), c);
    assert_int_equal(c->refs, 2);
    xf_config_unref(c);
    assert_int_equal(c->refs, 1);
    assert_string_equal(c->path, path);
    xf_config_unref(c);
    rm_scratch(dir);
}

static void test_load_missing_tenants(void **state)
{
    (void)state;
    char *dir = scratch(0, LOADJ);
    char path[512], want[1200], err[512] = "";
    xf_config *c = NULL;
    snprintf(path, sizeof path, "%s/main.json", dir);
    assert_int_equal(xf_config_load(path, &c, err, sizeof err), -1);
    assert_null(c);
    snprintf(want, sizeof want, "%s: tenants: %s/tenants.d: No such file or directory",
             path, dir);
    assert_string_equal(err, want);

    snprintf(path, sizeof path, "%s/absent.json", dir);
    assert_int_equal(xf_config_load(path, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: (document): cannot open: No such file or directory", path);
    assert_string_equal(err, want);
    rm_scratch(dir);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_load_secret(void **state)
{
    (void)state;
    char *dir = scratch(1, "{}");
    char main[512], sec[512], json[1200], want[1400], err[1024] = "";
    xf_config *c = NULL, *c2 = NULL;
    snprintf(main, sizeof main, "%s/main.json", dir);
    snprintf(sec, sizeof sec, "%s/db.secret", dir);

    /* No file: a random 32-byte secret as 64 hex digits, the same for every load in
       this process (keys stay valid across reloads). */
    write_file(main, LOADJ, 0600);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), 0);
    assert_int_equal(strlen(c->federation.dialback_secret), 64);
    assert_int_equal(strspn(c->federation.dialback_secret, "0123456789abcdef"), 64);
    assert_int_equal(xf_config_load(main, &c2, err, sizeof err), 0);
    assert_string_equal(c->federation.dialback_secret, c2->federation.dialback_secret);
    xf_config_unref(c);
    xf_config_unref(c2);

    /* A file: its content, trailing newline dropped; relative to the main file. */
    snprintf(json, sizeof json, "{\"tenants\": \"tenants.d\", " L1 ", \"federation\": "
             "{\"dialback_secret_file\": \"db.secret\"}}");
    write_file(main, json, 0600);
    write_file(sec, "cluster secret 1\n", 0640);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), 0);
    assert_string_equal(c->federation.dialback_secret, "cluster secret 1");
    xf_config_unref(c);

    write_file(sec, "cluster secret 1\n", 0644);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), -1);
    assert_null(c);
    snprintf(want, sizeof want, "%s: federation.dialback_secret_file: %s: is accessible "
             "by all users (mode 0644); chmod o-rwx it", main, sec);
    assert_string_equal(err, want);

    write_file(sec, " \n", 0600);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: federation.dialback_secret_file: %s: is empty", main, sec);
    assert_string_equal(err, want);

    assert_int_equal(unlink(sec), 0);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: federation.dialback_secret_file: %s: No such file or "
             "directory", main, sec);
    assert_string_equal(err, want);

    assert_int_equal(mkdir(sec, 0700), 0);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: federation.dialback_secret_file: %s: not a regular file",
             main, sec);
    assert_string_equal(err, want);
    rm_scratch(dir);
}

/* "hosting": parsed, paths resolved against the main file, every error. */
static void test_hosting(void **state)
{
    (void)state;
    const char *j = "{" L1 ", \"hosting\": {\"name\": \"Hosting.Example.\", "
        "\"certificate\": \"certs/h.crt\", \"key\": \"/k/h.key\", "
        "\"next_certificate\": \"certs/h2.crt\", \"next_key\": \"certs/h2.key\"}}";
    xf_config *c = NULL;
    char err[512] = "";
    int rc = xf_config_parse(j, strlen(j), "/etc/xf/main.json", &c, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c->hosting.name, "hosting.example");
    assert_string_equal(c->hosting.certificate, "/etc/xf/certs/h.crt");
    assert_string_equal(c->hosting.key, "/k/h.key");
    assert_string_equal(c->hosting.next_certificate, "/etc/xf/certs/h2.crt");
    assert_string_equal(c->hosting.next_key, "/etc/xf/certs/h2.key");
    xf_config_unref(c);

    j = "{" L1 "}";
    assert_int_equal(xf_config_parse(j, strlen(j), "/etc/xf/main.json", &c, err, sizeof err), 0);
    assert_null(c->hosting.name);
    assert_null(c->hosting.certificate);
    xf_config_unref(c);

#define HC "\"certificate\": \"h.crt\", \"key\": \"h.key\""
    expect_err("{" L1 ", \"hosting\": \"hosting.example\"}",
               "/etc/xf/main.json: hosting: must be an object, not a string");
    expect_err("{" L1 ", \"hosting\": {\"name\": \"h.example\", " HC ", \"cert\": 1}}",
               "/etc/xf/main.json: hosting.cert: unknown key");
    expect_err("{" L1 ", \"hosting\": {" HC "}}",
               "/etc/xf/main.json: hosting.name: missing (the provider's own host name)");
    expect_err("{" L1 ", \"hosting\": {\"name\": 7, " HC "}}",
               "/etc/xf/main.json: hosting.name: must be a string, not a number");
    expect_err("{" L1 ", \"hosting\": {\"name\": \"*.h.example\", " HC "}}",
               "/etc/xf/main.json: hosting.name: \"*.h.example\" contains a wildcard");
    expect_err("{" L1 ", \"hosting\": {\"name\": \"192.0.2.1\", " HC "}}",
               "/etc/xf/main.json: hosting.name: \"192.0.2.1\" is an IP address, not a domain");
    expect_err("{" L1 ", \"hosting\": {\"name\": \"h.example\", \"key\": \"h.key\"}}",
               "/etc/xf/main.json: hosting.certificate: missing");
    expect_err("{" L1 ", \"hosting\": {\"name\": \"h.example\", \"certificate\": \"h.crt\"}}",
               "/etc/xf/main.json: hosting.key: missing");
    expect_err("{" L1 ", \"hosting\": {\"name\": \"h.example\", " HC ", \"key\": \"x\"}}",
               "/etc/xf/main.json: hosting.key: duplicate key");
    expect_err("{" L1 ", \"hosting\": {\"name\": \"h.example\", " HC ", "
               "\"next_certificate\": \"n.crt\"}}",
               "/etc/xf/main.json: hosting.next_key: missing (next_certificate is given)");
    expect_err("{" L1 ", \"hosting\": {\"name\": \"h.example\", " HC ", \"next_key\": \"n.key\"}}",
               "/etc/xf/main.json: hosting.next_certificate: missing (next_key is given)");
    expect_err("{" L1 ", \"hosting\": {\"name\": \"h.example\", " HC ", \"next_key\": \"\"}}",
               "/etc/xf/main.json: hosting.next_key: must not be empty");
#undef HC
}

/* xf_config_load with a hosting identity: its files are read and checked (errors name
   the main file's hosting.* keys), and a tenant without certificate is served with it. */
static void test_load_hosting(void **state)
{
    (void)state;
    char *dir = scratch(1, "{}");
    char main[512], json[2048], want[1600], err[1024] = "";
    xf_config *c = NULL;
    snprintf(main, sizeof main, "%s/main.json", dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && for n in h:hosting.example o:other.example; do "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout ${n%%%%:*}.key -out ${n%%%%:*}.crt -days 30 -subj /CN=${n#*:} "
             "-addext subjectAltName=DNS:${n#*:} >/dev/null 2>&1 || exit 1; done", dir);
    assert_int_equal(system(cmd), 0);
    write_file(strcat(strcpy(json, dir), "/tenants.d/p.json"),
               "{\"domain\": \"p.example\", \"c2s_backend\": \"127.0.0.1:1\"}", 0600);

    /* Without a hosting object the certificate-less tenant is refused, with the reason. */
    write_file(main, LOADJ, 0600);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s/tenants.d/p.json: certificate: missing (the tenant is "
             "to be served with the hosting certificate, and the main file has no "
             "\"hosting\" object)", dir);
    assert_string_equal(err, want);

    snprintf(json, sizeof json, "{\"tenants\": \"tenants.d\", " L1 ", \"hosting\": "
             "{\"name\": \"hosting.example\", \"certificate\": \"h.crt\", \"key\": \"h.key\"}}");
    write_file(main, json, 0600);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), 0);
    const xf_tenant *h = xf_registry_hosting(c->registry);
    const xf_tenant *t = xf_registry_find(c->registry, "p.example");
    assert_non_null(h);
    assert_non_null(t);
    assert_string_equal(h->domain, "hosting.example");
    assert_int_equal(t->present, XF_PRESENT_HOSTING);
    assert_ptr_equal(xf_tenant_tls_chain(t), &h->chain);
    assert_ptr_equal(xf_tenant_tls_key(t), &h->key);
    assert_null(xf_registry_find(c->registry, "hosting.example"));   /* not routed */
    assert_ptr_equal(xf_registry_for_sni(c->registry, "HOSTING.example"), h);
    xf_config_unref(c);

    /* A certificate that does not name the hosting name; a key of another pair. */
    snprintf(json, sizeof json, "{\"tenants\": \"tenants.d\", " L1 ", \"hosting\": "
             "{\"name\": \"hosting.example\", \"certificate\": \"o.crt\", \"key\": \"o.key\"}}");
    write_file(main, json, 0600);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: hosting.certificate: %s/o.crt does not cover the "
             "hosting name hosting.example", main, dir);
    assert_string_equal(err, want);
    snprintf(json, sizeof json, "{\"tenants\": \"tenants.d\", " L1 ", \"hosting\": "
             "{\"name\": \"hosting.example\", \"certificate\": \"h.crt\", \"key\": \"h.key\", "
             "\"next_certificate\": \"h.crt\", \"next_key\": \"o.key\"}}");
    write_file(main, json, 0600);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: hosting.next_key: %s/o.key does not match the "
             "certificate %s/h.crt", main, dir, dir);
    assert_string_equal(err, want);
    snprintf(json, sizeof json, "{\"tenants\": \"tenants.d\", " L1 ", \"hosting\": "
             "{\"name\": \"hosting.example\", \"certificate\": \"absent.crt\", \"key\": \"h.key\"}}");
    write_file(main, json, 0600);
    assert_int_equal(xf_config_load(main, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: hosting.certificate: %s/absent.crt: ", main, dir);
    assert_memory_equal(err, want, strlen(want));
    rm_scratch(dir);
}

/* The shipped example must always load its listeners (tenants are not loaded here:
   its certificate paths are placeholders). */
static void test_deploy_example(void **state)
{
    (void)state;
    const char *src = getenv("XF_SRC");
    if (!src) skip();
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/deploy/xmppfront.json", src);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    xf_config *c = NULL;
    assert_int_equal(xf_config_parse(buf, n, path, &c, err, sizeof err), 0);
    assert_int_equal(c->n_listeners, 7);
    assert_string_equal(c->listeners[4].name, "[::]:443");
    assert_int_equal(c->listeners[4].service, XF_SVC_AUTO);
    assert_string_equal(c->listeners[5].name, "127.0.0.1:15269");
    assert_int_equal(c->listeners[5].service, XF_SVC_OUTBOUND);
    assert_int_equal(c->listeners[5].transparent, 1);
    assert_int_equal(c->listeners[6].tls, XF_TLS_NONE);
    xf_config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_auth_timeout),
        cmocka_unit_test(test_per_ip_defaults_follow_caps),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_errors_unknown_keys),
        cmocka_unit_test(test_errors_types),
        cmocka_unit_test(test_errors_values),
        cmocka_unit_test(test_errors_duplicate_listener),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_load_missing_tenants),
        cmocka_unit_test(test_load_secret),
        cmocka_unit_test(test_federation),
        cmocka_unit_test(test_federation_errors),
        cmocka_unit_test(test_outbound_listener),
        cmocka_unit_test(test_hosting),
        cmocka_unit_test(test_load_hosting),
        cmocka_unit_test(test_deploy_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
