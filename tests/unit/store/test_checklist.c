/*
 * test_checklist.c: the pre-rollout checklist (checklist.h) judged from
 * snapshot and facts JSON shaped as inspect.h answers them: a healthy
 * system passes every item, and each broken item fails on its own with its
 * evidence, while a quiet system (no traffic) is not called broken.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "store/checklist.h"

/* A healthy snapshot: one live worker reading the group, a job delivered, nothing stuck. */
static const char healthy_stats[] =
    "{\"groups\":[{\"name\":\"workers\",\"consumers\":1,\"pending\":0,\"entries_read\":5,"
    "\"lag\":0}],"
    "\"consumers\":[{\"group\":\"workers\",\"name\":\"h:1\",\"pending\":0,\"idle_ms\":100,"
    "\"alive\":true}],"
    "\"oldest_pending\":null,\"stuck\":null,\"stuck_after_ms\":120000,"
    "\"rates\":{\"this_minute\":{\"enqueued\":1,\"delivered\":1},"
    "\"last_hour\":{\"enqueued\":5,\"delivered\":5}},"
    "\"procs\":[{\"name\":\"h:1\",\"role\":\"worker\",\"beat_age_ms\":1200}]}";

static const char healthy_facts[] =
    "{\"redis_version\":\"7.0.15\",\"newest_entry\":{\"id\":\"9-0\",\"request_id\":\"r-9\","
    "\"record_status\":\"delivered\"},\"newest_dead\":null}";

/* Evaluates stats and facts text; returns the item named name (the whole answer in *all). */
static struct json_object *judge(const char *stats, const char *facts, bool scale_to_zero,
                                 struct json_object **all)
{
    struct json_object *s = json_tokener_parse(stats), *f = json_tokener_parse(facts);

    assert_non_null(s);
    assert_non_null(f);
    *all = checklist_evaluate(s, f, scale_to_zero);
    json_object_put(s);
    json_object_put(f);
    return *all;
}

static struct json_object *get(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;

    assert_true(json_object_object_get_ex(o, key, &v));
    return v;
}

/* The one item that failed (asserting there is exactly one), by name, with its evidence. */
static void assert_only_failure(struct json_object *all, const char *name, const char *evidence)
{
    struct json_object *items = get(all, "items");
    int failed = 0;

    assert_false(json_object_get_boolean(get(all, "ok")));
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        struct json_object *it = json_object_array_get_idx(items, i);

        if (json_object_get_boolean(get(it, "ok")))
            continue;
        failed++;
        assert_string_equal(json_object_get_string(get(it, "item")), name);
        if (!strstr(json_object_get_string(get(it, "evidence")), evidence))
            print_error("evidence '%s' lacks '%s'\n", json_object_get_string(get(it, "evidence")),
                        evidence);
        assert_non_null(strstr(json_object_get_string(get(it, "evidence")), evidence));
    }
    assert_int_equal(failed, 1);
    assert_int_equal(json_object_get_int(get(all, "passed")), CHECKLIST_ITEMS - 1);
}

/* The healthy text with one part replaced. */
static char *with(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = xmalloc(n);

    assert_non_null(at);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

static void a_healthy_system_passes_every_item(void **state)
{
    struct json_object *all;

    judge(healthy_stats, healthy_facts, false, &all);
    assert_true(json_object_get_boolean(get(all, "ok")));
    assert_int_equal(json_object_get_int(get(all, "passed")), CHECKLIST_ITEMS);
    assert_int_equal(json_object_array_length(get(all, "items")), CHECKLIST_ITEMS);
    /* The version on its own, for a script that gates KEDA's lag mode on it. */
    assert_string_equal(json_object_get_string(get(all, "redis_version")), "7.0.15");
    json_object_put(all);
}

static void each_broken_item_fails_alone(void **state)
{
    static const struct {
        bool stats; /* the change is to the snapshot (else the facts) */
        const char *from, *to, *item, *evidence;
    } cases[] = {
        {true, "\"role\":\"worker\"", "\"role\":\"api\"", "a live worker", "no heartbeat"},
        {true, "{\"name\":\"workers\"", "{\"name\":\"others\"", "the group exists and is read",
         "no consumer group 'workers'"},
        {true, "\"stuck\":null",
         "\"stuck\":{\"id\":\"3-0\",\"consumer\":\"gone:1\",\"idle_ms\":840000,\"deliveries\":2}",
         "nothing stuck", "3-0 held by gone:1 idle 14m (limit 2m)"},
        {false, "\"record_status\":\"delivered\"", "\"record_status\":null", "recent audit records",
         "no audit record for request 'r-9'"},
        {true, "\"delivered\":1},\"last_hour\":{\"enqueued\":5,\"delivered\":5}",
         "\"delivered\":0},\"last_hour\":{\"enqueued\":5,\"delivered\":0}",
         "a job delivered end to end recently", "enqueued in the last hour, none delivered"},
        {false, "\"newest_dead\":null",
         "\"newest_dead\":{\"request_id\":\"r-3\",\"reason\":\"upstream 400\"}",
         "no dead jobs in the last hour", "1 in the last hour; newest: request r-3, upstream 400"},
        {true, "\"last_hour\":{\"enqueued\":5,\"delivered\":5}",
         "\"last_hour\":{\"enqueued\":5,\"delivered\":5,\"dead\":2,\"failed\":1}",
         "no dead jobs in the last hour", "3 in the last hour"},
        {false, "7.0.15", "6.2.14", "a Redis version digestd supports",
         "Redis 6.2.14 (digestd and KEDA's lag mode need 7.0 or later)"},
        {false, "\"redis_version\":\"7.0.15\"", "\"redis_version\":\"\"",
         "a Redis version digestd supports", "Redis of unknown version"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *stats = cases[i].stats ? with(healthy_stats, cases[i].from, cases[i].to)
                                     : xstrdup(healthy_stats);
        char *facts = cases[i].stats ? xstrdup(healthy_facts)
                                     : with(healthy_facts, cases[i].from, cases[i].to);
        struct json_object *all;

        judge(stats, facts, false, &all);
        assert_only_failure(all, cases[i].item, cases[i].evidence);
        json_object_put(all);
        xfree(stats);
        xfree(facts);
    }
}

/* No live worker and work waiting: the group is not read either (two items fail). */
static void a_backlog_without_workers_fails_both(void **state)
{
    char *a = with(healthy_stats, "\"role\":\"worker\"", "\"role\":\"api\"");
    char *b = with(a, "\"alive\":true", "\"alive\":false");
    char *stats = with(b, "\"lag\":0", "\"lag\":7");
    struct json_object *all;

    judge(stats, healthy_facts, true, &all); /* scale-to-zero does not excuse a backlog */
    assert_int_equal(json_object_get_int(get(all, "passed")), CHECKLIST_ITEMS - 2);
    json_object_put(all);
    xfree(a);
    xfree(b);
    xfree(stats);
}

/* Workers scaled to zero with nothing waiting pass with --scale-to-zero, fail without. */
static void scale_to_zero_accepts_no_worker_while_nothing_waits(void **state)
{
    char *a = with(healthy_stats, "\"role\":\"worker\"", "\"role\":\"api\"");
    char *stats = with(a, "\"alive\":true", "\"alive\":false");
    struct json_object *all;

    judge(stats, healthy_facts, true, &all);
    assert_true(json_object_get_boolean(get(all, "ok")));
    json_object_put(all);
    judge(stats, healthy_facts, false, &all);
    assert_only_failure(all, "a live worker", "no heartbeat");
    json_object_put(all);
    xfree(a);
    xfree(stats);
}

/* Jobs of this minute only may not be done yet: not counted against the system. */
static void jobs_of_this_minute_are_given_time(void **state)
{
    char *a = with(healthy_stats, "\"this_minute\":{\"enqueued\":1,\"delivered\":1}",
                   "\"this_minute\":{\"enqueued\":2,\"delivered\":0}");
    char *stats = with(a, "\"last_hour\":{\"enqueued\":5,\"delivered\":5}",
                       "\"last_hour\":{\"enqueued\":2,\"delivered\":0}");
    struct json_object *all;

    judge(stats, healthy_facts, false, &all);
    assert_true(json_object_get_boolean(get(all, "ok")));
    assert_non_null(strstr(json_object_to_json_string(all), "none yet: 2 enqueued this minute"));
    json_object_put(all);
    xfree(a);
    xfree(stats);
}

/* No traffic at all: nothing to deliver and no record to find is "none in the window". */
static void a_quiet_system_is_not_broken(void **state)
{
    static const char facts[] = "{\"redis_version\":\"7.2.4\",\"newest_entry\":null}";
    char *a = with(healthy_stats, "\"this_minute\":{\"enqueued\":1,\"delivered\":1}",
                   "\"this_minute\":{}");
    char *stats = with(a, "\"last_hour\":{\"enqueued\":5,\"delivered\":5}", "\"last_hour\":{}");
    struct json_object *all;

    judge(stats, facts, false, &all);
    assert_true(json_object_get_boolean(get(all, "ok")));
    assert_non_null(strstr(json_object_to_json_string(all), "none in the window"));
    json_object_put(all);
    xfree(a);
    xfree(stats);
}

static void redis_versions(void **state)
{
    assert_true(checklist_redis_version_ok("7.0.15"));
    assert_true(checklist_redis_version_ok("7.4.0"));
    assert_true(checklist_redis_version_ok("8.0.1"));
    assert_true(checklist_redis_version_ok("10"));
    assert_false(checklist_redis_version_ok("6.2.14"));
    assert_false(checklist_redis_version_ok(""));
    assert_false(checklist_redis_version_ok("x7"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_healthy_system_passes_every_item),
        cmocka_unit_test(each_broken_item_fails_alone),
        cmocka_unit_test(a_backlog_without_workers_fails_both),
        cmocka_unit_test(scale_to_zero_accepts_no_worker_while_nothing_waits),
        cmocka_unit_test(jobs_of_this_minute_are_given_time),
        cmocka_unit_test(a_quiet_system_is_not_broken),
        cmocka_unit_test(redis_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
