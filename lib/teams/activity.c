/*
 * activity.c: a Bot Framework Activity from JSON bytes to struct activity,
 * the bot-mention stripping that yields the command text, and the
 * conversation reference. Pure: no I/O and no clock (callers pass now_ms).
 *
 * The body is scanned once (lib/core/json_scan.h) against the schema below:
 * the members digestd reads are captured, every other value is skipped (and
 * still validated). The rules for what counts as present are json-c's, as
 * the tree walk this replaced applied them: the last of duplicate members
 * wins, a later object replaces an earlier one with everything under it, a
 * value of the wrong type is absent, a string holding \u0000 is absent.
 */
#include "teams/activity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/dec.h"
#include "core/json_scan.h"
#include "config.h"

/* --- the schema ---------------------------------------------------------- */

enum field_kind {
    FIELD_STRING,   /* a string captured at offset in the base struct */
    FIELD_OBJECT,   /* an object whose own members are in members */
    FIELD_ENTITIES, /* the activity's entities[] (base is the struct activity) */
};

struct field {
    const char *name;
    size_t len;
    enum field_kind kind;
    size_t offset;               /* FIELD_STRING: of the const char * in the base struct */
    const struct field *members; /* FIELD_OBJECT: ends with a NULL name */
};

/* One entity of entities[], as collect_mentions read it. */
struct entity {
    const char *type;
    const char *text;
    const char *mentioned_id;
};

#define STRING_OF(type, name, member)                                                              \
    {                                                                                              \
        name, sizeof(name) - 1, FIELD_STRING, offsetof(type, member), NULL                         \
    }
#define STRING(name, member) STRING_OF(struct activity, name, member)
#define OBJECT(name, members)                                                                      \
    {                                                                                              \
        name, sizeof(name) - 1, FIELD_OBJECT, 0, members                                           \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, 0, FIELD_STRING, 0, NULL                                                             \
    }

static const struct field conversation_fields[] = {
    STRING("id", conversation_id),
    STRING("conversationType", conversation_type),
    STRING("tenantId", tenant_id),
    END,
};

static const struct field from_fields[] = {
    STRING("id", from_id),
    STRING("name", from_name),
    STRING("aadObjectId", from_aad_id),
    END,
};

static const struct field recipient_fields[] = {
    STRING("id", recipient_id),
    STRING("name", recipient_name),
    END,
};

static const struct field tenant_fields[] = {
    STRING("id", _channel_tenant_id),
    END,
};

static const struct field channel_data_fields[] = {
    OBJECT("tenant", tenant_fields),
    END,
};

static const struct field root_fields[] = {
    STRING("type", type),
    STRING("id", id),
    STRING("serviceUrl", service_url),
    STRING("channelId", channel_id),
    STRING("text", text),
    STRING("locale", locale),
    STRING("action", action),
    OBJECT("conversation", conversation_fields),
    OBJECT("from", from_fields),
    OBJECT("recipient", recipient_fields),
    OBJECT("channelData", channel_data_fields),
    {"entities", sizeof("entities") - 1, FIELD_ENTITIES, 0, NULL},
    END,
};

static const struct field mentioned_fields[] = {
    STRING_OF(struct entity, "id", mentioned_id),
    END,
};

static const struct field entity_fields[] = {
    STRING_OF(struct entity, "type", type),
    STRING_OF(struct entity, "text", text),
    OBJECT("mentioned", mentioned_fields),
    END,
};

/* --- step 1: the scan ------------------------------------------------------ */

static const char **slot(void *base, const struct field *f)
{
    return (const char **)(void *)((char *)base + f->offset);
}

/* The field a member name stands for (compared as json-c looked it up), or NULL. */
static const struct field *find_field(const struct field *fields, const struct json_scan_str *key)
{
    size_t len = json_scan_name_len(key);

    for (; fields->name; fields++) {
        if (fields->len == len && fields->name[0] == key->ptr[0] &&
            memcmp(fields->name, key->ptr, len) == 0)
            return fields;
    }
    return NULL;
}

/*
 * Forgets every capture under fields: their member appeared again, or as a
 * non-object. (FIELD_ENTITIES is a member of the root only, which is never
 * cleared: there is one top-level object.)
 */
static void clear_fields(const struct field *fields, void *base)
{
    for (; fields->name; fields++) {
        if (fields->kind == FIELD_STRING)
            *slot(base, fields) = NULL;
        else if (fields->kind == FIELD_OBJECT)
            clear_fields(fields->members, base);
    }
}

static void read_value(struct json_scan *s, const struct field *f, void *base);

/* The members of the object just entered, each captured or skipped. */
static void read_members(struct json_scan *s, const struct field *fields, void *base)
{
    struct json_scan_str key;

    while (json_scan_member(s, &key) == 1) {
        const struct field *f = find_field(fields, &key);

        if (f)
            read_value(s, f, base);
        else
            json_scan_skip(s);
    }
}

/*
 * An object whose members are fields; anything else leaves them absent.
 * The recursion follows the schema (at most three levels), not the body.
 */
static void read_object(struct json_scan *s, const struct field *fields, void *base)
{
    clear_fields(fields, base);
    if (json_scan_peek(s) != JSON_SCAN_OBJECT) {
        json_scan_skip(s);
        return;
    }
    json_scan_object(s);
    read_members(s, fields, base);
}

/* Keeps a mention that can be the bot's: which one is, recipient.id decides in step 2. */
static void add_found(struct activity *a, const char *id, const char *text)
{
    if (a->_n_found == a->_found_cap) {
        a->_found_cap = a->_found_cap ? 2 * a->_found_cap : 4;
        a->_found = xrealloc(a->_found, a->_found_cap * sizeof(*a->_found));
    }
    a->_found[a->_n_found].id = id;
    a->_found[a->_n_found].text = text;
    a->_n_found++;
}

/*
 * entities[]: every entity of type "mention" (case-insensitive, as
 * botbuilder's getMentions) counts for any_mention; those with a
 * mentioned.id and a non-empty text are kept, because recipient.id may come
 * later in the body (or be replaced by a later "recipient").
 */
static void read_entities(struct json_scan *s, struct activity *a)
{
    a->_n_found = 0;
    a->any_mention = false;
    if (json_scan_peek(s) != JSON_SCAN_ARRAY) {
        json_scan_skip(s);
        return;
    }
    json_scan_array(s);
    while (json_scan_element(s) == 1) {
        struct entity e;

        read_object(s, entity_fields, &e);
        if (!e.type || strcasecmp(e.type, "mention") != 0)
            continue;
        a->any_mention = true;
        if (e.mentioned_id && e.text && e.text[0])
            add_found(a, e.mentioned_id, e.text);
    }
}

static void read_value(struct json_scan *s, const struct field *f, void *base)
{
    switch (f->kind) {
    case FIELD_STRING:
        *slot(base, f) = json_scan_cstring(s);
        break;
    case FIELD_OBJECT:
        read_object(s, f->members, base);
        break;
    case FIELD_ENTITIES:
        read_entities(s, base);
        break;
    }
}

int activity_parse(struct activity *a, const char *body, size_t len, size_t *bad_at)
{
    struct json_scan s;

    memset(a, 0, sizeof(*a));
    if (len == 0) { /* body may be NULL then */
        if (bad_at)
            *bad_at = 0;
        return DG_ERR_BAD_JSON;
    }
    /* One copy, exactly len bytes: the strings are decoded into it in place. */
    a->buf = xmalloc(len);
    memcpy(a->buf, body, len);
    json_scan_init(&s, a->buf, len, JSON_MAX_DEPTH);
    json_scan_object(&s);
    read_members(&s, root_fields, a);
    if (json_scan_end(&s) != 0) {
        if (bad_at)
            *bad_at = s.err_at;
        activity_free(a);
        return DG_ERR_BAD_JSON;
    }
    return 0;
}

/* --- step 2: the required fields ------------------------------------------- */

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

static void collect_mentions(struct activity *a)
{
    size_t i;

    a->n_mentions = 0;
    for (i = 0; i < a->_n_found; i++) {
        if (strcmp(a->_found[i].id, a->recipient_id) == 0)
            add_mention(a, a->_found[i].text);
    }
}

static void fill_optional(struct activity *a)
{
    const char **opt[] = {
        &a->channel_id,  &a->conversation_type, &a->tenant_id, &a->from_name,
        &a->from_aad_id, &a->recipient_name,    &a->text,      &a->locale,
        &a->action,
    };
    size_t i;

    /* conversation.tenantId, or when that is absent or empty, channelData.tenant.id. */
    if (!a->tenant_id || !a->tenant_id[0])
        a->tenant_id = a->_channel_tenant_id;
    for (i = 0; i < ARRAY_SIZE(opt); i++) {
        if (!*opt[i])
            *opt[i] = "";
    }
}

int activity_check_fields(struct activity *a, char *err, size_t errlen)
{
    const struct {
        const char *path;
        const char *value;
    } required[] = {
        {"type", a->type},
        {"id", a->id},
        {"serviceUrl", a->service_url},
        {"conversation.id", a->conversation_id},
        {"from.id", a->from_id},
        {"recipient.id", a->recipient_id},
    };
    size_t i;

    if (errlen)
        err[0] = '\0';
    for (i = 0; i < ARRAY_SIZE(required); i++) {
        if (!required[i].value || !required[i].value[0]) {
            if (errlen)
                snprintf(err, errlen, "%s", required[i].path);
            return DG_ERR_FIELD;
        }
    }
    fill_optional(a);
    collect_mentions(a);
    return 0;
}

void activity_free(struct activity *a)
{
    xfree(a->buf);
    xfree(a->_found);
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

    dec_u64(ref->updated_ms, now_ms);
    for (i = 0; i < ACTIVITY_REF_FIELDS; i++) {
        ref->fields[i] = names[i];
        ref->values[i] = values[i];
    }
}
