/*
 * test_command.c: command_parse on the texts users type: case, spacing,
 * audiences, test emails, status ids, help and garbage, and words too long
 * for the fixed arrays of struct command.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "teams/command.h"

/* Writable like config's list (command_parse takes char *const *). */
static char aud_advisors[] = "advisors", aud_c_suite[] = "c_suite", aud_global[] = "global";
static char *const audiences[] = {aud_advisors, aud_c_suite, aud_global};

static struct command parse(const char *text)
{
    struct command cmd;

    /* Poison first: command_parse must set every field itself. */
    memset(&cmd, 0x5a, sizeof(cmd));
    command_parse(&cmd, text, audiences, ARRAY_SIZE(audiences));
    return cmd;
}

static void expect_digest(const char *text, const char *audience, const char *email)
{
    struct command cmd = parse(text);

    assert_int_equal(cmd.kind, COMMAND_DIGEST);
    assert_int_equal(cmd.error, COMMAND_OK);
    assert_string_equal(cmd.audience, audience);
    assert_string_equal(cmd.test_email, email);
    assert_string_equal(cmd.request_id, "");
}

static void expect_error(const char *text, enum command_kind kind, enum command_error err)
{
    struct command cmd = parse(text);

    assert_int_equal(cmd.kind, kind);
    assert_int_equal(cmd.error, err);
}

static void test_digest_basic(void **state)
{
    expect_digest("digest advisors", "advisors", "");
    expect_digest("DIGEST Advisors", "advisors", "");
    expect_digest("Digest C_SUITE", "c_suite", "");
    expect_digest("digest global", "global", "");
    expect_digest("  \t digest \r\n  advisors \n ", "advisors", "");
    expect_digest("digest\tadvisors", "advisors", "");
}

static void test_digest_audience(void **state)
{
    struct command cmd = parse("digest Sales");

    assert_int_equal(cmd.kind, COMMAND_DIGEST);
    assert_int_equal(cmd.error, COMMAND_BAD_AUDIENCE);
    assert_string_equal(cmd.word, "Sales");
    assert_string_equal(cmd.audience, "");

    cmd = parse("digest");
    assert_int_equal(cmd.kind, COMMAND_DIGEST);
    assert_int_equal(cmd.error, COMMAND_BAD_AUDIENCE);
    assert_string_equal(cmd.word, "");

    cmd = parse("digest   ");
    assert_int_equal(cmd.error, COMMAND_BAD_AUDIENCE);

    /* A prefix or extension of a valid audience is not that audience. */
    expect_error("digest advisor", COMMAND_DIGEST, COMMAND_BAD_AUDIENCE);
    expect_error("digest advisorsx", COMMAND_DIGEST, COMMAND_BAD_AUDIENCE);
    expect_error("digest c-suite", COMMAND_DIGEST, COMMAND_BAD_AUDIENCE);
    /* The audience error wins over what follows. */
    expect_error("digest nope bob@example.com extra", COMMAND_DIGEST, COMMAND_BAD_AUDIENCE);
}

static void test_digest_email(void **state)
{
    static const char *const bad[] = {
        "digest advisors bob",
        "digest advisors bob@",
        "digest advisors @example.com",
        "digest advisors bob@example",
        "digest advisors bob@@example.com",
        "digest advisors bob@ex@ample.com",
        "digest advisors bob@.example.com",
        "digest advisors bob@example.com.",
        "digest advisors bob@example..com",
        "digest advisors bob@-example.com",
        "digest advisors bob@example-.com",
        "digest advisors bob@exa_mple.com",
        "digest advisors bob@1.2.3.4",
        "digest advisors .bob@example.com",
        "digest advisors bob.@example.com",
        "digest advisors b..ob@example.com",
        "digest advisors b(o)b@example.com",
        "digest advisors \"bob\"@example.com",
        "digest advisors bob@exa\xc3\xa9mple.com",
        "digest advisors <mailto:bob@example.com>",
    };
    size_t i;

    expect_digest("digest advisors bob@example.com", "advisors", "bob@example.com");
    expect_digest("digest advisors Bob.Smith+test@Mail.Example.co.uk", "advisors",
                  "Bob.Smith+test@Mail.Example.co.uk");
    expect_digest("digest global a_b-c@x-y.example.org  ", "global", "a_b-c@x-y.example.org");
    expect_digest("digest global o'neil@example.com", "global", "o'neil@example.com");
    expect_digest("digest global a@xn--p1ai.xn--p1ai", "global", "a@xn--p1ai.xn--p1ai");

    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        struct command cmd = parse(bad[i]);

        assert_int_equal(cmd.kind, COMMAND_DIGEST);
        assert_int_equal(cmd.error, COMMAND_BAD_EMAIL);
        assert_string_equal(cmd.test_email, "");
    }
}

static void test_digest_extra_words(void **state)
{
    expect_error("digest advisors bob@example.com now", COMMAND_DIGEST, COMMAND_BAD_ARGS);
    expect_error("digest advisors bob@example.com bob@example.com", COMMAND_DIGEST,
                 COMMAND_BAD_ARGS);
    /* A second word that is not an email is reported as a bad email. */
    expect_error("digest advisors please", COMMAND_DIGEST, COMMAND_BAD_EMAIL);
}

/* Builds "digest advisors <local>@<domain>" with the given part sizes. */
static struct command parse_email_sized(size_t local, size_t label, size_t labels)
{
    struct buf b;
    struct command cmd;
    char *text;
    size_t i, j;

    buf_init(&b, 1 << 16);
    assert_int_equal(buf_append_str(&b, "digest advisors "), 0);
    for (i = 0; i < local; i++)
        assert_int_equal(buf_append(&b, "a", 1), 0);
    assert_int_equal(buf_append(&b, "@", 1), 0);
    for (i = 0; i < labels; i++) {
        for (j = 0; j < label; j++)
            assert_int_equal(buf_append(&b, "d", 1), 0);
        assert_int_equal(buf_append_str(&b, i + 1 < labels ? "." : ".com"), 0);
    }
    text = buf_take(&b);
    cmd = parse(text);
    xfree(text);
    return cmd;
}

static void test_email_limits(void **state)
{
    struct command cmd;

    cmd = parse_email_sized(64, 10, 1);
    assert_int_equal(cmd.error, COMMAND_OK);
    assert_int_equal(strlen(cmd.test_email), 64 + 1 + 10 + 4);
    assert_int_equal(parse_email_sized(65, 10, 1).error, COMMAND_BAD_EMAIL);
    assert_int_equal(parse_email_sized(10, 63, 1).error, COMMAND_OK);
    assert_int_equal(parse_email_sized(10, 64, 1).error, COMMAND_BAD_EMAIL);
    /* 64 + 1 + (3 * 61 + 2 dots) + ".com" = 254 bytes: the longest accepted. */
    cmd = parse_email_sized(64, 61, 3);
    assert_int_equal(cmd.error, COMMAND_OK);
    assert_int_equal(strlen(cmd.test_email), COMMAND_MAX_EMAIL);
    /* One byte more must be refused, never truncated into the array. */
    cmd = parse_email_sized(64, 62, 3);
    assert_int_equal(cmd.error, COMMAND_BAD_EMAIL);
    assert_string_equal(cmd.test_email, "");
    assert_int_equal(parse_email_sized(64, 63, 40).error, COMMAND_BAD_EMAIL);
}

static void test_long_audience(void **state)
{
    char text[512];
    struct command cmd;

    /* 200 letters: an error, and the echo is cut to COMMAND_MAX_AUDIENCE. */
    memcpy(text, "digest ", 7);
    memset(text + 7, 'x', 200);
    text[207] = '\0';
    cmd = parse(text);
    assert_int_equal(cmd.error, COMMAND_BAD_AUDIENCE);
    assert_int_equal(strlen(cmd.word), COMMAND_MAX_AUDIENCE);
    assert_string_equal(cmd.audience, "");

    /* Cut never splits a UTF-8 sequence: 63 ASCII bytes then "é". */
    memset(text + 7, 'y', 63);
    memcpy(text + 70, "\xc3\xa9zz", 5);
    cmd = parse(text);
    assert_int_equal(cmd.error, COMMAND_BAD_AUDIENCE);
    assert_int_equal(strlen(cmd.word), 63);

    /* Exactly COMMAND_MAX_AUDIENCE bytes fits in full (and is unknown). */
    memset(text + 7, 'z', COMMAND_MAX_AUDIENCE);
    text[7 + COMMAND_MAX_AUDIENCE] = '\0';
    cmd = parse(text);
    assert_int_equal(cmd.error, COMMAND_BAD_AUDIENCE);
    assert_string_equal(cmd.word, text + 7);
}

static void test_status(void **state)
{
    struct command cmd = parse("status");

    assert_int_equal(cmd.kind, COMMAND_STATUS);
    assert_int_equal(cmd.error, COMMAND_OK);
    assert_string_equal(cmd.request_id, "");
    assert_string_equal(cmd.audience, "");

    cmd = parse("STATUS  3f2b1c9e-0d7a-4e1b-9b7c-2a6f5e4d3c2b ");
    assert_int_equal(cmd.kind, COMMAND_STATUS);
    assert_int_equal(cmd.error, COMMAND_OK);
    assert_string_equal(cmd.request_id, "3f2b1c9e-0d7a-4e1b-9b7c-2a6f5e4d3c2b");

    expect_error("status abc def", COMMAND_STATUS, COMMAND_BAD_ARGS);
    expect_error("status abc_def", COMMAND_STATUS, COMMAND_BAD_ARGS);
    expect_error("status ../etc", COMMAND_STATUS, COMMAND_BAD_ARGS);
    expect_error("status *", COMMAND_STATUS, COMMAND_BAD_ARGS);
    expect_error("status a:b", COMMAND_STATUS, COMMAND_BAD_ARGS);
}

static void test_status_long_id(void **state)
{
    char text[256];
    struct command cmd;

    memcpy(text, "status ", 7);
    memset(text + 7, 'a', COMMAND_MAX_REQUEST_ID);
    text[7 + COMMAND_MAX_REQUEST_ID] = '\0';
    cmd = parse(text);
    assert_int_equal(cmd.error, COMMAND_OK);
    assert_string_equal(cmd.request_id, text + 7);

    memset(text + 7, 'a', COMMAND_MAX_REQUEST_ID + 1);
    text[8 + COMMAND_MAX_REQUEST_ID] = '\0';
    cmd = parse(text);
    assert_int_equal(cmd.error, COMMAND_BAD_ARGS);
    assert_string_equal(cmd.request_id, "");
}

static void test_help_and_garbage(void **state)
{
    static const char *const texts[] = {
        "help",
        "HELP",
        "  Help  ",
        "help me please",
        "",
        "   \n\t ",
        "hello",
        "digests advisors",
        "dig est advisors",
        "statusx",
        "<at>Bot</at>",
        "\xff\xfe garbage \x01\x02",
        "?",
        "advisors digest",
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(texts); i++) {
        struct command cmd = parse(texts[i]);

        assert_int_equal(cmd.kind, COMMAND_HELP);
        assert_int_equal(cmd.error, COMMAND_OK);
        assert_string_equal(cmd.audience, "");
        assert_string_equal(cmd.test_email, "");
        assert_string_equal(cmd.request_id, "");
        assert_string_equal(cmd.word, "");
    }
    expect_error(NULL, COMMAND_HELP, COMMAND_OK);
}

static void test_long_text(void **state)
{
    size_t n = 100000;
    char *text = xmalloc(n + 1);
    struct command cmd;

    /* One enormous word after each keyword. */
    memcpy(text, "digest ", 7);
    memset(text + 7, 'q', n - 7);
    text[n] = '\0';
    cmd = parse(text);
    assert_int_equal(cmd.error, COMMAND_BAD_AUDIENCE);
    assert_int_equal(strlen(cmd.word), COMMAND_MAX_AUDIENCE);

    memcpy(text, "digest advisors ", 16);
    cmd = parse(text);
    assert_int_equal(cmd.error, COMMAND_BAD_EMAIL);

    memcpy(text, "status ", 7);
    cmd = parse(text);
    assert_int_equal(cmd.error, COMMAND_BAD_ARGS);

    memset(text, 'h', n);
    cmd = parse(text);
    assert_int_equal(cmd.kind, COMMAND_HELP);
    xfree(text);
}

static void test_names(void **state)
{
    assert_string_equal(command_kind_name(COMMAND_HELP), "help");
    assert_string_equal(command_kind_name(COMMAND_DIGEST), "digest");
    assert_string_equal(command_kind_name(COMMAND_STATUS), "status");
    assert_string_equal(command_error_name(COMMAND_OK), "ok");
    assert_string_equal(command_error_name(COMMAND_BAD_AUDIENCE), "bad_audience");
    assert_string_equal(command_error_name(COMMAND_BAD_EMAIL), "bad_email");
    assert_string_equal(command_error_name(COMMAND_BAD_ARGS), "bad_args");
}

static void test_no_audiences(void **state)
{
    struct command cmd;

    command_parse(&cmd, "digest advisors", NULL, 0);
    assert_int_equal(cmd.kind, COMMAND_DIGEST);
    assert_int_equal(cmd.error, COMMAND_BAD_AUDIENCE);
    assert_string_equal(cmd.word, "advisors");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_basic),
        cmocka_unit_test(test_digest_audience),
        cmocka_unit_test(test_digest_email),
        cmocka_unit_test(test_digest_extra_words),
        cmocka_unit_test(test_email_limits),
        cmocka_unit_test(test_long_audience),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_status_long_id),
        cmocka_unit_test(test_help_and_garbage),
        cmocka_unit_test(test_long_text),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_no_audiences),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
