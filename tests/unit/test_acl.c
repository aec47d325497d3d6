/*
 * Unit tests of the ACL: role patterns with %c, publish matching, and the subscribe rule that a
 * filter must not reach any topic its pattern does not (acl_filter_within).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "acl.h"

static bool within(const char *pattern, const char *filter)
{
    return acl_filter_within(pattern, filter, strlen(filter));
}

static void filter_within_pattern(void **state)
{
    (void)state;
    assert_true(within("sensors/#", "sensors/#"));
    assert_true(within("sensors/#", "sensors/dev-1/env"));
    assert_true(within("sensors/#", "sensors/+/env"));
    assert_true(within("sensors/#", "sensors"));
    assert_true(within("cmd/dev-1/#", "cmd/dev-1/#"));
    assert_true(within("cmd/dev-1/#", "cmd/dev-1/set/+"));
    assert_false(within("cmd/dev-1/#", "cmd/#"));
    assert_false(within("cmd/dev-1/#", "cmd/+/set"));
    assert_false(within("cmd/dev-1/#", "+/dev-1/set"));
    assert_false(within("cmd/dev-1/#", "#"));
    assert_false(within("cmd/dev-1/#", "cmd/dev-10/x"));
    assert_true(within("a/+/c", "a/b/c"));
    assert_true(within("a/+/c", "a/+/c"));
    assert_false(within("a/+/c", "a/+/#"));
    assert_false(within("a/+/c", "a/b"));
    assert_false(within("a/+/c", "a/b/c/d"));
    assert_true(within("#", "anything/at/all"));
    assert_false(within("#", "$SYS/x"));
    assert_false(within("+/x", "$SYS/x"));
    assert_true(within("$SYS/#", "$SYS/x"));
    assert_false(within("status/dev-1", "status/dev-1/x"));
    assert_true(within("status/dev-1", "status/dev-1"));
}

static void role_patterns_expand_client_id(void **state)
{
    (void)state;
    struct config cfg;
    config_defaults(&cfg);
    struct device d = {.id = "dev-1", .role = ROLE_SENSOR};
    struct principal who = {0};
    assert_int_equal(acl_principal_init(&who, &d, &cfg), 0);
#define PUB(t) acl_may_publish(&who, t, strlen(t))
#define SUB(t) acl_may_subscribe(&who, t, strlen(t))
    assert_true(PUB("sensors/dev-1/env"));
    assert_true(PUB("status/dev-1"));
    assert_false(PUB("sensors/dev-2/env"));
    assert_false(PUB("sensors/dev-10/env"));
    assert_false(PUB("cmd/dev-1/set"));
    assert_true(SUB("cmd/dev-1/#"));
    assert_false(SUB("sensors/#"));
    acl_principal_clear(&who);

    struct device m = {.id = "mon-1", .role = ROLE_MONITOR};
    assert_int_equal(acl_principal_init(&who, &m, &cfg), 0);
    assert_true(SUB("sensors/#"));
    assert_true(SUB("status/+"));
    assert_true(SUB("cmd/mon-1/x"));
    assert_false(SUB("cmd/dev-1/x"));
    assert_false(PUB("sensors/mon-1/env"));
    assert_true(PUB("status/mon-1"));
    acl_principal_clear(&who);

    char pub[] = "plant/%c/#\nshared/out";
    char subs[] = "plant/#";
    struct device c = {.id = "x7", .role = ROLE_CUSTOM, .acl_pub = pub, .acl_sub = subs};
    assert_int_equal(acl_principal_init(&who, &c, &cfg), 0);
    assert_true(PUB("plant/x7/a/b"));
    assert_true(PUB("shared/out"));
    assert_false(PUB("plant/x8/a"));
    assert_false(PUB("sensors/x7/env"));
    assert_true(SUB("plant/+/a"));
    assert_false(SUB("cmd/x7/#"));
    acl_principal_clear(&who);

    /* anonymous: everything by default, only the configured patterns otherwise */
    assert_int_equal(acl_principal_init(&who, NULL, &cfg), 0);
    assert_true(PUB("any/topic"));
    acl_principal_clear(&who);
    char anon_pub[] = "tools/%c/#";
    cfg.anonymous_acl_pub = anon_pub;
    snprintf(who.id, sizeof(who.id), "t1");
    assert_int_equal(acl_principal_init(&who, NULL, &cfg), 0);
    assert_true(PUB("tools/t1/x"));
    assert_false(PUB("tools/t2/x"));
    acl_principal_clear(&who);
#undef PUB
#undef SUB
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filter_within_pattern),
        cmocka_unit_test(role_patterns_expand_client_id),
    };
    return cmocka_run_group_tests_name("acl", tests, NULL, NULL);
}
