/*
 * xmppfront: a TLS-terminating XMPP proxy for many tenant domains.
 *   xmppfront -c FILE                 run in the foreground, log to stderr
 *   xmppfront --check-config -c FILE  validate the configuration and exit
 *   xmppfront proof ...               certificate and proof tools (docs/proof.md)
 *   xmppfront records DOMAIN [-c FILE] the SRV/TLSA/POSH records to publish (docs/records.md)
 *   xmppfront check DOMAIN [...]      audit a domain as a peer sees it (docs/check.md)
 *   xmppfront rollover DOMAIN [...]   switch to the next key once DNS serves it (docs/rollover.md)
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "proxy/admin.h"
#include "proxy/check_cmd.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/privdrop.h"
#include "proxy/sdnotify.h"
#include "proxy/stats.h"
#include "proxy/proof_cmd.h"
#include "proxy/records_cmd.h"
#include "proxy/reload.h"
#include "proxy/rollover_cmd.h"
#include "proxy/tls.h"
#include "proxy/tls_client.h"
#include "proxy/upgrade.h"
#include "proxy/worker.h"

#ifndef XF_VERSION
#define XF_VERSION "0.1.0"
#endif

typedef struct main_ctx {
    uv_signal_t sigterm, sigint, sighup;
    uv_signal_t sigusr2;             /* binary upgrade (proxy/upgrade.h) */
    uv_async_t done;                 /* a worker's loop has ended */
    xf_worker *workers;
    unsigned n_workers;
    xf_reload *reload;               /* SIGHUP and file watches (proxy/reload.h) */
    int stopping;
    xf_admin *admin;                 /* the admin listener (proxy/admin.h), or NULL */
} main_ctx;

static void usage(FILE *f)
{
    fputs("usage: xmppfront -c FILE [--check-config]\n"
          "       xmppfront proof SUBCOMMAND ... (see docs/proof.md)\n"
          "       xmppfront records DOMAIN [--config FILE] (see docs/records.md)\n"
          "       xmppfront check DOMAIN [--config FILE] [--json] [--timeout S]\n"
          "                       [--resolver IP:PORT ...] [--ca FILE] (see docs/check.md)\n"
          "       xmppfront rollover DOMAIN [--config FILE] [--resolver IP:PORT ...]\n"
          "                       [--timeout S] [--state DIR] (see docs/rollover.md)\n"
          "  -c, --config FILE    main configuration file (JSON)\n"
          "      --check-config   validate the configuration and its tenants, then exit\n"
          "  -V, --version        print the version\n"
          "  -h, --help           this text\n", f);
}

/* Tenants served with the hosting certificate. */
static size_t hosting_served(const xf_registry *r)
{
    size_t n = 0;
    for (size_t i = 0; i < xf_registry_count(r); i++)
        n += xf_registry_at(r, i)->present == XF_PRESENT_HOSTING;
    return n;
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    main_ctx *m = s->data;
    const char *name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
    if (m->stopping) {
        xf_info("%s received: already draining", name);
        return;
    }
    m->stopping = 1;
    xf_reload_stop(m->reload);
    xf_metrics_set_state(XF_MSTATE_DRAINING);     /* /readyz: 503 from now on */
    xf_sd_stopping("draining");
    xf_info("%s received: no new connections, draining", name);
    xf_upgrade_shutdown();           /* a new process not yet ready is stopped too */
    xf_workers_drain(m->workers, m->n_workers);
}

/* Binary upgrade: the new process serves on our sockets; drain as on SIGTERM, but
   without STOPPING=1 (systemd's MAINPID is the new process already). */
static void on_upgraded(void *arg)
{
    main_ctx *m = arg;
    m->stopping = 1;
    /* The admin socket is the new process's now (it inherited it): stop answering on it,
       or scrapes would land on either process. */
    xf_admin_stop(m->admin);
    m->admin = NULL;
    xf_workers_handover(m->workers, m->n_workers);
}

static void on_sigusr2(uv_signal_t *s, int signum)
{
    main_ctx *m = s->data;
    (void)signum;
    if (m->stopping) {
        xf_warn("SIGUSR2: draining, no binary upgrade");
        return;
    }
    (void)xf_upgrade_start(s->loop, m->workers, m->n_workers, xf_admin_fd(m->admin),
                           on_upgraded, m);
}

/* The main loop (and with it the signal handlers: a second SIGTERM or logrotate's SIGHUP
   must not kill a drain) runs until every worker's loop has ended. */
static void on_worker_done(uv_async_t *a)
{
    main_ctx *m = a->data;
    if (!xf_workers_finished(m->workers, m->n_workers))
        return;
    xf_reload_stop(m->reload);       /* its file watches keep the loop alive */
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sighup, NULL);
    uv_close((uv_handle_t *)&m->sigusr2, NULL);
    xf_upgrade_shutdown();
    uv_close((uv_handle_t *)&m->done, NULL);
    xf_admin_stop(m->admin);
}

/* The admin listener (docs/metrics.md): off with "admin": false or port 0; a bind
   failure stops the start when "admin" is in the file, and is only a warning for the
   implicit default (127.0.0.1:8269), so that instances without an "admin" key can
   share a host. Returns 0, or -1 (message printed). */
static int start_admin(main_ctx *m, const xf_config *cfg)
{
    char err[256];
    if (xf_metrics_init(cfg->admin.per_tenant_metrics) < 0) {
        fprintf(stderr, "xmppfront: out of memory for the per-tenant metrics\n");
        return -1;
    }
    xf_metrics_set_tenants(xf_registry_count(cfg->registry));
    if (!cfg->admin.enabled)
        return 0;
    if (xf_admin_start(uv_default_loop(), &cfg->admin, XF_VERSION, &m->admin, err,
                       sizeof(err)) < 0) {
        if (cfg->admin.configured) {
            fprintf(stderr, "xmppfront: %s\n", err);
            return -1;
        }
        xf_warn("%s: metrics and health endpoints are off (set \"admin\" to choose)", err);
        return 0;
    }
    xf_info("admin listener on %s (/metrics, /healthz, /readyz)", cfg->admin.name);
    return 0;
}

/* SIGHUP: reload the configuration (`kill -HUP`, systemd ExecReload; docs/reload.md). */
static void on_sighup(uv_signal_t *s, int signum)
{
    main_ctx *m = s->data;
    (void)signum;
    xf_reload_request(m->reload, "SIGHUP");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "proof") == 0)
        return xf_proof_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "records") == 0)
        return xf_records_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "check") == 0)
        return xf_check_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "rollover") == 0)
        return xf_rollover_main(argc - 1, argv + 1);

    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int check = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'k': check = 1; break;
        case 'V': puts("xmppfront " XF_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }

    char err[1024];
    if (!check && xf_upgrade_init(argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront: upgrade: %s\n", err);
        return 1;
    }
    xf_log_detect_journal();           /* stderr is the journal: priority prefixes */
    xf_log_hold();                     /* until log_format is known */
    xf_tls *tls = NULL;
    /* The TLS layer initialises PSA, which key parsing in the registry also needs. */
    if (xf_tls_init(&tls, err, sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront: %s\n", err);
        return 1;
    }
    xf_config *cfg = NULL;
    if (xf_reload_load(path, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront: configuration error: %s\n", err);
        xf_tls_free(tls);
        return 1;
    }
    xf_log_set_format(cfg->log_format);
    xf_log_release();
    xf_privdrop pd;
    if (xf_privdrop_resolve(cfg->user, cfg->group, &pd, err, sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront: configuration error: %s: %s\n", path, err);
        return 1;
    }
    if (check) {
        printf("configuration OK: %s: %zu listeners, %zu tenants\n", path, cfg->n_listeners,
               xf_registry_count(cfg->registry));
        const xf_tenant *host = xf_registry_hosting(cfg->registry);
        if (host != NULL)
            printf("hosting identity %s: %s%s; served for %zu tenants\n", host->domain,
                   host->cert_path, host->next_cert_path ? " (next certificate loaded)" : "",
                   hosting_served(cfg->registry));
        xf_config_unref(cfg);
        xf_tls_free(tls);
        return 0;
    }
    for (size_t i = 0; i < xf_registry_count(cfg->registry); i++) {
        const xf_tenant *t = xf_registry_at(cfg->registry, i);
        /* A tenant served with the hosting certificate is proven by delegation (DANE,
           POSH), not by names in that certificate: nothing to warn about. */
        for (size_t j = 0; t->present == XF_PRESENT_OWN && j < t->n_aliases; j++)
            if (!t->alias_covered[j])
                fprintf(stderr, "xmppfront: warning: %s: aliases: '%s' is not covered by the "
                        "certificate %s; clients that check it will refuse it\n",
                        t->file, t->aliases[j], t->cert_path);
    }
    int lvl = cfg->log_level ? xf_log_parse_level(cfg->log_level) : XF_LOG_INFO;
    xf_log_set_level(lvl < 0 ? XF_LOG_INFO : lvl);
    signal(SIGPIPE, SIG_IGN);

    /* The client side of s2s streams xmppfront opens (outbound listeners, inbound
       dialback verification) is cfg->tlsc, built with the snapshot (xf_reload_load). */
    main_ctx m = {0};
    m.n_workers = cfg->workers ? cfg->workers : 1;
    /* The admin listener first: after a binary upgrade it takes its inherited socket
       before the workers close the inherited sockets nobody took. */
    if (start_admin(&m, cfg) < 0)            /* bound before the drop, like the listeners */
        return 1;
    if (xf_workers_create(cfg, tls, &m.workers, err, sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront: %s\n", err);
        return 1;
    }
    /* Every listener is bound and every key loaded; no thread runs yet. */
    if (xf_privdrop_apply(&pd, err, sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront: %s; exiting (never running on as root)\n", err);
        return 1;
    }
    if (pd.drop)
        xf_info("privileges dropped to user %s (uid %lu, gid %lu)", pd.user,
                (unsigned long)pd.uid, (unsigned long)pd.gid);
    uv_loop_t *loop = uv_default_loop();
    uv_signal_init(loop, &m.sigterm);
    uv_signal_init(loop, &m.sigint);
    uv_signal_init(loop, &m.sighup);
    m.sigterm.data = m.sigint.data = m.sighup.data = &m;
    uv_signal_start(&m.sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&m.sigint, on_stop_signal, SIGINT);
    uv_signal_start(&m.sighup, on_sighup, SIGHUP);
    uv_signal_init(loop, &m.sigusr2);
    m.sigusr2.data = &m;
    uv_signal_start(&m.sigusr2, on_sigusr2, SIGUSR2);
    uv_async_init(loop, &m.done, on_worker_done);
    m.done.data = &m;

    if (xf_workers_start(m.workers, m.n_workers, &m.done) != 0) {
        fprintf(stderr, "xmppfront: cannot start worker threads\n");
        return 1;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const xf_listener_conf *lc = &cfg->listeners[i];
        if (lc->service == XF_SVC_OUTBOUND)
            xf_info("listening on %s (plaintext, outbound: the backends' outgoing s2s%s%s)",
                    lc->name, lc->transparent ? ", transparent" : "",
                    lc->allow_public ? ", public peers allowed" : "");
        else
            xf_info("listening on %s (%s, %s)", lc->name,
                    lc->tls == XF_TLS_DIRECT ? "direct TLS" : "STARTTLS",
                    lc->service == XF_SVC_CLIENT ? "client"
                    : lc->service == XF_SVC_SERVER ? "server" : "auto");
    }
    xf_info("xmppfront " XF_VERSION " started: %u workers, %zu tenants", m.n_workers,
            xf_registry_count(cfg->registry));
    const xf_tenant *host = xf_registry_hosting(cfg->registry);
    if (host != NULL)
        xf_info("hosting identity %s (%s%s): served for %zu tenants", host->domain,
                host->cert_path, host->next_cert_path ? ", next certificate loaded" : "",
                hosting_served(cfg->registry));
    char status[96];
    snprintf(status, sizeof(status), "%u workers, %zu tenants", m.n_workers,
             xf_registry_count(cfg->registry));
    xf_sd_ready(status);

    xf_metrics_set_state(XF_MSTATE_READY);  /* listeners bound, configuration loaded */
    xf_upgrade_ready();              /* started by a binary upgrade: the old one drains */
    /* From here the reload controller holds main's reference (cfg is its first
       current snapshot): old snapshots go once their last connection does. */
    m.reload = xf_reload_new(loop, path, cfg, m.workers, m.n_workers);
    if (m.reload == NULL) {
        fprintf(stderr, "xmppfront: out of memory\n");
        return 1;
    }
    cfg = NULL;

    uv_run(loop, UV_RUN_DEFAULT);
    xf_workers_join_and_free(m.workers, m.n_workers);
    uv_loop_close(loop);
    xf_reload_free(m.reload);
    xf_tls_free(tls);
    char counters[512];
    xf_info("stopped; counters: %s", xf_stats_format(counters, sizeof(counters)));
    return 0;
}
