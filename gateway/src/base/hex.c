/* hex.c: see hex.h. */
#include "hex.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int digit(char ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

int hex_parse(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex);
    while (n > 0 && (hex[n - 1] == '\n' || hex[n - 1] == '\r' || hex[n - 1] == ' '))
        n--;
    if (n == 0 || n % 2 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = digit(hex[i]), lo = digit(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(n / 2);
}

char *hex_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    static const char d[] = "0123456789abcdef";
    size_t i = 0;
    for (; i < len && 2 * i + 2 < cap; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * i] = '\0';
    return out;
}

int hex_read_key_file(const char *who, const char *path, uint8_t *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot read %s: %s\n", who, path, strerror(errno));
        return -1;
    }
    char buf[512];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    buf[n] = '\0';
    int len = -1;
    if (!more && n > 0) {
        /* hex text (trailing newline allowed), else the raw bytes of the whole file */
        if (!memchr(buf, '\0', n))
            len = hex_parse(buf, out, cap);
        if (len < 0 && n <= cap) {
            memcpy(out, buf, n);
            len = (int)n;
        }
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    if (len < 0)
        fprintf(stderr, "%s: %s must hold the key as hex on its first line, or as raw bytes "
                        "(at most %zu)\n",
                who, path, cap);
    return len;
}
