/*
 * loop.c: epoll + a timer heap. Level-triggered epoll keeps the TLS read path simple (a
 * handler that leaves bytes unread is called again); the heap makes timers O(log n) to arm and
 * cancel, which matters with one keep-alive and one connect deadline per device.
 */
#include "clock.h"
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 256

struct loop {
    int epfd;
    int stop;
    uint64_t now_ms;
    uint64_t now_us; /* the same reading, in microseconds */
    struct loop_timer **heap; /* 1-based */
    size_t heap_len;
    size_t heap_cap;
    loop_hook_fn before_sleep;
    void *before_sleep_arg;
};

struct loop *loop_new(void)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    l->now_us = clock_mono_us();
    l->now_ms = l->now_us / 1000u;
    return l;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    close(l->epfd);
    free(l->heap);
    free(l);
}

void loop_stop(struct loop *l)
{
    l->stop = 1;
}

void loop_set_before_sleep(struct loop *l, loop_hook_fn fn, void *arg)
{
    l->before_sleep = fn;
    l->before_sleep_arg = arg;
}

uint64_t loop_now_ms(const struct loop *l)
{
    return l->now_ms;
}

uint64_t loop_now_us(const struct loop *l)
{
    return l->now_us;
}

int loop_io_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn fn)
{
    io->fd = fd;
    io->events = events;
    io->fn = fn;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int loop_io_modify(struct loop *l, struct loop_io *io, uint32_t events)
{
    if (io->events == events)
        return 0;
    io->events = events;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev);
}

void loop_io_remove(struct loop *l, struct loop_io *io)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->events = 0;
}

void loop_io_close(struct loop *l, struct loop_io *io)
{
    (void)l;
    close(io->fd);
    io->events = 0;
}

static void heap_swap(struct loop *l, size_t a, size_t b)
{
    struct loop_timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_index = a;
    l->heap[b]->heap_index = b;
}

static void heap_up(struct loop *l, size_t i)
{
    while (i > 1 && l->heap[i / 2]->when_ms > l->heap[i]->when_ms) {
        heap_swap(l, i, i / 2);
        i /= 2;
    }
}

static void heap_down(struct loop *l, size_t i)
{
    for (;;) {
        size_t m = i, a = 2 * i, b = 2 * i + 1;
        if (a <= l->heap_len && l->heap[a]->when_ms < l->heap[m]->when_ms)
            m = a;
        if (b <= l->heap_len && l->heap[b]->when_ms < l->heap[m]->when_ms)
            m = b;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
    size_t i = t->heap_index;
    if (i == 0)
        return;
    t->heap_index = 0;
    if (i != l->heap_len) {
        l->heap[i] = l->heap[l->heap_len];
        l->heap[i]->heap_index = i;
        l->heap_len--;
        heap_up(l, i);
        heap_down(l, i);
    } else {
        l->heap_len--;
    }
}

void loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t ms, loop_timer_fn fn)
{
    loop_timer_cancel(l, t);
    if (l->heap_len + 1 >= l->heap_cap) {
        size_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
        struct loop_timer **h = realloc(l->heap, cap * sizeof(*h));
        if (!h)
            abort(); /* a timer that silently never fires would be worse */
        l->heap = h;
        l->heap_cap = cap;
    }
    t->fn = fn;
    t->when_ms = l->now_ms + ms;
    t->heap_index = ++l->heap_len;
    l->heap[t->heap_index] = t;
    heap_up(l, t->heap_index);
}

static void run_timers(struct loop *l)
{
    while (l->heap_len > 0 && l->heap[1]->when_ms <= l->now_ms) {
        struct loop_timer *t = l->heap[1];
        loop_timer_cancel(l, t);
        t->fn(l, t);
    }
}

int loop_run(struct loop *l)
{
    struct epoll_event events[LOOP_MAX_EVENTS];
    l->stop = 0;
    while (!l->stop) {
        if (l->before_sleep)
            l->before_sleep(l, l->before_sleep_arg);
        if (l->stop)
            break; /* the hook may stop the loop */
        int timeout = -1;
        if (l->heap_len > 0) {
            uint64_t now = clock_mono_ms();
            uint64_t when = l->heap[1]->when_ms;
            timeout = when <= now ? 0 : (int)(when - now > 60000 ? 60000 : when - now);
        }
        int n = epoll_wait(l->epfd, events, LOOP_MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR)
            return -1;
        l->now_us = clock_mono_us();
        l->now_ms = l->now_us / 1000u;
        for (int i = 0; i < n; i++) {
            struct loop_io *io = events[i].data.ptr;
            io->fn(l, io, events[i].events);
        }
        run_timers(l);
    }
    return 0;
}
