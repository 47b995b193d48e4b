/*
 * privdrop: least privilege for the serving process (docs/process.md).
 *
 *  - "user" / "group" (main file): started as root, xmppfront binds every listener and
 *    loads every key, then becomes that user for good: supplementary groups
 *    (initgroups(3): the user's groups from /etc/group, e.g. ssl-cert), then the real,
 *    effective and saved gid, then the three uids; then it checks that the change took
 *    (getresuid/getresgid, and setuid(0) must fail). Any failure is fatal: a process
 *    that was told to drop never runs on as root.
 *  - Started as a non-root user (systemd User= with AmbientCapabilities=
 *    CAP_NET_BIND_SERVICE, or a container): "user"/"group" are accepted only when they
 *    name the identity the process already has; nothing is changed.
 *  - Private key files: readable or writable by others is reported (or refused, or
 *    ignored: "key_permissions"); by the group only when the file's group is neither
 *    the group xmppfront runs as nor "ssl-cert" (Debian's group for readers of keys).
 */
#ifndef XF_PRIVDROP_H
#define XF_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>
#include "proxy/config.h"

enum xf_keyperm { XF_KEYPERM_WARN = 0, XF_KEYPERM_REFUSE = 1, XF_KEYPERM_IGNORE = 2 };

typedef struct xf_privdrop {
    int drop;                          /* 1: xf_privdrop_apply changes identity */
    char user[64];                     /* "" = not configured */
    uid_t uid;                         /* target (valid when user[0]) */
    gid_t gid;                         /* target: "group", else the user's primary group */
} xf_privdrop;

/* Resolve "user"/"group" (getpwnam_r/getgrnam_r) into pd. user NULL = no drop (group
   must then be NULL too: the parser enforces it). Not root: accepted only when the
   process already runs as that uid/gid (pd->drop = 0). Returns 0, or -1 with err
   naming the key and the problem ("user \"x\": no such user"). */
int xf_privdrop_resolve(const char *user, const char *group, xf_privdrop *pd,
                        char *err, size_t errlen);
/* Become pd's user (see above); a no-op when pd->drop is 0. Call after every listener
   is bound and every key loaded, before any thread starts. Returns 0, or -1 with err
   naming the step that failed; the caller must then exit. */
int xf_privdrop_apply(const xf_privdrop *pd, char *err, size_t errlen);

/* Check the mode of every private key file of c's registry (tenants' key and next_key,
   the hosting identity's) under c->key_permissions. warn: one xf_warn line per file;
   refuse: -1 with "FILE: KEY: PATH is readable by others (mode 0644); ..." in err for
   the first such file; ignore: nothing. Returns 0 otherwise. */
int xf_keyperm_check(const xf_config *c, char *err, size_t errlen);

#endif
