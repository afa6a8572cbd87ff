/*
 * field.h: reading the JSON answers of store/inspect.h in digestctl's
 * human output, where a missing or null member is simply shown as "-".
 * Everything borrowed from the object read.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

/* o[key], NULL when o is NULL, or the member is absent or null. */
struct json_object *field(struct json_object *o, const char *key);
/* An integer member (a numeric string too: records keep numbers as text); dflt otherwise. */
int64_t field_int(struct json_object *o, const char *key, int64_t dflt);
/* A string member, "" otherwise. */
const char *field_str(struct json_object *o, const char *key);
bool field_bool(struct json_object *o, const char *key);
/* Elements of an array (0 for NULL or a non-array), and one of them. */
size_t field_len(struct json_object *arr);
struct json_object *field_at(struct json_object *arr, size_t i);
