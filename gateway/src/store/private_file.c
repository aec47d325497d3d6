/*
 * private_file.c: the start-up check of the registry's and the spool's modes (private_file.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "private_file.h"

int private_file_check(const char *path, const char *what, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077)) {
        snprintf(err, errlen,
                 "the %s %s can be read or written by other users (mode %04o); it must be the "
                 "gateway's alone: chmod 600 %s",
                 what, path, (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (stat(dir, &st) == 0 && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
        snprintf(err, errlen,
                 "the directory %s of the %s can be written by any user (mode %04o): anyone could "
                 "replace the file; chmod o-w %s",
                 dir, what, (unsigned)(st.st_mode & 07777), dir);
        return -1;
    }
    return 0;
}
