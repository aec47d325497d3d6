/*
 * iat_json.h: attestation tokens and claims as JSON (jansson), for `psagw iat`, the
 * registry's verdict history and `psagw device show`; and claims read from JSON for
 * `psagw iat create`. Nothing secret is ever rendered: claims are public evidence.
 */
#ifndef PSAGW_IAT_JSON_H
#define PSAGW_IAT_JSON_H

#include <jansson.h>
#include <stdbool.h>

#include "psagw/iat.h"

/* The decoded claims as a JSON object (new reference). */
json_t *iat_claims_to_json(const struct iat_token *tok);
/* The same, serialized (compact, or indented with `pretty`); malloc'd, NULL on error. */
char *iat_claims_json(const struct iat_token *tok, bool pretty);

/*
 * Claims for the encoder from a JSON object (the shape iat_claims_to_json writes). Byte
 * strings are hex. The claims point into *store, which the caller frees with
 * iat_claims_store_free. On error returns -1 with a message naming the field.
 */
struct iat_claims_store {
    uint8_t *bytes;
    size_t used, cap;
};
int iat_claims_from_json(const json_t *obj, struct iat_claims *claims,
                         struct iat_claims_store *store, char *err, size_t errlen);
void iat_claims_store_free(struct iat_claims_store *store);

#endif

/* ---- Reference values as JSON ------------------------------------------------------------
 * { "implementation_ids": [ "HEX" | { "value": "HEX", "label": "..." }, ... ],
 *   "measurements": [ { "value": "HEX", "signer_id": "HEX", "type": "NSPE",
 *                       "label": "..." }, ... ] }
 * The same shape is written by `psagw refval list --json` and read by `psagw refval import`,
 * `psagw iat verify --refvals` and (later) the provisioning manifest's "refvals" member. */
#include "registry.h"
/* Calls fn for each entry; stops at the first error (message names the entry). */
int iat_json_refvals(const json_t *obj, int (*fn)(const struct refval *rv, void *arg),
                      void *arg, char *err, size_t errlen);
json_t *iat_json_refval(const struct refval *rv);
