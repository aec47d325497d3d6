/*
 * platform.h: what the device's portable code (NSPE application, MQTT and TLS clients) needs
 * from the board: a TCP connection, a clock, a sleep. linux/platform_linux.c implements it with
 * sockets for the emulator; on a board it is lwIP (or FreeRTOS+TCP) and the RTOS tick, and
 * cm33/platform_stubs.c stands in for those to complete the Cortex-M33 footprint link.
 */
#ifndef PSADEV_PLATFORM_H
#define PSADEV_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* A connected TCP socket to host:port, or -1. */
int plat_tcp_connect(const char *host, const char *port);
/* Bytes sent (> 0), PLAT_WOULD_BLOCK, or -1. */
int plat_tcp_send(int sock, const uint8_t *buf, size_t len);
/* Bytes received (> 0), 0 when the peer closed, PLAT_WOULD_BLOCK, or -1. */
int plat_tcp_recv(int sock, uint8_t *buf, size_t len);
/* 1 when readable, 0 on timeout (or an interrupting signal), -1 on error. */
int plat_tcp_wait(int sock, int timeout_ms);
void plat_tcp_close(int sock);
#define PLAT_WOULD_BLOCK (-2)

uint64_t plat_mono_ms(void);   /* monotonic milliseconds */
uint64_t plat_wall_ms(void);   /* wall clock, milliseconds since the epoch */
void plat_sleep_ms(uint32_t ms);

#endif
