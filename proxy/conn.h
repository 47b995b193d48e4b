/*
 * conn: one inbound proxied stream — the public side (TCP, then TLS over memory BIOs)
 * and the backend side — driven by one explicit state machine. See conn.c for the
 * states and their transitions.
 */
#ifndef XF_CONN_H
#define XF_CONN_H

#include "proxy/worker.h"

/* Accept one connection from listener l; on any failure the socket is closed and the
   reason logged. */
void xf_conn_accept(xf_listener *l);
/* Start draining: refuse streams that are still negotiating. */
void xf_conn_drain(xf_worker *w);
/* Close every connection of w now (drain deadline). */
void xf_conn_close_all(xf_worker *w, const char *reason);
/* Live connections in the whole process. */
unsigned xf_conn_count(void);
/* Another kind of session (the outbound listener's, proxy/outbound.c) joins (+1) or
   leaves (-1) the process-wide count that limits.max_connections bounds. */
void xf_conn_count_adjust(int delta);

#endif
