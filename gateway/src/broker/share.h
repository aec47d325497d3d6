/*
 * share.h: shared subscriptions (MQTT 5 section 4.8.2; the same `$share/{group}/{filter}` syntax
 * for 3.1.1 clients, as mosquitto accepts it). The members of a group are ordinary subscriptions
 * at the filter's node, each marked with its group; a message that matches the filter goes to
 * one member, chosen round robin: first a member that is connected and has room in its window,
 * else any connected member, else one whose session waits offline. The group lives while it has
 * members, so its turn survives any one member's reconnect. Broker lock held for every call.
 */
#ifndef PSAGW_SHARE_H
#define PSAGW_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"

struct sub;
struct tnode;
struct session;
struct msg;

struct share_group {
    struct share_group *next, **pprev; /* its bucket's chain, while it has members */
    struct tnode *node;       /* the filter's node */
    struct sub *members;      /* through next_in_group / prev_in_group */
    struct sub *turn;         /* the member to try first next time */
    uint32_t n_members;
    uint32_t refs;      /* members, plus queued deliveries that came through the group */
    uint64_t match_gen; /* the message a member was last chosen for */
    char name[];
};

/* Splits `$share/{name}/{filter}`: true if f is a shared subscription's filter at all; then
 * *ok says whether it is well formed ([MQTT-4.8.2-1], [MQTT-4.8.2-2]: a name of at least one
 * character without '/', '+' or '#', then '/' and a non-empty filter) and name/filter point into
 * f. */
bool share_parse(const char *f, size_t len, bool *ok, const char **name, size_t *name_len,
                 const char **filter, size_t *filter_len);

/* The group `name` at node, created if `create`; NULL if there is none (or no memory). */
struct share_group *share_group_get(struct gateway *gw, struct tnode *node, const char *name,
                                    size_t name_len, bool create);
/* Membership: sub joins or leaves g (leaving the last member ends the group's listing). */
void share_join(struct share_group *g, struct sub *sub);
void share_leave(struct gateway *gw, struct sub *sub);
/* Frees the table (at shutdown, once every session is gone). */
void share_free_table(struct gateway *gw);
void share_ref(struct share_group *g);
void share_unref(struct share_group *g); /* NULL is fine */

/* The member that gets the next message of g, never `skip`'s (NULL: none skipped); NULL if no
 * member is left. */
struct sub *share_choose(struct share_group *g, const struct session *skip);


#endif
