/* hex.h: strict hex for keys, ids and nonces on command lines, in files and in logs. */
#ifndef PSAGW_HEX_H
#define PSAGW_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Decodes an even number of hex digits (trailing newline, CR and spaces ignored) into out.
 * Returns the byte count, or -1 if the text is not hex or does not fit in cap. */
int hex_parse(const char *hex, uint8_t *out, size_t cap);
/* Writes 2*len hex digits and a NUL into out (cap >= 2*len+1); returns out. */
char *hex_encode(const uint8_t *in, size_t len, char *out, size_t cap);
/* Reads a key file: hex on the first line, or raw bytes if the file is not hex. Returns the
 * byte count or -1 (with a message on stderr prefixed by `who`). The caller wipes out. */
int hex_read_key_file(const char *who, const char *path, uint8_t *out, size_t cap);

#endif
