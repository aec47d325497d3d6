/*
 * topic_tree.h: the tree of topic levels behind subscriptions and retained messages. A node
 * per level; a filter's node holds its subscriptions, a topic's node its retained message.
 * Matching follows MQTT 5 section 4.7 ('+', '#', and '$' topics not matched by a leading
 * wildcard). Broker lock held for every call.
 */
#ifndef PSAGW_TOPIC_TREE_H
#define PSAGW_TOPIC_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg;
struct session;
struct share_group;
struct tnode;

/* One subscription of one session, listed in its node and in its session. */
struct sub {
    struct sub *next_in_node, *prev_in_node; /* both lists doubly linked: O(1) removal */
    struct sub *next_in_session, *prev_in_session;
    struct session *session;
    struct tnode *node;
    struct share_group *group; /* a shared subscription's group (broker/share.h), or NULL */
    struct sub *next_in_group, *prev_in_group;
    uint8_t options; /* MQTT 5 subscription options */
    uint32_t sub_id; /* 0: none */
};

/* Whether a topic name or filter stays within max_len bytes and max_levels levels (a retained
 * message or subscription costs a node per level: 65,519 levels cost 8 MB). */
bool topic_tree_within_limits(const uint8_t *t, size_t len, uint32_t max_len, uint32_t max_levels);

struct tnode *topic_tree_new(void);
void topic_tree_free(struct tnode *root); /* drops the retained messages' references too */
/* Finds or creates the node of a filter (or topic); NULL on allocation failure. */
struct tnode *topic_tree_node(struct tnode *root, const char *filter, size_t len);
/* Removes empty nodes from n up towards the root. */
void topic_tree_prune(struct tnode *n);
void topic_tree_add_sub(struct tnode *n, struct sub *s);
void topic_tree_remove_sub(struct tnode *n, struct sub *s);
struct sub *topic_tree_node_subs(struct tnode *n);
uint32_t topic_tree_node_sub_count(const struct tnode *n);
/* The node's retained message slot (NULL when none is kept). */
struct msg **topic_tree_node_retained(struct tnode *n);
/* Calls fn for every subscription matching topic. */
void topic_tree_match(struct tnode *root, const char *topic, size_t len,
                      void (*fn)(struct sub *s, void *arg), void *arg);
/* Calls fn for every retained message whose topic matches filter. */
void topic_tree_match_retained(struct tnode *root, const char *filter, size_t len,
                               void (*fn)(struct msg *m, void *arg), void *arg);

#endif
