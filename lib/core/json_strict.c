/* json_strict.c: see json_strict.h. */
#include "core/json_strict.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/*
 * One tokener kept between parses, for the last max_depth asked for: making
 * one callocs its whole depth stack, ~3 % of a webhook's instructions.
 * Every program here parses on one thread. Reset before each use; and
 * dropped after a parse that failed, because json-c 0.16's reset does not
 * clear everything: a body that breaks off in the \u escape after a high
 * surrogate (\ud800\u00) leaves that surrogate pending, and the next
 * parse would write a U+FFFD before its first \u escape.
 */
static struct json_tokener *kept;
static int kept_depth;

static struct json_tokener *tokener_get(int max_depth)
{
    if (!kept || kept_depth != max_depth) {
        if (kept)
            json_tokener_free(kept);
        kept = json_tokener_new_ex(max_depth);
        if (!kept)
            abort(); /* json-c's only failure here is out of memory (STYLE rule 6) */
        kept_depth = max_depth;
    }
    json_tokener_reset(kept);
    return kept;
}

int json_strict_value(const char *body, size_t len, int max_depth, bool validate_utf8,
                      struct json_object **out)
{
    struct json_tokener *tok;
    struct json_object *root;

    *out = NULL;
    /* json-c takes an int length; callers cap bodies far below that anyway. */
    if (len == 0 || len > INT_MAX)
        return DG_ERR_BAD_JSON;
    tok = tokener_get(max_depth);
    /* Strict: no comments, bare words or trailing commas. */
    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | (validate_utf8 ? JSON_TOKENER_VALIDATE_UTF8 : 0));
    root = json_tokener_parse_ex(tok, body, (int)len);
    if (!root) {
        json_tokener_free(kept);
        kept = NULL;
    }
    /*
     * parse_ex stops after the first complete value and consumes the white
     * space behind it, so anything else left over (a second value, a NUL
     * byte and what follows it) shows as parse_end != len.
     */
    if (root && json_tokener_get_parse_end(tok) != len) {
        json_object_put(root);
        root = NULL;
    }
    *out = root;
    return root ? 0 : DG_ERR_BAD_JSON;
}

int json_strict_object(const char *body, size_t len, int max_depth, bool validate_utf8,
                       struct json_object **out)
{
    int err = json_strict_value(body, len, max_depth, validate_utf8, out);

    if (!err && !json_object_is_type(*out, json_type_object)) {
        json_object_put(*out);
        *out = NULL;
        err = DG_ERR_BAD_JSON;
    }
    return err;
}

/*
 * True when an object or array sits deeper than max, the top-level object
 * being depth 1. The tokener ran with one spare level, which also bounds the
 * recursion here.
 */
static bool too_deep(struct json_object *o, int depth, int max)
{
    size_t i, n;

    if (json_object_is_type(o, json_type_object)) {
        struct json_object_iterator it = json_object_iter_begin(o);
        struct json_object_iterator end = json_object_iter_end(o);

        if (depth > max)
            return true;
        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
            if (too_deep(json_object_iter_peek_value(&it), depth + 1, max))
                return true;
        }
    } else if (json_object_is_type(o, json_type_array)) {
        if (depth > max)
            return true;
        n = json_object_array_length(o);
        for (i = 0; i < n; i++) {
            if (too_deep(json_object_array_get_idx(o, i), depth + 1, max))
                return true;
        }
    }
    return false;
}

/*
 * json-c counts every value as a level, a scalar included, so its limit
 * alone would refuse {"a":"x"} inside max - 1 other objects. It gets one
 * spare level; the walk draws the exact line.
 */
int json_strict_object_nested(const char *body, size_t len, int max_nesting, bool validate_utf8,
                              struct json_object **out)
{
    int err = json_strict_object(body, len, max_nesting + 1, validate_utf8, out);

    if (!err && too_deep(*out, 1, max_nesting)) {
        json_object_put(*out);
        *out = NULL;
        err = DG_ERR_BAD_JSON;
    }
    return err;
}

const char *json_strict_string_value(struct json_object *v)
{
    const char *s;

    if (!json_object_is_type(v, json_type_string))
        return NULL;
    s = json_object_get_string(v);
    if (strlen(s) != (size_t)json_object_get_string_len(v))
        return NULL;
    return s;
}

const char *json_strict_string(struct json_object *obj, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(obj, key, &v))
        return NULL;
    return json_strict_string_value(v);
}
