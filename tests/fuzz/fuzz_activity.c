/*
 * fuzz_activity.c: libFuzzer target for the activity and command modules,
 * the first code to read a webhook body. Each input goes through what
 * webhook.c does (parse, fields, command text, command, conv key, reference)
 * and, as raw text, straight into command_parse. Besides the sanitizers it
 * checks the promises the modules make, aborting when one is broken.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "teams/activity.h"
#include "core/buf.h"
#include "teams/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char aud_advisors[] = "advisors", aud_c_suite[] = "c_suite", aud_global[] = "global";
static char *const audiences[] = {aud_advisors, aud_c_suite, aud_global};

static void check(int ok)
{
    if (!ok)
        abort();
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Every array of struct command is terminated and each field fits its kind. */
static void check_command(const struct command *cmd)
{
    size_t i;

    check(memchr(cmd->audience, '\0', sizeof(cmd->audience)) != NULL);
    check(memchr(cmd->test_email, '\0', sizeof(cmd->test_email)) != NULL);
    check(memchr(cmd->request_id, '\0', sizeof(cmd->request_id)) != NULL);
    check(memchr(cmd->word, '\0', sizeof(cmd->word)) != NULL);
    if (cmd->kind != COMMAND_DIGEST)
        check(!cmd->audience[0] && !cmd->test_email[0] && !cmd->word[0]);
    if (cmd->kind == COMMAND_HELP)
        check(cmd->error == COMMAND_OK);
    if (cmd->kind == COMMAND_DIGEST && cmd->error == COMMAND_OK) {
        int found = 0;

        for (i = 0; i < ARRAY_SIZE(audiences); i++)
            found |= strcmp(cmd->audience, audiences[i]) == 0;
        check(found);
        check(!cmd->test_email[0] || strchr(cmd->test_email, '@') != NULL);
    }
    check(command_kind_name(cmd->kind) != NULL);
    check(command_error_name(cmd->error) != NULL);
}

/* The command text is trimmed, single-spaced and never longer than text. */
static void check_text(const struct activity *a, const char *text)
{
    size_t n = strlen(text), i;

    check(n <= strlen(a->text));
    if (n == 0)
        return;
    check(!is_space(text[0]) && !is_space(text[n - 1]));
    for (i = 0; i < n; i++) {
        check(text[i] == ' ' || !is_space(text[i]));
        check(!(text[i] == ' ' && text[i + 1] == ' '));
    }
}

static void run_activity(const struct activity *a)
{
    struct activity_ref ref;
    struct command cmd;
    char *text, *key;
    size_t i;

    text = activity_command_text(a);
    check_text(a, text);
    command_parse(&cmd, text, audiences, ARRAY_SIZE(audiences));
    check_command(&cmd);
    xfree(text);

    key = activity_conv_key(a);
    check(strlen(key) == strlen(a->channel_id) + 1 + strlen(a->conversation_id));
    xfree(key);

    activity_reference(a, 1700000000000ULL, a->action[0] != '\0', &ref);
    for (i = 0; i < ACTIVITY_REF_FIELDS; i++)
        check(ref.fields[i] && ref.values[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct activity a;
    struct command cmd;
    char err[64];
    char *text;
    size_t bad_at = SIZE_MAX;

    if (activity_parse(&a, (const char *)data, size, &bad_at) == 0) {
        check(a.buf != NULL);
        if (activity_check_fields(&a, err, sizeof(err)) == 0) {
            check(err[0] == '\0');
            check(a.type[0] && a.id[0] && a.service_url[0] && a.conversation_id[0]);
            check(a.from_id[0] && a.recipient_id[0]);
            check(a.n_mentions <= ACTIVITY_MAX_MENTIONS);
            run_activity(&a);
        } else {
            check(err[0] != '\0');
        }
        activity_free(&a);
    } else {
        /* Refused: nothing held, and the offending byte is inside the body or its end. */
        check(a.buf == NULL && bad_at <= size);
    }

    /* The same bytes as chat text, cut at the first NUL like a C string. */
    text = xstrndup((const char *)data, size);
    command_parse(&cmd, text, audiences, ARRAY_SIZE(audiences));
    check_command(&cmd);
    xfree(text);
    return 0;
}
