/*
 * command.c: command text → struct command (SPEC §4). Words are split on
 * ASCII white space; nothing is allocated and every copy into the fixed
 * arrays of struct command is length-checked first, so an over-long
 * audience or email is an error, never a silent truncation.
 */
#include "teams/command.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define EMAIL_MAX_LOCAL 64   /* RFC 5321 §4.5.3.1.1 */
#define EMAIL_MAX_DOMAIN 253 /* RFC 1035 name length without the root dot */
#define EMAIL_MAX_LABEL 63   /* RFC 1035 label length */

/* One word of the text: borrowed, not NUL-terminated. */
struct word {
    const char *p;
    size_t n;
};

/* ASCII only: activity_command_text already turned U+00A0 into spaces. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Locale-free: the C library's versions depend on setlocale and on a cast. */
static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char to_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Splits the next word off *s; false when only white space is left. */
static bool next_word(const char **s, struct word *w)
{
    const char *p = *s;

    while (is_space(*p))
        p++;
    if (!*p)
        return false;
    w->p = p;
    while (*p && !is_space(*p))
        p++;
    w->n = (size_t)(p - w->p);
    *s = p;
    return true;
}

/* Case-insensitive keyword match on the whole word ("digests" is not "digest"). */
static bool word_is(const struct word *w, const char *keyword)
{
    return w->n == strlen(keyword) && strncasecmp(w->p, keyword, w->n) == 0;
}

/*
 * Copies at most max bytes of w into dst (max + 1 bytes of room). The word
 * goes back to the user in an error card, so a cut never splits a UTF-8
 * sequence: that would make the card's JSON invalid.
 */
static void copy_truncated(char *dst, size_t max, const struct word *w)
{
    size_t n = w->n;

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)w->p[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, w->p, n);
    dst[n] = '\0';
}

/* Lowercases the audience word and accepts it only when it is configured. */
static enum command_error parse_audience(struct command *cmd, const struct word *w,
                                         char *const *audiences, size_t n)
{
    char lower[COMMAND_MAX_AUDIENCE + 1];
    size_t i;

    copy_truncated(cmd->word, COMMAND_MAX_AUDIENCE, w);
    if (w->n > COMMAND_MAX_AUDIENCE)
        return COMMAND_BAD_AUDIENCE;
    for (i = 0; i < w->n; i++)
        lower[i] = to_lower(w->p[i]);
    lower[w->n] = '\0';
    /* The configured list is lowercase already (config lowers it at load). */
    for (i = 0; i < n; i++) {
        if (strcmp(lower, audiences[i]) == 0) {
            memcpy(cmd->audience, lower, w->n + 1);
            return COMMAND_OK;
        }
    }
    return COMMAND_BAD_AUDIENCE;
}

/* Dot-atom local part: RFC 5322 atext, dots only between atoms. */
static bool email_local_ok(const char *p, size_t n)
{
    size_t i;

    if (n == 0 || n > EMAIL_MAX_LOCAL || p[0] == '.' || p[n - 1] == '.')
        return false;
    for (i = 0; i < n; i++) {
        /* p[n - 1] is not a dot, so p[i + 1] is read only inside the word. */
        if (p[i] == '.' && p[i + 1] == '.')
            return false;
        if (!is_alnum(p[i]) && (p[i] == '\0' || !strchr("!#$%&'*+/=?^_`{|}~.-", p[i])))
            return false;
    }
    return true;
}

/*
 * Host name: at least two labels of [A-Za-z0-9-], none empty, none starting
 * or ending with '-'; the last one not all digits (no bare IPv4 addresses).
 */
static bool email_domain_ok(const char *p, size_t n)
{
    size_t i, start = 0, labels = 0;
    bool digits_only = true;

    if (n == 0 || n > EMAIL_MAX_DOMAIN)
        return false;
    for (i = 0; i <= n; i++) {
        if (i == n || p[i] == '.') {
            size_t len = i - start;

            if (len == 0 || len > EMAIL_MAX_LABEL || p[start] == '-' || p[i - 1] == '-')
                return false;
            labels++;
            if (i < n)
                digits_only = true;
            start = i + 1;
            continue;
        }
        if (!is_alnum(p[i]) && p[i] != '-')
            return false;
        if (!(p[i] >= '0' && p[i] <= '9'))
            digits_only = false;
    }
    return labels >= 2 && !digits_only;
}

/* A practical address check: one '@', a dot-atom local part, a host name. */
static bool email_ok(const struct word *w)
{
    const char *at = memchr(w->p, '@', w->n);
    size_t local;

    if (!at || w->n > COMMAND_MAX_EMAIL)
        return false;
    local = (size_t)(at - w->p);
    if (memchr(at + 1, '@', w->n - local - 1))
        return false;
    return email_local_ok(w->p, local) && email_domain_ok(at + 1, w->n - local - 1);
}

/* "digest <audience> [test-email]": s points after the keyword. */
static void parse_digest(struct command *cmd, const char *s, char *const *audiences, size_t n)
{
    struct word w;

    cmd->kind = COMMAND_DIGEST;
    if (!next_word(&s, &w)) {
        cmd->error = COMMAND_BAD_AUDIENCE;
        return;
    }
    cmd->error = parse_audience(cmd, &w, audiences, n);
    if (cmd->error != COMMAND_OK)
        return;
    /* A second word can only be the test email: anything else is reported
     * as a bad email, the more helpful card for "digest advisors me". */
    if (next_word(&s, &w)) {
        if (!email_ok(&w)) {
            cmd->error = COMMAND_BAD_EMAIL;
            return;
        }
        memcpy(cmd->test_email, w.p, w.n);
        cmd->test_email[w.n] = '\0';
    }
    if (next_word(&s, &w))
        cmd->error = COMMAND_BAD_ARGS;
}

/* "status [request-id]": ids are [A-Za-z0-9-], at most COMMAND_MAX_REQUEST_ID. */
static void parse_status(struct command *cmd, const char *s)
{
    struct word w;
    size_t i;

    cmd->kind = COMMAND_STATUS;
    if (!next_word(&s, &w))
        return;
    if (w.n > COMMAND_MAX_REQUEST_ID) {
        cmd->error = COMMAND_BAD_ARGS;
        return;
    }
    for (i = 0; i < w.n; i++) {
        if (!is_alnum(w.p[i]) && w.p[i] != '-') {
            cmd->error = COMMAND_BAD_ARGS;
            return;
        }
    }
    /* Kept as typed: ids are matched exactly against the audit keys. */
    memcpy(cmd->request_id, w.p, w.n);
    cmd->request_id[w.n] = '\0';
    if (next_word(&s, &w))
        cmd->error = COMMAND_BAD_ARGS;
}

void command_parse(struct command *cmd, const char *text, char *const *audiences, size_t n)
{
    const char *s = text ? text : "";
    struct word keyword;

    memset(cmd, 0, sizeof(*cmd));
    cmd->kind = COMMAND_HELP;
    if (!next_word(&s, &keyword))
        return;
    if (word_is(&keyword, "digest"))
        parse_digest(cmd, s, audiences, n);
    else if (word_is(&keyword, "status"))
        parse_status(cmd, s);
    /* "help", and anything else, stays COMMAND_HELP with no error. */
}

const char *command_kind_name(enum command_kind kind)
{
    switch (kind) {
    case COMMAND_HELP:
        return "help";
    case COMMAND_DIGEST:
        return "digest";
    case COMMAND_STATUS:
        return "status";
    }
    return "unknown";
}

const char *command_error_name(enum command_error err)
{
    switch (err) {
    case COMMAND_OK:
        return "ok";
    case COMMAND_BAD_AUDIENCE:
        return "bad_audience";
    case COMMAND_BAD_EMAIL:
        return "bad_email";
    case COMMAND_BAD_ARGS:
        return "bad_args";
    }
    return "unknown";
}
