/*
 * bench backend: a minimal plaintext XMPP-ish server for tests/bench/run.sh.
 *
 *   backend PORT MAXSECS
 *
 * Single thread, epoll, non-blocking. Per connection:
 *   1. read until the client's <stream:stream ...> header is complete, answer with a
 *      stream header, an empty <stream:features/> (what xmppfront waits for before it
 *      relays) and an unsolicited SASL <success/>: xmppfront polices a stream until its
 *      backend reports authentication (proxy/inbound.c auth_done), and the mode bytes
 *      below are not XML. For HAProxy and nginx it is simply the "header round trip";
 *   2. the first byte after that picks a mode:
 *        'E'          echo every following byte back;
 *        'S'          sink: discard bytes until a '!' arrives, then answer "!";
 *        'G<n>\n'     generate: send n bytes of ' ' (XML whitespace), then "!";
 *      no byte at all: the connection just stays open (idle / handshake-rate tests).
 * Exits after MAXSECS seconds (a bound, so a forgotten process cannot linger).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char REPLY[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' id='x' from='a.example' "
    "version='1.0'><stream:features/>"
    "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";

enum { ST_HDR, ST_CMD, ST_GNUM, ST_ECHO, ST_SINK, ST_GEN, ST_DONE };

typedef struct c {
    int fd, st;
    char hdr[4096];
    size_t hlen;
    char *out;                  /* pending output */
    size_t olen, ocap, ooff;
    unsigned long long gen_left; /* ST_GEN: filler still to send */
    char num[32];
    size_t nlen;
    int want_out;
} conn;

static int ep;
static char filler[65536];

static void set_events(conn *c, int out)
{
    if (out == c->want_out)
        return;
    c->want_out = out;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

static int queue(conn *c, const char *p, size_t n)
{
    if (c->olen - c->ooff == 0)
        c->olen = c->ooff = 0;
    if (c->olen + n > c->ocap) {
        if (c->ooff) {
            memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
            c->olen -= c->ooff;
            c->ooff = 0;
        }
        if (c->olen + n > c->ocap) {
            size_t cap = c->ocap ? c->ocap : 4096;
            while (cap < c->olen + n)
                cap *= 2;
            if (cap > (64u << 20))
                return -1;      /* an echo peer that never reads: give up */
            c->out = realloc(c->out, cap);
            if (!c->out)
                return -1;
            c->ocap = cap;
        }
    }
    memcpy(c->out + c->olen, p, n);
    c->olen += n;
    return 0;
}

/* Write what we can; returns -1 on a dead peer. */
static int flush(conn *c)
{
    while (c->olen > c->ooff) {
        ssize_t w = send(c->fd, c->out + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN)
                break;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->ooff += (size_t)w;
    }
    while (c->olen == c->ooff && c->st == ST_GEN) {
        if (c->gen_left == 0) {
            c->st = ST_DONE;
            if (queue(c, "!", 1) < 0)
                return -1;
            return flush(c);
        }
        size_t n = c->gen_left < sizeof(filler) ? c->gen_left : sizeof(filler);
        ssize_t w = send(c->fd, filler, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN)
                break;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->gen_left -= (unsigned long long)w;
    }
    set_events(c, c->olen > c->ooff || c->st == ST_GEN);
    return 0;
}

/* Process plaintext from the peer. Returns -1 to drop the connection. */
static int input(conn *c, char *p, size_t n)
{
    while (n > 0) {
        switch (c->st) {
        case ST_HDR: {
            size_t take = n < sizeof(c->hdr) - 1 - c->hlen ? n : sizeof(c->hdr) - 1 - c->hlen;
            if (take == 0)
                return -1;
            memcpy(c->hdr + c->hlen, p, take);
            size_t old = c->hlen;
            c->hlen += take;
            c->hdr[c->hlen] = 0;
            char *s = strstr(c->hdr, "<stream:stream");
            char *gt = s ? strchr(s, '>') : NULL;
            if (!gt) {
                p += take;
                n -= take;
                break;
            }
            size_t used = (size_t)(gt + 1 - c->hdr) - old;
            p += used;
            n -= used;
            c->st = ST_CMD;
            if (queue(c, REPLY, sizeof(REPLY) - 1) < 0)
                return -1;
            break;
        }
        case ST_CMD:
            if (*p == 'E')
                c->st = ST_ECHO;
            else if (*p == 'S')
                c->st = ST_SINK;
            else if (*p == 'G')
                c->st = ST_GNUM;
            else
                return -1;
            p++;
            n--;
            break;
        case ST_GNUM:
            if (*p == '\n') {
                c->num[c->nlen] = 0;
                c->gen_left = strtoull(c->num, NULL, 10);
                c->st = ST_GEN;
            } else if (c->nlen < sizeof(c->num) - 1) {
                c->num[c->nlen++] = *p;
            }
            p++;
            n--;
            break;
        case ST_ECHO:
            if (queue(c, p, n) < 0)
                return -1;
            n = 0;
            break;
        case ST_SINK: {
            char *bang = memchr(p, '!', n);
            if (bang) {
                c->st = ST_DONE;
                if (queue(c, "!", 1) < 0)
                    return -1;
            }
            n = 0;
            break;
        }
        default:                /* ST_GEN, ST_DONE: ignore */
            n = 0;
            break;
        }
    }
    return flush(c);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: backend PORT MAXSECS\n");
        return 2;
    }
    memset(filler, ' ', sizeof(filler));
    int port = atoi(argv[1]);
    time_t deadline = time(NULL) + atoi(argv[2]);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4096) < 0) {
        perror("backend: bind/listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    static char rbuf[262144];
    struct epoll_event evs[256];
    while (time(NULL) < deadline) {
        int k = epoll_wait(ep, evs, 256, 500);
        for (int i = 0; i < k; i++) {
            conn *c = evs[i].data.ptr;
            if (c == NULL) {
                for (;;) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    conn *nc = calloc(1, sizeof(*nc));
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (flush(c) < 0) {
                    drop(c);
                    continue;
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int dead = 0;
                for (int rounds = 0; rounds < 16; rounds++) {
                    ssize_t r = recv(c->fd, rbuf, sizeof(rbuf), 0);
                    if (r > 0) {
                        if (input(c, rbuf, (size_t)r) < 0) {
                            dead = 1;
                            break;
                        }
                        continue;
                    }
                    if (r < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                    dead = 1;   /* EOF or error */
                    break;
                }
                if (dead)
                    drop(c);
            }
        }
    }
    return 0;
}
