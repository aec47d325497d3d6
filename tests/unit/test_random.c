/*
 * test_random.c: random_draw (gateway/src/net/random.c), the per-thread pool of DRBG output that
 * server randoms and attestation nonces come from: every byte handed out once, across refills,
 * draws larger than the pool, and threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "random.h"

#define DRAWS 100 /* 32-byte draws: 3,200 bytes, three refills of the 1 KiB pool */

static uint8_t drawn[DRAWS][32];

/* No two 32-byte draws alike (a repeat would mean a byte handed out twice, or a refill that
 * did not happen): 2^-256 by chance. */
static void test_draws_are_distinct_across_refills(void **state)
{
    (void)state;
    for (int i = 0; i < DRAWS; i++)
        assert_int_equal(random_draw(drawn[i], 32), 0);
    for (int i = 0; i < DRAWS; i++)
        for (int j = i + 1; j < DRAWS; j++)
            assert_memory_not_equal(drawn[i], drawn[j], 32);
}

/* Odd sizes leave the pool unaligned; a draw larger than the pool goes to the DRBG directly;
 * an empty draw is fine. */
static void test_sizes(void **state)
{
    (void)state;
    uint8_t a[7], b[7], big[3000], zero[3000];
    assert_int_equal(random_draw(a, sizeof(a)), 0);
    assert_int_equal(random_draw(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    memset(big, 0, sizeof(big));
    memset(zero, 0, sizeof(zero));
    assert_int_equal(random_draw(big, sizeof(big)), 0);
    assert_memory_not_equal(big + 2000, zero, 1000);
    assert_int_equal(random_draw(NULL, 0), 0);
}

static uint8_t other[DRAWS][32];

static void *draw_in_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < DRAWS; i++)
        if (random_draw(other[i], 32) != 0)
            return (void *)1;
    return NULL;
}

/* Each thread has its own pool: what another thread draws is not what this one drew. */
static void test_threads_draw_their_own(void **state)
{
    (void)state;
    pthread_t t;
    void *rc;
    assert_int_equal(pthread_create(&t, NULL, draw_in_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &rc), 0);
    assert_null(rc);
    for (int i = 0; i < DRAWS; i++)
        for (int j = 0; j < DRAWS; j++)
            assert_memory_not_equal(drawn[i], other[j], 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draws_are_distinct_across_refills),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_threads_draw_their_own),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
