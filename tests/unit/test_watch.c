/*
 * proxy/watch.c: which file changes trigger a reload, and how often (debounced).
 * A snapshot without tenants names a tenants folder and a main file; the certificate
 * layouts are exercised through the main file path (add_file treats every path alike):
 * a certbot-like live/ symlink and a Secret-volume ..data swap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "proxy/watch.h"

static int g_calls;
static char g_path[4096];

static void on_change(void *ud, const char *path)
{
    (void)ud;
    g_calls++;
    snprintf(g_path, sizeof g_path, "%s", path);
}

static char g_dir[64];

static void path_of(char *out, size_t len, const char *rel)
{
    snprintf(out, len, "%s/%s", g_dir, rel);
}

static void write_file(const char *rel, const char *text)
{
    char p[256];
    path_of(p, sizeof p, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void do_symlink(const char *target, const char *rel)
{
    char p[256];
    path_of(p, sizeof p, rel);
    assert_int_equal(symlink(target, p), 0);
}

static void do_rename(const char *from, const char *to)
{
    char a[256], b[256];
    path_of(a, sizeof a, from);
    path_of(b, sizeof b, to);
    assert_int_equal(rename(a, b), 0);
}

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

/* Run the loop for ms milliseconds (events, then the debounce). */
static void run_ms(uv_loop_t *loop, unsigned ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, stop_loop, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void test_watch_layouts(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/xf-test-watch-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    char p[256];
    const char *dirs[] = { "tenants", "live", "archive", "sec", "sec/..t1", "sec/..t2" };
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        path_of(p, sizeof p, dirs[i]);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    write_file("archive/main1.json", "{}");
    do_symlink("../archive/main1.json", "live/main.json");
    write_file("sec/..t1/tls.crt", "1");
    do_symlink("..t1", "sec/..data");
    do_symlink("..data/tls.crt", "sec/tls.crt");

    char tenants[256], mainp[256], secp[256];
    path_of(tenants, sizeof tenants, "tenants");
    path_of(mainp, sizeof mainp, "live/main.json");
    path_of(secp, sizeof secp, "sec/tls.crt");
    xf_config cfg = {0};
    cfg.tenants_dir = tenants;
    cfg.path = mainp;
    cfg.federation.dialback_secret_file = secp;   /* another watched file */

    uv_loop_t loop;
    uv_loop_init(&loop);
    xf_watch *w = xf_watch_new(&loop, 100, on_change, NULL);
    assert_non_null(w);
    /* tenants, live, archive (the symlink's target), sec, sec/..t1 */
    assert_int_equal(xf_watch_arm(w, &cfg), 5);

    /* Unrelated names: no reload. */
    write_file("tenants/a.json.swp", "x");
    write_file("live/README", "x");
    write_file("archive/other.pem", "x");
    run_ms(&loop, 300);
    assert_int_equal(g_calls, 0);

    /* A tenant file renamed into place: one reload, naming it. */
    write_file("tenants/a.json.tmp", "{}");
    do_rename("tenants/a.json.tmp", "tenants/a.json");
    run_ms(&loop, 300);
    assert_int_equal(g_calls, 1);
    assert_non_null(strstr(g_path, "tenants/a.json"));

    /* certbot: new archive file, live/ symlink switched (tmp + rename): one reload. */
    write_file("archive/main2.json", "{}");
    do_symlink("../archive/main2.json", "live/main.json.new");
    do_rename("live/main.json.new", "live/main.json");
    run_ms(&loop, 300);
    assert_int_equal(g_calls, 2);
    assert_non_null(strstr(g_path, "live/main.json"));

    /* Secret volume: new ..t2, ..data_tmp renamed over ..data: one reload. */
    write_file("sec/..t2/tls.crt", "2");
    do_symlink("..t2", "sec/..data_tmp");
    do_rename("sec/..data_tmp", "sec/..data");
    run_ms(&loop, 300);
    assert_int_equal(g_calls, 3);

    /* A burst of events within the debounce: one reload. */
    for (int i = 0; i < 5; i++) {
        write_file("tenants/b.json", "{}");
        run_ms(&loop, 20);
    }
    run_ms(&loop, 300);
    assert_int_equal(g_calls, 4);

    /* Disarmed: nothing. */
    xf_watch_disarm(w);
    write_file("tenants/c.json", "{}");
    run_ms(&loop, 300);
    assert_int_equal(g_calls, 4);

    xf_watch_close(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_layouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
