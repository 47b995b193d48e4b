/*
 * snic: full TLS handshakes with an SNI drawn at random from a list of names, for
 * tests/bench/bench_scale.sh (issue 10 "Scale": SNI lookup cost per handshake with 10
 * to 10,000 tenants). OpenSSL, THREADS threads each doing sequential connections:
 * connect, handshake with SNI = a random name, check that the certificate presented
 * covers that name (X509_check_host: the proxy chose the right tenant), send
 * close_notify and wait for the server to close (so the server has processed the
 * whole handshake before the next one starts), close. No session resumption.
 *
 *   snic HOST PORT NAMES_FILE COUNT [THREADS] [TLS_VERSION 12|13]
 *
 * Prints one line: "handshakes N failed F wrong_cert W seconds S". Exit 1 on any
 * failure or wrong certificate.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in g_addr;
static char **g_names;
static size_t g_n_names;
static long g_per_thread;
static SSL_CTX *g_ctx;
static atomic_long g_ok, g_failed, g_wrong;

static void *run(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg * 2654435761u + (unsigned)time(NULL);
    char buf[256];
    for (long i = 0; i < g_per_thread; i++) {
        const char *name = g_names[(size_t)rand_r(&seed) % g_n_names];
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct timeval tv = { 5, 0 };
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) != 0) {
            close(fd);
            atomic_fetch_add(&g_failed, 1);
            continue;
        }
        SSL *ssl = SSL_new(g_ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, name);
        if (SSL_connect(ssl) != 1) {
            atomic_fetch_add(&g_failed, 1);
        } else {
            X509 *peer = SSL_get1_peer_certificate(ssl);
            if (peer == NULL || X509_check_host(peer, name, 0, 0, NULL) != 1)
                atomic_fetch_add(&g_wrong, 1);
            else
                atomic_fetch_add(&g_ok, 1);
            X509_free(peer);
            SSL_shutdown(ssl);
            /* Until the server closes (it has read our Finished and close_notify). */
            while (SSL_read(ssl, buf, sizeof buf) > 0)
                ;
        }
        SSL_free(ssl);
        close(fd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: snic HOST PORT NAMES_FILE COUNT [THREADS] [12|13]\n");
        return 2;
    }
    long count = atol(argv[4]);
    int threads = argc > 5 ? atoi(argv[5]) : 2;
    int ver = argc > 6 ? atoi(argv[6]) : 13;
    if (threads < 1 || threads > 64 || count < threads) return 2;
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &g_addr.sin_addr) != 1) return 2;

    FILE *f = fopen(argv[3], "r");
    if (!f) { perror(argv[3]); return 2; }
    size_t cap = 1024;
    char line[300];
    g_names = malloc(cap * sizeof *g_names);
    while (g_names && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) continue;
        if (g_n_names == cap) g_names = realloc(g_names, (cap *= 2) * sizeof *g_names);
        if (g_names) g_names[g_n_names++] = strdup(line);
    }
    fclose(f);
    if (!g_names || !g_n_names) { fprintf(stderr, "no names\n"); return 2; }

    g_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);  /* the host check is ours */
    SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(g_ctx, SSL_OP_NO_TICKET);
    int v = ver == 12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(g_ctx, v);
    SSL_CTX_set_max_proto_version(g_ctx, v);
    SSL_CTX_set1_groups_list(g_ctx, "X25519");
    static const unsigned char alpn[] = "\x0bxmpp-client";
    SSL_CTX_set_alpn_protos(g_ctx, alpn, sizeof alpn - 1);

    g_per_thread = count / threads;
    pthread_t th[64];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, run, (void *)(size_t)i);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("handshakes %ld failed %ld wrong_cert %ld seconds %.2f\n", atomic_load(&g_ok),
           atomic_load(&g_failed), atomic_load(&g_wrong), s);
    SSL_CTX_free(g_ctx);
    return atomic_load(&g_failed) || atomic_load(&g_wrong) ? 1 : 0;
}
