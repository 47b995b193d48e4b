/*
 * jsonconf: JSON helpers shared by the main config and tenant file parsers. Contracts
 * are in jsonconf.h.
 */
#include "tenants/jsonconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int xf_jconf_fail(const xf_jconf *p, const char *key, const char *fmt, ...)
{
    if (p->err && p->errlen) {
        int n = snprintf(p->err, p->errlen, "%s: %s: ", p->file, key);
        if (n >= 0 && (size_t)n < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

const char *xf_jconf_type_name(yajl_val v)
{
    if (!v) return "null";
    switch (v->type) {
    case yajl_t_string: return "a string";
    case yajl_t_number: return "a number";
    case yajl_t_object: return "an object";
    case yajl_t_array: return "an array";
    case yajl_t_true: case yajl_t_false: return "a boolean";
    default: return "null";
    }
}

/* Reject nesting deeper than XF_JCONF_MAX_DEPTH before yajl builds a tree (its free is
   recursive). Strings are skipped so brackets inside them do not count. */
static int depth_ok(const char *s, size_t len)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > XF_JCONF_MAX_DEPTH) return 0;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 1;
}

yajl_val xf_jconf_parse_object(const xf_jconf *p, const char *json, size_t len)
{
    char ebuf[256];
    if (memchr(json, '\0', len)) {
        xf_jconf_fail(p, "(document)", "contains a NUL byte");
        return NULL;
    }
    if (!depth_ok(json, len)) {
        xf_jconf_fail(p, "(document)", "nested deeper than %d levels", XF_JCONF_MAX_DEPTH);
        return NULL;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        xf_jconf_fail(p, "(document)", "out of memory");
        return NULL;
    }
    memcpy(copy, json, len);
    copy[len] = '\0';
    ebuf[0] = '\0';
    yajl_val root = yajl_tree_parse(copy, ebuf, sizeof ebuf);
    free(copy);
    if (!root) {
        /* yajl's message is "parse error: what\n  context\n  (right here)": keep
           the first line. */
        ebuf[strcspn(ebuf, "\r\n")] = '\0';
        size_t el = strlen(ebuf);
        while (el && ebuf[el - 1] == ' ') ebuf[--el] = '\0';
        xf_jconf_fail(p, "(document)", "invalid JSON: %s", ebuf[0] ? ebuf : "parse error");
        return NULL;
    }
    if (!YAJL_IS_OBJECT(root)) {
        xf_jconf_fail(p, "(document)", "must be a JSON object, not %s",
                      xf_jconf_type_name(root));
        yajl_tree_free(root);
        return NULL;
    }
    return root;
}

int xf_jconf_check_keys(const xf_jconf *p, yajl_val o, const char *where,
                        const char *const *known)
{
    char buf[160];
    for (size_t i = 0; i < o->u.object.len; i++) {
        const char *k = o->u.object.keys[i], *key = k;
        int ok = 0;
        for (const char *const *kn = known; *kn; kn++)
            if (strcmp(*kn, k) == 0) { ok = 1; break; }
        if (where) {
            snprintf(buf, sizeof buf, "%s%s", where, k);
            key = buf;
        }
        if (!ok)
            return xf_jconf_fail(p, key, "unknown key");
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->u.object.keys[j], k) == 0)
                return xf_jconf_fail(p, key, "duplicate key");
    }
    return 0;
}

yajl_val xf_jconf_get(yajl_val o, const char *k)
{
    for (size_t i = 0; i < o->u.object.len; i++)
        if (strcmp(o->u.object.keys[i], k) == 0)
            return o->u.object.values[i];
    return NULL;
}

int xf_jconf_get_uint(const xf_jconf *p, yajl_val o, const char *k, const char *key,
                      long long lo, long long hi, unsigned *out)
{
    yajl_val v = xf_jconf_get(o, k);
    if (!key) key = k;
    if (!v) return 0;
    if (!YAJL_IS_NUMBER(v))
        return xf_jconf_fail(p, key, "must be an integer, not %s", xf_jconf_type_name(v));
    if (!YAJL_IS_INTEGER(v))
        return xf_jconf_fail(p, key, "must be an integer in %lld..%lld", lo, hi);
    long long n = YAJL_GET_INTEGER(v);
    if (n < lo || n > hi)
        return xf_jconf_fail(p, key, "%lld is out of range %lld..%lld", n, lo, hi);
    *out = (unsigned)n;
    return 0;
}

int xf_jconf_get_str(const xf_jconf *p, yajl_val o, const char *k, const char *key,
                     const char **out)
{
    yajl_val v = xf_jconf_get(o, k);
    if (!key) key = k;
    *out = NULL;
    if (!v) return 0;
    if (!YAJL_IS_STRING(v))
        return xf_jconf_fail(p, key, "must be a string, not %s", xf_jconf_type_name(v));
    if (!v->u.string[0])
        return xf_jconf_fail(p, key, "must not be empty");
    *out = v->u.string;
    return 0;
}

char *xf_jconf_resolve_path(const char *file, const char *rel)
{
    const char *slash = strrchr(file, '/');
    if (rel[0] == '/' || !slash)
        return strdup(rel);
    size_t dl = (size_t)(slash - file);
    size_t n = dl + 2 + strlen(rel);
    char *r = malloc(n);
    if (!r) return NULL;
    if (dl == 0) snprintf(r, n, "/%s", rel);            /* "/x.json" -> "/rel" */
    else snprintf(r, n, "%.*s/%s", (int)dl, file, rel);
    return r;
}

int xf_jconf_read_file(const xf_jconf *p, size_t max, const char *too_large,
                       char **buf, size_t *len)
{
    FILE *f = fopen(p->file, "rb");
    char *b;
    size_t n;
    if (!f) return xf_jconf_fail(p, "(document)", "cannot open: %s", strerror(errno));
    if (!(b = malloc(max + 1))) {
        fclose(f);
        return xf_jconf_fail(p, "(document)", "out of memory");
    }
    n = fread(b, 1, max + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) { free(b); return xf_jconf_fail(p, "(document)", "read error"); }
    if (n > max) {
        free(b);
        return xf_jconf_fail(p, "(document)", "larger than %s", too_large);
    }
    *buf = b;
    *len = n;
    return 0;
}
