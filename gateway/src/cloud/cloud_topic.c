/*
 * cloud_topic.c: topic templates for the uplink (see cloud_topic.h) and AWS IoT's limits.
 */
#include "cloud_topic.h"

#include <stdio.h>
#include <string.h>

#include "registry.h"

enum var { VAR_NONE, VAR_GATEWAY, VAR_ID, VAR_REST, VAR_BAD };

/* At t[0] == '{': which variable, and its length in *n. */
static enum var var_at(const char *t, size_t *n)
{
    static const struct {
        const char *s;
        enum var v;
    } vars[] = {{"{gateway}", VAR_GATEWAY}, {"{id}", VAR_ID}, {"{rest}", VAR_REST}};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        size_t l = strlen(vars[i].s);
        if (strncmp(t, vars[i].s, l) == 0) {
            *n = l;
            return vars[i].v;
        }
    }
    return VAR_BAD;
}

static bool gateway_name_ok(const char *g)
{
    if (!*g || g[0] == '$')
        return false;
    for (const char *p = g; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '/' || *p == '+' ||
            *p == '#' || *p == '{' || *p == '}')
            return false;
    return true;
}

int cloud_template_check(const char *tmpl, enum cloud_template_kind kind, const char *gateway,
                         char *err, size_t errlen)
{
    const char *what = kind == CLOUD_TEMPLATE_UP       ? "route topic"
                       : kind == CLOUD_TEMPLATE_ATTEST ? "attest_topic"
                                                       : "command_topic";
    if (!gateway_name_ok(gateway)) {
        snprintf(err, errlen, "gateway name '%s' cannot be a topic level (no '/', '+', '#', "
                 "spaces or braces, not starting with '$')", gateway);
        return -1;
    }
    size_t len = strlen(tmpl);
    if (len == 0) {
        snprintf(err, errlen, "%s is empty", what);
        return -1;
    }
    if (tmpl[0] == '$') {
        snprintf(err, errlen, "%s '%s' starts with '$' (reserved topics; AWS IoT refuses them)",
                 what, tmpl);
        return -1;
    }
    size_t bytes = 0, slashes = 0, n_id = 0;
    bool has_rest = false;
    for (size_t i = 0; i < len;) {
        char ch = tmpl[i];
        if (ch == '{') {
            size_t n = 0;
            enum var v = var_at(tmpl + i, &n);
            bool level_start = i == 0 || tmpl[i - 1] == '/';
            bool level_end = i + n == len || tmpl[i + n] == '/';
            if (v == VAR_BAD) {
                snprintf(err, errlen, "%s '%s': unknown variable at '%.16s' (known: {gateway}, "
                         "{id}%s)", what, tmpl, tmpl + i, kind == CLOUD_TEMPLATE_UP ? ", {rest}" : "");
                return -1;
            }
            if (v == VAR_REST && (kind != CLOUD_TEMPLATE_UP || i + n != len || i == 0 ||
                                  tmpl[i - 1] != '/')) {
                snprintf(err, errlen, "%s '%s': {rest} may only end an upward route topic, "
                         "after a '/'", what, tmpl);
                return -1;
            }
            if (v == VAR_ID && (!level_start || !level_end)) {
                snprintf(err, errlen, "%s '%s': {id} must be a whole topic level", what, tmpl);
                return -1;
            }
            if (v == VAR_ID && i == 0) {
                snprintf(err, errlen, "%s '%s': must start with literal text or {gateway}", what,
                         tmpl);
                return -1;
            }
            if (v == VAR_GATEWAY)
                bytes += strlen(gateway);
            else if (v == VAR_ID) {
                bytes += DEVICE_ID_MAX;
                n_id++;
            } else if (v == VAR_REST)
                has_rest = true;
            i += n;
            continue;
        }
        if (ch == '}') {
            snprintf(err, errlen, "%s '%s': '}' without '{'", what, tmpl);
            return -1;
        }
        if (ch == '+' || (ch == '#' && !(kind == CLOUD_TEMPLATE_COMMAND && i == len - 1))) {
            snprintf(err, errlen, "%s '%s': wildcards are not allowed here", what, tmpl);
            return -1;
        }
        if (ch == '/')
            slashes++;
        bytes++;
        i++;
    }
    if (kind != CLOUD_TEMPLATE_UP && n_id != 1) {
        snprintf(err, errlen, "%s '%s' needs {id} exactly once", what, tmpl);
        return -1;
    }
    if (kind == CLOUD_TEMPLATE_COMMAND && (len < 2 || strcmp(tmpl + len - 2, "/#") != 0)) {
        snprintf(err, errlen, "%s '%s' must end in \"/#\"", what, tmpl);
        return -1;
    }
    if (slashes > AWS_TOPIC_MAX_SLASHES) {
        snprintf(err, errlen, "%s '%s' has %zu slashes; AWS IoT allows at most %d", what, tmpl,
                 slashes, AWS_TOPIC_MAX_SLASHES);
        return -1;
    }
    if (bytes + (has_rest ? 1 : 0) > AWS_TOPIC_MAX_BYTES) {
        snprintf(err, errlen, "%s '%s' can reach %zu bytes with a %d-byte device id; AWS IoT "
                 "allows %d", what, tmpl, bytes + (has_rest ? 1 : 0), DEVICE_ID_MAX,
                 AWS_TOPIC_MAX_BYTES);
        return -1;
    }
    return 0;
}

int cloud_topic_expand(const char *tmpl, const char *gateway, const char *id, const char *rest,
                       size_t rest_len, char *out, size_t cap, const char **why)
{
    size_t o = 0, len = strlen(tmpl);
    *why = "too long for the buffer";
    for (size_t i = 0; i < len;) {
        const char *add = tmpl + i;
        size_t add_len = 1, step = 1;
        if (tmpl[i] == '{') {
            enum var v = var_at(tmpl + i, &step);
            if (v == VAR_GATEWAY) {
                add = gateway;
                add_len = strlen(gateway);
            } else if (v == VAR_ID) {
                add = id;
                add_len = strlen(id);
            } else if (v == VAR_REST) {
                add = rest ? rest : "";
                add_len = rest ? rest_len : 0;
                if (add_len == 0 && o > 0 && out[o - 1] == '/')
                    o--; /* "a/b/{rest}" with nothing to add is "a/b" */
            } else {
                *why = "bad template";
                return -1;
            }
        }
        if (o + add_len >= cap)
            return -1;
        memcpy(out + o, add, add_len);
        o += add_len;
        i += step;
    }
    out[o] = '\0';
    size_t slashes = 0;
    for (size_t i = 0; i < o; i++)
        slashes += out[i] == '/';
    if (o > AWS_TOPIC_MAX_BYTES) {
        *why = "cloud topic over 256 bytes";
        return -1;
    }
    if (slashes > AWS_TOPIC_MAX_SLASHES) {
        *why = "cloud topic over 7 slashes";
        return -1;
    }
    return (int)o;
}

bool cloud_route_match(const char *filter, const char *topic, size_t len, const char **rest,
                       size_t *rest_len)
{
    size_t fi = 0, ti = 0, flen = strlen(filter);
    *rest = NULL;
    *rest_len = 0;
    if (len > 0 && topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false; /* section 4.7.2 */
    for (;;) {
        if (fi < flen && filter[fi] == '#') {
            *rest = topic + ti;
            *rest_len = len - ti;
            return true;
        }
        /* the end of a filter level and of a topic level */
        size_t fe = fi, te = ti;
        while (fe < flen && filter[fe] != '/')
            fe++;
        while (te < len && topic[te] != '/')
            te++;
        bool plus = fe - fi == 1 && filter[fi] == '+';
        if (!plus && (fe - fi != te - ti || memcmp(filter + fi, topic + ti, fe - fi) != 0))
            return false;
        bool f_end = fe == flen, t_end = te == len;
        if (f_end && t_end)
            return true;
        if (t_end) {
            /* "a/#" also matches "a" (section 4.7.1.2) */
            if (fe + 2 == flen && filter[fe + 1] == '#') {
                *rest = topic + te;
                return true;
            }
            return false;
        }
        if (f_end)
            return false;
        fi = fe + 1;
        ti = te + 1;
    }
}

int cloud_command_filter(const char *tmpl, const char *gateway, char *out, size_t cap)
{
    const char *why;
    char buf[AWS_TOPIC_MAX_BYTES * 2];
    /* {id} -> '+': expand with a placeholder id, which the template has once as a level */
    if (cloud_topic_expand(tmpl, gateway, "+", NULL, 0, buf, sizeof(buf), &why) < 0)
        return -1;
    if (strlen(buf) >= cap)
        return -1;
    snprintf(out, cap, "%s", buf);
    return 0;
}

bool cloud_command_parse(const char *filter, const char *topic, size_t len, char *id,
                         size_t id_cap, const char **rest, size_t *rest_len)
{
    size_t fi = 0, ti = 0, flen = strlen(filter);
    bool have_id = false;
    *rest = NULL;
    *rest_len = 0;
    for (;;) {
        if (fi < flen && filter[fi] == '#') {
            *rest = topic + ti;
            *rest_len = ti <= len ? len - ti : 0;
            return have_id;
        }
        size_t fe = fi, te = ti;
        while (fe < flen && filter[fe] != '/')
            fe++;
        while (te < len && topic[te] != '/')
            te++;
        if (fe - fi == 1 && filter[fi] == '+') {
            size_t n = te - ti;
            if (!device_id_valid(topic + ti, n) || n >= id_cap)
                return false;
            memcpy(id, topic + ti, n);
            id[n] = '\0';
            have_id = true;
        } else if (fe - fi != te - ti || memcmp(filter + fi, topic + ti, fe - fi) != 0) {
            return false;
        }
        if (fe == flen)
            return te == len && have_id;
        if (te == len) {
            /* ".../<id>" with nothing under it: the "/#" matches the parent level */
            if (fe + 2 == flen && filter[fe + 1] == '#') {
                *rest = topic + te;
                return have_id;
            }
            return false;
        }
        fi = fe + 1;
        ti = te + 1;
    }
}
