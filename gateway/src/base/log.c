/*
 * log.c: key=value event logging on stderr (the daemon's standard error is its log; systemd
 * and container runtimes collect it with timestamps of their own, but we add ours so a log
 * file read later still says when).
 */
#include <stdatomic.h>

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static _Atomic int current = LOG_INFO; /* SIGHUP may change it while workers log */

void log_set_level(enum log_level level)
{
    current = level;
}

enum log_level log_get_level(void)
{
    return (enum log_level)current;
}

int log_level_parse(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if ((int)level < current)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof(line),
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), names[level], event);
    if (fmt && n > 0 && (size_t)n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}

const char *log_safe(const void *data, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;
    size_t o = 0;
    if (cap == 0)
        return out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        int plain = c > 0x20 && c < 0x7f && c != '"' && c != '=' && c != '\\';
        size_t need = plain ? 1 : 4;
        if (o + need + 1 > cap)
            break;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

bool log_limit_take(struct log_limit *l, uint64_t now_ms, uint64_t *suppressed)
{
    uint64_t next = l->next_ms;
    if (now_ms < next ||
        !atomic_compare_exchange_strong(&l->next_ms, &next, now_ms + LOG_LIMIT_INTERVAL_MS)) {
        l->suppressed++;
        return false;
    }
    *suppressed = atomic_exchange(&l->suppressed, 0);
    return true;
}

struct log_limit *log_limit_for(struct log_limit *table, size_t n, const char *kind)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = kind; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return &table[h % n];
}
