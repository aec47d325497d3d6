/*
 * Unit tests of the uplink's pacing (gateway/src/cloud/pacing.c), linked with the cloud layer and
 * those below only: AWS IoT's per-connection limits as sliding one-second windows (publishes per
 * second, bytes per second), and the jittered exponential reconnect backoff.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pacing.h"

#define MS 1000u /* microseconds */

static void no_limits_never_wait(void **state)
{
    (void)state;
    struct pacing_rate r = {0};
    assert_int_equal(pacing_wait(&r, 0, 0, 1u << 20, 0), 0);
}

static void publishes_per_second_slide(void **state)
{
    (void)state;
    struct pacing_rate r = {0};
    uint64_t t = 5000 * MS;
    /* 100 publishes at 1 ms intervals fill a window of 100/s */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(pacing_wait(&r, 100, 0, 10, t), 0);
        assert_int_equal(pacing_record(&r, 10, t), 0);
        t += MS;
    }
    /* the 101st waits until the first leaves the window (sent at 5000 ms) */
    uint64_t w = pacing_wait(&r, 100, 0, 10, t);
    assert_int_equal(w, 5000 * MS + PACING_WINDOW_US - t);
    /* at that moment it may go, and the next waits for the second one */
    t += w;
    assert_int_equal(pacing_wait(&r, 100, 0, 10, t), 0);
    assert_int_equal(pacing_record(&r, 10, t), 0);
    assert_int_equal(pacing_wait(&r, 100, 0, 10, t), MS);
    pacing_rate_free(&r);
}

static void bytes_per_second_wait_for_enough_to_leave(void **state)
{
    (void)state;
    struct pacing_rate r = {0};
    uint64_t t = 0;
    assert_int_equal(pacing_record(&r, 400, t), 0);
    assert_int_equal(pacing_record(&r, 400, t + 100 * MS), 0);
    /* 800 of 1000 used: 200 more fit, 300 do not */
    assert_int_equal(pacing_wait(&r, 0, 1000, 200, t + 200 * MS), 0);
    /* 300 need the first 400 gone: at 0 + window */
    assert_int_equal(pacing_wait(&r, 0, 1000, 300, t + 200 * MS), PACING_WINDOW_US - 200 * MS);
    /* 700 need both gone: at 100 ms + window */
    assert_int_equal(pacing_wait(&r, 0, 1000, 700, t + 200 * MS), PACING_WINDOW_US - 100 * MS);
    /* a message over the whole limit goes alone, once the window is empty */
    assert_int_equal(pacing_wait(&r, 0, 1000, 5000, t + 200 * MS), PACING_WINDOW_US - 100 * MS);
    assert_int_equal(pacing_wait(&r, 0, 1000, 5000, t + 100 * MS + PACING_WINDOW_US), 0);
    pacing_rate_free(&r);
}

static void the_ring_grows_past_its_first_size(void **state)
{
    (void)state;
    struct pacing_rate r = {0};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(pacing_record(&r, 1, (uint64_t)i), 0);
    assert_int_equal(r.n, 1000);
    assert_int_equal(r.bytes, 1000);
    /* all of them still inside the window: a limit of 1000/s waits */
    assert_true(pacing_wait(&r, 1000, 0, 1, 1000) > 0);
    /* all gone a window later */
    assert_int_equal(pacing_wait(&r, 1000, 0, 1, 1000 + PACING_WINDOW_US), 0);
    assert_int_equal(r.n, 0);
    pacing_rate_free(&r);
}

static void backoff_doubles_up_to_the_maximum_with_jitter(void **state)
{
    (void)state;
    unsigned rng = 12345;
    uint32_t b = 0;
    uint32_t expect[] = {1, 2, 4, 8, 16, 30, 30};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        uint64_t ms = pacing_backoff_ms(&b, 1, 30, &rng);
        assert_int_equal(b, expect[i]);
        /* drawn from [d/2, d] seconds */
        assert_true(ms >= (uint64_t)expect[i] * 500u);
        assert_true(ms <= (uint64_t)expect[i] * 1000u);
    }
    /* a success resets it (the caller sets 0): back to the minimum */
    b = 0;
    pacing_backoff_ms(&b, 1, 30, &rng);
    assert_int_equal(b, 1);
    /* the jitter spreads a storm of gateways: not every draw is the same */
    uint64_t first = pacing_backoff_ms(&(uint32_t){8}, 1, 30, &rng), differs = 0;
    for (int i = 0; i < 20; i++)
        differs += pacing_backoff_ms(&(uint32_t){8}, 1, 30, &rng) != first;
    assert_true(differs > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_limits_never_wait),
        cmocka_unit_test(publishes_per_second_slide),
        cmocka_unit_test(bytes_per_second_wait_for_enough_to_leave),
        cmocka_unit_test(the_ring_grows_past_its_first_size),
        cmocka_unit_test(backoff_doubles_up_to_the_maximum_with_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
