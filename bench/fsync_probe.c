/*
 * fsync_probe: what the disk's own durability costs, as the floor for the durable cloud path's
 * PUBACK latency (bench/cloud.sh): in DIR, N times, appends one 4 KiB block to a file and
 * fdatasync()s it (SQLite's WAL commit with synchronous=FULL is a write and an fsync of the
 * WAL), timing each; prints p50, p99 and max in microseconds.
 *
 *   fsync_probe DIR [N]      (N default 400)
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fsync_probe DIR [N]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 400;
    if (n < 10 || n > 100000) {
        fprintf(stderr, "fsync_probe: N must be 10..100000\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/fsync_probe.%d", argv[1], (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    static char block[4096];
    memset(block, 'p', sizeof(block));
    double *t = calloc((size_t)n, sizeof(*t));
    if (!t)
        return 1;
    for (int i = 0; i < n; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || fdatasync(fd) != 0) {
            perror("fsync_probe: write/fdatasync");
            unlink(path);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        t[i] = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
    }
    close(fd);
    unlink(path);
    qsort(t, (size_t)n, sizeof(*t), cmp);
    printf("fsync_probe n=%d p50_us=%.0f p99_us=%.0f max_us=%.0f\n", n, t[n / 2],
           t[(size_t)(n * 0.99)], t[n - 1]);
    free(t);
    return 0;
}
