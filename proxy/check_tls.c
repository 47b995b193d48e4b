/*
 * check_tls: one endpoint probe of `xmppfront check` (proxy/check_int.h): TCP connect,
 * then either the STARTTLS exchange (RFC 6120 §5.4.2: stream header, <features/> with
 * <starttls/>, <starttls/>, <proceed/>) or direct TLS (XEP-0368 §3, ALPN xmpp-client /
 * xmpp-server), the handshake with SNI = the service domain (RFC 6120 §13.7.1.2,
 * XEP-0368), a copy of the chain the server sent, and an XMPP stream opened over TLS
 * (its header and features). Non-blocking socket, poll() with a deadline for every step.
 */
#include "proxy/check_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

#include "proxy/tls.h"
#include "proxy/xmlstream.h"

struct xf_ctls {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config starttls, direct_client, direct_server;
    int n_conf;                        /* configurations initialised (for free) */
};

static const char *alpn_client[] = { "xmpp-client", NULL };
static const char *alpn_server[] = { "xmpp-server", NULL };

static int conf_setup(xf_ctls *t, mbedtls_ssl_config *c, mbedtls_x509_crt *ca,
                      const char **alpn)
{
    mbedtls_ssl_config_init(c);
    t->n_conf++;
    int ret = mbedtls_ssl_config_defaults(c, MBEDTLS_SSL_IS_CLIENT,
                                          MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0)
        return ret;
    mbedtls_ssl_conf_rng(c, mbedtls_ctr_drbg_random, &t->drbg);
    xf_tls_apply_policy(c);
    /* certs/ judges the chain (PKIX, DANE, POSH): the handshake completes whatever is
       presented, as a peer that tries every prooftype must let it. */
    mbedtls_ssl_conf_authmode(c, MBEDTLS_SSL_VERIFY_OPTIONAL);
    if (ca)
        mbedtls_ssl_conf_ca_chain(c, ca, NULL);
    if (alpn && (ret = mbedtls_ssl_conf_alpn_protocols(c, alpn)) != 0)
        return ret;
    return 0;
}

xf_ctls *xf_ctls_new(mbedtls_x509_crt *ca, char *err, size_t errlen)
{
    char e[128];
    xf_ctls *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    int ret = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                    (const unsigned char *)"xmppfront-check", 15);
    if (ret == 0)
        ret = conf_setup(t, &t->starttls, ca, NULL);
    if (ret == 0)
        ret = conf_setup(t, &t->direct_client, ca, alpn_client);
    if (ret == 0)
        ret = conf_setup(t, &t->direct_server, ca, alpn_server);
    if (ret != 0) {
        snprintf(err, errlen, "TLS client configuration: %s", xf_tls_strerror(ret, e, sizeof(e)));
        xf_ctls_free(t);
        return NULL;
    }
    return t;
}

void xf_ctls_free(xf_ctls *t)
{
    if (t == NULL)
        return;
    mbedtls_ssl_config *c[3] = { &t->starttls, &t->direct_client, &t->direct_server };
    for (int i = 0; i < t->n_conf; i++)
        mbedtls_ssl_config_free(c[i]);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    free(t);
}

const char *xf_check_addr_text(const xf_dns_addr *a, char *buf, size_t len)
{
    if (inet_ntop(a->family, a->addr, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "?");
    return buf;
}

/* Waits for ev on fd until deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short ev, uint64_t deadline)
{
    for (;;) {
        uint64_t now = xf_check_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = { .fd = fd, .events = ev };
        int r = poll(&p, 1, (int)(deadline - now));
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

static int tcp_connect(const xf_dns_addr *a, unsigned port, uint64_t deadline, char *err,
                       size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (a->family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        memcpy(&s6->sin6_addr, a->addr, 16);
        sl = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        memcpy(&s4->sin_addr, a->addr, 4);
        sl = sizeof(*s4);
    }
    int fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&ss, sl) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    int w = wait_fd(fd, POLLOUT, deadline), soerr = 0;
    socklen_t el = sizeof(soerr);
    if (w <= 0) {
        snprintf(err, errlen, w == 0 ? "no answer (connect timed out)" : "poll: %s",
                 strerror(errno));
        close(fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) != 0 || soerr != 0) {
        snprintf(err, errlen, "%s", strerror(soerr ? soerr : errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- plaintext and TLS I/O with a deadline ---- */

typedef struct io {
    int fd;
    mbedtls_ssl_context *ssl;          /* NULL: plaintext */
    uint64_t deadline;
} io;

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    ssize_t n = send(*(int *)ctx, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return (int)n;
    return errno == EAGAIN || errno == EINTR ? MBEDTLS_ERR_SSL_WANT_WRITE
                                             : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    ssize_t n = recv(*(int *)ctx, buf, len, 0);
    if (n > 0)
        return (int)n;
    if (n == 0)
        return MBEDTLS_ERR_NET_CONN_RESET;
    return errno == EAGAIN || errno == EINTR ? MBEDTLS_ERR_SSL_WANT_READ
                                             : MBEDTLS_ERR_NET_RECV_FAILED;
}

/* 0, or -1 with err set. */
static int io_write(io *c, const char *buf, size_t len, char *err, size_t errlen)
{
    size_t off = 0;
    while (off < len) {
        int r = c->ssl ? mbedtls_ssl_write(c->ssl, (const unsigned char *)buf + off, len - off)
                       : bio_send(&c->fd, (const unsigned char *)buf + off, len - off);
        if (r >= 0) {
            off += (size_t)r;
            continue;
        }
        if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
            snprintf(err, errlen, "write failed (%d)", r);
            return -1;
        }
        if (wait_fd(c->fd, r == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : POLLOUT, c->deadline) <= 0) {
            snprintf(err, errlen, "write timed out");
            return -1;
        }
    }
    return 0;
}

/* Bytes read (> 0), or -1 with err set (closed, error, deadline). */
static int io_read(io *c, char *buf, size_t len, char *err, size_t errlen)
{
    for (;;) {
        int r = c->ssl ? mbedtls_ssl_read(c->ssl, (unsigned char *)buf, len)
                       : bio_recv(&c->fd, (unsigned char *)buf, len);
        if (r > 0)
            return r;
        if (r == 0 || r == MBEDTLS_ERR_NET_CONN_RESET ||
            r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            snprintf(err, errlen, "connection closed by the server");
            return -1;
        }
#ifdef MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET
        if (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            continue;                  /* TLS 1.3 ticket: no application data yet */
#endif
        if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
            char e[96];
            snprintf(err, errlen, "read failed: %s", xf_tls_strerror(r, e, sizeof(e)));
            return -1;
        }
        int w = wait_fd(c->fd, r == MBEDTLS_ERR_SSL_WANT_WRITE ? POLLOUT : POLLIN, c->deadline);
        if (w <= 0) {
            snprintf(err, errlen, "no answer in time");
            return -1;
        }
    }
}

/* Reads until the next XML event that is not NONE: HEADER, ELEMENT, STREAM_END or
   ERROR. Returns the event type, or -1 with err (I/O). */
static int next_event(io *c, xf_xml *x, xf_xml_event *ev, char *err, size_t errlen)
{
    char buf[4096];
    for (;;) {
        if (xf_xml_next(x, ev) != XF_XML_NONE)
            return ev->type;
        int n = io_read(c, buf, sizeof(buf), err, errlen);
        if (n < 0)
            return -1;
        if (xf_xml_push(x, buf, (size_t)n) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
}

static int open_stream(io *c, xf_xml *x, int server, const char *domain, char *err,
                       size_t errlen)
{
    char hdr[600];
    snprintf(hdr, sizeof(hdr), "<?xml version='1.0'?><stream:stream xmlns='%s'%s "
             "xmlns:stream='" XF_NS_STREAMS "' to='%s' version='1.0'>",
             server ? XF_NS_SERVER : XF_NS_CLIENT,
             server ? " xmlns:db='jabber:server:dialback'" : "", domain);
    xf_xml_reset(x);
    return io_write(c, hdr, strlen(hdr), err, errlen);
}

/* Reads the response header and the features: 0 with *features (may be NULL) the
   element's children listed into list, or -1 with err. starttls: 1 if <starttls/>
   was among them. */
static int read_features(io *c, xf_xml *x, char *list, size_t llen, int *starttls,
                         char *err, size_t errlen)
{
    xf_xml_event ev;
    int t = next_event(c, x, &ev, err, errlen);
    if (t != XF_XML_HEADER) {
        if (t == XF_XML_ERROR)
            snprintf(err, errlen, "not an XMPP stream (%s)", ev.reason ? ev.reason : ev.error);
        else if (t >= 0)
            snprintf(err, errlen, "no stream header");
        return -1;
    }
    if (ev.version == NULL || strcmp(ev.version, "1.0") != 0) {
        snprintf(err, errlen, "stream without version='1.0' (no features, no STARTTLS)");
        return -1;
    }
    t = next_event(c, x, &ev, err, errlen);
    if (t != XF_XML_ELEMENT) {
        if (t >= 0)
            snprintf(err, errlen, "stream %s before <features/>",
                     t == XF_XML_STREAM_END ? "closed" : "error");
        return -1;
    }
    if (strcmp(ev.name, "error") == 0 && strcmp(ev.ns_uri, XF_NS_STREAMS) == 0) {
        snprintf(err, errlen, "stream error <%s/>", ev.n_children ? ev.children[0].name : "?");
        return -1;
    }
    if (strcmp(ev.name, "features") != 0 || strcmp(ev.ns_uri, XF_NS_STREAMS) != 0) {
        snprintf(err, errlen, "<%s/> instead of <features/>", ev.name);
        return -1;
    }
    size_t l = 0;
    list[0] = '\0';
    *starttls = 0;
    for (int i = 0; i < ev.n_children && l + 1 < llen; i++) {
        if (strcmp(ev.children[i].name, "starttls") == 0 &&
            strcmp(ev.children[i].ns, XF_NS_TLS) == 0)
            *starttls = 1;
        int n = snprintf(list + l, llen - l, "%s%s", l ? " " : "", ev.children[i].name);
        if (n < 0)
            break;
        l += (size_t)n < llen - l ? (size_t)n : llen - l - 1;
    }
    if (l == 0)
        snprintf(list, llen, "none");
    return 0;
}

static int starttls_exchange(io *c, xf_xml *x, int server, const char *domain, char *err,
                             size_t errlen)
{
    char list[160];
    int offered;
    if (open_stream(c, x, server, domain, err, errlen) != 0 ||
        read_features(c, x, list, sizeof(list), &offered, err, errlen) != 0)
        return -1;
    if (!offered) {
        snprintf(err, errlen, "STARTTLS not offered (features: %s)", list);
        return -1;
    }
    static const char req[] = "<starttls xmlns='" XF_NS_TLS "'/>";
    if (io_write(c, req, sizeof(req) - 1, err, errlen) != 0)
        return -1;
    xf_xml_event ev;
    int t = next_event(c, x, &ev, err, errlen);
    if (t < 0)
        return -1;
    if (t != XF_XML_ELEMENT || strcmp(ev.name, "proceed") != 0 ||
        strcmp(ev.ns_uri, XF_NS_TLS) != 0) {
        snprintf(err, errlen, "<starttls/> answered with %s%s%s",
                 t == XF_XML_ELEMENT ? "<" : "a stream end or error",
                 t == XF_XML_ELEMENT ? ev.name : "", t == XF_XML_ELEMENT ? "/>" : "");
        return -1;
    }
    return 0;
}

void xf_ctls_run(xf_ctls *t, const xf_dns_addr *addr, unsigned port, int direct, int server,
                 const char *domain, uint64_t connect_deadline, uint64_t deadline,
                 xf_ctls_probe *out)
{
    char e[128];
    memset(out, 0, sizeof(*out));
    mbedtls_x509_crt_init(&out->chain);
    uint64_t t0 = xf_check_now_ms();
    int fd = tcp_connect(addr, port, connect_deadline < deadline ? connect_deadline : deadline,
                         out->tcp_err, sizeof(out->tcp_err));
    if (fd < 0)
        return;
    out->tcp_ok = 1;
    out->tcp_ms = (unsigned)(xf_check_now_ms() - t0);

    mbedtls_ssl_context ssl;
    mbedtls_ssl_init(&ssl);
    xf_xml *x = xf_xml_new(16384, 65536);
    io c = { .fd = fd, .ssl = NULL, .deadline = deadline };
    if (x == NULL) {
        snprintf(out->tls_err, sizeof(out->tls_err), "out of memory");
        goto done;
    }
    if (!direct && starttls_exchange(&c, x, server, domain, out->tls_err,
                                     sizeof(out->tls_err)) != 0)
        goto done;
    const mbedtls_ssl_config *conf = !direct ? &t->starttls
                                     : server ? &t->direct_server : &t->direct_client;
    int ret = mbedtls_ssl_setup(&ssl, conf);
    if (ret == 0)
        ret = mbedtls_ssl_set_hostname(&ssl, domain);   /* SNI (RFC 6066 §3) */
    if (ret != 0) {
        snprintf(out->tls_err, sizeof(out->tls_err), "TLS setup: %s",
                 xf_tls_strerror(ret, e, sizeof(e)));
        goto done;
    }
    mbedtls_ssl_set_bio(&ssl, &c.fd, bio_send, bio_recv, NULL);
    while ((ret = mbedtls_ssl_handshake(&ssl)) != 0) {
        if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) {
            snprintf(out->tls_err, sizeof(out->tls_err), "handshake failed: %s",
                     xf_tls_strerror(ret, e, sizeof(e)));
            goto done;
        }
        if (wait_fd(fd, ret == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : POLLOUT, deadline) <= 0) {
            snprintf(out->tls_err, sizeof(out->tls_err), "handshake timed out");
            goto done;
        }
    }
    out->tls_ok = 1;
    const char *alpn = mbedtls_ssl_get_alpn_protocol(&ssl);
    snprintf(out->tls_info, sizeof(out->tls_info), "%s %s%s%s", mbedtls_ssl_get_version(&ssl),
             mbedtls_ssl_get_ciphersuite(&ssl),
             direct ? (alpn ? ", ALPN " : ", no ALPN selected") : "",
             direct && alpn ? alpn : "");
    for (const mbedtls_x509_crt *p = mbedtls_ssl_get_peer_cert(&ssl); p && p->raw.p; p = p->next)
        if (mbedtls_x509_crt_parse_der(&out->chain, p->raw.p, p->raw.len) != 0)
            break;

    /* The stream over TLS (RFC 6120 §5.4.3.3: a new stream after STARTTLS). */
    char list[160];
    int dummy;
    c.ssl = &ssl;
    if (open_stream(&c, x, server, domain, out->stream_info, sizeof(out->stream_info)) == 0 &&
        read_features(&c, x, list, sizeof(list), &dummy, out->stream_info,
                      sizeof(out->stream_info)) == 0) {
        out->stream_ok = 1;
        snprintf(out->stream_info, sizeof(out->stream_info), "stream features: %s", list);
    }
    mbedtls_ssl_close_notify(&ssl);
done:
    mbedtls_ssl_free(&ssl);
    xf_xml_free(x);
    close(fd);
}

void xf_ctls_probe_free(xf_ctls_probe *p)
{
    mbedtls_x509_crt_free(&p->chain);
}
