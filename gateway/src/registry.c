/*
 * registry.c: the SQLite-backed device registry.
 *
 * WAL mode lets `psagw device ...` write while the daemon reads. The file is created 0600
 * before SQLite opens it because it holds PSKs; SQLite gives its -wal and -shm files the
 * permissions of the database file. PSKs read out of SQLite are copied into the caller's
 * struct and the caller wipes them (device_clear).
 */
#include "registry.h"

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

static int db_fail(struct registry *r, const char *what)
{
    snprintf(r->err, sizeof(r->err), "%s: %s", what, sqlite3_errmsg(r->db));
    return REG_DB;
}

int registry_open(const char *path, bool create, struct registry **out, char *err, size_t errlen)
{
    *out = NULL;
    if (create) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            return REG_DB;
        }
        close(fd);
    } else if (access(path, R_OK) != 0) {
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
    if (sqlite3_prepare_v2(r->db,
                           "SELECT id, role, psk, attestation, acl_pub, acl_sub, revoked, created,"
                           " updated FROM devices WHERE id = ?",
                           -1, &r->get, NULL) != SQLITE_OK) {
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
    int a = attest_policy_parse((const char *)sqlite3_column_text(st, 3));
    d->attestation = a < 0 ? ATTEST_DEFAULT : (enum attest_policy)a;
    d->acl_pub = dup_text(st, 4);
    d->acl_sub = dup_text(st, 5);
    d->revoked = sqlite3_column_int(st, 6) != 0;
    d->created = sqlite3_column_int64(st, 7);
    d->updated = sqlite3_column_int64(st, 8);
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
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db,
                           "INSERT INTO devices (id, role, psk, attestation, acl_pub, acl_sub,"
                           " revoked, created, updated) VALUES (?,?,?,?,?,?,0,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "add");
    int64_t now = (int64_t)time(NULL);
    sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, device_role_name(d->role), -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, d->psk, (int)d->psk_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, attest_policy_name(d->attestation), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, d->acl_pub, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, d->acl_sub, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, now);
    sqlite3_bind_int64(st, 8, now);
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

int registry_list(struct registry *r, int (*fn)(const struct device *d, void *arg), void *arg)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db,
                           "SELECT id, role, psk, attestation, acl_pub, acl_sub, revoked, created,"
                           " updated FROM devices ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(r, "list");
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

void device_clear(struct device *d)
{
    OPENSSL_cleanse(d->psk, sizeof(d->psk));
    d->psk_len = 0;
    free(d->acl_pub);
    free(d->acl_sub);
    d->acl_pub = d->acl_sub = NULL;
}

bool device_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > DEVICE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        /* '/', '+' and '#' would change the meaning of the %c ACL patterns and topics */
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '+' || c == '#')
            return false;
    }
    return true;
}

static const char *const role_names[] = {"sensor", "monitor", "custom"};
static const char *const policy_names[] = {"default", "off", "optional", "required"};

const char *device_role_name(enum device_role role)
{
    return (unsigned)role < 3 ? role_names[role] : "?";
}

int device_role_parse(const char *s)
{
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, role_names[i]) == 0)
            return i;
    return -1;
}

const char *attest_policy_name(enum attest_policy p)
{
    return (unsigned)p < 4 ? policy_names[p] : "?";
}

int attest_policy_parse(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, policy_names[i]) == 0)
            return i;
    return -1;
}
