/*
 * record_json.h: the gateway's view of docs/design/wire.md section 4's protected records: with the group
 * key (cloud.group_key_file) it opens a device's record (AES-CCM or HMAC, with the topic as
 * external AAD) and writes the reading as JSON for the cloud (routes with payload = "json").
 */
#ifndef PSAGW_RECORD_JSON_H
#define PSAGW_RECORD_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "psagw/record.h"

#define RECORD_GROUP_KEY_MAX 64

struct record_keys {
    uint8_t group[RECORD_GROUP_KEY_MAX];
    size_t len; /* 0: no key */
};

/* Reads the group key (hex or raw, 16..64 bytes); 0 or -1 with err. */
int record_keys_load(const char *path, struct record_keys *k, char *err, size_t errlen);
void record_keys_wipe(struct record_keys *k);

/*
 * Opens the record `in` that device `publisher` published on `topic` and writes
 * {"device","seq","time_ms","temperature_c","humidity_pct","protection"} to out (NUL-terminated).
 * Returns the JSON length, or -1 with *why (not a record, wrong key or forged, a record of
 * another device, too long). The record opened is also left in *opened (may be NULL).
 */
int record_to_json(const struct record_keys *k, const char *publisher, const char *topic,
                   size_t topic_len, const uint8_t *in, size_t len, char *out, size_t cap,
                   struct record *opened, const char **why);

#endif
