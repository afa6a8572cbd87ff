/*
 * activity.h: pure parsing of a Bot Framework Activity (JSON) into the
 * fields digestd uses, the bot-mention stripping of SPEC §4, and the
 * conversation reference of SPEC §5. No I/O. Parsing happens in two steps
 * because SPEC §3 orders the checks: "is it a JSON object" (400) comes before
 * the token checks, "are the required fields there" (400) after them.
 *
 * struct activity borrows every string from the json_object it was built
 * from and holds one reference on it; activity_free() drops that reference.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

struct json_object;

/* The bot's mentions found in entities[] (mentioned.id == recipient.id). */
#define ACTIVITY_MAX_MENTIONS 8

struct activity {
    struct json_object *root; /* one reference held */

    /* Required (SPEC §3): non-empty strings. */
    const char *type;
    const char *id;
    const char *service_url;
    const char *conversation_id;
    const char *from_id;
    const char *recipient_id;

    /* Optional: "" when absent or not a string. */
    const char *channel_id;
    const char *conversation_type;
    const char *tenant_id; /* conversation.tenantId, else channelData.tenant.id */
    const char *from_name;
    const char *from_aad_id;
    const char *recipient_name;
    const char *text;
    const char *locale;
    const char *action; /* installationUpdate: "add" / "remove" */

    const char *mentions[ACTIVITY_MAX_MENTIONS]; /* entity "text" of each bot mention */
    size_t n_mentions;
    bool any_mention; /* entities[] holds a mention of anyone */
};

/*
 * Step 1: parses body (len bytes, NUL not needed) as strict JSON, valid
 * UTF-8, with objects and arrays nested at most JSON_MAX_DEPTH deep (the
 * top-level object is depth 1; scalars do not count). The whole body must be
 * one JSON object; white space may follow it, nothing else. On success *out
 * is owned by the caller (json_object_put). Returns 0 or DG_ERR_BAD_JSON.
 */
int activity_json_parse(const char *body, size_t len, struct json_object **out) WARN_UNUSED;

/*
 * Step 2: fills a from the parsed object (takes a new reference on root).
 * Returns 0, or DG_ERR_FIELD with the offending field path (for example
 * "conversation.id") written into err. A string holding an escaped NUL
 * (\u0000) counts as not a string. On error a holds nothing to free.
 */
int activity_from_json(struct activity *a, struct json_object *root, char *err,
                       size_t errlen) WARN_UNUSED;

void activity_free(struct activity *a);

/*
 * The command text (SPEC §4): text with every bot mention's markup replaced
 * by a space, "&nbsp;" and U+00A0 turned into spaces, runs of white space
 * collapsed to one space and the ends trimmed. When the activity carries no
 * mention entity at all, a leading "<at>NAME</at>" whose NAME is exactly
 * recipient.name is dropped as well. Returns an owned string (xfree).
 */
char *activity_command_text(const struct activity *a);

/* "<channelId>:<conversation.id>": the suffix of the conv and dedup keys. Owned. */
char *activity_conv_key(const struct activity *a);

/*
 * The conversation reference as Redis hash field/value pairs (SPEC §5):
 * service_url, channel_id, conversation_id, conversation_type, tenant_id,
 * bot_id, bot_name, user_id, user_name, user_aad_id, activity_id, locale,
 * updated_ms, stale. Values are borrowed from a, except updated_ms and stale
 * which point into ref's own storage or static strings. n is ACTIVITY_REF_FIELDS.
 */
#define ACTIVITY_REF_FIELDS 14
struct activity_ref {
    const char *fields[ACTIVITY_REF_FIELDS];
    const char *values[ACTIVITY_REF_FIELDS];
    char updated_ms[24];
};
void activity_reference(const struct activity *a, uint64_t now_ms, bool stale,
                        struct activity_ref *ref);
