/*
 * spool.h: the durable spool between devices and the cloud (docs/design/wire.md section 6).
 *
 * A device's message that routes to the cloud is written to a SQLite file (WAL,
 * synchronous=FULL) by one spool thread, in group commits: whatever arrived while the last
 * commit was syncing goes into the next one. Only after the commit returns are the devices'
 * PUBACKs released (the `durable` callback). The uplink takes committed records in spool order
 * (straight from memory while it keeps up, from the file after a backlog or a restart) and
 * calls spool_done() when the cloud acknowledged one; the record is deleted in a later commit.
 *
 * Items carry a record, an acknowledgement to release, or both: a QoS 1 PUBLISH that does not
 * go to the cloud but arrives while earlier ones from the same connection wait for the disk is
 * queued as an acknowledgement only, so PUBACKs leave in the order the PUBLISHes came
 * (MQTT 3.1.1 section 4.6, MQTT 5 section 4.6).
 *
 * When the records reach `max_bytes` the policy decides: SPOOL_FULL_BLOCK stops taking records
 * (their acknowledgements wait, so devices see back-pressure) until the uplink frees room;
 * SPOOL_FULL_DROP_OLDEST deletes the oldest records to make room. Every drop is counted and the
 * count is kept in the file.
 *
 * When the disk itself is full (a commit fails with SQLITE_FULL) the spool behaves as blocked
 * (nothing of the failed batch was acknowledged; it waits in memory, bounded by memory_max) and
 * says so once (`spool_full state=disk_full`, then a summary every 10 s). It tries again once a
 * second, but only when the file system has SPOOL_DISK_RESUME_BYTES free (or an eighth of its
 * size, if smaller): a little space freed does not make it fill and stall again at once. A stop
 * while the disk is full ends within a retry period: the batch in memory, acknowledged to
 * nobody, is dropped and counted.
 */
#ifndef PSAGW_SPOOL_H
#define PSAGW_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The WAL's budget: a checkpoint is asked for once this much waits in it (and every 200 ms
 * anyway), the WAL file is cut back to it whenever SQLite starts it over (journal_size_limit),
 * and it is truncated to nothing once the spool is empty. */
#define SPOOL_WAL_BUDGET (4u << 20)
#define SPOOL_DISK_RESUME_BYTES (8u << 20) /* free space before retrying after a full disk */

/* Whom to acknowledge once an item is durable. */
struct spool_ack {
    char *client; /* session id; inside the item's allocation */
    bool anonymous;
    uint64_t conn_gen; /* the connection that sent it; a newer one does not get the ack */
    uint16_t packet_id;
    uint8_t type;   /* MQTT_PUBACK or MQTT_PUBREC */
    uint8_t reason; /* 0: success; else a refusal kept in order behind earlier acks (0x97) */
    uint64_t received_us; /* monotonic: when the PUBLISH arrived (PUBACK latency) */
};

struct spool_item {
    struct spool_item *next;
    uint64_t seq;       /* given when written */
    int64_t created_ms; /* wall clock, when the gateway received it */
    bool has_record;
    bool droppable; /* QoS 0: dropped (and counted) rather than waited for when full */
    bool has_ack;
    struct spool_ack ack;
    char *device;  /* the publishing device's id */
    char *topic;   /* the device topic; the uplink maps it to the cloud topic when sending */
    size_t topic_len;
    uint8_t *payload;
    size_t payload_len;
};

struct spool_stats {
    uint64_t records;
    uint64_t bytes;      /* topic + payload bytes of the records */
    int64_t oldest_ms;   /* created_ms of the oldest record; 0 when empty */
    uint64_t drops;      /* records dropped by policy, ever (kept in the file) */
    uint64_t written;    /* since start */
    uint64_t deleted;    /* since start: acknowledged by the cloud */
    uint64_t commits;    /* since start */
    uint64_t commit_us;  /* since start: time spent in COMMIT (the sync), summed */
    uint64_t commit_max_us; /* the longest COMMIT since the last look (spool_get_stats resets) */
    uint64_t pending;    /* items waiting for the next commit */
    uint64_t wal_bytes;  /* the size of the WAL file now */
    uint64_t db_bytes;   /* the size of the database file now */
    uint64_t checkpoints; /* since start: checkpoints that copied the whole WAL back */
    bool blocked;        /* full, refusing records (SPOOL_FULL_BLOCK) */
    bool disk_full;      /* the disk refused a commit: waiting for free space */
    int64_t disk_full_since_ms; /* wall clock, while disk_full */
    uint64_t disk_full_events;  /* since start: times the disk filled up */
};

struct spool;

struct spool_callbacks {
    /* Spool thread, after a commit: the items whose acks can go out, in submission order.
     * The callee does not keep the list; items remain the spool's. */
    void (*durable)(void *arg, const struct spool_item *list);
    /* Spool thread: records are ready for spool_take(). */
    void (*records_ready)(void *arg);
    void *arg;
};

/* Opens (creates 0600) the file, checks it, counts what is in it. No thread yet. */
struct spool *spool_open(const char *path, uint64_t max_bytes, uint64_t memory_max,
                         enum spool_when_full when_full, const struct spool_callbacks *cb,
                         char *err, size_t errlen);
int spool_start(struct spool *sp);
/* Commits what is pending (if it can), stops the thread. */
void spool_stop(struct spool *sp);
void spool_close(struct spool *sp);
void spool_set_limits(struct spool *sp, uint64_t max_bytes, uint64_t memory_max,
                      enum spool_when_full when_full);

/* One allocation holding the strings and payload (device/topic may be NULL for ack-only). */
struct spool_item *spool_item_new(const char *device, const char *topic, size_t topic_len,
                                  const uint8_t *payload, size_t payload_len,
                                  const char *ack_client);
void spool_item_free(struct spool_item *it);

/*
 * Queues an item for the next commit; never blocks. A droppable item is refused (freed,
 * counted as a drop, returns -1) when the spool is blocked or the queue in memory is over its
 * bound. A record that is not droppable is refused (freed, returns -2) only when the spool is
 * blocked and that queue is at its bound as well (memory_max): it was never acknowledged, so
 * nothing is lost; the caller has the device send it again. Acknowledgements alone are always
 * taken.
 */
int spool_submit(struct spool *sp, struct spool_item *it);

/* The uplink: takes up to max committed records in spool order (a list; the caller frees
 * each with spool_item_free), and reports them delivered to the cloud, in spool order:
 * spool_done(upto, count, bytes) means every record up to `upto` is done (`count` of them,
 * with `bytes` of topics and payloads, since the last report). Deletions ride along with the next commit of new records, or are committed on
 * their own after 100 ms or 4,096 records, or at once when the spool is full. */
struct spool_item *spool_take(struct spool *sp, size_t max);
void spool_done(struct spool *sp, uint64_t upto, uint64_t count, uint64_t bytes);

void spool_get_stats(struct spool *sp, struct spool_stats *st);
/* Where each COMMIT's time is counted (before spool_start). */
struct histogram;
void spool_set_commit_histogram(struct spool *sp, struct histogram *h);
/* Records waiting in the spool, their bytes and the oldest one's created_ms (wall clock; 0 when
 * empty; oldest_ms may be NULL), without touching the stats (any thread). */
void spool_get_depth(struct spool *sp, uint64_t *records, uint64_t *bytes, int64_t *oldest_ms);
/* Whether the disk is full (any thread; no lock taken). */
bool spool_disk_full(const struct spool *sp);
/* "ok", "blocked" (max_bytes reached) or "disk_full", for status lines (any thread). */
const char *spool_state_name(struct spool *sp);
/* Free bytes on the file system that holds path, and the free space a full spool waits for
 * before it writes again; -1 if the file system cannot be asked. */
int spool_disk_room(const char *path, uint64_t *free_bytes, uint64_t *resume_at);
/* From another process (psagw spool stats): what the file holds. */
int spool_file_stats(const char *path, struct spool_stats *st, char *err, size_t errlen);

#endif
