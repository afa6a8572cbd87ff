/* test_json_strict.c: the one strict JSON parser and string reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "core/json_strict.h"

/* Parses a literal (its sizeof counts the NUL, which is not passed). */
#define OBJECT(lit, depth, utf8, out) json_strict_object(lit, sizeof(lit) - 1, depth, utf8, out)
#define VALUE(lit, depth, utf8, out) json_strict_value(lit, sizeof(lit) - 1, depth, utf8, out)

static void refused(int err, struct json_object *const *o)
{
    assert_int_equal(err, DG_ERR_BAD_JSON);
    assert_null(*o);
}

static void one_object_and_white_space(void **state)
{
    struct json_object *o;

    assert_int_equal(OBJECT("{\"a\":1} \r\n\t", 8, true, &o), 0);
    assert_true(json_object_is_type(o, json_type_object));
    json_object_put(o);
    refused(OBJECT("{\"a\":1} {}", 8, true, &o), &o);
    refused(OBJECT("{\"a\":1}\0{}", 8, true, &o), &o); /* a NUL does not end the body */
    refused(OBJECT("", 8, true, &o), &o);
    refused(OBJECT("{\"a\":1", 8, true, &o), &o);
}

/*
 * json-c's lenient extras are off: comments, trailing commas, single-quoted
 * values, bare words. (json-c 0.16 still takes a single-quoted member name:
 * json_strict.h.)
 */
static void strict_mode(void **state)
{
    struct json_object *o;

    refused(OBJECT("{\"a\":1 /* c */}", 8, true, &o), &o);
    refused(OBJECT("{\"a\":[1,]}", 8, true, &o), &o);
    refused(OBJECT("{\"a\":'b'}", 8, true, &o), &o);
    refused(OBJECT("{\"a\":True}", 8, true, &o), &o);
}

/* Every value is a level, a scalar included. */
static void depth_counts_every_level(void **state)
{
    struct json_object *o;

    assert_int_equal(OBJECT("{\"a\":1}", 2, true, &o), 0);
    json_object_put(o);
    refused(OBJECT("{\"a\":{\"b\":1}}", 2, true, &o), &o);
    assert_int_equal(OBJECT("{\"a\":{\"b\":1}}", 3, true, &o), 0);
    json_object_put(o);
}

static void utf8_checked_only_when_asked(void **state)
{
    struct json_object *o;

    refused(OBJECT("{\"a\":\"\xff\"}", 8, true, &o), &o);
    assert_int_equal(OBJECT("{\"a\":\"\xff\"}", 8, false, &o), 0);
    json_object_put(o);
}

/*
 * The kept tokener: a body that breaks off, or goes wrong, in the escape
 * after a high surrogate must not leave that surrogate to the next parse
 * (json-c 0.16's reset keeps it; the next string's first \u escape would
 * gain a U+FFFD).
 */
static void a_failed_parse_leaves_nothing_behind(void **state)
{
    static const char *const broken[] = {
        "{\"a\":\"\\ud800\\u00",
        "{\"a\":\"\\ud800\\uZZ\"}",
        "{\"a\":\"\\udbff\\u",
    };
    struct json_object *o;
    size_t i;

    for (i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        refused(json_strict_object(broken[i], strlen(broken[i]), 8, true, &o), &o);
        assert_int_equal(OBJECT("{\"a\":\"\\u0041\"}", 8, true, &o), 0);
        assert_string_equal(json_strict_string(o, "a"), "A");
        json_object_put(o);
    }
}

/* json_strict_value takes any value at the top, by the same rules. */
static void any_value_at_the_top(void **state)
{
    struct json_object *o;

    refused(OBJECT("[1,2]", 8, true, &o), &o);
    assert_int_equal(VALUE("[1,2]", 8, true, &o), 0);
    assert_true(json_object_is_type(o, json_type_array));
    json_object_put(o);
    assert_int_equal(VALUE("\"text\" ", 8, true, &o), 0);
    assert_string_equal(json_object_get_string(o), "text");
    json_object_put(o);
    assert_int_equal(VALUE("42 ", 8, true, &o), 0);
    assert_int_equal(json_object_get_int(o), 42);
    json_object_put(o);
    refused(VALUE("null", 8, true, &o), &o); /* json-c has no object for it */
    refused(VALUE("42", 8, true, &o), &o);   /* json-c waits for more digits */
    refused(VALUE("[1] [2]", 8, true, &o), &o);
    refused(VALUE("[1,]", 8, true, &o), &o);
    refused(VALUE("[[1]]", 2, true, &o), &o);
}

/* An escaped NUL must not read as a shorter string. */
static void strings_without_escaped_nul(void **state)
{
    struct json_object *o;

    assert_int_equal(OBJECT("{\"s\":\"ab\",\"nul\":\"a\\u0000b\",\"n\":1,\"e\":\"\"}", 8, true, &o),
                     0);
    assert_string_equal(json_strict_string(o, "s"), "ab");
    assert_string_equal(json_strict_string(o, "e"), "");
    assert_null(json_strict_string(o, "nul"));
    assert_null(json_strict_string(o, "n"));
    assert_null(json_strict_string(o, "absent"));
    assert_string_equal(json_strict_string_value(json_object_object_get(o, "s")), "ab");
    assert_null(json_strict_string_value(json_object_object_get(o, "nul")));
    assert_null(json_strict_string_value(json_object_object_get(o, "n")));
    assert_null(json_strict_string_value(NULL));
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_object_and_white_space),
        cmocka_unit_test(strict_mode),
        cmocka_unit_test(depth_counts_every_level),
        cmocka_unit_test(utf8_checked_only_when_asked),
        cmocka_unit_test(a_failed_parse_leaves_nothing_behind),
        cmocka_unit_test(any_value_at_the_top),
        cmocka_unit_test(strings_without_escaped_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
