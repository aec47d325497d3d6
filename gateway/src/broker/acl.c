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

/* Length of `pattern` (plen bytes) with each %c replaced by an id of idlen bytes; with `out`,
 * writes it there too, NUL-terminated. */
static size_t expand(const char *pattern, size_t plen, const char *id, size_t idlen, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < plen; i++) {
        bool c = pattern[i] == '%' && i + 1 < plen && pattern[i + 1] == 'c';
        if (out) {
            if (c)
                memcpy(out + n, id, idlen);
            else
                out[n] = pattern[i];
        }
        n += c ? idlen : 1;
        i += c;
    }
    if (out)
        out[n] = '\0';
    return n;
}

/* Calls fn for each of the built-in patterns and the newline-separated extra ones. */
static void each_pattern(const char *const *builtin, const char *extra,
                         void (*fn)(const char *p, size_t len, void *arg), void *arg)
{
    for (const char *const *p = builtin; p && *p; p++)
        fn(*p, strlen(*p), arg);
    for (const char *s = extra; s && *s;) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len)
            fn(s, len, arg);
        s += len + (e ? 1 : 0);
    }
}

struct layout {
    const char *id;
    size_t idlen;
    size_t n, bytes; /* counting: patterns and their expanded bytes */
    char **slot;     /* filling: the next list entry */
    char *text;      /* and where its text goes */
};

static void count_one(const char *p, size_t len, void *arg)
{
    struct layout *l = arg;
    l->n++;
    l->bytes += expand(p, len, l->id, l->idlen, NULL) + 1;
}

static void fill_one(const char *p, size_t len, void *arg)
{
    struct layout *l = arg;
    *l->slot++ = l->text;
    l->text += expand(p, len, l->id, l->idlen, l->text) + 1;
}

/* Both NULL-terminated lists and their text in one allocation (a connected device keeps them
 * for its whole connection: one block instead of one per pattern saves ~50 bytes a device);
 * *pub is the block, *sub points into it. */
static int build(const char *const *bp, const char *xp, const char *const *bs, const char *xs,
                 const char *id, char ***pub, char ***sub)
{
    struct layout np = {.id = id, .idlen = strlen(id)}, ns = np;
    each_pattern(bp, xp, count_one, &np);
    each_pattern(bs, xs, count_one, &ns);
    size_t lists = (np.n + 1 + ns.n + 1) * sizeof(char *);
    char **block = malloc(lists + np.bytes + ns.bytes);
    if (!block)
        return -1;
    np.slot = block;
    np.text = (char *)block + lists;
    each_pattern(bp, xp, fill_one, &np);
    *np.slot++ = NULL;
    ns.slot = np.slot;
    ns.text = np.text;
    each_pattern(bs, xs, fill_one, &ns);
    *ns.slot = NULL;
    *pub = block;
    *sub = block + np.n + 1;
    return 0;
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
    return build(bp, xp, bs, xs, who->id, &who->acl_pub, &who->acl_sub);
}

void acl_principal_clear(struct principal *who)
{
    free(who->acl_pub); /* the block holding both lists (build) */
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
