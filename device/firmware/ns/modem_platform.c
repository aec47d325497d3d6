/*
 * modem_platform.c: platform.h for the firmware's non-secure side: one TCP connection through
 * the host-side modem on UART0 (modem_link.h), time from the NS SysTick and the modem's clock,
 * the log as LOG frames.
 *
 * UART0 is the CMSDK APB UART (one-byte RX register, no FIFO). It is read only when the
 * application wants data: QEMU moves the next byte in from the modem's socket only once the
 * register has been read, so the modem's TCP reads, and in turn the gateway, are held back
 * while the firmware is busy; nothing is dropped and no flow control is needed on the link.
 * The CPU waits in WFI, woken by the UART's RX interrupt or the 1 kHz SysTick.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmsis.h"
#include "mbedtls/platform.h"
#include "modem_link.h"
#include "platform.h"
#include "psagw_fw.h"

#define UART0 0x40200000u
#define REG(off) (*(volatile uint32_t *)(UART0 + (off)))
#define UART_DATA 0x00u
#define UART_STATE 0x04u
#define UART_CTRL 0x08u
#define UART_INT 0x0Cu
#define UART_BAUDDIV 0x10u
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u
#define CTRL_TX_EN 0x1u
#define CTRL_RX_EN 0x2u
#define CTRL_RX_INT_EN 0x8u
#define INT_RX 0x2u

#define OPEN_TIMEOUT_MS 15000u
/* the tick: 10 ms is fine for keep-alive, backoff and timeouts, and an idle device wakes 100
 * times a second instead of 1000: under QEMU a device publishing every 2 s then costs 1.5 % of
 * a host core instead of 6 %, for a TLS handshake of ~45 ms instead of ~25 (bench/firmware.sh;
 * QEMU moves the modem's bytes in more slowly when the guest wakes less often) */
#define TICK_MS 10u
#define SOCK 1 /* the one connection's descriptor */

static volatile uint64_t ticks_ms;
static uint64_t wall_base_ms, wall_base_tick; /* from the modem's TIME */
static bool have_time, selftest;

static struct {
    uint8_t frame[2 + MODEM_RX_CHUNK + 2]; /* decoded frame being received */
    size_t len;
    bool esc, overflow;
} rx;

static struct {
    uint8_t conn;       /* this connection's number */
    bool open, closed;  /* closed: the gateway's end went away */
    int opened;         /* the answer to OPEN: 1 opened, -1 refused, 0 waiting */
    uint8_t data[MODEM_RX_CHUNK];
    size_t off, len;    /* data[off..len) not yet handed to the application */
} link;

void SysTick_Handler(void)
{
    ticks_ms += TICK_MS;
}

void UARTRX0_Handler(void)
{
    REG(UART_INT) = INT_RX; /* only wakes the CPU: the byte is read where it is wanted */
}

/* ---- bytes and frames ------------------------------------------------------------------- */

static void tx_byte(uint8_t b)
{
    while (REG(UART_STATE) & STATE_TX_FULL) {
    }
    REG(UART_DATA) = b;
}

static void tx_escaped(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == SLIP_END) {
            tx_byte(SLIP_ESC);
            tx_byte(SLIP_ESC_END);
        } else if (p[i] == SLIP_ESC) {
            tx_byte(SLIP_ESC);
            tx_byte(SLIP_ESC_ESC);
        } else {
            tx_byte(p[i]);
        }
    }
}

static void send_frame(uint8_t type, uint8_t conn, const uint8_t *payload, size_t n)
{
    uint8_t head[2] = {type, conn};
    uint16_t crc = modem_crc16_update(modem_crc16(head, 2), payload, n);
    uint8_t tail[2] = {(uint8_t)(crc >> 8), (uint8_t)crc};
    tx_byte(SLIP_END); /* also ends any garbage the modem may have seen before */
    tx_escaped(head, 2);
    tx_escaped(payload, n);
    tx_escaped(tail, 2);
    tx_byte(SLIP_END);
}

static void handle_frame(const uint8_t *f, size_t n)
{
    if (n < 4 || modem_crc16(f, n - 2) != (uint16_t)(f[n - 2] << 8 | f[n - 1]))
        return;
    uint8_t type = f[0], conn = f[1];
    const uint8_t *p = f + 2;
    size_t len = n - 4;
    if (type == MODEM_TIME && len == 8) {
        uint64_t t = 0;
        for (int i = 7; i >= 0; i--)
            t = t << 8 | p[i];
        wall_base_ms = t;
        wall_base_tick = ticks_ms;
        have_time = true;
        return;
    }
    if (type == MODEM_SELFTEST) {
        selftest = true;
        return;
    }
    if (conn != link.conn)
        return; /* about an earlier connection */
    switch (type) {
    case MODEM_OPENED:
        link.opened = 1;
        break;
    case MODEM_REFUSED:
        link.opened = -1;
        fw_log("modem: connection refused: %.*s", (int)len, (const char *)p);
        break;
    case MODEM_RECV:
        if (link.open && len <= sizeof(link.data) - link.len) {
            memcpy(link.data + link.len, p, len);
            link.len += len;
        }
        break;
    case MODEM_CLOSED:
        link.closed = true;
        break;
    default:
        break;
    }
}

/* Reads UART bytes while there are some and the application has room for a frame's worth;
 * true when at least one byte was read. */
static bool rx_pump(void)
{
    bool any = false;
    while (link.len == 0 && (REG(UART_STATE) & STATE_RX_FULL)) {
        uint8_t b = (uint8_t)REG(UART_DATA);
        any = true;
        if (b == SLIP_END) {
            if (rx.len && !rx.overflow)
                handle_frame(rx.frame, rx.len);
            rx.len = 0;
            rx.esc = rx.overflow = false;
            continue;
        }
        if (b == SLIP_ESC) {
            rx.esc = true;
            continue;
        }
        if (rx.esc) {
            b = b == SLIP_ESC_END ? SLIP_END : b == SLIP_ESC_ESC ? SLIP_ESC : b;
            rx.esc = false;
        }
        if (rx.len < sizeof(rx.frame))
            rx.frame[rx.len++] = b;
        else
            rx.overflow = true;
    }
    return any;
}

/* Waits for an interrupt unless a byte is already there. */
static void idle(void)
{
    __disable_irq();
    if (!(REG(UART_STATE) & STATE_RX_FULL))
        __WFI();
    __enable_irq();
}

/* ---- memory high-water marks ------------------------------------------------------------ */

extern uint32_t __StackLimit, __StackTop, __HeapBase, __HeapLimit;
#define STACK_PAINT 0xA5A5A5A5u

/* Paints the stack below the caller's frame, so that fw_memory_report can tell how deep it
 * has been used since. */
static void __attribute__((noinline)) paint_stack(void)
{
    volatile uint32_t *p = &__StackLimit;
    uint32_t *sp = (uint32_t *)__get_MSP();
    if (__get_CONTROL() & 2u)
        sp = (uint32_t *)__get_PSP();
    while (p < sp - 16)
        *p++ = STACK_PAINT;
}

/* Mbed TLS's allocations (the only ones), counted: in use now and the most ever. */
static size_t heap_now, heap_peak;

static void *counted_calloc(size_t n, size_t size)
{
    if (size && n > (SIZE_MAX - 8) / size)
        return NULL;
    size_t len = n * size;
    uint8_t *p = calloc(1, len + 8);
    if (!p)
        return NULL;
    memcpy(p, &len, sizeof(len));
    heap_now += len;
    if (heap_now > heap_peak)
        heap_peak = heap_now;
    return p + 8;
}

static void counted_free(void *q)
{
    if (!q)
        return;
    uint8_t *p = (uint8_t *)q - 8;
    size_t len;
    memcpy(&len, p, sizeof(len));
    heap_now -= len;
    free(p);
}

void fw_memory_report(void)
{
    const uint32_t *p = &__StackLimit;
    while (p < &__StackTop && *p == STACK_PAINT)
        p++;
    size_t stack_size = (size_t)((&__StackTop - &__StackLimit) * 4);
    size_t used = (size_t)((&__StackTop - p) * 4);
    fw_log("memory: stack high-water %u of %u B; Mbed TLS heap peak %u B (+8 B a block), %u B "
           "in use, of %u B", (unsigned)used, (unsigned)stack_size, (unsigned)heap_peak,
           (unsigned)heap_now, (unsigned)((&__HeapLimit - &__HeapBase) * 4));
}

void fw_platform_init(void)
{
    paint_stack();
    mbedtls_platform_set_calloc_free(counted_calloc, counted_free);
    SystemCoreClockUpdate();
    SysTick_Config(SystemCoreClock / (1000u / TICK_MS));
    REG(UART_BAUDDIV) = 16;
    REG(UART_CTRL) = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INT_EN;
    NVIC_ClearPendingIRQ(UARTRX0_IRQn);
    NVIC_EnableIRQ(UARTRX0_IRQn);
}

void fw_link_hello(const char *device_id)
{
    char hello[8 + 130];
    size_t n = strlen(MODEM_PROTOCOL_VERSION " ");
    memcpy(hello, MODEM_PROTOCOL_VERSION " ", n);
    size_t k = strlen(device_id);
    if (k > sizeof(hello) - n)
        k = sizeof(hello) - n;
    memcpy(hello + n, device_id, k);
    send_frame(MODEM_HELLO, 0, (const uint8_t *)hello, n + k);
    /* the modem answers with the time; go on without it after a while */
    uint64_t until = ticks_ms + 2000;
    while (!have_time && ticks_ms < until)
        if (!rx_pump())
            idle();
}

bool fw_link_selftest_requested(void)
{
    return selftest;
}

/* ---- platform.h ---------------------------------------------------------------------------- */

int plat_tcp_connect(const char *host, const char *port)
{
    (void)host; /* the modem knows the gateway's address */
    (void)port;
    if (link.open)
        plat_tcp_close(SOCK);
    link.conn++;
    link.open = link.closed = false;
    link.opened = 0;
    link.off = link.len = 0;
    send_frame(MODEM_OPEN, link.conn, NULL, 0);
    uint64_t until = ticks_ms + OPEN_TIMEOUT_MS;
    while (link.opened == 0 && ticks_ms < until)
        if (!rx_pump())
            idle();
    if (link.opened != 1)
        return -1;
    link.open = true;
    return SOCK;
}

int plat_tcp_send(int sock, const uint8_t *buf, size_t len)
{
    if (sock != SOCK || !link.open || link.closed)
        return -1;
    size_t n = len > MODEM_MAX_PAYLOAD ? MODEM_MAX_PAYLOAD : len;
    send_frame(MODEM_SEND, link.conn, buf, n);
    return (int)n;
}

int plat_tcp_recv(int sock, uint8_t *buf, size_t len)
{
    if (sock != SOCK || !link.open)
        return -1;
    if (link.off == link.len) {
        link.off = link.len = 0;
        /* nothing yet: sleep until the UART (or the tick) interrupts rather than have the
         * caller (Mbed TLS, on WANT_READ) spin; a spinning vCPU also holds QEMU's UART back */
        if (!rx_pump() && !link.closed) {
            idle();
            rx_pump();
        }
    }
    if (link.off < link.len) {
        size_t n = link.len - link.off;
        if (n > len)
            n = len;
        memcpy(buf, link.data + link.off, n);
        link.off += n;
        return (int)n;
    }
    return link.closed ? 0 : PLAT_WOULD_BLOCK;
}

int plat_tcp_wait(int sock, int timeout_ms)
{
    if (sock != SOCK || !link.open)
        return -1;
    uint64_t until = ticks_ms + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        if (link.off < link.len || link.closed)
            return 1;
        if (link.off == link.len) {
            link.off = link.len = 0;
            if (rx_pump())
                continue;
        }
        if (ticks_ms >= until)
            return 0;
        idle();
    }
}

void plat_tcp_close(int sock)
{
    if (sock != SOCK || !link.open)
        return;
    send_frame(MODEM_CLOSE, link.conn, NULL, 0);
    fw_memory_report();
    link.open = false;
    link.off = link.len = 0;
}

uint64_t plat_mono_ms(void)
{
    return ticks_ms;
}

uint64_t plat_wall_ms(void)
{
    return have_time ? wall_base_ms + (ticks_ms - wall_base_tick) : ticks_ms;
}

void plat_sleep_ms(uint32_t ms)
{
    uint64_t until = ticks_ms + ms;
    while (ticks_ms < until)
        __WFI();
}

/* ---- the log ----------------------------------------------------------------------------- */

/* One line of the log, as a LOG frame (a trailing newline dropped); the formatted length. */
static int log_line(const char *fmt, va_list ap)
{
    char line[200];
    int n = fw_vformat(line, sizeof(line), fmt, ap);
    int len = n;
    while (n > 0 && line[n - 1] == '\n')
        n--;
    send_frame(MODEM_LOG, 0, (const uint8_t *)line, (size_t)n);
    return len;
}

void fw_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(fmt, ap);
    va_end(ap);
}

/* The application's printf lines go to the log too. */
int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = log_line(fmt, ap);
    va_end(ap);
    return n;
}

int fprintf(FILE *f, const char *fmt, ...)
{
    (void)f;
    va_list ap;
    va_start(ap, fmt);
    int n = log_line(fmt, ap);
    va_end(ap);
    return n;
}
