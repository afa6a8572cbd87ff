/*
 * activity.h: a Bot Framework Activity from JSON bytes to the fields digestd
 * uses, the bot-mention stripping of SPEC §4, and the conversation reference
 * of SPEC §5. No I/O. Parsing happens in two steps because SPEC §3 orders
 * the checks: "is it a JSON object" (400) comes before the token checks,
 * "are the required fields there" (400) after them.
 *
 * The body is read once by the strict scanner of lib/core/json_scan.h, which
 * validates every byte and builds no tree; this module holds the activity's
 * schema (which members are read, and json-c's rules for duplicates and odd
 * types, kept from the parser it replaced). struct activity owns one buffer,
 * a copy of the body that every string field points into (decoded in place),
 * and, when entities[] holds mentions, one small array; activity_free()
 * releases both. The struct may be moved by value; free one copy only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

/* The bot's mentions found in entities[] (mentioned.id == recipient.id). */
#define ACTIVITY_MAX_MENTIONS 8

/* An entity of type "mention" with a mentioned.id and a non-empty text. */
struct activity_mention {
    const char *id;
    const char *text;
};

struct activity {
    char *buf; /* owned: the body's copy that every string below points into */

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

    /* What step 1 keeps for step 2; not for callers. */
    const char *_channel_tenant_id;  /* channelData.tenant.id */
    struct activity_mention *_found; /* owned: every candidate mention, in document order */
    size_t _n_found, _found_cap;
};

/*
 * Step 1: reads body (len bytes, NUL not needed) as strict JSON: RFC 8259,
 * valid UTF-8 (RFC 3629), objects and arrays nested at most JSON_MAX_DEPTH
 * deep (the top-level object is depth 1; scalars do not count), the whole
 * body one JSON object with nothing but white space after it. Returns 0 with
 * the members captured into a, or DG_ERR_BAD_JSON with a zeroed and, when
 * bad_at is not NULL, *bad_at the offset of the first byte that broke the
 * grammar (len when the body ends too soon).
 *
 * After step 1 a string field is NULL when its member is absent, is not a
 * string (or its parent is not an object), or holds an escaped NUL (\u0000:
 * "ab\u0000cd" must not read as "ab" downstream); the token check reads
 * service_url and channel_id then. Duplicate member names: the last one
 * wins, and a later object replaces an earlier one whole. A member name is
 * compared up to its first escaped NUL, as json-c did ("type\u0000x" is
 * "type"). A lone UTF-16 surrogate escape reads as U+FFFD, as in json-c.
 *
 * Stricter than the json-c parser it replaced, on bodies that are not JSON
 * by RFC 8259, which json-c 0.16's strict mode accepts: a single-quoted
 * member name; the numbers 00, -01, 1., -.5, 1.e5, NaN, Infinity and the
 * like; a raw control character (below 0x20) inside a string; UTF-8 that is
 * not RFC 3629's (overlong forms, encoded surrogates, past U+10FFFF).
 * tests/fuzz/fuzz_activity_diff.c holds both parsers to exactly this.
 *
 * On success a is the caller's to activity_free, whatever step 2 says.
 */
int activity_parse(struct activity *a, const char *body, size_t len, size_t *bad_at) WARN_UNUSED;

/*
 * Step 2: the required fields present and non-empty, or DG_ERR_FIELD with
 * the offending field path (for example "conversation.id") written into err.
 * On 0 every field is as struct activity documents it: the optional ones ""
 * when absent, tenant_id with its fallback, and mentions[] the distinct texts
 * of the mentions whose mentioned.id is recipient.id, in document order, at
 * most ACTIVITY_MAX_MENTIONS. a still needs activity_free either way.
 */
int activity_check_fields(struct activity *a, char *err, size_t errlen) WARN_UNUSED;

/* Releases what a owns and zeroes it; a zeroed struct may be freed again. */
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
