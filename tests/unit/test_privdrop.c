/* Unit tests for proxy/privdrop.c and the main file's process keys (proxy/config.c):
   "user"/"group"/"key_permissions"/"log_format" parsing, name resolution, and a real
   drop in a forked child when the tests run as root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/log.h"
#include "proxy/privdrop.h"

#define L1 "\"listeners\": [{\"port\": 5222, \"tls\": \"starttls\", \"service\": \"client\"}]"

static xf_config *parse_ok(const char *json)
{
    xf_config *c = NULL;
    char err[512] = "";
    if (xf_config_parse(json, strlen(json), "/etc/xf/main.json", &c, err, sizeof err) != 0)
        fail_msg("%s: %s", json, err);
    return c;
}

static void expect_err(const char *json, const char *want)
{
    xf_config *c = NULL;
    char err[512] = "";
    assert_int_equal(xf_config_parse(json, strlen(json), "/etc/xf/main.json", &c, err,
                                     sizeof err), -1);
    assert_null(c);
    assert_string_equal(err, want);
}

static void process_keys_parse(void **state)
{
    (void)state;
    xf_config *c = parse_ok("{" L1 "}");
    assert_null(c->user);
    assert_null(c->group);
    assert_int_equal(c->key_permissions, XF_KEYPERM_WARN);
    assert_int_equal(c->log_format, XF_LOG_TEXT);
    xf_config_unref(c);
    c = parse_ok("{" L1 ", \"user\": \"xmppfront\", \"group\": \"ssl-cert\", "
                 "\"key_permissions\": \"refuse\", \"log_format\": \"json\"}");
    assert_string_equal(c->user, "xmppfront");
    assert_string_equal(c->group, "ssl-cert");
    assert_int_equal(c->key_permissions, XF_KEYPERM_REFUSE);
    assert_int_equal(c->log_format, XF_LOG_JSON);
    xf_config_unref(c);
    c = parse_ok("{" L1 ", \"key_permissions\": \"ignore\", \"log_format\": \"text\"}");
    assert_int_equal(c->key_permissions, XF_KEYPERM_IGNORE);
    xf_config_unref(c);
}

static void process_keys_errors(void **state)
{
    (void)state;
    expect_err("{" L1 ", \"group\": \"xmppfront\"}",
               "/etc/xf/main.json: group: needs \"user\" (the user to drop to)");
    expect_err("{" L1 ", \"user\": \"a:b\"}",
               "/etc/xf/main.json: user: \"a:b\" is not a user or group name");
    expect_err("{" L1 ", \"user\": \"\"}", "/etc/xf/main.json: user: must not be empty");
    expect_err("{" L1 ", \"user\": 0}", "/etc/xf/main.json: user: must be a string, not a number");
    expect_err("{" L1 ", \"key_permissions\": \"strict\"}",
               "/etc/xf/main.json: key_permissions: \"strict\" is not \"warn\", \"refuse\" or \"ignore\"");
    expect_err("{" L1 ", \"log_format\": \"JSON\"}",
               "/etc/xf/main.json: log_format: \"JSON\" is not \"text\" or \"json\"");
}

static void resolve_names(void **state)
{
    (void)state;
    xf_privdrop pd;
    char err[256];
    assert_int_equal(xf_privdrop_resolve(NULL, NULL, &pd, err, sizeof err), 0);
    assert_int_equal(pd.drop, 0);
    assert_int_equal(xf_privdrop_resolve("no-such-user-xf", NULL, &pd, err, sizeof err), -1);
    assert_string_equal(err, "user \"no-such-user-xf\": no such user");
    assert_int_equal(xf_privdrop_resolve("root", NULL, &pd, err, sizeof err), -1);
    assert_non_null(strstr(err, "is uid 0: nothing to drop to"));
    assert_int_equal(xf_privdrop_resolve("nobody", "no-such-group-xf", &pd, err, sizeof err), -1);
    assert_string_equal(err, "group \"no-such-group-xf\": no such group");
    struct passwd *nob = getpwnam("nobody");
    if (nob == NULL) skip();
    int rc = xf_privdrop_resolve("nobody", NULL, &pd, err, sizeof err);
    if (geteuid() == 0) {
        assert_int_equal(rc, 0);
        assert_int_equal(pd.drop, 1);
        assert_int_equal(pd.uid, nob->pw_uid);
        assert_int_equal(pd.gid, nob->pw_gid);            /* primary group by default */
        struct group *d = getgrnam("daemon");
        if (d != NULL) {
            assert_int_equal(xf_privdrop_resolve("nobody", "daemon", &pd, err, sizeof err), 0);
            assert_int_equal(pd.gid, d->gr_gid);
        }
    } else if (geteuid() != nob->pw_uid) {
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err, "not root: cannot switch users"));
    }
}

/* As root: the drop in a child, which then checks it cannot get back. */
static void apply_in_child(void **state)
{
    (void)state;
    if (geteuid() != 0 || getpwnam("nobody") == NULL) skip();
    xf_privdrop pd;
    char err[256];
    assert_int_equal(xf_privdrop_resolve("nobody", NULL, &pd, err, sizeof err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (xf_privdrop_apply(&pd, err, sizeof err) != 0) _exit(10);
        uid_t r, e, s;
        if (getresuid(&r, &e, &s) != 0 || r != pd.uid || e != pd.uid || s != pd.uid) _exit(11);
        if (setuid(0) == 0 || seteuid(0) == 0) _exit(12);
        gid_t groups[64];
        int n = getgroups(64, groups);
        for (int i = 0; i < n; i++)
            if (groups[i] == 0) _exit(13);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    pd.drop = 0;                                          /* no drop: nothing changes */
    assert_int_equal(xf_privdrop_apply(&pd, err, sizeof err), 0);
    assert_int_equal(geteuid(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(process_keys_parse),
        cmocka_unit_test(process_keys_errors),
        cmocka_unit_test(resolve_names),
        cmocka_unit_test(apply_in_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
