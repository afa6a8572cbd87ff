/*
 * json_strict.h: the one way digestd parses JSON it did not write (an
 * activity, an upstream digest, a JWT's parts, a key set): exactly one
 * object, json-c's strict mode, a nesting bound, and nothing but white
 * space after it. Pure.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/common.h"

struct json_object;

/*
 * Parses len bytes (need not be NUL-terminated) into *out (owned:
 * json_object_put). max_depth is json-c's count, in which every value is a
 * level, a scalar included. validate_utf8 refuses invalid UTF-8 (callers
 * that repair text themselves pass false). DG_ERR_BAD_JSON for an empty or
 * over-INT_MAX body, broken JSON, a value that is not an object, too deep,
 * or anything but white space after it.
 */
int json_strict_object(const char *body, size_t len, int max_depth, bool validate_utf8,
                       struct json_object **out) WARN_UNUSED;

/*
 * json_strict_object with the depth counted as SPEC §3 counts it: objects
 * and arrays only, the top-level object at 1, so {"a":"x"} is 1 deep and
 * {"a":{"b":1}} 2. More than max_nesting levels is DG_ERR_BAD_JSON.
 */
int json_strict_object_nested(const char *body, size_t len, int max_nesting, bool validate_utf8,
                              struct json_object **out) WARN_UNUSED;

/*
 * Member key of obj as a C string (borrowed from obj), or NULL when it is
 * absent, not a string, or holds an escaped NUL ("a\u0000b" must not read
 * as "a").
 */
const char *json_strict_string(struct json_object *obj, const char *key);
