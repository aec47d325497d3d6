/*
 * topic_alias.h: the Topic Aliases psagw uses on the PUBLISHes it sends (MQTT 5 section
 * 3.3.2.3.4). A client that announces a Topic Alias Maximum in CONNECT gets, for each topic, the
 * topic and an alias the first time and the alias alone after that, which saves the topic's
 * bytes on every reading a monitor receives. The table is per connection (aliases do not
 * outlive it), holds at most TOPIC_ALIAS_OUT_MAX topics and replaces the least recently used
 * when full. Broker lock held (deliveries are encoded under it).
 */
#ifndef PSAGW_TOPIC_ALIAS_H
#define PSAGW_TOPIC_ALIAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most topics one connection's table holds, whatever the client allows: a linear search
 * of a few dozen hashes costs less than a hash table's upkeep. */
#define TOPIC_ALIAS_OUT_MAX 64
/* ...and at most this many bytes of topics: a subscriber that draws long topics costs its
 * connection no more than this (a topic that would not fit goes without an alias) */
#define TOPIC_ALIAS_OUT_BYTES 4096

struct topic_alias_table;

/* A table for a client that allows client_max aliases (NULL if out of memory). */
struct topic_alias_table *topic_alias_new(uint16_t client_max);
void topic_alias_free(struct topic_alias_table *t);

/* The alias for topic[0..len): *known says whether the client already has it (send the alias
 * alone) or it was just assigned (send topic and alias). Returns 0 if the topic is not worth an
 * alias (shorter than the 3 bytes an alias costs) or would not fit TOPIC_ALIAS_OUT_BYTES. */
uint16_t topic_alias_pick(struct topic_alias_table *t, const char *topic, size_t len, bool *known);
/* The PUBLISH that would have taught the client `alias` was not sent: forget it. */
void topic_alias_forget(struct topic_alias_table *t, uint16_t alias);

#endif
