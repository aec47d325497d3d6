/*
 * spool.c: the durable spool (see spool.h for what it promises).
 *
 * One thread owns the SQLite connection. Workers append items to `pending` (mutex, never a
 * wait on the disk); the thread takes the whole queue, writes it and the deletions the uplink
 * reported in one transaction, and syncs once (group commit). With journal_mode=WAL and
 * synchronous=FULL the WAL is fsync()ed at every COMMIT, so a committed record survives a
 * power cut, not only a crash of the process (https://www.sqlite.org/pragma.html#pragma_synchronous).
 *
 * Checkpoints (copying the WAL back into the database file, with its own fsync) run on a
 * second connection in a checkpoint thread, PASSIVE, not inside a COMMIT as SQLite's automatic
 * checkpoint would: the devices' PUBACKs wait for the WAL's sync only. A complete checkpoint
 * lets the next commit start the WAL over from its beginning, and journal_size_limit cuts the
 * file back to SPOOL_WAL_BUDGET then; an empty spool gets a TRUNCATE checkpoint, which leaves
 * no WAL at all (https://www.sqlite.org/c3ref/wal_checkpoint_v2.html,
 * https://www.sqlite.org/pragma.html#pragma_journal_size_limit). The checkpoint connection
 * reads the database once when it opens: a connection that never read it does not know the
 * file is in WAL mode, and its checkpoints are silent no-ops.
 *
 * Committed records go on to the uplink through `handoff` while it keeps up (no read back);
 * when the handoff is full, or after a restart, they stay on disk only (`disk_only`) and are
 * read back in spool order when the uplink asks. Sequence numbers are ours (max + 1 at open),
 * not SQLite's rowid reuse, so the read cursor never goes backwards.
 */
#include "spool.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "histogram.h"
#include "log.h"

#define BATCH_MAX 8192                  /* items per commit */
#define ROWS_PER_INSERT 16              /* records per INSERT statement */
#define DELETE_BATCH 4096               /* deliveries that make a commit of their own */
#define DELETE_DELAY_MS 100             /* or the time they wait for one */
#define HANDOFF_MAX 4096                /* records waiting in memory for the uplink */
#define HANDOFF_BYTES_MAX (16u << 20)

#define CHECKPOINT_PERIOD_MS 200 /* the checkpointer looks at least this often */

struct spool {
    sqlite3 *db;
    sqlite3 *ckpt_db; /* the checkpoint thread's connection */
    pthread_t ckpt_thread;
    bool ckpt_running;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    bool ckpt_stop, ckpt_due;
    uint64_t checkpoints; /* complete ones (ckpt_mu) */
    char path[1024];
    sqlite3_stmt *ins, *ins_many, *del, *del_upto, *sel, *oldest, *meta, *first_created;
    int64_t oldest_created_ms; /* created_ms of the oldest record, 0 if empty (mu) */
    pthread_t thread;
    bool running;
    const struct spool_callbacks *cb;
    struct spool_callbacks cb_copy;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    uint64_t max_bytes;
    uint64_t memory_max;  /* bytes queued in memory before records are refused */
    enum spool_when_full when_full;
    struct spool_item *pend_head, *pend_tail; /* submitted, not yet written */
    size_t pend_bytes, n_pending;
    uint64_t done_upto;    /* the uplink delivered every record up to this seq */
    uint64_t deleted_upto; /* and those are deleted up to this one */
    uint64_t n_done;       /* deliveries reported since the last deletion */
    uint64_t bytes_done;   /* and their topic and payload bytes */
    struct spool_item *hand_head, *hand_tail; /* committed, for spool_take */
    size_t n_hand, hand_bytes;
    bool want_fill;       /* the uplink's handoff ran low */
    bool blocked;
    _Atomic bool disk_full;      /* the last commit failed with SQLITE_FULL (written: spool thread) */
    uint64_t full_since_ms;      /* wall clock */
    uint64_t full_next_log_ms;   /* monotonic: the next summary line */
    uint64_t full_retry_at_ms;   /* monotonic: the next attempt */
    uint64_t full_retries, full_events, stop_dropped;
    /* the thread's own (read under mu by stats) */
    bool disk_only;       /* records after last_handed are only on disk */
    uint64_t last_handed; /* highest seq put in the handoff */
    uint64_t next_seq;
    uint64_t records, bytes, drops_saved, written, deleted, commits, commit_us, commit_max_us;
    struct histogram *commit_histogram; /* each COMMIT's time, or NULL */
    _Atomic uint64_t drops; /* spool_submit counts as well */
    struct spool_stats pub; /* mu: the thread's figures as of its last round */
};

struct spool_item *spool_item_new(const char *device, const char *topic, size_t topic_len,
                                  const uint8_t *payload, size_t payload_len,
                                  const char *ack_client)
{
    size_t dlen = device ? strlen(device) : 0, alen = ack_client ? strlen(ack_client) : 0;
    struct spool_item *it =
        malloc(sizeof(*it) + dlen + 1 + topic_len + 1 + payload_len + alen + 1);
    if (!it)
        return NULL;
    memset(it, 0, sizeof(*it));
    char *p = (char *)(it + 1);
    it->device = p;
    memcpy(p, device ? device : "", dlen + 1);
    p += dlen + 1;
    it->topic = p;
    if (topic_len)
        memcpy(p, topic, topic_len);
    p[topic_len] = '\0';
    it->topic_len = topic_len;
    p += topic_len + 1;
    it->payload = (uint8_t *)p;
    if (payload_len)
        memcpy(p, payload, payload_len);
    it->payload_len = payload_len;
    p += payload_len;
    it->ack.client = p;
    memcpy(p, ack_client ? ack_client : "", alen + 1);
    it->has_record = device != NULL;
    it->created_ms = (int64_t)clock_wall_ms();
    return it;
}

void spool_item_free(struct spool_item *it)
{
    free(it);
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *e = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK) {
        snprintf(err, errlen, "%s", e ? e : sqlite3_errmsg(db));
        sqlite3_free(e);
        return -1;
    }
    return 0;
}

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS spool ("
    " seq INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, device TEXT NOT NULL,"
    " topic BLOB NOT NULL, payload BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS spool_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO spool_meta VALUES ('drops', 0);";

static sqlite3 *open_db(const char *path, int flags, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "spool %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* What the file holds, in one query (open, after a failed transaction, and for the CLI). */
struct file_counts {
    uint64_t records, bytes, max_seq, drops;
    int64_t oldest_ms;
};

static int read_counts(sqlite3 *db, struct file_counts *fc)
{
    sqlite3_stmt *q = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*), coalesce(sum(length(topic) + length(payload)), 0), "
                           "coalesce(max(seq), 0), coalesce(min(created_ms), 0), "
                           "(SELECT value FROM spool_meta WHERE key = 'drops') FROM spool",
                           -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        fc->records = (uint64_t)sqlite3_column_int64(q, 0);
        fc->bytes = (uint64_t)sqlite3_column_int64(q, 1);
        fc->max_seq = (uint64_t)sqlite3_column_int64(q, 2);
        fc->oldest_ms = sqlite3_column_int64(q, 3);
        fc->drops = (uint64_t)sqlite3_column_int64(q, 4);
        rc = 0;
    }
    sqlite3_finalize(q);
    return rc;
}

struct spool *spool_open(const char *path, uint64_t max_bytes, uint64_t memory_max,
                         enum spool_when_full when_full, const struct spool_callbacks *cb,
                         char *err, size_t errlen)
{
    mode_t old = umask(077); /* the file holds device data: 0600, like the registry */
    sqlite3 *db = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err, errlen);
    umask(old);
    if (!db)
        return NULL;
    char e[256];
    char pragmas[128];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA journal_size_limit=%u;",
             SPOOL_WAL_BUDGET);
    if (exec(db, pragmas, e, sizeof(e)) != 0 ||
        exec(db, SCHEMA, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "spool %s: %s", path, e);
        sqlite3_close(db);
        return NULL;
    }
    struct spool *sp = calloc(1, sizeof(*sp));
    if (!sp) {
        sqlite3_close(db);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sp->db = db;
    snprintf(sp->path, sizeof(sp->path), "%s", path);
    pthread_mutex_init(&sp->ckpt_mu, NULL);
    pthread_cond_init(&sp->ckpt_cv, NULL);
    sp->max_bytes = max_bytes;
    sp->memory_max = memory_max;
    sp->when_full = when_full;
    sp->cb_copy = *cb;
    sp->cb = &sp->cb_copy;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_cond_init(&sp->cv, NULL);
    /* one INSERT carries ROWS_PER_INSERT records: a statement's own cost (step, reset, the
     * program's prologue) is then paid once for them, not per record */
    static const char ins_head[] = "INSERT INTO spool (seq, created_ms, device, topic, payload) "
                                   "VALUES (?,?,?,?,?)";
    static const char ins_row[] = ",(?,?,?,?,?)";
    char ins_many[sizeof(ins_head) + (ROWS_PER_INSERT - 1) * (sizeof(ins_row) - 1)];
    size_t at = sizeof(ins_head) - 1;
    memcpy(ins_many, ins_head, sizeof(ins_head));
    for (int i = 1; i < ROWS_PER_INSERT; i++) {
        memcpy(ins_many + at, ins_row, sizeof(ins_row)); /* its NUL ends the statement so far */
        at += sizeof(ins_row) - 1;
    }
    const char *sql[] = {
        "INSERT INTO spool (seq, created_ms, device, topic, payload) VALUES (?,?,?,?,?)",
        ins_many,
        "DELETE FROM spool WHERE seq = ?",
        ("SELECT seq, created_ms, device, topic, payload FROM spool WHERE seq > ? ORDER BY seq "
         "LIMIT ?"),
        "SELECT seq, length(topic) + length(payload) FROM spool ORDER BY seq LIMIT 64",
        "UPDATE spool_meta SET value = ? WHERE key = 'drops'",
        "DELETE FROM spool WHERE seq <= ?",
        "SELECT created_ms FROM spool ORDER BY seq LIMIT 1"};
    sqlite3_stmt **st[] = {&sp->ins,  &sp->ins_many, &sp->del,      &sp->sel,
                           &sp->oldest, &sp->meta,   &sp->del_upto, &sp->first_created};
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, st[i], NULL) !=
            SQLITE_OK) {
            snprintf(err, errlen, "spool %s: %s", path, sqlite3_errmsg(db));
            spool_close(sp);
            return NULL;
        }
    }
    struct file_counts fc;
    if (read_counts(db, &fc) != 0) {
        snprintf(err, errlen, "spool %s: %s", path, sqlite3_errmsg(db));
        spool_close(sp);
        return NULL;
    }
    sp->records = fc.records;
    sp->bytes = fc.bytes;
    sp->oldest_created_ms = fc.oldest_ms;
    sp->next_seq = fc.max_seq + 1;
    sp->drops = sp->drops_saved = fc.drops;
    sp->pub.records = sp->records;
    sp->pub.bytes = sp->bytes;
    sp->pub.drops = sp->drops;
    sp->disk_only = sp->records > 0; /* resume: what is there goes first */
    sp->last_handed = 0;
    return sp;
}

/* The counters from the file, after a failed transaction (spool thread). */
static void recount(struct spool *sp)
{
    struct file_counts fc;
    if (read_counts(sp->db, &fc) == 0) {
        sp->records = fc.records;
        sp->bytes = fc.bytes;
    }
}

void spool_set_limits(struct spool *sp, uint64_t max_bytes, uint64_t memory_max,
                      enum spool_when_full when_full)
{
    pthread_mutex_lock(&sp->mu);
    sp->max_bytes = max_bytes;
    sp->memory_max = memory_max;
    sp->when_full = when_full;
    sp->blocked = false; /* try again under the new limit */
    pthread_cond_signal(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
}

int spool_submit(struct spool *sp, struct spool_item *it)
{
    size_t sz = it->topic_len + it->payload_len;
    pthread_mutex_lock(&sp->mu);
    bool held = sp->blocked || sp->disk_full; /* nothing is being written for now */
    if (it->droppable && (held || sp->pend_bytes + sz > sp->memory_max)) {
        sp->drops++;
        pthread_mutex_unlock(&sp->mu);
        free(it);
        return -1;
    }
    if (it->has_record && held && sp->pend_bytes + sz > sp->memory_max) {
        /* full, and the queue in memory at its bound too: not taken (and so never
         * acknowledged); the caller makes the device send it again later */
        pthread_mutex_unlock(&sp->mu);
        free(it);
        return -2;
    }
    it->next = NULL;
    if (sp->pend_tail)
        sp->pend_tail->next = it;
    else
        sp->pend_head = it;
    sp->pend_tail = it;
    sp->pend_bytes += sz;
    sp->n_pending++;
    pthread_cond_signal(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
    return 0;
}

struct spool_item *spool_take(struct spool *sp, size_t max)
{
    pthread_mutex_lock(&sp->mu);
    struct spool_item *head = sp->hand_head, **tail = &head;
    size_t n = 0;
    for (struct spool_item *it = sp->hand_head; it && n < max; it = it->next, n++) {
        sp->hand_bytes -= it->topic_len + it->payload_len;
        tail = &it->next;
    }
    sp->hand_head = *tail;
    *tail = NULL;
    if (!sp->hand_head)
        sp->hand_tail = NULL;
    sp->n_hand -= n;
    if (sp->n_hand < HANDOFF_MAX / 2 && !sp->want_fill) {
        sp->want_fill = true;
        pthread_cond_signal(&sp->cv);
    }
    pthread_mutex_unlock(&sp->mu);
    return n ? head : NULL;
}

void spool_done(struct spool *sp, uint64_t upto, uint64_t count, uint64_t bytes)
{
    pthread_mutex_lock(&sp->mu);
    bool first = sp->done_upto == sp->deleted_upto; /* the thread may sleep without a timeout */
    if (upto > sp->done_upto)
        sp->done_upto = upto;
    sp->n_done += count;
    sp->bytes_done += bytes;
    /* deletions alone are not worth an fsync each: the thread is woken for the first ones (it
     * then waits DELETE_DELAY_MS for company), when they pile up, or when they free a full
     * spool; records arriving meanwhile take them along */
    if (first || sp->blocked || sp->n_done >= DELETE_BATCH)
        pthread_cond_signal(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
}

static bool db_ok(struct spool *sp, int rc, const char *what)
{
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
        return true;
    /* a full disk is one state with its own log lines (disk_full_begin), not an error a
     * second */
    if ((rc & 0xff) != SQLITE_FULL)
        log_event(LOG_ERROR, "spool_error", "step=%s detail=\"%s\"", what,
                  sqlite3_errmsg(sp->db));
    return false;
}

#define DISK_RETRY_MS 1000
#define DISK_SUMMARY_MS 10000

int spool_disk_room(const char *path, uint64_t *free_bytes, uint64_t *resume_at)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) {
        *free_bytes = UINT64_MAX; /* cannot tell: just try */
        *resume_at = 0;
        return -1;
    }
    uint64_t size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    *free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    *resume_at = size / 8 < SPOOL_DISK_RESUME_BYTES ? size / 8 : SPOOL_DISK_RESUME_BYTES;
    return 0;
}


/* A commit failed with SQLITE_FULL (spool thread, mu held). */
static void disk_full_begin(struct spool *sp)
{
    uint64_t now = clock_mono_ms();
    sp->full_retry_at_ms = now + DISK_RETRY_MS;
    if (sp->disk_full) {
        sp->full_retries++;
        if (now >= sp->full_next_log_ms) {
            sp->full_next_log_ms = now + DISK_SUMMARY_MS;
            uint64_t free_bytes, resume_at;
            spool_disk_room(sp->path, &free_bytes, &resume_at);
            log_event(LOG_WARN, "spool_full", "state=disk_full path=%s for_s=%llu retries=%llu "
                      "waiting_items=%zu waiting_bytes=%llu free_bytes=%llu "
                      "resume_at_free_bytes=%llu", sp->path,
                      (unsigned long long)((clock_wall_ms() - sp->full_since_ms) / 1000),
                      (unsigned long long)sp->full_retries, sp->n_pending,
                      (unsigned long long)sp->pend_bytes, (unsigned long long)free_bytes,
                      (unsigned long long)resume_at);
        }
        return;
    }
    sp->disk_full = true;
    sp->full_events++;
    sp->full_retries = 0;
    sp->full_since_ms = clock_wall_ms();
    sp->full_next_log_ms = now + DISK_SUMMARY_MS;
    uint64_t free_bytes, resume_at;
    spool_disk_room(sp->path, &free_bytes, &resume_at);
    log_event(LOG_ERROR, "spool_full", "state=disk_full path=%s records=%llu free_bytes=%llu "
              "resume_at_free_bytes=%llu detail=\"the disk is full: nothing more is acknowledged "
              "until it has room (MQTT 5 devices get 0x97); nothing acknowledged is lost\"",
              sp->path, (unsigned long long)sp->records, (unsigned long long)free_bytes,
              (unsigned long long)resume_at);
}

/* A commit went through (spool thread, mu held). */
static void disk_full_end(struct spool *sp)
{
    if (!sp->disk_full)
        return;
    sp->disk_full = false;
    log_event(LOG_INFO, "spool_full", "state=resumed path=%s after_s=%llu retries=%llu",
              sp->path, (unsigned long long)((clock_wall_ms() - sp->full_since_ms) / 1000),
              (unsigned long long)sp->full_retries);
}

/* While the disk is full: whether to try a commit now (room above the watermark, and the
 * retry period passed). */
static bool disk_retry_due(struct spool *sp)
{
    if (!sp->disk_full)
        return true;
    if (clock_mono_ms() < sp->full_retry_at_ms)
        return false;
    uint64_t free_bytes, resume_at;
    spool_disk_room(sp->path, &free_bytes, &resume_at);
    if (free_bytes >= resume_at)
        return true;
    sp->full_retry_at_ms = clock_mono_ms() + DISK_RETRY_MS;
    return false;
}

bool spool_disk_full(const struct spool *sp)
{
    return sp->disk_full;
}

const char *spool_state_name(struct spool *sp)
{
    if (sp->disk_full)
        return "disk_full";
    pthread_mutex_lock(&sp->mu);
    bool blocked = sp->blocked;
    pthread_mutex_unlock(&sp->mu);
    return blocked ? "blocked" : "ok";
}

static void bind_row(sqlite3_stmt *s, int at, const struct spool_item *it)
{
    sqlite3_bind_int64(s, at + 1, (sqlite3_int64)it->seq);
    sqlite3_bind_int64(s, at + 2, it->created_ms);
    sqlite3_bind_text(s, at + 3, it->device, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, at + 4, it->topic, (int)it->topic_len, SQLITE_STATIC);
    sqlite3_bind_blob(s, at + 5, it->payload_len ? (const void *)it->payload : "",
                      (int)it->payload_len, SQLITE_STATIC);
}

/* Inserts rows[0..n): ROWS_PER_INSERT at a time, the rest one by one. */
static bool insert(struct spool *sp, struct spool_item *const *rows, size_t n)
{
    size_t i = 0;
    while (i < n) {
        bool many = n - i >= ROWS_PER_INSERT;
        sqlite3_stmt *s = many ? sp->ins_many : sp->ins;
        size_t k = many ? ROWS_PER_INSERT : 1;
        for (size_t j = 0; j < k; j++)
            bind_row(s, (int)(5 * j), rows[i + j]);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (!db_ok(sp, rc, "insert"))
            return false;
        i += k;
    }
    return true;
}

static bool delete_seq(struct spool *sp, uint64_t seq, size_t bytes)
{
    sqlite3_bind_int64(sp->del, 1, (sqlite3_int64)seq);
    int rc = sqlite3_step(sp->del);
    sqlite3_reset(sp->del);
    if (!db_ok(sp, rc, "delete"))
        return false;
    if (sqlite3_changes(sp->db) == 1) {
        sp->records--;
        sp->bytes -= bytes <= sp->bytes ? bytes : sp->bytes;
    }
    return true;
}

/* Deletes every record up to `upto` (delivered in order), `count` records of `bytes` by the
 * uplink's count: one statement per commit, which reads no record (a RETURNING clause for the
 * sizes made SQLite read and keep every deleted row). Where the file held other than what was
 * counted (records the full spool dropped meanwhile, or a file edited by hand) the counters are
 * read from the file again. */
static bool delete_upto(struct spool *sp, uint64_t upto, uint64_t count, uint64_t bytes)
{
    sqlite3_bind_int64(sp->del_upto, 1, (sqlite3_int64)upto);
    int rc = sqlite3_step(sp->del_upto);
    sqlite3_reset(sp->del_upto);
    if (!db_ok(sp, rc, "delete"))
        return false;
    uint64_t gone = (uint64_t)sqlite3_changes64(sp->db);
    if (gone == count && gone <= sp->records && bytes <= sp->bytes) {
        sp->records -= gone;
        sp->bytes -= bytes;
    } else {
        recount(sp);
    }
    return true;
}

/* SPOOL_FULL_DROP_OLDEST: deletes the oldest records until `need` more bytes fit. */
static void drop_oldest(struct spool *sp, uint64_t need)
{
    while (sp->records > 0 && sp->bytes + need > sp->max_bytes) {
        uint64_t seqs[64];
        size_t sizes[64], n = 0;
        while (n < 64 && sqlite3_step(sp->oldest) == SQLITE_ROW) {
            seqs[n] = (uint64_t)sqlite3_column_int64(sp->oldest, 0);
            sizes[n++] = (size_t)sqlite3_column_int64(sp->oldest, 1);
        }
        sqlite3_reset(sp->oldest);
        if (n == 0)
            return;
        for (size_t i = 0; i < n && sp->bytes + need > sp->max_bytes; i++) {
            uint64_t before = sp->records;
            delete_seq(sp, seqs[i], sizes[i]);
            if (sp->records < before) {
                sp->drops++;
                log_event(LOG_WARN, "spool_drop", "seq=%llu reason=full policy=drop_oldest",
                          (unsigned long long)seqs[i]);
            }
        }
    }
}

/* Reads records after last_handed into the handoff (spool thread, outside mu). */
static struct spool_item *read_back(struct spool *sp, size_t room, size_t *n_out, bool *short_read)
{
    struct spool_item *head = NULL, **tail = &head;
    size_t n = 0;
    sqlite3_bind_int64(sp->sel, 1, (sqlite3_int64)sp->last_handed);
    sqlite3_bind_int64(sp->sel, 2, (sqlite3_int64)room);
    int rc;
    while ((rc = sqlite3_step(sp->sel)) == SQLITE_ROW) {
        const char *dev = (const char *)sqlite3_column_text(sp->sel, 2);
        const void *topic = sqlite3_column_blob(sp->sel, 3);
        size_t tlen = (size_t)sqlite3_column_bytes(sp->sel, 3);
        const void *payload = sqlite3_column_blob(sp->sel, 4);
        size_t plen = (size_t)sqlite3_column_bytes(sp->sel, 4);
        struct spool_item *it = spool_item_new(dev ? dev : "", topic, tlen, payload, plen, NULL);
        if (!it)
            break;
        it->seq = (uint64_t)sqlite3_column_int64(sp->sel, 0);
        it->created_ms = sqlite3_column_int64(sp->sel, 1);
        sp->last_handed = it->seq;
        *tail = it;
        tail = &it->next;
        n++;
    }
    if (rc != SQLITE_ROW)
        db_ok(sp, rc, "read");
    sqlite3_reset(sp->sel);
    *n_out = n;
    *short_read = n < room && (rc == SQLITE_DONE);
    return head;
}

static void hand_append(struct spool *sp, struct spool_item *it)
{
    it->next = NULL;
    if (sp->hand_tail)
        sp->hand_tail->next = it;
    else
        sp->hand_head = it;
    sp->hand_tail = it;
    sp->n_hand++;
    sp->hand_bytes += it->topic_len + it->payload_len;
}

static void free_list(struct spool_item *it);

static void *spool_thread(void *arg)
{
    struct spool *sp = arg;
    pthread_setname_np(pthread_self(), "psagw-spool");
    pthread_mutex_lock(&sp->mu);
    for (;;) {
        struct timespec deadline = {0, 0};
        bool write_now = false;
        for (;;) {
            bool deletes = sp->done_upto > sp->deleted_upto;
            write_now = sp->pend_head && !sp->blocked && disk_retry_due(sp);
            if (sp->stop || write_now || (sp->want_fill && sp->disk_only) ||
                (deletes && (sp->blocked || sp->disk_full || sp->n_done >= DELETE_BATCH)))
                break;
            if (sp->pend_head && sp->disk_full) { /* look again at the next retry */
                struct timespec t = clock_wall_deadline(DISK_RETRY_MS);
                pthread_cond_timedwait(&sp->cv, &sp->mu, &t);
                continue;
            }
            if (!deletes) {
                pthread_cond_wait(&sp->cv, &sp->mu);
                continue;
            }
            if (deadline.tv_sec == 0)
                deadline = clock_wall_deadline(DELETE_DELAY_MS);
            if (pthread_cond_timedwait(&sp->cv, &sp->mu, &deadline) == ETIMEDOUT)
                break;
        }
        if (sp->stop && sp->disk_full && sp->pend_head) {
            /* stopping with the disk full: what waits in memory was acknowledged to nobody
             * (the devices send it again); a stop must not wait for free space */
            size_t dropped = sp->n_pending;
            free_list(sp->pend_head);
            sp->pend_head = sp->pend_tail = NULL;
            sp->n_pending = 0;
            sp->pend_bytes = 0;
            sp->stop_dropped += dropped;
            log_event(LOG_WARN, "spool_stopped", "reason=disk_full dropped_items=%zu "
                      "detail=\"never acknowledged; the devices send them again\"", dropped);
        }
        if (sp->stop && sp->done_upto == sp->deleted_upto &&
            (!sp->pend_head || sp->blocked || sp->disk_full))
            break;
        /* take a batch of pending items (unless the disk is full and it is not time to try
         * again) and the deletions */
        struct spool_item *batch = sp->disk_full && !write_now && !sp->stop ? NULL : sp->pend_head;
        struct spool_item *cut = NULL;
        size_t n = 0, batch_bytes = 0;
        for (struct spool_item *it = batch; it && n < BATCH_MAX; it = it->next, n++) {
            batch_bytes += it->topic_len + it->payload_len;
            cut = it;
        }
        if (batch) {
            sp->pend_head = cut->next;
            if (!sp->pend_head)
                sp->pend_tail = NULL;
            cut->next = NULL;
            sp->pend_bytes -= batch_bytes;
            sp->n_pending -= n;
        }
        uint64_t upto = sp->done_upto, n_done = sp->n_done, bytes_done = sp->bytes_done;
        bool deleting = upto > sp->deleted_upto;
        sp->n_done = 0;
        sp->bytes_done = 0;
        uint64_t max_bytes = sp->max_bytes;
        enum spool_when_full when_full = sp->when_full;
        pthread_mutex_unlock(&sp->mu);

        bool ok = db_ok(sp, sqlite3_exec(sp->db, "BEGIN", NULL, NULL, NULL), "begin");
        if (ok && deleting)
            ok = delete_upto(sp, upto, n_done, bytes_done);
        /* write the batch in order, ROWS_PER_INSERT records a statement; stop at the first
         * record that does not fit (block). Records are counted when queued for a statement;
         * a failure rolls the whole transaction back and recounts. */
        struct spool_item *done = NULL, **done_tail = &done, *it = batch, *rest = NULL;
        struct spool_item *rows[ROWS_PER_INSERT];
        size_t n_written = 0, n_rows = 0;
        while (ok && it) {
            struct spool_item *next = it->next;
            if (it->has_record) {
                size_t sz = it->topic_len + it->payload_len;
                if (sp->bytes + sz > max_bytes && when_full == SPOOL_FULL_DROP_OLDEST) {
                    /* the oldest may be among the rows not yet inserted: in with them first */
                    ok = insert(sp, rows, n_rows);
                    n_rows = 0;
                    if (!ok) {
                        rest = it;
                        break;
                    }
                    drop_oldest(sp, sz);
                }
                if (sp->bytes + sz > max_bytes && sp->records > 0) {
                    if (it->droppable) {
                        sp->drops++;
                        free(it);
                        it = next;
                        continue;
                    }
                    rest = it; /* block: this one and what follows wait for room */
                    break;
                }
                it->seq = sp->next_seq++;
                rows[n_rows++] = it;
                if (n_rows == ROWS_PER_INSERT) {
                    ok = insert(sp, rows, n_rows);
                    n_rows = 0;
                }
                sp->records++;
                sp->bytes += sz;
                n_written++;
            }
            it->next = NULL;
            *done_tail = it;
            done_tail = &it->next;
            it = next;
        }
        if (ok && n_rows)
            ok = insert(sp, rows, n_rows);
        if (ok && sp->drops != sp->drops_saved) {
            sqlite3_bind_int64(sp->meta, 1, (sqlite3_int64)sp->drops);
            ok = db_ok(sp, sqlite3_step(sp->meta), "meta");
            sqlite3_reset(sp->meta);
            if (ok)
                sp->drops_saved = sp->drops;
        }
        if (ok) {
            uint64_t c0 = clock_mono_us();
            ok = db_ok(sp, sqlite3_exec(sp->db, "COMMIT", NULL, NULL, NULL), "commit");
            uint64_t us = clock_mono_us() - c0;
            if (sp->commit_histogram)
                histogram_observe(sp->commit_histogram, us);
            sp->commit_us += us;
            if (us > sp->commit_max_us)
                sp->commit_max_us = us;
        }
        bool full = !ok && (sqlite3_errcode(sp->db) & 0xff) == SQLITE_FULL;
        if (!ok) {
            /* nothing of this batch is durable: no acks; the items go back to the queue and
             * the next round tries again (a full disk shows as back-pressure, not loss) */
            sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
            recount(sp);
            *done_tail = rest;
            rest = done;
            done = NULL;
            n_written = 0;
            if (!full) { /* another failure: try again shortly */
                struct timespec ts = {0, 100 * 1000000};
                nanosleep(&ts, NULL);
            }
        }
        sp->commits += ok;
        sp->written += n_written;
        if (done)
            sp->cb->durable(sp->cb->arg, done);
        /* the oldest record's age, for the operator (an indexed read of one row) */
        int64_t oldest = 0;
        if (sqlite3_step(sp->first_created) == SQLITE_ROW)
            oldest = sqlite3_column_int64(sp->first_created, 0);
        sqlite3_reset(sp->first_created);

        pthread_mutex_lock(&sp->mu);
        sp->oldest_created_ms = oldest;
        if (ok && deleting) {
            sp->deleted_upto = upto;
            sp->deleted += n_done;
        }
        /* what did not fit goes back to the front of the queue, still in order */
        if (rest) {
            size_t rn = 0, rb = 0;
            struct spool_item *last = rest;
            for (struct spool_item *r = rest; r; r = r->next) {
                rn++;
                rb += r->topic_len + r->payload_len;
                last = r;
            }
            last->next = sp->pend_head;
            sp->pend_head = rest;
            if (!sp->pend_tail)
                sp->pend_tail = last;
            sp->n_pending += rn;
            sp->pend_bytes += rb;
        }
        if (full)
            disk_full_begin(sp);
        else if (ok)
            disk_full_end(sp);
        bool was_blocked = sp->blocked;
        sp->blocked = ok && rest != NULL;
        if (sp->blocked != was_blocked)
            log_event(sp->blocked ? LOG_WARN : LOG_INFO, "spool_full",
                      "state=%s records=%llu bytes=%llu max_bytes=%llu", sp->blocked ? "blocking"
                      : "resumed", (unsigned long long)sp->records, (unsigned long long)sp->bytes,
                      (unsigned long long)max_bytes);
        /* committed records go to the uplink while it keeps up */
        bool ready = false;
        while (done) {
            struct spool_item *d = done;
            done = d->next;
            if (d->has_record && !sp->disk_only && sp->n_hand < HANDOFF_MAX &&
                sp->hand_bytes < HANDOFF_BYTES_MAX) {
                hand_append(sp, d);
                sp->last_handed = d->seq;
                ready = true;
            } else {
                if (d->has_record)
                    sp->disk_only = true;
                free(d);
            }
        }
        if (sp->want_fill && sp->disk_only) {
            size_t room = HANDOFF_MAX - sp->n_hand;
            sp->want_fill = false;
            pthread_mutex_unlock(&sp->mu);
            size_t got = 0;
            bool short_read = false;
            struct spool_item *more = room ? read_back(sp, room, &got, &short_read) : NULL;
            pthread_mutex_lock(&sp->mu);
            for (struct spool_item *m = more; m;) {
                struct spool_item *next = m->next;
                hand_append(sp, m);
                m = next;
            }
            if (short_read)
                sp->disk_only = false;
            ready |= got > 0;
        }
        if (ready && sp->cb->records_ready) {
            pthread_mutex_unlock(&sp->mu);
            sp->cb->records_ready(sp->cb->arg);
            pthread_mutex_lock(&sp->mu);
        }
        sp->pub.records = sp->records;
        sp->pub.bytes = sp->bytes;
        sp->pub.drops = sp->drops;
        sp->pub.written = sp->written;
        sp->pub.deleted = sp->deleted;
        sp->pub.commits = sp->commits;
        sp->pub.commit_us = sp->commit_us;
        if (sp->commit_max_us > sp->pub.commit_max_us)
            sp->pub.commit_max_us = sp->commit_max_us;
        sp->commit_max_us = 0;
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

/* SQLite calls this after each commit with the WAL's size in pages. Registering it also turns
 * SQLite's automatic checkpoint (inside COMMIT) off. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    struct spool *sp = arg;
    /* half the budget waiting (frames of the default 4 KiB page): checkpoint now */
    if ((uint64_t)frames * 4096u >= SPOOL_WAL_BUDGET / 2) {
        pthread_mutex_lock(&sp->ckpt_mu);
        sp->ckpt_due = true;
        pthread_cond_signal(&sp->ckpt_cv);
        pthread_mutex_unlock(&sp->ckpt_mu);
    }
    return SQLITE_OK;
}

static uint64_t file_bytes(const char *path, const char *suffix)
{
    char p[1100];
    struct stat st;
    snprintf(p, sizeof(p), "%s%s", path, suffix);
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* One look of the checkpointer: a PASSIVE checkpoint when frames wait (it never blocks the
 * writer), a TRUNCATE one when the spool is empty and a WAL file is left. */
static void checkpoint_once(struct spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    bool empty = sp->pub.records == 0 && sp->n_pending == 0;
    pthread_mutex_unlock(&sp->mu);
    int log_frames = 0, done_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(sp->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                       &done_frames);
    if (rc == SQLITE_OK && empty && file_bytes(sp->path, "-wal") > 0)
        rc = sqlite3_wal_checkpoint_v2(sp->ckpt_db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                       &log_frames, &done_frames);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        /* a full disk is the writer's state to report (spool_full); anything else once per
         * interval */
        static struct log_limit limit;
        if ((rc & 0xff) != SQLITE_FULL)
            LOG_LIMITED(&limit, LOG_WARN, "spool_error", "step=checkpoint detail=\"%s\"",
                        sqlite3_errmsg(sp->ckpt_db));
        return;
    }
    if (rc == SQLITE_OK && log_frames > 0 && done_frames == log_frames) {
        pthread_mutex_lock(&sp->ckpt_mu);
        sp->checkpoints++;
        pthread_mutex_unlock(&sp->ckpt_mu);
    }
}

static void *checkpoint_thread(void *arg)
{
    struct spool *sp = arg;
    pthread_setname_np(pthread_self(), "psagw-ckpt");
    /* background work: the WAL is already durable, so copying it into the database may wait
     * for the workers and the spool thread, whose delays devices see in their PUBACKs (nice 10
     * for this thread alone; its fsyncs are I/O, which nice does not slow) */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
    pthread_mutex_lock(&sp->ckpt_mu);
    while (!sp->ckpt_stop) {
        if (!sp->ckpt_due) {
            struct timespec ts = clock_wall_deadline(CHECKPOINT_PERIOD_MS);
            pthread_cond_timedwait(&sp->ckpt_cv, &sp->ckpt_mu, &ts);
        }
        sp->ckpt_due = false;
        if (sp->ckpt_stop)
            break;
        pthread_mutex_unlock(&sp->ckpt_mu);
        checkpoint_once(sp);
        pthread_mutex_lock(&sp->ckpt_mu);
    }
    pthread_mutex_unlock(&sp->ckpt_mu);
    return NULL;
}

int spool_start(struct spool *sp)
{
    char err[256];
    sp->ckpt_db = open_db(sp->path, SQLITE_OPEN_READWRITE, err, sizeof(err));
    char e[256];
    /* read once: until it has, the connection does not know the file is in WAL mode */
    if (sp->ckpt_db && exec(sp->ckpt_db, "SELECT count(*) FROM spool_meta;", e, sizeof(e)) != 0) {
        snprintf(err, sizeof(err), "%s", e);
        sqlite3_close(sp->ckpt_db);
        sp->ckpt_db = NULL;
    }
    if (sp->ckpt_db) {
        sqlite3_wal_hook(sp->db, wal_hook, sp);
        if (pthread_create(&sp->ckpt_thread, NULL, checkpoint_thread, sp) == 0)
            sp->ckpt_running = true;
    }
    if (!sp->ckpt_running) /* SQLite's own checkpoints, inside COMMIT, then */
        log_event(LOG_WARN, "spool_error", "step=checkpoint_thread detail=\"%s\"",
                  sp->ckpt_db ? "thread not started" : err);
    if (pthread_create(&sp->thread, NULL, spool_thread, sp) != 0)
        return -1;
    sp->running = true;
    return 0;
}

void spool_stop(struct spool *sp)
{
    if (!sp || !sp->running)
        return;
    pthread_mutex_lock(&sp->mu);
    sp->stop = true;
    pthread_cond_signal(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
    pthread_join(sp->thread, NULL);
    sp->running = false;
    if (sp->ckpt_running) {
        pthread_mutex_lock(&sp->ckpt_mu);
        sp->ckpt_stop = true;
        pthread_cond_signal(&sp->ckpt_cv);
        pthread_mutex_unlock(&sp->ckpt_mu);
        pthread_join(sp->ckpt_thread, NULL);
        sp->ckpt_running = false;
    }
}

static void free_list(struct spool_item *it)
{
    while (it) {
        struct spool_item *next = it->next;
        free(it);
        it = next;
    }
}

void spool_close(struct spool *sp)
{
    if (!sp)
        return;
    spool_stop(sp);
    sqlite3_finalize(sp->ins);
    sqlite3_finalize(sp->ins_many);
    sqlite3_finalize(sp->del);
    sqlite3_finalize(sp->del_upto);
    sqlite3_finalize(sp->sel);
    sqlite3_finalize(sp->oldest);
    sqlite3_finalize(sp->first_created);
    sqlite3_finalize(sp->meta);
    sqlite3_close(sp->ckpt_db);
    sqlite3_close(sp->db);
    free_list(sp->pend_head);
    free_list(sp->hand_head);
    pthread_mutex_destroy(&sp->mu);
    pthread_cond_destroy(&sp->cv);
    pthread_mutex_destroy(&sp->ckpt_mu);
    pthread_cond_destroy(&sp->ckpt_cv);
    free(sp);
}

void spool_get_stats(struct spool *sp, struct spool_stats *st)
{
    pthread_mutex_lock(&sp->mu);
    *st = sp->pub;
    sp->pub.commit_max_us = 0;
    st->drops = sp->drops;
    st->pending = sp->n_pending;
    st->blocked = sp->blocked;
    st->disk_full = sp->disk_full;
    st->disk_full_since_ms = sp->disk_full ? (int64_t)sp->full_since_ms : 0;
    st->disk_full_events = sp->full_events;
    st->oldest_ms = 0;
    pthread_mutex_unlock(&sp->mu);
    pthread_mutex_lock(&sp->ckpt_mu);
    st->checkpoints = sp->checkpoints;
    pthread_mutex_unlock(&sp->ckpt_mu);
    st->wal_bytes = file_bytes(sp->path, "-wal");
    st->db_bytes = file_bytes(sp->path, "");
}

void spool_set_commit_histogram(struct spool *sp, struct histogram *h)
{
    sp->commit_histogram = h;
}

void spool_get_depth(struct spool *sp, uint64_t *records, uint64_t *bytes, int64_t *oldest_ms)
{
    pthread_mutex_lock(&sp->mu);
    *records = sp->pub.records;
    *bytes = sp->pub.bytes;
    if (oldest_ms)
        *oldest_ms = sp->pub.records ? sp->oldest_created_ms : 0;
    pthread_mutex_unlock(&sp->mu);
}

int spool_file_stats(const char *path, struct spool_stats *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(err, errlen, "spool %s: %s", path, strerror(errno));
        return -1;
    }
    sqlite3 *db = open_db(path, SQLITE_OPEN_READWRITE, err, errlen);
    if (!db)
        return -1;
    struct file_counts fc;
    int rc = read_counts(db, &fc);
    if (rc != 0) {
        snprintf(err, errlen, "spool %s: %s (is it a psagw spool?)", path, sqlite3_errmsg(db));
    } else {
        st->records = fc.records;
        st->bytes = fc.bytes;
        st->oldest_ms = fc.oldest_ms;
        st->drops = fc.drops;
    }
    sqlite3_close(db);
    st->wal_bytes = file_bytes(path, "-wal");
    st->db_bytes = file_bytes(path, "");
    return rc;
}
