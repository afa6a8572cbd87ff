/*
 * card.h: the Adaptive Cards digestd posts to Teams (SPEC §4) and the reply
 * activity that carries them. Pure json-c: no I/O and no clock (every time
 * is passed in), so the output is deterministic and golden-file tested.
 * Builders return a new AdaptiveCard object (owned: json_object_put);
 * card_render() takes one, wraps it in the activity and returns the JSON
 * text to send (owned: xfree). Inputs are borrowed; NULL strings count as "".
 * The acknowledgment, result and error activities also have writers that
 * produce the same bytes without the tree (card_render_ack/_result/_error).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "digest/digest.h"

struct json_object;

#define CARD_CONTENT_TYPE "application/vnd.microsoft.card.adaptive"
#define CARD_SCHEMA "http://adaptivecards.io/schemas/adaptive-card.json"
#define CARD_VERSION "1.5" /* the newest Teams renders for bot cards */
#define CARD_MAX_ITEMS 10  /* candidates shown on a result card */
/*
 * Teams refuses a message over "100 KB" measured as UTF-16
 * (research/botframework.md §4.4); we read KB as 1000 bytes to stay clear.
 */
#define CARD_MAX_UTF16_BYTES 100000

/* Who the activity goes from and to: the reverse of the user's activity. */
struct card_address {
    const char *bot_id;    /* from.id: the inbound recipient.id */
    const char *bot_name;  /* from.name; omitted when NULL or "" */
    const char *user_id;   /* recipient.id: the inbound from.id */
    const char *user_name; /* recipient.name; omitted when NULL or "" */
    const char *conversation_id;
    const char *reply_to_id; /* the user's activity id; omitted when NULL or "" */
    const char *activity_id; /* "id": the activity a PUT replaces; omitted when NULL or "" */
};

/*
 * The reply to a user's activity, from the names that activity carried
 * (straight from it, or from the conversation reference stored with a
 * job): from the bot, its recipient, to the user, its sender, in its
 * conversation, replying to its id. activity_id is left NULL: set it to
 * update an activity already posted. Every string is borrowed.
 */
void card_address_reply(struct card_address *to, const char *bot_id, const char *bot_name,
                        const char *user_id, const char *user_name, const char *conversation_id,
                        const char *reply_to_id);

/* The acknowledgment card is posted QUEUED and updated once when the job ends. */
enum card_ack_state {
    CARD_ACK_QUEUED = 0,
    CARD_ACK_DELIVERED,
    CARD_ACK_FAILED, /* also dead-lettered: the user sees the error card either way */
};

struct card_ack_info {
    const char *audience;
    const char *request_id;
    const char *test_email; /* NULL or "" when none */
    enum card_ack_state state;
};

struct card_result_info {
    const char *audience;        /* the audience the user asked for */
    const char *request_id;      /* NULL or "" = not shown */
    const char *test_email;      /* non-empty: a visible TEST MODE banner naming it */
    const struct digest *digest; /* generated_at is shown verbatim ("not given" when "") */
};

struct card_error_info {
    const char *what;       /* heading: what failed, one sentence */
    const char *detail;     /* optional second line (an upstream status, the bad word) */
    const char *request_id; /* NULL or "" = not shown */
    const char *next;       /* what the user can do now */
};

/*
 * An audit record (SPEC §5 {P}:req:<id>) as field/value pairs, for example
 * straight from HGETALL. Fields used: status, mode, audience, created_ms,
 * started_ms, fetched_ms, delivered_ms, attempts, last_error; others are
 * ignored. n == 0 means no such request.
 */
struct card_status_info {
    const char *request_id; /* the record's id (resolved for "the latest"); "" = none */
    const char *const *fields;
    const char *const *values;
    size_t n;
};

struct json_object *card_ack(const struct card_ack_info *in);
/*
 * Shows at most min(max_items, CARD_MAX_ITEMS) candidates. When fewer are
 * shown than the digest holds it says so, and when max_items is what cut
 * them (the size limit) it says that too.
 */
struct json_object *card_result(const struct card_result_info *in, size_t max_items);
struct json_object *card_error(const struct card_error_info *in);
/* audiences: the configured list (as in command_parse). */
struct json_object *card_help(char *const *audiences, size_t n);
struct json_object *card_status(const struct card_status_info *in);

/*
 * Wraps card (taken, even on error) in a message activity addressed by to:
 * type, id, from, recipient, conversation, replyToId and one Adaptive Card
 * attachment; no "text" (Teams would split the message and we would lose the
 * id needed for the later update). On success *out is the compact JSON
 * (owned, xfree) and *len its length. DG_ERR_TOO_LARGE when the text exceeds
 * CARD_MAX_UTF16_BYTES.
 */
int card_render(const struct card_address *to, struct json_object *card, char **out,
                size_t *len) WARN_UNUSED;

/*
 * card_render(to, card_ack(in), out, len) without the json-c tree: the same
 * bytes, written straight into one buffer (the webhook's hot path). card_ack
 * and card_render stay the reference the tests and fuzz_card.c compare with.
 * to and in are borrowed; *out is owned (xfree), NULL on error.
 */
int card_render_ack(const struct card_address *to, const struct card_ack_info *in, char **out,
                    size_t *len) WARN_UNUSED;

/*
 * card_result() + card_render(), dropping candidates from the end until the
 * activity fits CARD_MAX_UTF16_BYTES. *shown (may be NULL) gets the number of
 * candidates on the card. DG_ERR_TOO_LARGE only when even the card without
 * candidates does not fit. Written straight into one buffer (the worker's
 * hot path); *out is owned (xfree), NULL on error.
 */
int card_render_result(const struct card_address *to, const struct card_result_info *in, char **out,
                       size_t *len, size_t *shown) WARN_UNUSED;

/*
 * The same through card_result() and card_render(): the json-c reference
 * the tests and fuzz_card.c hold card_render_result to.
 */
int card_render_result_json(const struct card_address *to, const struct card_result_info *in,
                            char **out, size_t *len, size_t *shown) WARN_UNUSED;

/*
 * card_render(to, card_error(in), out, len) without the json-c tree, as
 * card_render_ack.
 */
int card_render_error(const struct card_address *to, const struct card_error_info *in, char **out,
                      size_t *len) WARN_UNUSED;

/*
 * Size of s (len bytes of UTF-8) in UTF-16, in bytes: 2 per code unit, so 2
 * for a BMP character and 4 for one outside it (a 4-byte UTF-8 sequence).
 * A stray byte counts as one unit, as its U+FFFD replacement would.
 */
size_t card_utf16_bytes(const char *s, size_t len);
