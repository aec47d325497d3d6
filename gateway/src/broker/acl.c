/*
 * acl.c: who may publish and subscribe where (docs/design/wire.md section 2, "Topics and access control").
 *
 * A principal carries two pattern lists with %c already replaced by its client id. Publishing
 * needs a pattern matching the topic; subscribing needs a pattern that covers everything the
 * filter can match (acl_filter_within), so "sensors/#" is allowed by "sensors/#" but a sensor
 * allowed "cmd/dev-1/#" cannot subscribe to "cmd/#" or "+/dev-1/x".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"

static const char *const sensor_pub[] = {"sensors/%c/#", "status/%c", NULL};
static const char *const sensor_sub[] = {"cmd/%c/#", NULL};
static const char *const monitor_pub[] = {"status/%c", NULL};
static const char *const monitor_sub[] = {"sensors/#", "status/#", "cmd/%c/#", NULL};

static char *expand(const char *pattern, size_t plen, const char *id)
{
    size_t idlen = strlen(id), n = 0;
    for (size_t i = 0; i < plen; i++)
        n += (pattern[i] == '%' && i + 1 < plen && pattern[i + 1] == 'c') ? (i++, idlen) : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < plen; i++) {
        if (pattern[i] == '%' && i + 1 < plen && pattern[i + 1] == 'c') {
            memcpy(o, id, idlen);
            o += idlen;
            i++;
        } else {
            *o++ = pattern[i];
        }
    }
    *o = '\0';
    return out;
}

/* Appends the built-in patterns and the newline-separated extra ones to a NULL-terminated list. */
static char **build(const char *const *builtin, const char *extra, const char *id)
{
    size_t n = 0;
    for (const char *const *p = builtin; p && *p; p++)
        n++;
    for (const char *s = extra; s && *s; s++)
        if (*s == '\n')
            n++;
    if (extra && *extra)
        n++;
    char **list = calloc(n + 1, sizeof(*list));
    if (!list)
        return NULL;
    size_t k = 0;
    for (const char *const *p = builtin; p && *p; p++)
        if (!(list[k++] = expand(*p, strlen(*p), id)))
            goto fail;
    for (const char *s = extra; s && *s;) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len && !(list[k++] = expand(s, len, id)))
            goto fail;
        s += len + (e ? 1 : 0);
    }
    return list;
fail:
    for (size_t i = 0; i < k; i++)
        free(list[i]);
    free(list);
    return NULL;
}

static void free_list(char **list)
{
    for (char **p = list; p && *p; p++)
        free(*p);
    free(list);
}

int acl_principal_init(struct principal *who, const struct device *d, const struct config *cfg)
{
    const char *const *bp = NULL, *const *bs = NULL;
    const char *xp, *xs;
    if (d) {
        who->anonymous = false;
        snprintf(who->id, sizeof(who->id), "%s", d->id);
        who->role = d->role;
        who->attestation = d->attestation;
        if (d->role == ROLE_SENSOR) {
            bp = sensor_pub;
            bs = sensor_sub;
        } else if (d->role == ROLE_MONITOR) {
            bp = monitor_pub;
            bs = monitor_sub;
        }
        xp = d->acl_pub;
        xs = d->acl_sub;
    } else {
        who->anonymous = true;
        who->role = ROLE_CUSTOM;
        who->attestation = ATTEST_OFF;
        /* an anonymous client with no configured ACL may do anything (mosquitto's
         * allow_anonymous without an acl_file); with one, only what it lists */
        xp = cfg->anonymous_acl_pub ? cfg->anonymous_acl_pub : "#";
        xs = cfg->anonymous_acl_sub ? cfg->anonymous_acl_sub : "#";
    }
    acl_principal_clear(who);
    who->acl_pub = build(bp, xp, who->id);
    who->acl_sub = build(bs, xs, who->id);
    if (!who->acl_pub || !who->acl_sub) {
        acl_principal_clear(who);
        return -1;
    }
    return 0;
}

void acl_principal_clear(struct principal *who)
{
    free_list(who->acl_pub);
    free_list(who->acl_sub);
    who->acl_pub = who->acl_sub = NULL;
}

bool acl_may_publish(const struct principal *who, const char *topic, size_t len)
{
    for (char **p = who->acl_pub; p && *p; p++)
        if (mqtt_topic_matches((const uint8_t *)*p, strlen(*p), (const uint8_t *)topic, len))
            return true;
    return false;
}

bool acl_filter_within(const char *pattern, const char *f, size_t flen)
{
    size_t plen = strlen(pattern), pi = 0, fi = 0;
    /* a '$' topic is reachable only through a pattern that names the '$' level */
    if (flen > 0 && f[0] == '$' && plen > 0 && (pattern[0] == '#' || pattern[0] == '+'))
        return false;
    for (;;) {
        size_t pj = pi, fj = fi;
        while (pj < plen && pattern[pj] != '/')
            pj++;
        while (fj < flen && f[fj] != '/')
            fj++;
        bool p_hash = pj - pi == 1 && pattern[pi] == '#';
        bool f_hash = fj - fi == 1 && f[fi] == '#';
        bool p_plus = pj - pi == 1 && pattern[pi] == '+';
        bool f_plus = fj - fi == 1 && f[fi] == '+';
        if (p_hash)
            return true;
        if (f_hash)
            return false; /* the filter reaches deeper than a non-# pattern level */
        if (!p_plus && (f_plus || pj - pi != fj - fi || memcmp(pattern + pi, f + fi, pj - pi)))
            return false;
        bool p_end = pj >= plen, f_end = fj >= flen;
        if (p_end && f_end)
            return true;
        if (f_end)
            /* the filter stops here; "a/#" also covers "a" */
            return plen - pj == 2 && pattern[pj + 1] == '#';
        if (p_end)
            return false;
        pi = pj + 1;
        fi = fj + 1;
    }
}

bool acl_may_subscribe(const struct principal *who, const char *filter, size_t len)
{
    for (char **p = who->acl_sub; p && *p; p++)
        if (acl_filter_within(*p, filter, len))
            return true;
    return false;
}
