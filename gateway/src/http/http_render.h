/*
 * http_render.h: what the HTTP endpoint's pages are made of, inside the http layer: a growing
 * text buffer and the renderers of /metrics (http_metrics.c) and /api (http_api.c).
 */
#ifndef PSAGW_HTTP_RENDER_H
#define PSAGW_HTTP_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"

struct http_buf {
    char *p;
    size_t len, cap;
    bool oom; /* an append failed: the page is incomplete and must not be sent */
};

void http_buf_printf(struct http_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void http_buf_free(struct http_buf *b);

/* The Prometheus text exposition format (version 0.0.4) of every counter, gauge and
 * histogram. */
void http_metrics_render(struct gateway *gw, struct http_buf *b);

/* A query parameter, or NULL. */
typedef const char *(*http_param_fn)(void *conn, const char *name);

/* /api/... : fills b with JSON and returns the HTTP status (404 for an unknown path). */
int http_api_render(struct gateway *gw, const char *path, http_param_fn param, void *conn,
                    struct http_buf *b);
/* /readyz: fills b with JSON; returns 200 when ready, 503 when not. */
int http_ready_render(struct gateway *gw, struct http_buf *b);

#endif
