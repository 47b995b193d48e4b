/* upgrade: the new process's side of a binary upgrade (proxy/upgrade.h): XF_INHERIT_FDS
   parsed and checked, sockets matched to listeners by getsockname, each given once,
   unused ones closed, stray descriptors closed, the variables unset. xf_upgrade_init is
   once per process, so every case runs in a child of its own. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include "proxy/upgrade.h"

/* A TCP socket on 127.0.0.1:port (0 = any), SO_REUSEPORT, listening when asked. */
static int tcp_socket(int port, int do_listen, int *port_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0)
        return -1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || (do_listen && listen(fd, 8) < 0)) {
        close(fd);
        return -1;
    }
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    if (port_out)
        *port_out = ntohs(a.sin_port);
    return fd;
}

static xf_listener_conf conf_for(int port)
{
    xf_listener_conf lc;
    memset(&lc, 0, sizeof(lc));
    struct sockaddr_in *a = (struct sockaddr_in *)&lc.addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lc.addrlen = sizeof(*a);
    snprintf(lc.name, sizeof(lc.name), "127.0.0.1:%d", port);
    return lc;
}

static int is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

/* Runs body in a child; the child's exit status is the number of failed expectations. */
#define EXPECT(c) do { if (!(c)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); bad++; } } while (0)
static void in_child(int (*body)(void))
{
    fflush(NULL);
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0)
        _exit(body());
    int st = 0;
    assert_int_equal(waitpid(p, &st, 0), p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static int body_valid(void)
{
    int bad = 0, pa, pb;
    int a1 = tcp_socket(0, 1, &pa), a2 = tcp_socket(pa, 1, NULL), b = tcp_socket(0, 1, &pb);
    int stray = open("/dev/null", O_RDONLY);
    EXPECT(a1 >= 3 && a2 >= 3 && b >= 3 && stray >= 3);
    char env[256];
    snprintf(env, sizeof(env), "%d:127.0.0.1:%d,%d:127.0.0.1:%d,%d:127.0.0.1:%d", a1, pa, a2,
             pa, b, pb);
    setenv("XF_INHERIT_FDS", env, 1);
    setenv("XF_UPGRADE_FROM", "4242", 1);
    char err[256] = "";
    char *argv[] = {"xmppfront", "-c", "x.json", NULL};
    EXPECT(xf_upgrade_init(3, argv, err, sizeof(err)) == 0);
    EXPECT(xf_upgrade_inherited());
    EXPECT(getenv("XF_INHERIT_FDS") == NULL && getenv("XF_UPGRADE_FROM") == NULL);
    EXPECT(!is_open(stray));                              /* not ours: closed */
    EXPECT((fcntl(a1, F_GETFD) & FD_CLOEXEC) && (fcntl(b, F_GETFD) & FD_CLOEXEC));
    xf_listener_conf la = conf_for(pa), lb = conf_for(pb), lc = conf_for(pa == 1 ? 2 : 1);
    EXPECT(xf_upgrade_count(&la) == 2);
    EXPECT(xf_upgrade_count(&lc) == 0);
    EXPECT(xf_upgrade_take(&lc) == -1);
    int t1 = xf_upgrade_take(&la), t2 = xf_upgrade_take(&la);
    EXPECT((t1 == a1 && t2 == a2) || (t1 == a2 && t2 == a1));
    EXPECT(xf_upgrade_take(&la) == -1);                   /* each fd once */
    EXPECT(xf_upgrade_count(&la) == 0);
    EXPECT(xf_upgrade_count(&lb) == 1);
    xf_upgrade_close_unused();                            /* b: no listener took it */
    EXPECT(!is_open(b));
    EXPECT(is_open(a1) && is_open(a2));
    EXPECT(xf_upgrade_take(&lb) == -1);
    return bad;
}

static int body_ipv6_mismatch(void)
{
    int bad = 0, pa;
    int a = tcp_socket(0, 1, &pa);
    char env[64];
    snprintf(env, sizeof(env), "%d:x", a);
    setenv("XF_INHERIT_FDS", env, 1);
    char err[256] = "", *argv[] = {"xmppfront", NULL};
    EXPECT(xf_upgrade_init(1, argv, err, sizeof(err)) == 0);
    xf_listener_conf l6;
    memset(&l6, 0, sizeof(l6));
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&l6.addr;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)pa);
    s6->sin6_addr = in6addr_any;                          /* same port, other address */
    EXPECT(xf_upgrade_count(&l6) == 0);
    xf_listener_conf l4 = conf_for(pa);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&l4.addr;
    s4->sin_addr.s_addr = htonl(INADDR_ANY);              /* 0.0.0.0 is another address */
    EXPECT(xf_upgrade_count(&l4) == 0);
    return bad;
}

static int init_fails_with(const char *env, int want)
{
    int bad = 0;
    setenv("XF_INHERIT_FDS", env, 1);
    char err[256] = "", *argv[] = {"xmppfront", NULL};
    int rc = xf_upgrade_init(1, argv, err, sizeof(err));
    if (rc != want)
        fprintf(stderr, "'%s': rc %d (want %d): %s\n", env, rc, want, err);
    EXPECT(rc == want);
    EXPECT(err[0] != '\0');
    return bad;
}

static int body_malformed(void) { return init_fails_with("abc", -EINVAL); }
static int body_low_fd(void) { return init_fails_with("1:127.0.0.1:5222", -EINVAL); }
static int body_no_colon(void) { return init_fails_with("7", -EINVAL); }
static int body_closed_fd(void) { return init_fails_with("999:127.0.0.1:5222", -EBADF); }

static int body_not_listening(void)
{
    int fd = tcp_socket(0, 0, NULL);                      /* bound, not listening */
    char env[64];
    snprintf(env, sizeof(env), "%d:127.0.0.1:1", fd);
    return init_fails_with(env, -ENOTSOCK);
}

static int body_none(void)
{
    int bad = 0;
    unsetenv("XF_INHERIT_FDS");
    unsetenv("XF_UPGRADE_READY_FD");
    int keep = open("/dev/null", O_RDONLY);
    char err[256] = "", *argv[] = {"xmppfront", NULL};
    EXPECT(xf_upgrade_init(1, argv, err, sizeof(err)) == 0);
    EXPECT(!xf_upgrade_inherited());
    EXPECT(is_open(keep));                                /* a normal start closes nothing */
    xf_listener_conf l = conf_for(5222);
    EXPECT(xf_upgrade_take(&l) == -1);
    xf_upgrade_ready();                                   /* no-op */
    return bad;
}

static void test_valid(void **s) { (void)s; in_child(body_valid); }
static void test_address_mismatch(void **s) { (void)s; in_child(body_ipv6_mismatch); }
static void test_malformed(void **s)
{
    (void)s;
    in_child(body_malformed);
    in_child(body_low_fd);
    in_child(body_no_colon);
}
static void test_bad_fds(void **s)
{
    (void)s;
    in_child(body_closed_fd);
    in_child(body_not_listening);
}
static void test_no_upgrade(void **s) { (void)s; in_child(body_none); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_address_mismatch),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bad_fds),
        cmocka_unit_test(test_no_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
