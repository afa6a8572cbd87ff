/*
 * command.h: pure parsing of the command text (after mention stripping) into
 * one of the chat commands of SPEC §4. Case-insensitive keywords; audience
 * checked against the configured list; the optional test email checked for
 * a plausible shape. No I/O, no allocation: struct command is a value.
 */
#pragma once

#include <stddef.h>

#include "core/common.h"

enum command_kind {
    COMMAND_HELP = 0, /* "help", empty text, and anything not understood */
    COMMAND_DIGEST,   /* "digest <audience> [test-email]" */
    COMMAND_STATUS,   /* "status [request-id]" */
};

enum command_error {
    COMMAND_OK = 0,
    COMMAND_BAD_AUDIENCE, /* digest with a missing or unknown audience */
    COMMAND_BAD_EMAIL,    /* digest with a malformed test email */
    COMMAND_BAD_ARGS,     /* too many words, or a malformed request id */
};

#define COMMAND_MAX_AUDIENCE 64
#define COMMAND_MAX_EMAIL 254 /* RFC 5321 path limit */
#define COMMAND_MAX_REQUEST_ID 64

struct command {
    enum command_kind kind;
    enum command_error error;
    char audience[COMMAND_MAX_AUDIENCE + 1];     /* lowercased; "" unless digest */
    char test_email[COMMAND_MAX_EMAIL + 1];      /* "" when none */
    char request_id[COMMAND_MAX_REQUEST_ID + 1]; /* status argument; "" when none */
    char word[COMMAND_MAX_AUDIENCE + 1];         /* the audience as typed, for the error card;
                                                    cut at a UTF-8 boundary when too long */
};

/*
 * Parses text (borrowed; NULL reads as "") into cmd. audiences is the
 * configured list (n entries, lowercase). Words are split on ASCII white
 * space. Never fails: unknown text becomes COMMAND_HELP, a bad digest or
 * status request keeps its kind with error set. The test email and request
 * id are kept as typed (only the keyword and audience are case-folded).
 */
void command_parse(struct command *cmd, const char *text, char *const *audiences, size_t n);

/* Stable names for logs, metrics and the audit record. */
const char *command_kind_name(enum command_kind kind);
const char *command_error_name(enum command_error err);
