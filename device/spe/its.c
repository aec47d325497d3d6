/*
 * its.c: Internal Trusted Storage (PSA ITS API 1.0) for the emulated SPE.
 *
 * On a device ITS lives in on-chip flash that only the secure side can reach; here it is one
 * file per uid in the device's state directory, created 0600, written to a temporary file,
 * fsync'd and renamed into place so a crash leaves the old value or the new one, never half
 * of either. PSA_STORAGE_FLAG_WRITE_ONCE is kept in the file's header and enforced.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "psa/internal_trusted_storage.h"
#include "spe.h"

#define ITS_MAGIC 0x49545331u /* "ITS1" */
#define ITS_MAX_SIZE 4096

struct its_header {
    uint32_t magic;
    uint32_t flags;
    uint32_t size;
};

static char its_dir[4096];

int its_init(const char *dir)
{
    if (strlen(dir) >= sizeof(its_dir) - 64)
        return -1;
    snprintf(its_dir, sizeof(its_dir), "%s/its", dir);
    if (mkdir(its_dir, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static void path_of(psa_storage_uid_t uid, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%016llx", its_dir, (unsigned long long)uid);
}

/* Reads the header and (optionally) the data; PSA_ERROR_DOES_NOT_EXIST if absent. */
static psa_status_t read_file(psa_storage_uid_t uid, struct its_header *h, uint8_t *data,
                              size_t cap)
{
    char path[4200];
    path_of(uid, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? PSA_ERROR_DOES_NOT_EXIST : PSA_ERROR_STORAGE_FAILURE;
    psa_status_t st = PSA_SUCCESS;
    if (read(fd, h, sizeof(*h)) != (ssize_t)sizeof(*h) || h->magic != ITS_MAGIC ||
        h->size > ITS_MAX_SIZE)
        st = PSA_ERROR_DATA_CORRUPT;
    else if (data && (h->size > cap || read(fd, data, h->size) != (ssize_t)h->size))
        st = PSA_ERROR_DATA_CORRUPT;
    close(fd);
    return st;
}

psa_status_t psa_its_set(psa_storage_uid_t uid, uint32_t data_length, const void *p_data,
                         psa_storage_create_flags_t create_flags)
{
    if (uid == 0 || (create_flags & ~PSA_STORAGE_FLAG_WRITE_ONCE))
        return PSA_ERROR_NOT_SUPPORTED;
    if (data_length > ITS_MAX_SIZE || (data_length && !p_data))
        return PSA_ERROR_INVALID_ARGUMENT;
    struct its_header old;
    psa_status_t st = read_file(uid, &old, NULL, 0);
    if (st == PSA_SUCCESS && (old.flags & PSA_STORAGE_FLAG_WRITE_ONCE))
        return PSA_ERROR_NOT_PERMITTED;
    char path[4200], tmp[4300];
    path_of(uid, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return PSA_ERROR_STORAGE_FAILURE;
    struct its_header h = {ITS_MAGIC, create_flags, data_length};
    bool ok = write(fd, &h, sizeof(h)) == (ssize_t)sizeof(h) &&
              (data_length == 0 || write(fd, p_data, data_length) == (ssize_t)data_length) &&
              fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return PSA_ERROR_STORAGE_FAILURE;
    }
    int dfd = open(its_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return PSA_SUCCESS;
}

psa_status_t psa_its_get(psa_storage_uid_t uid, uint32_t data_offset, uint32_t data_length,
                         void *p_data, size_t *p_data_length)
{
    static uint8_t buf[ITS_MAX_SIZE];
    struct its_header h;
    psa_status_t st = read_file(uid, &h, buf, sizeof(buf));
    if (st != PSA_SUCCESS)
        return st;
    if (data_offset > h.size)
        return PSA_ERROR_INVALID_ARGUMENT;
    size_t n = h.size - data_offset < data_length ? h.size - data_offset : data_length;
    memcpy(p_data, buf + data_offset, n);
    *p_data_length = n;
    memset(buf, 0, sizeof(buf));
    return PSA_SUCCESS;
}

psa_status_t psa_its_get_info(psa_storage_uid_t uid, struct psa_storage_info_t *p_info)
{
    struct its_header h;
    psa_status_t st = read_file(uid, &h, NULL, 0);
    if (st != PSA_SUCCESS)
        return st;
    p_info->size = h.size;
    p_info->flags = h.flags;
    return PSA_SUCCESS;
}

psa_status_t psa_its_remove(psa_storage_uid_t uid)
{
    struct its_header h;
    psa_status_t st = read_file(uid, &h, NULL, 0);
    if (st != PSA_SUCCESS)
        return st;
    if (h.flags & PSA_STORAGE_FLAG_WRITE_ONCE)
        return PSA_ERROR_NOT_PERMITTED;
    char path[4200];
    path_of(uid, path, sizeof(path));
    return unlink(path) == 0 ? PSA_SUCCESS : PSA_ERROR_STORAGE_FAILURE;
}
