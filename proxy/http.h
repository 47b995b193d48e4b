/*
 * http: the HTTPS side of a direct-TLS `service: "auto"` listener (port 443 shared with
 * XMPP, design.md §1). A TLS connection whose ALPN is http/1.1, or that has no ALPN and
 * whose first bytes start like an HTTP request method, is HTTP (proxy/http_conn.c hands
 * it over); everything else stays XMPP.
 *
 * This file is the pure part, without I/O, unit-tested and fuzzed:
 *  - xf_http_sniff: does a decrypted byte sequence start like an HTTP request;
 *  - xf_http_reader: HTTP/1.1 requests parsed with Debian's libhttp-parser (RFC 9112),
 *    one at a time (pipelining, keep-alive), bounded in head size and field count;
 *  - xf_http_route: what to answer — the POSH documents (RFC 7711 §3) of the tenant the
 *    Host names, from certs/posh.h's generators (the same documents `xmppfront records`
 *    prints), a status for everything we refuse, or the tenant's http_backend;
 *  - xf_http_format: a response (status line, Date, Content-Type, Content-Length,
 *    Cache-Control, Connection);
 *  - xf_http_backend_head: the first request as it is sent to the http_backend, with
 *    X-Forwarded-For / X-Forwarded-Proto / Forwarded (RFC 7239) and Connection: close.
 */
#ifndef XF_HTTP_H
#define XF_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>
#include <http_parser.h>
#include "proxy/buf.h"
#include "tenants/registry.h"

/* ---------------------------------------------------------------- sniffing */

enum xf_http_sniff { XF_HTTP_SNIFF_NO = 0, XF_HTTP_SNIFF_YES = 1, XF_HTTP_SNIFF_MORE = 2 };

/* The first n plaintext bytes of a connection (no ALPN): YES when they start with one of
   the methods GET HEAD POST PUT DELETE OPTIONS PATCH TRACE CONNECT followed by a space,
   MORE when they are a proper prefix of such a "METHOD ", NO otherwise. An XMPP stream
   never starts with an upper-case letter ('<', whitespace or a BOM), so the two cannot
   be confused. */
int xf_http_sniff(const char *p, size_t n);

/* ---------------------------------------------------------------- requests */

#define XF_HTTP_MAX_FIELDS 100       /* header field lines per request (431 above) */
#define XF_HTTP_PATH_MAX 1024        /* longer paths are kept as "" (never a POSH path) */
#define XF_HTTP_NAME_MAX 253

/* Offsets are relative to the request's first byte (xf_http_reader_head). */
typedef struct xf_http_field {
    uint32_t name, name_len, value, value_len;
} xf_http_field;

typedef struct xf_http_req {
    int method;                      /* enum http_method */
    unsigned major, minor;
    int keep_alive;                  /* http_should_keep_alive() at the end of the head */
    int upgrade;                     /* Upgrade + Connection: upgrade (e.g. WebSocket) */
    int has_body;                    /* Content-Length > 0 or Transfer-Encoding */
    int has_host;                    /* a Host field (or an absolute-form target) */
    /* The name the request is for: the absolute-form target's host, else the Host
       field's, lower case, port and one trailing dot dropped; "" when that is an IP
       literal or there is none (then the SNI names the tenant, xf_http_route). */
    char name[XF_HTTP_NAME_MAX + 1];
    char path[XF_HTTP_PATH_MAX + 1]; /* the target's path without query; "" if too long */
    uint32_t url, url_len;
    uint32_t head_len;               /* request line + fields + the empty line */
    size_t n_fields;
    xf_http_field fields[XF_HTTP_MAX_FIELDS];
} xf_http_req;

enum xf_http_ev {
    XF_HTTP_NEED = 0,                /* more bytes needed */
    XF_HTTP_HEAD = 1,                /* a request head is complete: reader.req */
    XF_HTTP_END = 2,                 /* that request (without body) ended; its bytes are
                                        dropped and the next request may follow */
    XF_HTTP_BAD = 3,                 /* refused: reader.status (400, 431), reader.reason */
};

typedef struct xf_http_reader {
    http_parser p;
    xf_buf in;                       /* from the current request's first byte on */
    size_t fed;                      /* bytes of `in` already given to the parser */
    size_t max_head;                 /* head bytes allowed per request */
    int state;                       /* private: in head / head done / bad */
    int last_cb;                     /* private: field or value seen last */
    int status;                      /* XF_HTTP_BAD: 400 or 431 */
    char reason[160];                /* XF_HTTP_BAD: why, for the log */
    xf_http_req req;
} xf_http_reader;

/* A reader for requests whose head (request line, fields, empty line) is at most
   max_head bytes. The all-zero struct is not valid: call this. */
void xf_http_reader_init(xf_http_reader *r, size_t max_head);
void xf_http_reader_free(xf_http_reader *r);
/* Append received bytes. Returns 0, or -1 when out of memory. */
int xf_http_reader_push(xf_http_reader *r, const char *data, size_t len);
/* Parse what was pushed ("expect" style, style.md §9): returns one event of enum
   xf_http_ev. After XF_HTTP_HEAD the caller either answers the request and calls
   next again (XF_HTTP_END follows for a request without body; a request with a body is
   not read further: the caller answers it and closes; next then returns XF_HTTP_NEED),
   or takes the raw bytes (xf_http_reader_head / _size) to pass them on and stops
   calling. After XF_HTTP_BAD the reader stays bad. */
int xf_http_reader_next(xf_http_reader *r);
/* After XF_HTTP_HEAD: the request's bytes from its first byte; req.head_len of them are
   the head, the rest (up to xf_http_reader_size) is what followed (body, later
   requests). */
const char *xf_http_reader_head(const xf_http_reader *r);
size_t xf_http_reader_size(const xf_http_reader *r);

/* ---------------------------------------------------------------- answers */

#define XF_HTTP_POSH_CLIENT "/.well-known/posh/xmpp-client.json"
#define XF_HTTP_POSH_SERVER "/.well-known/posh/xmpp-server.json"
#define XF_HTTP_BODY_MAX 4096

enum xf_http_action { XF_HTTP_RESPOND = 1, XF_HTTP_TO_BACKEND = 2 };

typedef struct xf_http_answer {
    int action;                      /* enum xf_http_action */
    int status;                      /* XF_HTTP_RESPOND */
    const xf_tenant *tenant;         /* the tenant (or the hosting record) routed to */
    const xf_backend *backend;       /* XF_HTTP_TO_BACKEND: tenant->http */
    const char *content_type;
    const char *allow;               /* 405: the Allow field */
    long long max_age;               /* > 0: Cache-Control: max-age (the POSH expires) */
    const char *why;                 /* for the log line */
    size_t body_len;
    char body[XF_HTTP_BODY_MAX];
} xf_http_answer;

/* The POSH document (RFC 7711 §3.2 / §3.4) served at https://NAME/.well-known/posh/
   xmpp-{client,server}.json for `t` (a tenant found for NAME, or the hosting record),
   the same as `xmppfront records NAME` prints (proxy/records_cmd.c):
   - a tenant with its own certificate: its fingerprints (current and next
     certificate), for the services it offers (c2s_backend -> xmpp-client,
     s2s_backend -> xmpp-server);
   - a tenant served with the hosting certificate: a `url` reference to
     https://HOSTING/.well-known/posh/<same>.json, for the services it offers;
   - the hosting name (the hosting record, or a tenant named like the hosting): the
     hosting certificate's fingerprints, for both services.
   Returns the length written into out (NUL-terminated), 0 when the document is not
   served (a service the tenant does not offer), or -1 (hashing failed, out too small).
   *expires receives the document's expires. */
int xf_http_posh_document(const xf_registry *reg, const xf_tenant *t, const char *name,
                          int server, char *out, size_t cap, long long *expires);

/* Decide the answer to the request head `req` received over TLS with SNI `sni` ("" if
   none) that selected `sni_tenant` (the tenant, or hosting record, whose certificate was
   presented; NULL without SNI):
   - the name (req->name, else the SNI) must be a tenant's domain or alias, or the
     hosting name, else 404; a name the presented certificate does not cover when the
     SNI chose another tenant: 421 (RFC 9110 §15.5.20, RFC 6066 §3's rule for XMPP);
   - CONNECT: 405; GET / HEAD on a POSH path the tenant serves: 200 with the document,
     application/json, Cache-Control: max-age = its expires; other methods there: 405;
   - anything else: the tenant's http_backend, or 404 without one.
   Returns 0 (a is filled) or -1 (internal error: a is a 500). */
int xf_http_route(const xf_registry *reg, const char *sni, const xf_tenant *sni_tenant,
                  const xf_http_req *req, xf_http_answer *a);

/* The answer `a` as an HTTP/1.1 response into out: status line, Date (now), the
   Content-Type / Allow / Cache-Control a names, Content-Length, Connection: keep-alive
   or close; the body unless head_only (HEAD, RFC 9110 §9.3.2: the same fields).
   Returns the length, or -1 when out is too small. */
int xf_http_format(const xf_http_answer *a, int head_only, int keep_alive, time_t now,
                   char *out, size_t cap);

/* A plain-text answer with `status` (400, 404, 408, 431, 502 ...), body "CODE Reason\n". */
void xf_http_answer_status(xf_http_answer *a, int status, const char *why);
const char *xf_http_status_text(int status);

/* The head of `req` (head = its bytes, req->head_len long) as it goes to the tenant's
   http_backend, appended to out: the request line and fields as received, without the
   fields a client must not set for us (X-Forwarded-For, X-Forwarded-Proto,
   X-Forwarded-Host, Forwarded) and without the hop-by-hop ones (Connection, the fields
   it names, Keep-Alive, Proxy-Connection; RFC 9110 §7.6.1) — kept as they are for an
   Upgrade request, whose Connection: upgrade the backend needs — then
   X-Forwarded-For: ADDR, X-Forwarded-Proto: https, Forwarded: for=ADDR;proto=https
   (RFC 7239 §4, an IPv6 ADDR quoted in brackets) for `peer`, and Connection: close
   unless an Upgrade: after its response the backend closes and the client opens a new
   connection, so that every request of a connection is routed by us. Returns 0, or -1
   when out of memory. */
int xf_http_backend_head(const char *head, const xf_http_req *req,
                         const struct sockaddr *peer, xf_buf *out);

#endif
