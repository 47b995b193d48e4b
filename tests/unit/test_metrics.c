/* Unit tests for proxy/metrics.c: label and HELP escaping, counters and gauges (from
   several threads, out-of-range ignored), the connection gauge moves, the refusal /
   TLS / s2s mappings, per-tenant rows (escaped names, the "(other)" row when full) and
   the rendered exposition: every line is a HELP, a TYPE or a well-formed sample, every
   sample's family was declared by a TYPE line before it, and no family is declared
   twice. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mbedtls/ssl.h>
#include "proxy/metrics.h"
#include "proxy/stats.h"

static char *str(xf_buf *b)
{
    char *s = malloc(xf_buf_size(b) + 1);
    assert_non_null(s);
    memcpy(s, xf_buf_head(b), xf_buf_size(b));
    s[xf_buf_size(b)] = '\0';
    return s;
}

static void escaping(void **state)
{
    (void)state;
    xf_buf b = { 0 };
    static const char in[] = "a\\b\"c\nd\te";
    assert_int_equal(xf_metrics_escape_label(&b, in, sizeof in - 1), 0);
    char *s = str(&b);
    assert_string_equal(s, "a\\\\b\\\"c\\nd\te");
    free(s);
    xf_buf_free(&b);
    assert_int_equal(xf_metrics_escape_help(&b, in, sizeof in - 1), 0);
    s = str(&b);
    assert_string_equal(s, "a\\\\b\"c\\nd\te");      /* quotes stay in HELP text */
    free(s);
    xf_buf_free(&b);
    assert_int_equal(xf_metrics_escape_label(&b, "", 0), 0);
    assert_int_equal(xf_buf_size(&b), 0);
    /* Embedded NUL and high bytes are copied as they are. */
    assert_int_equal(xf_metrics_escape_label(&b, "x\0\xff", 3), 0);
    assert_int_equal(xf_buf_size(&b), 3);
    xf_buf_free(&b);
}

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        xf_metrics_inc(XF_MF_ACCEPTED, XF_MSVC_SERVER);
        xf_metrics_add(XF_MF_BYTES, XF_M_OUT, 3);
    }
    return NULL;
}

static void counters(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, bump, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(xf_metrics_get(XF_MF_ACCEPTED, XF_MSVC_SERVER), 400000);
    assert_int_equal(xf_metrics_get(XF_MF_BYTES, XF_M_OUT), 1200000);
    assert_int_equal(xf_metrics_get(XF_MF_ACCEPTED, XF_MSVC_CLIENT), 0);
    xf_metrics_inc(XF_MF_ACCEPTED, XF_MSVC__N);              /* out of range: ignored */
    xf_metrics_inc(XF_MF__N, 0);
    xf_metrics_inc(XF_MF_DNS_QUERIES, 1);
    assert_int_equal(xf_metrics_get(XF_MF_ACCEPTED, XF_MSVC__N), 0);
    assert_int_equal(xf_metrics_get(XF_MF_DNS_QUERIES, 1), 0);
    assert_int_equal(xf_metrics_get(XF_MF_DNS_QUERIES, 0), 0);
}

static int64_t conns(int svc, int ph)
{
    return xf_metrics_get(XF_MF_CONNECTIONS, (unsigned)(svc * XF_MPH__N + ph));
}

static void connection_gauge(void **state)
{
    (void)state;
    int a = 0, b = 0;
    xf_metrics_conn_move(&a, XF_MSVC_CLIENT, XF_MPH_PRE_TLS);
    xf_metrics_conn_move(&b, XF_MSVC_AUTO, XF_MPH_NEGOTIATING);
    assert_int_equal(conns(XF_MSVC_CLIENT, XF_MPH_PRE_TLS), 1);
    assert_int_equal(conns(XF_MSVC_AUTO, XF_MPH_NEGOTIATING), 1);
    xf_metrics_conn_move(&a, XF_MSVC_CLIENT, XF_MPH_NEGOTIATING);
    xf_metrics_conn_move(&a, XF_MSVC_CLIENT, XF_MPH_NEGOTIATING);   /* same place: no-op */
    xf_metrics_conn_move(&b, XF_MSVC_SERVER, XF_MPH_RELAYING);      /* routed: service too */
    assert_int_equal(conns(XF_MSVC_CLIENT, XF_MPH_PRE_TLS), 0);
    assert_int_equal(conns(XF_MSVC_CLIENT, XF_MPH_NEGOTIATING), 1);
    assert_int_equal(conns(XF_MSVC_AUTO, XF_MPH_NEGOTIATING), 0);
    assert_int_equal(conns(XF_MSVC_SERVER, XF_MPH_RELAYING), 1);
    xf_metrics_conn_move(&a, XF_MSVC_CLIENT, XF_MPH_NONE);
    xf_metrics_conn_move(&b, XF_MSVC_SERVER, XF_MPH_NONE);
    xf_metrics_conn_move(&b, XF_MSVC_SERVER, XF_MPH_NONE);          /* twice: still 0 */
    assert_int_equal(a, 0);
    assert_int_equal(conns(XF_MSVC_CLIENT, XF_MPH_NEGOTIATING), 0);
    assert_int_equal(conns(XF_MSVC_SERVER, XF_MPH_RELAYING), 0);
    int c = 0;
    xf_metrics_conn_move(&c, 99, XF_MPH_RELAYING);                  /* bad service: none */
    assert_int_equal(c, 0);
}

static void mappings(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        xf_metrics_refusal("host-unknown");
    xf_metrics_refusal("unsupported-version");
    xf_metrics_refusal("no-such-condition");
    xf_metrics_refusal(NULL);
    assert_int_equal(xf_metrics_get(XF_MF_REFUSALS, XF_MR_HOST_UNKNOWN), 3);
    assert_int_equal(xf_metrics_get(XF_MF_REFUSALS, XF_MR_UNSUPPORTED_VERSION), 1);
    assert_int_equal(xf_metrics_get(XF_MF_REFUSALS, XF_MR_OTHER), 2);
    xf_metrics_refusal("tls_other");                    /* not a stream error condition */
    assert_int_equal(xf_metrics_get(XF_MF_REFUSALS, XF_MR_TLS_OTHER), 0);
    assert_int_equal(xf_metrics_get(XF_MF_REFUSALS, XF_MR_OTHER), 3);

    xf_metrics_handshake(XF_M_IN, 0);
    xf_metrics_handshake(XF_M_IN, MBEDTLS_ERR_SSL_NO_APPLICATION_PROTOCOL);
    xf_metrics_handshake(XF_M_IN, MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION);
    xf_metrics_handshake(XF_M_OUT, MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE);  /* no refusal */
    assert_int_equal(xf_metrics_get(XF_MF_HANDSHAKES, 0), 1);          /* inbound ok */
    assert_int_equal(xf_metrics_get(XF_MF_HANDSHAKES, 1), 2);          /* inbound failed */
    assert_int_equal(xf_metrics_get(XF_MF_HANDSHAKES, 3), 1);          /* outbound failed */
    assert_int_equal(xf_metrics_get(XF_MF_REFUSALS, XF_MR_TLS_NO_APPLICATION_PROTOCOL), 1);
    assert_int_equal(xf_metrics_get(XF_MF_REFUSALS, XF_MR_TLS_PROTOCOL_VERSION), 1);
    assert_int_equal(xf_metrics_get(XF_MF_REFUSALS, XF_MR_TLS_HANDSHAKE_FAILURE), 0);

    xf_metrics_s2s_auth(XF_M_IN, "sasl-external", 1);
    xf_metrics_s2s_auth(XF_M_IN, "dialback", 0);
    xf_metrics_s2s_auth(XF_M_OUT, "dialback", 1);
    xf_metrics_s2s_auth(XF_M_OUT, "none", 1);                        /* not counted */
    xf_metrics_s2s_auth(XF_M_OUT, "", 0);
    /* direction x method x verdict, row-major */
    assert_int_equal(xf_metrics_get(XF_MF_S2S_AUTH, 0), 1);   /* in sasl ok */
    assert_int_equal(xf_metrics_get(XF_MF_S2S_AUTH, 3), 1);   /* in dialback refused */
    assert_int_equal(xf_metrics_get(XF_MF_S2S_AUTH, 6), 1);   /* out dialback ok */
    int64_t sum = 0;
    for (unsigned i = 0; i < 8; i++)
        sum += xf_metrics_get(XF_MF_S2S_AUTH, i);
    assert_int_equal(sum, 3);
}

/* Checks the whole exposition; returns it (caller frees). */
static char *render_checked(const char *version)
{
    xf_buf b = { 0 };
    assert_int_equal(xf_metrics_render(&b, version), 0);
    char *s = str(&b);
    xf_buf_free(&b);
    assert_true(strlen(s) > 0 && s[strlen(s) - 1] == '\n');
    char types[128][80];
    size_t nt = 0;
    char *save = NULL, *copy = strdup(s);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[80], type[20];
        if (strncmp(line, "# HELP ", 7) == 0)
            continue;
        if (sscanf(line, "# TYPE %79s %19s", name, type) == 2) {
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0);
            for (size_t i = 0; i < nt; i++)
                assert_string_not_equal(types[i], name);     /* declared once */
            assert_true(nt < 128);
            snprintf(types[nt++], sizeof types[0], "%s", name);
            continue;
        }
        assert_true(line[0] != '#');
        /* name [{labels}] value: the metric name and the family declared last. */
        size_t n = strspn(line, "abcdefghijklmnopqrstuvwxyz_0123456789");
        assert_true(n > 0 && (line[n] == '{' || line[n] == ' '));
        assert_true(nt > 0);
        assert_int_equal(strncmp(line, types[nt - 1], n), 0);
        assert_int_equal(strlen(types[nt - 1]), n);
        const char *p = line + n;
        if (*p == '{') {
            p++;
            for (;;) {                  /* label="value" with only \\ \" \n escapes */
                size_t ln = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
                assert_true(ln > 0 && p[ln] == '=' && p[ln + 1] == '"');
                p += ln + 2;
                while (*p != '"') {
                    assert_true(*p != '\0');
                    if (*p == '\\') {
                        assert_true(p[1] == '\\' || p[1] == '"' || p[1] == 'n');
                        p++;
                    }
                    p++;
                }
                p++;
                if (*p == ',') { p++; continue; }
                assert_true(*p == '}');
                p++;
                break;
            }
        }
        assert_true(*p == ' ');
        char *end;
        strtod(p + 1, &end);
        assert_true(end > p + 1 && *end == '\0');
    }
    free(copy);
    return s;
}

static void exposition(void **state)
{
    (void)state;
    assert_int_equal(xf_metrics_init(0), 0);
    xf_stats_inc(XF_STAT_RELOAD_OK);
    xf_stats_inc(XF_STAT_REFUSED_PER_IP);
    xf_metrics_set_state(XF_MSTATE_DRAINING);
    xf_metrics_set_tenants(7);
    char *s = render_checked("1.2\"3\n");
    assert_non_null(strstr(s, "xmppfront_build_info{version=\"1.2\\\"3\\n\"} 1\n"));
    assert_non_null(strstr(s, "\nxmppfront_refusals_total{reason=\"host-unknown\"} 3\n"));
    assert_non_null(strstr(s, "\nxmppfront_refusals_total{reason=\"max_connections_per_ip\"} 1\n"));
    assert_non_null(strstr(s, "\nxmppfront_reloads_total{result=\"ok\"} 1\n"));
    assert_non_null(strstr(s, "\nxmppfront_reloads_total{result=\"failed\"} 0\n"));
    assert_non_null(strstr(s, "\nxmppfront_events_total{event=\"reload_ok\"} 1\n"));
    assert_non_null(strstr(s, "\nxmppfront_connections{service=\"outbound\",state=\"relaying\"} 0\n"));
    assert_non_null(strstr(s, "\nxmppfront_s2s_auth_total{direction=\"out\",method=\"dialback\","
                              "verdict=\"ok\"} 1\n"));
    assert_non_null(strstr(s, "\nxmppfront_ready 0\nxmppfront_draining 1\n") ||
                    (strstr(s, "\nxmppfront_ready 0\n") && strstr(s, "\nxmppfront_draining 1\n")));
    assert_non_null(strstr(s, "\nxmppfront_tenants 7\n"));
    assert_non_null(strstr(s, "# TYPE xmppfront_connections gauge\n"));
    assert_non_null(strstr(s, "# TYPE xmppfront_handshakes_total counter\n"));
    assert_non_null(strstr(s, "# TYPE process_start_time_seconds gauge\n"));
    assert_null(strstr(s, "xmppfront_tenant_connections"));   /* off: no family */
    free(s);
    xf_metrics_set_state(XF_MSTATE_READY);
    s = render_checked("x");
    assert_non_null(strstr(s, "\nxmppfront_ready 1\n"));
    free(s);
}

static void per_tenant(void **state)
{
    (void)state;
    int a = 0, b = 0, c = 0, d = 0;
    xf_metrics_tenant_enter(&a, "a.example", XF_MSVC_CLIENT);     /* table off: no-op */
    assert_int_equal(a, 0);
    assert_int_equal(xf_metrics_init(1), 0);
    xf_metrics_tenant_enter(&a, "a.example", XF_MSVC_CLIENT);
    xf_metrics_tenant_enter(&b, "a.example", XF_MSVC_SERVER);
    xf_metrics_tenant_enter(&c, "we\"ird\\.example", XF_MSVC_HTTP);
    xf_metrics_tenant_enter(&d, "a.example", XF_MSVC_OUTBOUND);   /* not a tenant service */
    assert_int_equal(d, 0);
    char *s = render_checked("x");
    assert_non_null(strstr(s, "\nxmppfront_tenant_connections{tenant=\"a.example\",service=\"client\"} 1\n"));
    assert_non_null(strstr(s, "\nxmppfront_tenant_connections{tenant=\"a.example\",service=\"server\"} 1\n"));
    assert_non_null(strstr(s, "\nxmppfront_tenant_connections{tenant=\"we\\\"ird\\\\.example\",service=\"http\"} 1\n"));
    assert_non_null(strstr(s, "\nxmppfront_tenant_connections{tenant=\"(other)\",service=\"client\"} 0\n"));
    free(s);
    xf_metrics_tenant_leave(&a);
    xf_metrics_tenant_leave(&a);                                   /* twice: once */
    xf_metrics_tenant_leave(&b);
    xf_metrics_tenant_leave(&c);
    s = render_checked("x");
    assert_non_null(strstr(s, "\nxmppfront_tenant_connections{tenant=\"a.example\",service=\"client\"} 0\n"));
    assert_non_null(strstr(s, "\nxmppfront_tenant_connections{tenant=\"a.example\",service=\"server\"} 0\n"));
    free(s);
    /* Fill the table: the tenants past XF_METRICS_TENANTS_MAX share "(other)". */
    static int slots[XF_METRICS_TENANTS_MAX + 10];
    char name[40];
    for (int i = 0; i < XF_METRICS_TENANTS_MAX + 10; i++) {
        snprintf(name, sizeof name, "t%d.example", i);
        xf_metrics_tenant_enter(&slots[i], name, XF_MSVC_CLIENT);
        assert_int_not_equal(slots[i], 0);
    }
    s = render_checked("x");
    /* 2 names already in the table: 12 of the new ones do not fit. */
    assert_non_null(strstr(s, "\nxmppfront_tenant_connections{tenant=\"(other)\",service=\"client\"} 12\n"));
    free(s);
    for (int i = 0; i < XF_METRICS_TENANTS_MAX + 10; i++)
        xf_metrics_tenant_leave(&slots[i]);
    s = render_checked("x");
    assert_non_null(strstr(s, "\nxmppfront_tenant_connections{tenant=\"(other)\",service=\"client\"} 0\n"));
    assert_null(strstr(s, "\",service=\"client\"} 1\n"));
    free(s);
    xf_metrics_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(escaping),
        cmocka_unit_test(counters),
        cmocka_unit_test(connection_gauge),
        cmocka_unit_test(mappings),
        cmocka_unit_test(exposition),
        cmocka_unit_test(per_tenant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
