/*
 * Unit tests of the base layer, linked with base alone: the event loop (timers in deadline
 * order, re-arming and cancelling, descriptors, the before-sleep hook, stopping), the clock and
 * the broker lock's held/not-held bookkeeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker_lock.h"
#include "clock.h"
#include "loop.h"

struct rec {
    struct loop_timer t;
    int id;
};

static int order[16];
static size_t n_order;
static unsigned hooks;

static void fired(struct loop *l, struct loop_timer *t)
{
    struct rec *r = container_of(t, struct rec, t);
    order[n_order++] = r->id;
    if (n_order == 3)
        loop_stop(l);
}

static void count_hook(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    hooks++;
}

static void timers_fire_in_deadline_order(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    struct rec a = {.id = 1}, b = {.id = 2}, c = {.id = 3}, d = {.id = 4};
    n_order = 0;
    loop_timer_start(l, &a.t, 30, fired);
    loop_timer_start(l, &b.t, 10, fired);
    loop_timer_start(l, &c.t, 20, fired);
    loop_timer_start(l, &d.t, 5, fired);
    loop_timer_cancel(l, &d.t);          /* cancelled: never fires */
    loop_timer_cancel(l, &d.t);          /* twice is harmless */
    loop_timer_start(l, &c.t, 1, fired); /* re-armed earlier */
    loop_set_before_sleep(l, count_hook, NULL);
    hooks = 0;
    uint64_t t0 = clock_mono_ms();
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(n_order, 3);
    assert_int_equal(order[0], 3);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 1);
    assert_true(clock_mono_ms() - t0 >= 29);
    assert_true(hooks >= 1);
    loop_free(l);
}

struct reader {
    struct loop_io io;
    char got[16];
};

static void on_readable(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct reader *r = container_of(io, struct reader, io);
    assert_true(events & EPOLLIN);
    ssize_t n = read(io->fd, r->got, sizeof(r->got) - 1);
    assert_true(n > 0);
    loop_stop(l);
}

static void descriptors_report_readiness(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct reader r = {0};
    assert_int_equal(loop_io_add(l, &r.io, fds[0], EPOLLIN, on_readable), 0);
    assert_int_equal(write(fds[1], "ping", 4), 4);
    assert_int_equal(loop_run(l), 0);
    assert_string_equal(r.got, "ping");
    loop_io_remove(l, &r.io);
    close(fds[0]);
    close(fds[1]);
    loop_free(l);
}

static void clocks_move_forward(void **state)
{
    (void)state;
    uint64_t a = clock_mono_us();
    usleep(2000);
    uint64_t b = clock_mono_us();
    assert_true(b - a >= 2000);
    assert_true(clock_wall_ms() > 1700000000000ull); /* after 2023 */
    struct timespec d = clock_wall_deadline(1500);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
}

static void broker_lock_knows_who_holds_it(void **state)
{
    (void)state;
    assert_false(broker_lock_held());
    broker_lock();
    assert_true(broker_lock_held());
    broker_unlock();
    assert_false(broker_lock_held());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timers_fire_in_deadline_order),
        cmocka_unit_test(descriptors_report_readiness),
        cmocka_unit_test(clocks_move_forward),
        cmocka_unit_test(broker_lock_knows_who_holds_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
