/*
 * registry.c: the SQLite-backed device registry.
 *
 * WAL mode lets `psagw device ...` write while the daemon reads. The file is created 0600
 * before SQLite opens it because it holds PSKs; SQLite gives its -wal and -shm files the
 * permissions of the database file. PSKs read out of SQLite are copied into the caller's
 * struct and the caller wipes them (device_clear).
 */
#include "registry.h"

#include "psagw/iat.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct registry {
    sqlite3 *db;
    sqlite3_stmt *get;
    char err[256];
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS devices ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('sensor','monitor','custom')),"
    " psk BLOB NOT NULL CHECK (length(psk) BETWEEN 16 AND 64),"
    " attestation TEXT NOT NULL DEFAULT 'default',"
    " acl_pub TEXT,"
    " acl_sub TEXT,"
    " revoked INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);"
    "INSERT OR IGNORE INTO meta VALUES ('schema_version', '1');";

/* Schema 2 (attestation): each step runs once, in one transaction, in order. */
static const char *const migrations[] = {
    /* 1 -> 2 */
    "ALTER TABLE devices ADD COLUMN iak BLOB CHECK (iak IS NULL OR length(iak) IN (32,48,64));"
    "ALTER TABLE devices ADD COLUMN instance_id BLOB;"
    "ALTER TABLE devices ADD COLUMN iat_profile TEXT NOT NULL DEFAULT 'auto';"
    "CREATE TABLE refvals ("
    " id INTEGER PRIMARY KEY,"
    " kind TEXT NOT NULL CHECK (kind IN ('implementation','measurement')),"
    " value BLOB NOT NULL CHECK (length(value) BETWEEN 1 AND 64),"
    " signer_id BLOB NOT NULL DEFAULT x'' CHECK (length(signer_id) <= 64),"
    " type TEXT NOT NULL DEFAULT '',"
    " label TEXT NOT NULL DEFAULT '',"
    " created INTEGER NOT NULL,"
    " UNIQUE (kind, value, signer_id));"
    "CREATE TABLE attestation_history ("
    " id INTEGER PRIMARY KEY,"
    " device TEXT NOT NULL,"
    " at_ms INTEGER NOT NULL,"
    " accepted INTEGER NOT NULL,"
    " result TEXT NOT NULL,"
    " reason TEXT NOT NULL,"
    " peer TEXT,"
    " token BLOB);"
    "CREATE INDEX attestation_history_device ON attestation_history (device, id);",
    /* 2 -> 3: a log of changed device ids, so the daemon re-checks only those connections */
    "CREATE TABLE device_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL);"
    "CREATE TRIGGER devices_inserted AFTER INSERT ON devices"
    " BEGIN INSERT INTO device_changes (id) VALUES (NEW.id); END;"
    "CREATE TRIGGER devices_updated AFTER UPDATE ON devices"
    " BEGIN INSERT INTO device_changes (id) VALUES (OLD.id); END;"
    "CREATE TRIGGER devices_deleted AFTER DELETE ON devices"
    " BEGIN INSERT INTO device_changes (id) VALUES (OLD.id); END;",
};
#define SCHEMA_VERSION 3

static int migrate(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int version = 0;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st,
                           NULL) != SQLITE_OK)
        goto fail;
    if (sqlite3_step(st) == SQLITE_ROW)
        version = atoi((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (version < 1 || version > SCHEMA_VERSION) {
        snprintf(err, errlen, "unsupported registry schema version %d (this psagw knows 1..%d)",
                 version, SCHEMA_VERSION);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    for (int v = version; v < SCHEMA_VERSION; v++)
        if (sqlite3_exec(db, migrations[v - 1], NULL, NULL, NULL) != SQLITE_OK)
            goto fail;
    char sql[96];
    snprintf(sql, sizeof(sql), "UPDATE meta SET value = '%d' WHERE key = 'schema_version'",
             SCHEMA_VERSION);
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "schema upgrade failed: %s", sqlite3_errmsg(db));
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

#define DEVICE_COLUMNS                                                                         \
    "id, role, psk, attestation, acl_pub, acl_sub, revoked, created, updated, iak,"            \
    " instance_id, iat_profile"

static int db_fail(struct registry *r, const char *what)
{
    snprintf(r->err, sizeof(r->err), "%s: %s", what, sqlite3_errmsg(r->db));
    return REG_DB;
}

void registry_process_setup(void)
{
    /* SQLITE_MISUSE once SQLite is initialised (a second gateway in a test's process): then
     * the statistics stay on, which costs time only */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int registry_open(const char *path, bool create, struct registry **out, char *err, size_t errlen)
{
    *out = NULL;
    if (create && access(path, F_OK) != 0) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create the registry %s: %s", path, strerror(errno));
            return REG_DB;
        }
        if (fd >= 0)
            close(fd);
    }
    if (access(path, R_OK | W_OK) != 0) {
        /* it exists (or was just made) but this user cannot use it: say so, not "create" */
        if (errno == EACCES || errno == EROFS) {
            snprintf(err, errlen,
                     "the registry %s cannot be read and written by this user (%s); the daemon "
                     "and the device commands need both (check its owner and mode, 0600)",
                     path, strerror(errno));
            return REG_DB;
        }
    }
    if (!create && access(path, R_OK) != 0) {
        snprintf(err, errlen, "cannot open registry %s: %s", path, strerror(errno));
        return REG_DB;
    }
    struct registry *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return REG_DB;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &r->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open registry %s: %s", path,
                 r->db ? sqlite3_errmsg(r->db) : "out of memory");
        registry_close(r);
        return REG_DB;
    }
    sqlite3_busy_timeout(r->db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(r->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     &msg) != SQLITE_OK ||
        sqlite3_exec(r->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "registry %s is not usable: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        registry_close(r);
        return REG_DB;
    }
    char merr[200];
    if (migrate(r->db, merr, sizeof(merr)) != 0) {
        snprintf(err, errlen, "registry %s: %s", path, merr);
        registry_close(r);
        return REG_DB;
    }
    if (sqlite3_prepare_v2(r->db, "SELECT " DEVICE_COLUMNS " FROM devices WHERE id = ?", -1,
                           &r->get, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "registry %s: %s", path, sqlite3_errmsg(r->db));
        registry_close(r);
        return REG_DB;
    }
    *out = r;
    return REG_OK;
}

void registry_close(struct registry *r)
{
    if (!r)
        return;
    sqlite3_finalize(r->get);
    sqlite3_close(r->db);
    free(r);
}

const char *registry_error(const struct registry *r)
{
    return r->err;
}

static char *dup_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? strdup((const char *)t) : NULL;
}

static void row_to_device(sqlite3_stmt *st, struct device *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", (const char *)sqlite3_column_text(st, 0));
    d->role = (enum device_role)device_role_parse((const char *)sqlite3_column_text(st, 1));
    int n = sqlite3_column_bytes(st, 2);
    if (n > DEVICE_PSK_MAX)
        n = DEVICE_PSK_MAX;
    memcpy(d->psk, sqlite3_column_blob(st, 2), (size_t)n);
    d->psk_len = (size_t)n;
    int a = device_policy_parse((const char *)sqlite3_column_text(st, 3));
    d->attestation = a < 0 ? ATTEST_DEFAULT : (enum attest_policy)a;
    d->acl_pub = dup_text(st, 4);
    d->acl_sub = dup_text(st, 5);
    d->revoked = sqlite3_column_int(st, 6) != 0;
    d->created = sqlite3_column_int64(st, 7);
    d->updated = sqlite3_column_int64(st, 8);
    int k = sqlite3_column_bytes(st, 9);
    if (k == 32 || k == 48 || k == 64) {
        memcpy(d->iak, sqlite3_column_blob(st, 9), (size_t)k);
        d->iak_len = (size_t)k;
        if (sqlite3_column_bytes(st, 10) == IAT_INSTANCE_ID_SIZE)
            memcpy(d->instance_id, sqlite3_column_blob(st, 10), IAT_INSTANCE_ID_SIZE);
    }
    int p = device_profile_parse((const char *)sqlite3_column_text(st, 11));
    d->iat_profile = p < 0 ? IAT_PROFILE_AUTO : (enum iat_profile)p;
}

int registry_get(struct registry *r, const char *id, struct device *d)
{
    sqlite3_reset(r->get);
    sqlite3_bind_text(r->get, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(r->get);
    if (rc == SQLITE_ROW) {
        row_to_device(r->get, d);
        sqlite3_reset(r->get);
        return REG_OK;
    }
    sqlite3_reset(r->get);
    if (rc == SQLITE_DONE)
        return REG_NOT_FOUND;
    return db_fail(r, "lookup");
}

int registry_add(struct registry *r, const struct device *d)
{
    if (!device_id_valid(d->id, strlen(d->id))) {
        snprintf(r->err, sizeof(r->err),
                 "device id must be 1..%d printable ASCII characters without space, '/', '+' "
                 "or '#'",
                 DEVICE_ID_MAX);
        return REG_INVALID;
    }
    if (d->psk_len < DEVICE_PSK_MIN || d->psk_len > DEVICE_PSK_MAX) {
        snprintf(r->err, sizeof(r->err), "PSK must be %d..%d bytes, got %zu", DEVICE_PSK_MIN,
                 DEVICE_PSK_MAX, d->psk_len);
        return REG_INVALID;
    }
    uint8_t iid[IAT_INSTANCE_ID_SIZE];
    if (d->iak_len) {
        if (d->iak_len != 32 && d->iak_len != 48 && d->iak_len != 64) {
            snprintf(r->err, sizeof(r->err), "IAK must be 32, 48 or 64 bytes, got %zu",
                     d->iak_len);
            return REG_INVALID;
        }
        if (iat_instance_id(d->iak, d->iak_len, iid) != 0) {
            snprintf(r->err, sizeof(r->err), "cannot derive the instance ID");
            return REG_DB;
        }
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db,
                           "INSERT INTO devices (id, role, psk, attestation, acl_pub, acl_sub,"
                           " revoked, created, updated, iak, instance_id, iat_profile)"
                           " VALUES (?,?,?,?,?,?,0,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "add");
    int64_t now = (int64_t)time(NULL);
    sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, device_role_name(d->role), -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, d->psk, (int)d->psk_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, device_policy_name(d->attestation), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, d->acl_pub, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, d->acl_sub, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, now);
    sqlite3_bind_int64(st, 8, now);
    if (d->iak_len) {
        sqlite3_bind_blob(st, 9, d->iak, (int)d->iak_len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 10, iid, sizeof(iid), SQLITE_STATIC);
    }
    sqlite3_bind_text(st, 11, iat_profile_name(d->iat_profile), -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int ret = REG_OK;
    if (rc == SQLITE_CONSTRAINT) {
        snprintf(r->err, sizeof(r->err), "device %s already exists", d->id);
        ret = REG_EXISTS;
    } else if (rc != SQLITE_DONE) {
        ret = db_fail(r, "add");
    }
    sqlite3_finalize(st);
    return ret;
}

static int exec_on_id(struct registry *r, const char *sql, const char *id, int64_t arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "update");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, arg);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(r, "update");
    if (sqlite3_changes(r->db) == 0) {
        snprintf(r->err, sizeof(r->err), "no device %s", id);
        return REG_NOT_FOUND;
    }
    return REG_OK;
}

int registry_remove(struct registry *r, const char *id)
{
    return exec_on_id(r, "DELETE FROM devices WHERE id = ?1 AND ?2 = ?2", id, 0);
}

int registry_set_revoked(struct registry *r, const char *id, bool revoked)
{
    return exec_on_id(r,
                      "UPDATE devices SET revoked = ?2, updated = strftime('%s','now')"
                      " WHERE id = ?1",
                      id, revoked ? 1 : 0);
}

/* Calls fn for each device row of a prepared statement, then finalizes it. */
static int each_device(struct registry *r, sqlite3_stmt *st,
                       int (*fn)(const struct device *d, void *arg), void *arg)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct device d;
        row_to_device(st, &d);
        int stop = fn(&d, arg);
        device_clear(&d);
        if (stop)
            break;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? REG_OK : db_fail(r, "list");
}

int registry_list(struct registry *r, int (*fn)(const struct device *d, void *arg), void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT " DEVICE_COLUMNS " FROM devices ORDER BY id", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(r, "list");
    return each_device(r, st, fn, arg);
}

int registry_list_page(struct registry *r, const char *after, unsigned limit,
                       int (*fn)(const struct device *d, void *arg), void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT " DEVICE_COLUMNS " FROM devices WHERE id > ?1 ORDER BY id "
                           "LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "list");
    sqlite3_bind_text(st, 1, after ? after : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, limit);
    return each_device(r, st, fn, arg);
}

int registry_count(struct registry *r, int64_t *devices)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT count(*) FROM devices", -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "count");
    int rc = sqlite3_step(st);
    *devices = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? REG_OK : db_fail(r, "count");
}

int registry_begin(struct registry *r)
{
    return sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
               ? REG_OK
               : db_fail(r, "begin");
}

int registry_commit(struct registry *r)
{
    return sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? REG_OK
                                                                         : db_fail(r, "commit");
}

void registry_rollback(struct registry *r)
{
    sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
}

int registry_changes_since(struct registry *r, int64_t after, int64_t *last,
                           int (*fn)(const char *id, void *arg), void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT seq, id FROM device_changes WHERE seq > ? ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "device changes");
    sqlite3_bind_int64(st, 1, after);
    int rc;
    *last = after;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *last = sqlite3_column_int64(st, 0);
        if (fn((const char *)sqlite3_column_text(st, 1), arg))
            break;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(r, "device changes");
    /* keep a margin behind what this reader has seen; the log is only a hint to re-check */
    sqlite3_stmt *del;
    if (sqlite3_prepare_v2(r->db, "DELETE FROM device_changes WHERE seq <= ?", -1, &del, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(del, 1, *last - 10000);
        sqlite3_step(del);
        sqlite3_finalize(del);
    }
    return REG_OK;
}

int64_t registry_change_seq(struct registry *r)
{
    sqlite3_stmt *st;
    int64_t v = 0;
    if (sqlite3_prepare_v2(r->db, "SELECT COALESCE(MAX(seq), 0) FROM device_changes", -1, &st,
                           NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int64_t registry_data_version(struct registry *r)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(r->db, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int registry_set_iak(struct registry *r, const char *id, const uint8_t *iak, size_t len)
{
    uint8_t iid[IAT_INSTANCE_ID_SIZE];
    if (len != 32 && len != 48 && len != 64) {
        snprintf(r->err, sizeof(r->err), "IAK must be 32, 48 or 64 bytes, got %zu", len);
        return REG_INVALID;
    }
    if (iat_instance_id(iak, len, iid) != 0) {
        snprintf(r->err, sizeof(r->err), "cannot derive the instance ID");
        return REG_DB;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db,
                           "UPDATE devices SET iak = ?2, instance_id = ?3,"
                           " updated = strftime('%s','now') WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "set iak");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, iak, (int)len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, iid, sizeof(iid), SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(r, "set iak");
    if (sqlite3_changes(r->db) == 0) {
        snprintf(r->err, sizeof(r->err), "no device %s", id);
        return REG_NOT_FOUND;
    }
    return REG_OK;
}

int registry_set_iat_profile(struct registry *r, const char *id, enum iat_profile p)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db,
                           "UPDATE devices SET iat_profile = ?2, updated = strftime('%s','now')"
                           " WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "set profile");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, iat_profile_name(p), -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(r, "set profile");
    if (sqlite3_changes(r->db) == 0) {
        snprintf(r->err, sizeof(r->err), "no device %s", id);
        return REG_NOT_FOUND;
    }
    return REG_OK;
}

/* ---- Reference values ------------------------------------------------------------------ */

int registry_refval_add(struct registry *r, struct refval *rv)
{
    if (rv->value_len == 0 || rv->value_len > sizeof(rv->value) ||
        rv->signer_len > sizeof(rv->signer_id)) {
        snprintf(r->err, sizeof(r->err), "reference value must be 1..64 bytes");
        return REG_INVALID;
    }
    if (rv->kind == REFVAL_MEASUREMENT && rv->value_len < 32) {
        snprintf(r->err, sizeof(r->err), "a measurement value is at least 32 bytes");
        return REG_INVALID;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db,
                           "INSERT INTO refvals (kind, value, signer_id, type, label, created)"
                           " VALUES (?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "add reference value");
    rv->created = (int64_t)time(NULL);
    sqlite3_bind_text(st, 1, rv->kind == REFVAL_IMPLEMENTATION ? "implementation" : "measurement",
                      -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, rv->value, (int)rv->value_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, rv->signer_id, (int)rv->signer_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, rv->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, rv->label, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, rv->created);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT) {
        snprintf(r->err, sizeof(r->err), "this reference value is already registered");
        return REG_EXISTS;
    }
    if (rc != SQLITE_DONE)
        return db_fail(r, "add reference value");
    rv->id = sqlite3_last_insert_rowid(r->db);
    return REG_OK;
}

int registry_refval_remove(struct registry *r, int64_t id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "DELETE FROM refvals WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "remove reference value");
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(r, "remove reference value");
    if (sqlite3_changes(r->db) == 0) {
        snprintf(r->err, sizeof(r->err), "no reference value %lld", (long long)id);
        return REG_NOT_FOUND;
    }
    return REG_OK;
}

static void copy_blob(sqlite3_stmt *st, int col, uint8_t *dst, size_t cap, size_t *len)
{
    int n = sqlite3_column_bytes(st, col);
    *len = n < 0 ? 0 : (size_t)n > cap ? cap : (size_t)n;
    if (*len)
        memcpy(dst, sqlite3_column_blob(st, col), *len);
}

int registry_refval_list(struct registry *r, int (*fn)(const struct refval *rv, void *arg),
                         void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT id, kind, value, signer_id, type, label, created FROM refvals"
                           " ORDER BY kind, id",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "list reference values");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct refval rv;
        memset(&rv, 0, sizeof(rv));
        rv.id = sqlite3_column_int64(st, 0);
        rv.kind = strcmp((const char *)sqlite3_column_text(st, 1), "implementation") == 0
                      ? REFVAL_IMPLEMENTATION
                      : REFVAL_MEASUREMENT;
        copy_blob(st, 2, rv.value, sizeof(rv.value), &rv.value_len);
        copy_blob(st, 3, rv.signer_id, sizeof(rv.signer_id), &rv.signer_len);
        snprintf(rv.type, sizeof(rv.type), "%s", (const char *)sqlite3_column_text(st, 4));
        snprintf(rv.label, sizeof(rv.label), "%s", (const char *)sqlite3_column_text(st, 5));
        rv.created = sqlite3_column_int64(st, 6);
        if (fn(&rv, arg))
            break;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? REG_OK : db_fail(r, "list reference values");
}

/* ---- Attestation history --------------------------------------------------------------- */

int registry_history_add(struct registry *r, const struct attest_record *recs, size_t n,
                         unsigned keep)
{
    sqlite3_stmt *ins = NULL, *prune = NULL;
    if (registry_begin(r) != REG_OK)
        return REG_DB;
    if (sqlite3_prepare_v2(r->db,
                           "INSERT INTO attestation_history (device, at_ms, accepted, result,"
                           " reason, peer, token) VALUES (?,?,?,?,?,?,?)",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r->db,
                           "DELETE FROM attestation_history WHERE device = ?1 AND id <="
                           " (SELECT id FROM attestation_history WHERE device = ?1"
                           "  ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                           -1, &prune, NULL) != SQLITE_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const struct attest_record *a = &recs[i];
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, a->device, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, a->at_ms);
        sqlite3_bind_int(ins, 3, a->accepted);
        sqlite3_bind_text(ins, 4, a->result, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, a->reason, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, a->peer, -1, SQLITE_STATIC);
        if (a->token_len)
            sqlite3_bind_blob(ins, 7, a->token, (int)a->token_len, SQLITE_STATIC);
        else
            sqlite3_bind_null(ins, 7);
        if (sqlite3_step(ins) != SQLITE_DONE)
            goto fail;
        sqlite3_reset(prune);
        sqlite3_bind_text(prune, 1, a->device, -1, SQLITE_STATIC);
        sqlite3_bind_int(prune, 2, (int)keep);
        if (sqlite3_step(prune) != SQLITE_DONE)
            goto fail;
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(prune);
    return registry_commit(r);
fail:
    db_fail(r, "attestation history");
    sqlite3_finalize(ins);
    sqlite3_finalize(prune);
    registry_rollback(r);
    return REG_DB;
}

int registry_history_list(struct registry *r, const char *id, unsigned limit,
                          int (*fn)(const struct attest_record *rec, void *arg), void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT device, at_ms, accepted, result, reason, peer, token"
                           " FROM attestation_history WHERE device = ? ORDER BY id DESC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "attestation history");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int)limit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct attest_record a = {
            .device = (const char *)sqlite3_column_text(st, 0),
            .at_ms = sqlite3_column_int64(st, 1),
            .accepted = sqlite3_column_int(st, 2) != 0,
            .result = (const char *)sqlite3_column_text(st, 3),
            .reason = (const char *)sqlite3_column_text(st, 4),
            .peer = (const char *)sqlite3_column_text(st, 5),
            .token = sqlite3_column_blob(st, 6),
            .token_len = (size_t)sqlite3_column_bytes(st, 6),
        };
        if (fn(&a, arg))
            break;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? REG_OK : db_fail(r, "attestation history");
}
