/*
 * registry.h: the device registry, an SQLite file (created 0600, WAL mode).
 *
 * One row per device: its id (= TLS-PSK identity = MQTT client id), role, PSK, attestation
 * policy, extra ACL patterns and revocation flag. The daemon reads it on every handshake, so a
 * change made with `psagw device ...` applies to the next connection without a restart.
 */
#ifndef PSAGW_REGISTRY_H
#define PSAGW_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVICE_ID_MAX 128
#define DEVICE_PSK_MIN 16
#define DEVICE_PSK_MAX 64

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
    char *acl_pub; /* newline-separated patterns (%c = client id); NULL if none; owned */
    char *acl_sub;
    int64_t created;
    int64_t updated;
};

struct registry;

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
/* Transactions, for all-or-nothing imports. */
int registry_begin(struct registry *r);
int registry_commit(struct registry *r);
void registry_rollback(struct registry *r);

/* Changes whenever another connection commits to the file (PRAGMA data_version). */
int64_t registry_data_version(struct registry *r);

/* Wipes the PSK and frees the owned strings. */
void device_clear(struct device *d);

/* Validation shared by the CLI, imports and the TLS layer. */
bool device_id_valid(const char *id, size_t len);
const char *device_role_name(enum device_role role);
int device_role_parse(const char *s); /* -1 if unknown */
const char *attest_policy_name(enum attest_policy p);
int attest_policy_parse(const char *s); /* -1 if unknown; "default" is ATTEST_DEFAULT */

#endif
