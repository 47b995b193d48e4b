/*
 * idna: domain name normalisation for identity comparison (RFC 6125 §6.4.2,
 * RFC 5890/5891 A-labels) and RFC 3492 Punycode encoding.
 *
 * Scope, stated plainly: a U-label is converted to its A-label by folding ASCII
 * letters to lower case and Punycode-encoding the code points. The full IDNA2008
 * mapping (case folding of non-ASCII letters, NFC, the bidi and contextual rules)
 * is NOT done; a name that needs those steps will simply not compare equal.
 * Pure: no I/O, no allocation.
 */
#ifndef XF_IDNA_H
#define XF_IDNA_H

#include <stddef.h>
#include <stdint.h>

#define XF_IDNA_ERR_SYNTAX   -1  /* not a well-formed host name */
#define XF_IDNA_ERR_TOOLONG  -2  /* output does not fit / label or name too long */
#define XF_IDNA_ERR_UTF8     -3  /* malformed UTF-8 */

/* Encodes code points cp[0..n) with RFC 3492 §6.3 (no "xn--" prefix) into out
   (NUL-terminated). Returns the output length, or a negative XF_IDNA_ERR_*. */
int xf_idna_punycode_encode(const uint32_t *cp, size_t n, char *out, size_t outlen);

/* Normalises a reference host name (as typed by an operator or taken from a stream
   `to`/`from`) to the canonical comparison form: one trailing dot removed, ASCII
   lower case, U-labels converted to A-labels, every label LDH (letters, digits,
   hyphen, no leading/trailing hyphen), 1..63 octets per label, at most 253 in all.
   `*` and `_` are refused. Returns the length written to out, or a negative error. */
int xf_idna_normalize(const char *in, char *out, size_t outlen);

/* 1 if s (len bytes) is a syntactically valid normalised LDH label, else 0. */
int xf_idna_is_ldh_label(const char *s, size_t len);

#endif
