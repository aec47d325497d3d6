/*
 * topic_tree.c: a tree of topic levels. The subscription tree holds subscriptions at the node
 * of their filter ("+" and "#" are ordinary child names); the retained tree holds one message
 * at the node of its topic. Each node hashes its children by name, so a level with tens of
 * thousands of device ids ("sensors/<id>") costs O(1) per step, not a scan.
 */
#include <stdlib.h>
#include <string.h>

#include "broker_lock.h"
#include "msg.h"
#include "topic_tree.h"

struct tnode {
    struct tnode *parent;
    struct tnode *hnext; /* next in the parent's bucket */
    struct tnode **kids;
    uint32_t n_kids, n_buckets;
    uint32_t hash;
    struct sub *subs;
    uint32_t n_subs;
    struct msg *retained;
    uint16_t name_len;
    char name[]; /* the level, not NUL-terminated */
};

static uint32_t hash_level(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static struct tnode *node_new(const char *name, size_t len)
{
    struct tnode *n = calloc(1, sizeof(*n) + len);
    if (!n)
        return NULL;
    memcpy(n->name, name, len);
    n->name_len = (uint16_t)len;
    n->hash = hash_level(name, len);
    return n;
}

bool topic_tree_within_limits(const uint8_t *t, size_t len, uint32_t max_len, uint32_t max_levels)
{
    if (len > max_len)
        return false;
    uint32_t levels = 1;
    for (size_t i = 0; i < len; i++)
        if (t[i] == '/' && ++levels > max_levels)
            return false;
    return true;
}

struct tnode *topic_tree_new(void)
{
    return node_new("", 0);
}

void topic_tree_free(struct tnode *n)
{
    if (!n)
        return;
    for (uint32_t b = 0; b < n->n_buckets; b++) {
        struct tnode *k = n->kids[b];
        while (k) {
            struct tnode *next = k->hnext;
            topic_tree_free(k);
            k = next;
        }
    }
    if (n->retained)
        msg_unref(n->retained);
    free(n->kids);
    free(n);
}

static struct tnode *child(const struct tnode *n, const char *name, size_t len)
{
    if (n->n_buckets == 0)
        return NULL;
    uint32_t h = hash_level(name, len);
    for (struct tnode *k = n->kids[h & (n->n_buckets - 1)]; k; k = k->hnext)
        if (k->hash == h && k->name_len == len && memcmp(k->name, name, len) == 0)
            return k;
    return NULL;
}

static int grow(struct tnode *n)
{
    uint32_t nb = n->n_buckets ? n->n_buckets * 2 : 4;
    struct tnode **kids = calloc(nb, sizeof(*kids));
    if (!kids)
        return -1;
    for (uint32_t b = 0; b < n->n_buckets; b++) {
        struct tnode *k = n->kids[b];
        while (k) {
            struct tnode *next = k->hnext;
            k->hnext = kids[k->hash & (nb - 1)];
            kids[k->hash & (nb - 1)] = k;
            k = next;
        }
    }
    free(n->kids);
    n->kids = kids;
    n->n_buckets = nb;
    return 0;
}

static struct tnode *add_child(struct tnode *n, const char *name, size_t len)
{
    if (n->n_kids >= n->n_buckets && grow(n) != 0)
        return NULL;
    struct tnode *k = node_new(name, len);
    if (!k)
        return NULL;
    k->parent = n;
    uint32_t b = k->hash & (n->n_buckets - 1);
    k->hnext = n->kids[b];
    n->kids[b] = k;
    n->n_kids++;
    return k;
}

struct tnode *topic_tree_node(struct tnode *root, const char *f, size_t len)
{
    BROKER_LOCK_HELD();
    struct tnode *n = root;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < len && f[j] != '/')
            j++;
        if (j - i > UINT16_MAX)
            return NULL;
        struct tnode *k = child(n, f + i, j - i);
        if (!k)
            k = add_child(n, f + i, j - i);
        if (!k)
            return NULL;
        n = k;
        if (j >= len)
            return n;
        i = j + 1;
    }
}

void topic_tree_prune(struct tnode *n)
{
    while (n && n->parent && !n->subs && !n->retained && n->n_kids == 0) {
        struct tnode *p = n->parent;
        struct tnode **pp = &p->kids[n->hash & (p->n_buckets - 1)];
        while (*pp != n)
            pp = &(*pp)->hnext;
        *pp = n->hnext;
        p->n_kids--;
        free(n->kids);
        free(n);
        n = p;
    }
}

void topic_tree_add_sub(struct tnode *n, struct sub *s)
{
    BROKER_LOCK_HELD();
    s->node = n;
    s->prev_in_node = NULL;
    s->next_in_node = n->subs;
    if (n->subs)
        n->subs->prev_in_node = s;
    n->subs = s;
    n->n_subs++;
}

void topic_tree_remove_sub(struct tnode *n, struct sub *s)
{
    BROKER_LOCK_HELD();
    if (s->prev_in_node)
        s->prev_in_node->next_in_node = s->next_in_node;
    else
        n->subs = s->next_in_node;
    if (s->next_in_node)
        s->next_in_node->prev_in_node = s->prev_in_node;
    s->next_in_node = s->prev_in_node = NULL;
    n->n_subs--;
}

uint32_t topic_tree_node_sub_count(const struct tnode *n)
{
    return n->n_subs;
}

struct sub *topic_tree_node_subs(struct tnode *n)
{
    return n->subs;
}

struct msg **topic_tree_node_retained(struct tnode *n)
{
    return &n->retained;
}

static void emit_subs(struct tnode *n, void (*fn)(struct sub *, void *), void *arg)
{
    for (struct sub *s = n ? n->subs : NULL; s; s = s->next_in_node)
        fn(s, arg);
}

/* Walks the subscription tree along topic t[i..len), depth = level index. */
static void match(struct tnode *n, const char *t, size_t len, size_t i, bool first,
                  void (*fn)(struct sub *, void *), void *arg)
{
    /* Section 4.7.2: wildcards at the first level do not match '$' topics. */
    bool dollar = first && len > 0 && t[0] == '$';
    if (!dollar)
        emit_subs(child(n, "#", 1), fn, arg);
    size_t j = i;
    while (j < len && t[j] != '/')
        j++;
    struct tnode *exact = child(n, t + i, j - i);
    struct tnode *plus = dollar ? NULL : child(n, "+", 1);
    if (j >= len) {
        /* last level: the node itself, and "x/#" which also matches "x" */
        if (exact) {
            emit_subs(exact, fn, arg);
            emit_subs(child(exact, "#", 1), fn, arg);
        }
        if (plus) {
            emit_subs(plus, fn, arg);
            emit_subs(child(plus, "#", 1), fn, arg);
        }
        return;
    }
    if (exact)
        match(exact, t, len, j + 1, false, fn, arg);
    if (plus)
        match(plus, t, len, j + 1, false, fn, arg);
}

void topic_tree_match(struct tnode *root, const char *topic, size_t len,
                void (*fn)(struct sub *s, void *arg), void *arg)
{
    BROKER_LOCK_HELD();
    match(root, topic, len, 0, true, fn, arg);
}

static void all_retained(struct tnode *n, void (*fn)(struct msg *, void *), void *arg)
{
    if (n->retained)
        fn(n->retained, arg);
    for (uint32_t b = 0; b < n->n_buckets; b++)
        for (struct tnode *k = n->kids[b]; k; k = k->hnext)
            all_retained(k, fn, arg);
}

static void match_retained(struct tnode *n, const char *f, size_t len, size_t i, bool first,
                           void (*fn)(struct msg *, void *), void *arg)
{
    size_t j = i;
    while (j < len && f[j] != '/')
        j++;
    bool last = j >= len;
    if (j - i == 1 && f[i] == '#') {
        /* "#" matches the parent too ("a/#" ~ "a"), except at the top level */
        if (!first && n->retained)
            fn(n->retained, arg);
        for (uint32_t b = 0; b < n->n_buckets; b++)
            for (struct tnode *k = n->kids[b]; k; k = k->hnext)
                if (!(first && k->name_len > 0 && k->name[0] == '$'))
                    all_retained(k, fn, arg);
        return;
    }
    if (j - i == 1 && f[i] == '+') {
        for (uint32_t b = 0; b < n->n_buckets; b++) {
            for (struct tnode *k = n->kids[b]; k; k = k->hnext) {
                if (first && k->name_len > 0 && k->name[0] == '$')
                    continue;
                if (last) {
                    if (k->retained)
                        fn(k->retained, arg);
                } else {
                    match_retained(k, f, len, j + 1, false, fn, arg);
                }
            }
        }
        return;
    }
    struct tnode *k = child(n, f + i, j - i);
    if (!k)
        return;
    if (last) {
        if (k->retained)
            fn(k->retained, arg);
    } else {
        match_retained(k, f, len, j + 1, false, fn, arg);
    }
}

void topic_tree_match_retained(struct tnode *root, const char *filter, size_t len,
                         void (*fn)(struct msg *m, void *arg), void *arg)
{
    match_retained(root, filter, len, 0, true, fn, arg);
}
