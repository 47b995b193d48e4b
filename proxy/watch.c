/*
 * watch: see watch.h. One uv_fs_event_t per directory, each with the sorted names whose
 * events matter there; one debounce timer for all.
 */
#include "proxy/watch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/log.h"
#include "proxy/tickets.h"

typedef struct dirwatch {
    uv_fs_event_t h;
    struct xf_watch *owner;
    char *dir;
    char **names;                      /* sorted; events on other names are ignored */
    size_t n_names;
    int json;                          /* the tenants folder: every *.json counts */
} dirwatch;

struct xf_watch {
    uv_loop_t *loop;
    uv_timer_t debounce;
    unsigned debounce_ms;
    xf_watch_cb cb;
    void *ud;
    dirwatch **dirs;
    size_t n_dirs;
    size_t open_handles;               /* dirwatch handles not closed yet + the timer */
    int closing;
    char first[PATH_MAX + 64];         /* first changed path since the last callback */
};

/* (dir, name) pairs, collected then grouped by dir. */
typedef struct pair {
    char *dir, *name;
    int json;
} pair;

typedef struct pairs {
    pair *v;
    size_t n, cap;
    int oom;
} pairs;

static void add_pair(pairs *p, const char *dir, size_t dirlen, const char *name, int json)
{
    if (p->oom)
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        pair *v = realloc(p->v, cap * sizeof(*v));
        if (v == NULL) {
            p->oom = 1;
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    pair *e = &p->v[p->n];
    e->dir = strndup(dir, dirlen ? dirlen : 1);
    e->name = strdup(name);
    e->json = json;
    if (e->dir == NULL || e->name == NULL) {
        free(e->dir);
        free(e->name);
        p->oom = 1;
        return;
    }
    p->n++;
}

/* The file's directory and name; when the path resolves elsewhere (symlinks), also
   the real file's directory and name. */
static void add_file(pairs *p, const char *path)
{
    if (path == NULL || *path == '\0')
        return;
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        add_pair(p, ".", 1, path, 0);
    else
        add_pair(p, path, (size_t)(slash - path), slash + 1, 0);
    char real[PATH_MAX];
    if (realpath(path, real) != NULL && strcmp(real, path) != 0) {
        slash = strrchr(real, '/');
        if (slash != NULL)
            add_pair(p, real, (size_t)(slash - real), slash + 1, 0);
    }
}

static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    int c = strcmp(x->dir, y->dir);
    return c ? c : strcmp(x->name, y->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Does an event on `name` in d matter? NULL name: the directory itself. */
static int relevant(const dirwatch *d, const char *name)
{
    if (name == NULL)
        return 1;
    if (name[0] == '.' && name[1] == '.')
        return 1;                      /* ..data, ..data_tmp, ..2026_12_01_... */
    size_t l = strlen(name);
    if (d->json && l > 5 && strcmp(name + l - 5, ".json") == 0)
        return 1;
    return bsearch(&name, d->names, d->n_names, sizeof(*d->names), cmp_str) != NULL;
}

static void on_debounce(uv_timer_t *t)
{
    xf_watch *w = t->data;
    char path[sizeof(w->first)];
    memcpy(path, w->first, sizeof(path));
    w->first[0] = '\0';
    w->cb(w->ud, path);
}

static void on_fs_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    dirwatch *d = h->data;
    xf_watch *w = d->owner;
    (void)events;
    if (w->closing || (status == 0 && !relevant(d, name)))
        return;
    if (w->first[0] == '\0')
        snprintf(w->first, sizeof(w->first), "%s/%s", d->dir, name ? name : "");
    xf_debug("watch: %s/%s changed (%s)", d->dir, name ? name : "",
             status < 0 ? uv_strerror(status) : "event");
    uv_timer_start(&w->debounce, on_debounce, w->debounce_ms, 0);
}

static void maybe_free(xf_watch *w)
{
    if (w->closing && w->open_handles == 0) {
        free(w->dirs);
        free(w);
    }
}

static void dirwatch_free(dirwatch *d)
{
    for (size_t i = 0; i < d->n_names; i++)
        free(d->names[i]);
    free(d->names);
    free(d->dir);
    free(d);
}

static void on_dir_closed(uv_handle_t *h)
{
    dirwatch *d = h->data;
    xf_watch *w = d->owner;
    dirwatch_free(d);
    w->open_handles--;
    maybe_free(w);
}

static void on_timer_closed(uv_handle_t *h)
{
    xf_watch *w = h->data;
    w->open_handles--;
    maybe_free(w);
}

xf_watch *xf_watch_new(uv_loop_t *loop, unsigned debounce_ms, xf_watch_cb cb, void *ud)
{
    xf_watch *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->loop = loop;
    w->debounce_ms = debounce_ms;
    w->cb = cb;
    w->ud = ud;
    uv_timer_init(loop, &w->debounce);
    w->debounce.data = w;
    w->open_handles = 1;
    return w;
}

static void close_dirs(xf_watch *w)
{
    for (size_t i = 0; i < w->n_dirs; i++)
        uv_close((uv_handle_t *)&w->dirs[i]->h, on_dir_closed);
    free(w->dirs);
    w->dirs = NULL;
    w->n_dirs = 0;
}

void xf_watch_disarm(xf_watch *w)
{
    if (w == NULL)
        return;
    close_dirs(w);
    uv_timer_stop(&w->debounce);
    w->first[0] = '\0';
}

void xf_watch_close(xf_watch *w)
{
    if (w == NULL || w->closing)
        return;
    xf_watch_disarm(w);
    w->closing = 1;
    uv_close((uv_handle_t *)&w->debounce, on_timer_closed);
}

/* Start one directory's watch from the group pairs [from, to). 0, or a libuv error. */
static int start_dir(xf_watch *w, pair *v, size_t from, size_t to, dirwatch **out)
{
    dirwatch *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return UV_ENOMEM;
    d->owner = w;
    d->dir = v[from].dir;
    v[from].dir = NULL;
    d->names = calloc(to - from, sizeof(*d->names));
    if (d->names == NULL) {
        dirwatch_free(d);
        return UV_ENOMEM;
    }
    for (size_t i = from; i < to; i++) {
        d->json |= v[i].json;
        if (v[i].name[0] && (d->n_names == 0 || strcmp(d->names[d->n_names - 1], v[i].name)))
            d->names[d->n_names++] = v[i].name;
        else
            free(v[i].name);
        v[i].name = NULL;
    }
    uv_fs_event_init(w->loop, &d->h);
    d->h.data = d;
    w->open_handles++;
    int r = uv_fs_event_start(&d->h, on_fs_event, d->dir, 0);
    if (r != 0) {
        uv_close((uv_handle_t *)&d->h, on_dir_closed);
        return r;
    }
    *out = d;
    return 0;
}

int xf_watch_arm(xf_watch *w, const xf_config *cfg)
{
    if (w == NULL || w->closing)
        return 0;
    close_dirs(w);
    pairs p = {0};
    /* The tenants folder itself: "" names nothing, json counts every *.json. */
    add_pair(&p, cfg->tenants_dir, strlen(cfg->tenants_dir), "", 1);
    add_file(&p, cfg->path);
    add_file(&p, cfg->federation.ca_file);
    add_file(&p, cfg->federation.dialback_secret_file);
    add_file(&p, xf_tickets_key_file(cfg->tickets));
    const xf_tenant *h = xf_registry_hosting(cfg->registry);
    for (size_t i = 0; i <= xf_registry_count(cfg->registry); i++) {
        const xf_tenant *t = i < xf_registry_count(cfg->registry)
                             ? xf_registry_at(cfg->registry, i) : h;
        if (t == NULL)
            continue;
        add_file(&p, t->cert_path);
        add_file(&p, t->key_path);
        add_file(&p, t->next_cert_path);
        add_file(&p, t->next_key_path);
    }
    size_t n_groups = 0, failed = 0;
    int first_err = 0;
    const char *first_dir = NULL;
    char first_dir_buf[PATH_MAX];
    if (!p.oom) {
        qsort(p.v, p.n, sizeof(*p.v), cmp_pair);
        for (size_t i = 0; i < p.n; i++)
            n_groups += i == 0 || strcmp(p.v[i].dir, p.v[i - 1].dir) != 0;
        w->dirs = calloc(n_groups ? n_groups : 1, sizeof(*w->dirs));
    }
    for (size_t i = 0, j; w->dirs != NULL && i < p.n; i = j) {
        for (j = i + 1; j < p.n && strcmp(p.v[j].dir, p.v[i].dir) == 0; j++)
            ;
        dirwatch *d = NULL;
        snprintf(first_dir_buf, sizeof(first_dir_buf), "%s", p.v[i].dir);
        int r = start_dir(w, p.v, i, j, &d);
        if (r == 0) {
            w->dirs[w->n_dirs++] = d;
        } else if (failed++ == 0) {
            first_err = r;
            first_dir = first_dir_buf;
            xf_warn("watch: cannot watch %s: %s%s", first_dir, uv_strerror(r),
                    r == UV_ENOSPC ? " (raise fs.inotify.max_user_watches)" : "");
        }
    }
    if (failed > 1)
        xf_warn("watch: %zu directories not watched (first error %s); changes there need "
                "a SIGHUP", failed, uv_strerror(first_err));
    if (p.oom || (w->dirs == NULL && p.n > 0))
        xf_warn("watch: out of memory: file changes need a SIGHUP");
    for (size_t i = 0; i < p.n; i++) {
        free(p.v[i].dir);
        free(p.v[i].name);
    }
    free(p.v);
    xf_debug("watch: %zu directories watched", w->n_dirs);
    return (int)w->n_dirs;
}
