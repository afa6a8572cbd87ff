/* test_log.c: every JSON log line parses, keeps its request_id and ends in a newline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

/* Runs one log_emit with stderr captured; returns the bytes written (static). */
static const char *capture(const char *rid, const char *msg)
{
    static char out[8192];
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    size_t n;

    assert_non_null(f);
    dup2(fileno(f), STDERR_FILENO);
    log_emit(LOG_LEVEL_WARN, rid, "%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(f);
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

static void check_line(const char *rid, const char *msg)
{
    const char *line = capture(rid, msg);
    size_t len = strlen(line);
    struct json_object *o, *v;

    assert_true(len > 2 && line[len - 1] == '\n');
    assert_null(strchr(line, '\n') == line + len - 1 ? NULL : "two lines");
    o = json_tokener_parse(line);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "msg", &v));
    if (rid) {
        assert_true(json_object_object_get_ex(o, "request_id", &v));
        assert_string_equal(json_object_get_string(v), rid);
    }
    json_object_put(o);
}

static void short_lines(void **state)
{
    log_setup(LOG_LEVEL_DEBUG, true);
    check_line(NULL, "hello");
    check_line("3f1c2e9a-1111-4222-8333-444455556666", "with \"quotes\" and \\ and \n newline");
}

static void long_hostile_messages_stay_one_valid_line(void **state)
{
    char msg[4000];
    const char *rid = "3f1c2e9a-1111-4222-8333-444455556666";

    log_setup(LOG_LEVEL_DEBUG, true);
    memset(msg, '"', sizeof(msg) - 1); /* each one doubles when escaped */
    msg[sizeof(msg) - 1] = '\0';
    check_line(rid, msg);
    memset(msg, '\x01', sizeof(msg) - 1); /* each one becomes six bytes */
    check_line(rid, msg);
    /* A multi-byte character cut by the message cap must not leave half of it. */
    for (size_t i = 0; i + 3 < sizeof(msg); i += 3)
        memcpy(msg + i, "\xe2\x82\xac", 3); /* € */
    msg[sizeof(msg) - 1] = '\0';
    check_line(rid, msg);
    check_line(rid, "invalid \xff\xfe utf-8");
}

static void text_format_keeps_the_newline(void **state)
{
    char msg[6000];
    const char *line;

    log_setup(LOG_LEVEL_DEBUG, false);
    memset(msg, 'x', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    line = capture("rid", msg);
    assert_int_equal(line[strlen(line) - 1], '\n');
    log_setup(LOG_LEVEL_INFO, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(short_lines),
        cmocka_unit_test(long_hostile_messages_stay_one_valid_line),
        cmocka_unit_test(text_format_keeps_the_newline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
