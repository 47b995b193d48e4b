#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include "proxy/log.h"

#define XF_LOG_MSG_MAX 1536

static int log_level = XF_LOG_INFO;
static int log_format = XF_LOG_TEXT;
static int log_journal;
static const char *level_names[] = {"debug", "info", "warn", "error"};
static const char *journal_prio[] = {"<7>", "<6>", "<4>", "<3>"};   /* sd-daemon(3) */

void xf_log_set_level(int level) { __atomic_store_n(&log_level, level, __ATOMIC_RELAXED); }
int xf_log_enabled(int level) { return level >= __atomic_load_n(&log_level, __ATOMIC_RELAXED); }
void xf_log_set_format(int format) { __atomic_store_n(&log_format, format, __ATOMIC_RELAXED); }
void xf_log_set_journal(int on) { __atomic_store_n(&log_journal, on, __ATOMIC_RELAXED); }

int xf_log_detect_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    char tail;
    int on = js != NULL && sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) == 2 &&
             fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
             (unsigned long long)st.st_ino == ino;
    xf_log_set_journal(on);
    return on;
}

int xf_log_parse_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *xf_log_quote(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    if (cap < 3) {
        if (cap > 0)
            out[0] = '\0';
        return out;
    }
    if (s == NULL || s[0] == '\0')
        s = "-";
    out[n++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[4];
        size_t k;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            k = 2;
        } else if (ch < 0x20 || ch == 0x7f) {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[ch >> 4];
            esc[3] = hex[ch & 15];
            k = 4;
        } else {
            esc[0] = (char)ch;
            k = 1;
        }
        if (n + k + 2 > cap)                  /* room for this, the quote and NUL */
            break;
        memcpy(out + n, esc, k);
        n += k;
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

/* "2026-01-01T00:00:00.000Z" into out (>= 32 bytes); returns its length. */
static size_t format_time(char *out, size_t cap, const struct timespec *ts)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(out + n, cap - n, ".%03ldZ", ts->tv_nsec / 1000000);
    return n;
}

/* ---------------------------------------------------------------- json */

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 §3: no overlong forms, no
   surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned cp, min;
    size_t len;
    if (s[0] < 0x80) return 1;
    if ((s[0] & 0xe0) == 0xc0) { len = 2; min = 0x80; cp = s[0] & 0x1fu; }
    else if ((s[0] & 0xf0) == 0xe0) { len = 3; min = 0x800; cp = s[0] & 0x0fu; }
    else if ((s[0] & 0xf8) == 0xf0) { len = 4; min = 0x10000; cp = s[0] & 0x07u; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : len;
}

/* A JSON string of s[0..n): yajl escapes '"', '\' and control bytes; bytes that are not
   UTF-8 become the text \xNN, as in text lines (JSON text must be UTF-8, RFC 8259 §8.1). */
static void gen_text(yajl_gen g, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char buf[4 * XF_LOG_MSG_MAX + 4];
    size_t k = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n && k + 4 < sizeof buf;) {
        size_t l = utf8_seq(u + i, n - i);
        if (l == 0) {
            buf[k++] = '\\';
            buf[k++] = 'x';
            buf[k++] = hex[u[i] >> 4];
            buf[k++] = hex[u[i] & 15];
            i++;
        } else {
            if (k + l >= sizeof buf) break;
            memcpy(buf + k, s + i, l);
            k += l;
            i += l;
        }
    }
    yajl_gen_string(g, (const unsigned char *)buf, k);
}

typedef struct field { const char *key; size_t klen; } field;

/* The key=value field at msg[i..): on success fills *key and *klen, the value's raw span
   (*v, *vlen, quotes excluded), *quoted, and returns the index after it; else 0.
   Mirrors a key=value reader of the text line: key [a-z_][a-z0-9_]*, value either
   "..." with \" \\ \xNN escapes (xf_log_quote) or a run without space or quote,
   followed by a space or the end. */
static size_t parse_field(const char *msg, size_t m, size_t i, const char **key,
                          size_t *klen, const char **v, size_t *vlen, int *quoted)
{
    size_t j = i;
    if (j >= m || !((msg[j] >= 'a' && msg[j] <= 'z') || msg[j] == '_')) return 0;
    while (j < m && ((msg[j] >= 'a' && msg[j] <= 'z') || (msg[j] >= '0' && msg[j] <= '9') ||
                     msg[j] == '_'))
        j++;
    if (j >= m || msg[j] != '=') return 0;
    *key = msg + i;
    *klen = j - i;
    j++;
    if (j < m && msg[j] == '"') {
        size_t s = ++j;
        while (j < m && msg[j] != '"') j += (msg[j] == '\\' && j + 1 < m) ? 2 : 1;
        if (j >= m) return 0;                         /* cut: not a whole value */
        *v = msg + s;
        *vlen = j - s;
        *quoted = 1;
        j++;
    } else {
        size_t s = j;
        while (j < m && msg[j] != ' ' && msg[j] != '"') j++;
        *v = msg + s;
        *vlen = j - s;
        *quoted = 0;
    }
    return (j == m || msg[j] == ' ') ? j : 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Emit one field's value: quoted -> unescaped string; all digits -> number. */
static void gen_value(yajl_gen g, const char *v, size_t n, int quoted)
{
    if (!quoted) {
        size_t d = 0;
        while (d < n && v[d] >= '0' && v[d] <= '9') d++;
        if (d == n && n > 0 && n <= 15 && (v[0] != '0' || n == 1))
            yajl_gen_number(g, v, n);
        else
            gen_text(g, v, n);
        return;
    }
    char buf[XF_LOG_MSG_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof buf; i++) {
        if (v[i] == '\\' && i + 1 < n && (v[i + 1] == '"' || v[i + 1] == '\\')) {
            buf[k++] = v[++i];
        } else if (v[i] == '\\' && i + 3 < n && v[i + 1] == 'x' && hexval(v[i + 2]) >= 0 &&
                   hexval(v[i + 3]) >= 0) {
            buf[k++] = (char)(hexval(v[i + 2]) << 4 | hexval(v[i + 3]));
            i += 3;
        } else {
            buf[k++] = v[i];
        }
    }
    gen_text(g, buf, k);
}

/* One JSON object for the line (no newline) into a yajl generator the caller frees. */
static yajl_gen render_json(int level, const struct timespec *ts, const char *msg, size_t m)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g == NULL) return NULL;
    char t[40];
    size_t tn = format_time(t, sizeof t, ts);
    yajl_gen_map_open(g);
    yajl_gen_string(g, (const unsigned char *)"time", 4);
    yajl_gen_string(g, (const unsigned char *)t, tn);
    yajl_gen_string(g, (const unsigned char *)"level", 5);
    yajl_gen_string(g, (const unsigned char *)level_names[level & 3],
                    strlen(level_names[level & 3]));
    yajl_gen_string(g, (const unsigned char *)"message", 7);
    gen_text(g, msg, m);
    field seen[64] = {{"time", 4}, {"level", 5}, {"message", 7}};
    size_t n_seen = 3;
    for (size_t i = 0; i < m;) {
        const char *k, *v;
        size_t kl, vl, next;
        int quoted;
        if (i == 0 || msg[i - 1] == ' ') {
            next = parse_field(msg, m, i, &k, &kl, &v, &vl, &quoted);
            if (next > 0) {
                int dup = 0;
                for (size_t s = 0; s < n_seen && !dup; s++)
                    dup = seen[s].klen == kl && memcmp(seen[s].key, k, kl) == 0;
                if (!dup && n_seen < sizeof seen / sizeof seen[0]) {
                    seen[n_seen++] = (field){k, kl};
                    yajl_gen_string(g, (const unsigned char *)k, kl);
                    gen_value(g, v, vl, quoted);
                }
                i = next;
                continue;
            }
        }
        i++;
    }
    yajl_gen_map_close(g);
    return g;
}

/* ---------------------------------------------------------------- output */

static void emit(int level, const struct timespec *ts, const char *msg, size_t m)
{
    const int journal = __atomic_load_n(&log_journal, __ATOMIC_RELAXED);
    char line[2048];
    size_t n = 0;
    if (journal) {
        memcpy(line, journal_prio[level & 3], 3);
        n = 3;
    }
    if (__atomic_load_n(&log_format, __ATOMIC_RELAXED) == XF_LOG_JSON) {
        yajl_gen g = render_json(level, ts, msg, m);
        const unsigned char *buf;
        size_t len;
        if (g != NULL && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
            struct iovec iov[3] = {{line, n}, {(void *)buf, len}, {(void *)"\n", 1}};
            ssize_t w = writev(STDERR_FILENO, iov, 3);
            (void)w;
        }
        if (g != NULL) yajl_gen_free(g);
        return;
    }
    if (!journal) {
        n = format_time(line, sizeof line, ts);
        line[n++] = ' ';
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "%s ", level_names[level & 3]);
    /* Messages carry peer-controlled text (stream `to`, SNI, reasons): control bytes
       are written as \xNN so that no peer can end a line or forge another one. */
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < m && n < sizeof(line) - 6; i++) {
        unsigned char ch = (unsigned char)msg[i];
        if (ch < 0x20 || ch == 0x7f) {
            line[n++] = '\\';
            line[n++] = 'x';
            line[n++] = hex[ch >> 4];
            line[n++] = hex[ch & 15];
        } else {
            line[n++] = (char)ch;
        }
    }
    line[n++] = '\n';
    /* One write(2) per line keeps lines from different workers whole. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

/* Lines held during startup (xf_log_hold). */
typedef struct held_line { int level; struct timespec ts; char *msg; size_t len; } held_line;
static held_line held[64];
static size_t n_held;
static int holding;

void xf_log_hold(void)
{
    static int registered;
    if (!registered && atexit(xf_log_release) == 0) registered = 1;
    holding = 1;
}

void xf_log_release(void)
{
    holding = 0;
    for (size_t i = 0; i < n_held; i++) {
        emit(held[i].level, &held[i].ts, held[i].msg, held[i].len);
        free(held[i].msg);
    }
    n_held = 0;
}

void xf_log(int level, const char *fmt, ...)
{
    if (!xf_log_enabled(level))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char msg[XF_LOG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    if ((size_t)m >= sizeof(msg))
        m = (int)sizeof(msg) - 1;
    if (holding && n_held < sizeof held / sizeof held[0]) {
        char *copy = malloc((size_t)m + 1);
        if (copy != NULL) {
            memcpy(copy, msg, (size_t)m + 1);
            held[n_held++] = (held_line){level, ts, copy, (size_t)m};
            return;
        }
    }
    emit(level, &ts, msg, (size_t)m);
}
