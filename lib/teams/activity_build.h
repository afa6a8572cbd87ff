/*
 * activity_build.h: the Teams message activity that Teams would post to a
 * bot, in the three shapes of the research fixtures (personal chat, channel
 * thread with a mention, group chat with a mention). digest-stub's `say`
 * and digest-bench send these (digest-bench with its own user and
 * conversation ids, to spread its load over many conversations). Pure: no I/O, no clock (the
 * timestamp is passed in); the output goes into a caller's struct buf, inputs are borrowed.
 */
#pragma once

#include "core/buf.h"
#include "core/common.h"

/* The bot as the activity addresses it; recipient.id is "28:" + the app id. */
#define ACTIVITY_BOT_NAME "Digest Bot"

enum conv_kind {
    CONV_PERSONAL = 0, /* research §1.2 (a) */
    CONV_CHANNEL,      /* (b): a thread in a team channel, with the mention */
    CONV_GROUP,        /* (c): a group chat, with the mention */
};

/* Parses "personal", "channel" or "group"; DG_ERR_INVALID otherwise. */
int conv_kind_parse(const char *s, enum conv_kind *out) WARN_UNUSED;

struct activity_spec {
    enum conv_kind kind;
    const char *text;            /* what the user typed, without the mention */
    const char *id;              /* activity id */
    const char *timestamp;       /* ISO-8601 UTC with Z */
    const char *service_url;     /* copied verbatim */
    const char *app_id;          /* the bot's Microsoft App ID */
    const char *conversation_id; /* NULL or "": the kind's usual id */
    const char *user_id;         /* NULL: the kind's usual from.id */
    const char *aad_object_id;   /* NULL: the kind's usual from.aadObjectId */
};

/* The ids a kind of conversation uses when the spec names none (static strings). */
struct activity_identity {
    const char *user_id, *aad_object_id, *conversation_id;
};
void activity_default_identity(enum conv_kind kind, struct activity_identity *out);

/*
 * Appends a Teams message activity shaped like the research fixtures for
 * that kind of conversation: from/recipient/conversation/channelData, the
 * clientInfo entity, and for channel and group chats the <at>…</at> text,
 * the mention entity naming the bot and the text/html attachment.
 */
int activity_build_json(const struct activity_spec *spec, struct buf *out) WARN_UNUSED;
