/*
 * cbor.h: a small, strict CBOR (RFC 8949) reader and writer for the token and record formats.
 *
 * Portable C, no heap, caller-owned buffers: the device's secure side uses the writer, the
 * gateway uses the reader on attacker-controlled input. The reader accepts only what the PSA
 * token and COSE need: definite lengths (indefinite-length items are refused), no reserved
 * additional-information values, lengths checked against the bytes that remain before any
 * use, a caller-given nesting bound for skipping unknown items. It never reads past `end`.
 *
 * The writer always emits the preferred (shortest) encoding of a head (RFC 8949 section
 * 4.2.1), as QCBOR does on TF-M, so encoded tokens match TF-M's byte for byte. With a NULL
 * buffer it only counts, which gives the size of an encoding before it is written.
 */
#ifndef PSAGW_CBOR_H
#define PSAGW_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cbor_major {
    CBOR_UINT = 0,
    CBOR_NINT = 1,
    CBOR_BSTR = 2,
    CBOR_TSTR = 3,
    CBOR_ARRAY = 4,
    CBOR_MAP = 5,
    CBOR_TAG = 6,
    CBOR_SIMPLE = 7,
};

enum cbor_err {
    CBOR_OK = 0,
    CBOR_ERR_TRUNCATED = -1, /* the item runs past the end of the input */
    CBOR_ERR_MALFORMED = -2, /* reserved or indefinite-length encoding */
    CBOR_ERR_TYPE = -3,      /* a different major type than the caller asked for */
    CBOR_ERR_RANGE = -4,     /* an integer outside the range the caller can hold */
    CBOR_ERR_DEPTH = -5,     /* nested deeper than the caller's bound */
};

struct cbor_reader {
    const uint8_t *p;
    const uint8_t *end;
};

static inline void cbor_reader_init(struct cbor_reader *r, const uint8_t *buf, size_t len)
{
    r->p = buf;
    r->end = buf + len;
}

static inline size_t cbor_remaining(const struct cbor_reader *r)
{
    return (size_t)(r->end - r->p);
}

/* Reads one head: the major type and its argument (the value, a length, a count or a tag). */
int cbor_read_head(struct cbor_reader *r, uint8_t *major, uint64_t *arg);
/* Peeks the major type of the next item without consuming it (CBOR_ERR_TRUNCATED at the end). */
int cbor_peek_major(const struct cbor_reader *r, uint8_t *major);
/* Reads a byte or text string of major type `major`; *data points into the input. */
int cbor_read_string(struct cbor_reader *r, uint8_t major, const uint8_t **data, size_t *len);
/* Reads an integer (major 0 or 1) that fits int64_t. */
int cbor_read_int(struct cbor_reader *r, int64_t *value);
/* Reads an unsigned integer (major 0). */
int cbor_read_uint(struct cbor_reader *r, uint64_t *value);
/* Reads an array or map head and checks the count against the input that remains: each
 * element needs at least one byte, so a huge declared count fails here, not in a loop. */
int cbor_read_container(struct cbor_reader *r, uint8_t major, uint64_t *count);
/* Skips one complete item, nesting at most `depth` levels. */
int cbor_skip(struct cbor_reader *r, unsigned depth);

struct cbor_writer {
    uint8_t *buf; /* NULL: count only */
    size_t cap;
    size_t len;   /* bytes written (or needed) so far */
    bool overflow;
};

static inline void cbor_writer_init(struct cbor_writer *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = buf ? cap : 0;
    w->len = 0;
    w->overflow = false;
}

void cbor_put_head(struct cbor_writer *w, uint8_t major, uint64_t arg);
void cbor_put_int(struct cbor_writer *w, int64_t value);
void cbor_put_bstr(struct cbor_writer *w, const uint8_t *data, size_t len);
void cbor_put_tstr(struct cbor_writer *w, const char *text, size_t len);
void cbor_put_raw(struct cbor_writer *w, const uint8_t *data, size_t len);
/* Bytes a head with this argument takes (1, 2, 3, 5 or 9). */
size_t cbor_head_size(uint64_t arg);

#endif
