/*
 * psagw_fw.h: what the firmware's non-secure side shares between its files.
 */
#ifndef PSAGW_FW_H
#define PSAGW_FW_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* modem_platform.c */
void fw_platform_init(void);             /* SysTick, UART0 and its RX interrupt */
void fw_link_hello(const char *device_id); /* introduces the device to the modem, gets the time */
bool fw_link_selftest_requested(void);     /* the modem asked for the isolation self-test */
void fw_memory_report(void);             /* logs the stack and heap high-water marks */
void fw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* fw_format.c: vsnprintf for the conversions the device code uses (%d %i %u %x %X %c %s %%,
 * flags 0 and -, a width, .* or .N precision for %s, and the l, ll, z modifiers), without
 * newlib's full printf (and its float support) in flash. Returns the length written. */
int fw_vformat(char *out, size_t cap, const char *fmt, va_list ap);

#endif
