/*
 * posh_fetch: POSH documents over HTTPS on a libuv loop. Contract in posh_fetch.h.
 *
 * Pieces: a request (one caller, by id) waits on a job (one HTTP fetch per domain,
 * stage 1 = the domain's document, stage 2 = the reference's url) or holds an answer
 * ready for delivery (cache hit, or its job finished). A job's easy handle lives in
 * the multi handle; curl tells us which sockets to watch (on_curl_socket -> uv_poll)
 * and when to call it back (on_curl_timer -> uv_timer).
 */
#include "proxy/posh_fetch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "proxy/log.h"
#include "proxy/metrics.h"

struct job;

typedef struct req {
    uint64_t id;
    xf_posh_cb cb;
    void *ud;
    struct job *job;                   /* waiting on it, or NULL */
    const xf_posh_answer *ans;         /* ready for delivery (holds a reference) */
    int from_cache;
    struct req *next, *prev;
} req;

typedef struct job {
    xf_posh_fetcher *f;
    char domain[256];
    int stage;                         /* 1 or 2 */
    CURL *easy;
    char url[XF_POSH_URL_MAX];         /* being fetched */
    long long expires;                 /* lower of the documents so far (0 = none) */
    uint64_t started_ms;
    unsigned char *body;
    size_t len, cap;
    int too_big;
    char errbuf[CURL_ERROR_SIZE];
    struct job *next, *prev;
} job;

typedef struct centry {
    char domain[256];
    const xf_posh_answer *ans;         /* a reference */
    uint64_t until_ms;                 /* loop time */
    struct centry *next;
} centry;

typedef struct psock {
    uv_poll_t poll;
    curl_socket_t fd;
    xf_posh_fetcher *f;
    struct psock *next, *prev;
} psock;

struct xf_posh_fetcher {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;                  /* curl's timeouts */
    uv_timer_t deliver;                /* answers ready without the network */
    char *ca_file;
    unsigned timeout_ms, ttl_max_s, err_ttl_s, cache_max, port;
    uint64_t next_id, requests;
    req *reqs;
    job *jobs;
    psock *socks;
    centry *cache;
    unsigned n_cache;
    int handles;                       /* uv handles alive: 2 timers + psocks */
    int freeing;
};

/* ---------------------------------------------------------------- pure steps */

int xf_posh_fetch_url(const char *domain, unsigned port, char *out, size_t outlen)
{
    if (out && outlen)
        out[0] = '\0';
    if (!domain || !out)
        return -1;
    size_t n = strlen(domain);
    if (n == 0 || n > 253 || domain[0] == '.' || domain[n - 1] == '.')
        return -1;
    int digits_only = 1;                       /* an IPv4 literal is no domain */
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = domain[i];
        if (c == '.') {
            if (label == 0)
                return -1;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return -1;
        if (!(c >= '0' && c <= '9'))
            digits_only = 0;
        if (++label > 63)
            return -1;
    }
    if (digits_only)
        return -1;
    int w = (port == 0 || port == 443)
        ? snprintf(out, outlen, "https://%s/.well-known/posh/xmpp-server.json", domain)
        : snprintf(out, outlen, "https://%s:%u/.well-known/posh/xmpp-server.json", domain,
                   port);
    if (w < 0 || (size_t)w >= outlen) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int xf_posh_fetch_step(int stage, const struct xf_posh_doc *doc, long long *expires)
{
    if (!doc || !expires || (stage != 1 && stage != 2))
        return XF_POSH_STEP_INVALID;
    if (*expires <= 0 || doc->expires < *expires)
        *expires = doc->expires;
    if (doc->kind == XF_POSH_FINGERPRINTS)
        return XF_POSH_STEP_DONE;
    if (doc->kind == XF_POSH_REFERENCE && stage == 1)
        return XF_POSH_STEP_FOLLOW;
    return XF_POSH_STEP_INVALID;               /* RFC 7711 §3.4: no second reference */
}

long long xf_posh_fetch_cache_ttl(int status, long long expires, unsigned ttl_max_s,
                                  unsigned err_ttl_s)
{
    long long cap = ttl_max_s ? ttl_max_s : XF_POSH_FETCH_TTL_MAX_S;
    if (status != XF_POSHF_DOC)
        return err_ttl_s ? err_ttl_s : XF_POSH_FETCH_ERR_TTL_S;
    if (expires <= 0)
        return 1;
    return expires < cap ? expires : cap;
}

/* ---------------------------------------------------------------- answers */

/* Given when even the answer cannot be allocated; never freed. */
static xf_posh_answer oom_answer = { XF_POSHF_ERROR, "out of memory", 0, 0, NULL, 1 };

const xf_posh_answer *xf_posh_answer_ref(const xf_posh_answer *a)
{
    if (a && a != &oom_answer)
        ((xf_posh_answer *)a)->refs++;
    return a;
}

void xf_posh_answer_unref(const xf_posh_answer *a)
{
    xf_posh_answer *m = (xf_posh_answer *)a;
    if (m == NULL || m == &oom_answer || --m->refs > 0)
        return;
    free((void *)m->doc);
    free(m);
}

__attribute__((format(printf, 3, 4)))
static xf_posh_answer *answer_new(int status, struct xf_posh_doc *doc, const char *fmt, ...)
{
    xf_posh_answer *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        free(doc);
        return NULL;
    }
    a->status = status;
    a->doc = doc;
    a->refs = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->reason, sizeof(a->reason), fmt, ap);
    va_end(ap);
    return a;
}

/* ---------------------------------------------------------------- cache */

static centry *cache_find(xf_posh_fetcher *f, const char *domain)
{
    uint64_t now = uv_now(f->loop);
    for (centry **pp = &f->cache; *pp;) {
        centry *e = *pp;
        if (e->until_ms <= now) {              /* expired: restart from the domain */
            *pp = e->next;
            xf_posh_answer_unref(e->ans);
            free(e);
            f->n_cache--;
            continue;
        }
        if (strcmp(e->domain, domain) == 0)
            return e;
        pp = &e->next;
    }
    return NULL;
}

static void cache_put(xf_posh_fetcher *f, const char *domain, const xf_posh_answer *a)
{
    long long ttl = xf_posh_fetch_cache_ttl(a->status, a->expires, f->ttl_max_s, f->err_ttl_s);
    centry *e = cache_find(f, domain);         /* also drops the expired ones */
    if (e == NULL) {
        if (f->n_cache >= f->cache_max) {      /* the oldest goes (the list's tail) */
            centry **pp = &f->cache;
            while ((*pp)->next)
                pp = &(*pp)->next;
            xf_posh_answer_unref((*pp)->ans);
            free(*pp);
            *pp = NULL;
            f->n_cache--;
        }
        e = calloc(1, sizeof(*e));
        if (e == NULL)
            return;
        snprintf(e->domain, sizeof(e->domain), "%s", domain);
        e->next = f->cache;
        f->cache = e;
        f->n_cache++;
    } else {
        xf_posh_answer_unref(e->ans);
    }
    e->ans = xf_posh_answer_ref(a);
    e->until_ms = uv_now(f->loop) + (uint64_t)ttl * 1000;
}

/* ---------------------------------------------------------------- requests */

static void req_unlink_free(xf_posh_fetcher *f, req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        f->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    xf_posh_answer_unref(q->ans);
    free(q);
}

/* Delivers every request that holds an answer. A callback may add or cancel requests:
   the scan restarts after each call. */
static void deliver_ready(xf_posh_fetcher *f)
{
    for (;;) {
        req *q = f->reqs;
        while (q && q->ans == NULL)
            q = q->next;
        if (q == NULL)
            return;
        xf_posh_cb cb = q->cb;
        void *ud = q->ud;
        uint64_t id = q->id;
        int fc = q->from_cache;
        const xf_posh_answer *a = q->ans;
        q->ans = NULL;
        req_unlink_free(f, q);
        cb(ud, id, a, fc);
        xf_posh_answer_unref(a);
    }
}

static void on_deliver(uv_timer_t *t) { deliver_ready(t->data); }

/* ---------------------------------------------------------------- jobs */

static void job_free(xf_posh_fetcher *f, job *j)
{
    if (j->easy) {
        curl_multi_remove_handle(f->multi, j->easy);
        curl_easy_cleanup(j->easy);
    }
    if (j->prev)
        j->prev->next = j->next;
    else
        f->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    free(j->body);
    free(j);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    job *j = ud;
    size_t n = size * nmemb;
    if (j->len + n > XF_POSH_MAX_DOC) {
        j->too_big = 1;
        return 0;                              /* CURLE_WRITE_ERROR: aborted */
    }
    if (j->len + n > j->cap) {
        size_t cap = j->cap ? j->cap : 4096;
        while (cap < j->len + n)
            cap *= 2;
        if (cap > XF_POSH_MAX_DOC)
            cap = XF_POSH_MAX_DOC;
        unsigned char *b = realloc(j->body, cap);
        if (b == NULL)
            return 0;
        j->body = b;
        j->cap = cap;
    }
    memcpy(j->body + j->len, data, n);
    j->len += n;
    return n;
}

/* Starts the HTTP request for j->url with the time left of the job's budget. */
static int job_request(xf_posh_fetcher *f, job *j)
{
    uint64_t spent = uv_now(f->loop) - j->started_ms;
    long left = spent >= f->timeout_ms ? 1 : (long)(f->timeout_ms - spent);
    if (j->easy) {
        curl_multi_remove_handle(f->multi, j->easy);
        curl_easy_cleanup(j->easy);
    }
    j->len = 0;
    j->too_big = 0;
    j->errbuf[0] = '\0';
    j->easy = curl_easy_init();
    if (j->easy == NULL)
        return -1;
    CURL *e = j->easy;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, j->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)XF_POSH_FETCH_MAX_REDIRS) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    if (f->ca_file)
        bad |= curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK;   /* no proxy from env */
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, left) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)XF_POSH_MAX_DOC) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "xmppfront-posh/1") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, j) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, j) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf) != CURLE_OK;
    if (bad || curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        j->easy = NULL;
        return -1;
    }
    f->requests++;
    return 0;
}

/* The job is over with answer a (NULL: out of memory, requests get an error): cache
   it, hand it to the waiting requests, free the job. */
static void job_done(xf_posh_fetcher *f, job *j, xf_posh_answer *a)
{
    xf_metrics_inc(XF_MF_POSH_FETCHES, !a ? 3 : a->status == XF_POSHF_DOC ? 0
                   : a->status == XF_POSHF_ABSENT ? 1 : a->status == XF_POSHF_INVALID ? 2 : 3);
    if (a == NULL)
        a = &oom_answer;                       /* not cached */
    else
        cache_put(f, j->domain, a);
    xf_debug("posh: %s: %s", j->domain, a->reason);
    for (req *q = f->reqs; q; q = q->next)
        if (q->job == j) {
            q->job = NULL;
            q->ans = xf_posh_answer_ref(a);
        }
    xf_posh_answer_unref(a);
    job_free(f, j);
    deliver_ready(f);
}

/* One HTTP transfer of j finished with code rc. */
static void job_transfer_done(xf_posh_fetcher *f, job *j, CURLcode rc)
{
    long http = 0;
    char where[100];
    snprintf(where, sizeof(where), "%s%.80s", j->stage == 2 ? "reference " : "", j->url);
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http);
    if (rc != CURLE_OK) {
        const char *why = j->too_big ? "document larger than 64 KiB"
                        : rc == CURLE_OPERATION_TIMEDOUT ? "timed out"
                        : j->errbuf[0] ? j->errbuf : curl_easy_strerror(rc);
        job_done(f, j, answer_new(XF_POSHF_ERROR, NULL, "fetch %s: %.60s", where, why));
        return;
    }
    if (http == 404 || http == 410) {
        job_done(f, j, answer_new(j->stage == 1 ? XF_POSHF_ABSENT : XF_POSHF_INVALID, NULL,
                                  "%s: HTTP %ld%s", where, http,
                                  j->stage == 1 ? " (no POSH document)" : ""));
        return;
    }
    if (http != 200) {
        job_done(f, j, answer_new(XF_POSHF_ERROR, NULL, "%s: HTTP %ld", where, http));
        return;
    }
    struct xf_posh_doc *doc = malloc(sizeof(*doc));
    if (doc == NULL) {
        job_done(f, j, NULL);
        return;
    }
    char perr[100];
    if (xf_posh_parse(j->body ? j->body : (const unsigned char *)"", j->len, doc, perr,
                      sizeof(perr)) != 0) {
        free(doc);
        job_done(f, j, answer_new(XF_POSHF_INVALID, NULL, "%s: not a POSH document (%.50s)",
                                  where, perr));
        return;
    }
    switch (xf_posh_fetch_step(j->stage, doc, &j->expires)) {
    case XF_POSH_STEP_FOLLOW:
        snprintf(j->url, sizeof(j->url), "%s", doc->url);
        free(doc);
        j->stage = 2;
        if (job_request(f, j) != 0)
            job_done(f, j, answer_new(XF_POSHF_ERROR, NULL, "cannot start the fetch of %.80s",
                                      j->url));
        return;
    case XF_POSH_STEP_DONE: {
        xf_posh_answer *a = answer_new(XF_POSHF_DOC, doc, "%s %.90s, expires %llds",
                                       j->stage == 2 ? "delegated to" : "document", j->url,
                                       (long long)j->expires);
        if (a) {
            a->delegated = j->stage == 2;
            a->expires = j->expires;
        }
        job_done(f, j, a);
        return;
    }
    default:
        free(doc);
        job_done(f, j, answer_new(XF_POSHF_INVALID, NULL,
                                  "%s: a second reference (RFC 7711 §3.4 allows one)", where));
        return;
    }
}

static void check_done(xf_posh_fetcher *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        job *j = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        CURLcode rc = m->data.result;
        if (j)
            job_transfer_done(f, j, rc);       /* may free j and start new transfers */
    }
}

/* ---------------------------------------------------------------- curl <-> libuv */

static void handle_gone(xf_posh_fetcher *f)
{
    if (--f->handles == 0 && f->freeing)
        free(f);
}

static void on_psock_closed(uv_handle_t *h)
{
    psock *s = h->data;
    xf_posh_fetcher *f = s->f;
    free(s);
    handle_gone(f);
}

static void psock_close(xf_posh_fetcher *f, psock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        f->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_psock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    psock *s = h->data;
    xf_posh_fetcher *f = s->f;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(f->multi, s->fd, flags, &running);   /* s may be gone */
    check_done(f);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    xf_posh_fetcher *f = userp;
    psock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(f->multi, fd, NULL);
            psock_close(f, s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        s->fd = fd;
        s->f = f;
        if (uv_poll_init_socket(f->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        f->handles++;
        s->next = f->socks;
        if (f->socks)
            f->socks->prev = s;
        f->socks = s;
        curl_multi_assign(f->multi, fd, s);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    xf_posh_fetcher *f = t->data;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(f);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    xf_posh_fetcher *f = userp;
    if (f->freeing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else                                       /* 0: on the next loop iteration, never
                                                  from inside this callback */
        uv_timer_start(&f->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---------------------------------------------------------------- public */

int xf_posh_fetch_global_init(void)
{
    static int done;
    if (done)
        return 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    done = 1;
    return 0;
}

xf_posh_fetcher *xf_posh_fetcher_new(uv_loop_t *loop, const xf_posh_fetch_conf *conf,
                                     char *err, size_t errlen)
{
    xf_posh_fetch_conf def = {0};
    if (conf == NULL)
        conf = &def;
    xf_posh_fetcher *f = calloc(1, sizeof(*f));
    if (f == NULL)
        goto oom;
    f->loop = loop;
    f->timeout_ms = conf->timeout_ms ? conf->timeout_ms : XF_POSH_FETCH_TIMEOUT_MS;
    f->ttl_max_s = conf->ttl_max_s ? conf->ttl_max_s : XF_POSH_FETCH_TTL_MAX_S;
    f->err_ttl_s = conf->err_ttl_s ? conf->err_ttl_s : XF_POSH_FETCH_ERR_TTL_S;
    f->cache_max = conf->cache_max ? conf->cache_max : XF_POSH_FETCH_CACHE_MAX;
    f->port = conf->port;
    if (conf->ca_file && (f->ca_file = strdup(conf->ca_file)) == NULL)
        goto oom;
    f->multi = curl_multi_init();
    if (f->multi == NULL) {
        snprintf(err, errlen, "libcurl: cannot create a multi handle");
        free(f->ca_file);
        free(f);
        return NULL;
    }
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    uv_timer_init(loop, &f->timer);
    uv_timer_init(loop, &f->deliver);
    f->timer.data = f->deliver.data = f;
    f->handles = 2;
    return f;
oom:
    if (f)
        free(f);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

uint64_t xf_posh_fetch(xf_posh_fetcher *f, const char *domain, xf_posh_cb cb, void *ud)
{
    char url[XF_POSH_URL_MAX];
    if (f == NULL || cb == NULL || f->freeing || xf_posh_fetch_url(domain, f->port, url,
                                                                   sizeof(url)) != 0)
        return 0;
    req *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return 0;
    q->id = ++f->next_id;
    q->cb = cb;
    q->ud = ud;
    centry *e = cache_find(f, domain);
    if (e != NULL) {
        q->ans = xf_posh_answer_ref(e->ans);
        q->from_cache = 1;
        xf_metrics_inc(XF_MF_POSH_CACHE_HITS, 0);
        uv_timer_start(&f->deliver, on_deliver, 0, 0);
    } else {
        job *j = f->jobs;
        while (j && strcmp(j->domain, domain) != 0)
            j = j->next;
        if (j == NULL) {
            j = calloc(1, sizeof(*j));
            if (j == NULL) {
                free(q);
                return 0;
            }
            j->f = f;
            snprintf(j->domain, sizeof(j->domain), "%s", domain);
            snprintf(j->url, sizeof(j->url), "%s", url);
            j->stage = 1;
            j->started_ms = uv_now(f->loop);
            j->next = f->jobs;
            if (f->jobs)
                f->jobs->prev = j;
            f->jobs = j;
            if (job_request(f, j) != 0) {
                job_free(f, j);
                free(q);
                return 0;
            }
        }
        q->job = j;
    }
    q->next = f->reqs;
    if (f->reqs)
        f->reqs->prev = q;
    f->reqs = q;
    return q->id;
}

int xf_posh_fetch_cancel(xf_posh_fetcher *f, uint64_t id)
{
    if (f == NULL || id == 0)
        return 0;
    for (req *q = f->reqs; q; q = q->next)
        if (q->id == id) {
            req_unlink_free(f, q);
            return 1;
        }
    return 0;
}

uint64_t xf_posh_fetch_requests(const xf_posh_fetcher *f) { return f ? f->requests : 0; }

static void on_timer_closed(uv_handle_t *h) { handle_gone(h->data); }

void xf_posh_fetcher_free(xf_posh_fetcher *f)
{
    if (f == NULL || f->freeing)
        return;
    f->freeing = 1;
    while (f->reqs)
        req_unlink_free(f, f->reqs);
    while (f->jobs)
        job_free(f, f->jobs);                  /* curl may call on_curl_socket(REMOVE) */
    curl_multi_cleanup(f->multi);              /* ... and here for cached connections */
    f->multi = NULL;
    while (f->cache) {
        centry *e = f->cache;
        f->cache = e->next;
        xf_posh_answer_unref(e->ans);
        free(e);
    }
    free(f->ca_file);
    f->ca_file = NULL;
    while (f->socks)
        psock_close(f, f->socks);
    uv_timer_stop(&f->timer);
    uv_timer_stop(&f->deliver);
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
    uv_close((uv_handle_t *)&f->deliver, on_timer_closed);
}
