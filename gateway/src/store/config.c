/*
 * config.c: the configuration file, read with libconfig (Debian's libconfig-dev) so that
 * the syntax, its errors and their line numbers come from a maintained parser. Unknown keys are
 * errors, not warnings: a misspelt key that silently keeps a default is how gateways end up
 * open.
 */
#include "config.h"

#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "psagw/mqtt.h"

static void cloud_defaults(struct cloud_config *k)
{
    memset(k, 0, sizeof(*k));
    k->port = 8883;
    k->mqtt_version = 5;
    k->keepalive = 60;
    k->max_publish_rate = 100;      /* AWS IoT: publish requests per second per connection */
    k->max_bytes_rate = 512 * 1024; /* AWS IoT: inbound bytes per second per connection */
    k->max_payload = 128 * 1024;
    k->max_inflight = 100;
    k->reconnect_min = 1;
    k->reconnect_max = 60;
    k->n_routes = 1;
    snprintf(k->routes[0].match, sizeof(k->routes[0].match), "sensors/+/#");
    snprintf(k->routes[0].topic, sizeof(k->routes[0].topic), "psagw/{gateway}/sensors/{id}/{rest}");
    snprintf(k->command_topic, sizeof(k->command_topic), "psagw/{gateway}/cmd/{id}/#");
    snprintf(k->attest_topic, sizeof(k->attest_topic), "psagw/{gateway}/attest/{id}");
    snprintf(k->spool, sizeof(k->spool), "%s", CONFIG_DEFAULT_SPOOL);
    k->spool_max_bytes = 256ull << 20;
    k->spool_memory_max = 64ull << 20;
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->registry, sizeof(c->registry), "%s", CONFIG_DEFAULT_REGISTRY);
    c->log_level = LOG_INFO;
    c->attestation_default = ATTEST_REQUIRED;
    c->attest.nonce_size = 32;
    c->attest.deadline = 10;
    c->attest.lifecycle_mask = IAT_LC_BIT(IAT_LC_SECURED);
    c->attest.profile_mask = 1u << IAT_PROFILE_LEGACY | 1u << IAT_PROFILE_PSA2;
    c->attest.alg_mask = 1u << IAT_ALG_HMAC256 | 1u << IAT_ALG_HMAC384 | 1u << IAT_ALG_HMAC512;
    c->attest.history_per_device = 20;
    c->max_packet_size = 1u << 20;
    c->receive_maximum = 64;
    c->topic_alias_maximum = 16;
    c->topic_aliases_out = true;
    c->sys_interval = 10;
    c->http_max_connections = 64;
    c->http_max_connections_per_address = 16;
    c->http_requests_per_second = 50;
    c->max_keepalive = 3600;
    c->max_session_expiry = 86400;
    c->max_queued_messages = 1000;
    c->max_queued_bytes = 8u << 20;
    c->max_topic_length = 1024;
    c->max_subscriptions_per_client = 10000;
    c->max_topic_levels = 64;
    c->max_retained_bytes = 64u << 20;
    c->max_inflight_messages = 20;
    c->connect_timeout = 10;
    c->ticket_lifetime = 7200;
    c->max_handshakes = 4096;
    c->max_handshakes_per_address = 256;
    c->tcp_keepalive_idle = 120;
    c->tcp_keepalive_interval = 30;
    c->tcp_keepalive_count = 4;
    c->tcp_user_timeout = 120;
    c->stats_interval = 60;
    cloud_defaults(&c->cloud);
}

void config_free(struct config *c)
{
    free(c->anonymous_acl_pub);
    free(c->anonymous_acl_sub);
    c->anonymous_acl_pub = c->anonymous_acl_sub = NULL;
}

static void listener_defaults(struct listener_config *l, enum listener_type type)
{
    memset(l, 0, sizeof(*l));
    l->type = type;
    l->tls13 = true;
    l->max_record_size = 16384;
    l->own_record_layer = true;
    l->own_handshake = true;
    snprintf(l->ciphers, sizeof(l->ciphers), "%s", CONFIG_DEFAULT_CIPHERS);
    snprintf(l->ciphersuites, sizeof(l->ciphersuites), "%s", CONFIG_DEFAULT_CIPHERSUITES);
}

static int parse_address(struct listener_config *l, const char *addr, char *err, size_t errlen)
{
    snprintf(l->address, sizeof(l->address), "%s", addr);
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr) {
        snprintf(err, errlen, "listener address '%s' is not ADDR:PORT", addr);
        return -1;
    }
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(l->host)) {
        snprintf(err, errlen, "listener address '%s' has no usable host", addr);
        return -1;
    }
    memcpy(l->host, h, hlen);
    l->host[hlen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || end == colon + 1) {
        snprintf(err, errlen, "listener address '%s': port must be 0..65535", addr);
        return -1;
    }
    l->port = (uint16_t)port;
    return 0;
}

int config_add_listener(struct config *c, const char *addr, enum listener_type type, char *err,
                        size_t errlen)
{
    if (c->n_listeners >= CONFIG_MAX_LISTENERS) {
        snprintf(err, errlen, "at most %d listeners", CONFIG_MAX_LISTENERS);
        return -1;
    }
    struct listener_config *l = &c->listeners[c->n_listeners];
    listener_defaults(l, type);
    if (parse_address(l, addr, err, errlen) != 0)
        return -1;
    c->n_listeners++;
    return 0;
}

struct reader {
    const char *file;
    char *err;
    size_t errlen;
};

static int fail(struct reader *r, const config_setting_t *s, const char *what)
{
    snprintf(r->err, r->errlen, "%s:%d: %s: %s", r->file, s ? config_setting_source_line(s) : 0,
             s && config_setting_name(s) ? config_setting_name(s) : "(entry)", what);
    return -1;
}

static bool known(const char *name, const char *const *keys)
{
    for (; *keys; keys++)
        if (strcmp(name, *keys) == 0)
            return true;
    return false;
}

static int check_keys(struct reader *r, const config_setting_t *group, const char *const *keys)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        if (!known(config_setting_name(s), keys))
            return fail(r, s, "unknown key");
    }
    return 0;
}

static int get_uint(struct reader *r, const config_setting_t *g, const char *key, uint32_t min,
                    uint32_t max, uint32_t *out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return fail(r, s, "must be an integer");
    long long v = config_setting_get_int64(s);
    if (v < (long long)min || v > (long long)max) {
        char range[64];
        snprintf(range, sizeof(range), "must be in %u..%u", min, max);
        return fail(r, s, range);
    }
    *out = (uint32_t)v;
    return 0;
}

static int get_bool(struct reader *r, const config_setting_t *g, const char *key, bool *out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return fail(r, s, "must be true or false");
    *out = config_setting_get_bool(s);
    return 0;
}

static int get_str(struct reader *r, const config_setting_t *g, const char *key, char *out,
                   size_t cap)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    const char *v = config_setting_get_string(s);
    if (!v)
        return fail(r, s, "must be a string");
    if (strlen(v) >= cap)
        return fail(r, s, "is too long");
    snprintf(out, cap, "%s", v);
    return 0;
}

/* A key that says who does a job, "psagw" or "openssl": *psagw is left as it is if absent. */
static int get_psagw_or_openssl(struct reader *r, const config_setting_t *g, const char *key,
                                bool *psagw)
{
    char v[16] = "";
    if (!config_setting_get_member(g, key))
        return 0;
    if (get_str(r, g, key, v, sizeof(v)))
        return -1;
    if (strcmp(v, "psagw") != 0 && strcmp(v, "openssl") != 0)
        return fail(r, config_setting_get_member(g, key), "must be \"psagw\" or \"openssl\"");
    *psagw = strcmp(v, "psagw") == 0;
    return 0;
}

/* A list of pattern strings, joined with newlines (the registry's ACL format). */
static int get_patterns(struct reader *r, const config_setting_t *g, const char *key, char **out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    if (!config_setting_is_aggregate(s))
        return fail(r, s, "must be a list of topic patterns");
    size_t total = 1;
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        const char *v = config_setting_get_string_elem(s, i);
        if (!v || !*v || strchr(v, '\n'))
            return fail(r, s, "entries must be non-empty strings");
        total += strlen(v) + 1;
    }
    char *joined = calloc(1, total);
    if (!joined)
        return fail(r, s, "out of memory");
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(joined, "\n");
        strcat(joined, config_setting_get_string_elem(s, i));
    }
    free(*out);
    *out = joined;
    return 0;
}

/* A list of names mapped to bits: e.g. lifecycles = ["secured", "non_psa_rot_debug"]. */
struct name_bit {
    const char *name;
    uint32_t bit;
};

static int get_name_set(struct reader *r, const config_setting_t *g, const char *key,
                        const struct name_bit *names, const char *expect, uint32_t *out)
{
    config_setting_t *s = config_setting_get_member(g, key);
    if (!s)
        return 0;
    if (!config_setting_is_aggregate(s) || config_setting_length(s) == 0)
        return fail(r, s, expect);
    uint32_t mask = 0;
    for (int i = 0; i < config_setting_length(s); i++) {
        const char *v = config_setting_get_string_elem(s, i);
        const struct name_bit *n = names;
        while (v && n->name && strcmp(n->name, v) != 0)
            n++;
        if (!v || !n->name)
            return fail(r, s, expect);
        mask |= n->bit;
    }
    *out = mask;
    return 0;
}

static int read_attestation(struct reader *r, struct config *c, const config_setting_t *g)
{
    static const char *const keys[] = {
        "default", "nonce_size", "deadline", "lifecycles", "profiles", "algorithms",
        "require_known_implementation", "require_known_measurements", "reattest_interval",
        "history_per_device", NULL};
    static const struct name_bit lifecycles[] = {
        {"secured", IAT_LC_BIT(IAT_LC_SECURED)},
        {"non_psa_rot_debug", IAT_LC_BIT(IAT_LC_NON_PSA_ROT_DEBUG)},
        {NULL, 0}};
    static const struct name_bit profiles[] = {{"legacy", 1u << IAT_PROFILE_LEGACY},
                                               {"psa2", 1u << IAT_PROFILE_PSA2},
                                               {NULL, 0}};
    static const struct name_bit algs[] = {{"hmac256", 1u << IAT_ALG_HMAC256},
                                           {"hmac384", 1u << IAT_ALG_HMAC384},
                                           {"hmac512", 1u << IAT_ALG_HMAC512},
                                           {NULL, 0}};
    struct attest_config *a = &c->attest;
    char policy[16] = "";
    if (!config_setting_is_group(g))
        return fail(r, g, "must be a group: attestation = { ... };");
    if (check_keys(r, g, keys) || get_str(r, g, "default", policy, sizeof(policy)) ||
        get_uint(r, g, "nonce_size", 32, 64, &a->nonce_size) ||
        get_uint(r, g, "deadline", 1, 300, &a->deadline) ||
        get_name_set(r, g, "lifecycles", lifecycles,
                     "must list \"secured\" and/or \"non_psa_rot_debug\"", &a->lifecycle_mask) ||
        get_name_set(r, g, "profiles", profiles, "must list \"legacy\" and/or \"psa2\"",
                     &a->profile_mask) ||
        get_name_set(r, g, "algorithms", algs,
                     "must list some of \"hmac256\", \"hmac384\", \"hmac512\"", &a->alg_mask) ||
        get_bool(r, g, "require_known_implementation", &a->require_known_implementation) ||
        get_bool(r, g, "require_known_measurements", &a->require_known_measurements) ||
        get_uint(r, g, "reattest_interval", 0, 604800, &a->reattest_interval) ||
        get_uint(r, g, "history_per_device", 1, 10000, &a->history_per_device))
        return -1;
    if (a->nonce_size != 32 && a->nonce_size != 48 && a->nonce_size != 64)
        return fail(r, config_setting_get_member(g, "nonce_size"), "must be 32, 48 or 64");
    if (*policy) {
        int p = device_policy_parse(policy);
        if (p <= ATTEST_DEFAULT)
            return fail(r, config_setting_get_member(g, "default"),
                        "must be required, optional or off");
        c->attestation_default = (enum attest_policy)p;
    }
    return 0;
}

static int read_listener(struct reader *r, struct config *c, const config_setting_t *s)
{
    static const char *const keys[] = {
        "address",         "type",    "tls13",        "allow_null_cipher", "allow_non_loopback",
        "max_record_size", "ciphers", "ciphersuites", "record_layer",      "handshake",
        NULL};
    if (!config_setting_is_group(s))
        return fail(r, s, "each listener is a group { address = ...; }");
    if (check_keys(r, s, keys))
        return -1;
    if (c->n_listeners >= CONFIG_MAX_LISTENERS)
        return fail(r, s, "too many listeners");
    char type[32] = "tls-psk", addr[128] = "";
    if (get_str(r, s, "type", type, sizeof(type)) || get_str(r, s, "address", addr, sizeof(addr)))
        return -1;
    enum listener_type t;
    if (strcmp(type, "tls-psk") == 0)
        t = LISTENER_TLS_PSK;
    else if (strcmp(type, "plain") == 0)
        t = LISTENER_PLAIN;
    else
        return fail(r, config_setting_get_member(s, "type"), "must be \"tls-psk\" or \"plain\"");
    if (!*addr)
        return fail(r, s, "listener needs an address = \"HOST:PORT\"");
    struct listener_config *l = &c->listeners[c->n_listeners];
    listener_defaults(l, t);
    char why[256];
    if (parse_address(l, addr, why, sizeof(why)))
        return fail(r, config_setting_get_member(s, "address"), why);
    if (get_bool(r, s, "tls13", &l->tls13) ||
        get_bool(r, s, "allow_null_cipher", &l->allow_null_cipher) ||
        get_bool(r, s, "allow_non_loopback", &l->allow_non_loopback) ||
        get_uint(r, s, "max_record_size", 512, 16384, &l->max_record_size) ||
        get_str(r, s, "ciphers", l->ciphers, sizeof(l->ciphers)) ||
        get_str(r, s, "ciphersuites", l->ciphersuites, sizeof(l->ciphersuites)))
        return -1;
    if (get_psagw_or_openssl(r, s, "record_layer", &l->own_record_layer) ||
        get_psagw_or_openssl(r, s, "handshake", &l->own_handshake))
        return -1;
    /* our own TLS 1.2 PSK handshake (net/tls12_psk.h) hands its keys to our record layer */
    if (l->own_handshake && !l->own_record_layer) {
        if (config_setting_get_member(s, "handshake"))
            return fail(r, config_setting_get_member(s, "handshake"),
                        "\"psagw\" needs record_layer = \"psagw\"");
        l->own_handshake = false;
    }
    c->n_listeners++;
    return 0;
}

static int read_route(struct reader *r, struct cloud_config *k, const config_setting_t *s)
{
    static const char *const keys[] = {"match", "topic", "payload", NULL};
    if (!config_setting_is_group(s))
        return fail(r, s, "each route is a group { match = ...; topic = ...; }");
    if (check_keys(r, s, keys))
        return -1;
    if (k->n_routes >= CLOUD_MAX_ROUTES)
        return fail(r, s, "too many routes");
    struct cloud_route *rt = &k->routes[k->n_routes];
    memset(rt, 0, sizeof(*rt));
    char payload[16] = "record";
    if (get_str(r, s, "match", rt->match, sizeof(rt->match)) ||
        get_str(r, s, "topic", rt->topic, sizeof(rt->topic)) ||
        get_str(r, s, "payload", payload, sizeof(payload)))
        return -1;
    if (!*rt->match || !*rt->topic)
        return fail(r, s, "a route needs match and topic");
    if (!mqtt_topic_filter_valid((const uint8_t *)rt->match, strlen(rt->match)))
        return fail(r, config_setting_get_member(s, "match"), "is not a valid MQTT topic filter");
    if (strcmp(payload, "record") == 0)
        rt->payload = CLOUD_PAYLOAD_RECORD;
    else if (strcmp(payload, "json") == 0)
        rt->payload = CLOUD_PAYLOAD_JSON;
    else
        return fail(r, config_setting_get_member(s, "payload"),
                    "must be \"record\" (as received) or \"json\" (decoded with the group key)");
    k->n_routes++;
    return 0;
}

static int read_cloud(struct reader *r, struct config *c, const config_setting_t *g)
{
    static const char *const keys[] = {
        "host", "port", "ca_file", "cert_file", "key_file", "sni", "alpn", "client_id",
        "gateway", "protocol", "keepalive", "max_publish_rate", "max_bytes_rate", "max_payload",
        "max_inflight", "reconnect_min", "reconnect_max", "routes", "command_topic",
        "attest_topic", "group_key_file", "spool", NULL};
    static const char *const spool_keys[] = {"path", "max_bytes", "memory_max_bytes",
                                             "when_full", NULL};
    struct cloud_config *k = &c->cloud;
    if (!config_setting_is_group(g))
        return fail(r, g, "must be a group: cloud = { host = ...; ... };");
    if (check_keys(r, g, keys))
        return -1;
    k->enabled = true;
    uint32_t port = k->port, ka = k->keepalive;
    char protocol[16] = "";
    if (get_str(r, g, "host", k->host, sizeof(k->host)) ||
        get_uint(r, g, "port", 1, 65535, &port) ||
        get_str(r, g, "ca_file", k->ca_file, sizeof(k->ca_file)) ||
        get_str(r, g, "cert_file", k->cert_file, sizeof(k->cert_file)) ||
        get_str(r, g, "key_file", k->key_file, sizeof(k->key_file)) ||
        get_str(r, g, "sni", k->sni, sizeof(k->sni)) ||
        get_str(r, g, "alpn", k->alpn, sizeof(k->alpn)) ||
        get_str(r, g, "client_id", k->client_id, sizeof(k->client_id)) ||
        get_str(r, g, "gateway", k->gateway, sizeof(k->gateway)) ||
        get_str(r, g, "protocol", protocol, sizeof(protocol)) ||
        get_uint(r, g, "keepalive", 5, 1200, &ka) ||
        get_uint(r, g, "max_publish_rate", 0, 10000000, &k->max_publish_rate) ||
        get_uint(r, g, "max_bytes_rate", 0, UINT32_MAX, &k->max_bytes_rate) ||
        get_uint(r, g, "max_payload", 1, 128 * 1024, &k->max_payload) ||
        get_uint(r, g, "max_inflight", 1, 65535, &k->max_inflight) ||
        get_uint(r, g, "reconnect_min", 1, 3600, &k->reconnect_min) ||
        get_uint(r, g, "reconnect_max", 1, 86400, &k->reconnect_max) ||
        get_str(r, g, "command_topic", k->command_topic, sizeof(k->command_topic)) ||
        get_str(r, g, "attest_topic", k->attest_topic, sizeof(k->attest_topic)) ||
        get_str(r, g, "group_key_file", k->group_key_file, sizeof(k->group_key_file)))
        return -1;
    k->port = (uint16_t)port;
    k->keepalive = (uint16_t)ka;
    if (*protocol) {
        if (strcmp(protocol, "mqtt5") == 0)
            k->mqtt_version = 5;
        else if (strcmp(protocol, "mqtt311") == 0)
            k->mqtt_version = 4;
        else
            return fail(r, config_setting_get_member(g, "protocol"),
                        "must be \"mqtt5\" or \"mqtt311\"");
    }
    if (!*k->host)
        return fail(r, g, "the cloud needs host = \"ENDPOINT\" (AWS IoT: the account's ATS endpoint)");
    if (!*k->client_id)
        return fail(r, g, "the cloud needs client_id = \"THING_NAME\"");
    if (k->reconnect_max < k->reconnect_min)
        return fail(r, config_setting_get_member(g, "reconnect_max"), "must be >= reconnect_min");
    config_setting_t *routes = config_setting_get_member(g, "routes");
    if (routes) {
        if (!config_setting_is_list(routes))
            return fail(r, routes, "must be a list: routes = ( { ... }, { ... } );");
        k->n_routes = 0;
        for (int i = 0; i < config_setting_length(routes); i++)
            if (read_route(r, k, config_setting_get_elem(routes, (unsigned)i)))
                return -1;
    }
    config_setting_t *sp = config_setting_get_member(g, "spool");
    if (sp) {
        if (!config_setting_is_group(sp))
            return fail(r, sp, "must be a group: spool = { path = ...; };");
        if (check_keys(r, sp, spool_keys))
            return -1;
        char when_full[16] = "";
        if (get_str(r, sp, "path", k->spool, sizeof(k->spool)) ||
            get_str(r, sp, "when_full", when_full, sizeof(when_full)))
            return -1;
        config_setting_t *mb = config_setting_get_member(sp, "max_bytes");
        if (mb) {
            if (config_setting_type(mb) != CONFIG_TYPE_INT &&
                config_setting_type(mb) != CONFIG_TYPE_INT64)
                return fail(r, mb, "must be an integer (bytes; 1L << 30 style needs an L suffix)");
            long long v = config_setting_get_int64(mb);
            if (v < 1024 * 1024)
                return fail(r, mb, "must be at least 1048576 (1 MiB)");
            k->spool_max_bytes = (uint64_t)v;
        }
        config_setting_t *mm = config_setting_get_member(sp, "memory_max_bytes");
        if (mm) {
            if (config_setting_type(mm) != CONFIG_TYPE_INT &&
                config_setting_type(mm) != CONFIG_TYPE_INT64)
                return fail(r, mm, "must be an integer (bytes)");
            long long v = config_setting_get_int64(mm);
            if (v < 65536)
                return fail(r, mm, "must be at least 65536");
            k->spool_memory_max = (uint64_t)v;
        }
        if (*when_full) {
            if (strcmp(when_full, "block") == 0)
                k->spool_when_full = SPOOL_FULL_BLOCK;
            else if (strcmp(when_full, "drop_oldest") == 0)
                k->spool_when_full = SPOOL_FULL_DROP_OLDEST;
            else
                return fail(r, config_setting_get_member(sp, "when_full"),
                            "must be \"block\" (back-pressure) or \"drop_oldest\"");
        }
    }
    for (size_t i = 0; i < k->n_routes; i++)
        if (k->routes[i].payload == CLOUD_PAYLOAD_JSON && !*k->group_key_file)
            return fail(r, g, "a route with payload = \"json\" needs group_key_file");
    return 0;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
    static const char *const root_keys[] = {
        "registry", "log_level", "attestation_default", "allow_anonymous", "anonymous_acl",
        "listeners", "mqtt", "tls", "tcp", "stats_interval", "workers", "attestation", "cloud",
        "http", NULL};
    static const char *const http_keys[] = {"listen", "token_file", "max_connections",
                                            "max_connections_per_address",
                                            "requests_per_second", NULL};
    static const char *const mqtt_keys[] = {
        "max_packet_size", "receive_maximum", "topic_alias_maximum", "max_keepalive",
        "max_session_expiry", "max_queued_messages", "max_queued_bytes", "max_inflight_messages",
        "max_topic_length", "max_topic_levels", "max_retained_bytes",
        "max_subscriptions_per_client", "topic_aliases_out", "sys_interval",
        "connect_timeout",
        "max_connections", NULL};
    static const char *const tls_keys[] = {"ticket_lifetime", "max_handshakes",
                                           "max_handshakes_per_address", NULL};
    static const char *const tcp_keys[] = {"keepalive_idle", "keepalive_interval",
                                           "keepalive_count", "user_timeout", NULL};
    static const char *const acl_keys[] = {"publish", "subscribe", NULL};

    config_t cf;
    config_init(&cf);
    struct reader r = {path, err, errlen};
    int rc = -1;
    if (!config_read_file(&cf, path)) {
        if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
            snprintf(err, errlen, "%s: cannot read the file", path);
        else
            snprintf(err, errlen, "%s:%d: %s", path, config_error_line(&cf),
                     config_error_text(&cf));
        goto out;
    }
    snprintf(c->path, sizeof(c->path), "%s", path);
    config_setting_t *root = config_root_setting(&cf);
    if (check_keys(&r, root, root_keys))
        goto out;
    char level[16] = "", policy[16] = "";
    if (get_str(&r, root, "registry", c->registry, sizeof(c->registry)) ||
        get_str(&r, root, "log_level", level, sizeof(level)) ||
        get_str(&r, root, "attestation_default", policy, sizeof(policy)) ||
        get_bool(&r, root, "allow_anonymous", &c->allow_anonymous) ||
        get_uint(&r, root, "stats_interval", 0, 86400, &c->stats_interval) ||
        get_uint(&r, root, "workers", 0, 256, &c->workers))
        goto out;
    if (*level) {
        int lv = log_level_parse(level);
        if (lv < 0) {
            fail(&r, config_setting_get_member(root, "log_level"), "must be debug, info, warn or error");
            goto out;
        }
        c->log_level = lv;
    }
    if (*policy) {
        int p = device_policy_parse(policy);
        if (p <= ATTEST_DEFAULT) {
            fail(&r, config_setting_get_member(root, "attestation_default"), "must be required, optional or off");
            goto out;
        }
        c->attestation_default = (enum attest_policy)p;
    }
    config_setting_t *att = config_setting_get_member(root, "attestation");
    if (att && *policy && config_setting_get_member(att, "default")) {
        fail(&r, att, "give attestation_default or attestation.default, not both");
        goto out;
    }
    if (att && read_attestation(&r, c, att))
        goto out;
    config_setting_t *cloud = config_setting_get_member(root, "cloud");
    if (cloud && read_cloud(&r, c, cloud))
        goto out;
    config_setting_t *acl = config_setting_get_member(root, "anonymous_acl");
    if (acl && (check_keys(&r, acl, acl_keys) ||
                get_patterns(&r, acl, "publish", &c->anonymous_acl_pub) ||
                get_patterns(&r, acl, "subscribe", &c->anonymous_acl_sub)))
        goto out;
    config_setting_t *ls = config_setting_get_member(root, "listeners");
    if (ls) {
        if (!config_setting_is_list(ls)) {
            fail(&r, ls, "must be a list: listeners = ( { ... }, { ... } );");
            goto out;
        }
        if (config_setting_length(ls) == 0) {
            /* an empty list is a mistake, not a wish for the default public listener */
            fail(&r, ls, "must not be empty: give at least one listener, or leave the key out "
                         "for the default 0.0.0.0:8883");
            goto out;
        }
        for (int i = 0; i < config_setting_length(ls); i++)
            if (read_listener(&r, c, config_setting_get_elem(ls, (unsigned)i)))
                goto out;
    }
    config_setting_t *m = config_setting_get_member(root, "mqtt");
    uint32_t ra = c->receive_maximum, tam = c->topic_alias_maximum, mk = c->max_keepalive;
    uint32_t mi = c->max_inflight_messages;
    uint32_t qb = (uint32_t)c->max_queued_bytes, rb = (uint32_t)c->max_retained_bytes;
    if (m && (check_keys(&r, m, mqtt_keys) ||
              get_uint(&r, m, "max_packet_size", 64, 268435460u, &c->max_packet_size) ||
              get_uint(&r, m, "receive_maximum", 1, 65535, &ra) ||
              get_uint(&r, m, "topic_alias_maximum", 0, 65535, &tam) ||
              get_bool(&r, m, "topic_aliases_out", &c->topic_aliases_out) ||
              get_uint(&r, m, "sys_interval", 0, 86400, &c->sys_interval) ||
              get_uint(&r, m, "max_keepalive", 1, 65535, &mk) ||
              get_uint(&r, m, "max_session_expiry", 0, UINT32_MAX, &c->max_session_expiry) ||
              get_uint(&r, m, "max_queued_messages", 1, 10000000, &c->max_queued_messages) ||
              get_uint(&r, m, "max_queued_bytes", 1024, UINT32_MAX, &qb) ||
              get_uint(&r, m, "max_topic_length", 16, 65535, &c->max_topic_length) ||
              get_uint(&r, m, "max_subscriptions_per_client", 1, 10000000,
                       &c->max_subscriptions_per_client) ||
              get_uint(&r, m, "max_topic_levels", 2, 65535, &c->max_topic_levels) ||
              get_uint(&r, m, "max_retained_bytes", 0, UINT32_MAX, &rb) ||
              get_uint(&r, m, "max_inflight_messages", 1, 65535, &mi) ||
              get_uint(&r, m, "connect_timeout", 1, 3600, &c->connect_timeout) ||
              get_uint(&r, m, "max_connections", 0, 10000000, &c->max_connections)))
        goto out;
    c->receive_maximum = (uint16_t)ra;
    c->topic_alias_maximum = (uint16_t)tam;
    c->max_keepalive = (uint16_t)mk;
    c->max_inflight_messages = (uint16_t)mi;
    c->max_queued_bytes = qb;
    c->max_retained_bytes = rb;
    config_setting_t *tcp = config_setting_get_member(root, "tcp");
    if (tcp && (check_keys(&r, tcp, tcp_keys) ||
                get_uint(&r, tcp, "keepalive_idle", 0, 86400, &c->tcp_keepalive_idle) ||
                get_uint(&r, tcp, "keepalive_interval", 0, 3600, &c->tcp_keepalive_interval) ||
                get_uint(&r, tcp, "keepalive_count", 0, 127, &c->tcp_keepalive_count) ||
                get_uint(&r, tcp, "user_timeout", 0, 86400, &c->tcp_user_timeout)))
        goto out;
    config_setting_t *t = config_setting_get_member(root, "tls");
    if (t && (check_keys(&r, t, tls_keys) ||
              get_uint(&r, t, "ticket_lifetime", 0, 604800, &c->ticket_lifetime) ||
              get_uint(&r, t, "max_handshakes", 1, 10000000, &c->max_handshakes) ||
              get_uint(&r, t, "max_handshakes_per_address", 1, 65535,
                       &c->max_handshakes_per_address)))
        goto out;
    config_setting_t *h = config_setting_get_member(root, "http");
    if (h && (check_keys(&r, h, http_keys) ||
              get_str(&r, h, "listen", c->http_listen, sizeof(c->http_listen)) ||
              get_str(&r, h, "token_file", c->http_token_file, sizeof(c->http_token_file)) ||
              get_uint(&r, h, "max_connections", 1, 10000, &c->http_max_connections) ||
              get_uint(&r, h, "max_connections_per_address", 1, 10000,
                       &c->http_max_connections_per_address) ||
              get_uint(&r, h, "requests_per_second", 1, 100000, &c->http_requests_per_second)))
        goto out;
    rc = 0;
out:
    config_destroy(&cf);
    return rc;
}

int config_finish(struct config *c, char *err, size_t errlen)
{
    if (c->n_listeners == 0 && config_add_listener(c, "0.0.0.0:8883", LISTENER_TLS_PSK, err,
                                                   errlen) != 0)
        return -1;
    for (size_t i = 0; i < c->n_listeners; i++) {
        struct listener_config *l = &c->listeners[i];
        if (l->type == LISTENER_PLAIN && !l->allow_non_loopback &&
            strcmp(l->host, "127.0.0.1") != 0 && strcmp(l->host, "::1") != 0 &&
            strcmp(l->host, "localhost") != 0) {
            snprintf(err, errlen,
                     "plain listener %s is not on loopback; plain MQTT has no authentication or "
                     "encryption (set allow_non_loopback = true in its config entry to force it)",
                     l->address);
            return -1;
        }
    }
    if (c->http_listen[0] && !c->http_token_file[0]) {
        snprintf(err, errlen, "http: token_file is required with listen (a file, mode 0600, "
                              "holding the bearer token the endpoint asks for)");
        return -1;
    }
    return 0;
}
