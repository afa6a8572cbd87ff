/* stub_inject.c: parsing and queueing digest-stub's injection rules. */
#include "inject.h"

#include <string.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "core/json_strict.h"
#include "content.h"

#define RULE_MAX_DELAY_MS (24ll * 3600 * 1000)

static const char *const target_names[STUB_TARGET_COUNT] = {"upstream", "connector", "token"};

const char *stub_target_name(enum stub_target t)
{
    return target_names[t];
}

/*
 * An optional integer member within [lo, hi]; *out untouched when absent.
 * Returns NULL, or why (the caller's message naming the member and range).
 */
static const char *int_member(struct json_object *o, const char *key, int64_t lo, int64_t hi,
                              int64_t *out, const char *why)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v))
        return NULL;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < lo ||
        json_object_get_int64(v) > hi)
        return why;
    *out = json_object_get_int64(v);
    return NULL;
}

static const char *parse_target(struct json_object *o, enum stub_target *t)
{
    struct json_object *v;
    size_t i;

    if (json_object_object_get_ex(o, "target", &v) && json_object_is_type(v, json_type_string)) {
        for (i = 0; i < STUB_TARGET_COUNT; i++) {
            if (strcmp(json_object_get_string(v), target_names[i]) == 0) {
                *t = (enum stub_target)i;
                return NULL;
            }
        }
    }
    return "target must be connector, upstream or token";
}

static const char *parse_fields(struct json_object *o, struct stub_rule *r)
{
    struct json_object *v;
    int64_t status = 0, count = 1;
    const char *bad;

    if ((bad = int_member(o, "status", 100, 599, &status, "status must be an integer 100-599")) ||
        (bad = int_member(o, "retry_after", 0, 86400, &r->retry_after_s,
                          "retry_after must be an integer 0-86400 (seconds)")) ||
        (bad = int_member(o, "count", 1, 1000000, &count, "count must be an integer 1-1000000")) ||
        (bad = int_member(o, "delay_ms", 0, RULE_MAX_DELAY_MS, &r->delay_ms,
                          "delay_ms must be an integer 0-86400000")))
        return bad;
    if (json_object_object_get_ex(o, "hang", &v)) {
        if (!json_object_is_type(v, json_type_boolean))
            return "hang must be true or false";
        r->hang = json_object_get_boolean(v);
    }
    if (!status && !r->hang && r->delay_ms < 0)
        return "give status, hang or delay_ms";
    if (r->retry_after_s >= 0 && !status)
        return "retry_after needs a status";
    r->status = (int)status;
    r->remaining = (uint64_t)count;
    return NULL;
}

const char *stub_rule_parse(const char *body, size_t len, enum stub_target *t, struct stub_rule *r)
{
    struct json_object *o;
    const char *bad = "body must be a JSON object";

    memset(r, 0, sizeof(*r));
    r->retry_after_s = -1;
    r->delay_ms = -1;
    if (json_strict_object(body, len, STUB_JSON_MAX_DEPTH, false, &o) == 0) {
        bad = parse_target(o, t);
        if (!bad)
            bad = parse_fields(o, r);
    }
    json_object_put(o);
    return bad;
}

void stub_rules_add(struct stub_rules *rs, enum stub_target t, const struct stub_rule *r)
{
    struct stub_rule **tail;

    for (tail = &rs->head[t]; *tail; tail = &(*tail)->next)
        ;
    *tail = xmalloc(sizeof(**tail));
    **tail = *r;
    (*tail)->next = NULL;
}

bool stub_rules_take(struct stub_rules *rs, enum stub_target t, struct stub_rule *out)
{
    struct stub_rule *r = rs->head[t];

    if (!r)
        return false;
    *out = *r;
    if (--r->remaining == 0) {
        rs->head[t] = r->next;
        xfree(r);
    }
    return true;
}

uint64_t stub_rules_count(const struct stub_rules *rs)
{
    const struct stub_rule *r;
    uint64_t n = 0;
    size_t t;

    for (t = 0; t < STUB_TARGET_COUNT; t++)
        for (r = rs->head[t]; r; r = r->next)
            n += r->remaining;
    return n;
}

void stub_rules_clear(struct stub_rules *rs)
{
    size_t t;

    for (t = 0; t < STUB_TARGET_COUNT; t++) {
        while (rs->head[t]) {
            struct stub_rule *r = rs->head[t];
            rs->head[t] = r->next;
            xfree(r);
        }
    }
}
