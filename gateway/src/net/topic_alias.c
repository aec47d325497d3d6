/*
 * topic_alias.c: outbound Topic Aliases, least recently used replaced (topic_alias.h).
 */
#include <stdlib.h>
#include <string.h>

#include "topic_alias.h"

struct alias_entry {
    uint32_t hash;
    uint32_t len;
    uint64_t last_used;
    char *topic; /* NULL: free */
};

struct topic_alias_table {
    uint16_t max;
    size_t bytes; /* of the topics held */
    uint64_t clock;
    struct alias_entry e[]; /* e[alias - 1] */
};

static uint32_t hash_topic(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

struct topic_alias_table *topic_alias_new(uint16_t client_max)
{
    uint16_t max = client_max < TOPIC_ALIAS_OUT_MAX ? client_max : TOPIC_ALIAS_OUT_MAX;
    if (max == 0)
        return NULL;
    struct topic_alias_table *t = calloc(1, sizeof(*t) + max * sizeof(t->e[0]));
    if (t)
        t->max = max;
    return t;
}

void topic_alias_free(struct topic_alias_table *t)
{
    if (!t)
        return;
    for (uint16_t i = 0; i < t->max; i++)
        free(t->e[i].topic);
    free(t);
}

uint16_t topic_alias_pick(struct topic_alias_table *t, const char *topic, size_t len, bool *known)
{
    *known = false;
    if (!t || len < 3 || len > UINT32_MAX)
        return 0;
    uint32_t h = hash_topic(topic, len);
    uint16_t victim = 0;
    for (uint16_t i = 0; i < t->max; i++) {
        struct alias_entry *e = &t->e[i];
        if (e->topic && e->hash == h && e->len == len && memcmp(e->topic, topic, len) == 0) {
            e->last_used = ++t->clock;
            *known = true;
            return (uint16_t)(i + 1);
        }
        if (!e->topic ? t->e[victim].topic != NULL : t->e[victim].topic &&
                                                         e->last_used < t->e[victim].last_used)
            victim = i;
    }
    struct alias_entry *e = &t->e[victim];
    if (t->bytes - (e->topic ? e->len : 0) + len > TOPIC_ALIAS_OUT_BYTES)
        return 0;
    char *copy = malloc(len);
    if (!copy)
        return 0;
    memcpy(copy, topic, len);
    t->bytes += len - (e->topic ? e->len : 0);
    free(e->topic);
    e->topic = copy;
    e->hash = h;
    e->len = (uint32_t)len;
    e->last_used = ++t->clock;
    return (uint16_t)(victim + 1);
}

void topic_alias_forget(struct topic_alias_table *t, uint16_t alias)
{
    if (!t || alias == 0 || alias > t->max || !t->e[alias - 1].topic)
        return;
    t->bytes -= t->e[alias - 1].len;
    free(t->e[alias - 1].topic);
    t->e[alias - 1].topic = NULL;
}
