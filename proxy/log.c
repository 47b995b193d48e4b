#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "proxy/log.h"

static int log_level = XF_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void xf_log_set_level(int level) { __atomic_store_n(&log_level, level, __ATOMIC_RELAXED); }
int xf_log_enabled(int level) { return level >= __atomic_load_n(&log_level, __ATOMIC_RELAXED); }

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

void xf_log(int level, const char *fmt, ...)
{
    if (!xf_log_enabled(level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %s ",
                  ts.tv_nsec / 1000000, level_names[level & 3]);
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    if ((size_t)m >= sizeof(msg))
        m = (int)sizeof(msg) - 1;
    /* Messages carry peer-controlled text (stream `to`, SNI, reasons): control bytes
       are written as \xNN so that no peer can end a line or forge another one. */
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < m && (size_t)n < sizeof(line) - 6; i++) {
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
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
