/*
 * jsonconf: the JSON helpers shared by the configuration parsers (proxy/config.c for
 * the main file, tenants/registry.c for tenant files), on the yajl tree API.
 *
 * Error contract: every helper that can fail returns -1 (or NULL) after writing
 * "FILE: KEY: what is wrong" into the context's err buffer (truncated to errlen; nothing
 * is written when err is NULL or errlen is 0). FILE is xf_jconf.file, KEY a path such as
 * "listeners[2].port", or "(document)" for errors about the file as a whole.
 *
 * Values returned from a yajl tree (xf_jconf_get, xf_jconf_get_str) are borrowed: they
 * live as long as the tree, which the caller frees with yajl_tree_free().
 */
#ifndef XF_JSONCONF_H
#define XF_JSONCONF_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

#define XF_JCONF_MAX_DEPTH 32          /* yajl_tree_free recurses: bound nesting */

/* Where errors go. file names the document in messages (and is the file that
   xf_jconf_read_file opens); none of the pointers is owned. */
typedef struct xf_jconf {
    const char *file;
    char *err;
    size_t errlen;
} xf_jconf;

/* Write "FILE: KEY: " followed by the formatted text into p->err. Always returns -1, so
   callers can `return xf_jconf_fail(...)`. */
__attribute__((format(printf, 3, 4)))
int xf_jconf_fail(const xf_jconf *p, const char *key, const char *fmt, ...);

/* "a string", "a number", "an object", "an array", "a boolean" or "null" (also for a
   NULL v), for messages such as "must be an integer, not a string". */
const char *xf_jconf_type_name(yajl_val v);

/* Parse len bytes (need not be NUL-terminated) into a yajl tree whose root must be a
   JSON object. Rejects, with a "(document)" error, a NUL byte, nesting deeper than
   XF_JCONF_MAX_DEPTH, invalid JSON (first line of yajl's message) and a non-object
   root. Returns the tree, owned by the caller (yajl_tree_free), or NULL. */
yajl_val xf_jconf_parse_object(const xf_jconf *p, const char *json, size_t len);

/* Every key of object o must be in known (NULL-terminated) and appear only once;
   otherwise "unknown key" / "duplicate key" for the first offending key.
   where: prefix of the KEY in messages ("" for the top level, "limits.",
   "listeners[2]."); the prefixed KEY is cut to 159 bytes. where NULL: the KEY is the
   bare key, uncut. */
int xf_jconf_check_keys(const xf_jconf *p, yajl_val o, const char *where,
                        const char *const *known);

/* Value of key k in object o (the first one if repeated), or NULL when absent.
   Borrowed from the tree. */
yajl_val xf_jconf_get(yajl_val o, const char *k);

/* Integer member k of object o, in [lo, hi] (lo >= 0, hi <= UINT_MAX). Absent: returns
   0 and leaves *out unchanged. key is the KEY for messages; NULL means k. */
int xf_jconf_get_uint(const xf_jconf *p, yajl_val o, const char *k, const char *key,
                      long long lo, long long hi, unsigned *out);

/* Non-empty string member k of object o. Absent: returns 0 with *out NULL. *out is
   borrowed from the tree (copy it to keep it). key is the KEY for messages; NULL
   means k. */
int xf_jconf_get_str(const xf_jconf *p, yajl_val o, const char *k, const char *key,
                     const char **out);

/* rel resolved against the directory of file: an absolute rel is kept, a file without
   a directory part leaves rel as is (relative to the working directory), "/x.json"
   gives "/rel". Returns a malloc'd string the caller frees, or NULL when out of
   memory. Reports nothing. */
char *xf_jconf_resolve_path(const char *file, const char *rel);

/* Read the whole of p->file into a malloc'd buffer (*buf, owned by the caller, not
   NUL-terminated; *len bytes). Errors, KEY "(document)": "cannot open: ERRNO TEXT",
   "out of memory", "read error", and "larger than " too_large (for example "1 MiB")
   when the file has more than max bytes. *buf and *len are untouched on error. */
int xf_jconf_read_file(const xf_jconf *p, size_t max, const char *too_large,
                       char **buf, size_t *len);

#endif
