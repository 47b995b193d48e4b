/*
 * watch: reload when a file the snapshot depends on changes (libuv fs events = inotify
 * on Linux), debounced: the callback runs once, `debounce_ms` after the last event.
 *
 * Directories are watched, never the files: renewals replace files and symlinks rather
 * than write into them, and a watch on a replaced inode would go deaf.
 *  - the tenants folder (events on *.json, and on "..*" names: a Kubernetes ConfigMap
 *    volume swaps its "..data" symlink);
 *  - the main file's directory (events on its name);
 *  - for every certificate and key the snapshot names (tenants, current and next pair;
 *    the hosting identity; federation.ca_file; the dialback secret file): the file's
 *    directory (events on its name, or on "..*": a Secret volume's tls.crt ->
 *    ..data/tls.crt, updated by renaming ..data_tmp over ..data), and the directory of
 *    the file the path resolves to when it is a symlink (certbot's live/D/cert.pem ->
 *    ../../archive/D/certN.pem: the switch of the live/ symlink is an event in live/D;
 *    a file rewritten in place is an event where it really lives).
 * Main loop only.
 */
#ifndef XF_WATCH_H
#define XF_WATCH_H

#include <uv.h>
#include "proxy/config.h"

typedef struct xf_watch xf_watch;
/* path: the first changed file seen since the last call (for the log). */
typedef void (*xf_watch_cb)(void *ud, const char *path);

xf_watch *xf_watch_new(uv_loop_t *loop, unsigned debounce_ms, xf_watch_cb cb, void *ud);
/* Watch what cfg names, replacing the previous set. Returns the number of directories
   watched; directories that cannot be watched (missing, inotify limit) are logged in
   one warning line. */
int xf_watch_arm(xf_watch *w, const xf_config *cfg);
/* Stop watching (the handles close; a pending debounce is cancelled). */
void xf_watch_disarm(xf_watch *w);
/* Disarm and free (after the handles' close callbacks). */
void xf_watch_close(xf_watch *w);

#endif
