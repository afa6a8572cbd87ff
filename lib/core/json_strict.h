/*
 * json_strict.h: the one way digestd and its tools parse JSON they did not
 * write (an activity, an upstream digest, a JWT's parts, a key set, a
 * connector or token reply, what the stub is sent): exactly one value,
 * json-c's strict mode, a nesting bound, and nothing but white space after
 * it; and the one way to read a string out of it. Pure.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/common.h"

struct json_object;

/*
 * Parses len bytes (need not be NUL-terminated) into *out (owned:
 * json_object_put; NULL on any error). max_depth is json-c's count, in
 * which every value is a level, a scalar included. validate_utf8 refuses
 * invalid UTF-8 (callers that repair text themselves pass false).
 * DG_ERR_BAD_JSON for an empty or over-INT_MAX body, broken JSON, a value
 * that is not an object, too deep, or anything but white space after it.
 * Strict is json-c's JSON_TOKENER_STRICT: no comments, trailing commas,
 * bare words or single-quoted values; json-c 0.16 still takes a
 * single-quoted member name ({'a':1}).
 */
int json_strict_object(const char *body, size_t len, int max_depth, bool validate_utf8,
                       struct json_object **out) WARN_UNUSED;

/*
 * The same rules for any JSON value at the top (an array, a string, a
 * number…), for a reader that takes whatever it is sent. Two json-c limits
 * show here: a bare null is DG_ERR_BAD_JSON (json-c has no object for it),
 * and so is a bare number with nothing after it (json-c waits for more
 * digits; "42 " parses).
 */
int json_strict_value(const char *body, size_t len, int max_depth, bool validate_utf8,
                      struct json_object **out) WARN_UNUSED;

/*
 * json_strict_object with the depth counted as SPEC §3 counts it: objects
 * and arrays only, the top-level object at 1, so {"a":"x"} is 1 deep and
 * {"a":{"b":1}} 2. More than max_nesting levels is DG_ERR_BAD_JSON.
 */
int json_strict_object_nested(const char *body, size_t len, int max_nesting, bool validate_utf8,
                              struct json_object **out) WARN_UNUSED;

/*
 * v as a C string (borrowed from v), or NULL when v is not a string or
 * holds an escaped NUL ("a\u0000b" must not read as "a" downstream).
 */
const char *json_strict_string_value(struct json_object *v);

/* Member key of obj the same way: NULL also when it is absent. */
const char *json_strict_string(struct json_object *obj, const char *key);
