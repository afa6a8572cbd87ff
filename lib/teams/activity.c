/*
 * activity.c: a Bot Framework Activity from JSON bytes to struct activity,
 * the bot-mention stripping that yields the command text, and the
 * conversation reference. Pure: no I/O and no clock (callers pass now_ms).
 */
#include "teams/activity.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "config.h"
#include "core/json_strict.h"

/* The longest key of a dotted path we look up ("conversationType"). */
#define PATH_SEGMENT_MAX 32

int activity_json_parse(const char *body, size_t len, struct json_object **out)
{
    /* SPEC §3's count: the top-level object is depth 1, scalars add none. */
    return json_strict_object_nested(body, len, JSON_MAX_DEPTH, true, out);
}

/* The string at a dotted path such as "channelData.tenant.id", or NULL. */
static const char *str_at(struct json_object *o, const char *path)
{
    char seg[PATH_SEGMENT_MAX];
    const char *p = path;

    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);

        assert(n < sizeof(seg)); /* paths are our own constants */
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, seg, &o))
            return NULL;
        p += n + (dot != NULL);
    }
    /* NULL too for an escaped NUL: "ab\u0000cd" would read as "ab" downstream. */
    return json_strict_string_value(o);
}

static const char *opt_str(struct json_object *root, const char *path)
{
    const char *s = str_at(root, path);

    return s ? s : "";
}

/* Records one bot mention text, once: removal takes every occurrence anyway. */
static void add_mention(struct activity *a, const char *text)
{
    size_t i;

    for (i = 0; i < a->n_mentions; i++) {
        if (strcmp(a->mentions[i], text) == 0)
            return;
    }
    /* Past the cap the extra mentions stay in the text and the command reads
     * as help: harmless for a bot that is mentioned once or twice. */
    if (a->n_mentions < ACTIVITY_MAX_MENTIONS)
        a->mentions[a->n_mentions++] = text;
}

/*
 * Collects the text of every entity of type "mention" (case-insensitive, as
 * botbuilder's getMentions) whose mentioned.id is the bot (recipient.id).
 */
static void collect_mentions(struct activity *a, struct json_object *root)
{
    struct json_object *ents;
    size_t i, n;

    if (!json_object_object_get_ex(root, "entities", &ents) ||
        !json_object_is_type(ents, json_type_array))
        return;
    n = json_object_array_length(ents);
    for (i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(ents, i);
        const char *type = str_at(e, "type");
        const char *id, *text;

        if (!type || strcasecmp(type, "mention") != 0)
            continue;
        a->any_mention = true;
        id = str_at(e, "mentioned.id");
        text = str_at(e, "text");
        if (id && text && text[0] && strcmp(id, a->recipient_id) == 0)
            add_mention(a, text);
    }
}

static void fill_optional(struct activity *a, struct json_object *root)
{
    a->channel_id = opt_str(root, "channelId");
    a->conversation_type = opt_str(root, "conversation.conversationType");
    a->tenant_id = opt_str(root, "conversation.tenantId");
    if (!a->tenant_id[0])
        a->tenant_id = opt_str(root, "channelData.tenant.id");
    a->from_name = opt_str(root, "from.name");
    a->from_aad_id = opt_str(root, "from.aadObjectId");
    a->recipient_name = opt_str(root, "recipient.name");
    a->text = opt_str(root, "text");
    a->locale = opt_str(root, "locale");
    /* "add"/"remove" on installationUpdate (and contactRelationUpdate); the
     * caller looks at it only for those types. */
    a->action = opt_str(root, "action");
}

int activity_from_json(struct activity *a, struct json_object *root, char *err, size_t errlen)
{
    const struct {
        const char *path;
        const char **dst;
    } required[] = {
        {"type", &a->type},
        {"id", &a->id},
        {"serviceUrl", &a->service_url},
        {"conversation.id", &a->conversation_id},
        {"from.id", &a->from_id},
        {"recipient.id", &a->recipient_id},
    };
    size_t i;

    memset(a, 0, sizeof(*a));
    if (errlen)
        err[0] = '\0';
    for (i = 0; i < ARRAY_SIZE(required); i++) {
        const char *s = str_at(root, required[i].path);

        if (!s || !s[0]) {
            if (errlen)
                snprintf(err, errlen, "%s", required[i].path);
            memset(a, 0, sizeof(*a));
            return DG_ERR_FIELD;
        }
        *required[i].dst = s;
    }
    fill_optional(a, root);
    collect_mentions(a, root);
    a->root = json_object_get(root);
    return 0;
}

void activity_free(struct activity *a)
{
    json_object_put(a->root);
    memset(a, 0, sizeof(*a));
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Where the command starts when the activity has no mention entity at all
 * (some clients and test tools send bare markup): after a leading
 * "<at>NAME</at>" whose NAME is exactly recipient.name. With any mention
 * entity present we trust the entities only, so a user who happens to share
 * the bot's display name is never stripped.
 */
static const char *skip_bare_mention(const struct activity *a, const char *text)
{
    size_t n = strlen(a->recipient_name);
    const char *p = text;

    if (a->any_mention || n == 0)
        return text;
    while (is_space(*p))
        p++;
    if (strncasecmp(p, "<at>", 4) != 0)
        return text;
    p += 4;
    if (strncmp(p, a->recipient_name, n) != 0 || strncasecmp(p + n, "</at>", 5) != 0)
        return text;
    return p + n + 5;
}

/*
 * Copies text into out, replacing each occurrence of a bot mention with one
 * space (so "digest<at>Bot</at>advisors" does not glue two words). Each
 * mention's next occurrence is searched again only once the copy has moved
 * past it, and a mention not found is never searched again, so a long text
 * costs a few linear scans, not one per position. Every mention is at least
 * one byte long, so out never needs more room than text. Returns the length.
 */
static size_t strip_mentions(const struct activity *a, const char *text, char *out)
{
    const char *next[ACTIVITY_MAX_MENTIONS];
    size_t lens[ACTIVITY_MAX_MENTIONS];
    const char *p = text, *hit;
    size_t i, w = 0, hit_len, rest;

    for (i = 0; i < a->n_mentions; i++) {
        lens[i] = strlen(a->mentions[i]);
        next[i] = strstr(p, a->mentions[i]);
    }
    for (;;) {
        hit = NULL;
        hit_len = 0;
        for (i = 0; i < a->n_mentions; i++) {
            if (next[i] && next[i] < p)
                next[i] = strstr(p, a->mentions[i]);
            /* Earliest wins; on a tie the longer mention, so "<at>Bot</at>"
             * does not leave the tail of "<at>Bot</at> Jr" behind. */
            if (next[i] && (!hit || next[i] < hit || (next[i] == hit && lens[i] > hit_len))) {
                hit = next[i];
                hit_len = lens[i];
            }
        }
        if (!hit)
            break;
        memcpy(out + w, p, (size_t)(hit - p));
        w += (size_t)(hit - p);
        out[w++] = ' ';
        p = hit + hit_len;
    }
    rest = strlen(p);
    memcpy(out + w, p, rest + 1);
    return w + rest;
}

/*
 * Turns "&nbsp;" and U+00A0 into spaces, collapses white-space runs into one
 * space and trims both ends, in place (the output never outgrows the input).
 */
static void normalize_space(char *s)
{
    size_t r = 0, w = 0;
    bool pending = false;

    while (s[r]) {
        bool space = true;

        if (strncmp(s + r, "&nbsp;", 6) == 0)
            r += 6;
        else if ((unsigned char)s[r] == 0xC2 && (unsigned char)s[r + 1] == 0xA0)
            r += 2;
        else if (is_space(s[r]))
            r++;
        else
            space = false;
        if (space) {
            pending = w > 0;
            continue;
        }
        if (pending)
            s[w++] = ' ';
        pending = false;
        s[w++] = s[r++];
    }
    s[w] = '\0';
}

char *activity_command_text(const struct activity *a)
{
    const char *text = skip_bare_mention(a, a->text ? a->text : "");
    char *out = xmalloc(strlen(text) + 1);

    strip_mentions(a, text, out);
    normalize_space(out);
    return out;
}

char *activity_conv_key(const struct activity *a)
{
    size_t c = strlen(a->channel_id), v = strlen(a->conversation_id);
    char *key = xmalloc(c + 1 + v + 1);

    memcpy(key, a->channel_id, c);
    key[c] = ':';
    memcpy(key + c + 1, a->conversation_id, v + 1);
    return key;
}

void activity_reference(const struct activity *a, uint64_t now_ms, bool stale,
                        struct activity_ref *ref)
{
    /* SPEC §5 order; the bot is the recipient, the user the sender. */
    static const char *const names[ACTIVITY_REF_FIELDS] = {
        "service_url", "channel_id",  "conversation_id", "conversation_type",
        "tenant_id",   "bot_id",      "bot_name",        "user_id",
        "user_name",   "user_aad_id", "activity_id",     "locale",
        "updated_ms",  "stale",
    };
    const char *values[ACTIVITY_REF_FIELDS] = {
        a->service_url,
        a->channel_id,
        a->conversation_id,
        a->conversation_type,
        a->tenant_id,
        a->recipient_id,
        a->recipient_name,
        a->from_id,
        a->from_name,
        a->from_aad_id,
        a->id,
        a->locale,
        ref->updated_ms,
        stale ? "1" : "0",
    };
    size_t i;

    snprintf(ref->updated_ms, sizeof(ref->updated_ms), "%llu", (unsigned long long)now_ms);
    for (i = 0; i < ACTIVITY_REF_FIELDS; i++) {
        ref->fields[i] = names[i];
        ref->values[i] = values[i];
    }
}
