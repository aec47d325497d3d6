/*
 * notify.h: telling the service manager how the daemon is doing, with systemd's notification
 * protocol (sd_notify(3)): a datagram of "KEY=value" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET. Written here in a few lines rather than linking libsystemd; without
 * $NOTIFY_SOCKET (not started by systemd with Type=notify) every call does nothing.
 */
#ifndef PSAGW_NOTIFY_H
#define PSAGW_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Reads $NOTIFY_SOCKET and $WATCHDOG_USEC / $WATCHDOG_PID once; false if there is no manager
 * to tell (or its socket cannot be used: logged). */
bool notify_init(void);
/* Sends one message ("READY=1", "STATUS=...", several lines joined by '\n'). */
void notify_send(const char *msg);
/* The watchdog interval the manager expects pings within (WatchdogSec=), in microseconds; 0
 * when there is no watchdog for this process. */
uint64_t notify_watchdog_usec(void);
/* Closes the socket. */
void notify_done(void);

#endif
