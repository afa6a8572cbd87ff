/*
 * test_request_status.c: the five statuses of SPEC §5 (request_status.h):
 * names, parsing, which ones end a job, and that the status card has a
 * sentence for each (card.c keeps its own table of sentences: this is
 * where a status added here without one would show).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <string.h>

#include "store/request_status.h"
#include "teams/card.h"

static void names_are_the_spec_words(void **state)
{
    assert_string_equal(request_status_name(REQUEST_STATUS_QUEUED), "queued");
    assert_string_equal(request_status_name(REQUEST_STATUS_PROCESSING), "processing");
    assert_string_equal(request_status_name(REQUEST_STATUS_DELIVERED), "delivered");
    assert_string_equal(request_status_name(REQUEST_STATUS_FAILED), "failed");
    assert_string_equal(request_status_name(REQUEST_STATUS_DEAD), "dead");
    assert_string_equal(request_status_name((enum request_status)REQUEST_STATUS_COUNT), "");
    assert_string_equal(request_status_name((enum request_status) - 1), "");
}

static void parse_inverts_name(void **state)
{
    for (int i = 0; i < REQUEST_STATUS_COUNT; i++) {
        enum request_status s = REQUEST_STATUS_DEAD;

        assert_int_equal(request_status_parse(request_status_name((enum request_status)i), &s), 0);
        assert_int_equal(s, i);
    }
}

/* Exact words only: nothing else parses, and a refusal leaves *out alone. */
static void parse_refuses_anything_else(void **state)
{
    static const char *const bad[] = {"",        "Queued",      "DEAD",  " queued", "queued ",
                                      "deliver", "delivered\n", "stale", "0"};

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        enum request_status s = REQUEST_STATUS_PROCESSING;

        assert_int_equal(request_status_parse(bad[i], &s), DG_ERR_INVALID);
        assert_int_equal(s, REQUEST_STATUS_PROCESSING);
    }
    {
        enum request_status s = REQUEST_STATUS_PROCESSING;
        assert_int_equal(request_status_parse(NULL, &s), DG_ERR_INVALID);
    }
}

static void delivered_failed_and_dead_end_a_job(void **state)
{
    assert_false(request_status_ended(REQUEST_STATUS_QUEUED));
    assert_false(request_status_ended(REQUEST_STATUS_PROCESSING));
    assert_true(request_status_ended(REQUEST_STATUS_DELIVERED));
    assert_true(request_status_ended(REQUEST_STATUS_FAILED));
    assert_true(request_status_ended(REQUEST_STATUS_DEAD));
}

/* TextBlocks in the status card of a record whose status is name. */
static int status_card_text_blocks(const char *name)
{
    const char *fields[] = {"status"}, *values[] = {name};
    struct card_status_info in = {"req-1", fields, values, 1};
    struct json_object *card = card_status(&in);
    const char *text = json_object_to_json_string_ext(card, JSON_C_TO_STRING_PLAIN);
    int n = 0;

    for (const char *p = text; (p = strstr(p, "\"TextBlock\"")) != NULL; p++)
        n++;
    json_object_put(card);
    return n;
}

/* Every status gets its one sentence on the card; a word that is none gets none. */
static void status_card_explains_every_status(void **state)
{
    int unknown = status_card_text_blocks("bogus");

    for (int i = 0; i < REQUEST_STATUS_COUNT; i++)
        assert_int_equal(status_card_text_blocks(request_status_name((enum request_status)i)),
                         unknown + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_are_the_spec_words),
        cmocka_unit_test(parse_inverts_name),
        cmocka_unit_test(parse_refuses_anything_else),
        cmocka_unit_test(delivered_failed_and_dead_end_a_job),
        cmocka_unit_test(status_card_explains_every_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
