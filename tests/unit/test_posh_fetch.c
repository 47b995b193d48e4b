/* Unit tests for proxy/posh_fetch.c: the pure steps (URL building, the delegation
   decision, the cache lifetime rule) and the request contract on a real loop
   (callbacks by id, never from inside the start call, cancel, sharing, cache of a
   failure), with a fetch that fails fast (localhost, a closed port). The HTTPS
   paths themselves run in tests/lab/test_posh_outbound.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>
#include "certs/posh.h"
#include "proxy/posh_fetch.h"

static void url_building(void **state)
{
    (void)state;
    char u[XF_POSH_URL_MAX];
    assert_int_equal(xf_posh_fetch_url("example.net", 0, u, sizeof u), 0);
    assert_string_equal(u, "https://example.net/.well-known/posh/xmpp-server.json");
    assert_int_equal(xf_posh_fetch_url("example.net", 443, u, sizeof u), 0);
    assert_string_equal(u, "https://example.net/.well-known/posh/xmpp-server.json");
    assert_int_equal(xf_posh_fetch_url("x_y.Example-1.net", 8443, u, sizeof u), 0);
    assert_string_equal(u, "https://x_y.Example-1.net:8443/.well-known/posh/xmpp-server.json");
    /* anything that would change the URL, IP literals, empty labels */
    static const char *bad[] = {
        "", ".", "a..b", ".a", "a.", "a/b", "a@b", "a:1", "a?b", "a#b", "a%2fb", "a b",
        "[::1]", "192.0.2.1", "127.1", "evil.example/x", "a\nb",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        strcpy(u, "junk");
        assert_int_equal(xf_posh_fetch_url(bad[i], 0, u, sizeof u), -1);
        assert_string_equal(u, "");
    }
    assert_int_equal(xf_posh_fetch_url(NULL, 0, u, sizeof u), -1);
    /* labels up to 63, names up to 253 */
    char d[300];
    memset(d, 'a', 63);
    d[63] = '\0';
    assert_int_equal(xf_posh_fetch_url(d, 0, u, sizeof u), 0);
    memset(d, 'a', 64);
    d[64] = '\0';
    assert_int_equal(xf_posh_fetch_url(d, 0, u, sizeof u), -1);
    for (int i = 0; i < 254; i++)
        d[i] = (i % 2) ? '.' : 'a';
    d[253] = 'a';
    d[254] = '\0';
    assert_int_equal(xf_posh_fetch_url(d, 0, u, sizeof u), -1);
    d[253] = '\0';
    assert_int_equal(xf_posh_fetch_url(d, 0, u, sizeof u), 0);
    /* too small an output buffer */
    assert_int_equal(xf_posh_fetch_url("example.net", 0, u, 20), -1);
}

static void parse(const char *json, struct xf_posh_doc *d)
{
    assert_int_equal(xf_posh_parse((const unsigned char *)json, strlen(json), d, NULL, 0), 0);
}

static void delegation_step(void **state)
{
    (void)state;
    static struct xf_posh_doc fp, ref, fp_short;
    parse("{\"fingerprints\":[{\"sha-256\":\"4/mggdlVx8A3pvHAWW5sD+qJyMtUHgiRuPjVC48N0XQ=\"}],"
          "\"expires\":604800}", &fp);
    parse("{\"url\":\"https://hosting.example.net/.well-known/posh/xmpp-server.json\","
          "\"expires\":86400}", &ref);
    parse("{\"fingerprints\":[{\"sha-256\":\"4/mggdlVx8A3pvHAWW5sD+qJyMtUHgiRuPjVC48N0XQ=\"}],"
          "\"expires\":60}", &fp_short);
    long long e = 0;
    /* the domain's own fingerprints document: done, its expires */
    assert_int_equal(xf_posh_fetch_step(1, &fp, &e), XF_POSH_STEP_DONE);
    assert_int_equal(e, 604800);
    /* a reference at stage 1: follow; then fingerprints: done, the LOWER expires */
    e = 0;
    assert_int_equal(xf_posh_fetch_step(1, &ref, &e), XF_POSH_STEP_FOLLOW);
    assert_int_equal(e, 86400);
    assert_int_equal(xf_posh_fetch_step(2, &fp, &e), XF_POSH_STEP_DONE);
    assert_int_equal(e, 86400);                  /* 604800 does not raise it */
    e = 0;
    assert_int_equal(xf_posh_fetch_step(1, &ref, &e), XF_POSH_STEP_FOLLOW);
    assert_int_equal(xf_posh_fetch_step(2, &fp_short, &e), XF_POSH_STEP_DONE);
    assert_int_equal(e, 60);                     /* the delegated one is lower */
    /* a second reference: invalid (RFC 7711 §3.4) */
    e = 0;
    assert_int_equal(xf_posh_fetch_step(1, &ref, &e), XF_POSH_STEP_FOLLOW);
    assert_int_equal(xf_posh_fetch_step(2, &ref, &e), XF_POSH_STEP_INVALID);
    /* bad arguments */
    assert_int_equal(xf_posh_fetch_step(3, &fp, &e), XF_POSH_STEP_INVALID);
    assert_int_equal(xf_posh_fetch_step(1, NULL, &e), XF_POSH_STEP_INVALID);
    assert_int_equal(xf_posh_fetch_step(1, &fp, NULL), XF_POSH_STEP_INVALID);
}

static void cache_rule(void **state)
{
    (void)state;
    /* a document: its (lower) expires, capped */
    assert_int_equal(xf_posh_fetch_cache_ttl(XF_POSHF_DOC, 2, 0, 0), 2);
    assert_int_equal(xf_posh_fetch_cache_ttl(XF_POSHF_DOC, 604800, 0, 0), XF_POSH_FETCH_TTL_MAX_S);
    assert_int_equal(xf_posh_fetch_cache_ttl(XF_POSHF_DOC, 604800, 3600, 0), 3600);
    assert_int_equal(xf_posh_fetch_cache_ttl(XF_POSHF_DOC, XF_POSH_EXPIRES_MAX, 0, 0),
                     XF_POSH_FETCH_TTL_MAX_S);
    assert_int_equal(xf_posh_fetch_cache_ttl(XF_POSHF_DOC, 0, 0, 0), 1);
    /* failures: briefly, whatever a document said */
    assert_int_equal(xf_posh_fetch_cache_ttl(XF_POSHF_ABSENT, 604800, 0, 0), XF_POSH_FETCH_ERR_TTL_S);
    assert_int_equal(xf_posh_fetch_cache_ttl(XF_POSHF_ERROR, 0, 0, 7), 7);
    assert_int_equal(xf_posh_fetch_cache_ttl(XF_POSHF_INVALID, 10, 0, 0), XF_POSH_FETCH_ERR_TTL_S);
}

/* ---- the request contract on a loop ---- */

static int in_start;
static int calls[8];
static int last_status[8], last_cache[8];
static char last_reason[8][160];

static void on_answer(void *ud, uint64_t id, const xf_posh_answer *a, int from_cache)
{
    int k = (int)(intptr_t)ud;
    (void)id;
    assert_int_equal(in_start, 0);               /* never from inside xf_posh_fetch */
    calls[k]++;
    last_status[k] = a->status;
    last_cache[k] = from_cache;
    snprintf(last_reason[k], sizeof last_reason[k], "%s", a->reason);
}

static uint64_t start(xf_posh_fetcher *f, const char *domain, int k)
{
    in_start = 1;
    uint64_t id = xf_posh_fetch(f, domain, on_answer, (void *)(intptr_t)k);
    in_start = 0;
    return id;
}

static void run_until(uv_loop_t *loop, int *flag, int want)
{
    for (int i = 0; i < 2000 && *flag < want; i++)
        uv_run(loop, UV_RUN_ONCE);
}

static void requests_on_a_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    char err[200];
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(xf_posh_fetch_global_init(), 0);
    memset(calls, 0, sizeof calls);
    /* port 1 on localhost: refused at once, an ERROR answer */
    xf_posh_fetch_conf c = { .timeout_ms = 3000, .port = 1, .err_ttl_s = 60 };
    xf_posh_fetcher *f = xf_posh_fetcher_new(&loop, &c, err, sizeof err);
    assert_non_null(f);
    /* bad domains: 0, no callback ever */
    assert_int_equal(start(f, "a/b", 5), 0);
    assert_int_equal(start(f, "192.0.2.1", 5), 0);

    uint64_t a = start(f, "localhost", 0);
    uint64_t b = start(f, "localhost", 1);       /* joins a's fetch */
    uint64_t c2 = start(f, "localhost", 2);      /* cancelled: never called */
    assert_true(a != 0 && b != 0 && c2 != 0 && a != b && b != c2);
    assert_int_equal(xf_posh_fetch_cancel(f, c2), 1);
    assert_int_equal(xf_posh_fetch_cancel(f, c2), 0);
    assert_int_equal(xf_posh_fetch_cancel(f, 0), 0);
    assert_int_equal(xf_posh_fetch_requests(f), 1);
    run_until(&loop, &calls[1], 1);
    assert_int_equal(calls[0], 1);
    assert_int_equal(calls[1], 1);
    assert_int_equal(calls[2], 0);
    assert_int_equal(last_status[0], XF_POSHF_ERROR);
    assert_int_equal(last_cache[0], 0);
    assert_non_null(strstr(last_reason[0], "fetch https://localhost:1/.well-known/posh/xmpp-server.json"));

    /* the failure is cached (err_ttl_s): no new request, delivered later, not inside */
    uint64_t d = start(f, "localhost", 3);
    assert_true(d != 0);
    assert_int_equal(calls[3], 0);
    run_until(&loop, &calls[3], 1);
    assert_int_equal(calls[3], 1);
    assert_int_equal(last_cache[3], 1);
    assert_int_equal(last_status[3], XF_POSHF_ERROR);
    assert_int_equal(xf_posh_fetch_requests(f), 1);

    /* a cache hit cancelled before delivery: never called */
    uint64_t e = start(f, "localhost", 4);
    assert_int_equal(xf_posh_fetch_cancel(f, e), 1);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(calls[4], 0);

    /* a request still pending at free: never called; every handle closes */
    uint64_t g = start(f, "localhost.localdomain", 6);
    assert_true(g != 0);
    xf_posh_fetcher_free(f);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(calls[6], 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_building),
        cmocka_unit_test(delegation_step),
        cmocka_unit_test(cache_rule),
        cmocka_unit_test(requests_on_a_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
