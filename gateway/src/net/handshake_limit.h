/*
 * handshake_limit.h: bounds on TLS handshakes in progress. A handshake costs tens of KB of
 * OpenSSL state until it ends, so 2,000 connections that send part of a ClientHello and stop
 * cost 100 MB. Each source address may have only so many handshakes in progress at once (an
 * attacker's address fills its own share, not the gateway), and each worker only so many in
 * all. Counts are kept per address hash in a fixed table (a collision only makes two addresses
 * share a count), under its own mutex: taken at accept and at the handshake's end.
 */
#ifndef PSAGW_HANDSHAKE_LIMIT_H
#define PSAGW_HANDSHAKE_LIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* The address's slot (its hash), for the matching leave. */
uint32_t handshake_limit_slot(const struct sockaddr *sa, socklen_t len);
/* Counts one more handshake for the slot; false (nothing counted) when it already has max. */
bool handshake_limit_enter(uint32_t slot, uint32_t max);
void handshake_limit_leave(uint32_t slot);

#endif
