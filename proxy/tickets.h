/*
 * tickets: TLS session resumption on the public side (issue 10, docs/tls.md) — the
 * top-level "session_tickets" settings and secret of a snapshot, and the sealed ticket
 * itself: TLS 1.3 NewSessionTicket (RFC 8446 §4.6.1, resumed with psk_dhe_ke only) and
 * TLS 1.2 session tickets (RFC 5077). No server-side state: everything the server needs
 * to resume travels in the ticket, so every worker and every instance that shares the
 * secret resumes every other one's tickets.
 *
 * Keys. The secret (key_file, else 32 random bytes made once per process) never encrypts
 * anything itself: the key of period P = floor(unix_time / rotation_s) is
 *     HKDF-SHA256(IKM = secret, salt = none, info = "xmppfront session ticket" || P)
 * (RFC 5869; P as 8 bytes big-endian), 48 bytes: a 16-byte key name, then the 32-byte
 * AES-256-GCM key. Instances agree on keys without talking to each other; only their
 * clocks must agree. Tickets are issued under the current period's key and accepted
 * under the current and the previous one; the advertised lifetime is rotation_s and a
 * ticket older than that is refused, so a key seals for rotation_s and opens for at most
 * 2 x rotation_s.
 *
 * Ticket layout (RFC 5077 §4's recommendation, with an AEAD):
 *     key_name[16] || nonce[12] || AES-256-GCM(plaintext) || tag[16]
 *     plaintext = format(1) = 1 || tls_version(2) || issued unix ms(8) || session
 *                 (mbedtls_ssl_session_save)
 *     AAD       = key_name || len(1) || name
 * where name is the connection's lower-cased SNI, else the domain of the pre-TLS stream
 * `to` (STARTTLS), else "": the name that chose the certificate. A ticket issued under
 * one tenant's name does not open under another's.
 *
 * Thread safety: an xf_tickets is immutable once loaded (part of the snapshot); seal and
 * open may run on any number of threads at once (the derived keys are cached per thread).
 */
#ifndef XF_TICKETS_H
#define XF_TICKETS_H

#include <stddef.h>
#include <stdint.h>
#include <mbedtls/ssl.h>
#include "tenants/jsonconf.h"

#define XF_TICKETS_ROTATION_DEFAULT 3600u
#define XF_TICKETS_ROTATION_MIN 10u          /* below: resumption would be rare */
#define XF_TICKETS_ROTATION_MAX 86400u       /* RFC 8446 §4.6.1 allows 7 days; a day
                                                bounds what a stolen key opens */
#define XF_TICKETS_SECRET_MIN 32u
#define XF_TICKETS_SECRET_MAX 4096u
#define XF_TICKETS_OVERHEAD (16 + 12 + 11 + 16) /* ticket bytes around the session */

typedef struct xf_tickets xf_tickets;

/* "session_tickets" (v: the value, NULL when absent = true): true, false, or
   {"key_file": PATH (resolved against p->file), "rotation_s": N}. *out is always
   allocated on success (also for false). Returns 0, or -1 with "FILE: KEY: problem". */
int xf_tickets_parse(const xf_jconf *p, yajl_val v, xf_tickets **out);
/* Read the secret into t: key_file (a regular file, not accessible by all users, at
   most XF_TICKETS_SECRET_MAX bytes, trailing whitespace trimmed, at least
   XF_TICKETS_SECRET_MIN bytes left), else the process's random secret. Nothing to do
   when disabled. Returns 0, or -1 with "FILE: session_tickets.key_file: problem". */
int xf_tickets_load(const xf_jconf *p, xf_tickets *t);
/* For tests and the fuzz target: an enabled set over `secret` (copied). NULL on error. */
xf_tickets *xf_tickets_new(const unsigned char *secret, size_t len, unsigned rotation_s);
void xf_tickets_free(xf_tickets *t);

/* 1 when tickets are issued and accepted (NULL: 0). */
int xf_tickets_enabled(const xf_tickets *t);
const char *xf_tickets_key_file(const xf_tickets *t);   /* NULL when none */
unsigned xf_tickets_rotation(const xf_tickets *t);
/* Same settings and the same secret (for the reload report). */
int xf_tickets_same(const xf_tickets *a, const xf_tickets *b);

/* One ticket operation's context (filled by proxy/tls.c from the connection). */
typedef struct xf_tickets_ctx {
    const xf_tickets *keys;
    const char *name;           /* see the AAD above; NUL-terminated, < 256 bytes */
    int tls_version;            /* MBEDTLS_SSL_VERSION_TLS1_2 / _TLS1_3 of the handshake */
    int refuse;                 /* 1: a client certificate is (or may be) asked for on
                                   this connection: seal nothing usable, open nothing */
    int64_t now_ms;             /* Unix time in ms (tests set it; tls.c: the clock) */
} xf_tickets_ctx;

/* mbedtls_ssl_ticket_write_t's work: seal `session` into [start, end), *tlen bytes,
   *lifetime = rotation_s. With ctx->refuse: TLS 1.2 -> MBEDTLS_ERR_SSL_FEATURE_UNAVAILABLE
   (mbedTLS then sends the empty ticket of RFC 5077 §3.3); TLS 1.3 -> 0 with 32 random
   bytes and lifetime 0 ("discard immediately", RFC 8446 §4.6.1), which open() never
   accepts. Other errors: negative mbedTLS codes. */
int xf_tickets_seal(const xf_tickets_ctx *ctx, const mbedtls_ssl_session *session,
                    unsigned char *start, const unsigned char *end, size_t *tlen,
                    uint32_t *lifetime);
/* mbedtls_ssl_ticket_parse_t's work (buf is network input; it is decrypted in place):
   0 and *session loaded, or MBEDTLS_ERR_SSL_INVALID_MAC (unknown key name, wrong name,
   tampered), MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED (older than its lifetime, or from
   the future), MBEDTLS_ERR_SSL_BAD_INPUT_DATA (malformed, other TLS version, refused on
   this connection). For TLS 1.3 the session's ticket_creation_time is re-based on this
   host's clock (mbedTLS compares it with CLOCK_BOOTTIME, which differs between hosts;
   the issue time in the ticket is wall-clock). */
int xf_tickets_open(const xf_tickets_ctx *ctx, mbedtls_ssl_session *session,
                    unsigned char *buf, size_t len);

#endif
