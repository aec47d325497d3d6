/* iat_json.c: see iat_json.h. */
#include "iat_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"

static json_t *hex_json(struct iat_bytes b)
{
    char *h = malloc(2 * b.len + 1);
    if (!h)
        return json_null();
    hex_encode(b.p, b.len, h, 2 * b.len + 1);
    json_t *j = json_string(h);
    free(h);
    return j;
}

static json_t *text_json(struct iat_bytes b)
{
    /* a text claim that is not UTF-8 is shown as hex rather than dropped */
    json_t *j = json_stringn((const char *)b.p, b.len);
    return j ? j : hex_json(b);
}

json_t *iat_claims_to_json(const struct iat_token *tok)
{
    const struct iat_claims *c = &tok->claims;
    json_t *o = json_object();
#define HAS(claim) (c->present & (1u << (claim)))
    json_object_set_new(o, "profile", json_string(iat_profile_name(c->profile)));
    if (HAS(IAT_CLAIM_NONCE))
        json_object_set_new(o, "nonce", hex_json(c->nonce));
    if (HAS(IAT_CLAIM_BOOT_SEED)) {
        json_object_set_new(o, "boot_seed", hex_json(c->boot_seed));
        if (c->profile == IAT_PROFILE_PSA2 && c->boot_seed_key == 2397)
            json_object_set_new(o, "boot_seed_key", json_integer(2397));
    }
    if (HAS(IAT_CLAIM_INSTANCE_ID))
        json_object_set_new(o, "instance_id", hex_json(c->instance_id));
    if (HAS(IAT_CLAIM_IMPLEMENTATION_ID))
        json_object_set_new(o, "implementation_id", hex_json(c->implementation_id));
    if (HAS(IAT_CLAIM_CLIENT_ID))
        json_object_set_new(o, "client_id", json_integer(c->client_id));
    if (HAS(IAT_CLAIM_LIFECYCLE)) {
        char lc[8];
        snprintf(lc, sizeof(lc), "0x%04x", (unsigned)c->lifecycle);
        json_object_set_new(o, "lifecycle", json_string(lc));
        json_object_set_new(o, "lifecycle_state", json_string(iat_lifecycle_name(c->lifecycle)));
    }
    if (HAS(IAT_CLAIM_SW_COMPONENTS)) {
        json_t *arr = json_array();
        for (size_t i = 0; i < c->sw_count; i++) {
            const struct iat_sw_component *sw = &c->sw[i];
            json_t *m = json_object();
            if (sw->present & (1u << IAT_SW_TYPE))
                json_object_set_new(m, "measurement_type", text_json(sw->type));
            if (sw->present & (1u << IAT_SW_VALUE))
                json_object_set_new(m, "measurement_value", hex_json(sw->value));
            if (sw->present & (1u << IAT_SW_VERSION))
                json_object_set_new(m, "version", text_json(sw->version));
            if (sw->present & (1u << IAT_SW_SIGNER_ID))
                json_object_set_new(m, "signer_id", hex_json(sw->signer_id));
            if (sw->present & (1u << IAT_SW_DESCRIPTION))
                json_object_set_new(m, "measurement_description", text_json(sw->description));
            json_array_append_new(arr, m);
        }
        json_object_set_new(o, "sw_components", arr);
    }
    if (HAS(IAT_CLAIM_NO_SW_MEASUREMENTS))
        json_object_set_new(o, "no_sw_measurements", json_true());
    if (HAS(IAT_CLAIM_PROFILE))
        json_object_set_new(o, "profile_name", text_json(c->profile_name));
    if (HAS(IAT_CLAIM_VERIFICATION_SERVICE))
        json_object_set_new(o, "verification_service", text_json(c->verification_service));
    if (HAS(IAT_CLAIM_CERT_REF))
        json_object_set_new(o, "certification_reference", text_json(c->cert_ref));
#undef HAS
    return o;
}

char *iat_claims_json(const struct iat_token *tok, bool pretty)
{
    json_t *o = iat_claims_to_json(tok);
    char *s = json_dumps(o, pretty ? JSON_INDENT(2) : JSON_COMPACT);
    json_decref(o);
    return s;
}

/* ---- JSON -> claims --------------------------------------------------------------------- */

static uint8_t *store_alloc(struct iat_claims_store *st, size_t n)
{
    /* one block, fixed once filled: pointers into it stay valid */
    if (!st->bytes) {
        st->cap = 8192;
        st->bytes = malloc(st->cap);
        if (!st->bytes)
            return NULL;
    }
    if (n > st->cap - st->used)
        return NULL;
    uint8_t *p = st->bytes + st->used;
    st->used += n;
    return p;
}

void iat_claims_store_free(struct iat_claims_store *st)
{
    free(st->bytes);
    st->bytes = NULL;
    st->used = st->cap = 0;
}

static int get_hex(const json_t *o, const char *key, struct iat_bytes *out,
                   struct iat_claims_store *st, char *err, size_t errlen, bool *found)
{
    const json_t *v = json_object_get(o, key);
    *found = v != NULL;
    if (!v)
        return 0;
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) / 2 : 0;
    uint8_t *p = s && n ? store_alloc(st, n) : NULL;
    if (!p || hex_parse(s, p, n) != (int)n) {
        snprintf(err, errlen, "\"%s\" must be a non-empty hex string", key);
        return -1;
    }
    *out = (struct iat_bytes){p, n};
    return 0;
}

static int get_text(const json_t *o, const char *key, struct iat_bytes *out,
                    struct iat_claims_store *st, char *err, size_t errlen, bool *found)
{
    const json_t *v = json_object_get(o, key);
    *found = v != NULL;
    if (!v)
        return 0;
    const char *s = json_string_value(v);
    if (!s) {
        snprintf(err, errlen, "\"%s\" must be a string", key);
        return -1;
    }
    size_t n = json_string_length(v);
    uint8_t *p = store_alloc(st, n ? n : 1);
    if (!p) {
        snprintf(err, errlen, "claims too large");
        return -1;
    }
    memcpy(p, s, n);
    *out = (struct iat_bytes){p, n};
    return 0;
}

static int lifecycle_from_json(const json_t *v, uint32_t *out)
{
    static const struct {
        const char *name;
        uint32_t value;
    } names[] = {{"unknown", IAT_LC_UNKNOWN},
                 {"assembly_and_test", IAT_LC_ASSEMBLY_AND_TEST},
                 {"psa_rot_provisioning", IAT_LC_PSA_ROT_PROVISIONING},
                 {"secured", IAT_LC_SECURED},
                 {"non_psa_rot_debug", IAT_LC_NON_PSA_ROT_DEBUG},
                 {"recoverable_psa_rot_debug", IAT_LC_RECOVERABLE_PSA_ROT_DEBUG},
                 {"decommissioned", IAT_LC_DECOMMISSIONED}};
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 0 || x > 0xffff)
            return -1;
        *out = (uint32_t)x;
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].value;
            return 0;
        }
    char *end;
    unsigned long x = strtoul(s, &end, 0);
    if (*s && !*end && x <= 0xffff) {
        *out = (uint32_t)x;
        return 0;
    }
    return -1;
}

int iat_claims_from_json(const json_t *o, struct iat_claims *c, struct iat_claims_store *st,
                         char *err, size_t errlen)
{
    static const char *const known[] = {
        "profile", "nonce", "boot_seed", "boot_seed_key", "instance_id", "implementation_id",
        "client_id", "lifecycle", "lifecycle_state", "sw_components", "no_sw_measurements",
        "profile_name", "verification_service", "certification_reference", NULL};
    memset(c, 0, sizeof(*c));
    if (!json_is_object(o)) {
        snprintf(err, errlen, "the claims must be a JSON object");
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)o, key, val) {
        size_t i = 0;
        while (known[i] && strcmp(known[i], key) != 0)
            i++;
        if (!known[i]) {
            snprintf(err, errlen, "unknown claim \"%s\"", key);
            return -1;
        }
    }
    struct {
        const char *key;
        enum iat_claim claim;
        struct iat_bytes *dst;
        bool text;
    } fields[] = {
        {"nonce", IAT_CLAIM_NONCE, &c->nonce, false},
        {"boot_seed", IAT_CLAIM_BOOT_SEED, &c->boot_seed, false},
        {"instance_id", IAT_CLAIM_INSTANCE_ID, &c->instance_id, false},
        {"implementation_id", IAT_CLAIM_IMPLEMENTATION_ID, &c->implementation_id, false},
        {"profile_name", IAT_CLAIM_PROFILE, &c->profile_name, true},
        {"verification_service", IAT_CLAIM_VERIFICATION_SERVICE, &c->verification_service, true},
        {"certification_reference", IAT_CLAIM_CERT_REF, &c->cert_ref, true},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        bool found;
        int rc = fields[i].text ? get_text(o, fields[i].key, fields[i].dst, st, err, errlen, &found)
                                : get_hex(o, fields[i].key, fields[i].dst, st, err, errlen, &found);
        if (rc)
            return -1;
        if (found)
            c->present |= 1u << fields[i].claim;
    }
    const json_t *v;
    if ((v = json_object_get(o, "boot_seed_key"))) {
        if (!json_is_integer(v) || (json_integer_value(v) != 268 && json_integer_value(v) != 2397)) {
            snprintf(err, errlen, "\"boot_seed_key\" must be 268 or 2397");
            return -1;
        }
        c->boot_seed_key = json_integer_value(v);
    }
    if ((v = json_object_get(o, "client_id"))) {
        if (!json_is_integer(v)) {
            snprintf(err, errlen, "\"client_id\" must be an integer");
            return -1;
        }
        c->client_id = json_integer_value(v);
        c->present |= 1u << IAT_CLAIM_CLIENT_ID;
    }
    if ((v = json_object_get(o, "lifecycle"))) {
        if (lifecycle_from_json(v, &c->lifecycle) != 0) {
            snprintf(err, errlen, "\"lifecycle\" must be 0..0xffff or a state name (secured, "
                                  "non_psa_rot_debug, ...)");
            return -1;
        }
        c->present |= 1u << IAT_CLAIM_LIFECYCLE;
    }
    if ((v = json_object_get(o, "no_sw_measurements"))) {
        if (!json_is_true(v)) {
            snprintf(err, errlen, "\"no_sw_measurements\" can only be true");
            return -1;
        }
        c->present |= 1u << IAT_CLAIM_NO_SW_MEASUREMENTS;
    }
    if ((v = json_object_get(o, "sw_components"))) {
        if (!json_is_array(v) || json_array_size(v) > IAT_MAX_SW_COMPONENTS) {
            snprintf(err, errlen, "\"sw_components\" must be an array of at most %d objects",
                     IAT_MAX_SW_COMPONENTS);
            return -1;
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *m = json_array_get(v, i);
            struct iat_sw_component *sw = &c->sw[i];
            if (!json_is_object(m)) {
                snprintf(err, errlen, "sw_components[%zu] must be an object", i);
                return -1;
            }
            struct {
                const char *key;
                int field;
                struct iat_bytes *dst;
                bool text;
            } sf[] = {
                {"measurement_type", IAT_SW_TYPE, &sw->type, true},
                {"measurement_value", IAT_SW_VALUE, &sw->value, false},
                {"version", IAT_SW_VERSION, &sw->version, true},
                {"signer_id", IAT_SW_SIGNER_ID, &sw->signer_id, false},
                {"measurement_description", IAT_SW_DESCRIPTION, &sw->description, true},
            };
            size_t used = 0;
            for (size_t k = 0; k < sizeof(sf) / sizeof(sf[0]); k++) {
                bool found;
                int rc = sf[k].text ? get_text(m, sf[k].key, sf[k].dst, st, err, errlen, &found)
                                    : get_hex(m, sf[k].key, sf[k].dst, st, err, errlen, &found);
                if (rc)
                    return -1;
                if (found) {
                    sw->present |= 1u << sf[k].field;
                    used++;
                }
            }
            if (used != json_object_size(m)) {
                snprintf(err, errlen, "sw_components[%zu] has an unknown field", i);
                return -1;
            }
        }
        c->sw_count = json_array_size(v);
        c->present |= 1u << IAT_CLAIM_SW_COMPONENTS;
    }
    const char *prof = json_string_value(json_object_get(o, "profile"));
    c->profile = prof && strcmp(prof, "psa2") == 0 ? IAT_PROFILE_PSA2 : IAT_PROFILE_LEGACY;
    return 0;
}

/* ---- Reference values ------------------------------------------------------------------- */

static int refval_entry(const json_t *e, enum refval_kind kind, size_t i, struct refval *rv,
                        char *err, size_t errlen)
{
    const char *what = kind == REFVAL_IMPLEMENTATION ? "implementation_ids" : "measurements";
    memset(rv, 0, sizeof(*rv));
    rv->kind = kind;
    const char *value = json_string_value(e);
    if (!value && json_is_object(e)) {
        static const char *const keys[] = {"value", "signer_id", "type", "label", NULL};
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)e, k, v) {
            size_t n = 0;
            if (strcmp(k, "id") == 0 && json_is_integer(v))
                continue; /* as `refval list --json` writes it; a new id is given */
            while (keys[n] && strcmp(keys[n], k) != 0)
                n++;
            if (!keys[n] || !json_is_string(v)) {
                snprintf(err, errlen, "%s[%zu]: \"%s\" is not a known string field", what, i, k);
                return -1;
            }
        }
        value = json_string_value(json_object_get(e, "value"));
        const char *signer = json_string_value(json_object_get(e, "signer_id"));
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *label = json_string_value(json_object_get(e, "label"));
        if (signer) {
            if (kind == REFVAL_IMPLEMENTATION) {
                snprintf(err, errlen, "%s[%zu]: an implementation ID has no signer_id", what, i);
                return -1;
            }
            int n = hex_parse(signer, rv->signer_id, sizeof(rv->signer_id));
            if (n <= 0) {
                snprintf(err, errlen, "%s[%zu]: signer_id must be 1..64 bytes of hex", what, i);
                return -1;
            }
            rv->signer_len = (size_t)n;
        }
        if ((type && strlen(type) >= sizeof(rv->type)) ||
            (label && strlen(label) >= sizeof(rv->label))) {
            snprintf(err, errlen, "%s[%zu]: type or label too long", what, i);
            return -1;
        }
        snprintf(rv->type, sizeof(rv->type), "%s", type ? type : "");
        snprintf(rv->label, sizeof(rv->label), "%s", label ? label : "");
    }
    int n = value ? hex_parse(value, rv->value, sizeof(rv->value)) : -1;
    if (n <= 0 || (kind == REFVAL_MEASUREMENT && n < 32)) {
        snprintf(err, errlen, "%s[%zu]: value must be hex (%s bytes)", what, i,
                 kind == REFVAL_MEASUREMENT ? "32..64" : "1..64");
        return -1;
    }
    rv->value_len = (size_t)n;
    return 0;
}

int iat_json_refvals(const json_t *o, int (*fn)(const struct refval *rv, void *arg), void *arg,
                      char *err, size_t errlen)
{
    if (!json_is_object(o)) {
        snprintf(err, errlen, "reference values must be a JSON object");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (strcmp(k, "implementation_ids") != 0 && strcmp(k, "measurements") != 0) {
            snprintf(err, errlen, "unknown member \"%s\" (expected implementation_ids, "
                                  "measurements)", k);
            return -1;
        }
        if (!json_is_array(v)) {
            snprintf(err, errlen, "\"%s\" must be an array", k);
            return -1;
        }
    }
    static const struct {
        const char *key;
        enum refval_kind kind;
    } lists[] = {{"implementation_ids", REFVAL_IMPLEMENTATION},
                 {"measurements", REFVAL_MEASUREMENT}};
    for (size_t l = 0; l < 2; l++) {
        const json_t *arr = json_object_get(o, lists[l].key);
        for (size_t i = 0; arr && i < json_array_size(arr); i++) {
            struct refval rv;
            if (refval_entry(json_array_get(arr, i), lists[l].kind, i, &rv, err, errlen) != 0)
                return -1;
            if (fn(&rv, arg) != 0) {
                snprintf(err, errlen, "%s[%zu] refused", lists[l].key, i);
                return -1;
            }
        }
    }
    return 0;
}

json_t *iat_json_refval(const struct refval *rv)
{
    json_t *o = json_object();
    char hexbuf[129];
    json_object_set_new(o, "id", json_integer(rv->id));
    json_object_set_new(o, "value", json_string(hex_encode(rv->value, rv->value_len, hexbuf,
                                                           sizeof(hexbuf))));
    if (rv->signer_len)
        json_object_set_new(o, "signer_id", json_string(hex_encode(rv->signer_id,
                                                                   rv->signer_len, hexbuf,
                                                                   sizeof(hexbuf))));
    if (rv->type[0])
        json_object_set_new(o, "type", json_string(rv->type));
    if (rv->label[0])
        json_object_set_new(o, "label", json_string(rv->label));
    return o;
}
