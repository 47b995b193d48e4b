/*
 * upgrade: zero-downtime binary upgrade (docs/upgrade.md), the nginx way.
 *
 * Old process, on SIGUSR2: forks and execs the binary at the path it was started from
 * (resolved to an absolute path at start, not /proc/self/exe: that reads "(deleted)"
 * once a package replaced the file), with the same arguments and working directory,
 * passing every listening socket of every worker (fds 3..) and a "ready" pipe:
 *   XF_INHERIT_FDS="3:127.0.0.1:5222,4:127.0.0.1:5222,5:[::]:5269,..."  fd:listener name
 *   XF_UPGRADE_READY_FD=N   the write end of the pipe
 *   XF_UPGRADE_FROM=PID     the old process (for the log)
 * It keeps serving until the new process writes "ready" (then it drains exactly as on
 * SIGTERM; the sockets stay open in the new process, so no queued connection is lost),
 * or fails: exits, closes the pipe, or is not ready within XF_UPGRADE_TIMEOUT_S
 * (environment, default 30) seconds; then it logs why, kills the new process if it still
 * runs and serves on (XF_STAT_UPGRADE_FAILED). One upgrade at a time.
 *
 * New process: xf_upgrade_init consumes the environment (unsets it, marks the fds
 * close-on-exec); xf_workers_create takes the inherited sockets with xf_upgrade_take;
 * once the workers run, xf_upgrade_ready tells systemd MAINPID and the old process
 * "ready".
 */
#ifndef XF_UPGRADE_H
#define XF_UPGRADE_H

#include <uv.h>
#include <sys/socket.h>
#include "proxy/config.h"

struct xf_worker;

/* At start, before anything else reads argv: records the executable's absolute path,
   the arguments and the working directory, and takes the inherited sockets described
   by the environment (if any). 0, or a negative errno with err filled (a malformed
   XF_INHERIT_FDS: the process must not run on sockets it does not understand). */
int xf_upgrade_init(int argc, char **argv, char *err, size_t errlen);

/* 1 when this process was started by an upgrade (XF_INHERIT_FDS was set). */
int xf_upgrade_inherited(void);
/* The next inherited listening socket bound to lc's address (getsockname, and it must
   be a listening TCP socket), or -1 when there is none left. Each fd is given once. */
int xf_upgrade_take(const xf_listener_conf *lc);
/* The same by address alone (the admin listener, proxy/admin.c). */
int xf_upgrade_take_addr(const struct sockaddr_storage *addr);
/* How many inherited sockets, not yet taken, are bound to lc's address. */
unsigned xf_upgrade_count(const xf_listener_conf *lc);
/* Close the inherited sockets no listener of the configuration took (listeners removed
   from the configuration); logs each. */
void xf_upgrade_close_unused(void);
/* New process, once its workers run: MAINPID=getpid() to systemd (waits until systemd
   has seen it), then "ready" down the pipe. No-op when not started by an upgrade. */
void xf_upgrade_ready(void);

/* Old process. on_ready(arg) runs (in loop) once the new process serves; the caller
   then drains as on SIGTERM, without STOPPING=1 (MAINPID already names the new one). */
typedef void (*xf_upgrade_ready_cb)(void *arg);
/* Start an upgrade passing the listening sockets of ws[0..n) and the admin listener's
   admin_fd (-1: none; the new process takes it by address). Refused (-EBUSY, logged)
   while one is in progress; other failures are logged and counted. */
int xf_upgrade_start(uv_loop_t *loop, struct xf_worker *ws, unsigned n, int admin_fd,
                     xf_upgrade_ready_cb on_ready, void *arg);
/* Abandon an upgrade in progress (SIGTERM before "ready"): the new process is sent
   SIGTERM. Then, and when none runs, the upgrade's handles are closed (for the end of
   the main loop). Safe to call when no upgrade ever ran. */
void xf_upgrade_shutdown(void);

#endif
