/*
 * Unit tests of the topic tree (gateway/src/broker/topic_tree.c), linked with the broker layer
 * and the layers below only: wildcard matching per MQTT 5 section 4.7, '$' topics, deep and wide
 * trees, removal and pruning, and retained messages found by filter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker_lock.h"
#include "msg.h"
#include "topic_tree.h"

struct hits {
    struct sub *seen[64];
    size_t n;
};

static void collect(struct sub *s, void *arg)
{
    struct hits *h = arg;
    if (h->n < 64)
        h->seen[h->n++] = s;
}

static size_t matches(struct tnode *root, const char *topic)
{
    struct hits h = {0};
    topic_tree_match(root, topic, strlen(topic), collect, &h);
    return h.n;
}

static bool matched(struct tnode *root, const char *topic, const struct sub *s)
{
    struct hits h = {0};
    topic_tree_match(root, topic, strlen(topic), collect, &h);
    for (size_t i = 0; i < h.n; i++)
        if (h.seen[i] == s)
            return true;
    return false;
}

static struct sub *subscribe(struct tnode *root, const char *filter)
{
    struct sub *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    struct tnode *n = topic_tree_node(root, filter, strlen(filter));
    assert_non_null(n);
    topic_tree_add_sub(n, s);
    return s;
}

static void unsubscribe(struct sub *s)
{
    struct tnode *n = s->node;
    topic_tree_remove_sub(n, s);
    topic_tree_prune(n);
    free(s);
}

static void wildcards_match_as_section_4_7_says(void **state)
{
    (void)state;
    struct tnode *root = topic_tree_new();
    struct sub *exact = subscribe(root, "sensors/dev-1/env");
    struct sub *plus = subscribe(root, "sensors/+/env");
    struct sub *hash = subscribe(root, "sensors/#");
    struct sub *all = subscribe(root, "#");
    struct sub *plus_end = subscribe(root, "sensors/+");
    struct sub *empty_level = subscribe(root, "a//b");

    assert_true(matched(root, "sensors/dev-1/env", exact));
    assert_true(matched(root, "sensors/dev-1/env", plus));
    assert_true(matched(root, "sensors/dev-1/env", hash));
    assert_true(matched(root, "sensors/dev-1/env", all));
    assert_false(matched(root, "sensors/dev-1/env", plus_end));
    assert_int_equal(matches(root, "sensors/dev-1/env"), 4);
    /* '#' also matches its parent level (4.7.1.2) */
    assert_true(matched(root, "sensors", hash));
    assert_false(matched(root, "sensors", plus_end));
    /* '+' matches an empty level */
    assert_true(matched(root, "sensors/", plus_end));
    assert_true(matched(root, "sensors//env", plus));
    assert_true(matched(root, "a//b", empty_level));
    assert_false(matched(root, "a/b", empty_level));
    /* levels are exact, not prefixes */
    assert_false(matched(root, "sensors/dev-10/env", exact));
    assert_false(matched(root, "sensor/dev-1/env", hash));
    assert_int_equal(matches(root, "other"), 1); /* '#' only */
    unsubscribe(exact);
    unsubscribe(plus);
    unsubscribe(hash);
    unsubscribe(all);
    unsubscribe(plus_end);
    unsubscribe(empty_level);
    topic_tree_free(root);
}

static void dollar_topics_are_not_matched_by_leading_wildcards(void **state)
{
    (void)state;
    struct tnode *root = topic_tree_new();
    struct sub *all = subscribe(root, "#");
    struct sub *plus = subscribe(root, "+/monitor/Clients");
    struct sub *sys = subscribe(root, "$SYS/#");
    struct sub *sys_plus = subscribe(root, "$SYS/+/Clients");
    /* section 4.7.2: a filter starting with a wildcard does not match a topic starting with $ */
    assert_false(matched(root, "$SYS/monitor/Clients", all));
    assert_false(matched(root, "$SYS/monitor/Clients", plus));
    assert_true(matched(root, "$SYS/monitor/Clients", sys));
    assert_true(matched(root, "$SYS/monitor/Clients", sys_plus));
    /* only the first level counts: a later '$' level is ordinary */
    assert_true(matched(root, "a/$x", all));
    assert_true(matched(root, "x/monitor/Clients", plus));
    unsubscribe(all);
    unsubscribe(plus);
    unsubscribe(sys);
    unsubscribe(sys_plus);
    topic_tree_free(root);
}

static void deep_and_wide_trees(void **state)
{
    (void)state;
    struct tnode *root = topic_tree_new();
    /* 1,000 levels deep */
    char deep[4096] = "";
    size_t len = 0;
    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(deep + len, sizeof(deep) - len, "%s%c", i ? "/" : "", 'a' + i % 26);
    struct sub *d = subscribe(root, deep);
    struct sub *dh = subscribe(root, "a/b/c/#");
    assert_true(matched(root, deep, d));
    assert_true(matched(root, deep, dh));
    deep[len - 1] = '?';
    assert_false(matched(root, deep, d));
    /* 20,000 siblings: each found by its own name (hashed children) */
    static struct sub *wide[20000];
    char t[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(t, sizeof(t), "sensors/dev-%d/env", i);
        wide[i] = subscribe(root, t);
    }
    for (int i = 0; i < 20000; i += 997) {
        snprintf(t, sizeof(t), "sensors/dev-%d/env", i);
        assert_int_equal(matches(root, t), 1);
        assert_true(matched(root, t, wide[i]));
    }
    for (int i = 0; i < 20000; i++)
        unsubscribe(wide[i]);
    assert_int_equal(matches(root, "sensors/dev-5/env"), 0);
    unsubscribe(d);
    unsubscribe(dh);
    topic_tree_free(root);
}

static void removal_prunes_and_keeps_the_rest(void **state)
{
    (void)state;
    struct tnode *root = topic_tree_new();
    struct sub *a = subscribe(root, "x/y/z");
    struct sub *b = subscribe(root, "x/y/z"); /* two sessions on one filter */
    struct sub *c = subscribe(root, "x/y");
    assert_int_equal(matches(root, "x/y/z"), 2);
    unsubscribe(a);
    assert_int_equal(matches(root, "x/y/z"), 1);
    assert_true(matched(root, "x/y/z", b));
    assert_true(matched(root, "x/y", c));
    unsubscribe(b);
    assert_int_equal(matches(root, "x/y/z"), 0);
    assert_true(matched(root, "x/y", c)); /* pruning x/y/z left x/y */
    unsubscribe(c);
    /* the same filters again, after everything was pruned */
    struct sub *again = subscribe(root, "x/y/z");
    assert_true(matched(root, "x/y/z", again));
    unsubscribe(again);
    topic_tree_free(root);
}

struct retained_hits {
    const char *topics[16];
    size_t n;
};

static void collect_retained(struct msg *m, void *arg)
{
    struct retained_hits *h = arg;
    if (h->n < 16)
        h->topics[h->n++] = m->topic;
}

static void retain(struct tnode *root, const char *topic)
{
    struct tnode *n = topic_tree_node(root, topic, strlen(topic));
    assert_non_null(n);
    struct msg **slot = topic_tree_node_retained(n);
    msg_unref(*slot);
    *slot = msg_new(topic, strlen(topic), (const uint8_t *)"v", 1, 1, true, NULL, 0);
    assert_non_null(*slot);
}

static size_t retained_for(struct tnode *root, const char *filter)
{
    struct retained_hits h = {0};
    topic_tree_match_retained(root, filter, strlen(filter), collect_retained, &h);
    return h.n;
}

static void retained_messages_found_by_filter(void **state)
{
    (void)state;
    struct tnode *root = topic_tree_new();
    retain(root, "sensors/dev-1/env");
    retain(root, "sensors/dev-2/env");
    retain(root, "sensors/dev-2/power");
    retain(root, "$SYS/uptime");
    retain(root, "sensors");
    assert_int_equal(retained_for(root, "sensors/+/env"), 2);
    assert_int_equal(retained_for(root, "sensors/#"), 4); /* '#' includes the parent */
    assert_int_equal(retained_for(root, "#"), 4);         /* not $SYS/uptime */
    assert_int_equal(retained_for(root, "$SYS/#"), 1);
    assert_int_equal(retained_for(root, "sensors/dev-2/power"), 1);
    assert_int_equal(retained_for(root, "sensors/dev-3/+"), 0);
    retain(root, "sensors/dev-1/env"); /* replaced, not added */
    assert_int_equal(retained_for(root, "sensors/dev-1/env"), 1);
    topic_tree_free(root); /* drops the retained messages (ASan checks the leak) */
}

static bool within(const char *t, uint32_t max_len, uint32_t max_levels)
{
    return topic_tree_within_limits((const uint8_t *)t, strlen(t), max_len, max_levels);
}

/* The configured bounds on topics and filters (a node per level is what a huge topic costs). */
static void topic_limits_count_bytes_and_levels(void **state)
{
    (void)state;
    assert_true(within("a/b/c", 5, 3));
    assert_false(within("a/b/c", 4, 3));
    assert_false(within("a/b/c/d", 100, 3));
    assert_true(within("", 10, 1));
    assert_true(within("/", 10, 2)); /* two empty levels */
    assert_false(within("//", 10, 2));
    static char deep[65536];
    for (int i = 0; i < 65534; i += 2) {
        deep[i] = 'a';
        deep[i + 1] = '/';
    }
    assert_false(within(deep, 65535, 64));
    assert_true(within("sensors/dev-1/env", 1024, 64));
}

int main(void)
{
    broker_lock(); /* the tree's contract: broker lock held */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wildcards_match_as_section_4_7_says),
        cmocka_unit_test(dollar_topics_are_not_matched_by_leading_wildcards),
        cmocka_unit_test(deep_and_wide_trees),
        cmocka_unit_test(removal_prunes_and_keeps_the_rest),
        cmocka_unit_test(retained_messages_found_by_filter),
        cmocka_unit_test(topic_limits_count_bytes_and_levels),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    broker_unlock();
    return rc;
}
