/*
 * Fuzz target for the configuration parser (gateway/src/store/config.c): any bytes as a config
 * file must give either a configuration or an error naming the file and line, never a crash or
 * a leak. The input goes through a file, as config_load reads one.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof(path), "/dev/shm/psagw-fuzz-config.%d", (int)getpid());
        log_set_level(LOG_ERROR);
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    struct config c;
    char err[1024];
    config_defaults(&c);
    if (config_load(&c, path, err, sizeof(err)) == 0)
        config_finish(&c, err, sizeof(err));
    else if (!strstr(err, path)) /* every error names the file */
        __builtin_trap();
    config_free(&c);
    return 0;
}
