/*
 * device.c: a registry entry's small helpers (registry.h): wiping one, checking a device id,
 * and the names of roles, attestation policies and token profiles as the CLI and the
 * configuration spell them.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

void device_clear(struct device *d)
{
    OPENSSL_cleanse(d->psk, sizeof(d->psk));
    d->psk_len = 0;
    OPENSSL_cleanse(d->iak, sizeof(d->iak));
    d->iak_len = 0;
    free(d->acl_pub);
    free(d->acl_sub);
    d->acl_pub = d->acl_sub = NULL;
}

bool device_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > DEVICE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        /* '/', '+' and '#' would change the meaning of the %c ACL patterns and topics */
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '+' || c == '#')
            return false;
    }
    return true;
}

static const char *const role_names[] = {"sensor", "monitor", "custom"};
static const char *const policy_names[] = {"default", "off", "optional", "required"};

const char *device_role_name(enum device_role role)
{
    return (unsigned)role < 3 ? role_names[role] : "?";
}

int device_role_parse(const char *s)
{
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, role_names[i]) == 0)
            return i;
    return -1;
}

const char *device_policy_name(enum attest_policy p)
{
    return (unsigned)p < 4 ? policy_names[p] : "?";
}

int device_profile_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "auto") == 0)
        return IAT_PROFILE_AUTO;
    if (strcmp(s, "legacy") == 0)
        return IAT_PROFILE_LEGACY;
    if (strcmp(s, "psa2") == 0)
        return IAT_PROFILE_PSA2;
    return -1;
}

int device_policy_parse(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, policy_names[i]) == 0)
            return i;
    return -1;
}
