/*
 * bench ceiling: what mbedTLS itself costs for the work a proxy does, with no sockets,
 * no event loop and no proxy code — the ceiling xmppfront's figures are read against
 * (tests/bench/run.sh, README.md "Side by side with HAProxy").
 *
 *   ceiling CERT KEY HANDSHAKES BULK_MIB MAXSECS
 *
 * Build against the mbedTLS the proxy uses (run.sh: pkg-config mbedtls mbedx509
 * mbedcrypto, or CEILING_CFLAGS / CEILING_LIBS for another build). run.sh pins it to
 * the proxies' CPU.
 *
 * (a) full: HANDSHAKES TLS 1.3 handshakes between a server and a client ssl_context in
 *     this thread, connected by two memory buffers: CERT/KEY (ECDSA P-256), group
 *     X25519 only, TLS_AES_256_GCM_SHA384 only, no client certificate, the server
 *     issues no ticket. Only the server's mbedtls_ssl_handshake() calls are timed, with
 *     CLOCK_THREAD_CPUTIME_ID: that is the server's share (the client's ECDHE and
 *     signature verification are not in it). "conn" adds the server's setup, one
 *     small read and write after the handshake, close_notify and free: what a server
 *     spends per connection in the library besides the handshake itself.
 * (t) full+ticket: the same with one TLS 1.3 NewSessionTicket issued per connection
 *     (mbedtls_ssl_ticket, AES-256-GCM keys), timed from the handshake calls up to the
 *     server's first write (where mbedTLS 3.6 sends the ticket).
 * (r) resumed: the client offers the ticket of a first connection (psk_dhe_ke only,
 *     what OpenSSL offers), every following handshake resumes with a fresh X25519
 *     exchange and no certificate; the server issues one new ticket each time, as a
 *     resumed server does. Counted only if mbedTLS reports the PSK used
 *     (resumed_ok = handshakes that did resume).
 * (b) AES-256-GCM with the mbedtls_gcm module on 16 KiB records (shaped as in TLS 1.3:
 *     12-byte IV, 5-byte AAD, 16-byte tag; RFC 8446 §5.2): encrypt and decrypt
 *     MB per CPU-second, BULK_MIB MiB each; and the record layer itself: the server's
 *     mbedtls_ssl_write (down) and mbedtls_ssl_read (up) of BULK_MIB MiB through the
 *     memory buffers, server CPU only.
 * Every loop is bounded by its count and by MAXSECS (wall) per part.
 * Output: one line of key=value pairs per part on stdout; errors on stderr, exit 1.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mbedtls/build_info.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/gcm.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

/* ------------------------------------------------------------ clocks */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ memory pipes */

/* One direction of the in-memory transport. A reader that finds it empty gets
   WANT_READ, like a non-blocking socket; it never fills up in this program (the peer
   drains it before the next write), but a full pipe answers WANT_WRITE. */
typedef struct {
    unsigned char buf[1 << 17];
    size_t r, w;
} pipe_t;

typedef struct {
    pipe_t *in, *out;
} end_t;

static int pipe_send(void *p, const unsigned char *b, size_t n)
{
    pipe_t *o = ((end_t *)p)->out;
    if (o->r == o->w)
        o->r = o->w = 0;
    if (o->w == sizeof(o->buf))
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    if (n > sizeof(o->buf) - o->w)
        n = sizeof(o->buf) - o->w;
    memcpy(o->buf + o->w, b, n);
    o->w += n;
    return (int)n;
}

static int pipe_recv(void *p, unsigned char *b, size_t n)
{
    pipe_t *i = ((end_t *)p)->in;
    if (i->r == i->w)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > i->w - i->r)
        n = i->w - i->r;
    memcpy(b, i->buf + i->r, n);
    i->r += n;
    return (int)n;
}

static pipe_t c2s, s2c;
static end_t srv_end = {&c2s, &s2c}, cli_end = {&s2c, &c2s};

/* ------------------------------------------------------------ setup */

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static mbedtls_x509_crt crt;
static mbedtls_pk_context key;
static mbedtls_ssl_ticket_context tickets;
static mbedtls_ssl_config sconf, sconf_t, cconf;

static const int suites[] = {MBEDTLS_TLS1_3_AES_256_GCM_SHA384, 0};
static const uint16_t groups[] = {MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
                                  MBEDTLS_SSL_IANA_TLS_GROUP_NONE};

static int fail(const char *what, int ret)
{
    char e[160];
    mbedtls_strerror(ret, e, sizeof(e));
    fprintf(stderr, "ceiling: %s: -0x%04x %s\n", what, (unsigned)-ret, e);
    return 1;
}

static int conf_common(mbedtls_ssl_config *c, int endpoint)
{
    mbedtls_ssl_config_init(c);
    int ret = mbedtls_ssl_config_defaults(c, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0)
        return ret;
    mbedtls_ssl_conf_rng(c, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ssl_conf_min_tls_version(c, MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_max_tls_version(c, MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_ciphersuites(c, suites);
    mbedtls_ssl_conf_groups(c, groups);
    mbedtls_ssl_conf_authmode(c, MBEDTLS_SSL_VERIFY_NONE);
    return 0;
}

/* mbedtls_ssl_ticket_parse, counting the tickets it accepted. */
static long tickets_parsed;
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_TICKET_C)
static int ticket_parse_counted(void *p, mbedtls_ssl_session *sess, unsigned char *buf,
                                size_t len)
{
    int ret = mbedtls_ssl_ticket_parse(p, sess, buf, len);
    if (ret == 0)
        tickets_parsed++;
    return ret;
}
#endif

static int setup(const char *cert, const char *keyf)
{
    int ret;
    psa_status_t st = psa_crypto_init();
    if (st != PSA_SUCCESS) {
        fprintf(stderr, "ceiling: psa_crypto_init: %d\n", (int)st);
        return 1;
    }
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    if ((ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
                                     (const unsigned char *)"ceiling", 7)) != 0)
        return fail("drbg seed", ret);
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&key);
    if ((ret = mbedtls_x509_crt_parse_file(&crt, cert)) != 0)
        return fail(cert, ret);
    if ((ret = mbedtls_pk_parse_keyfile(&key, keyf, NULL, mbedtls_ctr_drbg_random, &drbg)) != 0)
        return fail(keyf, ret);

    if ((ret = conf_common(&sconf, MBEDTLS_SSL_IS_SERVER)) != 0 ||
        (ret = mbedtls_ssl_conf_own_cert(&sconf, &crt, &key)) != 0)
        return fail("server config", ret);
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_PROTO_TLS1_3)
    mbedtls_ssl_conf_new_session_tickets(&sconf, 0);
#endif
    if ((ret = conf_common(&sconf_t, MBEDTLS_SSL_IS_SERVER)) != 0 ||
        (ret = mbedtls_ssl_conf_own_cert(&sconf_t, &crt, &key)) != 0)
        return fail("server config (tickets)", ret);
    if ((ret = conf_common(&cconf, MBEDTLS_SSL_IS_CLIENT)) != 0)
        return fail("client config", ret);
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_TICKET_C)
    mbedtls_ssl_ticket_init(&tickets);
    if ((ret = mbedtls_ssl_ticket_setup(&tickets, mbedtls_ctr_drbg_random, &drbg,
                                        MBEDTLS_CIPHER_AES_256_GCM, 86400)) != 0)
        return fail("ticket setup", ret);
    mbedtls_ssl_conf_session_tickets_cb(&sconf_t, mbedtls_ssl_ticket_write,
                                        ticket_parse_counted, &tickets);
    mbedtls_ssl_conf_new_session_tickets(&sconf_t, 1);
    mbedtls_ssl_conf_session_tickets(&cconf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
        &cconf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
    /* OpenSSL's client offers psk_dhe_ke only; so does this one. */
    mbedtls_ssl_conf_tls13_key_exchange_modes(
        &cconf, MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL |
                    MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL);
    mbedtls_ssl_conf_tls13_key_exchange_modes(
        &sconf_t, MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL |
                      MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL);
#endif
    return 0;
}

static int want(int r)
{
    return r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE;
}

/* ------------------------------------------------------------ handshakes */

typedef struct {
    double hs_cpu;      /* server: mbedtls_ssl_handshake calls (+ ticket write) */
    double conn_cpu;    /* server: setup .. free, everything it does */
    int resumed;        /* the server accepted the client's PSK */
    int got_ticket;     /* the client received a NewSessionTicket */
} one_t;

/* One connection. srv: server config; sess: the client's ticket to offer (or NULL);
   save: where to store the ticket the client receives (or NULL). */
static int one_conn(mbedtls_ssl_config *srv, mbedtls_ssl_session *sess,
                    mbedtls_ssl_session *save, one_t *o)
{
    mbedtls_ssl_context s, c;
    int ret, rs = MBEDTLS_ERR_SSL_WANT_READ, rc = MBEDTLS_ERR_SSL_WANT_READ;
    memset(o, 0, sizeof(*o));
    c2s.r = c2s.w = s2c.r = s2c.w = 0;
    mbedtls_ssl_init(&c);
    if ((ret = mbedtls_ssl_setup(&c, &cconf)) != 0 ||
        (ret = mbedtls_ssl_set_hostname(&c, "a.example")) != 0)
        return fail("client setup", ret);
    mbedtls_ssl_set_bio(&c, &cli_end, pipe_send, pipe_recv, NULL);
    if (sess && (ret = mbedtls_ssl_set_session(&c, sess)) != 0)
        return fail("client set_session", ret);

    long parsed0 = tickets_parsed;
    double c0 = cpu_now();
    mbedtls_ssl_init(&s);
    if ((ret = mbedtls_ssl_setup(&s, srv)) != 0)
        return fail("server setup", ret);
    mbedtls_ssl_set_bio(&s, &srv_end, pipe_send, pipe_recv, NULL);
    double conn = cpu_now() - c0;

    /* Alternate until both ends are done; a handshake is a handful of flights. */
    for (int round = 0; round < 64 && (rs != 0 || rc != 0); round++) {
        if (rc != 0) {
            rc = mbedtls_ssl_handshake(&c);
            if (rc != 0 && !want(rc))
                return fail("client handshake", rc);
        }
        if (rs != 0) {
            double t = cpu_now();
            rs = mbedtls_ssl_handshake(&s);
            double d = cpu_now() - t;
            o->hs_cpu += d;
            conn += d;
            if (rs != 0 && !want(rs))
                return fail("server handshake", rs);
        }
    }
    if (rs != 0 || rc != 0) {
        fprintf(stderr, "ceiling: handshake did not finish\n");
        return 1;
    }
    /* One small exchange each way, as a stream header round trip: the server's first
       write also carries its NewSessionTicket (mbedTLS 3.6 sends it after the
       handshake, before application data). */
    unsigned char b[512];
    if ((ret = mbedtls_ssl_write(&c, (const unsigned char *)"<stream>", 8)) != 8)
        return fail("client write", ret);
    double t = cpu_now();
    ret = mbedtls_ssl_read(&s, b, sizeof(b));
    double rd = cpu_now() - t;
    if (ret != 8)
        return fail("server read", ret);
    t = cpu_now();
    ret = mbedtls_ssl_write(&s, (const unsigned char *)"<features/>", 11);
    double wr = cpu_now() - t;
    if (ret != 11)
        return fail("server write", ret);
    conn += rd + wr;
    if (srv == &sconf_t)
        o->hs_cpu += wr;    /* the ticket goes out with this write */
    for (int k = 0; k < 8; k++) {
        ret = mbedtls_ssl_read(&c, b, sizeof(b));
        if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            o->got_ticket = 1;
            if (save && (ret = mbedtls_ssl_get_session(&c, save)) != 0)
                return fail("client get_session", ret);
            continue;
        }
        if (want(ret) && s2c.r < s2c.w)
            continue;   /* a post-handshake message was consumed; the data follows */
        break;
    }
    if (ret != 11)
        return fail("client read", ret);
    /* The server took the offered ticket: it parsed (ticket_parse_counted) and the
       handshake, whose PSK binder check would fail otherwise, completed. */
    o->resumed = sess != NULL && tickets_parsed > parsed0;
    t = cpu_now();
    mbedtls_ssl_close_notify(&s);
    mbedtls_ssl_free(&s);
    conn += cpu_now() - t;
    mbedtls_ssl_close_notify(&c);
    mbedtls_ssl_free(&c);
    o->conn_cpu = conn;
    return 0;
}

static int run_handshakes(const char *name, mbedtls_ssl_config *srv, int resume, long n,
                          double maxsecs)
{
    mbedtls_ssl_session first;
    mbedtls_ssl_session_init(&first);
    one_t o;
    int have = 0;
    if (resume) {
        /* The first connection is a full one that gets the ticket every following
           handshake offers (never timed). */
        if (one_conn(srv, NULL, &first, &o) != 0)
            return 1;
        have = o.got_ticket;
        if (!have) {
            printf("part=%s n=0 note=no_ticket_received\n", name);
            return 0;
        }
    }
    double hs = 0, conn = 0, w0 = wall_now();
    long done = 0, resumed = 0, tickets_got = 0;
    while (done < n && wall_now() - w0 < maxsecs) {
        if (one_conn(srv, have ? &first : NULL, NULL, &o) != 0)
            return 1;
        hs += o.hs_cpu;
        conn += o.conn_cpu;
        resumed += o.resumed;
        tickets_got += o.got_ticket;
        done++;
    }
    mbedtls_ssl_session_free(&first);
    if (done == 0)
        return 1;
    printf("part=%s n=%ld server_hs_ms=%.3f server_conn_ms=%.3f hs_per_cpu_s=%.1f "
           "resumed_ok=%ld tickets=%ld wall_s=%.2f\n",
           name, done, hs * 1e3 / (double)done, conn * 1e3 / (double)done,
           hs > 0 ? (double)done / hs : 0.0, resumed, tickets_got, wall_now() - w0);
    return 0;
}

/* ------------------------------------------------------------ bulk */

enum { REC = 16384 };

static int run_gcm(long mib, double maxsecs)
{
    static unsigned char in[REC], out[REC], tag[16], k[32], iv[12], aad[5];
    memset(in, ' ', sizeof(in));
    memset(k, 7, sizeof(k));
    aad[0] = 23; aad[1] = 3; aad[2] = 3; aad[3] = (REC + 17) >> 8; aad[4] = (REC + 17) & 0xff;
    mbedtls_gcm_context g;
    mbedtls_gcm_init(&g);
    int ret = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, k, 256);
    if (ret != 0)
        return fail("gcm setkey", ret);
    long recs = mib * (1048576 / REC), i;
    double w0 = wall_now(), c0 = cpu_now();
    for (i = 0; i < recs && ((i & 63) || wall_now() - w0 < maxsecs); i++) {
        memcpy(iv + 4, &i, sizeof(i));
        if ((ret = mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, REC, iv, sizeof(iv), aad,
                                             sizeof(aad), in, out, sizeof(tag), tag)) != 0)
            return fail("gcm encrypt", ret);
    }
    double enc = cpu_now() - c0;
    long encn = i;
    /* Decrypt one authentic record over and over (its tag must verify each time). */
    memset(iv + 4, 0, 8);
    mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, REC, iv, sizeof(iv), aad, sizeof(aad),
                              in, out, sizeof(tag), tag);
    w0 = wall_now();
    c0 = cpu_now();
    static unsigned char plain[REC];
    for (i = 0; i < recs && ((i & 63) || wall_now() - w0 < maxsecs); i++) {
        if ((ret = mbedtls_gcm_auth_decrypt(&g, REC, iv, sizeof(iv), aad, sizeof(aad), tag,
                                            sizeof(tag), out, plain)) != 0)
            return fail("gcm decrypt", ret);
    }
    double dec = cpu_now() - c0;
    mbedtls_gcm_free(&g);
    printf("part=gcm record=%d enc_MBps=%.1f dec_MBps=%.1f enc_n=%ld dec_n=%ld\n", REC,
           (double)encn * REC / enc / 1e6, (double)i * REC / dec / 1e6, encn, i);
    return 0;
}

/* The record layer: server writes (down) or reads (up) BULK_MIB MiB through the memory
   pipes; only the server's calls are timed. Writes are looped on partial writes (a
   build with a smaller MBEDTLS_SSL_OUT_CONTENT_LEN takes less per call). */
static int run_records(long mib, double maxsecs)
{
    mbedtls_ssl_context s, c;
    int ret, rs = 1, rc = 1;
    c2s.r = c2s.w = s2c.r = s2c.w = 0;
    mbedtls_ssl_init(&s);
    mbedtls_ssl_init(&c);
    if ((ret = mbedtls_ssl_setup(&s, &sconf)) != 0 || (ret = mbedtls_ssl_setup(&c, &cconf)) != 0)
        return fail("record setup", ret);
    mbedtls_ssl_set_hostname(&c, "a.example");
    mbedtls_ssl_set_bio(&s, &srv_end, pipe_send, pipe_recv, NULL);
    mbedtls_ssl_set_bio(&c, &cli_end, pipe_send, pipe_recv, NULL);
    for (int round = 0; round < 64 && (rs != 0 || rc != 0); round++) {
        if (rc != 0 && (rc = mbedtls_ssl_handshake(&c)) != 0 && !want(rc))
            return fail("record client handshake", rc);
        if (rs != 0 && (rs = mbedtls_ssl_handshake(&s)) != 0 && !want(rs))
            return fail("record server handshake", rs);
    }
    if (rs != 0 || rc != 0)
        return fail("record handshake", -1);
    static unsigned char buf[REC];
    memset(buf, ' ', sizeof(buf));
    long total = mib * 1048576L;
    double cpu[2] = {0, 0};
    long moved[2] = {0, 0};
    for (int dir = 0; dir < 2; dir++) {         /* 0: down (server writes), 1: up */
        mbedtls_ssl_context *wr = dir == 0 ? &s : &c, *rd = dir == 0 ? &c : &s;
        double w0 = wall_now();
        long done = 0;
        while (done < total && wall_now() - w0 < maxsecs) {
            size_t off = 0;
            while (off < REC) {
                double t = cpu_now();
                ret = mbedtls_ssl_write(wr, buf + off, REC - off);
                if (dir == 0)
                    cpu[0] += cpu_now() - t;
                if (ret <= 0)
                    return fail("record write", ret);
                off += (size_t)ret;
                /* Drain what is in the pipe now, so that it never fills. */
                for (;;) {
                    static unsigned char sink[REC];
                    t = cpu_now();
                    int r = mbedtls_ssl_read(rd, sink, sizeof(sink));
                    if (dir == 1)
                        cpu[1] += cpu_now() - t;
                    if (r > 0)
                        continue;
                    if (want(r))
                        break;
                    return fail("record read", r);
                }
            }
            done += REC;
        }
        moved[dir] = done;
    }
    mbedtls_ssl_free(&s);
    mbedtls_ssl_free(&c);
    printf("part=records out_content_len=%d down_MBps=%.1f up_MBps=%.1f down_bytes=%ld "
           "up_bytes=%ld\n", MBEDTLS_SSL_OUT_CONTENT_LEN,
           (double)moved[0] / cpu[0] / 1e6, (double)moved[1] / cpu[1] / 1e6, moved[0], moved[1]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: ceiling CERT KEY HANDSHAKES BULK_MIB MAXSECS\n");
        return 2;
    }
    long n = atol(argv[3]), mib = atol(argv[4]);
    double maxsecs = atof(argv[5]);
    if (setup(argv[1], argv[2]) != 0)
        return 1;
    char ver[32];
    mbedtls_version_get_string(ver);
    printf("part=lib version=%s headers=%s use_psa=%d tickets=%d\n", ver,
           MBEDTLS_VERSION_STRING,
#if defined(MBEDTLS_USE_PSA_CRYPTO)
           1,
#else
           0,
#endif
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_TICKET_C) && \
    defined(MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL_ENABLED)
           1
#else
           0
#endif
    );
    fflush(stdout);
    if (run_handshakes("full", &sconf, 0, n, maxsecs) != 0)
        return 1;
#if defined(MBEDTLS_SSL_SESSION_TICKETS) && defined(MBEDTLS_SSL_TICKET_C) && \
    defined(MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL_ENABLED)
    if (run_handshakes("full_ticket", &sconf_t, 0, n, maxsecs) != 0 ||
        run_handshakes("resumed", &sconf_t, 1, n, maxsecs) != 0)
        return 1;
#endif
    fflush(stdout);
    if (run_gcm(mib, maxsecs) != 0 || run_records(mib, maxsecs) != 0)
        return 1;
    return 0;
}
