/* field.c: lenient reading of inspect answers (see field.h). */
#include "field.h"

#include <stdlib.h>

#include <json-c/json.h>

struct json_object *field(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;

    if (!o || !json_object_is_type(o, json_type_object))
        return NULL;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

int64_t field_int(struct json_object *o, const char *key, int64_t dflt)
{
    struct json_object *v = field(o, key);
    const char *s;
    char *end;
    long long n;

    if (v && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    if (!v || !json_object_is_type(v, json_type_string))
        return dflt;
    s = json_object_get_string(v);
    n = strtoll(s, &end, 10);
    return end != s && *end == '\0' ? (int64_t)n : dflt;
}

const char *field_str(struct json_object *o, const char *key)
{
    struct json_object *v = field(o, key);

    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

bool field_bool(struct json_object *o, const char *key)
{
    struct json_object *v = field(o, key);

    return v && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

size_t field_len(struct json_object *arr)
{
    return arr && json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
}

struct json_object *field_at(struct json_object *arr, size_t i)
{
    return i < field_len(arr) ? json_object_array_get_idx(arr, i) : NULL;
}
