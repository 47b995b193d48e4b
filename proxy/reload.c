/*
 * reload: see reload.h. The load and the comparison with the snapshot in service run on
 * libuv's thread pool (uv_queue_work); both snapshots are immutable there (the new one
 * is not shared yet, except for the restart-only fields fixed up before publication).
 * The publication, the log lines and the watch re-arm run in after_work, on the main
 * loop.
 */
#include "proxy/reload.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/sdnotify.h"
#include "proxy/stats.h"
#include "proxy/tickets.h"
#include "proxy/tls_client.h"
#include "proxy/watch.h"

#define REPORT_MAX 8192                  /* the "what changed" text */
#define NAMES_MAX 20                     /* domains listed per line, then "and N more" */
#define WATCH_DEBOUNCE_MS 500
/* After a reload the workers drop the old snapshot within milliseconds (their async);
   its memory then sits free in the arena of the pool thread that loaded it (glibc
   keeps it: 10,000 tenants grew RSS by ~50 MiB per reload until every pool thread's
   arena held a dead snapshot). TRIM_DELAY_MS later malloc_trim(0) hands it back, on a
   pool thread, never on a worker's loop. */
#define TRIM_DELAY_MS 2000

struct xf_reload {
    uv_loop_t *loop;
    char *path;
    xf_config *cur;
    xf_worker *ws;
    unsigned n;
    xf_watch *watch;
    uv_work_t work;
    uv_timer_t trim_timer;               /* TRIM_DELAY_MS after a reload */
    uv_work_t trim_work;
    int trim_running;
    int running, again, stopping;
    unsigned long seq;                   /* reloads started */
    char why[160], again_why[160];
    /* The job (written by the pool thread, read in after_work). */
    xf_config *job_old, *job_new;
    uint64_t t0;
    int job_rc;
    char job_err[1024];
    char job_restart[512];               /* restart-only keys that changed, or "" */
    char *job_report;                    /* lines separated by '\n' */
};

int xf_reload_load(const char *path, xf_config **out, char *err, size_t errlen)
{
    xf_config *c = NULL;
    *out = NULL;
    if (xf_config_load(path, &c, err, errlen) != 0)
        return -1;
    char e[512];
    if (xf_tls_client_init(&c->tlsc, c->registry, c->federation.ca_file, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "%s: federation.ca_file: client TLS: %s", path, e);
        xf_config_unref(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* ---------------------------------------------------------------- comparison */

typedef struct report {
    char *buf;
    size_t len;
} report;

static void rp_add(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rp_add(report *r, const char *fmt, ...)
{
    if (r->buf == NULL || r->len + 1 >= REPORT_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->buf + r->len, REPORT_MAX - r->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->len = r->len + (size_t)n >= REPORT_MAX ? REPORT_MAX - 1 : r->len + (size_t)n;
}

/* A list of domains: the first NAMES_MAX by name, then the count. */
typedef struct namelist {
    char text[NAMES_MAX * 64];
    size_t len, n;
} namelist;

static void nl_add(namelist *l, const char *name)
{
    if (l->n++ < NAMES_MAX && l->len + 1 < sizeof(l->text)) {
        int k = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%s",
                         l->len ? ", " : "", name);
        if (k > 0)
            l->len = l->len + (size_t)k >= sizeof(l->text) ? sizeof(l->text) - 1
                                                           : l->len + (size_t)k;
    }
}

static void nl_report(report *r, const char *what, const namelist *l)
{
    if (l->n == 0)
        return;
    if (l->n > NAMES_MAX)
        rp_add(r, "tenants %s (%zu): %s and %zu more\n", what, l->n, l->text,
               l->n - NAMES_MAX);
    else
        rp_add(r, "tenants %s (%zu): %s\n", what, l->n, l->text);
}

static int str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int chain_eq(const mbedtls_x509_crt *a, const mbedtls_x509_crt *b)
{
    for (; a != NULL && b != NULL; a = a->next, b = b->next)
        if (a->raw.len != b->raw.len || (a->raw.len && memcmp(a->raw.p, b->raw.p, a->raw.len)))
            return 0;
    return (a == NULL || a->raw.p == NULL) && (b == NULL || b->raw.p == NULL);
}

static int backend_eq(const xf_backend *a, const xf_backend *b)
{
    return str_eq(a->spec, b->spec);
}

/* Everything of a tenant file but the served certificate (reported apart). */
static int tenant_same_settings(const xf_tenant *a, const xf_tenant *b)
{
    if (!str_eq(a->file, b->file) || a->present != b->present ||
        !str_eq(a->cert_path, b->cert_path) || !str_eq(a->key_path, b->key_path) ||
        !str_eq(a->next_cert_path, b->next_cert_path) ||
        !str_eq(a->next_key_path, b->next_key_path) || !chain_eq(&a->next_chain, &b->next_chain) ||
        !backend_eq(&a->c2s, &b->c2s) || !backend_eq(&a->s2s, &b->s2s) ||
        !backend_eq(&a->http, &b->http) || a->proxy_protocol != b->proxy_protocol ||
        a->federation != b->federation || a->proofs.n != b->proofs.n ||
        memcmp(a->proofs.type, b->proofs.type, sizeof(a->proofs.type)) != 0 ||
        a->n_aliases != b->n_aliases)
        return 0;
    for (size_t i = 0; i < a->n_aliases; i++)
        if (!str_eq(a->aliases[i], b->aliases[i]))
            return 0;
    return 1;
}

/* "SERIAL (valid until YYYY-MM-DD)", the serial in hex as `openssl x509 -serial`. */
static void describe_cert(const mbedtls_x509_crt *c, char *out, size_t outlen)
{
    size_t o = 0;
    if (c == NULL || c->raw.p == NULL) {
        snprintf(out, outlen, "none");
        return;
    }
    for (size_t i = 0; i < c->serial.len && o + 3 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02X", c->serial.p[i]);
    snprintf(out + o, outlen - o, " (valid until %04d-%02d-%02d)", c->valid_to.year,
             c->valid_to.mon, c->valid_to.day);
}

static size_t renewed_lines;

static void report_renewal(report *r, const char *who, const char *domain,
                           const mbedtls_x509_crt *was, const mbedtls_x509_crt *now)
{
    char a[160], b[160];
    if (renewed_lines++ >= NAMES_MAX)
        return;
    describe_cert(was, a, sizeof(a));
    describe_cert(now, b, sizeof(b));
    rp_add(r, "certificate renewed for %s %s: serial %s -> %s\n", who, domain, a, b);
}

/* What changed from old to new, into r; returns the number of changes. Pool thread. */
static size_t compare(const xf_config *old, const xf_config *new, report *r)
{
    namelist added = {0}, removed = {0}, changed = {0};
    size_t renewed = 0;
    renewed_lines = 0;
    for (size_t i = 0; i < xf_registry_count(new->registry); i++) {
        const xf_tenant *t = xf_registry_at(new->registry, i);
        const xf_tenant *o = xf_registry_find(old->registry, t->domain);
        if (o == NULL || strcmp(o->domain, t->domain) != 0) {
            nl_add(&added, t->domain);
            continue;
        }
        if (!tenant_same_settings(o, t))
            nl_add(&changed, t->domain);
        /* A hosting-served tenant's certificate is the hosting identity's (below). */
        if (t->present == XF_PRESENT_OWN && o->present == XF_PRESENT_OWN &&
            !chain_eq(&o->chain, &t->chain)) {
            renewed++;
            report_renewal(r, "tenant", t->domain, &o->chain, &t->chain);
        }
    }
    for (size_t i = 0; i < xf_registry_count(old->registry); i++) {
        const xf_tenant *o = xf_registry_at(old->registry, i);
        const xf_tenant *t = xf_registry_find(new->registry, o->domain);
        if (t == NULL || strcmp(o->domain, t->domain) != 0)
            nl_add(&removed, o->domain);
    }
    const xf_tenant *ho = xf_registry_hosting(old->registry);
    const xf_tenant *hn = xf_registry_hosting(new->registry);
    if (ho != NULL && hn != NULL && strcmp(ho->domain, hn->domain) == 0) {
        if (!chain_eq(&ho->chain, &hn->chain)) {
            renewed++;
            report_renewal(r, "hosting identity", hn->domain, &ho->chain, &hn->chain);
        }
    } else if (ho != NULL || hn != NULL) {
        rp_add(r, "hosting identity: %s -> %s\n", ho ? ho->domain : "none",
               hn ? hn->domain : "none");
        renewed++;
    }
    if (renewed_lines > NAMES_MAX)
        rp_add(r, "certificates renewed: %zu more not listed\n", renewed_lines - NAMES_MAX);
    nl_report(r, "added", &added);
    nl_report(r, "removed", &removed);
    nl_report(r, "changed", &changed);
    int other = memcmp(&old->limits, &new->limits, sizeof(old->limits)) != 0 ||
                !str_eq(old->log_level, new->log_level) || old->watch != new->watch ||
                !str_eq(old->federation.ca_file, new->federation.ca_file) ||
                !str_eq(old->federation.dialback_secret, new->federation.dialback_secret) ||
                old->federation.negotiation_timeout_s != new->federation.negotiation_timeout_s ||
                old->federation.connect_timeout_s != new->federation.connect_timeout_s;
    if (other)
        rp_add(r, "main file settings changed (limits, log_level, watch or federation)\n");
    int tickets = !xf_tickets_same(old->tickets, new->tickets);
    if (tickets)                         /* proxy/tickets.h: settings or key file content */
        rp_add(r, "session_tickets changed (settings or key file)\n");
    return added.n + removed.n + changed.n + renewed + (size_t)other + (size_t)tickets;
}

/* ---------------------------------------------------------------- restart-only keys */

static int listeners_eq(const xf_config *a, const xf_config *b)
{
    if (a->n_listeners != b->n_listeners)
        return 0;
    for (size_t i = 0; i < a->n_listeners; i++) {
        const xf_listener_conf *x = &a->listeners[i], *y = &b->listeners[i];
        if (strcmp(x->name, y->name) || x->tls != y->tls || x->service != y->service ||
            x->transparent != y->transparent || x->allow_public != y->allow_public)
            return 0;
    }
    return 1;
}

static int resolvers_eq(const xf_federation_conf *a, const xf_federation_conf *b)
{
    if (a->n_resolvers != b->n_resolvers)
        return 0;
    for (size_t i = 0; i < a->n_resolvers; i++)
        if (strcmp(a->resolvers[i], b->resolvers[i]) != 0)
            return 0;
    return 1;
}

static void note(char *buf, size_t len, const char *key)
{
    size_t l = strlen(buf);
    snprintf(buf + l, len - l, "%s%s", l ? ", " : "", key);
}

/* Keys a running process cannot apply: the listening sockets and worker threads exist
   already, each worker's resolver and POSH fetcher were built at start. new gets old's
   values (it is not shared yet; user/group are only reported: nothing reads them
   after the start); `changed` lists the keys that differed. Keys added to the main
   file later that only a restart applies belong here too. Returns 0,
   or -1 when out of memory. */
static int keep_restart_only(const xf_config *old, xf_config *new, char *changed, size_t len)
{
    changed[0] = '\0';
    if (old->workers != new->workers) {
        note(changed, len, "workers");
        new->workers = old->workers;
    }
    if (!listeners_eq(old, new)) {
        note(changed, len, "listeners");
        xf_listener_conf *l = calloc(old->n_listeners, sizeof(*l));
        if (l == NULL)
            return -1;
        memcpy(l, old->listeners, old->n_listeners * sizeof(*l));
        free(new->listeners);
        new->listeners = l;
        new->n_listeners = old->n_listeners;
    }
    xf_federation_conf *nf = &new->federation;
    const xf_federation_conf *of = &old->federation;
    if (!resolvers_eq(of, nf)) {
        note(changed, len, "federation.resolvers");
        char **r = calloc(of->n_resolvers ? of->n_resolvers : 1, sizeof(*r));
        if (r == NULL)
            return -1;
        for (size_t i = 0; i < of->n_resolvers; i++)
            if ((r[i] = strdup(of->resolvers[i])) == NULL) {
                while (i--)
                    free(r[i]);
                free(r);
                return -1;
            }
        for (size_t i = 0; i < nf->n_resolvers; i++)
            free(nf->resolvers[i]);
        free(nf->resolvers);
        nf->resolvers = r;
        nf->n_resolvers = of->n_resolvers;
    }
    /* The admin listener is bound once (main.c start_admin). */
    const xf_admin_conf *oa = &old->admin, *na = &new->admin;
    if (oa->enabled != na->enabled || strcmp(oa->name, na->name) != 0 ||
        oa->per_tenant_metrics != na->per_tenant_metrics) {
        note(changed, len, "admin");
        new->admin = old->admin;
    }
    /* The privilege drop happened once, at start (proxy/privdrop.h); the log format
       is chosen before the first line. */
    if (!str_eq(old->user, new->user) || !str_eq(old->group, new->group))
        note(changed, len, "user/group");
    if (old->log_format != new->log_format) {
        note(changed, len, "log_format");
        new->log_format = old->log_format;
    }
    /* The POSH fetchers keep what they were built with; the client TLS takes the new
       CA file at once. Reported, not reverted. */
    if (!str_eq(of->ca_file, nf->ca_file) || of->connect_timeout_s != nf->connect_timeout_s)
        note(changed, len, "federation.ca_file/connect_timeout_s for POSH fetches");
    return 0;
}

/* ---------------------------------------------------------------- the job */

/* Pool thread: load, fix up, compare. */
static void on_work(uv_work_t *req)
{
    xf_reload *rl = req->data;
    rl->job_rc = -1;
    rl->job_restart[0] = '\0';
    if (xf_reload_load(rl->path, &rl->job_new, rl->job_err, sizeof(rl->job_err)) != 0)
        return;
    if (keep_restart_only(rl->job_old, rl->job_new, rl->job_restart,
                          sizeof(rl->job_restart)) != 0) {
        snprintf(rl->job_err, sizeof(rl->job_err), "%s: (document): out of memory", rl->path);
        xf_config_unref(rl->job_new);
        rl->job_new = NULL;
        return;
    }
    report r = { malloc(REPORT_MAX), 0 };
    if (r.buf != NULL)
        r.buf[0] = '\0';
    if (compare(rl->job_old, rl->job_new, &r) == 0)
        rp_add(&r, "no change\n");
    rl->job_report = r.buf;
    rl->job_rc = 0;
}

static void start_job(xf_reload *rl);

static void on_trim_work(uv_work_t *req)
{
    (void)req;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void on_trim_done(uv_work_t *req, int status)
{
    xf_reload *rl = req->data;
    (void)status;
    rl->trim_running = 0;
    if (rl->stopping && !uv_is_closing((uv_handle_t *)&rl->trim_timer))
        uv_close((uv_handle_t *)&rl->trim_timer, NULL);
}

static void on_trim_timer(uv_timer_t *t)
{
    xf_reload *rl = t->data;
    if (rl->trim_running || rl->stopping)
        return;
    rl->trim_running = 1;
    rl->trim_work.data = rl;
    if (uv_queue_work(rl->loop, &rl->trim_work, on_trim_work, on_trim_done) != 0)
        rl->trim_running = 0;
}

static void log_report(unsigned long seq, char *text)
{
    for (char *line = text, *nl; line != NULL && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl != NULL)
            *nl++ = '\0';
        xf_info("reload %lu: %s", seq, line);
    }
}

/* Main loop: publish or refuse, log, re-arm, run the coalesced request. */
static void on_work_done(uv_work_t *req, int status)
{
    xf_reload *rl = req->data;
    double ms = (double)(uv_hrtime() - rl->t0) / 1e6;
    rl->running = 0;
    xf_config_unref(rl->job_old);
    rl->job_old = NULL;
    if (rl->stopping || status != 0) {
        xf_config_unref(rl->job_new);
        rl->job_new = NULL;
        free(rl->job_report);
        rl->job_report = NULL;
        xf_sd_ready(NULL);
        return;
    }
    if (rl->job_rc != 0) {
        xf_stats_inc(XF_STAT_RELOAD_FAILED);
        xf_error("reload %lu (%s) refused: %s; the old configuration stays in service",
                 rl->seq, rl->why, rl->job_err);
    } else {
        xf_config *next = rl->job_new;
        rl->job_new = NULL;
        if (rl->job_restart[0])
            xf_warn("reload %lu: %s changed: kept as they are until a restart (or a binary "
                    "upgrade)", rl->seq, rl->job_restart);
        for (unsigned i = 0; i < rl->n; i++)
            xf_worker_set_config(&rl->ws[i], next);
        xf_config_unref(rl->cur);
        rl->cur = next;
        int lvl = next->log_level ? xf_log_parse_level(next->log_level) : XF_LOG_INFO;
        xf_log_set_level(lvl < 0 ? XF_LOG_INFO : lvl);
        log_report(rl->seq, rl->job_report);
        free(rl->job_report);
        rl->job_report = NULL;
        xf_stats_inc(XF_STAT_RELOAD_OK);
        xf_metrics_set_tenants(xf_registry_count(next->registry));
        uv_timer_start(&rl->trim_timer, on_trim_timer, TRIM_DELAY_MS, 0);
        int watched = -1;
        if (next->watch)
            watched = xf_watch_arm(rl->watch, next);
        else
            xf_watch_disarm(rl->watch);
        xf_info("reload %lu (%s) done in %.1f ms: %zu tenants in service%s", rl->seq,
                rl->why, ms, xf_registry_count(next->registry),
                watched >= 0 ? "" : ", file watching off");
    }
    xf_sd_ready(NULL);
    if (rl->again && !rl->stopping) {
        rl->again = 0;
        snprintf(rl->why, sizeof(rl->why), "%s", rl->again_why);
        start_job(rl);
    }
}

static void start_job(xf_reload *rl)
{
    rl->running = 1;
    rl->seq++;
    rl->t0 = uv_hrtime();
    rl->job_old = xf_config_ref(rl->cur);
    rl->job_new = NULL;
    rl->job_report = NULL;
    rl->work.data = rl;
    xf_sd_reloading();
    xf_info("reload %lu (%s): loading %s", rl->seq, rl->why, rl->path);
    int r = uv_queue_work(rl->loop, &rl->work, on_work, on_work_done);
    if (r != 0) {
        rl->running = 0;
        xf_config_unref(rl->job_old);
        rl->job_old = NULL;
        xf_stats_inc(XF_STAT_RELOAD_FAILED);
        xf_error("reload %lu (%s) refused: %s: (document): cannot start the load: %s; the "
                 "old configuration stays in service", rl->seq, rl->why, rl->path,
                 uv_strerror(r));
        xf_sd_ready(NULL);
    }
}

void xf_reload_request(xf_reload *rl, const char *why)
{
    if (rl == NULL)
        return;
    if (rl->stopping) {
        xf_info("reload (%s) ignored: shutting down", why);
        return;
    }
    if (rl->running) {
        /* Coalesced: whatever arrives meanwhile makes one more reload afterwards, so
           the last change is always loaded. */
        if (!rl->again)
            snprintf(rl->again_why, sizeof(rl->again_why), "%s, during reload %lu", why,
                     rl->seq);
        rl->again = 1;
        return;
    }
    snprintf(rl->why, sizeof(rl->why), "%s", why);
    start_job(rl);
}

static void on_watch(void *ud, const char *path)
{
    char why[160];
    snprintf(why, sizeof(why), "file change: %s", path);
    xf_reload_request(ud, why);
}

xf_reload *xf_reload_new(uv_loop_t *loop, const char *path, xf_config *cur, xf_worker *ws,
                         unsigned n)
{
    xf_reload *rl = calloc(1, sizeof(*rl));
    if (rl == NULL || (rl->path = strdup(path)) == NULL) {
        free(rl);
        return NULL;
    }
    rl->loop = loop;
    rl->cur = cur;
    rl->ws = ws;
    rl->n = n;
    rl->watch = xf_watch_new(loop, WATCH_DEBOUNCE_MS, on_watch, rl);
    if (rl->watch == NULL) {
        free(rl->path);
        free(rl);
        return NULL;
    }
    uv_timer_init(loop, &rl->trim_timer);
    rl->trim_timer.data = rl;
    if (cur->watch)
        (void)xf_watch_arm(rl->watch, cur);
    return rl;
}

void xf_reload_stop(xf_reload *rl)
{
    if (rl == NULL || rl->stopping)
        return;
    rl->stopping = 1;
    rl->again = 0;
    xf_watch_close(rl->watch);
    rl->watch = NULL;
    if (!rl->trim_running)                 /* else on_trim_done closes it */
        uv_close((uv_handle_t *)&rl->trim_timer, NULL);
}

void xf_reload_free(xf_reload *rl)
{
    if (rl == NULL)
        return;
    xf_config_unref(rl->cur);
    free(rl->path);
    free(rl);
}

xf_config *xf_reload_current(const xf_reload *rl) { return rl ? rl->cur : NULL; }
