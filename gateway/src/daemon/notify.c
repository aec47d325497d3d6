/*
 * notify.c: the service manager notification protocol (notify.h).
 *
 * The protocol (sd_notify(3), systemd.service(5) Type=notify): $NOTIFY_SOCKET is a path, or an
 * abstract socket name when it starts with '@'; each message is one datagram of newline-separated
 * assignments. The watchdog: $WATCHDOG_USEC is the interval, and applies to this process unless
 * $WATCHDOG_PID names another one.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addr_len;
static uint64_t watchdog_usec;

bool notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    const char *wd = getenv("WATCHDOG_USEC"), *wd_pid = getenv("WATCHDOG_PID");
    if (wd && (!wd_pid || strtol(wd_pid, NULL, 10) == (long)getpid()))
        watchdog_usec = strtoull(wd, NULL, 10);
    if (!path || !path[0])
        return false;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(notify_addr.sun_path)) {
        log_event(LOG_WARN, "notify_unusable", "detail=\"NOTIFY_SOCKET is not a socket path\"");
        return false;
    }
    memset(&notify_addr, 0, sizeof(notify_addr));
    notify_addr.sun_family = AF_UNIX;
    memcpy(notify_addr.sun_path, path, len);
    if (path[0] == '@')
        notify_addr.sun_path[0] = '\0'; /* an abstract name */
    notify_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (notify_fd < 0) {
        log_event(LOG_WARN, "notify_unusable", "detail=\"socket: %s\"", strerror(errno));
        return false;
    }
    return true;
}

void notify_send(const char *msg)
{
    if (notify_fd < 0)
        return;
    if (sendto(notify_fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
               notify_addr_len) < 0) {
        static struct log_limit limit;
        LOG_LIMITED(&limit, LOG_WARN, "notify_failed", "detail=\"%s\"", strerror(errno));
    }
}

uint64_t notify_watchdog_usec(void)
{
    return watchdog_usec;
}

void notify_done(void)
{
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
}
