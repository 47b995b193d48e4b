/* dialback: XEP-0185 dialback key generation and verification (XEP-0220 §2.1.2).
   key = hex(HMAC-SHA256(hex(SHA256(secret)), "Receiving Originating StreamID")). */
#ifndef XF_DIALBACK_H
#define XF_DIALBACK_H

#include <stddef.h>

#define XF_DIALBACK_KEY_LEN 64   /* lower-case hex of a SHA-256 HMAC */
#define XF_DIALBACK_ERR_ARG   -1
#define XF_DIALBACK_ERR_CRYPTO -2

/* Writes the 64-hex-digit key plus NUL into out[65]. receiving, originating and
   stream_id must be non-empty and free of spaces (the separator, XEP-0185 §3).
   Returns 0 or a negative XF_DIALBACK_ERR_*. */
int xf_dialback_key(const char *secret, const char *receiving, const char *originating,
                    const char *stream_id, char out[XF_DIALBACK_KEY_LEN + 1]);

/* 1 if `key` (len bytes as received, surrounding XML whitespace allowed; hex digits
   in either case since they encode the same value) equals the key computed for
   the other arguments, compared in constant time; 0 otherwise (also on bad input). */
int xf_dialback_verify(const char *secret, const char *receiving, const char *originating,
                       const char *stream_id, const char *key, size_t len);

#endif
