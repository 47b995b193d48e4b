/*
 * idlec: the load of tests/bench/bench_idle.sh — many authenticated c2s streams that
 * reach RELAY and then sit idle — and the backend they talk to.
 *
 *   idlec backend PORT MAXSECS
 *   idlec client HOST PORT N CONC MAXSECS [SNI]
 *
 * backend: single thread, epoll, loopback. Per connection it plays a c2s server just
 *   far enough for a proxy to see an authenticated stream (RFC 6120 §6.4.6): answers the
 *   stream header with features offering SASL PLAIN, answers <auth .../> with
 *   <success/>, answers the restarted header with features offering <bind/>. Then it
 *   holds the connection without a byte either way until the peer closes.
 * client: OpenSSL, non-blocking, at most CONC connections in setup at a time. Each
 *   connection: TCP connect, TLS (SNI, default a.example), stream header, features,
 *   <auth mechanism='PLAIN'>, <success/>, the restarted header, features: then idle.
 *   Prints "ready OK FAILED SECS" once all N are set up (or failed), then waits for a
 *   line on stdin, closes every connection (close_notify + close), prints "closed" and
 *   exits. SSL_MODE_RELEASE_BUFFERS keeps the client small (it is not what is measured).
 * Both exit after MAXSECS seconds whatever happens (a bound: nothing can linger).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* ------------------------------------------------------------------ backend */

static const char B_HDR[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' id='b1' from='a.example' version='1.0'>";
static const char B_FEAT1[] =
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>";
static const char B_SUCCESS[] = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
static const char B_FEAT2[] =
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";

typedef struct bconn {
    int fd, step;               /* 0 header, 1 auth, 2 restarted header, 3 idle */
    char in[2048];
    size_t len;
} bconn;

static void b_send(int fd, const char *a, const char *b)
{
    char out[1024];
    int n = snprintf(out, sizeof(out), "%s%s", a, b ? b : "");
    (void)!send(fd, out, (size_t)n, MSG_NOSIGNAL);   /* small, loopback: fits the socket buffer */
}

static int backend_main(int port, int maxsecs)
{
    alarm((unsigned)maxsecs);
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4096) < 0) {
        perror("backend bind/listen");
        return 1;
    }
    set_nonblock(ls);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            bconn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept(ls, NULL, NULL)) >= 0) {
                    set_nonblock(fd);
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    bconn *nc = calloc(1, sizeof(*nc));
                    nc->fd = fd;
                    struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e2);
                }
                continue;
            }
            for (;;) {
                ssize_t r = recv(c->fd, c->in + c->len, sizeof(c->in) - 1 - c->len, 0);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0 || c->len + (size_t)r >= sizeof(c->in) - 1) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    free(c);
                    break;
                }
                c->len += (size_t)r;
                c->in[c->len] = '\0';
                /* The PROXY header or whitespace before the header are not expected here. */
                char *gt;
                if ((c->step == 0 || c->step == 2) && strstr(c->in, "<stream:stream") &&
                    (gt = strchr(strstr(c->in, "<stream:stream"), '>')) != NULL) {
                    b_send(c->fd, B_HDR, c->step == 0 ? B_FEAT1 : B_FEAT2);
                    c->step++;
                    size_t used = (size_t)(gt + 1 - c->in);
                    memmove(c->in, gt + 1, c->len - used + 1);
                    c->len -= used;
                }
                if (c->step == 1 && strstr(c->in, "<auth") &&
                    (strstr(c->in, "</auth>") || strstr(c->in, "/>"))) {
                    b_send(c->fd, B_SUCCESS, NULL);
                    c->step = 2;
                    c->len = 0;
                    c->in[0] = '\0';
                }
                if (c->step == 3)
                    c->len = 0;               /* idle: whatever comes is dropped */
            }
        }
    }
}

/* ------------------------------------------------------------------ client */

enum { C_CONNECT, C_TLS, C_FEAT1, C_SUCCESS, C_FEAT2, C_IDLE, C_FAILED };

typedef struct cconn {
    int fd, st;
    SSL *ssl;
    char in[4096];
    size_t len;
} cconn;

static const char C_HDR[] =
    "<?xml version='1.0'?><stream:stream to='a.example' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
static const char C_AUTH[] =
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AHVzZXIAcGFzcw==</auth>";

static int c_write(cconn *c, const char *s)
{
    size_t n = strlen(s);
    int r = SSL_write(c->ssl, s, (int)n);      /* small: one record, the socket takes it */
    return r == (int)n ? 0 : -1;
}

/* Advance one connection as far as it goes without blocking. 1 = done (idle or
   failed), 0 = waiting. */
static int c_step(cconn *c)
{
    for (;;) {
        if (c->st == C_CONNECT) {
            int err = 0;
            socklen_t el = sizeof(err);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err != 0)
                return c->st = C_FAILED, 1;
            c->st = C_TLS;
        }
        if (c->st == C_TLS) {
            int r = SSL_connect(c->ssl);
            if (r != 1) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return 0;
                return c->st = C_FAILED, 1;
            }
            if (c_write(c, C_HDR) < 0)
                return c->st = C_FAILED, 1;
            c->st = C_FEAT1;
        }
        if (c->st == C_IDLE || c->st == C_FAILED)
            return 1;
        int r = SSL_read(c->ssl, c->in + c->len, (int)(sizeof(c->in) - 1 - c->len));
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            return c->st = C_FAILED, 1;
        }
        c->len += (size_t)r;
        c->in[c->len] = '\0';
        if (c->len >= sizeof(c->in) - 1)
            return c->st = C_FAILED, 1;
        if (c->st == C_FEAT1 && strstr(c->in, "</stream:features>")) {
            c->len = 0;
            if (c_write(c, C_AUTH) < 0)
                return c->st = C_FAILED, 1;
            c->st = C_SUCCESS;
        } else if (c->st == C_SUCCESS && strstr(c->in, "<success")) {
            c->len = 0;
            if (c_write(c, C_HDR) < 0)
                return c->st = C_FAILED, 1;
            c->st = C_FEAT2;
        } else if (c->st == C_FEAT2 && strstr(c->in, "</stream:features>")) {
            c->len = 0;
            c->st = C_IDLE;
            return 1;
        }
    }
}

static int client_main(const char *host, int port, int n, int conc, int maxsecs,
                       const char *sni)
{
    alarm((unsigned)maxsecs);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (getenv("BENCH_SUITE"))
        SSL_CTX_set_ciphersuites(ctx, getenv("BENCH_SUITE"));
    SSL_CTX_set1_groups_list(ctx, getenv("BENCH_GROUP") ? getenv("BENCH_GROUP") : "X25519");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    cconn *cs = calloc((size_t)n, sizeof(*cs));
    int ep = epoll_create1(0), started = 0, inflight = 0, ok = 0, failed = 0, one = 1;
    double t0 = now_s();
    struct epoll_event evs[256];
    while (ok + failed < n) {
        while (started < n && inflight < conc) {
            cconn *c = &cs[started++];
            c->fd = socket(AF_INET, SOCK_STREAM, 0);
            if (c->fd < 0) {
                failed++;
                c->st = C_FAILED;
                continue;
            }
            set_nonblock(c->fd);
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            c->ssl = SSL_new(ctx);
            SSL_set_fd(c->ssl, c->fd);
            SSL_set_tlsext_host_name(c->ssl, sni);
            c->st = C_CONNECT;
            if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
                c->st = C_FAILED;
                failed++;
                continue;
            }
            struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
            inflight++;
        }
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < k; i++) {
            cconn *c = evs[i].data.ptr;
            if (c->st == C_IDLE || c->st == C_FAILED)
                continue;
            if (c_step(c)) {
                inflight--;
                if (c->st == C_IDLE) {
                    ok++;
                    struct epoll_event e = {.events = 0, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);   /* idle: no more events */
                } else {
                    failed++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    if (failed <= 5) {
                        fprintf(stderr, "idlec: connection %d failed in step %d\n",
                                (int)(c - cs), c->st);
                        ERR_print_errors_fp(stderr);
                    }
                }
            }
        }
    }
    printf("ready %d %d %.2f\n", ok, failed, now_s() - t0);
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof(line), stdin) == NULL)
        line[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (cs[i].ssl) {
            if (cs[i].st == C_IDLE)
                SSL_shutdown(cs[i].ssl);
            SSL_free(cs[i].ssl);
        }
        if (cs[i].fd > 0)
            close(cs[i].fd);
    }
    printf("closed\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 4 && strcmp(argv[1], "backend") == 0)
        return backend_main(atoi(argv[2]), atoi(argv[3]));
    if (argc >= 7 && strcmp(argv[1], "client") == 0)
        return client_main(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]),
                           atoi(argv[6]), argc > 7 ? argv[7] : "a.example");
    fprintf(stderr, "usage: idlec backend PORT MAXSECS | idlec client HOST PORT N CONC MAXSECS [SNI]\n");
    return 2;
}
