/*
 * test_keys.c: the key names of SPEC §5 (keys.h), exactly as the spec
 * spells them, for the default prefix and others, allocated and appended.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "store/keys.h"

/* Takes k (owned) and checks it. */
static void assert_key(char *k, const char *want)
{
    assert_string_equal(k, want);
    xfree(k);
}

static void names_follow_the_spec(void **state)
{
    assert_key(keys_stream("digest"), "{digest}:requests");
    assert_key(keys_dead("digest"), "{digest}:dead");
    assert_key(keys_schema("digest"), "{digest}:schema");
    assert_key(keys_request("digest", "0f8e-1"), "{digest}:req:0f8e-1");
    assert_key(keys_conv("digest", "msteams:19:abc@thread.v2"),
               "{digest}:conv:msteams:19:abc@thread.v2");
    assert_key(keys_dedup("digest", "msteams:c1", "a1"), "{digest}:dedup:msteams:c1:a1");
    assert_key(keys_procs("digest"), "{digest}:procs");
    assert_key(keys_proc("digest", "web-1:4242"), "{digest}:proc:web-1:4242");
    assert_key(keys_minute("digest", 28333333), "{digest}:minute:28333333");
    assert_string_equal(KEYS_GROUP, "workers");
}

/* What a script appends an id to must be what keys_request puts before it. */
static void request_prefix_is_the_record_key_without_id(void **state)
{
    char *prefix = keys_request_prefix("p");
    char *rec = keys_request("p", "id-7");

    assert_string_equal(prefix, "{p}:req:");
    assert_int_equal(strncmp(rec, prefix, strlen(prefix)), 0);
    assert_string_equal(rec + strlen(prefix), "id-7");
    xfree(prefix);
    xfree(rec);
}

/* Scripts that learn a process name or a minute in Redis append it to these. */
static void proc_and_minute_prefixes(void **state)
{
    assert_key(keys_proc_prefix("p"), "{p}:proc:");
    assert_key(keys_minute_prefix("p"), "{p}:minute:");
}

/* Every key of one deployment starts with its hash tag, whatever the prefix holds. */
static void every_key_carries_the_prefix_hash_tag(void **state)
{
    static const char *const prefixes[] = {"digest", "staging:eu", "a", "x y"};

    for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
        char tag[64];
        char *keys[9];

        snprintf(tag, sizeof(tag), "{%s}:", prefixes[i]);
        keys[0] = keys_stream(prefixes[i]);
        keys[1] = keys_dead(prefixes[i]);
        keys[2] = keys_request(prefixes[i], "r");
        keys[3] = keys_conv(prefixes[i], "c");
        keys[4] = keys_dedup(prefixes[i], "c", "a");
        keys[5] = keys_procs(prefixes[i]);
        keys[6] = keys_proc(prefixes[i], "h:1");
        keys[7] = keys_minute(prefixes[i], 1);
        keys[8] = keys_schema(prefixes[i]);
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
            assert_int_equal(strncmp(keys[k], tag, strlen(tag)), 0);
            xfree(keys[k]);
        }
    }
}

/* The appenders write the same names, one after the other, with no separator of their own. */
static void appenders_match_the_builders(void **state)
{
    struct buf b;

    buf_init(&b, 256);
    assert_int_equal(keys_append_stream(&b, "digest"), 0);
    assert_int_equal(buf_append(&b, "|", 1), 0);
    assert_int_equal(keys_append_request(&b, "digest", "r1"), 0);
    assert_int_equal(buf_append(&b, "|", 1), 0);
    assert_int_equal(keys_append_conv(&b, "digest", "msteams:c1"), 0);
    assert_int_equal(buf_append(&b, "|", 1), 0);
    assert_int_equal(keys_append_dedup(&b, "digest", "msteams:c1", "a1"), 0);
    assert_string_equal(buf_cstr(&b), "{digest}:requests|{digest}:req:r1|{digest}:conv:msteams:c1|"
                                      "{digest}:dedup:msteams:c1:a1");
    buf_free(&b);
}

static void appender_reports_a_full_buffer(void **state)
{
    struct buf b;

    buf_init(&b, 16);
    assert_int_equal(keys_append_dedup(&b, "digest", "msteams:c1", "a1"), DG_ERR_TOO_LARGE);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_follow_the_spec),
        cmocka_unit_test(request_prefix_is_the_record_key_without_id),
        cmocka_unit_test(proc_and_minute_prefixes),
        cmocka_unit_test(every_key_carries_the_prefix_hash_tag),
        cmocka_unit_test(appenders_match_the_builders),
        cmocka_unit_test(appender_reports_a_full_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
