/* upgrade: see upgrade.h and docs/upgrade.md. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include "proxy/log.h"
#include "proxy/sdnotify.h"
#include "proxy/stats.h"
#include "proxy/upgrade.h"
#include "proxy/worker.h"

extern char **environ;

#define ENV_FDS "XF_INHERIT_FDS"
#define ENV_READY "XF_UPGRADE_READY_FD"
#define ENV_FROM "XF_UPGRADE_FROM"
#define ENV_TIMEOUT "XF_UPGRADE_TIMEOUT_S"
#define DEFAULT_TIMEOUT_S 30
#define EOF_GRACE_MS 2000             /* pipe closed: wait this long for the exit status */
#define MAX_INHERIT 4096

/* ---------------------------------------------------------------- start-up record */

typedef struct inherited {
    int fd;
    int taken;
    struct sockaddr_storage addr;
    char name[80];
} inherited;

static struct {
    char exe[PATH_MAX];               /* absolute path the binary was started from */
    char cwd[PATH_MAX];
    char **argv;                      /* copy of main's argv, NULL-terminated */
    inherited *inh;
    size_t n_inh;
    int ready_fd;                     /* new process: write end of the ready pipe */
    long from_pid;
} g_start = {.ready_fd = -1};

/* argv[0] as an absolute path, without resolving symbolic links (a package may switch
   a link to a new version: the upgrade must exec what the link names then). */
static int resolve_exe(const char *argv0, char *out, size_t cap)
{
    if (argv0 != NULL && argv0[0] == '/') {
        if (strlen(argv0) >= cap)
            return -ENAMETOOLONG;
        strcpy(out, argv0);
        return 0;
    }
    if (argv0 != NULL && strchr(argv0, '/') != NULL) {
        int n = snprintf(out, cap, "%s/%s", g_start.cwd, argv0);
        return n > 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
    }
    const char *path = getenv("PATH");
    while (argv0 != NULL && *argv0 && path != NULL && *path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        int n = snprintf(out, cap, "%.*s/%s", (int)len, path, argv0);
        if (len > 0 && path[0] == '/' && n > 0 && (size_t)n < cap && access(out, X_OK) == 0)
            return 0;
        path = end ? end + 1 : path + len;
    }
    /* Last resort: the kernel's idea, which names the old inode after a replacement. */
    ssize_t k = readlink("/proc/self/exe", out, cap - 1);
    if (k <= 0)
        return -errno;
    out[k] = '\0';
    char *del = strstr(out, " (deleted)");
    if (del != NULL)
        *del = '\0';
    return 0;
}

static int same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

/* One "fd:name" entry of XF_INHERIT_FDS: the fd must be an open listening TCP socket. */
static int take_entry(const char *s, size_t len, char *err, size_t errlen)
{
    char buf[128];
    if (len == 0 || len >= sizeof(buf))
        goto bad;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    long fd = strtol(buf, &end, 10);
    if (errno || end == buf || *end != ':' || fd < 3 || fd > INT_MAX)
        goto bad;
    inherited *e = &g_start.inh[g_start.n_inh];
    memset(e, 0, sizeof(*e));
    e->fd = (int)fd;
    snprintf(e->name, sizeof(e->name), "%s", end + 1);
    int listening = 0, type = 0;
    socklen_t ol = sizeof(listening), tl = sizeof(type), al = sizeof(e->addr);
    if (fcntl(e->fd, F_SETFD, FD_CLOEXEC) < 0 ||
        getsockopt(e->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) < 0 ||
        getsockopt(e->fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
        getsockname(e->fd, (struct sockaddr *)&e->addr, &al) < 0) {
        snprintf(err, errlen, ENV_FDS ": fd %d (%s): %s", e->fd, e->name, strerror(errno));
        return -EBADF;
    }
    if (!listening || type != SOCK_STREAM) {
        snprintf(err, errlen, ENV_FDS ": fd %d (%s) is not a listening TCP socket", e->fd,
                 e->name);
        return -ENOTSOCK;
    }
    g_start.n_inh++;
    return 0;
bad:
    snprintf(err, errlen, ENV_FDS ": malformed entry '%.*s' (want fd:listener)",
             (int)(len > 60 ? 60 : len), s);
    return -EINVAL;
}

/* New process: close every descriptor above stderr that is neither an inherited
   listener nor the ready pipe. The old process marks its sockets close-on-exec, but a
   library's socket without the flag would keep a peer's or backend's connection open
   here after the old process closed it, and a drain would never end for that peer. */
static void close_strays(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    int keep_dir = dirfd(d);
    int strays[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < sizeof(strays) / sizeof(strays[0])) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end != '\0' || end == e->d_name || fd < 3 || fd == keep_dir ||
            fd == g_start.ready_fd)
            continue;
        int ours = 0;
        for (size_t i = 0; i < g_start.n_inh && !ours; i++)
            ours = g_start.inh[i].fd == fd;
        if (!ours)
            strays[n++] = (int)fd;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++)
        close(strays[i]);
}

int xf_upgrade_init(int argc, char **argv, char *err, size_t errlen)
{
    if (getcwd(g_start.cwd, sizeof(g_start.cwd)) == NULL)
        snprintf(g_start.cwd, sizeof(g_start.cwd), "/");
    if (resolve_exe(argc > 0 ? argv[0] : NULL, g_start.exe, sizeof(g_start.exe)) != 0)
        g_start.exe[0] = '\0';       /* an upgrade then fails with a log line */
    g_start.argv = calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; g_start.argv != NULL && i < argc; i++)
        g_start.argv[i] = argv[i];   /* main's argv lives as long as the process */

    const char *r = getenv(ENV_READY), *f = getenv(ENV_FROM), *fds = getenv(ENV_FDS);
    if (f != NULL)
        g_start.from_pid = strtol(f, NULL, 10);
    if (r != NULL) {
        long fd = strtol(r, NULL, 10);
        if (fd >= 3 && fd <= INT_MAX && fcntl((int)fd, F_SETFD, FD_CLOEXEC) == 0)
            g_start.ready_fd = (int)fd;
    }
    int rc = 0;
    if (fds != NULL) {
        size_t n = 1;
        for (const char *p = fds; *p; p++)
            n += *p == ',';
        if (n > MAX_INHERIT) {
            snprintf(err, errlen, ENV_FDS ": %zu entries, at most %d", n, MAX_INHERIT);
            rc = -E2BIG;
        } else if ((g_start.inh = calloc(n, sizeof(*g_start.inh))) == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = -ENOMEM;
        }
        for (const char *p = fds; rc == 0 && *p;) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            rc = take_entry(p, len, err, errlen);
            p += len + (end != NULL);
        }
    }
    if (rc == 0 && (fds != NULL || r != NULL))
        close_strays();
    /* Not for our own children (the next upgrade sets them anew). */
    unsetenv(ENV_FDS);
    unsetenv(ENV_READY);
    unsetenv(ENV_FROM);
    return rc;
}

int xf_upgrade_inherited(void) { return g_start.inh != NULL || g_start.ready_fd >= 0; }

int xf_upgrade_take(const xf_listener_conf *lc)
{
    return xf_upgrade_take_addr(&lc->addr);
}

int xf_upgrade_take_addr(const struct sockaddr_storage *addr)
{
    for (size_t i = 0; i < g_start.n_inh; i++) {
        inherited *e = &g_start.inh[i];
        if (!e->taken && same_address(&e->addr, addr)) {
            e->taken = 1;
            return e->fd;
        }
    }
    return -1;
}

unsigned xf_upgrade_count(const xf_listener_conf *lc)
{
    unsigned n = 0;
    for (size_t i = 0; i < g_start.n_inh; i++)
        n += !g_start.inh[i].taken && same_address(&g_start.inh[i].addr, &lc->addr);
    return n;
}

void xf_upgrade_close_unused(void)
{
    size_t used = 0;
    for (size_t i = 0; i < g_start.n_inh; i++) {
        inherited *e = &g_start.inh[i];
        used += e->taken;
        if (!e->taken) {
            xf_info("upgrade: inherited socket %s (fd %d) is not configured any more: "
                    "closed", e->name, e->fd);
            close(e->fd);
            e->taken = 1;
        }
    }
    if (g_start.n_inh > 0)
        xf_info("upgrade: pid=%ld took over %zu listening sockets from pid=%ld", (long)getpid(),
                used, g_start.from_pid);
}

void xf_upgrade_ready(void)
{
    if (g_start.ready_fd < 0)
        return;
    if (xf_sd_active()) {
        /* The old process exits once it has read "ready": systemd must know the new
           main PID first, or it takes the old one's exit for the service's end. */
        xf_sd_mainpid((long)getpid());
        int r = sd_notify_barrier(0, 5ull * 1000000ull);
        if (r < 0)
            xf_warn("upgrade: sd_notify_barrier: %s (is NotifyAccess=all set?)", strerror(-r));
    }
    static const char msg[] = "ready\n";
    ssize_t w = write(g_start.ready_fd, msg, sizeof(msg) - 1);
    if (w != (ssize_t)sizeof(msg) - 1)
        xf_warn("upgrade: telling pid=%ld we are ready: %s", g_start.from_pid,
                w < 0 ? strerror(errno) : "short write");
    close(g_start.ready_fd);
    g_start.ready_fd = -1;
    xf_info("upgrade: pid=%ld serves; pid=%ld drains", (long)getpid(), g_start.from_pid);
}

/* ---------------------------------------------------------------- old process */

enum up_state {
    UP_IDLE,                          /* no upgrade; SIGUSR2 starts one */
    UP_WAITING,                       /* new process spawned, "ready" not yet read */
    UP_CLOSING,                       /* failed or abandoned: handles closing */
    UP_HANDED_OVER,                   /* "ready" read: this process drains */
};

static struct {
    enum up_state state;
    uv_process_t proc;
    uv_pipe_t rd;
    uv_timer_t timer;
    int open_handles;                 /* of proc, rd, timer */
    int proc_open, rd_open, timer_open;
    int exited;                       /* exit callback seen */
    int pipe_eof;
    char got[16];
    size_t n_got;
    long pid;
    unsigned timeout_s;
    xf_upgrade_ready_cb on_ready;
    void *arg;
} g_up;

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
    if (--g_up.open_handles == 0 && g_up.state == UP_CLOSING)
        g_up.state = UP_IDLE;         /* a later SIGUSR2 may try again */
}

static void close_handle(uv_handle_t *h, int *open)
{
    if (*open) {
        *open = 0;
        uv_close(h, on_handle_closed);
    }
}

/* The one failure path: log why, kill the new process if it still runs (its exit is
   still reaped: the process handle closes in on_exit), serve on. */
static void fail(const char *why)
{
    if (g_up.state != UP_WAITING)
        return;
    g_up.state = UP_CLOSING;
    xf_stats_inc(XF_STAT_UPGRADE_FAILED);
    xf_error("upgrade failed: new process pid=%ld %s; pid=%ld keeps serving", g_up.pid, why,
             (long)getpid());
    if (!g_up.exited)
        (void)uv_process_kill(&g_up.proc, SIGKILL);
    else
        close_handle((uv_handle_t *)&g_up.proc, &g_up.proc_open);
    close_handle((uv_handle_t *)&g_up.rd, &g_up.rd_open);
    close_handle((uv_handle_t *)&g_up.timer, &g_up.timer_open);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int signo)
{
    g_up.exited = 1;
    if (g_up.state == UP_WAITING) {
        char why[96];
        if (signo)
            snprintf(why, sizeof(why), "was killed by signal %d before it was ready", signo);
        else
            snprintf(why, sizeof(why), "exited with status %lld before it was ready",
                     (long long)status);
        fail(why);
    }
    if (g_up.state != UP_WAITING)     /* WAITING cannot remain; HANDED_OVER closed it */
        close_handle((uv_handle_t *)p, &g_up.proc_open);
}

static void on_timeout(uv_timer_t *t)
{
    (void)t;
    char why[96];
    if (g_up.pipe_eof)
        snprintf(why, sizeof(why), "closed its ready pipe without being ready");
    else
        snprintf(why, sizeof(why), "was not ready within %u s", g_up.timeout_s);
    fail(why);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    static char buf[64];
    *b = uv_buf_init(buf, sizeof(buf));
}

static void on_ready_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)s;
    if (g_up.state != UP_WAITING)
        return;
    if (n < 0) {
        /* Usually the new process exited: give its exit status a moment to arrive. */
        g_up.pipe_eof = 1;
        uv_read_stop((uv_stream_t *)&g_up.rd);
        uv_timer_start(&g_up.timer, on_timeout, EOF_GRACE_MS, 0);
        return;
    }
    for (ssize_t i = 0; i < n && g_up.n_got < sizeof(g_up.got) - 1; i++)
        g_up.got[g_up.n_got++] = b->base[i];
    g_up.got[g_up.n_got] = '\0';
    if (strstr(g_up.got, "ready") == NULL)
        return;
    g_up.state = UP_HANDED_OVER;
    xf_info("upgrade: new process pid=%ld is ready; pid=%ld stops accepting and drains",
            g_up.pid, (long)getpid());
    close_handle((uv_handle_t *)&g_up.rd, &g_up.rd_open);
    close_handle((uv_handle_t *)&g_up.timer, &g_up.timer_open);
    /* The new process outlives us: no reaping. If it exits before we do, its exit
       status is left to our parent (it is reparented only once we are gone). */
    close_handle((uv_handle_t *)&g_up.proc, &g_up.proc_open);
    g_up.on_ready(g_up.arg);
}

/* The environment for the new process: ours without a previous upgrade's variables,
   plus the new ones. Strings from env_add are freed by env_free. */
static char **env_build(const char *fds, int ready_fd, size_t *n_out)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + 5, sizeof(char *));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], ENV_FDS "=", sizeof(ENV_FDS)) != 0 &&
            strncmp(environ[i], ENV_READY "=", sizeof(ENV_READY)) != 0 &&
            strncmp(environ[i], ENV_FROM "=", sizeof(ENV_FROM)) != 0)
            env[k++] = environ[i];
    *n_out = k;
    size_t flen = strlen(fds) + sizeof(ENV_FDS) + 1;
    env[k] = malloc(flen);
    env[k + 1] = malloc(64);
    env[k + 2] = malloc(64);
    if (env[k] == NULL || env[k + 1] == NULL || env[k + 2] == NULL) {
        for (size_t i = k; i < k + 3; i++)
            free(env[i]);
        free(env);
        return NULL;
    }
    snprintf(env[k], flen, ENV_FDS "=%s", fds);
    snprintf(env[k + 1], 64, ENV_READY "=%d", ready_fd);
    snprintf(env[k + 2], 64, ENV_FROM "=%ld", (long)getpid());
    return env;
}

static void env_free(char **env, size_t k)
{
    if (env == NULL)
        return;
    for (size_t i = k; env[i] != NULL; i++)
        free(env[i]);
    free(env);
}

static unsigned timeout_from_env(void)
{
    const char *s = getenv(ENV_TIMEOUT);
    long v = s ? strtol(s, NULL, 10) : 0;
    return v > 0 && v <= 3600 ? (unsigned)v : DEFAULT_TIMEOUT_S;
}

int xf_upgrade_start(uv_loop_t *loop, xf_worker *ws, unsigned n, int admin_fd,
                     xf_upgrade_ready_cb on_ready, void *arg)
{
    if (g_up.state != UP_IDLE) {
        xf_warn("SIGUSR2: %s; ignored",
                g_up.state == UP_HANDED_OVER ? "already handed over to a new process"
                : g_up.state == UP_WAITING ? "an upgrade is already in progress"
                : "the last upgrade is still being cleaned up");
        if (g_up.state == UP_WAITING)
            xf_warn("upgrade: still waiting for pid=%ld", g_up.pid);
        return -EBUSY;
    }
    xf_stats_inc(XF_STAT_UPGRADE_STARTED);
    size_t nfd = 0;
    for (unsigned i = 0; i < n; i++)
        nfd += ws[i].n_listeners;
    nfd += admin_fd >= 0;
    int rc = 0, pfd[2] = {-1, -1};
    size_t n_env = 0;
    char **env = NULL;
    char *fds = NULL;
    uv_stdio_container_t *stdio = calloc(3 + nfd + 1, sizeof(*stdio));
    size_t fcap = nfd * 96 + 1;
    fds = calloc(1, fcap);
    if (stdio == NULL || fds == NULL) {
        rc = -ENOMEM;
        xf_error("upgrade failed: out of memory");
        goto fail;
    }
    if (g_start.exe[0] == '\0' || g_start.argv == NULL) {
        rc = -ENOENT;
        xf_error("upgrade failed: the path this binary was started from is unknown");
        goto fail;
    }
    for (int i = 0; i < 3; i++) {
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = i;
    }
    /* Listening socket k of the list is fd 3+k in the new process (libuv dup2()s it
       there after fork, which clears close-on-exec on the copy only). */
    size_t k = 0, off = 0;
    for (unsigned i = 0; i < n; i++)
        for (size_t j = 0; j < ws[i].n_listeners; j++, k++) {
            const xf_listener *l = &ws[i].listeners[j];
            stdio[3 + k].flags = UV_INHERIT_FD;
            stdio[3 + k].data.fd = l->fd;
            off += (size_t)snprintf(fds + off, fcap - off, "%s%zu:%s", k ? "," : "", 3 + k,
                                    l->conf->name);
        }
    if (admin_fd >= 0) {
        stdio[3 + k].flags = UV_INHERIT_FD;
        stdio[3 + k].data.fd = admin_fd;
        off += (size_t)snprintf(fds + off, fcap - off, "%s%zu:admin", k ? "," : "", 3 + k);
        k++;
    }
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        rc = -errno;
        xf_error("upgrade failed: pipe: %s", strerror(errno));
        goto fail;
    }
    int ready_child_fd = (int)(3 + nfd);
    stdio[ready_child_fd].flags = UV_INHERIT_FD;
    stdio[ready_child_fd].data.fd = pfd[1];
    env = env_build(fds, ready_child_fd, &n_env);
    if (env == NULL) {
        rc = -ENOMEM;
        xf_error("upgrade failed: out of memory");
        goto fail;
    }
    memset(&g_up, 0, sizeof(g_up));
    g_up.on_ready = on_ready;
    g_up.arg = arg;
    g_up.timeout_s = timeout_from_env();
    uv_process_options_t o = {0};
    o.exit_cb = on_exit_cb;
    o.file = g_start.exe;
    o.args = g_start.argv;
    o.env = env;
    o.cwd = g_start.cwd;
    o.stdio_count = (int)(4 + nfd);
    o.stdio = stdio;
    rc = uv_spawn(loop, &g_up.proc, &o);
    if (rc < 0) {
        /* uv_spawn leaves the handle initialised when it fails: close it all the same. */
        xf_error("upgrade failed: cannot start %s: %s; pid=%ld keeps serving", g_start.exe,
                 uv_strerror(rc), (long)getpid());
        g_up.state = UP_CLOSING;
        g_up.open_handles = g_up.proc_open = 1;
        close_handle((uv_handle_t *)&g_up.proc, &g_up.proc_open);
        goto fail;
    }
    close(pfd[1]);
    pfd[1] = -1;
    g_up.pid = g_up.proc.pid;
    g_up.state = UP_WAITING;
    g_up.proc_open = 1;
    uv_pipe_init(loop, &g_up.rd, 0);
    g_up.rd_open = 1;
    uv_timer_init(loop, &g_up.timer);
    g_up.timer_open = 1;
    g_up.open_handles = 3;
    int r = uv_pipe_open(&g_up.rd, pfd[0]);
    if (r == 0) {
        pfd[0] = -1;
        r = uv_read_start((uv_stream_t *)&g_up.rd, on_alloc, on_ready_read);
    }
    uv_timer_start(&g_up.timer, on_timeout, (uint64_t)g_up.timeout_s * 1000, 0);
    xf_info("upgrade: SIGUSR2: started %s as pid=%ld with %zu listening sockets; waiting up "
            "to %u s for it to be ready", g_start.exe, g_up.pid, nfd, g_up.timeout_s);
    if (r < 0)
        fail("cannot be watched (ready pipe)");
    env_free(env, n_env);
    free(fds);
    free(stdio);
    if (pfd[0] >= 0)
        close(pfd[0]);
    return r < 0 ? r : 0;
fail:
    xf_stats_inc(XF_STAT_UPGRADE_FAILED);
    env_free(env, n_env);
    free(fds);
    free(stdio);
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (pfd[1] >= 0)
        close(pfd[1]);
    return rc;
}

void xf_upgrade_shutdown(void)
{
    if (g_up.state == UP_WAITING) {
        xf_warn("upgrade abandoned: this process stops; new process pid=%ld sent SIGTERM",
                g_up.pid);
        g_up.state = UP_CLOSING;
        xf_stats_inc(XF_STAT_UPGRADE_FAILED);
        (void)uv_process_kill(&g_up.proc, SIGTERM);
        close_handle((uv_handle_t *)&g_up.rd, &g_up.rd_open);
        close_handle((uv_handle_t *)&g_up.timer, &g_up.timer_open);
        return;                       /* on_exit_cb closes the process handle */
    }
    /* The end of the main loop: nothing may stay open (a new process that ignores
       SIGTERM is then left to run, unreaped by us). */
    close_handle((uv_handle_t *)&g_up.proc, &g_up.proc_open);
}
