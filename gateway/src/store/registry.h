/*
 * registry.h: the device registry, an SQLite file (created 0600, WAL mode).
 *
 * One row per device: its id (= TLS-PSK identity = MQTT client id), role, PSK, attestation
 * policy, IAK and derived instance ID, extra ACL patterns and revocation flag. The daemon
 * reads it on every handshake, so a change made with `psagw device ...` applies to the next
 * connection without a restart. Beside the devices: the attestation reference values
 * (implementation IDs, software measurements) and the history of attestation verdicts.
 */
#ifndef PSAGW_REGISTRY_H
#define PSAGW_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "psagw/iat.h"

#define DEVICE_ID_MAX 128
#define DEVICE_PSK_MIN 16
#define DEVICE_PSK_MAX 64
#define DEVICE_IAK_MAX 64 /* 32 (HMAC-SHA256, Profile Small), 48 or 64 bytes */

enum registry_rc {
    REG_OK = 0,
    REG_NOT_FOUND = -1,
    REG_EXISTS = -2,
    REG_INVALID = -3, /* a field is out of range; the message says which */
    REG_DB = -4,      /* SQLite failed; the message says how */
};

enum device_role { ROLE_SENSOR = 0, ROLE_MONITOR = 1, ROLE_CUSTOM = 2 };

/* ATTEST_DEFAULT: follow the gateway's configured default. */
enum attest_policy { ATTEST_DEFAULT = 0, ATTEST_OFF = 1, ATTEST_OPTIONAL = 2, ATTEST_REQUIRED = 3 };

struct device {
    char id[DEVICE_ID_MAX + 1];
    enum device_role role;
    enum attest_policy attestation;
    uint8_t psk[DEVICE_PSK_MAX];
    size_t psk_len;
    bool revoked;
    uint8_t iak[DEVICE_IAK_MAX]; /* initial attestation key; iak_len 0 = none registered */
    size_t iak_len;
    uint8_t instance_id[IAT_INSTANCE_ID_SIZE]; /* derived from the IAK when it was stored */
    enum iat_profile iat_profile; /* AUTO, or the claim profile this device is pinned to */
    char *acl_pub; /* newline-separated patterns (%c = client id); NULL if none; owned */
    char *acl_sub;
    int64_t created;
    int64_t updated;
};

struct registry;

/* SQLite's process-wide settings for the daemon, before it opens any database (the registry
 * or the spool): no memory statistics, which psagw never reads and which cost every SQLite
 * allocation a global mutex, taken by every worker's registry read and the spool's writes. */
void registry_process_setup(void);

/*
 * Opens (and with `create`, creates with mode 0600 and the schema) the registry at path.
 * On failure returns a negative enum registry_rc and a message in err.
 */
int registry_open(const char *path, bool create, struct registry **out, char *err, size_t errlen);
void registry_close(struct registry *r);
const char *registry_error(const struct registry *r);

/* Fills *d (which the caller then clears with device_clear). */
int registry_get(struct registry *r, const char *id, struct device *d);
int registry_add(struct registry *r, const struct device *d);
int registry_remove(struct registry *r, const char *id);
int registry_set_revoked(struct registry *r, const char *id, bool revoked);
/* Calls fn for every device, ordered by id; stops early if fn returns non-zero. */
int registry_list(struct registry *r, int (*fn)(const struct device *d, void *arg), void *arg);
/* At most `limit` devices whose id sorts after `after` ("" or NULL: from the first), by id. */
int registry_list_page(struct registry *r, const char *after, unsigned limit,
                       int (*fn)(const struct device *d, void *arg), void *arg);
int registry_count(struct registry *r, int64_t *devices);
/* Transactions, for all-or-nothing imports. */
int registry_begin(struct registry *r);
int registry_commit(struct registry *r);
void registry_rollback(struct registry *r);

/* Reference values for attestation (docs/design/token.md section 4, step 6). */
enum refval_kind { REFVAL_IMPLEMENTATION = 0, REFVAL_MEASUREMENT = 1 };

struct refval {
    int64_t id;
    enum refval_kind kind;
    uint8_t value[64]; /* implementation ID or measurement value */
    size_t value_len;
    uint8_t signer_id[64]; /* measurements only; signer_len 0 = any signer */
    size_t signer_len;
    char type[33];   /* measurement type ("SPE", "NSPE", ...), may be empty */
    char label[129]; /* free text for operators */
    int64_t created;
};

/* Adds one; an identical one (kind, value, signer) is REG_EXISTS. Sets rv->id. */
int registry_refval_add(struct registry *r, struct refval *rv);
int registry_refval_remove(struct registry *r, int64_t id);
int registry_refval_list(struct registry *r, int (*fn)(const struct refval *rv, void *arg),
                         void *arg);

/* One attestation verdict, as kept in the history. */
struct attest_record {
    const char *device;
    int64_t at_ms;       /* wall clock, milliseconds */
    bool accepted;
    const char *result;  /* iat_result_name() */
    const char *reason;  /* iat_reason() text */
    const uint8_t *token; /* the token judged, if its MAC was good (the evidence), or NULL */
    size_t token_len;
    const char *peer;
};

/* Appends verdicts in one transaction and keeps the newest `keep` per device. */
int registry_history_add(struct registry *r, const struct attest_record *recs, size_t n,
                         unsigned keep);
/* Calls fn for the newest `limit` verdicts of a device, newest first. */
int registry_history_list(struct registry *r, const char *id, unsigned limit,
                          int (*fn)(const struct attest_record *rec, void *arg), void *arg);

/* The device change log (schema 3, filled by triggers): calls fn for each device id changed
 * after `after` (ids may repeat), sets *last to the newest seq seen. */
int registry_changes_since(struct registry *r, int64_t after, int64_t *last,
                           int (*fn)(const char *id, void *arg), void *arg);
int64_t registry_change_seq(struct registry *r); /* the newest seq, 0 if none */

/* Changes whenever another connection commits to the file (PRAGMA data_version). */
int64_t registry_data_version(struct registry *r);

/* Stores the IAK (32, 48 or 64 bytes) and the instance ID derived from it. */
int registry_set_iak(struct registry *r, const char *id, const uint8_t *iak, size_t len);
int registry_set_iat_profile(struct registry *r, const char *id, enum iat_profile p);

/* Wipes the PSK and the IAK and frees the owned strings. */
void device_clear(struct device *d);

/* Validation shared by the CLI, imports and the TLS layer. */
bool device_id_valid(const char *id, size_t len);
const char *device_role_name(enum device_role role);
int device_role_parse(const char *s); /* -1 if unknown */
const char *device_policy_name(enum attest_policy p); /* an attestation policy: "required"... */
int device_policy_parse(const char *s); /* -1 if unknown; "default" is ATTEST_DEFAULT */
int device_profile_parse(const char *s);   /* auto|legacy|psa2, -1 if unknown */

#endif
