/*
 * sdnotify: the service manager's readiness protocol (sd_notify(3), libsystemd), for
 * "Type=notify" units. Every call is a no-op when NOTIFY_SOCKET is not set (not run by
 * systemd, or by a unit of another type), so callers never test for systemd themselves.
 *
 * States xmppfront sends (systemd.service(5) "Type=notify" / "notify-reload"):
 *   READY=1       once every listener is bound and the workers run (main.c)
 *   RELOADING=1   + MONOTONIC_USEC when a reload begins; READY=1 when it ends (ok or not)
 *   STOPPING=1    when a drain begins (SIGTERM, or the old process of a binary upgrade)
 *   MAINPID=N     the new process of a binary upgrade, once it serves (NotifyAccess=all)
 *   STATUS=...    a one-line human summary, shown by `systemctl status`
 */
#ifndef XF_SDNOTIFY_H
#define XF_SDNOTIFY_H

/* 1 when NOTIFY_SOCKET is set, else 0. */
int xf_sd_active(void);
/* READY=1 with STATUS=status (status may be NULL). */
void xf_sd_ready(const char *status);
/* RELOADING=1 and MONOTONIC_USEC=now (systemd >= 253 needs it for notify-reload). */
void xf_sd_reloading(void);
/* STOPPING=1 with STATUS=status (may be NULL). */
void xf_sd_stopping(const char *status);
/* MAINPID=pid (the process that now serves) and READY=1. */
void xf_sd_mainpid(long pid);
/* STATUS=status. */
void xf_sd_status(const char *status);

#endif
