/* log: one line per event on stderr, "TIME LEVEL message". Thread-safe (one write per line).
 * Formats (docs/process.md):
 *   text     TIME LEVEL message            (default)
 *   json     {"time":..,"level":..,"message":..,KEY:VALUE...}: the message's key=value
 *            fields (as a key=value parser of the text line sees them: `key=value` or
 *            `key="quoted"` after a space; quoted values unescaped) become members,
 *            unquoted all-digit values numbers. Generated with yajl_gen, so control
 *            bytes are \u00XX escapes and invalid UTF-8 bytes the text \xNN.
 *   journal  when stderr is the journal (JOURNAL_STREAM, systemd.exec(5)), each line,
 *            in either format, starts with its sd-daemon(3) priority: <3> error,
 *            <4> warn, <6> info, <7> debug; text lines then carry no timestamp. */
#ifndef XF_LOG_H
#define XF_LOG_H

#include <stddef.h>

enum xf_log_level { XF_LOG_DEBUG = 0, XF_LOG_INFO, XF_LOG_WARN, XF_LOG_ERROR };

void xf_log_set_level(int level);
/* "debug" | "info" | "warn" | "error" -> level, or -1. */
int xf_log_parse_level(const char *name);
int xf_log_enabled(int level);

enum xf_log_format { XF_LOG_TEXT = 0, XF_LOG_JSON = 1 };
void xf_log_set_format(int format);
/* 1 when JOURNAL_STREAM names stderr's device and inode (run by systemd with
   StandardError=journal): sets the priority prefix on, and returns 1; else 0. */
int xf_log_detect_journal(void);
void xf_log_set_journal(int on);
/* Startup: hold lines (in memory, up to 64) until xf_log_release(), so that lines
   logged while the configuration loads come out in its log_format. Release also runs
   at exit. Single-threaded use only (before the workers start). */
void xf_log_hold(void);
void xf_log_release(void);
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
