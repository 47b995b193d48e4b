/* sdnotify: see sdnotify.h. Thin wrapper over libsystemd's sd_notifyf(3); errors of the
   notification socket are not the proxy's business (systemd logs its own side). */
#include <stdlib.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include "proxy/sdnotify.h"

int xf_sd_active(void)
{
    const char *s = getenv("NOTIFY_SOCKET");
    return s != NULL && *s != '\0';
}

void xf_sd_ready(const char *status)
{
    if (!xf_sd_active())
        return;
    if (status != NULL)
        (void)sd_notifyf(0, "READY=1\nSTATUS=%s", status);
    else
        (void)sd_notify(0, "READY=1");
}

void xf_sd_reloading(void)
{
    if (!xf_sd_active())
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long usec = (unsigned long long)ts.tv_sec * 1000000ull +
                              (unsigned long long)ts.tv_nsec / 1000ull;
    (void)sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading", usec);
}

void xf_sd_stopping(const char *status)
{
    if (!xf_sd_active())
        return;
    if (status != NULL)
        (void)sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
    else
        (void)sd_notify(0, "STOPPING=1");
}

void xf_sd_mainpid(long pid)
{
    if (xf_sd_active())
        (void)sd_notifyf(0, "MAINPID=%ld\nREADY=1", pid);
}

void xf_sd_status(const char *status)
{
    if (xf_sd_active() && status != NULL)
        (void)sd_notifyf(0, "STATUS=%s", status);
}
