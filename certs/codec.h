/* codec: base64 (RFC 4648 §4, standard alphabet) and hex, for POSH fingerprints,
   TLSA data and dialback keys. Pure, no allocation. */
#ifndef XF_CODEC_H
#define XF_CODEC_H

#include <stddef.h>

#define XF_CODEC_ERR_SYNTAX  -1
#define XF_CODEC_ERR_SPACE   -2

/* Padded base64 of in[0..len) into out (NUL-terminated). Returns the text length. */
int xf_b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen);

/* Decodes standard base64 with or without '=' padding (RFC 7711 §3.2's example
   omits it). No whitespace, no URL-safe alphabet, padding only at the end and only
   to a multiple of 4. Returns the number of bytes written, or a negative error. */
int xf_b64_decode(const char *in, size_t len, unsigned char *out, size_t outlen);

/* Lower-case hex of in[0..len) into out (NUL-terminated). Returns 2*len. */
int xf_hex_encode(const unsigned char *in, size_t len, char *out, size_t outlen);

/* Decodes hex (either case); whitespace between digit pairs is ignored (the
   TLSA presentation format, RFC 6698 §2.2, allows it). Returns bytes written. */
int xf_hex_decode(const char *in, size_t len, unsigned char *out, size_t outlen);

#endif
