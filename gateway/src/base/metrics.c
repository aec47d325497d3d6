/* metrics.c: renders the counters as one key=value log line. */
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>

#include "log.h"

void metrics_log(const struct metrics *m, uint64_t connections, uint64_t sessions,
                 uint64_t retained)
{
    char line[3072];
    int n = snprintf(line, sizeof(line),
                     "connections=%" PRIu64 " sessions=%" PRIu64 " retained=%" PRIu64,
                     connections, sessions, retained);
#define X(name, help)                                                                             \
    if (n > 0 && (size_t)n < sizeof(line))                                                        \
        n += snprintf(line + n, sizeof(line) - (size_t)n, " " #name "=%" PRIu64, m->name);
    METRICS_FIELDS(X)
#undef X
    log_event(LOG_INFO, "stats", "%s", line);
}
