/* log: one line per event on stderr, "TIME LEVEL message". Thread-safe (one write per line). */
#ifndef XF_LOG_H
#define XF_LOG_H

#include <stddef.h>

enum xf_log_level { XF_LOG_DEBUG = 0, XF_LOG_INFO, XF_LOG_WARN, XF_LOG_ERROR };

void xf_log_set_level(int level);
/* "debug" | "info" | "warn" | "error" -> level, or -1. */
int xf_log_parse_level(const char *name);
int xf_log_enabled(int level);
void xf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A log field's value as `"value"`: `"` and `\` become \" and \\, control bytes and DEL
   \xNN, so that text a peer chose (a stream `to`, SNI, ALPN, a reason quoting either)
   can neither end the value nor forge another key=value field or line. Every field that
   can carry peer-controlled text is written `key=%s` with this. NULL or "" -> "-".
   Writes at most cap bytes (cap >= 3) into out, cutting the value at a whole character
   or escape and always closing the quote; returns out. */
const char *xf_log_quote(char *out, size_t cap, const char *s);

#define xf_debug(...) do { if (xf_log_enabled(XF_LOG_DEBUG)) xf_log(XF_LOG_DEBUG, __VA_ARGS__); } while (0)
#define xf_info(...)  xf_log(XF_LOG_INFO, __VA_ARGS__)
#define xf_warn(...)  xf_log(XF_LOG_WARN, __VA_ARGS__)
#define xf_error(...) xf_log(XF_LOG_ERROR, __VA_ARGS__)

#endif
