/*
 * stub_content.h: the pure parts of digest-stub (SPEC §9): the upstream's
 * digest reply, the Teams activity `digest-stub say` sends, naming the card
 * a connector message carries, and small form/URL decoding. No I/O and no
 * clock (times are passed in), so each is deterministic. Outputs go into a
 * caller's struct buf; inputs are borrowed.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/common.h"

struct json_object;

/* The bot as `say` addresses it; recipient.id is "28:" + the app id. */
#define STUB_BOT_NAME "Digest Bot"
#define STUB_ITEMS_MAX 100

/*
 * Parses exactly len bytes as one strict JSON value (depth 64); a new
 * object (json_object_put), or NULL when the text is not JSON.
 */
struct json_object *stub_json_parse(const char *text, size_t len);

/* splitmix64: well-mixed deterministic numbers from a 64-bit state. */
uint64_t stub_rand_next(uint64_t *state);

/*
 * Appends {"audience","generated_at","items":[{"name","title","company",
 * "location","summary","url"}…]} with n_items candidates (at most
 * STUB_ITEMS_MAX). The same audience and seed always give the same items;
 * generated_at is copied verbatim.
 */
int stub_digest_json(const char *audience, uint64_t seed, unsigned n_items,
                     const char *generated_at, struct buf *out) WARN_UNUSED;

enum stub_conv_kind {
    STUB_CONV_PERSONAL = 0, /* research §1.2 (a) */
    STUB_CONV_CHANNEL,      /* (b): a thread in a team channel, with the mention */
    STUB_CONV_GROUP,        /* (c): a group chat, with the mention */
};

/* Parses "personal", "channel" or "group"; DG_ERR_INVALID otherwise. */
int stub_conv_kind_parse(const char *s, enum stub_conv_kind *out) WARN_UNUSED;

struct stub_activity_spec {
    enum stub_conv_kind kind;
    const char *text;            /* what the user typed, without the mention */
    const char *id;              /* activity id */
    const char *timestamp;       /* ISO-8601 UTC with Z */
    const char *service_url;     /* copied verbatim */
    const char *app_id;          /* the bot's Microsoft App ID */
    const char *conversation_id; /* NULL or "": the kind's usual id */
};

/*
 * Appends a Teams message activity shaped like the research fixtures for
 * that kind of conversation: from/recipient/conversation/channelData, the
 * clientInfo entity, and for channel and group chats the <at>…</at> text,
 * the mention entity naming the bot and the text/html attachment.
 */
int stub_activity_json(const struct stub_activity_spec *spec, struct buf *out) WARN_UNUSED;

/* What a connector message carries, for the one-line log and the outbox. */
struct stub_card {
    char kind[16];       /* ack, ack-delivered, ack-failed, result, error, help,
                            status, card (unrecognised card), text, none */
    char request_id[64]; /* the card's "Request" fact, or "" */
};

/*
 * Names the first attachment of a bot activity (borrowed; may be NULL) by
 * its heading, as src/card.c writes them.
 */
void stub_card_describe(struct json_object *activity, struct stub_card *out);

/*
 * Percent-decodes len bytes of s into out ('+' is kept: this is for paths).
 * DG_ERR_INVALID for a malformed escape or an encoded NUL.
 */
int stub_percent_decode(const char *s, size_t len, struct buf *out) WARN_UNUSED;

/*
 * Finds key in an application/x-www-form-urlencoded string (or a query
 * string) and appends its decoded value ('+' is a space) to out. Returns 0,
 * DG_ERR_FIELD when absent, or DG_ERR_INVALID for a malformed escape.
 */
int stub_form_get(const char *form, size_t len, const char *key, struct buf *out) WARN_UNUSED;
