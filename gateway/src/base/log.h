/*
 * log.h: one line per event, `ts=... level=... event=... key=value ...`, on stderr.
 *
 * Values that come from the network (identities, topics, client ids) go through log_safe(),
 * which escapes anything that could forge a key=value pair or a new line. Keys and other
 * secrets are never passed here.
 */
#ifndef PSAGW_LOG_H
#define PSAGW_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int log_level_parse(const char *s);

/* Logs `event` with the printf-formatted key=value pairs in fmt (may be NULL). */
void log_event(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Renders untrusted bytes for a log value: printable ASCII other than space, '"', '=' and '\\'
 * is kept; anything else becomes \xNN. Output is NUL-terminated and cut to fit `cap`.
 * Returns out, so it can be used inside a log_event() argument list.
 */
const char *log_safe(const void *data, size_t len, char *out, size_t cap);

#define LOG_SAFE_MAX 400

/*
 * A repeated event's limiter, so that logging never floods the disk or slows the hot path: one
 * line per interval goes through, the rest are only counted, and the next line that goes
 * through reports how many were left out (suppressed=N). The counters (metrics) keep exact
 * totals either way. Zero-initialised; any thread.
 */
struct log_limit {
    _Atomic uint64_t next_ms;
    _Atomic uint64_t suppressed;
};
#define LOG_LIMIT_INTERVAL_MS 10000
/* Whether to log this occurrence now; if so, *suppressed is how many were left out since. */
bool log_limit_take(struct log_limit *l, uint64_t now_ms, uint64_t *suppressed);
/* One limiter per kind of event (a reason, say) from a small table: kinds do not hide each
 * other, and however many there are the table stays this size. */
struct log_limit *log_limit_for(struct log_limit *table, size_t n, const char *kind);

/* log_event through the limiter `limit`, with " suppressed=N" added to the line; the arguments
 * are not evaluated when the line is left out (fmt must be a literal). */
#define LOG_LIMITED(limit, level, event, fmt, ...)                                                 \
    do {                                                                                           \
        uint64_t suppressed_;                                                                      \
        if (log_limit_take((limit), clock_mono_ms(), &suppressed_))                                \
            log_event((level), (event), fmt " suppressed=%llu", __VA_ARGS__,                       \
                      (unsigned long long)suppressed_);                                            \
    } while (0)

#endif
