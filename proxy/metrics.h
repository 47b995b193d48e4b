/*
 * metrics: the process's labelled counters and gauges for the admin listener's /metrics
 * (proxy/admin.h), and their rendering in the Prometheus text exposition format 0.0.4.
 * docs/metrics.md lists every family, its labels and its cardinality.
 *
 * Contract for the data path (workers): every update is one relaxed atomic add into a
 * fixed array indexed by enums, in the calling thread's shard (no lock, no allocation,
 * no ordering promised with other memory). Label sets are fixed at compile time, except
 * the per-tenant family, which exists only with "admin": {"per_tenant_metrics": true}
 * and is bounded by XF_METRICS_TENANTS_MAX rows (more tenants share one "(other)" row).
 * The renderer (admin listener, main loop) sums the shards: a scrape sees a relaxed
 * snapshot in which a gauge may lag a moment behind a counter.
 */
#ifndef XF_METRICS_H
#define XF_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "proxy/buf.h"

/* service label of the connection families; AUTO = a service "auto" listener's
   connection whose service is not known yet (before its stream header or ALPN). */
enum xf_msvc { XF_MSVC_CLIENT, XF_MSVC_SERVER, XF_MSVC_OUTBOUND, XF_MSVC_HTTP, XF_MSVC_AUTO,
               XF_MSVC__N };
/* state label of xmppfront_connections: PRE_TLS = STARTTLS port before TLS (incl. a
   plaintext s2s stream of an "open" tenant until routed), NEGOTIATING = TLS handshake,
   stream header, backend connect, authentication not yet relayed, RELAYING = bytes both
   ways, CLOSING = flushing a stream error / linger. */
enum xf_mphase { XF_MPH_PRE_TLS, XF_MPH_NEGOTIATING, XF_MPH_RELAYING, XF_MPH_CLOSING,
                 XF_MPH__N, XF_MPH_NONE = -1 };

/* The fixed families (their series are the product of their label values). */
enum xf_mfam {
    XF_MF_CONNECTIONS,       /* gauge   service x state */
    XF_MF_ACCEPTED,          /* counter service (of the listener: client/server/outbound/auto) */
    XF_MF_HANDSHAKES,        /* counter side (inbound/outbound) x result (ok/failed) */
    XF_MF_REFUSALS,          /* counter reason (enum xf_mrefusal) */
    XF_MF_BYTES,             /* counter direction (in/out): inbound streams' public side */
    XF_MF_BACKEND_ERRORS,    /* counter reason (enum xf_mbackend) */
    XF_MF_S2S_AUTH,          /* counter direction (in/out) x method x verdict */
    XF_MF_DNS_QUERIES,       /* counter: queries sent to a resolver */
    XF_MF_DNS_CACHE_HITS,    /* counter: answered from the worker's cache */
    XF_MF_POSH_FETCHES,      /* counter result (ok/not_found/invalid/error) */
    XF_MF_POSH_CACHE_HITS,   /* counter */
    XF_MF_ADMIN_REQUESTS,    /* counter code (enum xf_madmin) */
    XF_MF_TLS_RESUMPTION,    /* counter mode (full/resumed): inbound handshakes done */
    XF_MF__N
};

/* reason label of xmppfront_refusals_total: the stream error conditions of RFC 6120
   §4.9.3 (label value = the element name), TLS handshake failures by the alert mbedTLS
   sent or the error it saw, and "other". The limit refusals at accept
   (max_connections, max_connections_per_ip, max_unauthenticated_per_ip) come from
   proxy/stats.h and are rendered into the same family. */
enum xf_mrefusal {
    XF_MR_BAD_FORMAT, XF_MR_BAD_NAMESPACE_PREFIX, XF_MR_CONFLICT, XF_MR_CONNECTION_TIMEOUT,
    XF_MR_HOST_GONE, XF_MR_HOST_UNKNOWN, XF_MR_IMPROPER_ADDRESSING,
    XF_MR_INTERNAL_SERVER_ERROR, XF_MR_INVALID_FROM, XF_MR_INVALID_NAMESPACE,
    XF_MR_INVALID_XML, XF_MR_NOT_AUTHORIZED, XF_MR_NOT_WELL_FORMED, XF_MR_POLICY_VIOLATION,
    XF_MR_REMOTE_CONNECTION_FAILED, XF_MR_RESET, XF_MR_RESOURCE_CONSTRAINT,
    XF_MR_RESTRICTED_XML, XF_MR_SEE_OTHER_HOST, XF_MR_SYSTEM_SHUTDOWN,
    XF_MR_UNDEFINED_CONDITION, XF_MR_UNSUPPORTED_ENCODING, XF_MR_UNSUPPORTED_FEATURE,
    XF_MR_UNSUPPORTED_STANZA_TYPE, XF_MR_UNSUPPORTED_VERSION,
    XF_MR_TLS_HANDSHAKE_FAILURE,     /* no shared cipher/group/signature, bad certificate */
    XF_MR_TLS_PROTOCOL_VERSION,      /* the client's TLS versions are not ours */
    XF_MR_TLS_NO_APPLICATION_PROTOCOL, /* ALPN without a protocol we serve */
    XF_MR_TLS_UNRECOGNIZED_NAME,     /* SNI names no tenant and there is no hosting */
    XF_MR_TLS_DECODE_ERROR,          /* not TLS, or malformed records */
    XF_MR_TLS_OTHER,
    XF_MR_OTHER,
    XF_MR__N
};

/* reason label of xmppfront_backend_errors_total (inbound streams' tenant backends). */
enum xf_mbackend { XF_MB_CONNECT_FAILED, XF_MB_TIMEOUT, XF_MB_CLOSED, XF_MB__N };

/* code label of xmppfront_admin_requests_total. */
enum xf_madmin { XF_MA_200, XF_MA_400, XF_MA_404, XF_MA_405, XF_MA_408, XF_MA_431,
                 XF_MA_503, XF_MA__N };

enum { XF_M_IN = 0, XF_M_OUT = 1 };            /* direction / side labels */

/* Process state for /readyz and xmppfront_ready. */
enum xf_mstate { XF_MSTATE_STARTING, XF_MSTATE_READY, XF_MSTATE_DRAINING };

#define XF_METRICS_TENANTS_MAX 4096
#define XF_METRICS_TENANT_NAME_MAX 253

/* Before any worker starts (main thread): per_tenant 1 allocates the per-tenant table.
   Returns 0, or -1 when out of memory. Calling it again is a no-op. */
int xf_metrics_init(int per_tenant);
/* Free the per-tenant table (after the workers have ended). */
void xf_metrics_shutdown(void);

/* Series `i` (0 .. the family's label product - 1, row-major in the label order of
   the comment above) of family f gains n (gauges: n may be negative). Out-of-range f or
   i is ignored. */
void xf_metrics_add(enum xf_mfam f, unsigned i, int64_t n);
static inline void xf_metrics_inc(enum xf_mfam f, unsigned i) { xf_metrics_add(f, i, 1); }
/* The current value (sum of shards); for tests and the renderer. */
int64_t xf_metrics_get(enum xf_mfam f, unsigned i);

/* A connection's place in xmppfront_connections: *slot (0 = not counted; the all-zero
   connection struct starts there) moves to (svc, ph); ph XF_MPH_NONE removes it. Only
   the thread that owns the connection calls this. */
void xf_metrics_conn_move(int *slot, int svc, int ph);
/* A stream error sent with condition cond (RFC 6120 §4.9.3 name; unknown -> "other"). */
void xf_metrics_refusal(const char *cond);
/* A TLS handshake (side XF_M_IN: a public connection; XF_M_OUT: a stream xmppfront
   opened) ended: mbedtls_err 0 = ok, else failed; an inbound failure is also a
   refusal with its tls_* reason. */
void xf_metrics_handshake(int side, int mbedtls_err);
/* An s2s authentication decided. method "sasl-external" or "dialback" (as logged in
   auth=; anything else is not counted); ok 1 = accepted, 0 = refused. */
void xf_metrics_s2s_auth(int direction, const char *method, int ok);

/* Per-tenant connections (only when enabled): a connection routed to `domain` with
   service svc (CLIENT/SERVER/HTTP) enters; *slot records where (0 = none) and leave
   takes it out again. No-ops when the table is off. */
void xf_metrics_tenant_enter(int *slot, const char *domain, int svc);
void xf_metrics_tenant_leave(int *slot);

void xf_metrics_set_state(enum xf_mstate s);
enum xf_mstate xf_metrics_state(void);
/* Tenants in the configuration in service (xmppfront_tenants); set by main / reload. */
void xf_metrics_set_tenants(uint64_t n);

/* Append the whole exposition (every family, HELP and TYPE lines, the proxy/stats.h
   counters, build info with `version`, process start time) to out. Returns 0, or -1
   when out of memory. */
int xf_metrics_render(xf_buf *out, const char *version);

/* Label value escaping of the text format: backslash, double quote and line feed become
   \\ \" \n; everything else is copied. HELP text escaping: backslash and line feed
   only. Both append to out; return 0, or -1 when out of memory. */
int xf_metrics_escape_label(xf_buf *out, const char *s, size_t len);
int xf_metrics_escape_help(xf_buf *out, const char *s, size_t len);

#endif
