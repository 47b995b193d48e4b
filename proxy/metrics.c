/* metrics: see metrics.h. Storage: SHARDS copies of one flat int64 array (every series
   of every fixed family), each on its own cache lines; a thread picks its shard once
   (round robin), so workers do not bounce each other's lines on every byte counted.
   The renderer sums the shards with relaxed loads. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mbedtls/ssl.h>
#include "proxy/metrics.h"
#include "proxy/stats.h"

/* ---------------------------------------------------------------- label values */

static const char *const svc_vals[XF_MSVC__N] = {
    [XF_MSVC_CLIENT] = "client", [XF_MSVC_SERVER] = "server",
    [XF_MSVC_OUTBOUND] = "outbound", [XF_MSVC_HTTP] = "http", [XF_MSVC_AUTO] = "auto" };
static const char *const phase_vals[XF_MPH__N] = {
    [XF_MPH_PRE_TLS] = "pre_tls", [XF_MPH_NEGOTIATING] = "negotiating",
    [XF_MPH_RELAYING] = "relaying", [XF_MPH_CLOSING] = "closing" };
static const char *const side_vals[2] = { "inbound", "outbound" };
static const char *const dir_vals[2] = { "in", "out" };
static const char *const result_vals[2] = { "ok", "failed" };
static const char *const method_vals[2] = { "sasl_external", "dialback" };
static const char *const verdict_vals[2] = { "ok", "refused" };
static const char *const posh_vals[4] = { "ok", "not_found", "invalid", "error" };
static const char *const backend_vals[XF_MB__N] = {
    [XF_MB_CONNECT_FAILED] = "connect_failed", [XF_MB_TIMEOUT] = "timeout",
    [XF_MB_CLOSED] = "closed" };
static const char *const mode_vals[2] = { "full", "resumed" };
static const char *const admin_vals[XF_MA__N] = {
    "200", "400", "404", "405", "408", "431", "503" };
static const char *const refusal_vals[XF_MR__N] = {
    "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone",
    "host-unknown", "improper-addressing", "internal-server-error", "invalid-from",
    "invalid-namespace", "invalid-xml", "not-authorized", "not-well-formed",
    "policy-violation", "remote-connection-failed", "reset", "resource-constraint",
    "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
    "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type",
    "unsupported-version", "tls_handshake_failure", "tls_protocol_version",
    "tls_no_application_protocol", "tls_unrecognized_name", "tls_decode_error",
    "tls_other", "other" };

/* ---------------------------------------------------------------- families */

typedef struct fam {
    const char *name, *type, *help;
    int nl;                               /* labels: 0..3 */
    const char *lname[3];
    const char *const *lval[3];
    unsigned nv[3];
} fam;

#define L1(a, av) 1, { a }, { av }, { sizeof(av) / sizeof(*(av)) }
#define L2(a, av, b, bv) 2, { a, b }, { av, bv }, \
    { sizeof(av) / sizeof(*(av)), sizeof(bv) / sizeof(*(bv)) }
#define L3(a, av, b, bv, c, cv) 3, { a, b, c }, { av, bv, cv }, \
    { sizeof(av) / sizeof(*(av)), sizeof(bv) / sizeof(*(bv)), sizeof(cv) / sizeof(*(cv)) }
#define L0 0, { 0 }, { 0 }, { 0 }

static const fam fams[XF_MF__N] = {
    [XF_MF_CONNECTIONS] = { "xmppfront_connections", "gauge",
        "Live connections by service and state.",
        L2("service", svc_vals, "state", phase_vals) },
    [XF_MF_ACCEPTED] = { "xmppfront_connections_accepted_total", "counter",
        "Connections accepted, by the listener's service.",
        L1("service", svc_vals) },
    [XF_MF_HANDSHAKES] = { "xmppfront_handshakes_total", "counter",
        "TLS handshakes finished, by side (inbound: public connections; outbound: "
        "streams xmppfront opened) and result.",
        L2("side", side_vals, "result", result_vals) },
    [XF_MF_REFUSALS] = { "xmppfront_refusals_total", "counter",
        "Streams refused or ended by xmppfront: stream error condition (RFC 6120 4.9.3), "
        "TLS handshake failure, or limit at accept.",
        L1("reason", refusal_vals) },
    [XF_MF_BYTES] = { "xmppfront_bytes_total", "counter",
        "Plaintext bytes on the public side of inbound streams (in: from the peer).",
        L1("direction", dir_vals) },
    [XF_MF_BACKEND_ERRORS] = { "xmppfront_backend_errors_total", "counter",
        "Failures reaching a tenant's backend.", L1("reason", backend_vals) },
    [XF_MF_S2S_AUTH] = { "xmppfront_s2s_auth_total", "counter",
        "Server-to-server authentications decided by xmppfront (in: remote peers; out: "
        "streams xmppfront opened).",
        L3("direction", dir_vals, "method", method_vals, "verdict", verdict_vals) },
    [XF_MF_DNS_QUERIES] = { "xmppfront_dns_queries_total", "counter",
        "DNS queries sent to a resolver.", L0 },
    [XF_MF_DNS_CACHE_HITS] = { "xmppfront_dns_cache_hits_total", "counter",
        "DNS lookups answered from the workers' caches.", L0 },
    [XF_MF_POSH_FETCHES] = { "xmppfront_posh_fetches_total", "counter",
        "POSH documents fetched over HTTPS (RFC 7711), by result.",
        L1("result", posh_vals) },
    [XF_MF_POSH_CACHE_HITS] = { "xmppfront_posh_cache_hits_total", "counter",
        "POSH lookups answered from the cache.", L0 },
    [XF_MF_ADMIN_REQUESTS] = { "xmppfront_admin_requests_total", "counter",
        "Requests answered by the admin listener, by status code.",
        L1("code", admin_vals) },
    [XF_MF_TLS_RESUMPTION] = { "xmppfront_tls_resumption_total", "counter",
        "Inbound TLS handshakes completed, by mode (full: certificate and key exchange; "
        "resumed: session ticket, RFC 8446 2.2 / RFC 5077).",
        L1("mode", mode_vals) },
};

static unsigned fam_size(const fam *f)
{
    unsigned n = 1;
    for (int i = 0; i < f->nl; i++)
        n *= f->nv[i];
    return n;
}

/* Series per family, as constants (checked against the table at init). */
#define N_CONN (XF_MSVC__N * XF_MPH__N)
enum {
    B_CONN = 0, B_ACC = B_CONN + N_CONN, B_HS = B_ACC + XF_MSVC__N, B_REF = B_HS + 4,
    B_BYTES = B_REF + XF_MR__N, B_BE = B_BYTES + 2, B_S2S = B_BE + XF_MB__N,
    B_DNSQ = B_S2S + 8, B_DNSH = B_DNSQ + 1, B_POSH = B_DNSH + 1, B_POSHH = B_POSH + 4,
    B_ADMIN = B_POSHH + 1, B_RESUME = B_ADMIN + XF_MA__N, N_SERIES = B_RESUME + 2
};
static const unsigned fam_base[XF_MF__N + 1] = {
    B_CONN, B_ACC, B_HS, B_REF, B_BYTES, B_BE, B_S2S, B_DNSQ, B_DNSH, B_POSH, B_POSHH,
    B_ADMIN, B_RESUME, N_SERIES };

#define SHARDS 16
typedef struct shard {
    _Alignas(64) int64_t v[N_SERIES];
} shard;
static shard shards[SHARDS];
static unsigned next_shard;
static _Thread_local int my_shard = -1;

static int64_t *series(unsigned idx)
{
    if (my_shard < 0)
        my_shard = (int)(__atomic_fetch_add(&next_shard, 1, __ATOMIC_RELAXED) % SHARDS);
    return &shards[my_shard].v[idx];
}

void xf_metrics_add(enum xf_mfam f, unsigned i, int64_t n)
{
    if ((unsigned)f >= XF_MF__N || i >= fam_base[f + 1] - fam_base[f])
        return;
    __atomic_fetch_add(series(fam_base[f] + i), n, __ATOMIC_RELAXED);
}

int64_t xf_metrics_get(enum xf_mfam f, unsigned i)
{
    if ((unsigned)f >= XF_MF__N || i >= fam_base[f + 1] - fam_base[f])
        return 0;
    int64_t sum = 0;
    for (int s = 0; s < SHARDS; s++)
        sum += __atomic_load_n(&shards[s].v[fam_base[f] + i], __ATOMIC_RELAXED);
    return sum;
}

/* ---------------------------------------------------------------- helpers */

void xf_metrics_conn_move(int *slot, int svc, int ph)
{
    int to = (svc >= 0 && svc < XF_MSVC__N && ph >= 0 && ph < XF_MPH__N)
             ? 1 + svc * XF_MPH__N + ph : 0;
    if (to == *slot)
        return;
    if (*slot > 0)
        xf_metrics_add(XF_MF_CONNECTIONS, (unsigned)(*slot - 1), -1);
    if (to > 0)
        xf_metrics_add(XF_MF_CONNECTIONS, (unsigned)(to - 1), 1);
    *slot = to;
}

void xf_metrics_refusal(const char *cond)
{
    unsigned i = XF_MR_OTHER;
    for (unsigned k = 0; cond != NULL && k < XF_MR_TLS_HANDSHAKE_FAILURE; k++)
        if (strcmp(cond, refusal_vals[k]) == 0) {
            i = k;
            break;
        }
    xf_metrics_inc(XF_MF_REFUSALS, i);
}

/* The refusal reason of a failed server-side handshake (mbedTLS error -> the alert it
   sent, RFC 8446 §6.2). */
static unsigned tls_reason(int err)
{
    switch (err) {
    case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE:
    case MBEDTLS_ERR_SSL_BAD_CERTIFICATE:
    case MBEDTLS_ERR_SSL_UNSUPPORTED_EXTENSION:
    case MBEDTLS_ERR_SSL_ILLEGAL_PARAMETER:   return XF_MR_TLS_HANDSHAKE_FAILURE;
    case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION: return XF_MR_TLS_PROTOCOL_VERSION;
    case MBEDTLS_ERR_SSL_NO_APPLICATION_PROTOCOL: return XF_MR_TLS_NO_APPLICATION_PROTOCOL;
    case MBEDTLS_ERR_SSL_UNRECOGNIZED_NAME:   return XF_MR_TLS_UNRECOGNIZED_NAME;
    case MBEDTLS_ERR_SSL_DECODE_ERROR:
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
    case MBEDTLS_ERR_SSL_INVALID_MAC:
    case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:  return XF_MR_TLS_DECODE_ERROR;
    default:                                  return XF_MR_TLS_OTHER;
    }
}

void xf_metrics_handshake(int side, int mbedtls_err)
{
    int out = side == XF_M_OUT;
    xf_metrics_inc(XF_MF_HANDSHAKES, (unsigned)(out * 2 + (mbedtls_err != 0)));
    if (mbedtls_err != 0 && !out)
        xf_metrics_inc(XF_MF_REFUSALS, tls_reason(mbedtls_err));
}

void xf_metrics_s2s_auth(int direction, const char *method, int ok)
{
    unsigned m;
    if (method != NULL && strcmp(method, "sasl-external") == 0)
        m = 0;
    else if (method != NULL && strcmp(method, "dialback") == 0)
        m = 1;
    else
        return;
    xf_metrics_inc(XF_MF_S2S_AUTH, ((direction == XF_M_OUT) * 2 + m) * 2 + (ok ? 0 : 1));
}

/* ---------------------------------------------------------------- process state */

static int proc_state;
static uint64_t n_tenants;
static double start_time;

void xf_metrics_set_state(enum xf_mstate s) { __atomic_store_n(&proc_state, (int)s, __ATOMIC_RELAXED); }
enum xf_mstate xf_metrics_state(void) { return (enum xf_mstate)__atomic_load_n(&proc_state, __ATOMIC_RELAXED); }
void xf_metrics_set_tenants(uint64_t n) { __atomic_store_n(&n_tenants, n, __ATOMIC_RELAXED); }

/* ---------------------------------------------------------------- per tenant */

/* Open addressing over XF_METRICS_TENANTS_MAX slots, keyed by the tenant's domain; one
   more row, "(other)", takes the connections of tenants that find the table full.
   A slot is claimed once (state 0 -> 1 by CAS, name written, state 2 with release)
   and never freed: a tenant removed by a reload keeps its row at 0 until restart. */
enum { T_SVCS = 3 };                      /* client, server, http */
typedef struct tslot {
    int state;
    char name[XF_METRICS_TENANT_NAME_MAX + 1];
    int64_t n[T_SVCS];
} tslot;
static tslot *tenants;                    /* XF_METRICS_TENANTS_MAX + 1, or NULL */

int xf_metrics_init(int per_tenant)
{
    _Static_assert(sizeof(refusal_vals) / sizeof(*refusal_vals) == XF_MR__N, "refusals");
    for (int f = 0; f < XF_MF__N; f++)
        if (fam_size(&fams[f]) != fam_base[f + 1] - fam_base[f])
            abort();                      /* a family's labels and its series disagree */
    if (start_time == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    }
    if (per_tenant && tenants == NULL) {
        tenants = calloc(XF_METRICS_TENANTS_MAX + 1, sizeof(*tenants));
        if (tenants == NULL)
            return -1;
        snprintf(tenants[XF_METRICS_TENANTS_MAX].name, sizeof(tenants->name), "(other)");
        tenants[XF_METRICS_TENANTS_MAX].state = 2;
    }
    return 0;
}

void xf_metrics_shutdown(void)
{
    free(tenants);
    tenants = NULL;
}

static unsigned tenant_find(const char *d)
{
    size_t len = strlen(d);
    if (len > XF_METRICS_TENANT_NAME_MAX)
        return XF_METRICS_TENANTS_MAX;
    uint32_t h = 2166136261u;             /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)d[i]) * 16777619u;
    for (unsigned probe = 0; probe < XF_METRICS_TENANTS_MAX; probe++) {
        tslot *t = &tenants[(h + probe) % XF_METRICS_TENANTS_MAX];
        int st = __atomic_load_n(&t->state, __ATOMIC_ACQUIRE);
        if (st == 0) {
            int zero = 0;
            if (__atomic_compare_exchange_n(&t->state, &zero, 1, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
                memcpy(t->name, d, len + 1);
                __atomic_store_n(&t->state, 2, __ATOMIC_RELEASE);
                return (unsigned)(t - tenants);
            }
            st = zero;
        }
        /* Another thread is writing this slot's name: a few stores, wait for them
           (bounded; past the bound the connection counts as "(other)"). */
        for (int spin = 0; st == 1 && spin < 100000; spin++)
            st = __atomic_load_n(&t->state, __ATOMIC_ACQUIRE);
        if (st != 2)
            return XF_METRICS_TENANTS_MAX;
        if (strcmp(t->name, d) == 0)
            return (unsigned)(t - tenants);
    }
    return XF_METRICS_TENANTS_MAX;
}

void xf_metrics_tenant_enter(int *slot, const char *domain, int svc)
{
    int s = svc == XF_MSVC_CLIENT ? 0 : svc == XF_MSVC_SERVER ? 1 : svc == XF_MSVC_HTTP ? 2 : -1;
    if (tenants == NULL || domain == NULL || s < 0 || *slot != 0)
        return;
    unsigned i = tenant_find(domain);
    __atomic_fetch_add(&tenants[i].n[s], 1, __ATOMIC_RELAXED);
    *slot = 1 + (int)i * T_SVCS + s;
}

void xf_metrics_tenant_leave(int *slot)
{
    if (tenants == NULL || *slot <= 0)
        return;
    int v = *slot - 1;
    __atomic_fetch_sub(&tenants[v / T_SVCS].n[v % T_SVCS], 1, __ATOMIC_RELAXED);
    *slot = 0;
}

/* ---------------------------------------------------------------- rendering */

static int esc(xf_buf *out, const char *s, size_t len, int quote)
{
    if (len == 0)
        return 0;
    char *w = xf_buf_reserve(out, len * 2);
    if (w == NULL)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '\\' || ch == '\n' || (quote && ch == '"')) {
            w[n++] = '\\';
            w[n++] = ch == '\n' ? 'n' : ch;
        } else {
            w[n++] = ch;
        }
    }
    xf_buf_commit(out, n);
    return 0;
}

int xf_metrics_escape_label(xf_buf *out, const char *s, size_t len) { return esc(out, s, len, 1); }
int xf_metrics_escape_help(xf_buf *out, const char *s, size_t len) { return esc(out, s, len, 0); }

__attribute__((format(printf, 2, 3)))
static int put(xf_buf *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *w = n < 0 ? NULL : xf_buf_reserve(out, (size_t)n + 1);
    if (w == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(w, (size_t)n + 1, fmt, ap);
    va_end(ap);
    xf_buf_commit(out, (size_t)n);
    return 0;
}

static int head(xf_buf *out, const char *name, const char *type, const char *help)
{
    if (put(out, "# HELP %s ", name) < 0 || xf_metrics_escape_help(out, help, strlen(help)) < 0)
        return -1;
    return put(out, "\n# TYPE %s %s\n", name, type);
}

/* One sample: name{l0="v0",...} value. */
static int sample(xf_buf *out, const char *name, int nl, const char *const *ln,
                  const char *const *lv, long long v)
{
    if (put(out, "%s", name) < 0)
        return -1;
    for (int i = 0; i < nl; i++) {
        if (put(out, "%s%s=\"", i ? "," : "{", ln[i]) < 0 ||
            xf_metrics_escape_label(out, lv[i], strlen(lv[i])) < 0 || put(out, "\"") < 0)
            return -1;
    }
    return put(out, "%s %lld\n", nl ? "}" : "", v);
}

static int render_fam(xf_buf *out, enum xf_mfam f)
{
    const fam *m = &fams[f];
    if (head(out, m->name, m->type, m->help) < 0)
        return -1;
    unsigned n = fam_size(m);
    for (unsigned i = 0; i < n; i++) {
        const char *lv[3];
        unsigned rest = i;
        for (int l = m->nl - 1; l >= 0; l--) {
            lv[l] = m->lval[l][rest % m->nv[l]];
            rest /= m->nv[l];
        }
        if (sample(out, m->name, m->nl, m->lname, lv, (long long)xf_metrics_get(f, i)) < 0)
            return -1;
    }
    if (f == XF_MF_REFUSALS) {            /* the limits at accept, from proxy/stats.h */
        static const char *const ln[1] = { "reason" };
        static const struct { const char *v; enum xf_stat s; } lim[] = {
            { "max_connections", XF_STAT_REFUSED_GLOBAL },
            { "max_connections_per_ip", XF_STAT_REFUSED_PER_IP },
            { "max_unauthenticated_per_ip", XF_STAT_REFUSED_UNAUTH_PER_IP } };
        for (size_t k = 0; k < sizeof(lim) / sizeof(*lim); k++)
            if (sample(out, m->name, 1, ln, &lim[k].v, (long long)xf_stats_get(lim[k].s)) < 0)
                return -1;
    }
    return 0;
}

/* A family of proxy/stats.h counters under one label. */
static int render_stats(xf_buf *out, const char *name, const char *help, const char *label,
                        size_t n, const char *const *vals, const enum xf_stat *st)
{
    if (head(out, name, "counter", help) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (sample(out, name, label ? 1 : 0, &label, &vals[i], (long long)xf_stats_get(st[i])) < 0)
            return -1;
    return 0;
}

static int render_tenants(xf_buf *out)
{
    static const char *const name = "xmppfront_tenant_connections";
    static const char *const ln[2] = { "tenant", "service" };
    static const char *const sv[T_SVCS] = { "client", "server", "http" };
    if (tenants == NULL)
        return 0;
    if (head(out, name, "gauge", "Live routed connections per tenant and service "
             "(admin.per_tenant_metrics).") < 0)
        return -1;
    for (unsigned i = 0; i <= XF_METRICS_TENANTS_MAX; i++) {
        tslot *t = &tenants[i];
        if (__atomic_load_n(&t->state, __ATOMIC_ACQUIRE) != 2)
            continue;
        for (int s = 0; s < T_SVCS; s++) {
            const char *lv[2] = { t->name, sv[s] };
            if (sample(out, name, 2, ln, lv,
                       (long long)__atomic_load_n(&t->n[s], __ATOMIC_RELAXED)) < 0)
                return -1;
        }
    }
    return 0;
}

int xf_metrics_render(xf_buf *out, const char *version)
{
    static const char *const ln_version[1] = { "version" };
    static const char *const ln_event[1] = { "event" };
    int st = (int)xf_metrics_state();
    if (head(out, "xmppfront_build_info", "gauge", "Always 1; the version as a label.") < 0 ||
        sample(out, "xmppfront_build_info", 1, ln_version, &version, 1) < 0 ||
        head(out, "process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch in seconds.") < 0 ||
        put(out, "process_start_time_seconds %.3f\n", start_time) < 0 ||
        head(out, "xmppfront_ready", "gauge", "1 while /readyz answers 200 (listeners up, "
             "configuration loaded, not draining).") < 0 ||
        put(out, "xmppfront_ready %d\n", st == XF_MSTATE_READY) < 0 ||
        head(out, "xmppfront_draining", "gauge", "1 after SIGTERM, while streams drain.") < 0 ||
        put(out, "xmppfront_draining %d\n", st == XF_MSTATE_DRAINING) < 0 ||
        head(out, "xmppfront_tenants", "gauge", "Tenants in the configuration in service.") < 0 ||
        put(out, "xmppfront_tenants %llu\n",
            (unsigned long long)__atomic_load_n(&n_tenants, __ATOMIC_RELAXED)) < 0)
        return -1;
    for (int f = 0; f < XF_MF__N; f++)
        if (render_fam(out, (enum xf_mfam)f) < 0)
            return -1;
    static const char *const rv[2] = { "ok", "failed" }, *const uv[2] = { "started", "failed" };
    static const enum xf_stat rs[2] = { XF_STAT_RELOAD_OK, XF_STAT_RELOAD_FAILED };
    static const enum xf_stat us[2] = { XF_STAT_UPGRADE_STARTED, XF_STAT_UPGRADE_FAILED };
    if (render_stats(out, "xmppfront_reloads_total", "Configuration reloads, by result "
                     "(failed: refused, the old configuration stays).", "result", 2, rv, rs) < 0 ||
        render_stats(out, "xmppfront_upgrades_total", "Binary upgrades begun and failed.",
                     "result", 2, uv, us) < 0 ||
        head(out, "xmppfront_events_total", "counter",
             "Every proxy/stats.h counter under its log name (also in the stop log line).") < 0)
        return -1;
    for (int s = 0; s < XF_STAT__COUNT; s++) {
        const char *v = xf_stats_name((enum xf_stat)s);
        if (sample(out, "xmppfront_events_total", 1, ln_event, &v,
                   (long long)xf_stats_get((enum xf_stat)s)) < 0)
            return -1;
    }
    return render_tenants(out);
}
