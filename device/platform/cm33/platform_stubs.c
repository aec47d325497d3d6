/*
 * platform_stubs.c: the board side of platform.h and of the psa_call channel, as stand-ins
 * for the Cortex-M33 footprint build (scripts/footprint.sh). On a real board these are the
 * TCP/IP stack (lwIP, FreeRTOS+TCP), the RTOS tick and TF-M's NS interface (psa_call through
 * the secure gateway veneers); here they only complete the link, so the sizes measured are
 * those of our code and Mbed TLS, not of a network stack.
 */
#include "../ipc.h"
#include "../platform.h"

int plat_tcp_connect(const char *host, const char *port)
{
    (void)host;
    (void)port;
    return -1;
}

int plat_tcp_send(int sock, const uint8_t *buf, size_t len)
{
    (void)sock;
    (void)buf;
    return (int)len;
}

int plat_tcp_recv(int sock, uint8_t *buf, size_t len)
{
    (void)sock;
    (void)buf;
    (void)len;
    return 0;
}

int plat_tcp_wait(int sock, int timeout_ms)
{
    (void)sock;
    (void)timeout_ms;
    return 0;
}

void plat_tcp_close(int sock)
{
    (void)sock;
}

static volatile uint64_t ticks_ms; /* the RTOS tick would advance it */

uint64_t plat_mono_ms(void)
{
    return ticks_ms;
}

uint64_t plat_wall_ms(void)
{
    return ticks_ms;
}

void plat_sleep_ms(uint32_t ms)
{
    ticks_ms += ms;
}

int32_t ipc_call(int fd, uint32_t service, int32_t type, const struct ipc_invec *in, size_t n_in,
                 struct ipc_outvec *out, size_t n_out)
{
    (void)fd;
    (void)service;
    (void)type;
    (void)in;
    (void)n_in;
    (void)out;
    (void)n_out;
    return -145; /* PSA_ERROR_COMMUNICATION_FAILURE: the veneer call on a real board */
}
