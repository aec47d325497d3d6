/*
 * modem_link.h: the framed protocol between the firmware and the host-side "UART modem"
 * (psadev-fw, device/firmware/host/), over the board's UART0 that QEMU bridges to the modem.
 *
 * A raw UART carries bytes and nothing else: the firmware could not tell a connection from a
 * refusal or a close, so it could not reconnect after a gateway restart. The modem plays the
 * part of the Wi-Fi or cellular module such boards hang off a UART: the firmware asks it to
 * open a TCP connection to the gateway (whose address the modem is configured with), sends
 * and receives that connection's bytes, and hears when it closes. The gateway sees an
 * ordinary TCP connection from the host and speaks TLS to the firmware end to end: the modem
 * never sees a key or a plaintext byte.
 *
 * Framing: SLIP (RFC 1055: END 0xC0 ends a frame, ESC 0xDB escapes END as DB DC and ESC as
 * DB DD). A frame is: type (1 byte), connection number (1 byte), payload (0..MODEM_MAX_PAYLOAD
 * bytes), CRC-16/CCITT-FALSE of the preceding bytes (2 bytes, big-endian). A frame that is too
 * long or fails its CRC is dropped whole (the stream resynchronises at the next END).
 *
 * The connection number is chosen by the firmware at each OPEN; frames about another number
 * are stale (they crossed a CLOSE on the wire) and ignored by both ends.
 */
#ifndef MODEM_LINK_H
#define MODEM_LINK_H

#include <stddef.h>
#include <stdint.h>

#define MODEM_MAX_PAYLOAD 1024u /* the firmware sends at most this much DATA per frame */
#define MODEM_RX_CHUNK 512u     /* the modem sends at most this much DATA per frame */

#define SLIP_END 0xC0u
#define SLIP_ESC 0xDBu
#define SLIP_ESC_END 0xDCu
#define SLIP_ESC_ESC 0xDDu

/* firmware -> modem */
#define MODEM_HELLO 'H' /* payload: "<protocol version> <device id>"; the modem answers TIME */
#define MODEM_OPEN 'O'  /* open a connection to the gateway; answered OPENED or REFUSED */
#define MODEM_SEND 'D'  /* bytes for the open connection */
#define MODEM_CLOSE 'C' /* close it (no answer; later frames about it are ignored) */
#define MODEM_LOG 'L'   /* a line of the firmware's log (no newline) */

/* modem -> firmware */
#define MODEM_TIME 'T'    /* payload: wall-clock milliseconds since the epoch, u64 LE */
#define MODEM_OPENED 'K'  /* the connection is up */
#define MODEM_REFUSED 'R' /* it could not be opened; payload: the reason, text */
#define MODEM_RECV 'D'    /* bytes the gateway sent */
#define MODEM_CLOSED 'X'  /* the gateway closed it or it failed; payload: the reason, text */
#define MODEM_SELFTEST 'S' /* run the isolation self-test (sent before TIME, once per modem run) */

#define MODEM_PROTOCOL_VERSION "1"

/* CRC-16/CCITT-FALSE: start with MODEM_CRC_INIT, feed the bytes in order. */
#define MODEM_CRC_INIT 0xFFFFu
static inline uint16_t modem_crc16_update(uint16_t c, const uint8_t *p, size_t n)
{
    while (n--) {
        c ^= (uint16_t)(*p++ << 8);
        for (int k = 0; k < 8; k++)
            c = (uint16_t)(c & 0x8000u ? (unsigned)(c << 1) ^ 0x1021u : (unsigned)(c << 1));
    }
    return c;
}

static inline uint16_t modem_crc16(const uint8_t *p, size_t n)
{
    return modem_crc16_update(MODEM_CRC_INIT, p, n);
}

#endif
