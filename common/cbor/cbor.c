/*
 * cbor.c: the strict CBOR reader and the preferred-encoding writer (see cbor.h).
 *
 * RFC 8949 section 3: an initial byte holds the major type (3 bits) and the additional
 * information (5 bits); 0..23 is the argument itself, 24..27 say that 1, 2, 4 or 8 bytes of
 * argument follow, 28..30 are reserved (malformed), 31 is indefinite length, which the token
 * formats never use and which this reader refuses.
 */
#include "psagw/cbor.h"

#include <string.h>

int cbor_read_head(struct cbor_reader *r, uint8_t *major, uint64_t *arg)
{
    if (r->p >= r->end)
        return CBOR_ERR_TRUNCATED;
    uint8_t ib = *r->p;
    uint8_t ai = ib & 0x1f;
    size_t n;
    if (ai < 24)
        n = 0;
    else if (ai <= 27)
        n = (size_t)1 << (ai - 24);
    else
        return CBOR_ERR_MALFORMED;
    if ((size_t)(r->end - r->p) < 1 + n)
        return CBOR_ERR_TRUNCATED;
    uint64_t v = n ? 0 : ai;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | r->p[1 + i];
    *major = ib >> 5;
    *arg = v;
    r->p += 1 + n;
    return CBOR_OK;
}

int cbor_peek_major(const struct cbor_reader *r, uint8_t *major)
{
    if (r->p >= r->end)
        return CBOR_ERR_TRUNCATED;
    *major = *r->p >> 5;
    return CBOR_OK;
}

int cbor_read_string(struct cbor_reader *r, uint8_t major, const uint8_t **data, size_t *len)
{
    struct cbor_reader save = *r;
    uint8_t m;
    uint64_t n;
    int rc = cbor_read_head(r, &m, &n);
    if (rc != CBOR_OK)
        return rc;
    if (m != major) {
        *r = save;
        return CBOR_ERR_TYPE;
    }
    if (n > cbor_remaining(r)) {
        *r = save;
        return CBOR_ERR_TRUNCATED;
    }
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return CBOR_OK;
}

int cbor_read_int(struct cbor_reader *r, int64_t *value)
{
    struct cbor_reader save = *r;
    uint8_t m;
    uint64_t n;
    int rc = cbor_read_head(r, &m, &n);
    if (rc != CBOR_OK)
        return rc;
    if (m != CBOR_UINT && m != CBOR_NINT) {
        *r = save;
        return CBOR_ERR_TYPE;
    }
    if (n > (uint64_t)INT64_MAX) {
        *r = save;
        return CBOR_ERR_RANGE;
    }
    *value = m == CBOR_UINT ? (int64_t)n : -1 - (int64_t)n;
    return CBOR_OK;
}

int cbor_read_uint(struct cbor_reader *r, uint64_t *value)
{
    struct cbor_reader save = *r;
    uint8_t m;
    int rc = cbor_read_head(r, &m, value);
    if (rc != CBOR_OK)
        return rc;
    if (m != CBOR_UINT) {
        *r = save;
        return CBOR_ERR_TYPE;
    }
    return CBOR_OK;
}

int cbor_read_container(struct cbor_reader *r, uint8_t major, uint64_t *count)
{
    struct cbor_reader save = *r;
    uint8_t m;
    int rc = cbor_read_head(r, &m, count);
    if (rc != CBOR_OK)
        return rc;
    if (m != major) {
        *r = save;
        return CBOR_ERR_TYPE;
    }
    uint64_t per = major == CBOR_MAP ? 2 : 1;
    if (*count > cbor_remaining(r) / per) {
        *r = save;
        return CBOR_ERR_TRUNCATED;
    }
    return CBOR_OK;
}

int cbor_skip(struct cbor_reader *r, unsigned depth)
{
    uint8_t m;
    uint64_t n;
    int rc = cbor_read_head(r, &m, &n);
    if (rc != CBOR_OK)
        return rc;
    switch (m) {
    case CBOR_UINT:
    case CBOR_NINT:
        return CBOR_OK;
    case CBOR_BSTR:
    case CBOR_TSTR:
        if (n > cbor_remaining(r))
            return CBOR_ERR_TRUNCATED;
        r->p += n;
        return CBOR_OK;
    case CBOR_ARRAY:
    case CBOR_MAP: {
        if (depth == 0)
            return CBOR_ERR_DEPTH;
        uint64_t per = m == CBOR_MAP ? 2 : 1;
        if (n > cbor_remaining(r) / per)
            return CBOR_ERR_TRUNCATED;
        for (uint64_t i = 0; i < n * per; i++) {
            rc = cbor_skip(r, depth - 1);
            if (rc != CBOR_OK)
                return rc;
        }
        return CBOR_OK;
    }
    case CBOR_TAG:
        if (depth == 0)
            return CBOR_ERR_DEPTH;
        return cbor_skip(r, depth - 1);
    default: /* simple values and floats: the head carried the whole item */
        return CBOR_OK;
    }
}

size_t cbor_head_size(uint64_t arg)
{
    if (arg < 24)
        return 1;
    if (arg <= 0xff)
        return 2;
    if (arg <= 0xffff)
        return 3;
    if (arg <= 0xffffffffu)
        return 5;
    return 9;
}

void cbor_put_raw(struct cbor_writer *w, const uint8_t *data, size_t len)
{
    if (w->buf && !w->overflow) {
        if (len > w->cap - w->len)
            w->overflow = true;
        else if (len)
            memcpy(w->buf + w->len, data, len);
    }
    w->len += len;
}

void cbor_put_head(struct cbor_writer *w, uint8_t major, uint64_t arg)
{
    uint8_t h[9];
    size_t n = cbor_head_size(arg);
    uint8_t ai = n == 1 ? (uint8_t)arg : (uint8_t)(23 + (n == 2 ? 1 : n == 3 ? 2 : n == 5 ? 3 : 4));
    h[0] = (uint8_t)(major << 5) | ai;
    for (size_t i = 1; i < n; i++)
        h[i] = (uint8_t)(arg >> (8 * (n - 1 - i)));
    cbor_put_raw(w, h, n);
}

void cbor_put_int(struct cbor_writer *w, int64_t value)
{
    if (value >= 0)
        cbor_put_head(w, CBOR_UINT, (uint64_t)value);
    else
        cbor_put_head(w, CBOR_NINT, (uint64_t)(-1 - value));
}

void cbor_put_bstr(struct cbor_writer *w, const uint8_t *data, size_t len)
{
    cbor_put_head(w, CBOR_BSTR, len);
    cbor_put_raw(w, data, len);
}

void cbor_put_tstr(struct cbor_writer *w, const char *text, size_t len)
{
    cbor_put_head(w, CBOR_TSTR, len);
    cbor_put_raw(w, (const uint8_t *)text, len);
}
