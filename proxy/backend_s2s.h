/*
 * backend_s2s: the assertion of a remote domain to a tenant's plaintext s2s backend
 * (design.md §2 "INBOUND", steps 2-4). Once xmppfront has authenticated a remote
 * domain R for a hosted domain T, it opens the backend stream as if it were R:
 *
 *   -> <stream:stream xmlns='jabber:server' xmlns:db=... from=R to=T version='1.0'>
 *   <- the backend's header (its id BID) and features
 *   -> <db:result from=R to=T>B</db:result>, B = xf_dialback_key(secret, T, R, BID)
 *   <- <db:result from=T to=R type='valid'/>  (the backend verified B with "R's
 *      authoritative server", which is xmppfront's outbound listener: its <db:verify/>
 *      is answered with the same secret, proxy/outbound.c)
 *
 * and then carries stanzas. A further pair (R2, T2) on the same backend stream is one
 * more <db:result/> (XEP-0220 §4 piggybacking).
 *
 * No I/O: the caller owns the socket, writes what `send` gets, and feeds the backend's
 * bytes to xf_bs2s_input (so the inbound connection's watermarks and the outbound
 * session's own socket both work with it). Used by proxy/s2s_in.c, and by the outbound
 * side for streams between two hosted tenants.
 */
#ifndef XF_BACKEND_S2S_H
#define XF_BACKEND_S2S_H

#include <stddef.h>
#include "proxy/s2s.h"

typedef struct xf_bs2s xf_bs2s;

typedef struct xf_bs2s_ops {
    /* Bytes for the backend (the header, the <db:result/> requests). 0, or -1 when the
       caller is closing (input stops at once). */
    int (*send)(void *ud, const char *data, size_t len);
    /* Backend stream bytes for the remote: whole first-level elements (stanzas) and
       nothing of the dialback exchange; only once some pair is valid (a backend that
       sends stanzas earlier is broken: they are dropped, with a debug line). 0, or -1
       when the caller is closing. */
    int (*forward)(void *ud, const char *data, size_t len);
    /* The backend's answer for the asserted pair (remote, local): XF_DB_TYPE_VALID,
       _INVALID or _ERROR (err then says which, when the backend gave one). Unsolicited
       answers never get here. Return -1 when closing. */
    int (*pair)(void *ud, const char *remote, const char *local, enum xf_db_type type,
                enum xf_db_error err);
    /* The backend stream failed (stream error, end, bad XML, missing id): `reason` for
       the log. Nothing is called after it. */
    void (*fail)(void *ud, const char *reason);
} xf_bs2s_ops;

/* A backend stream from `remote` (R) to `local` (T), the first pair. max_element bounds
   one backend element (the backend is trusted, but memory is still ours). NULL on no
   memory or an empty argument. The strings are copied. */
xf_bs2s *xf_bs2s_new(const char *secret, const char *remote, const char *local,
                     size_t max_element, const xf_bs2s_ops *ops, void *ud);
void xf_bs2s_free(xf_bs2s *b);

/* Start: sends the stream header. 0 or -1 (send failed). */
int xf_bs2s_start(xf_bs2s *b);
/* Assert one more pair on this stream (piggybacking): its <db:result/> goes out now if
   the backend's features have arrived, else with the first. 0; -1 on no memory, an
   empty argument or a full table (max 16 pairs); -2 when the pair is already asserted. */
int xf_bs2s_assert(xf_bs2s *b, const char *remote, const char *local);
/* The backend's bytes, in order. Calls ops. Returns 0, or -1 once the stream failed or
   a callback returned -1 (then the caller stops feeding). */
int xf_bs2s_input(xf_bs2s *b, const char *data, size_t len);

/* The backend's stream id, "" until its header arrived. */
const char *xf_bs2s_backend_id(const xf_bs2s *b);
/* 1 when (remote, local) was answered valid by the backend. */
int xf_bs2s_pair_valid(const xf_bs2s *b, const char *remote, const char *local);
unsigned xf_bs2s_valid_count(const xf_bs2s *b);

#endif
