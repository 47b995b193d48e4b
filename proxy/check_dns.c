/*
 * check_dns: proxy/dns.c driven synchronously for `xmppfront check` (proxy/check_int.h):
 * one private libuv loop, queries asked as a batch, the loop run until every answer is
 * in or the deadline passes (then the rest are cancelled and read as TIMEOUT).
 */
#include "proxy/check_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct xf_cdns {
    uv_loop_t loop;
    xf_dns *dns;
    xf_cdns_query *q;                  /* the batch being run */
    size_t n, pending;
};

uint64_t xf_check_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

xf_cdns *xf_cdns_open(const char *const *servers, size_t n, unsigned timeout_ms, char *err,
                      size_t errlen)
{
    xf_cdns *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (uv_loop_init(&d->loop) != 0) {
        snprintf(err, errlen, "cannot create an event loop");
        free(d);
        return NULL;
    }
    xf_dns_conf conf = { .servers = servers, .n_servers = n, .timeout_ms = timeout_ms,
                         .tries = 2, .no_cache = 1 };
    d->dns = xf_dns_new(&d->loop, &conf, err, errlen);
    if (d->dns == NULL) {
        uv_loop_close(&d->loop);
        free(d);
        return NULL;
    }
    return d;
}

int xf_cdns_trusted(const xf_cdns *d) { return xf_dns_ad_trusted(d->dns); }

int xf_cdns_parse_timeout(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v > 0 && v <= 600))
        return -1;
    *out = v;
    return 0;
}

int xf_cdns_resolver_arg(const char *r, char *out, size_t cap)
{
    int bare4 = strchr(r, ':') == NULL;
    int n = snprintf(out, cap, bare4 ? "%s:53" : "%s", r);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

void xf_cli_common_init(xf_cli_common *o, const char *config, double timeout_s)
{
    memset(o, 0, sizeof(*o));
    o->config = config;
    o->timeout_s = timeout_s;
}

int xf_cli_common_arg(xf_cli_common *o, int argc, char **argv, int *i, const char **why,
                      const char **arg)
{
    const char *a = argv[*i];
    int has = *i + 1 < argc;
    *arg = NULL;
    if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
        if (!has)
            return *why = "--config needs a file", -1;
        o->config = argv[++*i];
    } else if (strcmp(a, "--timeout") == 0) {
        if (!has)
            return *why = "--timeout needs seconds", -1;
        if (xf_cdns_parse_timeout(argv[++*i], &o->timeout_s) < 0)
            return *why = "--timeout: seconds in (0, 600]: ", *arg = argv[*i], -1;
    } else if (strcmp(a, "--resolver") == 0) {
        if (!has)
            return *why = "--resolver needs IP:PORT", -1;
        if (o->n_res == XF_CLI_MAX_RESOLVERS)
            return *why = "too many --resolver", -1;
        const char *r = argv[++*i];
        if (xf_cdns_resolver_arg(r, o->res_buf[o->n_res], sizeof(o->res_buf[o->n_res])) < 0)
            return *why = "--resolver too long: ", *arg = r, -1;
        o->resolvers[o->n_res] = o->res_buf[o->n_res];
        o->n_res++;
    } else if (a[0] != '-') {
        if (o->domain)
            return *why = "one DOMAIN only: ", *arg = a, -1;
        o->domain = a;
    } else {
        return 0;
    }
    return 1;
}

int xf_cli_common_done(xf_cli_common *o, const char **why)
{
    *why = NULL;
    if (o->domain == NULL)
        return -1;
    *why = xf_registry_normalise_name(o->domain, o->name);
    return *why ? -1 : 0;
}

static void on_answer(void *udata, uint64_t id, const xf_dns_result *res)
{
    xf_cdns *d = udata;
    for (size_t i = 0; i < d->n; i++) {
        xf_cdns_query *q = &d->q[i];
        if (q->id != id || q->done)
            continue;
        if (xf_dns_result_copy(&q->res, res) != 0) {
            memset(&q->res, 0, sizeof(q->res));
            q->res.status = XF_DNS_ERROR;
        }
        q->done = 1;
        q->id = 0;
        d->pending--;
        return;
    }
}

static void on_deadline(uv_timer_t *t)
{
    uv_stop(t->loop);
}

int xf_cdns_run(xf_cdns *d, xf_cdns_query *q, size_t n, uint64_t deadline)
{
    int rc = 0;
    d->q = q;
    d->n = n;
    d->pending = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i].done)
            continue;
        memset(&q[i].res, 0, sizeof(q[i].res));
        switch (q[i].kind) {
        case XF_CQ_SRV:
            q[i].id = xf_dns_query_srv(d->dns, q[i].name, on_answer, d);
            break;
        case XF_CQ_ADDR:
            q[i].id = xf_dns_query_a_aaaa(d->dns, q[i].name, on_answer, d);
            break;
        default:
            q[i].id = xf_dns_query_tlsa(d->dns, q[i].port, q[i].name, on_answer, d);
            break;
        }
        if (q[i].id == 0) {
            q[i].res.status = XF_DNS_ERROR;
            q[i].done = 1;
            rc = -1;
        } else {
            d->pending++;
        }
    }
    uv_timer_t timer;
    uv_timer_init(&d->loop, &timer);
    uint64_t now = xf_check_now_ms();
    uv_timer_start(&timer, on_deadline, deadline > now ? deadline - now : 0, 0);
    while (d->pending > 0 && xf_check_now_ms() < deadline)
        if (uv_run(&d->loop, UV_RUN_ONCE) == 0 && d->pending > 0)
            break;                     /* nothing left to wait for (cannot happen) */
    for (size_t i = 0; i < n; i++) {
        if (q[i].done)
            continue;
        xf_dns_cancel(d->dns, q[i].id);
        q[i].id = 0;
        q[i].res.status = XF_DNS_TIMEOUT;
        q[i].done = 1;
    }
    d->pending = 0;
    d->q = NULL;
    d->n = 0;
    uv_timer_stop(&timer);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&d->loop, UV_RUN_NOWAIT);   /* the timer's close callback */
    return rc;
}

void xf_cdns_query_free(xf_cdns_query *q)
{
    xf_dns_result_free(&q->res);
    memset(&q->res, 0, sizeof(q->res));
}

void xf_cdns_close(xf_cdns *d)
{
    if (d == NULL)
        return;
    xf_dns_free(d->dns);
    uv_run(&d->loop, UV_RUN_DEFAULT);  /* the channel's close callbacks */
    uv_loop_close(&d->loop);
    free(d);
}
