/*
 * share.c: shared subscription groups (share.h).
 *
 * The gateway's groups are a hash table by node and name, looked up when a client subscribes or
 * unsubscribes (not when routing: a member carries its group), so a client that makes
 * thousands of groups costs each subscription the same. A delivery queued through a
 * group holds a reference, so a member whose session ends can hand its unacknowledged messages
 * to another member (section 4.8.2) even when it was the group's last.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker_lock.h"
#include "session.h"
#include "share.h"
#include "topic_tree.h"

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN 7

bool share_parse(const char *f, size_t len, bool *ok, const char **name, size_t *name_len,
                 const char **filter, size_t *filter_len)
{
    *ok = false;
    if (len < SHARE_PREFIX_LEN || memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
        return false;
    const char *n = f + SHARE_PREFIX_LEN, *end = f + len;
    const char *slash = memchr(n, '/', (size_t)(end - n));
    if (!slash || slash == n || slash + 1 == end)
        return true; /* no name, or nothing after it */
    for (const char *p = n; p < slash; p++)
        if (*p == '+' || *p == '#')
            return true;
    *name = n;
    *name_len = (size_t)(slash - n);
    *filter = slash + 1;
    *filter_len = (size_t)(end - slash - 1);
    *ok = true;
    return true;
}

static size_t group_hash(const struct tnode *node, const char *name, size_t len)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)node;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

/* Doubles the table (starting at 256 buckets); -1 if out of memory. */
static int groups_grow(struct gateway *gw)
{
    size_t nb = gw->share_buckets ? gw->share_buckets * 2 : 256;
    struct share_group **t = calloc(nb, sizeof(*t));
    if (!t)
        return -1;
    for (size_t b = 0; b < gw->share_buckets; b++)
        for (struct share_group *g = gw->share_groups[b], *next; g; g = next) {
            next = g->next;
            struct share_group **slot = &t[group_hash(g->node, g->name, strlen(g->name)) & (nb - 1)];
            g->next = *slot;
            if (g->next)
                g->next->pprev = &g->next;
            g->pprev = slot;
            *slot = g;
        }
    free(gw->share_groups);
    gw->share_groups = t;
    gw->share_buckets = nb;
    return 0;
}

struct share_group *share_group_get(struct gateway *gw, struct tnode *node, const char *name,
                                    size_t name_len, bool create)
{
    BROKER_LOCK_HELD();
    size_t h = group_hash(node, name, name_len);
    if (gw->share_buckets)
        for (struct share_group *g = gw->share_groups[h & (gw->share_buckets - 1)]; g;
             g = g->next)
            if (g->node == node && strlen(g->name) == name_len &&
                memcmp(g->name, name, name_len) == 0)
                return g;
    if (!create)
        return NULL;
    if (gw->n_share_groups >= gw->share_buckets && groups_grow(gw) != 0)
        return NULL;
    struct share_group *g = calloc(1, sizeof(*g) + name_len + 1);
    if (!g)
        return NULL;
    memcpy(g->name, name, name_len);
    g->node = node;
    struct share_group **slot = &gw->share_groups[h & (gw->share_buckets - 1)];
    g->next = *slot;
    if (g->next)
        g->next->pprev = &g->next;
    g->pprev = slot;
    *slot = g;
    gw->n_share_groups++;
    return g;
}

void share_free_table(struct gateway *gw)
{
    free(gw->share_groups); /* the groups went with their members' sessions */
    gw->share_groups = NULL;
    gw->share_buckets = gw->n_share_groups = 0;
}

void share_ref(struct share_group *g)
{
    g->refs++;
}

void share_unref(struct share_group *g)
{
    if (g && --g->refs == 0)
        free(g); /* no members left: it was unlisted by the last share_leave */
}

void share_join(struct share_group *g, struct sub *sub)
{
    BROKER_LOCK_HELD();
    sub->group = g;
    sub->prev_in_group = NULL;
    sub->next_in_group = g->members;
    if (g->members)
        g->members->prev_in_group = sub;
    g->members = sub;
    g->n_members++;
    share_ref(g);
}

void share_leave(struct gateway *gw, struct sub *sub)
{
    BROKER_LOCK_HELD();
    struct share_group *g = sub->group;
    if (g->turn == sub)
        g->turn = sub->next_in_group;
    if (sub->prev_in_group)
        sub->prev_in_group->next_in_group = sub->next_in_group;
    else
        g->members = sub->next_in_group;
    if (sub->next_in_group)
        sub->next_in_group->prev_in_group = sub->prev_in_group;
    sub->group = NULL;
    if (--g->n_members == 0 && g->pprev) {
        /* a new subscription with this name starts a new group; deliveries still queued
         * through this one keep it until they go */
        *g->pprev = g->next;
        if (g->next)
            g->next->pprev = g->pprev;
        g->next = NULL;
        g->pprev = NULL;
        gw->n_share_groups--;
    }
    share_unref(g);
}

/* How ready a member is for one more message: 0 connected with room in its window, 1
 * connected, 2 offline (its session waits for it). */
static int readiness(const struct sub *x)
{
    const struct session *s = x->session;
    const struct conn *c = s->conn;
    if (!c || c->state != CONN_CONNECTED)
        return 2;
    bool room = s->n_inflight + s->n_pending < c->client_receive_max && !c->out_throttled;
    return room ? 0 : 1;
}

struct sub *share_choose(struct share_group *g, const struct session *skip)
{
    BROKER_LOCK_HELD();
    struct sub *best[3] = {NULL, NULL, NULL};
    struct sub *x = g->turn ? g->turn : g->members;
    for (uint32_t i = 0; i < g->n_members && x; i++) {
        if (x->session != skip) {
            int r = readiness(x);
            if (!best[r])
                best[r] = x;
            if (r == 0)
                break;
        }
        x = x->next_in_group ? x->next_in_group : g->members;
    }
    struct sub *pick = best[0] ? best[0] : best[1] ? best[1] : best[2];
    if (pick)
        g->turn = pick->next_in_group ? pick->next_in_group : g->members;
    return pick;
}
