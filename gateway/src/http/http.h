/*
 * http.h: the operator's HTTP endpoint (docs/observability.md): Prometheus metrics, health and
 * readiness, and a read-only JSON API over devices, verdicts, the spool and the registry.
 *
 * Off unless configured (`http = { listen = ...; token_file = ...; }` or --http). It runs on
 * its own thread (libmicrohttpd's internal polling thread, epoll), never on the brokers'
 * workers: it reads counters (atomics), takes the broker lock only to copy what it shows, and
 * the registry's lock for one page of devices at a time. Everything but /healthz needs the
 * bearer token; requests are limited in size, in connections per address and in rate per
 * address; slow clients are timed out.
 */
#ifndef PSAGW_HTTP_H
#define PSAGW_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

#include "context.h"

struct http_server;

/* Starts the endpoint if the configuration has one (gw->cfg.http_listen); 0 when it is up or
 * not configured, -1 with the reason in err. */
int http_start(struct gateway *gw, char *err, size_t errlen);
/* Re-reads the token file (SIGHUP); keeps the old token if the file cannot be used. */
void http_reload(struct gateway *gw);
void http_stop(struct gateway *gw);
/* "IPv4:PORT", "[IPv6]:PORT" or "localhost:PORT" into a socket address (the endpoint's listen
 * address, and where `psagw status` finds it); -1 with the reason in err. */
int http_parse_address(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *err,
                       size_t errlen);

#endif
