/*
 * bench load client for tests/bench/run.sh (OpenSSL, blocking sockets, pthreads).
 *
 * Every connection: TCP connect, TLS 1.3 handshake (SNI, fixed suite and group), the
 * XMPP stream header, then read until the backend's answer arrived, relayed by the
 * proxy: its header, <stream:features/> and a SASL <success/> (backend.c), after which
 * xmppfront relays without looking (the mode bytes that follow are not XML). Every loop is bounded in count and in time; every socket has
 * send/receive timeouts.
 *
 *   loadc rate  HOST PORT SNI CONC SECS           new connections per second (full
 *                                                 handshakes: no session is offered)
 *   loadc resume HOST PORT SNI CONC SECS          the same, but every client thread keeps
 *                                                 the session (TLS 1.3 ticket) of its first
 *                                                 connection that got one and offers it on
 *                                                 every later connection (psk_dhe_ke, what
 *                                                 OpenSSL offers); reports how many resumed
 *   loadc up    HOST PORT SNI BYTES MAXSECS       client -> backend bulk
 *   loadc down  HOST PORT SNI BYTES MAXSECS       backend -> client bulk
 *   loadc echo  HOST PORT SNI COUNT MAXSECS SIZE  round trips through the echo backend
 *   loadc echon HOST PORT SNI CONNS COUNT MAXSECS SIZE
 *                                                 CONNS connections at once, each doing up
 *                                                 to COUNT sequential round trips (all start
 *                                                 together, stop at MAXSECS); p50/p99/p99.9
 *   loadc idle  HOST PORT SNI N HOLDSECS          open N (8 threads, for at most
 *                                                 HOLDSECS), print "ready=N", hold until
 *                                                 stdin closes or HOLDSECS, then close
 * Output: one line of key=value pairs on stdout.
 * Env: BENCH_SUITE (default TLS_AES_256_GCM_SHA384), BENCH_GROUP (default X25519).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "bench_util.h"

static const char HEADER[] =
    "<?xml version='1.0'?><stream:stream to='a.example' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

static SSL_CTX *ctx;
static struct sockaddr_in dst;
static const char *sni;


typedef struct { int fd; SSL *ssl; } xconn;

static void xclose(xconn *x, int graceful)
{
    if (x->ssl) {
        if (graceful)
            SSL_shutdown(x->ssl);
        SSL_free(x->ssl);
    }
    if (x->fd >= 0)
        close(x->fd);
    x->ssl = NULL;
    x->fd = -1;
}

/* Connect, handshake, header round trip. sess: a session to offer (NULL: a full
   handshake). Returns 0 or -1 (x closed). */
static int xopen_sess(xconn *x, int timeout_s, SSL_SESSION *sess)
{
    x->ssl = NULL;
    x->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (x->fd < 0)
        return -1;
    int one = 1;
    setsockopt(x->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = timeout_s};
    setsockopt(x->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(x->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(x->fd, (struct sockaddr *)&dst, sizeof(dst)) < 0)
        goto fail;
    x->ssl = SSL_new(ctx);
    SSL_set_fd(x->ssl, x->fd);
    SSL_set_tlsext_host_name(x->ssl, sni);
    if (sess != NULL && SSL_set_session(x->ssl, sess) != 1)
        goto fail;
    if (SSL_connect(x->ssl) != 1)
        goto fail;
    if (SSL_write(x->ssl, HEADER, sizeof(HEADER) - 1) != (int)sizeof(HEADER) - 1)
        goto fail;
    char buf[4096];
    size_t len = 0;
    for (;;) {
        int r = SSL_read(x->ssl, buf + len, (int)(sizeof(buf) - 1 - len));
        if (r <= 0)
            goto fail;
        len += (size_t)r;
        buf[len] = 0;
        if (strstr(buf, "<success"))
            break;
        if (len >= sizeof(buf) - 1)
            goto fail;
    }
    return 0;
fail:
    xclose(x, 0);
    return -1;
}

static int xopen(xconn *x, int timeout_s)
{
    return xopen_sess(x, timeout_s, NULL);
}

/* ---------------------------------------------------------------- rate */

typedef struct {
    double deadline;
    long ok, err;
    double *lat;
    size_t nlat, cap;
    int resume;             /* keep and offer a session */
    SSL_SESSION *sess;      /* the first resumable session this thread got */
    long reused;            /* connections the server resumed (SSL_session_reused) */
} rate_arg;

static void *rate_thread(void *p)
{
    rate_arg *a = p;
    while (now() < a->deadline) {
        double t0 = now();
        xconn x;
        if (xopen_sess(&x, 5, a->sess) < 0) {
            a->err++;
            usleep(1000);
            continue;
        }
        double t1 = now();
        if (SSL_session_reused(x.ssl))
            a->reused++;
        /* TLS 1.3 tickets come after the handshake; the header round trip has read
           past them, so the session is resumable now if the server sent one. */
        if (a->resume && a->sess == NULL) {
            SSL_SESSION *s = SSL_get1_session(x.ssl);
            if (s != NULL && SSL_SESSION_is_resumable(s))
                a->sess = s;
            else
                SSL_SESSION_free(s);
        }
        xclose(&x, 1);
        a->ok++;
        if (a->nlat < a->cap)
            a->lat[a->nlat++] = (t1 - t0) * 1000.0;
    }
    return NULL;
}

static int do_rate(int conc, int secs, int resume)
{
    pthread_t th[1024];
    rate_arg *args = calloc((size_t)conc, sizeof(*args));
    if (conc > 1024)
        conc = 1024;
    double start = now();
    for (int i = 0; i < conc; i++) {
        args[i].deadline = start + secs;
        args[i].cap = 200000;
        args[i].lat = malloc(args[i].cap * sizeof(double));
        args[i].resume = resume;
        pthread_create(&th[i], NULL, rate_thread, &args[i]);
    }
    long ok = 0, err = 0, reused = 0, with_sess = 0;
    size_t n = 0;
    for (int i = 0; i < conc; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok;
        err += args[i].err;
        n += args[i].nlat;
        reused += args[i].reused;
        with_sess += args[i].sess != NULL;
        SSL_SESSION_free(args[i].sess);
    }
    double el = now() - start;
    double *all = malloc((n + 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < conc; i++)
        for (size_t j = 0; j < args[i].nlat; j++)
            all[k++] = args[i].lat[j];
    qsort(all, n, sizeof(double), cmp_double);
    printf("ok=%ld errors=%ld secs=%.2f rate=%.1f setup_p50_ms=%.2f setup_p99_ms=%.2f "
           "resumed=%ld threads_with_ticket=%ld\n", ok, err, el, (double)ok / el,
           pct(all, n, 0.5), pct(all, n, 0.99), reused, with_sess);
    return 0;
}

/* ---------------------------------------------------------------- bulk */

static int do_bulk(int up, unsigned long long bytes, int maxsecs)
{
    xconn x;
    if (xopen(&x, 10) < 0) {
        printf("error=connect\n");
        return 1;
    }
    static char buf[65536];
    double t0 = now(), deadline = t0 + maxsecs;
    unsigned long long done = 0;
    int complete = 0;
    if (up) {
        memset(buf, ' ', sizeof(buf));
        if (SSL_write(x.ssl, "S", 1) != 1)
            goto out;
        while (done < bytes && now() < deadline) {
            size_t n = bytes - done < sizeof(buf) ? (size_t)(bytes - done) : sizeof(buf);
            int w = SSL_write(x.ssl, buf, (int)n);
            if (w <= 0)
                goto out;
            done += (unsigned long long)w;
        }
        if (SSL_write(x.ssl, "!", 1) != 1)
            goto out;
        /* The backend's "!" means every byte went through the proxy. */
        for (;;) {
            int r = SSL_read(x.ssl, buf, sizeof(buf));
            if (r <= 0)
                goto out;
            if (memchr(buf, '!', (size_t)r)) {
                complete = done == bytes;
                break;
            }
        }
    } else {
        char cmd[64];
        int n = snprintf(cmd, sizeof(cmd), "G%llu\n", bytes);
        if (SSL_write(x.ssl, cmd, n) != n)
            goto out;
        while (now() < deadline) {
            int r = SSL_read(x.ssl, buf, sizeof(buf));
            if (r <= 0)
                goto out;
            if (buf[r - 1] == '!') {
                done += (unsigned long long)r - 1;
                complete = done == bytes;
                break;
            }
            done += (unsigned long long)r;
        }
    }
out:;
    double el = now() - t0;
    xclose(&x, 1);
    printf("bytes=%llu secs=%.3f MBps=%.1f complete=%d\n", done, el,
           (double)done / el / 1e6, complete);
    return complete ? 0 : 1;
}

/* ---------------------------------------------------------------- echo */

static int do_echo(long count, int maxsecs, int size)
{
    xconn x;
    if (xopen(&x, 10) < 0) {
        printf("error=connect\n");
        return 1;
    }
    char msg[65536], in[65536];
    if (size < 64)
        size = 64;
    if (size > (int)sizeof(msg) - 64)
        size = (int)sizeof(msg) - 64;
    /* A stanza-shaped message padded to SIZE bytes. */
    int h = snprintf(msg, sizeof(msg), "<message to='b@a.example'><body>");
    memset(msg + h, 'x', (size_t)(size - h));
    memcpy(msg + size - 17, "</body></message>", 17);
    if (SSL_write(x.ssl, "E", 1) != 1) {
        xclose(&x, 0);
        printf("error=write\n");
        return 1;
    }
    double *lat = malloc((size_t)count * sizeof(double));
    long n = 0;
    double t0 = now(), deadline = t0 + maxsecs;
    int failed = 0;
    while (n < count && now() < deadline) {
        double a = now();
        if (SSL_write(x.ssl, msg, size) != size) {
            failed = 1;
            break;
        }
        int got = 0;
        while (got < size) {
            int r = SSL_read(x.ssl, in, sizeof(in));
            if (r <= 0) {
                failed = 1;
                break;
            }
            got += r;
        }
        if (failed)
            break;
        lat[n++] = (now() - a) * 1e6;
    }
    double el = now() - t0;
    xclose(&x, 1);
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    printf("count=%ld secs=%.2f p50_us=%.1f p99_us=%.1f max_us=%.1f failed=%d\n", n, el,
           pct(lat, (size_t)n, 0.5), pct(lat, (size_t)n, 0.99), n ? lat[n - 1] : 0.0, failed);
    return failed;
}

/* ---------------------------------------------------------------- echon */

/* CONNS connections, one thread each: all connect and enter echo mode, wait for each
   other, then each does sequential round trips (write one stanza, read it back) until
   COUNT or the deadline. Latencies of all connections are pooled. */
typedef struct {
    pthread_barrier_t *go;
    long count;
    double maxsecs;
    int size, ok, failed;
    double *lat;
    long n;
} echon_arg;

static void *echon_thread(void *p)
{
    echon_arg *a = p;
    xconn x;
    char msg[65536], in[65536];
    int h = snprintf(msg, sizeof(msg), "<message to='b@a.example'><body>");
    memset(msg + h, 'x', (size_t)(a->size - h));
    memcpy(msg + a->size - 17, "</body></message>", 17);
    a->ok = xopen(&x, 10) == 0 && SSL_write(x.ssl, "E", 1) == 1;
    pthread_barrier_wait(a->go);
    if (!a->ok) {
        xclose(&x, 0);
        return NULL;
    }
    double deadline = now() + a->maxsecs;
    while (a->n < a->count && now() < deadline) {
        double t = now();
        if (SSL_write(x.ssl, msg, a->size) != a->size) {
            a->failed = 1;
            break;
        }
        int got = 0;
        while (got < a->size) {
            int r = SSL_read(x.ssl, in, sizeof(in));
            if (r <= 0) {
                a->failed = 1;
                break;
            }
            got += r;
        }
        if (a->failed)
            break;
        a->lat[a->n++] = (now() - t) * 1e6;
    }
    xclose(&x, 1);
    return NULL;
}

static int do_echon(int conns, long count, int maxsecs, int size)
{
    if (conns < 1 || conns > 1000 || count < 1)
        return 2;
    if (size < 64)
        size = 64;
    if (size > 65536 - 64)
        size = 65536 - 64;
    pthread_t *th = calloc((size_t)conns, sizeof(*th));
    echon_arg *args = calloc((size_t)conns, sizeof(*args));
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)conns + 1);
    for (int i = 0; i < conns; i++) {
        args[i] = (echon_arg){.go = &go, .count = count, .maxsecs = maxsecs, .size = size};
        args[i].lat = malloc((size_t)count * sizeof(double));
        pthread_create(&th[i], NULL, echon_thread, &args[i]);
    }
    pthread_barrier_wait(&go);
    double t0 = now();
    long n = 0;
    int ok = 0, failed = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        n += args[i].n;
        ok += args[i].ok;
        failed += args[i].failed;
    }
    double el = now() - t0;
    double *all = malloc(((size_t)n + 1) * sizeof(double));
    long k = 0;
    for (int i = 0; i < conns; i++) {
        memcpy(all + k, args[i].lat, (size_t)args[i].n * sizeof(double));
        k += args[i].n;
        free(args[i].lat);
    }
    qsort(all, (size_t)n, sizeof(double), cmp_double);
    printf("conns=%d ok_conns=%d count=%ld secs=%.2f rtt_per_s=%.0f p50_us=%.1f p99_us=%.1f "
           "p999_us=%.1f max_us=%.1f failed=%d\n", conns, ok, n, el, (double)n / el,
           pct(all, (size_t)n, 0.5), pct(all, (size_t)n, 0.99), pct(all, (size_t)n, 0.999),
           n ? all[n - 1] : 0.0, failed);
    pthread_barrier_destroy(&go);
    free(all);
    free(args);
    free(th);
    return ok == conns && failed == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- idle */

/* IDLE_OPENERS threads open the connections, each its share of the slots. */
enum { IDLE_OPENERS = 8 };
typedef struct {
    xconn *xs;
    int from, to, ok, err;
    double deadline;
} idle_arg;

static void *idle_thread(void *p)
{
    idle_arg *a = p;
    for (int i = a->from; i < a->to && now() < a->deadline; i++) {
        if (xopen(&a->xs[i], 5) == 0)
            a->ok++;
        else
            a->err++;
    }
    return NULL;
}

static int do_idle(int n, int hold)
{
    xconn *xs = calloc((size_t)n, sizeof(*xs));
    for (int i = 0; i < n; i++)
        xs[i].fd = -1;
    int ok = 0, err = 0;
    double t0 = now(), deadline = t0 + hold;
    pthread_t th[IDLE_OPENERS];
    idle_arg ia[IDLE_OPENERS];
    for (int t = 0; t < IDLE_OPENERS; t++) {
        ia[t] = (idle_arg){.xs = xs, .from = (int)((long)n * t / IDLE_OPENERS),
                           .to = (int)((long)n * (t + 1) / IDLE_OPENERS), .deadline = deadline};
        pthread_create(&th[t], NULL, idle_thread, &ia[t]);
    }
    for (int t = 0; t < IDLE_OPENERS; t++) {
        pthread_join(th[t], NULL);
        ok += ia[t].ok;
        err += ia[t].err;
    }
    printf("ready=%d errors=%d open_secs=%.2f\n", ok, err, now() - t0);
    fflush(stdout);
    /* Hold until the script closes our stdin, bounded by another HOLDSECS (opening is
       bounded by the first: on a slow machine fewer than N are open, never none held). */
    deadline = now() + hold;
    for (;;) {
        double left = deadline - now();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r != 0) {
            char b[64];
            if (r < 0 || read(0, b, sizeof(b)) <= 0)
                break;
        }
    }
    for (int i = 0; i < n; i++)
        xclose(&xs[i], 1);      /* a slot that failed is already closed (fd -1) */
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: see the comment at the top of loadc.c\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    const char *mode = argv[1];
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &dst.sin_addr) != 1) {
        fprintf(stderr, "loadc: IPv4 literal expected\n");
        return 2;
    }
    sni = argv[4];
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    const char *suite = getenv("BENCH_SUITE") ? getenv("BENCH_SUITE") : "TLS_AES_256_GCM_SHA384";
    const char *group = getenv("BENCH_GROUP") ? getenv("BENCH_GROUP") : "X25519";
    if (SSL_CTX_set_ciphersuites(ctx, suite) != 1 || SSL_CTX_set1_groups_list(ctx, group) != 1) {
        fprintf(stderr, "loadc: bad suite or group\n");
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (strcmp(mode, "resume") == 0)
        SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);

    if (strcmp(mode, "rate") == 0)
        return do_rate(atoi(argv[5]), atoi(argv[6]), 0);
    if (strcmp(mode, "resume") == 0)
        return do_rate(atoi(argv[5]), atoi(argv[6]), 1);
    if (strcmp(mode, "up") == 0 || strcmp(mode, "down") == 0)
        return do_bulk(mode[0] == 'u', strtoull(argv[5], NULL, 10), atoi(argv[6]));
    if (strcmp(mode, "echo") == 0)
        return do_echo(atol(argv[5]), atoi(argv[6]), argc > 7 ? atoi(argv[7]) : 128);
    if (strcmp(mode, "echon") == 0 && argc > 8)
        return do_echon(atoi(argv[5]), atol(argv[6]), atoi(argv[7]), atoi(argv[8]));
    if (strcmp(mode, "idle") == 0)
        return do_idle(atoi(argv[5]), atoi(argv[6]));
    fprintf(stderr, "loadc: unknown mode %s\n", mode);
    return 2;
}
