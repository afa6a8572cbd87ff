/* json_build.c: checked json-c builders (see json_build.h). */
#include "core/json_build.h"

#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

/* No log_* call here: it might allocate, and allocation just failed. */
static void oom(void)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"json: out of memory\"}\n");
    abort();
}

static struct json_object *checked(struct json_object *o)
{
    if (!o)
        oom();
    return o;
}

struct json_object *jobj(void)
{
    return checked(json_object_new_object());
}

struct json_object *jarr(void)
{
    return checked(json_object_new_array());
}

struct json_object *jstr(const char *s)
{
    return checked(json_object_new_string(s ? s : ""));
}

struct json_object *jstr_len(const char *s, size_t len)
{
    /* json-c counts in int; a Redis value past 2 GiB is not ours to show. */
    if (len > (size_t)INT32_MAX)
        len = (size_t)INT32_MAX;
    return checked(json_object_new_string_len(s ? s : "", s ? (int)len : 0));
}

struct json_object *jint64(int64_t v)
{
    return checked(json_object_new_int64(v));
}

struct json_object *jbool(bool v)
{
    return checked(json_object_new_boolean(v));
}

void jset(struct json_object *obj, const char *key, struct json_object *val)
{
    if (json_object_object_add(obj, key, val) != 0) {
        json_object_put(val);
        oom();
    }
}

void jset_str(struct json_object *obj, const char *key, const char *s)
{
    jset(obj, key, jstr(s));
}

void jpush(struct json_object *arr, struct json_object *val)
{
    if (json_object_array_add(arr, val) != 0) {
        json_object_put(val);
        oom();
    }
}
