/*
 * fw_format.c: a small vsnprintf for the firmware's log (psagw_fw.h says what it formats).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "psagw_fw.h"

struct out {
    char *p;
    size_t cap, len;
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->cap)
        o->p[o->len] = c;
    o->len++;
}

static void put_padded(struct out *o, const char *s, size_t n, int width, bool left, char pad)
{
    int fill = width > (int)n ? width - (int)n : 0;
    if (!left)
        while (fill-- > 0)
            put(o, pad);
    for (size_t i = 0; i < n; i++)
        put(o, s[i]);
    if (left)
        while (fill-- > 0)
            put(o, ' ');
}

int fw_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    struct out o = {buf, cap, 0};
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;
        bool left = false;
        char pad = ' ';
        for (;; fmt++) {
            if (*fmt == '-')
                left = true;
            else if (*fmt == '0')
                pad = '0';
            else
                break;
        }
        int width = 0, prec = -1;
        if (*fmt == '*') {
            width = va_arg(ap, int);
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        if (*fmt == '.') {
            fmt++;
            prec = 0;
            if (*fmt == '*') {
                prec = va_arg(ap, int);
                fmt++;
            }
            while (*fmt >= '0' && *fmt <= '9')
                prec = prec * 10 + (*fmt++ - '0');
        }
        int lng = 0; /* 1 l, 2 ll, 3 z */
        if (*fmt == 'l') {
            lng = 1;
            if (*++fmt == 'l') {
                lng = 2;
                fmt++;
            }
        } else if (*fmt == 'z') {
            lng = 3;
            fmt++;
        }
        char num[24];
        size_t n = 0;
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = lng == 2 ? va_arg(ap, long long) : lng ? va_arg(ap, long) : va_arg(ap, int);
            uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            do {
                num[sizeof(num) - 1 - n++] = (char)('0' + u % 10);
                u /= 10;
            } while (u);
            if (v < 0)
                num[sizeof(num) - 1 - n++] = '-';
            put_padded(&o, num + sizeof(num) - n, n, width, left, pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t u = lng == 2   ? va_arg(ap, unsigned long long)
                         : lng == 3 ? va_arg(ap, size_t)
                         : lng      ? va_arg(ap, unsigned long)
                                    : va_arg(ap, unsigned);
            unsigned base = *fmt == 'u' ? 10 : 16;
            const char *digits = *fmt == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
            do {
                num[sizeof(num) - 1 - n++] = digits[u % base];
                u /= base;
            } while (u);
            put_padded(&o, num + sizeof(num) - n, n, width, left, pad);
            break;
        }
        case 'c':
            num[0] = (char)va_arg(ap, int);
            put_padded(&o, num, 1, width, left, ' ');
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            size_t len = 0;
            while (s[len] && (prec < 0 || len < (size_t)prec))
                len++;
            put_padded(&o, s, len, width, left, ' ');
            break;
        }
        case '%':
            put(&o, '%');
            break;
        case '\0':
            fmt--;
            break;
        default:
            put(&o, '%');
            put(&o, *fmt);
            break;
        }
    }
    if (cap)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return (int)(o.len < cap ? o.len : cap ? cap - 1 : 0);
}

/* snprintf for Mbed TLS's and the clients' messages, on the same formatter */
int snprintf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = fw_vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

int vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    return fw_vformat(buf, cap, fmt, ap);
}
