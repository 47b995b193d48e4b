/*
 * http: request sniffing, reading (libhttp-parser), routing to the POSH documents or the
 * tenant's http_backend, and response formatting. Pure: no sockets, no loop; the
 * connection side is proxy/http_conn.c. Contracts in proxy/http.h.
 */
#include "proxy/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "certs/identity.h"
#include "certs/posh.h"
#include "proxy/records_cmd.h"

/* ---------------------------------------------------------------- sniffing */

static const char *const sniff_methods[] = {
    "GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "TRACE ",
    "CONNECT ", NULL
};

int xf_http_sniff(const char *p, size_t n)
{
    int more = 0;
    if (n == 0)
        return XF_HTTP_SNIFF_MORE;
    for (const char *const *m = sniff_methods; *m; m++) {
        size_t ml = strlen(*m);
        if (n >= ml && memcmp(p, *m, ml) == 0)
            return XF_HTTP_SNIFF_YES;
        if (n < ml && memcmp(p, *m, n) == 0)
            more = 1;
    }
    return more ? XF_HTTP_SNIFF_MORE : XF_HTTP_SNIFF_NO;
}

/* ---------------------------------------------------------------- reading */

enum { RD_HEAD = 0, RD_HEAD_DONE = 1, RD_BAD = 2 };
enum { CB_NONE = 0, CB_FIELD = 1, CB_VALUE = 2 };

/* The reader whose parser runs; `base` is where the bytes being parsed start in r->in,
   so that callback pointers become offsets from the request's first byte. */
struct run {
    xf_http_reader *r;
    const char *base;
    int overflow;                     /* more than XF_HTTP_MAX_FIELDS fields */
};

static struct run *run_of(http_parser *p) { return p->data; }

static uint32_t off_of(struct run *run, const char *at)
{
    return (uint32_t)(at - run->base);
}

static int on_message_begin(http_parser *p)
{
    xf_http_reader *r = run_of(p)->r;
    memset(&r->req, 0, sizeof r->req);
    r->last_cb = CB_NONE;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct run *run = run_of(p);
    xf_http_req *q = &run->r->req;
    if (q->url_len == 0)
        q->url = off_of(run, at);
    q->url_len += (uint32_t)len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct run *run = run_of(p);
    xf_http_reader *r = run->r;
    xf_http_req *q = &r->req;
    if (r->last_cb != CB_FIELD) {            /* a new field line */
        if (q->n_fields == XF_HTTP_MAX_FIELDS) {
            run->overflow = 1;
            return -1;
        }
        xf_http_field *f = &q->fields[q->n_fields++];
        f->name = off_of(run, at);
        f->name_len = 0;
        f->value = f->name;
        f->value_len = 0;
    }
    q->fields[q->n_fields - 1].name_len += (uint32_t)len;
    r->last_cb = CB_FIELD;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct run *run = run_of(p);
    xf_http_reader *r = run->r;
    xf_http_field *f = &r->req.fields[r->req.n_fields - 1];
    if (r->last_cb != CB_VALUE) {
        f->value = off_of(run, at);
        f->value_len = 0;
    }
    f->value_len += (uint32_t)len;
    r->last_cb = CB_VALUE;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    /* Stop here: the caller decides on the head before any body byte is looked at. */
    http_parser_pause(p, 1);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

void xf_http_reader_init(xf_http_reader *r, size_t max_head)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->p, HTTP_REQUEST);
    r->max_head = max_head;
}

void xf_http_reader_free(xf_http_reader *r) { xf_buf_free(&r->in); }

int xf_http_reader_push(xf_http_reader *r, const char *data, size_t len)
{
    return xf_buf_append(&r->in, data, len);
}

const char *xf_http_reader_head(const xf_http_reader *r) { return xf_buf_head(&r->in); }
size_t xf_http_reader_size(const xf_http_reader *r) { return xf_buf_size(&r->in); }

__attribute__((format(printf, 3, 4)))
static int bad(xf_http_reader *r, int status, const char *fmt, ...)
{
    va_list ap;
    r->state = RD_BAD;
    r->status = status;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    return XF_HTTP_BAD;
}

static int field_is(const char *head, const xf_http_field *f, const char *name)
{
    return f->name_len == strlen(name) && strncasecmp(head + f->name, name, f->name_len) == 0;
}

/* "host[:port]" (RFC 9110 §7.2, an authority without userinfo) -> normalised name into
   out, "" for an IP literal or an empty value. Returns 0, or -1 when the value is not a
   valid host. */
static int parse_authority(const char *s, size_t n, char *out)
{
    char tmp[XF_HTTP_NAME_MAX + 2];
    out[0] = '\0';
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0)
        return 0;                            /* an empty Host (RFC 9112 §3.2): no name */
    const char *colon;
    int v6 = s[0] == '[';
    if (v6) {                                /* IPv6 literal: no tenant by name */
        const char *e = memchr(s, ']', n);
        if (e == NULL || (e + 1 < s + n && e[1] != ':'))
            return -1;
        colon = e + 1 < s + n ? e + 1 : NULL;
    } else {
        colon = memchr(s, ':', n);
    }
    if (colon) {                             /* the port: digits only */
        size_t pl = n - (size_t)(colon + 1 - s);
        for (size_t i = 0; i < pl; i++)
            if (colon[1 + i] < '0' || colon[1 + i] > '9')
                return -1;
        n = (size_t)(colon - s);
    }
    if (v6)
        return 0;
    if (n == 0 || n > XF_HTTP_NAME_MAX + 1)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, tmp, &a4) == 1)
        return 0;
    return xf_registry_normalise_name(tmp, out) == NULL ? 0 : -1;
}

/* The head is complete: fill the derived fields of r->req (name, path, flags). */
static int finish_head(xf_http_reader *r)
{
    xf_http_req *q = &r->req;
    const char *head = xf_buf_head(&r->in);
    const http_parser *p = &r->p;
    q->method = (int)p->method;
    q->major = p->http_major;
    q->minor = p->http_minor;
    q->keep_alive = http_should_keep_alive(p);
    q->upgrade = p->upgrade;
    q->has_body = (p->flags & F_CHUNKED) || p->uses_transfer_encoding ||
                  ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    if (q->head_len > r->max_head)
        return bad(r, 431, "request head over %zu bytes", r->max_head);
    /* libhttp-parser (built without strict mode) takes any byte after the last CR as
       the end of the head; the head we pass on must end like one (RFC 9112 §2.2). */
    if (head[q->head_len - 1] != '\n')
        return bad(r, 400, "malformed end of the request head");
    if (q->major < 1)
        return bad(r, 400, "HTTP/0.9 request");

    struct http_parser_url u;
    http_parser_url_init(&u);
    int url_ok = http_parser_parse_url(head + q->url, q->url_len,
                                       q->method == HTTP_CONNECT, &u) == 0;
    if (url_ok && (u.field_set & (1u << UF_PATH)) &&
        u.field_data[UF_PATH].len <= XF_HTTP_PATH_MAX) {
        memcpy(q->path, head + q->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
        q->path[u.field_data[UF_PATH].len] = '\0';
    }
    int hosts = 0;
    for (size_t i = 0; i < q->n_fields; i++) {
        const xf_http_field *f = &q->fields[i];
        if (!field_is(head, f, "host"))
            continue;
        if (++hosts > 1)
            return bad(r, 400, "more than one Host field");
        if (parse_authority(head + f->value, f->value_len, q->name) < 0)
            return bad(r, 400, "invalid Host field");
        q->has_host = 1;
    }
    /* RFC 9112 §3.2.2: an absolute-form target's host wins over the Host field. */
    if (url_ok && (u.field_set & (1u << UF_HOST))) {
        size_t hl = u.field_data[UF_HOST].len;
        char tmp[XF_HTTP_NAME_MAX + 2];
        if (hl == 0 || hl > XF_HTTP_NAME_MAX + 1)
            return bad(r, 400, "invalid host in the request target");
        memcpy(tmp, head + q->url + u.field_data[UF_HOST].off, hl);
        if (parse_authority(tmp, hl, q->name) < 0)
            return bad(r, 400, "invalid host in the request target");
        q->has_host = 1;
    }
    /* RFC 9112 §3.2: an HTTP/1.1 request without Host is answered 400. */
    if (!q->has_host && (q->major > 1 || (q->major == 1 && q->minor >= 1)))
        return bad(r, 400, "HTTP/1.1 request without Host");
    return XF_HTTP_HEAD;
}

int xf_http_reader_next(xf_http_reader *r)
{
    if (r->state == RD_BAD)
        return XF_HTTP_BAD;
    if (r->state == RD_HEAD_DONE && r->req.has_body)
        return XF_HTTP_NEED;             /* bodies are not read here (http.h) */
    size_t have = xf_buf_size(&r->in);
    struct run run = { r, xf_buf_head(&r->in), 0 };
    r->p.data = &run;
    size_t todo = have - r->fed;
    size_t n = todo ? http_parser_execute(&r->p, &settings, run.base + r->fed, todo) : 0;
    enum http_errno e = HTTP_PARSER_ERRNO(&r->p);
    r->p.data = NULL;
    if (e == HPE_PAUSED) {
        http_parser_pause(&r->p, 0);
        if (r->state == RD_HEAD) {
            /* Paused in on_headers_complete, at the LF that ends the head (libhttp-
               parser does not consume it until resumed). */
            r->fed += n;
            r->req.head_len = (uint32_t)(r->fed + 1);
            r->state = RD_HEAD_DONE;
            return finish_head(r);
        }
        /* Paused in on_message_complete, after its last byte: drop the request. */
        r->fed += n;
        xf_buf_consume(&r->in, r->fed);
        r->fed = 0;
        r->state = RD_HEAD;
        return XF_HTTP_END;
    }
    r->fed += n;
    if (e != HPE_OK) {
        if (run.overflow)
            return bad(r, 431, "more than %d header fields", XF_HTTP_MAX_FIELDS);
        if (e == HPE_HEADER_OVERFLOW)
            return bad(r, 431, "%s", http_errno_description(e));
        return bad(r, 400, "%s (%s)", http_errno_name(e), http_errno_description(e));
    }
    if (r->state == RD_HEAD && xf_buf_size(&r->in) > r->max_head)
        return bad(r, 431, "request head over %zu bytes", r->max_head);
    return XF_HTTP_NEED;
}

/* ---------------------------------------------------------------- answers */

const char *xf_http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default:  return "Error";
    }
}

void xf_http_answer_status(xf_http_answer *a, int status, const char *why)
{
    const xf_tenant *t = a->tenant;
    memset(a, 0, sizeof *a);
    a->tenant = t;
    a->action = XF_HTTP_RESPOND;
    a->status = status;
    a->why = why;
    a->content_type = "text/plain; charset=utf-8";
    int n = snprintf(a->body, sizeof a->body, "%d %s\n", status, xf_http_status_text(status));
    a->body_len = n > 0 ? (size_t)n : 0;
    if (status == 405)
        a->allow = "GET, HEAD";
}

int xf_http_posh_document(const xf_registry *reg, const xf_tenant *t, const char *name,
                          int server, char *out, size_t cap, long long *expires)
{
    static const char *const kinds[2] = { "xmpp-client", "xmpp-server" };
    const xf_tenant *host = xf_registry_hosting(reg);
    /* As in proxy/records_cmd.c print_tenant: the hosting record, or a tenant named like
       the hosting (always hosting-served), publishes the hosting's fingerprints for both
       services; another hosting-served tenant a reference to them. */
    int is_host = t == host ||
                  (t->present == XF_PRESENT_HOSTING && host && strcmp(name, host->domain) == 0);
    int hosted = !is_host && t->present == XF_PRESENT_HOSTING;
    const xf_tenant *cred = is_host ? host : hosted ? NULL : t;
    *expires = XF_RECORDS_POSH_EXPIRES;
    if (!is_host && !(server ? t->s2s.addrlen : t->c2s.addrlen))
        return 0;
    int r;
    if (hosted) {
        char url[XF_POSH_URL_MAX];
        if (t->hosting == NULL)
            return -1;
        snprintf(url, sizeof url, "https://%s/.well-known/posh/%s.json", t->hosting->domain,
                 kinds[server ? 1 : 0]);
        r = xf_posh_generate_reference(url, *expires, out, cap);
    } else {
        if (cred == NULL || cred->chain.raw.p == NULL)
            return -1;
        const mbedtls_x509_crt *leaves[2] = { &cred->chain, &cred->next_chain };
        r = xf_posh_generate_set(leaves, cred->next_chain.raw.p ? 2 : 1, *expires, out, cap);
    }
    return r > 0 ? r : -1;
}

int xf_http_route(const xf_registry *reg, const char *sni, const xf_tenant *sni_tenant,
                  const xf_http_req *req, xf_http_answer *a)
{
    memset(a, 0, sizeof *a);
    const char *name = req->name[0] ? req->name : sni;
    const xf_tenant *host = xf_registry_hosting(reg);
    const xf_tenant *t = name[0] ? xf_registry_find(reg, name) : NULL;
    if (t == NULL && host && name[0] && strcmp(name, host->domain) == 0)
        t = host;
    if (t == NULL) {
        xf_http_answer_status(a, 404, name[0] ? "not a tenant or the hosting name here"
                                              : "no host name (Host or SNI)");
        return 0;
    }
    a->tenant = t;
    /* The certificate presented was chosen by the SNI: a name it does not cover is
       another server's (RFC 9110 §15.5.20; clients reuse connections by certificate). */
    if (sni[0] && sni_tenant && sni_tenant != t &&
        !xf_identity_covers_dns(xf_tenant_tls_chain(sni_tenant), name)) {
        xf_http_answer_status(a, 421, "the Host is not covered by the certificate the SNI chose");
        return 0;
    }
    if (req->method == HTTP_CONNECT) {
        xf_http_answer_status(a, 405, "CONNECT: not a proxy");
        a->allow = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";
        return 0;
    }
    int kind = strcmp(req->path, XF_HTTP_POSH_CLIENT) == 0 ? 0
             : strcmp(req->path, XF_HTTP_POSH_SERVER) == 0 ? 1 : -1;
    if (kind >= 0) {
        long long expires = 0;
        int n = xf_http_posh_document(reg, t, name, kind, a->body, sizeof a->body, &expires);
        if (n < 0) {
            xf_http_answer_status(a, 500, "cannot make the POSH document");
            return -1;
        }
        if (n > 0) {
            if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
                xf_http_answer_status(a, 405, "POSH documents are GET/HEAD only");
                return 0;
            }
            a->action = XF_HTTP_RESPOND;
            a->status = 200;
            a->content_type = "application/json";
            a->max_age = expires;
            a->body_len = (size_t)n;
            a->why = kind ? "POSH xmpp-server" : "POSH xmpp-client";
            return 0;
        }
        /* A service the tenant does not offer: no document; its web may have one. */
    }
    if (t->http.addrlen > 0) {
        a->action = XF_HTTP_TO_BACKEND;
        a->backend = &t->http;
        a->why = "http_backend";
        return 0;
    }
    xf_http_answer_status(a, 404, "no such document and no http_backend");
    return 0;
}

int xf_http_format(const xf_http_answer *a, int head_only, int keep_alive, time_t now,
                   char *out, size_t cap)
{
    char date[64] = "", extra[160] = "";
    struct tm tm;
    if (gmtime_r(&now, &tm))               /* RFC 9110 §5.6.7 IMF-fixdate */
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    size_t e = 0;
    if (a->allow)
        e += (size_t)snprintf(extra + e, sizeof extra - e, "Allow: %s\r\n", a->allow);
    if (a->max_age > 0 && e < sizeof extra)
        e += (size_t)snprintf(extra + e, sizeof extra - e, "Cache-Control: max-age=%lld\r\n",
                              a->max_age);
    if (e >= sizeof extra)
        return -1;
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "Date: %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "X-Content-Type-Options: nosniff\r\n"
                     "Connection: %s\r\n"
                     "\r\n",
                     a->status, xf_http_status_text(a->status), date,
                     a->content_type ? a->content_type : "text/plain; charset=utf-8",
                     a->body_len, extra, keep_alive ? "keep-alive" : "close");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    if (!head_only) {
        if ((size_t)n + a->body_len >= cap)
            return -1;
        memcpy(out + n, a->body, a->body_len);
        n += (int)a->body_len;
        out[n] = '\0';
    }
    return n;
}

/* ---------------------------------------------------------------- to the backend */

/* Is `tok` (len n) one of the comma-separated tokens of the Connection fields? */
static int named_by_connection(const char *head, const xf_http_req *req, const char *tok,
                               size_t n)
{
    for (size_t i = 0; i < req->n_fields; i++) {
        const xf_http_field *f = &req->fields[i];
        if (!field_is(head, f, "connection"))
            continue;
        const char *v = head + f->value, *end = v + f->value_len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            const char *s = v;
            while (v < end && *v != ',' && *v != ' ' && *v != '\t')
                v++;
            if ((size_t)(v - s) == n && n > 0 && strncasecmp(s, tok, n) == 0)
                return 1;
        }
    }
    return 0;
}

static int drop_field(const char *head, const xf_http_req *req, const xf_http_field *f)
{
    static const char *const forwarding[] = {
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", NULL
    };
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection", NULL
    };
    for (const char *const *n = forwarding; *n; n++)
        if (field_is(head, f, *n))
            return 1;
    if (req->upgrade)
        return 0;
    for (const char *const *n = hop; *n; n++)
        if (field_is(head, f, *n))
            return 1;
    return named_by_connection(head, req, head + f->name, f->name_len);
}

int xf_http_backend_head(const char *head, const xf_http_req *req,
                         const struct sockaddr *peer, xf_buf *out)
{
    char addr[INET6_ADDRSTRLEN + 2] = "unknown", fwd[INET6_ADDRSTRLEN + 8] = "unknown";
    if (peer && peer->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, addr, sizeof addr);
        snprintf(fwd, sizeof fwd, "%s", addr);
    } else if (peer && peer->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)peer)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            inet_ntop(AF_INET, &a6->s6_addr[12], addr, sizeof addr);
            snprintf(fwd, sizeof fwd, "%s", addr);
        } else {
            inet_ntop(AF_INET6, a6, addr, sizeof addr);
            snprintf(fwd, sizeof fwd, "\"[%s]\"", addr);
        }
    }
    /* The blank line that ends the head: "\r\n" or a bare "\n" (RFC 9112 §2.2). */
    size_t blank = req->head_len - 1;
    if (blank > 0 && head[blank - 1] == '\r')
        blank--;
    /* The request line (and any empty lines before it), then each kept field line: a
       line runs from its name to the next field's name (a folded value included). */
    size_t pos = req->n_fields ? req->fields[0].name : blank;
    if (xf_buf_append(out, head, pos) < 0)
        return -1;
    for (size_t i = 0; i < req->n_fields; i++) {
        const xf_http_field *f = &req->fields[i];
        size_t end = i + 1 < req->n_fields ? req->fields[i + 1].name : blank;
        if (!drop_field(head, req, f) && xf_buf_append(out, head + f->name, end - f->name) < 0)
            return -1;
    }
    char add[400];
    int n = snprintf(add, sizeof add,
                     "X-Forwarded-For: %s\r\nX-Forwarded-Proto: https\r\n"
                     "Forwarded: for=%s;proto=https\r\n%s\r\n",
                     addr, fwd, req->upgrade ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t)n >= sizeof add)
        return -1;
    return xf_buf_append(out, add, (size_t)n);
}
