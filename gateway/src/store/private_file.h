/*
 * private_file.h: the files that hold secrets or device data (the registry, the spool) must be
 * the gateway's alone. Checked at start, so a wrong mode is a clear error, not a quiet leak.
 */
#ifndef PSAGW_PRIVATE_FILE_H
#define PSAGW_PRIVATE_FILE_H

#include <stddef.h>

/*
 * Checks `path` (if it exists: no access for group or others, 0600 or stricter) and its
 * directory (not writable by others without the sticky bit: anyone could replace the file).
 * `what` names the file in the message ("registry"). Returns 0, or -1 with the reason in err.
 */
int private_file_check(const char *path, const char *what, char *err, size_t errlen);

#endif
