/*
 * c2s login load client for tests/bench/bench_c2s.sh (OpenSSL, pthreads, blocking sockets).
 *
 *   loginc login HOST PORT DOMAIN starttls|direct CONC SECS NUSERS PASSWORD [MAXCOUNT]
 *   loginc hs    HOST PORT DOMAIN starttls|direct CONC SECS [MAXCOUNT]
 *
 * login: every iteration of every thread is one complete c2s login (RFC 6120):
 *   TCP connect -> (starttls: stream header, <stream:features/>, <starttls/>, <proceed/>,
 *   RFC 6120 §5) or (direct: TLS at once, XEP-0368) -> TLS handshake (SNI DOMAIN) ->
 *   stream header, features -> SASL SCRAM-SHA-256 if offered, else SCRAM-SHA-1 (RFC 5802,
 *   RFC 7677; gs2 header "n,,": no channel binding) with the server signature verified ->
 *   stream restart (RFC 6120 §6.4.6) -> resource bind (§7) -> optionally <session/> ->
 *   </stream:stream>, wait for the server's close, close_notify, close.
 *   The login time is connect -> bind result. Users are u0..u(NUSERS-1), all with PASSWORD;
 *   thread t uses only the users i with i % CONC == t (so NUSERS >= CONC), and keeps
 *   SaltedPassword per user (RFC 5802 §5.1 lets a client cache it; a real client does,
 *   and the PBKDF2 would otherwise make this client the bottleneck). LOGINC_NOCACHE=1
 *   derives it on every login (to measure what PBKDF2 costs).
 * hs: connect -> (starttls: header, features, <starttls/>, <proceed/>) -> TLS handshake ->
 *   close_notify, close. No XMPP after TLS, no SASL: the TLS(+STARTTLS) cost alone.
 *
 * Every loop is bounded in time (SECS) and count (MAXCOUNT, default 10,000,000); every
 * socket has 10 s send/receive timeouts. Output: one line of key=value pairs on stdout,
 * including this process's own CPU seconds (user+system) so that a saturated client shows.
 * Env: BENCH_SUITE (TLS_AES_256_GCM_SHA384), BENCH_GROUP (X25519), LOGINC_MECH (force a
 * mechanism, e.g. SCRAM-SHA-1), LOGINC_SESSION=1 (send the RFC 3921 <session/>),
 * LOGINC_NOCACHE=1, LOGINC_KEYS=FILE (pre-filled SaltedPassword cache, see load_keys),
 * LOGINC_SAMPLES=FILE (append every login/handshake time in ms, one a line).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include "bench_util.h"

#define RBUF 16384
#define MAX_SAMPLES_PER_THREAD 200000

static SSL_CTX *ctx;
static struct sockaddr_in dst;
static const char *domain, *password;
static int direct_tls, mode_login, conc, nusers, opt_session, opt_nocache;
static const char *force_mech;
static double deadline;
static long maxcount;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long total_started;
static char first_error[160];

enum { E_CONNECT, E_STARTTLS, E_TLS, E_FEATURES, E_MECH, E_SASL, E_SIG, E_BIND, E_SESSION, E_CLOSE, E_N };
static const char *const ename[E_N] = {"connect", "starttls", "tls",  "features", "mech",
                                       "sasl",    "sig",      "bind", "session",  "close"};


/* Per-user SCRAM cache: SaltedPassword for (salt, iterations, mechanism). */
struct ucache {
    char salt[96];
    int iter;
    int mech256;
    unsigned char salted[32];
    int valid;
};

struct thr {
    int id;
    long ok, err[E_N], seq;
    double st_sum[3], st_max[3]; /* stages of a successful login: TLS, SASL, bind */
    double *samples;
    size_t nsamples;
    struct ucache *cache; /* indexed by user / conc */
    char mech[24];
};

struct conn {
    int fd;
    SSL *ssl;
    char buf[RBUF + 1];
    size_t len;
};

static void note_error(const char *what, const char *detail)
{
    pthread_mutex_lock(&mu);
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "%s:%.120s", what, detail ? detail : "");
    pthread_mutex_unlock(&mu);
}

static int c_write(struct conn *c, const char *s, size_t n)
{
    if (c->ssl) {
        size_t off = 0;
        while (off < n) {
            int w = SSL_write(c->ssl, s + off, (int)(n - off));
            if (w <= 0)
                return -1;
            off += (size_t)w;
        }
        return 0;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

static int c_puts(struct conn *c, const char *s) { return c_write(c, s, strlen(s)); }

/* Reads until the buffer contains NEEDLE (returns a pointer into buf) or ALT (if given);
 * NULL on EOF, timeout, a full buffer, or a <failure/> / <stream:error/> arriving. */
static char *c_wait(struct conn *c, const char *needle, const char *alt)
{
    for (int rounds = 0; rounds < 1000; rounds++) {
        char *p = strstr(c->buf, needle);
        if (p)
            return p;
        if (alt && (p = strstr(c->buf, alt)))
            return p;
        if (strstr(c->buf, "<failure") || strstr(c->buf, "<stream:error"))
            return NULL;
        if (c->len >= RBUF)
            return NULL;
        int r;
        if (c->ssl) {
            r = SSL_read(c->ssl, c->buf + c->len, (int)(RBUF - c->len));
        } else {
            ssize_t n = recv(c->fd, c->buf + c->len, RBUF - c->len, 0);
            r = (int)n;
        }
        if (r <= 0)
            return NULL;
        c->len += (size_t)r;
        c->buf[c->len] = 0;
    }
    return NULL;
}

static void c_clear(struct conn *c)
{
    c->len = 0;
    c->buf[0] = 0;
}

static int c_header(struct conn *c)
{
    char h[320];
    snprintf(h, sizeof h,
             "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
             domain);
    if (c_puts(c, h) < 0)
        return -1;
    /* RFC 6120 §4.3.2: features follow the response header */
    if (!c_wait(c, "</stream:features>", "<stream:features/>"))
        return -1;
    return 0;
}

static int c_tls(struct conn *c)
{
    c->ssl = SSL_new(ctx);
    if (!c->ssl)
        return -1;
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, domain);
    if (SSL_connect(c->ssl) != 1) {
        unsigned long e = ERR_get_error();
        char eb[128];
        ERR_error_string_n(e, eb, sizeof eb);
        note_error("tls", eb);
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* TCP connect, then STARTTLS (RFC 6120 §5.4) or direct TLS (XEP-0368), TLS handshake.
 * Returns an E_* code on failure, -1 on success. */
static int c_open(struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return E_CONNECT;
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0) {
        note_error("connect", strerror(errno));
        return E_CONNECT;
    }
    if (!direct_tls) {
        if (c_header(c) < 0 || !strstr(c->buf, "urn:ietf:params:xml:ns:xmpp-tls")) {
            note_error("starttls-features", c->buf);
            return E_STARTTLS;
        }
        c_clear(c);
        if (c_puts(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") < 0 ||
            !c_wait(c, "<proceed", NULL)) {
            note_error("proceed", c->buf);
            return E_STARTTLS;
        }
        c_clear(c);
    }
    if (c_tls(c) < 0)
        return E_TLS;
    return -1;
}

static void c_close(struct conn *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* our close_notify; not waiting for the peer's */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int b64enc(char *out, size_t cap, const unsigned char *in, size_t n)
{
    if (4 * ((n + 2) / 3) + 1 > cap)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static int b64dec(unsigned char *out, size_t cap, const char *in, size_t n)
{
    if (n == 0 || n % 4 || 3 * (n / 4) > cap)
        return -1;
    int r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (r < 0)
        return -1;
    if (in[n - 1] == '=')
        r--;
    if (in[n - 2] == '=')
        r--;
    return r;
}

/* The base64 text of the first <TAG ...>TEXT</TAG> in the buffer, into out. */
static int elem_b64(struct conn *c, const char *tag, unsigned char *out, size_t cap)
{
    char open[32];
    snprintf(open, sizeof open, "<%s", tag);
    char *p = strstr(c->buf, open);
    if (!p)
        return -1;
    p = strchr(p, '>');
    if (!p || p[-1] == '/')
        return 0; /* empty element */
    p++;
    char *e = strchr(p, '<');
    if (!e)
        return -1;
    return b64dec(out, cap, p, (size_t)(e - p));
}

/* SCRAM (RFC 5802 §3, §5) over XMPP SASL (RFC 6120 §6). Returns -1 on success or E_*. */
static int scram(struct thr *t, struct conn *c, int user, const char *mech)
{
    int is256 = strcmp(mech, "SCRAM-SHA-256") == 0;
    const EVP_MD *md = is256 ? EVP_sha256() : EVP_sha1();
    unsigned dl = is256 ? 32 : 20;
    char bare[128], msg[1024], b64[1024];
    unsigned char nb[18], raw[1200];
    char cnonce[32];

    RAND_bytes(nb, sizeof nb);
    b64enc(cnonce, sizeof cnonce, nb, sizeof nb);
    snprintf(bare, sizeof bare, "n=u%d,r=%s", user, cnonce);
    int n = snprintf(msg, sizeof msg, "n,,%s", bare);
    b64enc(b64, sizeof b64, (unsigned char *)msg, (size_t)n);
    snprintf((char *)raw, sizeof raw,
             "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>", mech, b64);
    c_clear(c);
    if (c_puts(c, (char *)raw) < 0 || !c_wait(c, "</challenge>", NULL)) {
        note_error("challenge", c->buf);
        return E_SASL;
    }
    int sl = elem_b64(c, "challenge", raw, sizeof raw - 1);
    if (sl <= 0)
        return E_SASL;
    raw[sl] = 0;
    char sfirst[1200];
    snprintf(sfirst, sizeof sfirst, "%s", (char *)raw);
    /* server-first-message: r=NONCE,s=SALT,i=ITER */
    char *r = strstr(sfirst, "r="), *s = strstr(sfirst, ",s="), *i = strstr(sfirst, ",i=");
    if (!r || !s || !i || strncmp(r + 2, cnonce, strlen(cnonce)) != 0) {
        note_error("server-first", sfirst);
        return E_SASL;
    }
    char snonce[256], salt64[128];
    snprintf(snonce, sizeof snonce, "%.*s", (int)(s - (r + 2)), r + 2);
    snprintf(salt64, sizeof salt64, "%.*s", (int)(i - (s + 3)), s + 3);
    int iter = atoi(i + 3);
    if (iter <= 0 || iter > 10000000)
        return E_SASL;

    unsigned char salted[32];
    struct ucache *uc = &t->cache[user / conc];
    if (!opt_nocache && uc->valid && uc->iter == iter && uc->mech256 == is256 &&
        strcmp(uc->salt, salt64) == 0) {
        memcpy(salted, uc->salted, dl);
    } else {
        unsigned char salt[96];
        int saltl = b64dec(salt, sizeof salt, salt64, strlen(salt64));
        if (saltl <= 0)
            return E_SASL;
        if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, saltl, iter, md, (int)dl,
                              salted) != 1)
            return E_SASL;
        snprintf(uc->salt, sizeof uc->salt, "%s", salt64);
        uc->iter = iter;
        uc->mech256 = is256;
        memcpy(uc->salted, salted, dl);
        uc->valid = 1;
    }
    unsigned char ckey[32], skey[32], stored[32], csig[32], ssig[32], proof[32];
    unsigned l;
    HMAC(md, salted, (int)dl, (const unsigned char *)"Client Key", 10, ckey, &l);
    HMAC(md, salted, (int)dl, (const unsigned char *)"Server Key", 10, skey, &l);
    EVP_Digest(ckey, dl, stored, &l, md, NULL);
    char cfinal_wo[320], authmsg[2800];
    snprintf(cfinal_wo, sizeof cfinal_wo, "c=biws,r=%s", snonce); /* biws = b64("n,,") */
    n = snprintf(authmsg, sizeof authmsg, "%s,%s,%s", bare, sfirst, cfinal_wo);
    HMAC(md, stored, (int)dl, (unsigned char *)authmsg, (size_t)n, csig, &l);
    HMAC(md, skey, (int)dl, (unsigned char *)authmsg, (size_t)n, ssig, &l);
    for (unsigned k = 0; k < dl; k++)
        proof[k] = ckey[k] ^ csig[k];
    char proof64[64];
    b64enc(proof64, sizeof proof64, proof, dl);
    n = snprintf(msg, sizeof msg, "%s,p=%s", cfinal_wo, proof64);
    b64enc(b64, sizeof b64, (unsigned char *)msg, (size_t)n);
    snprintf((char *)raw, sizeof raw,
             "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>", b64);
    c_clear(c);
    if (c_puts(c, (char *)raw) < 0 || !c_wait(c, "</success>", "<success")) {
        note_error("success", c->buf);
        return E_SASL;
    }
    /* RFC 5802 §3: verify v=ServerSignature (RFC 6120 §6.3.10: in <success/>) */
    if (!c_wait(c, "</success>", NULL))
        return E_SIG;
    sl = elem_b64(c, "success", raw, sizeof raw - 1);
    char ssig64[64];
    b64enc(ssig64, sizeof ssig64, ssig, dl);
    if (sl <= 2) {
        note_error("sig", "no server signature in success");
        return E_SIG;
    }
    raw[sl] = 0;
    if (strncmp((char *)raw, "v=", 2) != 0 || strcmp((char *)raw + 2, ssig64) != 0) {
        note_error("sig", (char *)raw);
        return E_SIG;
    }
    return -1;
}

static const char *pick_mech(struct conn *c)
{
    if (force_mech) {
        char m[64];
        snprintf(m, sizeof m, ">%s<", force_mech);
        return strstr(c->buf, m) ? force_mech : NULL;
    }
    if (strstr(c->buf, ">SCRAM-SHA-256<"))
        return "SCRAM-SHA-256";
    if (strstr(c->buf, ">SCRAM-SHA-1<"))
        return "SCRAM-SHA-1";
    return NULL;
}

/* One complete login. Returns -1 on success or the E_* stage that failed. */
static void stage(struct thr *t, int i, double d)
{
    t->st_sum[i] += d;
    if (d > t->st_max[i])
        t->st_max[i] = d;
}

static int one_login(struct thr *t, struct conn *c, int user, double *t_login)
{
    double t0 = now();
    int e = c_open(c);
    if (e >= 0)
        return e;
    double tls_done = now();
    c_clear(c);
    if (c_header(c) < 0) {
        note_error("features", c->buf);
        return E_FEATURES;
    }
    const char *mech = pick_mech(c);
    if (!mech) {
        note_error("mech", c->buf);
        return E_MECH;
    }
    snprintf(t->mech, sizeof t->mech, "%s", mech);
    e = scram(t, c, user, mech);
    if (e >= 0)
        return e;
    double sasl_done = now();
    c_clear(c);
    if (c_header(c) < 0 || !strstr(c->buf, "urn:ietf:params:xml:ns:xmpp-bind")) {
        note_error("bind-features", c->buf);
        return E_FEATURES;
    }
    c_clear(c);
    char iq[256];
    snprintf(iq, sizeof iq,
             "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<resource>r%d-%ld</resource></bind></iq>",
             t->id, t->seq++);
    if (c_puts(c, iq) < 0 || !c_wait(c, "</iq>", NULL) ||
        (!strstr(c->buf, "'result'") && !strstr(c->buf, "\"result\""))) {
        note_error("bind", c->buf);
        return E_BIND;
    }
    if (opt_session) {
        c_clear(c);
        if (c_puts(c, "<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>") < 0 ||
            !c_wait(c, "id='s1'", "id=\"s1\"")) {
            note_error("session", c->buf);
            return E_SESSION;
        }
    }
    *t_login = now() - t0;
    stage(t, 0, tls_done - t0);   /* connect + (STARTTLS) + TLS handshake */
    stage(t, 1, sasl_done - tls_done); /* stream, features, SCRAM */
    stage(t, 2, t0 + *t_login - sasl_done); /* restart, features, bind (session) */
    c_clear(c);
    /* RFC 6120 §4.4: close our stream, wait (bounded by the socket timeout) for theirs */
    if (c_puts(c, "</stream:stream>") < 0 || !c_wait(c, "</stream:stream>", NULL))
        return E_CLOSE;
    return -1;
}

static void *worker(void *arg)
{
    struct thr *t = arg;
    int k = 0;
    for (;;) {
        if (now() >= deadline)
            break;
        pthread_mutex_lock(&mu);
        int go = total_started < maxcount;
        if (go)
            total_started++;
        pthread_mutex_unlock(&mu);
        if (!go)
            break;
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            break;
        c->fd = -1;
        int e;
        double tl = 0;
        if (mode_login) {
            int nmine = (nusers - t->id + conc - 1) / conc; /* users t.id, t.id+conc, ... */
            int user = t->id + conc * (k++ % nmine);
            e = one_login(t, c, user, &tl);
        } else {
            double t0 = now();
            e = c_open(c);
            tl = now() - t0;
        }
        c_close(c);
        free(c);
        if (e >= 0) {
            t->err[e]++;
            continue;
        }
        t->ok++;
        if (t->nsamples < MAX_SAMPLES_PER_THREAD)
            t->samples[t->nsamples++] = tl;
    }
    return NULL;
}

/* LOGINC_KEYS: lines "USER SALT_BASE64 ITER SALTEDPASSWORD_HEX" (SCRAM-SHA-1), what a
 * client that cached SaltedPassword (RFC 5802 §5.1) from an earlier login holds. */
static int load_keys(struct thr *th, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char salt[96], hex[64];
    int user, iter, n = 0;
    while (n < 10000000 && fscanf(f, "%d %95s %d %63s", &user, salt, &iter, hex) == 4) {
        n++;
        if (user < 0 || user >= nusers || strlen(hex) != 40)
            continue;
        struct ucache *uc = &th[user % conc].cache[user / conc];
        snprintf(uc->salt, sizeof uc->salt, "%s", salt);
        uc->iter = iter;
        uc->mech256 = 0;
        for (int k = 0; k < 20; k++) {
            unsigned v;
            if (sscanf(hex + 2 * k, "%2x", &v) != 1)
                break;
            uc->salted[k] = (unsigned char)v;
        }
        uc->valid = 1;
    }
    fclose(f);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: loginc login HOST PORT DOMAIN starttls|direct CONC SECS NUSERS PASSWORD [MAXCOUNT]\n"
                    "       loginc hs    HOST PORT DOMAIN starttls|direct CONC SECS [MAXCOUNT]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 8)
        usage();
    mode_login = strcmp(argv[1], "login") == 0;
    if (!mode_login && strcmp(argv[1], "hs") != 0)
        usage();
    if (mode_login && argc < 10)
        usage();
    memset(&dst, 0, sizeof dst);
    dst.sin_family = AF_INET;
    dst.sin_port = htons((unsigned short)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &dst.sin_addr) != 1)
        usage();
    domain = argv[4];
    direct_tls = strcmp(argv[5], "direct") == 0;
    conc = atoi(argv[6]);
    double secs = atof(argv[7]);
    maxcount = 10000000;
    if (mode_login) {
        nusers = atoi(argv[8]);
        password = argv[9];
        if (argc > 10)
            maxcount = atol(argv[10]);
    } else if (argc > 8) {
        maxcount = atol(argv[8]);
    }
    if (conc < 1 || conc > 4096 || secs <= 0 || secs > 3600 || maxcount < 1 ||
        (mode_login && (nusers < conc || nusers > 1000000)))
        usage();
    force_mech = getenv("LOGINC_MECH");
    opt_session = getenv("LOGINC_SESSION") && atoi(getenv("LOGINC_SESSION"));
    opt_nocache = getenv("LOGINC_NOCACHE") && atoi(getenv("LOGINC_NOCACHE"));
    signal(SIGPIPE, SIG_IGN);

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    const char *suite = getenv("BENCH_SUITE") ? getenv("BENCH_SUITE") : "TLS_AES_256_GCM_SHA384";
    const char *group = getenv("BENCH_GROUP") ? getenv("BENCH_GROUP") : "X25519";
    if (SSL_CTX_set_ciphersuites(ctx, suite) != 1 || SSL_CTX_set1_groups_list(ctx, group) != 1) {
        fprintf(stderr, "bad BENCH_SUITE/BENCH_GROUP\n");
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

    struct thr *th = calloc((size_t)conc, sizeof *th);
    pthread_t *tid = calloc((size_t)conc, sizeof *tid);
    if (!th || !tid)
        return 1;
    for (int i = 0; i < conc; i++) {
        th[i].id = i;
        th[i].samples = malloc(sizeof(double) * MAX_SAMPLES_PER_THREAD);
        th[i].cache = mode_login ? calloc((size_t)(nusers / conc + 1), sizeof(struct ucache)) : NULL;
        if (!th[i].samples || (mode_login && !th[i].cache))
            return 1;
    }
    const char *keys = getenv("LOGINC_KEYS");
    if (mode_login && keys && !opt_nocache && load_keys(th, keys) < 0) {
        fprintf(stderr, "cannot read LOGINC_KEYS %s\n", keys);
        return 2;
    }
    double t0 = now();
    deadline = t0 + secs;
    for (int i = 0; i < conc; i++) {
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 256 * 1024);
        if (pthread_create(&tid[i], &a, worker, &th[i]) != 0)
            return 1;
        pthread_attr_destroy(&a);
    }
    long ok = 0, err[E_N] = {0}, errs = 0;
    size_t ns = 0;
    for (int i = 0; i < conc; i++) {
        pthread_join(tid[i], NULL);
        ok += th[i].ok;
        for (int e = 0; e < E_N; e++)
            err[e] += th[i].err[e], errs += th[i].err[e];
        ns += th[i].nsamples;
    }
    double el = now() - t0;
    double *all = malloc(sizeof(double) * (ns ? ns : 1));
    size_t j = 0;
    for (int i = 0; i < conc; i++)
        for (size_t k = 0; k < th[i].nsamples; k++)
            all[j++] = th[i].samples[k];
    qsort(all, ns, sizeof(double), cmp_double);
    const char *sf = getenv("LOGINC_SAMPLES");
    if (sf) { /* append every sample (ms), so that a caller can merge several runs */
        FILE *f = fopen(sf, "a");
        if (f) {
            for (size_t k = 0; k < ns; k++)
                fprintf(f, "%.3f\n", all[k] * 1000);
            fclose(f);
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    const char *mech = "-";
    for (int i = 0; i < conc; i++)
        if (th[i].mech[0])
            mech = th[i].mech;
    printf("ok=%ld errors=%ld secs=%.2f rate=%.1f p50_ms=%.2f p99_ms=%.2f client_cpu_s=%.2f "
           "mech=%s",
           ok, errs, el, (double)ok / el, pct(all, ns, 0.50) * 1000, pct(all, ns, 0.99) * 1000, cpu,
           mode_login ? mech : "-");
    if (mode_login && ok > 0) {
        static const char *const sn[3] = {"tls", "sasl", "bind"};
        for (int k = 0; k < 3; k++) {
            double sum = 0, mx = 0;
            for (int i = 0; i < conc; i++) {
                sum += th[i].st_sum[k];
                if (th[i].st_max[k] > mx)
                    mx = th[i].st_max[k];
            }
            printf(" %s_avg_ms=%.2f %s_max_ms=%.1f", sn[k], sum * 1000 / (double)ok, sn[k], mx * 1000);
        }
    }
    for (int e = 0; e < E_N; e++)
        if (err[e])
            printf(" err_%s=%ld", ename[e], err[e]);
    if (first_error[0]) {
        for (char *p = first_error; *p; p++)
            if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
                *p = '_';
        printf(" first_error=%s", first_error);
    }
    printf("\n");
    return 0;
}
