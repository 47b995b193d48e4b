/* privdrop: see privdrop.h. */
#include "proxy/privdrop.h"
#include "proxy/log.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

/* getpwnam_r / getgrnam_r need a caller buffer; 64 KiB covers groups with many
   members (the _SC_*_R_SIZE_MAX hints are often -1 or too small). */
#define XF_NSS_BUF 65536

static int lookup_user(const char *name, struct passwd *pw, char *buf, char *err,
                       size_t errlen)
{
    struct passwd *res = NULL;
    int rc = getpwnam_r(name, pw, buf, XF_NSS_BUF, &res);
    if (rc != 0) FAIL("user \"%.60s\": lookup failed: %s", name, strerror(rc));
    if (res == NULL) FAIL("user \"%.60s\": no such user", name);
    return 0;
}

static int lookup_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
    struct group gr, *res = NULL;
    char *buf = malloc(XF_NSS_BUF);
    if (buf == NULL) FAIL("group \"%.60s\": out of memory", name);
    int rc = getgrnam_r(name, &gr, buf, XF_NSS_BUF, &res);
    if (rc == 0 && res != NULL) *gid = gr.gr_gid;
    free(buf);
    if (rc != 0) FAIL("group \"%.60s\": lookup failed: %s", name, strerror(rc));
    if (res == NULL) FAIL("group \"%.60s\": no such group", name);
    return 0;
}

int xf_privdrop_resolve(const char *user, const char *group, xf_privdrop *pd,
                        char *err, size_t errlen)
{
    memset(pd, 0, sizeof *pd);
    if (user == NULL) {
        if (geteuid() == 0)
            xf_info("running as root: set \"user\" (and \"group\") to drop privileges "
                    "once the listeners are bound (docs/process.md)");
        return 0;
    }
    if (strlen(user) >= sizeof pd->user) FAIL("user \"%.60s\": name too long", user);
    struct passwd pw;
    char *buf = malloc(XF_NSS_BUF);
    if (buf == NULL) FAIL("user \"%.60s\": out of memory", user);
    int rc = lookup_user(user, &pw, buf, err, errlen);
    if (rc == 0) {
        pd->uid = pw.pw_uid;
        pd->gid = pw.pw_gid;
    }
    free(buf);
    if (rc < 0) return -1;
    if (group != NULL && lookup_group(group, &pd->gid, err, errlen) < 0) return -1;
    if (pd->uid == 0)
        FAIL("user \"%.60s\" is uid 0: nothing to drop to (leave \"user\" out to run "
             "as root)", user);
    snprintf(pd->user, sizeof pd->user, "%s", user);
    if (geteuid() == 0) {
        pd->drop = 1;
        return 0;
    }
    /* Not root: the identity must already be the configured one (systemd User=,
       a container's USER); an unprivileged process cannot switch users. */
    if (getuid() != pd->uid || geteuid() != pd->uid)
        FAIL("user \"%.60s\" (uid %lu): running as uid %lu, not root: cannot switch users "
             "(start as root, or as that user)", user, (unsigned long)pd->uid,
             (unsigned long)geteuid());
    if (getgid() != pd->gid || getegid() != pd->gid)
        FAIL("group: running with gid %lu, not root: cannot switch to gid %lu",
             (unsigned long)getegid(), (unsigned long)pd->gid);
    return 0;
}

/* Every thread of the process has the same real/effective/saved uid and gid: glibc's
   setres[ug]id applies to all threads, but a raw syscall only to the caller, so the
   drop is checked where the kernel keeps it, per task. Returns the first task that
   differs, 0 if none, -1 if /proc cannot be read (not an error: the calling thread's
   credentials were checked already). */
static long task_with_other_ids(uid_t uid, gid_t gid)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) return -1;
    struct dirent *e;
    long bad = 0;
    char want_u[64], want_g[64];
    snprintf(want_u, sizeof want_u, "Uid:\t%lu\t%lu\t%lu\t", (unsigned long)uid,
             (unsigned long)uid, (unsigned long)uid);
    snprintf(want_g, sizeof want_g, "Gid:\t%lu\t%lu\t%lu\t", (unsigned long)gid,
             (unsigned long)gid, (unsigned long)gid);
    while (bad == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "re");
        if (f == NULL) continue;                      /* the thread has ended */
        int ok_u = 0, ok_g = 0;
        while (fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "Uid:", 4) == 0) ok_u = strncmp(line, want_u, strlen(want_u)) == 0;
            if (strncmp(line, "Gid:", 4) == 0) ok_g = strncmp(line, want_g, strlen(want_g)) == 0;
        }
        fclose(f);
        if (!ok_u || !ok_g) bad = strtol(e->d_name, NULL, 10);
    }
    closedir(d);
    return bad;
}

int xf_privdrop_apply(const xf_privdrop *pd, char *err, size_t errlen)
{
    if (!pd->drop) return 0;
    const unsigned long u = (unsigned long)pd->uid, g = (unsigned long)pd->gid;
    /* Order matters: groups and gid need CAP_SETGID, which the uid change takes away. */
    if (initgroups(pd->user, pd->gid) != 0)
        FAIL("privilege drop: initgroups(\"%s\", %lu): %s", pd->user, g, strerror(errno));
    if (setresgid(pd->gid, pd->gid, pd->gid) != 0)
        FAIL("privilege drop: setresgid(%lu): %s", g, strerror(errno));
    if (setresuid(pd->uid, pd->uid, pd->uid) != 0)
        FAIL("privilege drop: setresuid(%lu): %s", u, strerror(errno));

    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) != 0 || ru != pd->uid || eu != pd->uid || su != pd->uid)
        FAIL("privilege drop: uids are not all %lu after setresuid", u);
    if (getresgid(&rg, &eg, &sg) != 0 || rg != pd->gid || eg != pd->gid || sg != pd->gid)
        FAIL("privilege drop: gids are not all %lu after setresgid", g);
    /* The way back must be closed: no CAP_SETUID / CAP_SETGID is left. */
    if (setuid(0) == 0 || geteuid() == 0)
        FAIL("privilege drop: setuid(0) succeeded after dropping to uid %lu", u);
    if (pd->gid != 0 && (setgid(0) == 0 || getegid() == 0))
        FAIL("privilege drop: setgid(0) succeeded after dropping to gid %lu", g);
    long t = task_with_other_ids(pd->uid, pd->gid);
    if (t > 0)
        FAIL("privilege drop: thread %ld still has other credentials", t);
    return 0;
}

/* ---------------------------------------------------------------- key permissions */

/* 1 when a group-readable key's group is one the operator meant to read keys: the
   group xmppfront runs as (after a drop: the configured one) or "ssl-cert". */
static int trusted_group(const xf_config *c, gid_t file_gid)
{
    if (c->user != NULL) {
        xf_privdrop pd;
        char e[160];
        if (xf_privdrop_resolve(c->user, c->group, &pd, e, sizeof e) == 0 &&
            file_gid == pd.gid)
            return 1;
    } else if (file_gid == getegid()) {
        return 1;
    }
    gid_t ssl;
    char e[160];
    return lookup_group("ssl-cert", &ssl, e, sizeof e) == 0 && ssl == file_gid;
}

/* One key file: 0 fine (or ignored/warned), -1 refused with err. */
static int check_one(const xf_config *c, const char *file, const char *key,
                     const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (path == NULL || stat(path, &st) != 0) return 0;   /* the loader reported it */
    const char *who = NULL;
    if (st.st_mode & (S_IROTH | S_IWOTH))
        who = "others";
    else if ((st.st_mode & (S_IRGRP | S_IWGRP)) && !trusted_group(c, st.st_gid))
        who = "its group";
    if (who == NULL) return 0;
    char why[400];
    snprintf(why, sizeof why, "%s is %s by %s (mode %04o, group %lu); chmod it to 0600 "
             "(or 0640 with group ssl-cert or xmppfront's group)", path,
             (st.st_mode & (S_IROTH | S_IRGRP)) ? "readable" : "writable", who,
             (unsigned)(st.st_mode & 07777), (unsigned long)st.st_gid);
    if (c->key_permissions == XF_KEYPERM_REFUSE)
        FAIL("%s: %s: %s (key_permissions: refuse)", file, key, why);
    xf_warn("key permissions: %s: %s: %s", file, key, why);
    return 0;
}

int xf_keyperm_check(const xf_config *c, char *err, size_t errlen)
{
    if (c->key_permissions == XF_KEYPERM_IGNORE || c->registry == NULL) return 0;
    const xf_tenant *h = xf_registry_hosting(c->registry);
    if (h != NULL && (check_one(c, c->path, "hosting.key", h->key_path, err, errlen) < 0 ||
                      check_one(c, c->path, "hosting.next_key", h->next_key_path, err,
                                errlen) < 0))
        return -1;
    for (size_t i = 0; i < xf_registry_count(c->registry); i++) {
        const xf_tenant *t = xf_registry_at(c->registry, i);
        if (check_one(c, t->file, "key", t->key_path, err, errlen) < 0 ||
            check_one(c, t->file, "next_key", t->next_key_path, err, errlen) < 0)
            return -1;
    }
    return 0;
}
