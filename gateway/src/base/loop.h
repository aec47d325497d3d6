/*
 * loop.h: the event loop every part of the daemon sits on: epoll for file descriptors, a binary
 * heap for timers, and a hook that runs before each sleep (where buffered output is flushed).
 * Callers embed a struct loop_io or struct loop_timer in their own objects and get it back in
 * the callback (container_of), so the loop itself never allocates per event.
 */
#ifndef PSAGW_LOOP_H
#define PSAGW_LOOP_H

#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct loop;
struct loop_io;
struct loop_timer;

typedef void (*loop_io_fn)(struct loop *l, struct loop_io *io, uint32_t events);
typedef void (*loop_timer_fn)(struct loop *l, struct loop_timer *t);
typedef void (*loop_hook_fn)(struct loop *l, void *arg);

struct loop_io {
    int fd;
    uint32_t events; /* EPOLLIN / EPOLLOUT currently asked for */
    loop_io_fn fn;
};

struct loop_timer {
    uint64_t when_ms;
    size_t heap_index; /* 0 when not armed */
    loop_timer_fn fn;
};

struct loop *loop_new(void);
void loop_free(struct loop *l);
/* Runs until loop_stop(); returns 0, or -1 if epoll failed. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);
void loop_set_before_sleep(struct loop *l, loop_hook_fn fn, void *arg);

/* Monotonic milliseconds, cached once per loop iteration. */
uint64_t loop_now_ms(const struct loop *l);
/* The same moment in microseconds (the clock is read once per wake-up, not per caller). */
uint64_t loop_now_us(const struct loop *l);

int loop_io_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn fn);
int loop_io_modify(struct loop *l, struct loop_io *io, uint32_t events);
void loop_io_remove(struct loop *l, struct loop_io *io);
/* Closes the descriptor, which also takes it out of epoll (one syscall instead of two); only
 * for descriptors never duplicated, whose epoll entry goes with their last close. */
void loop_io_close(struct loop *l, struct loop_io *io);

/* Arms (or re-arms) t to fire after `ms`; cancelling an unarmed timer is harmless. */
void loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t ms, loop_timer_fn fn);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

#endif
