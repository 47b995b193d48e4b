/*
 * rollover_cmd: `xmppfront rollover DOMAIN` (proxy/rollover_cmd.h, docs/rollover.md).
 * What must be in DNS is what `xmppfront records DOMAIN` prints (read back by
 * xf_check_expected, proxy/check_records.c); it is asked through proxy/dns.c on a
 * private loop (check_dns.c) with the AD-trust rule of proxy/dns.h; the comparison is
 * xf_check_tlsa_has. Only the wait, the state file and the rewrite are new here.
 */
#include "proxy/rollover_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <psa/crypto.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "certs/dane.h"
#include "proxy/check_int.h"
#include "proxy/log.h"
#include "tenants/jsonconf.h"

enum { EXIT_SWITCHED = 0, EXIT_REFUSED = 1, EXIT_BAD = 2 };

#define DEFAULT_CONFIG "/etc/xmppfront/xmppfront.json"
#define MAX_FILE (1024 * 1024)

/* ------------------------------------------------------------------ the wait (pure) */

int xf_rollover_decide(const xf_rollover_state *prev, const char *domain,
                       const char *next_tlsa, unsigned ttl, time_t now,
                       xf_rollover_state *st, long long *wait_s)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->domain, sizeof(st->domain), "%s", domain);
    snprintf(st->next_tlsa, sizeof(st->next_tlsa), "%s", next_tlsa);
    st->first_seen = (long long)now;
    st->ttl = ttl ? ttl : 1;           /* never a switch on the first sight */
    if (prev && strcmp(prev->domain, domain) == 0 && strcmp(prev->next_tlsa, next_tlsa) == 0 &&
        prev->first_seen <= (long long)now) {
        st->first_seen = prev->first_seen;
        if (prev->ttl > st->ttl)
            st->ttl = prev->ttl;
    }
    long long since = (long long)now - st->first_seen, need = 2LL * st->ttl;
    *wait_s = since >= need ? 0 : need - since;
    return since >= need ? XF_ROLLOVER_SWITCH : XF_ROLLOVER_WAIT;
}

int xf_rollover_state_format(const xf_rollover_state *st, char *out, size_t outlen)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *buf;
    size_t len;
    int r = -1;
    if (g == NULL)
        return -1;
#define S(s) (const unsigned char *)(s), strlen(s)
    if (yajl_gen_map_open(g) == yajl_gen_status_ok &&
        yajl_gen_string(g, S("domain")) == yajl_gen_status_ok &&
        yajl_gen_string(g, S(st->domain)) == yajl_gen_status_ok &&
        yajl_gen_string(g, S("next_tlsa")) == yajl_gen_status_ok &&
        yajl_gen_string(g, S(st->next_tlsa)) == yajl_gen_status_ok &&
        yajl_gen_string(g, S("first_seen")) == yajl_gen_status_ok &&
        yajl_gen_integer(g, st->first_seen) == yajl_gen_status_ok &&
        yajl_gen_string(g, S("ttl")) == yajl_gen_status_ok &&
        yajl_gen_integer(g, st->ttl) == yajl_gen_status_ok &&
        yajl_gen_map_close(g) == yajl_gen_status_ok &&
        yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok && len + 2 <= outlen) {
        memcpy(out, buf, len);
        out[len] = '\n';
        out[len + 1] = '\0';
        r = (int)len + 1;
    }
#undef S
    yajl_gen_free(g);
    return r;
}

int xf_rollover_state_parse(const char *json, size_t len, xf_rollover_state *st, char *err,
                            size_t errlen)
{
    xf_jconf p = { "(state)", err, errlen };
    yajl_val root = xf_jconf_parse_object(&p, json, len), v;
    int r = -1;
    const char *d = NULL, *tl = NULL;
    memset(st, 0, sizeof(*st));
    if (root == NULL)
        return -1;
    if (xf_jconf_get_str(&p, root, "domain", NULL, &d) < 0 ||
        xf_jconf_get_str(&p, root, "next_tlsa", NULL, &tl) < 0)
        goto out;
    if (d == NULL || tl == NULL) {
        xf_jconf_fail(&p, d ? "next_tlsa" : "domain", "missing");
        goto out;
    }
    v = xf_jconf_get(root, "first_seen");
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0) {
        xf_jconf_fail(&p, "first_seen", "must be a non-negative integer");
        goto out;
    }
    st->first_seen = YAJL_GET_INTEGER(v);
    if (xf_jconf_get_uint(&p, root, "ttl", NULL, 0, 0x7fffffffLL, &st->ttl) < 0)
        goto out;
    if (strlen(d) >= sizeof(st->domain) || strlen(tl) >= sizeof(st->next_tlsa)) {
        xf_jconf_fail(&p, "(document)", "value too long");
        goto out;
    }
    snprintf(st->domain, sizeof(st->domain), "%s", d);
    snprintf(st->next_tlsa, sizeof(st->next_tlsa), "%s", tl);
    r = 0;
out:
    yajl_tree_free(root);
    return r;
}

/* ---------------------------------------------------------------- the rewrite (pure) */

#define GS(s) (const unsigned char *)(s), strlen(s)

static int gen_value(yajl_gen g, yajl_val v, yajl_val target, yajl_val cert, yajl_val key);

static int gen_object(yajl_gen g, yajl_val o, yajl_val target, yajl_val cert, yajl_val key)
{
    int is_target = o == target, put_cert = 0, put_key = 0;
    if (yajl_gen_map_open(g) != yajl_gen_status_ok)
        return -1;
    for (size_t i = 0; i < o->u.object.len; i++) {
        const char *k = o->u.object.keys[i];
        yajl_val v = o->u.object.values[i];
        if (is_target) {
            if (strcmp(k, "next_certificate") == 0 || strcmp(k, "next_key") == 0)
                continue;
            if (strcmp(k, "certificate") == 0) {
                if (put_cert++)
                    continue;
                v = cert;
            } else if (strcmp(k, "key") == 0) {
                if (put_key++)
                    continue;
                v = key;
            }
        }
        if (yajl_gen_string(g, GS(k)) != yajl_gen_status_ok ||
            gen_value(g, v, target, cert, key) < 0)
            return -1;
    }
    /* no current pair named before (cannot happen for a loaded file): add it */
    if (is_target && !put_cert &&
        (yajl_gen_string(g, GS("certificate")) != yajl_gen_status_ok ||
         gen_value(g, cert, target, cert, key) < 0))
        return -1;
    if (is_target && !put_key &&
        (yajl_gen_string(g, GS("key")) != yajl_gen_status_ok ||
         gen_value(g, key, target, cert, key) < 0))
        return -1;
    return yajl_gen_map_close(g) == yajl_gen_status_ok ? 0 : -1;
}

static int gen_value(yajl_gen g, yajl_val v, yajl_val target, yajl_val cert, yajl_val key)
{
    yajl_gen_status s;
    if (YAJL_IS_OBJECT(v))
        return gen_object(g, v, target, cert, key);
    if (YAJL_IS_ARRAY(v)) {
        if (yajl_gen_array_open(g) != yajl_gen_status_ok)
            return -1;
        for (size_t i = 0; i < v->u.array.len; i++)
            if (gen_value(g, v->u.array.values[i], target, cert, key) < 0)
                return -1;
        return yajl_gen_array_close(g) == yajl_gen_status_ok ? 0 : -1;
    }
    if (YAJL_IS_STRING(v))
        s = yajl_gen_string(g, GS(v->u.string));
    else if (YAJL_IS_NUMBER(v))
        s = yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    else if (YAJL_IS_TRUE(v))
        s = yajl_gen_bool(g, 1);
    else if (YAJL_IS_FALSE(v))
        s = yajl_gen_bool(g, 0);
    else
        s = yajl_gen_null(g);
    return s == yajl_gen_status_ok ? 0 : -1;
}

int xf_rollover_rewrite(const char *json, size_t len, const char *object_key, char **out,
                        size_t *outlen, char *err, size_t errlen)
{
    xf_jconf p = { "(document)", err, errlen };
    yajl_val root = xf_jconf_parse_object(&p, json, len), target, cert, key;
    yajl_gen g = NULL;
    const unsigned char *buf;
    size_t blen;
    int r = -1;
    *out = NULL;
    *outlen = 0;
    if (root == NULL)
        return -1;
    target = object_key ? xf_jconf_get(root, object_key) : root;
    if (!YAJL_IS_OBJECT(target)) {
        xf_jconf_fail(&p, object_key ? object_key : "(document)", "no such object");
        goto out;
    }
    cert = xf_jconf_get(target, "next_certificate");
    key = xf_jconf_get(target, "next_key");
    if (!YAJL_IS_STRING(cert) || !YAJL_IS_STRING(key)) {
        xf_jconf_fail(&p, !YAJL_IS_STRING(cert) ? "next_certificate" : "next_key",
                      "missing or not a string: nothing to switch to");
        goto out;
    }
    if ((g = yajl_gen_alloc(NULL)) == NULL ||
        !yajl_gen_config(g, yajl_gen_beautify, 1) ||
        !yajl_gen_config(g, yajl_gen_indent_string, "  ") ||
        gen_value(g, root, target, cert, key) < 0 ||
        yajl_gen_get_buf(g, &buf, &blen) != yajl_gen_status_ok) {
        snprintf(err, errlen, "cannot write the document (out of memory?)");
        goto out;
    }
    if ((*out = malloc(blen + 2)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    memcpy(*out, buf, blen);
    if (blen == 0 || buf[blen - 1] != '\n')
        (*out)[blen++] = '\n';
    (*out)[blen] = '\0';
    *outlen = blen;
    r = 0;
out:
    if (g)
        yajl_gen_free(g);
    yajl_tree_free(root);
    return r;
}

/* ----------------------------------------------------------------------- file I/O */

/* Reads path (at most MAX_FILE bytes). 0, 1 when it does not exist, -1 with err. */
static int read_all(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    *buf = NULL;
    *len = 0;
    if (f == NULL) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, errlen, "%.400s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *b = malloc(MAX_FILE + 1);
    size_t n = b ? fread(b, 1, MAX_FILE + 1, f) : 0;
    int bad = b == NULL || ferror(f) || n > MAX_FILE;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%.400s: %s", path, b ? "read error or larger than 1 MiB"
                                                : "out of memory");
        free(b);
        return -1;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

/* Writes data to path atomically: path.tmp.PID in the same directory, fsync, mode of
   `mode_from` (when it exists), rename over path. 0 or -1 with err. */
static int write_atomic(const char *path, const char *data, size_t len, const char *mode_from,
                        char *err, size_t errlen)
{
    char tmp[4096];
    struct stat sb;
    mode_t mode = 0644;
    if (mode_from && stat(mode_from, &sb) == 0)
        mode = sb.st_mode & 07777;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "%.400s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "%.400s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (mode_from && stat(mode_from, &sb) == 0 && fchown(fd, sb.st_uid, sb.st_gid) != 0) {
        /* keep going: the owner stays root's, the mode is the original's */
    }
    int bad = off < len || fsync(fd) != 0;
    bad |= close(fd) != 0;
    if (bad) {
        snprintf(err, errlen, "%.400s: write error: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%.400s: cannot rename to %.400s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- the command */

static int bad(const char *msg, const char *arg)
{
    fprintf(stderr, "xmppfront rollover: %s%s\n", msg, arg ? arg : "");
    return EXIT_BAD;
}

static void usage(FILE *f)
{
    fputs("usage: xmppfront rollover DOMAIN [--config FILE] [--resolver IP:PORT ...]\n"
          "                          [--timeout S] [--state DIR]\n"
          "  switches DOMAIN (a tenant with a certificate of its own, or the hosting name)\n"
          "  to its next_certificate / next_key once DNS has served the next key's TLSA\n"
          "  records securely for two TTLs; refuses (exit 1) with the reason otherwise.\n"
          "  FILE defaults to " DEFAULT_CONFIG "; resolvers default to\n"
          "  federation.resolvers, then /etc/resolv.conf (docs/rollover.md)\n", f);
}

/* Why an answer does not serve `text` securely, or NULL when it does. */
static const char *tlsa_problem(const xf_dns_result *res, const char *text, char *why,
                                size_t wlen)
{
    if (res == NULL) {
        snprintf(why, wlen, "not asked");
    } else if (res->status == XF_DNS_SERVFAIL) {
        snprintf(why, wlen, "SERVFAIL (bogus DNSSEC or a broken zone)");
    } else if (res->status != XF_DNS_NOERROR) {
        snprintf(why, wlen, "%s", xf_dns_status_name(res->status));
    } else if (!xf_check_tlsa_has(res, text)) {
        snprintf(why, wlen, "not published (the RRset has %zu other record(s))", res->n_tlsa);
    } else if (!res->ad) {
        snprintf(why, wlen, "insecure answer (no AD): peers ignore it; sign the zone");
    } else {
        return NULL;
    }
    return why;
}

/* Indeterminate answers (no reply) keep the state file; every definite "not there
   securely" resets it. */
static int indeterminate(const xf_dns_result *res)
{
    return res == NULL || res->status == XF_DNS_TIMEOUT || res->status == XF_DNS_ERROR;
}

static void fmt_utc(long long t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, len, "%lld", t);
}

int xf_rollover_main(int argc, char **argv)
{
    const char *state_dir = NULL, *why, *arg;
    char err[1024];
    xf_cli_common o;
    xf_cli_common_init(&o, DEFAULT_CONFIG, 10);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = xf_cli_common_arg(&o, argc, argv, &i, &why, &arg);
        if (r < 0)
            return bad(why, arg);
        if (r > 0)
            continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--state") == 0) {
            if (i + 1 >= argc)
                return bad("--state needs a directory", NULL);
            state_dir = argv[++i];
        } else {
            usage(stderr);
            return bad("unknown option ", a);
        }
    }
    if (xf_cli_common_done(&o, &why) < 0) {
        if (why == NULL) {
            usage(stderr);
            return EXIT_BAD;
        }
        fprintf(stderr, "xmppfront rollover: '%.100s' %s\n", o.domain, why);
        return EXIT_BAD;
    }
    xf_log_set_level(XF_LOG_ERROR);
    if (psa_crypto_init() != PSA_SUCCESS)
        return bad("cannot initialise the crypto library", NULL);

    int rc = EXIT_BAD;
    xf_config *cfg = NULL;
    xf_cdns *dns = NULL;
    xf_check_rec *recs = NULL;
    xf_cdns_query *q = NULL;
    size_t n_recs = 0, n_q = 0;
    char *old = NULL, *neu = NULL, *sbuf = NULL;
    size_t old_len = 0, neu_len = 0, sbuf_len = 0;
    char state_path[4096], file_path[4096], bak[4200], next_text[300] = "", cur_text[300];

    if (xf_config_load(o.config, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront rollover: configuration error: %s\n", err);
        goto out;
    }
    const xf_tenant *t = xf_registry_find(cfg->registry, o.name);
    const xf_tenant *host = xf_registry_hosting(cfg->registry);
    const xf_tenant *cred;
    if (t && t->present == XF_PRESENT_HOSTING) {
        fprintf(stderr, "xmppfront rollover: refused: %s is served with the hosting "
                "certificate and rolls with the hosting identity: `xmppfront rollover %s`\n",
                o.name, host ? host->domain : "HOSTING");
        rc = EXIT_REFUSED;
        goto out;
    }
    if (t) {
        cred = t;
        snprintf(o.name, sizeof(o.name), "%s", t->domain);   /* an alias rolls its tenant */
    } else if (host && strcmp(host->domain, o.name) == 0) {
        cred = host;
    } else {
        fprintf(stderr, "xmppfront rollover: %s is not a tenant, a tenant alias or the "
                "hosting name in %s\n", o.name, cfg->path);
        goto out;
    }
    const char *conf_file = t ? t->file : cfg->path;
    snprintf(file_path, sizeof(file_path), "%s", conf_file);
    if (cred->next_chain.raw.p == NULL) {
        fprintf(stderr, "xmppfront rollover: refused: %s names no next_certificate / "
                "next_key in %s: nothing to switch to\n", o.name, conf_file);
        rc = EXIT_REFUSED;
        goto out;
    }
    if (xf_dane_generate(&cred->next_chain, 3, 1, 1, next_text, sizeof(next_text)) < 0 ||
        xf_dane_generate(&cred->chain, 3, 1, 1, cur_text, sizeof(cur_text)) < 0) {
        fprintf(stderr, "xmppfront rollover: cannot hash the next certificate\n");
        goto out;
    }
    /* the state file: DIR/DOMAIN.rollover-state (not *.json: the tenants folder loads
       every *.json file) */
    {
        char dir[4096];
        const char *slash = strrchr(conf_file, '/');
        if (state_dir)
            snprintf(dir, sizeof(dir), "%s", state_dir);
        else if (slash)
            snprintf(dir, sizeof(dir), "%.*s", (int)(slash - conf_file), conf_file);
        else
            snprintf(dir, sizeof(dir), ".");
        if (snprintf(state_path, sizeof(state_path), "%s/%s.rollover-state", dir[0] ? dir : "",
                     o.name) >= (int)sizeof(state_path)) {
            fprintf(stderr, "xmppfront rollover: state path too long\n");
            goto out;
        }
    }

    /* what must be in DNS: exactly what `xmppfront records` prints */
    if (xf_check_expected(cfg, o.name, &recs, &n_recs, err, sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront rollover: %s\n", err);
        goto out;
    }
    q = calloc(n_recs ? n_recs : 1, sizeof(*q));
    size_t *qi = calloc(n_recs ? n_recs : 1, sizeof(*qi));   /* recs[i] -> q[qi[i]] */
    if (q == NULL || qi == NULL) {
        free(qi);
        fprintf(stderr, "xmppfront rollover: out of memory\n");
        goto out;
    }
    size_t n_next = 0;
    for (size_t i = 0; i < n_recs; i++) {
        qi[i] = (size_t)-1;
        if (strcmp(recs[i].type, "TLSA") != 0 || recs[i].port == 0)
            continue;
        n_next += recs[i].next;
        size_t j;
        for (j = 0; j < n_q && !(q[j].port == recs[i].port &&
                                 strcasecmp(q[j].name, recs[i].host) == 0); j++)
            ;
        if (j == n_q) {
            q[n_q].kind = XF_CQ_TLSA;
            q[n_q].port = recs[i].port;
            snprintf(q[n_q].name, sizeof(q[n_q].name), "%s", recs[i].host);
            n_q++;
        }
        qi[i] = j;
    }
    if (n_next == 0) {
        free(qi);
        fprintf(stderr, "xmppfront rollover: refused: no TLS listener serves %s: no TLSA "
                "record to wait for\n", o.name);
        rc = EXIT_REFUSED;
        goto out;
    }

    if (o.n_res == 0)
        for (size_t i = 0; i < cfg->federation.n_resolvers && i < XF_CLI_MAX_RESOLVERS; i++)
            o.resolvers[o.n_res++] = cfg->federation.resolvers[i];
    dns = xf_cdns_open(o.n_res ? o.resolvers : NULL, o.n_res, 2000, err, sizeof(err));
    if (dns == NULL) {
        free(qi);
        fprintf(stderr, "xmppfront rollover: DNS: %s\n", err);
        goto out;
    }
    if (!xf_cdns_trusted(dns)) {
        free(qi);
        fprintf(stderr, "xmppfront rollover: refused: the resolver (%s) is not on loopback: "
                "its AD bit cannot be trusted, so a secure TLSA answer cannot be told from "
                "a forged one; run a validating resolver on loopback (--resolver "
                "127.0.0.1:53)\n", o.n_res ? o.resolvers[0] : "/etc/resolv.conf");
        rc = EXIT_REFUSED;
        goto out;
    }
    xf_cdns_run(dns, q, n_q, xf_check_now_ms() + (uint64_t)(o.timeout_s * 1000));

    /* the current key: peers verify it until the reload */
    int next_ok = 1, reset = 0;
    unsigned ttl = 0;
    char problem[600] = "", w[200];
    for (size_t i = 0; i < n_recs; i++) {
        if (qi[i] == (size_t)-1)
            continue;
        const xf_dns_result *res = &q[qi[i]].res;
        const char *p = tlsa_problem(res, recs[i].rdata, w, sizeof(w));
        if (!recs[i].next) {
            if (p)
                fprintf(stderr, "xmppfront rollover: warning: the current key's TLSA %s "
                        "TLSA %s: %s; DANE peers refuse the current key (served until "
                        "the reload)\n", recs[i].owner, recs[i].rdata, p);
            continue;
        }
        if (p) {
            if (next_ok)
                snprintf(problem, sizeof(problem), "the next key's TLSA at %s: %s", recs[i].owner, p);
            next_ok = 0;
            reset |= !indeterminate(res);
        } else if (res->ttl > ttl) {
            ttl = res->ttl;
        }
    }
    free(qi);
    if (!next_ok) {
        int had = access(state_path, F_OK) == 0;
        if (reset && had)
            unlink(state_path);
        fprintf(stderr, "xmppfront rollover: refused: %s; publish TLSA %s there "
                "(`xmppfront records %s`)%s\n", problem, next_text, o.name,
                reset && had ? "; the wait starts again" : "");
        rc = EXIT_REFUSED;
        goto out;
    }

    /* the 2 x TTL rule */
    xf_rollover_state prev, st;
    int have_prev = 0;
    long long wait_s;
    time_t now = time(NULL);
    int rr = read_all(state_path, &sbuf, &sbuf_len, err, sizeof(err));
    if (rr < 0) {
        fprintf(stderr, "xmppfront rollover: state: %s\n", err);
        goto out;
    }
    if (rr == 0) {
        if (xf_rollover_state_parse(sbuf, sbuf_len, &prev, err, sizeof(err)) == 0)
            have_prev = 1;
        else
            fprintf(stderr, "xmppfront rollover: warning: %s: %s: starting the wait again\n",
                    state_path, err);
    }
    int verdict = xf_rollover_decide(have_prev ? &prev : NULL, o.name, next_text, ttl, now, &st,
                                     &wait_s);
    if (verdict == XF_ROLLOVER_WAIT) {
        char line[400], at[64];
        int l = xf_rollover_state_format(&st, line, sizeof(line));
        if (l < 0 || write_atomic(state_path, line, (size_t)l, NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "xmppfront rollover: state: %s\n", l < 0 ? "too long" : err);
            goto out;
        }
        fmt_utc(st.first_seen + 2LL * st.ttl, at, sizeof(at));
        fprintf(stderr, "xmppfront rollover: refused: the next key's TLSA published since "
                "%lld s; switch allowed after 2×TTL = %lld s (at %s)\n",
                (long long)now - st.first_seen, 2LL * st.ttl, at);
        rc = EXIT_REFUSED;
        goto out;
    }

    /* the switch */
    rr = read_all(file_path, &old, &old_len, err, sizeof(err));
    if (rr != 0) {
        fprintf(stderr, "xmppfront rollover: %s\n", rr > 0 ? "the file is gone" : err);
        goto out;
    }
    if (xf_rollover_rewrite(old, old_len, t ? NULL : "hosting", &neu, &neu_len, err,
                            sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront rollover: %s: %s\n", file_path, err);
        goto out;
    }
    if (t) {
        /* the new file must load: the next pair becomes the current one */
        xf_tenant *nt = NULL;
        if (xf_tenant_parse(neu, neu_len, file_path, 1, &nt, err, sizeof(err)) != 0) {
            fprintf(stderr, "xmppfront rollover: the rewritten file would not load: %s\n", err);
            goto out;
        }
        xf_tenant_free(nt);
    } else {
        /* the main file must still parse (its pair was loaded and checked as next_*) */
        xf_config *nc = NULL;
        if (xf_config_parse(neu, neu_len, file_path, &nc, err, sizeof(err)) != 0) {
            fprintf(stderr, "xmppfront rollover: the rewritten file would not load: %s\n", err);
            goto out;
        }
        xf_config_unref(nc);
    }
    {
        char stamp[32];
        struct tm tm;
        time_t tt = now;
        gmtime_r(&tt, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
        snprintf(bak, sizeof(bak), "%s.%s.bak", file_path, stamp);
    }
    if (write_atomic(bak, old, old_len, file_path, err, sizeof(err)) != 0 ||
        write_atomic(file_path, neu, neu_len, file_path, err, sizeof(err)) != 0) {
        fprintf(stderr, "xmppfront rollover: %s\n", err);
        goto out;
    }
    unlink(state_path);
    printf("xmppfront rollover: %s switched keys: the next key's TLSA has been in DNS "
           "(secure) for %lld s >= 2×TTL = %lld s\n"
           "  %s: certificate <- %s, key <- %s; next_certificate / next_key removed\n"
           "  previous file kept as %s\n"
           "next:\n"
           "  1. xmppfront reloads the rewritten file by itself (its file watch, \"watch\": true)\n"
           "     or on `kill -HUP`: new connections get the new key from then (docs/reload.md)\n"
           "  2. after the reload and one TTL, remove the old key's TLSA records (TLSA %s)\n"
           "     and publish the next-next key's beside the new one when the next rollover "
           "starts\n"
           "  `xmppfront records %s` prints what to publish now\n",
           o.name, (long long)now - st.first_seen, 2LL * st.ttl, file_path,
           cred->next_cert_path, cred->next_key_path, bak, cur_text, o.name);
    rc = EXIT_SWITCHED;
out:
    for (size_t i = 0; q && i < n_q; i++)
        xf_cdns_query_free(&q[i]);
    free(q);
    free(recs);
    free(old);
    free(neu);
    free(sbuf);
    xf_cdns_close(dns);
    if (cfg)
        xf_config_unref(cfg);
    return rc;
}
