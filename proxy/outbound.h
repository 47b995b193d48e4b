/*
 * outbound: the backends' outgoing s2s (design.md §1 "Outbound", §2 the dialback
 * bridge). A listener with "service": "outbound", "tls": "none" receives a backend's
 * plaintext server stream — directly, or redirected by a netfilter REDIRECT rule
 * ("transparent": the original destination is logged) — and xmppfront carries it:
 *
 *   backend: <stream from=T to=R>      T must be a hosted tenant
 *   xmppfront: header (fresh id, xmlns:db) + features offering dialback
 *   backend: <db:result from=T to=R>k  k is ignored; xf_remote_open(T, R) does the real
 *                                      work (TLS, verification, SASL EXTERNAL or
 *                                      dialback with xmppfront's key)
 *   xmppfront: <db:result type='valid'/> and relay, or type='error' with the XEP-0220
 *              condition at once, so the backend bounces its stanzas within seconds
 *   backend: <db:verify from=T to=R id=ID>B  a key xmppfront's inbound side asserted
 *              (B = key(T, R, ID)): answered here, nothing leaves for R
 *
 * Only loopback and private peers are served unless the listener says allow_public
 * (an open relay must be impossible by default).
 */
#ifndef XF_OUTBOUND_H
#define XF_OUTBOUND_H

#include <sys/socket.h>
#include "proxy/worker.h"

/* Accept one connection from an outbound listener l. */
void xf_outbound_accept(xf_listener *l);
/* Start draining: sessions not yet relaying get <system-shutdown/>. */
void xf_outbound_drain(xf_worker *w);
/* Close every session of w now. */
void xf_outbound_close_all(xf_worker *w, const char *reason);

/* 1 if sa is a loopback, private (RFC 1918), shared (RFC 6598), link-local or unique
   local (RFC 4193) address — IPv4-mapped IPv6 judged as IPv4 — or allow_public is set;
   0 otherwise. Pure. */
int xf_outbound_peer_allowed(const struct sockaddr *sa, int allow_public);

#endif
