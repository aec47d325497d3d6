/*
 * end.h: the one place a connection is ended for a protocol reason. Protocol steps that cannot
 * go on return a struct conn_end (net/conn.h); handle_packet, the timers and the daemon pass it
 * here. proto_end picks, from one table keyed by the reason code, the log event and the counter,
 * and closes the connection (net/conn.c sends the MQTT 5 DISCONNECT through the closing
 * handler, and logs the disconnect).
 */
#ifndef PSAGW_END_H
#define PSAGW_END_H

#include "conn.h"

/* Ends c for `why` (nothing when why.reason is CONN_END_NONE). Broker lock held or not. */
void proto_end(struct conn *c, struct conn_end why);

#endif
