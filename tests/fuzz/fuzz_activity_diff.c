/*
 * fuzz_activity_diff.c: differential libFuzzer target for the activity's
 * scanner (lib/teams/activity.c on lib/core/json_scan.c) against what it
 * replaced, json-c through json_strict_object_nested and the tree walk that
 * read the fields, kept below as the reference and used nowhere else. Each
 * input also goes through a small RFC 8259 checker (rfc8259.h). It
 * aborts unless:
 *
 * - the scanner accepts exactly what the checker accepts, and refuses at the
 *   same byte (both report the first byte no JSON text could have there);
 * - the scanner never accepts what json-c refuses;
 * - json-c accepts what the scanner refuses only for the documented reasons
 *   (activity.h): the checker's first violation is a single-quoted member
 *   name, a number RFC 8259 does not allow (NaN and Infinity included), a
 *   raw control character in a string, or UTF-8 that RFC 3629 does not
 *   allow;
 * - when both accept: every captured string equal byte for byte, the same
 *   activity_check_fields verdict and field path, and then the same fields,
 *   mentions, command text, conversation key and reference.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "teams/activity.h"
#include "core/buf.h"
#include "core/json_strict.h"
#include "config.h"
#include "rfc8259.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* --- the reference: activity.c's json-c field reading before the scanner --- */

#define PATH_SEGMENT_MAX 32

static const char *ref_str_at(struct json_object *o, const char *path)
{
    char seg[PATH_SEGMENT_MAX];
    const char *p = path;

    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);

        check(n < sizeof(seg));
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, seg, &o))
            return NULL;
        p += n + (dot != NULL);
    }
    return json_strict_string_value(o);
}

static const char *ref_opt_str(struct json_object *root, const char *path)
{
    const char *s = ref_str_at(root, path);

    return s ? s : "";
}

static void ref_add_mention(struct activity *a, const char *text)
{
    size_t i;

    for (i = 0; i < a->n_mentions; i++) {
        if (strcmp(a->mentions[i], text) == 0)
            return;
    }
    if (a->n_mentions < ACTIVITY_MAX_MENTIONS)
        a->mentions[a->n_mentions++] = text;
}

static void ref_collect_mentions(struct activity *a, struct json_object *root)
{
    struct json_object *ents;
    size_t i, n;

    if (!json_object_object_get_ex(root, "entities", &ents) ||
        !json_object_is_type(ents, json_type_array))
        return;
    n = json_object_array_length(ents);
    for (i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(ents, i);
        const char *type = ref_str_at(e, "type");
        const char *id, *text;

        if (!type || strcasecmp(type, "mention") != 0)
            continue;
        a->any_mention = true;
        id = ref_str_at(e, "mentioned.id");
        text = ref_str_at(e, "text");
        if (id && text && text[0] && strcmp(id, a->recipient_id) == 0)
            ref_add_mention(a, text);
    }
}

static void ref_fill_optional(struct activity *a, struct json_object *root)
{
    a->channel_id = ref_opt_str(root, "channelId");
    a->conversation_type = ref_opt_str(root, "conversation.conversationType");
    a->tenant_id = ref_opt_str(root, "conversation.tenantId");
    if (!a->tenant_id[0])
        a->tenant_id = ref_opt_str(root, "channelData.tenant.id");
    a->from_name = ref_opt_str(root, "from.name");
    a->from_aad_id = ref_opt_str(root, "from.aadObjectId");
    a->recipient_name = ref_opt_str(root, "recipient.name");
    a->text = ref_opt_str(root, "text");
    a->locale = ref_opt_str(root, "locale");
    a->action = ref_opt_str(root, "action");
}

/* The old activity_from_json, into a struct activity that borrows from root (buf stays NULL). */
static int ref_from_json(struct activity *a, struct json_object *root, char *err, size_t errlen)
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
    err[0] = '\0';
    for (i = 0; i < ARRAY_SIZE(required); i++) {
        const char *s = ref_str_at(root, required[i].path);

        if (!s || !s[0]) {
            snprintf(err, errlen, "%s", required[i].path);
            memset(a, 0, sizeof(*a));
            return DG_ERR_FIELD;
        }
        *required[i].dst = s;
    }
    ref_fill_optional(a, root);
    ref_collect_mentions(a, root);
    return 0;
}

/* --- the comparison --------------------------------------------------------- */

static void same_str(const char *a, const char *b)
{
    check((a == NULL) == (b == NULL));
    if (a)
        check(strlen(a) == strlen(b) && strcmp(a, b) == 0);
}

/* Step 1's captures, each against the json-c tree at its path. */
static void same_captures(const struct activity *a, struct json_object *root)
{
    const struct {
        const char *path;
        const char *got;
    } caps[] = {
        {"type", a->type},
        {"id", a->id},
        {"serviceUrl", a->service_url},
        {"channelId", a->channel_id},
        {"text", a->text},
        {"locale", a->locale},
        {"action", a->action},
        {"conversation.id", a->conversation_id},
        {"conversation.conversationType", a->conversation_type},
        {"conversation.tenantId", a->tenant_id},
        {"from.id", a->from_id},
        {"from.name", a->from_name},
        {"from.aadObjectId", a->from_aad_id},
        {"recipient.id", a->recipient_id},
        {"recipient.name", a->recipient_name},
        {"channelData.tenant.id", a->_channel_tenant_id},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(caps); i++)
        same_str(caps[i].got, ref_str_at(root, caps[i].path));
    /* What webhook.c hands the token check, as it read it from the tree. */
    same_str(a->service_url, json_strict_string(root, "serviceUrl"));
    same_str(a->channel_id, json_strict_string(root, "channelId"));
}

/* Step 2 and everything webhook.c derives from the activity. */
static void same_activity(struct activity *a, struct json_object *root)
{
    struct activity ref;
    struct activity_ref r1, r2;
    char err_a[64], err_r[64];
    char *x, *y;
    size_t i;
    int rc_a = activity_check_fields(a, err_a, sizeof(err_a));
    int rc_r = ref_from_json(&ref, root, err_r, sizeof(err_r));

    check(rc_a == rc_r);
    check(strcmp(err_a, err_r) == 0);
    if (rc_a != 0)
        return;
    check(a->n_mentions == ref.n_mentions && a->any_mention == ref.any_mention);
    for (i = 0; i < a->n_mentions; i++)
        same_str(a->mentions[i], ref.mentions[i]);
    activity_reference(a, 1700000000000ULL, false, &r1);
    activity_reference(&ref, 1700000000000ULL, false, &r2);
    for (i = 0; i < ACTIVITY_REF_FIELDS; i++)
        same_str(r1.values[i], r2.values[i]);
    same_str(a->type, ref.type);
    same_str(a->text, ref.text);
    same_str(a->action, ref.action);
    x = activity_command_text(a);
    y = activity_command_text(&ref);
    same_str(x, y);
    xfree(x);
    xfree(y);
    x = activity_conv_key(a);
    y = activity_conv_key(&ref);
    same_str(x, y);
    xfree(x);
    xfree(y);
}

static bool documented(enum rfc_class cls)
{
    return cls == RFC_SQUOTE || cls == RFC_NUMBER || cls == RFC_CONTROL || cls == RFC_UTF8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *root = NULL;
    struct activity a;
    size_t bad_at = SIZE_MAX;
    int jc = json_strict_object_nested((const char *)data, size, JSON_MAX_DEPTH, true, &root);
    int sc = activity_parse(&a, (const char *)data, size, &bad_at);
    struct rfc_verdict v = rfc8259_check(data, size, true, JSON_MAX_DEPTH);

    check((sc == 0) == (v.cls == RFC_OK));
    if (sc != 0)
        check(bad_at == v.at);
    if (jc != 0)
        check(sc != 0);
    else if (sc != 0)
        check(documented(v.cls));
    if (jc == 0 && sc == 0) {
        same_captures(&a, root);
        same_activity(&a, root);
    }
    if (sc == 0)
        activity_free(&a);
    json_object_put(root);
    return 0;
}
