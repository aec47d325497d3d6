/* Unit tests for the uplink's topic templates (gateway/src/cloud/cloud_topic.c): the AWS IoT limit
 * checks, expansion, route matching and command topic parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cloud_topic.h"

static int check(const char *t, enum cloud_template_kind k, char *err)
{
    return cloud_template_check(t, k, "gw1", err, 512);
}

static void templates_accepted(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(check("psagw/{gateway}/sensors/{id}/{rest}", CLOUD_TEMPLATE_UP, err), 0);
    assert_int_equal(check("psagw/{gateway}/attest/{id}", CLOUD_TEMPLATE_ATTEST, err), 0);
    assert_int_equal(check("psagw/{gateway}/cmd/{id}/#", CLOUD_TEMPLATE_COMMAND, err), 0);
    assert_int_equal(check("{gateway}/{id}", CLOUD_TEMPLATE_UP, err), 0);
    /* exactly 7 slashes */
    assert_int_equal(check("a/b/c/d/e/f/{id}/{rest}", CLOUD_TEMPLATE_UP, err), 0);
}

static void templates_refused(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(check("a/b/c/d/e/f/g/{id}/{rest}", CLOUD_TEMPLATE_UP, err), -1);
    assert_non_null(strstr(err, "8 slashes"));
    assert_int_equal(check("$aws/things/{id}", CLOUD_TEMPLATE_ATTEST, err), -1);
    assert_non_null(strstr(err, "'$'"));
    assert_int_equal(check("a/{nope}/{id}", CLOUD_TEMPLATE_UP, err), -1);
    assert_non_null(strstr(err, "unknown variable"));
    assert_int_equal(check("a/+/{id}", CLOUD_TEMPLATE_UP, err), -1);
    assert_int_equal(check("a/#", CLOUD_TEMPLATE_UP, err), -1);
    assert_int_equal(check("a/x{id}", CLOUD_TEMPLATE_UP, err), -1);       /* not a whole level */
    assert_int_equal(check("a/{rest}/{id}", CLOUD_TEMPLATE_UP, err), -1);  /* {rest} not last */
    assert_int_equal(check("a/{id}/{rest}", CLOUD_TEMPLATE_ATTEST, err), -1);
    assert_int_equal(check("a/b", CLOUD_TEMPLATE_ATTEST, err), -1);        /* no {id} */
    assert_int_equal(check("a/{id}", CLOUD_TEMPLATE_COMMAND, err), -1);    /* no "/#" */
    assert_int_equal(check("{id}/a", CLOUD_TEMPLATE_UP, err), -1);
    assert_int_equal(check("", CLOUD_TEMPLATE_UP, err), -1);
    /* bytes: 128-byte ids make 130 + 127 = 257 */
    char t[300];
    memset(t, 'x', 127);
    strcpy(t + 127, "/{id}/y");
    assert_int_equal(check(t, CLOUD_TEMPLATE_UP, err), -1);
    assert_non_null(strstr(err, "256"));
    t[126] = '\0';
    strcat(t, "/{id}");
    assert_int_equal(check(t, CLOUD_TEMPLATE_UP, err), 0);
    /* a gateway name that would change the levels */
    assert_int_equal(cloud_template_check("p/{gateway}/{id}", CLOUD_TEMPLATE_UP, "a/b", err, 512),
                     -1);
    assert_int_equal(cloud_template_check("p/{gateway}/{id}", CLOUD_TEMPLATE_UP, "$gw", err, 512),
                     -1);
}

static void expand(void **state)
{
    (void)state;
    char out[512];
    const char *why;
    const char *t = "psagw/{gateway}/sensors/{id}/{rest}";
    assert_int_equal(cloud_topic_expand(t, "gw1", "dev1", "env/t", 5, out, sizeof(out), &why), 28);
    assert_string_equal(out, "psagw/gw1/sensors/dev1/env/t");
    /* no rest: the slash before it goes too */
    assert_true(cloud_topic_expand(t, "gw1", "dev1", "", 0, out, sizeof(out), &why) > 0);
    assert_string_equal(out, "psagw/gw1/sensors/dev1");
    /* a rest that breaks the slash limit */
    assert_int_equal(cloud_topic_expand(t, "gw1", "dev1", "a/b/c/d/e", 9, out, sizeof(out),
                                        &why), -1);
    assert_string_equal(why, "cloud topic over 7 slashes");
    assert_true(cloud_topic_expand(t, "gw1", "dev1", "a/b/c/d", 7, out, sizeof(out), &why) > 0);
    char rest[300];
    memset(rest, 'r', 250);
    assert_int_equal(cloud_topic_expand(t, "gw1", "dev1", rest, 250, out, sizeof(out), &why), -1);
    assert_string_equal(why, "cloud topic over 256 bytes");
    assert_int_equal(cloud_topic_expand(t, "gw1", "dev1", rest, 250, out, 10, &why), -1);
}

static void route_match(void **state)
{
    (void)state;
    const char *rest;
    size_t n;
    assert_true(cloud_route_match("sensors/+/#", "sensors/d1/env/t", 16, &rest, &n));
    assert_int_equal(n, 5);
    assert_memory_equal(rest, "env/t", 5);
    assert_true(cloud_route_match("sensors/+/#", "sensors/d1", 10, &rest, &n));
    assert_int_equal(n, 0);
    assert_false(cloud_route_match("sensors/+/#", "sensor/d1/x", 11, &rest, &n));
    assert_false(cloud_route_match("sensors/+/#", "sensors", 7, &rest, &n));
    assert_true(cloud_route_match("status/+", "status/d1", 9, &rest, &n));
    assert_int_equal(n, 0);
    assert_false(cloud_route_match("status/+", "status/d1/x", 11, &rest, &n));
    assert_true(cloud_route_match("#", "a/b", 3, &rest, &n));
    assert_int_equal(n, 3);
    assert_false(cloud_route_match("#", "$SYS/x", 6, &rest, &n));
    assert_false(cloud_route_match("+/x", "$SYS/x", 6, &rest, &n));
}

static void command_parse(void **state)
{
    (void)state;
    char filter[256], id[130];
    const char *rest;
    size_t n;
    assert_int_equal(cloud_command_filter("psagw/{gateway}/cmd/{id}/#", "gw1", filter,
                                          sizeof(filter)), 0);
    assert_string_equal(filter, "psagw/gw1/cmd/+/#");
    const char *t = "psagw/gw1/cmd/dev-7/interval";
    assert_true(cloud_command_parse(filter, t, strlen(t), id, sizeof(id), &rest, &n));
    assert_string_equal(id, "dev-7");
    assert_int_equal(n, 8);
    assert_memory_equal(rest, "interval", 8);
    t = "psagw/gw1/cmd/dev-7";
    assert_true(cloud_command_parse(filter, t, strlen(t), id, sizeof(id), &rest, &n));
    assert_int_equal(n, 0);
    t = "psagw/gw2/cmd/dev-7/x";
    assert_false(cloud_command_parse(filter, t, strlen(t), id, sizeof(id), &rest, &n));
    t = "psagw/gw1/cmd//x"; /* empty id */
    assert_false(cloud_command_parse(filter, t, strlen(t), id, sizeof(id), &rest, &n));
    t = "psagw/gw1/other/dev-7/x";
    assert_false(cloud_command_parse(filter, t, strlen(t), id, sizeof(id), &rest, &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(templates_accepted), cmocka_unit_test(templates_refused),
        cmocka_unit_test(expand), cmocka_unit_test(route_match), cmocka_unit_test(command_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
