/*
 * cloud_topic.h: the uplink's topic templates and AWS IoT Core's limits on them.
 *
 * A template is literal text with the variables {gateway} (the configured gateway name),
 * {id} (the publishing device's id, a whole topic level) and, in upward routes, {rest} (the
 * device topic levels matched by the route's trailing '#'). AWS IoT refuses topics with more
 * than 7 slashes or 256 bytes, topics starting with '$' (reserved), and payloads over 128 KiB
 * (docs/cloud.md cites the AWS quota page).
 */
#ifndef PSAGW_CLOUD_TOPIC_H
#define PSAGW_CLOUD_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define AWS_TOPIC_MAX_BYTES 256
#define AWS_TOPIC_MAX_SLASHES 7
#define AWS_PAYLOAD_MAX (128u * 1024u)

enum cloud_template_kind {
    CLOUD_TEMPLATE_UP,      /* {gateway} {id} {rest} */
    CLOUD_TEMPLATE_ATTEST,  /* {gateway} {id} */
    CLOUD_TEMPLATE_COMMAND, /* {gateway} and {id} as a whole level, ending in "/#" */
};

/*
 * Checks a template against the AWS limits with the given gateway name and the longest
 * device id: literal start that is not '$', known variables only, no wildcards (but the
 * command template's final '#'). {rest} adds levels only at run time; a route whose fixed
 * part already uses every slash, or all the bytes, is refused here. Returns 0 or -1 with err.
 */
int cloud_template_check(const char *tmpl, enum cloud_template_kind kind, const char *gateway,
                         char *err, size_t errlen);

/*
 * Expands a template. rest may be NULL/empty: then a '/' right before {rest} is left out.
 * Returns the length written (NUL-terminated), or -1 if the result breaks a limit (why says
 * which) or does not fit cap.
 */
int cloud_topic_expand(const char *tmpl, const char *gateway, const char *id, const char *rest,
                       size_t rest_len, char *out, size_t cap, const char **why);

/* Does a device topic match a route's filter? On a match, rest and rest_len get the levels the
 * filter's trailing '#' matched (empty when none or when the filter has no '#'). */
bool cloud_route_match(const char *filter, const char *topic, size_t len, const char **rest,
                       size_t *rest_len);

/* The cloud-side subscription for commands: the expanded template with {id} as '+'. */
int cloud_command_filter(const char *tmpl, const char *gateway, char *out, size_t cap);

/* Splits a command topic received on that filter: the device id (the '+' level) and the rest
 * (the levels matched by the final wildcard). Returns false if the topic does not match or the id is not valid. */
bool cloud_command_parse(const char *filter, const char *topic, size_t len, char *id,
                         size_t id_cap, const char **rest, size_t *rest_len);

#endif
