/*
 * rollout.h: which path serves one digest request, the staged rollout of
 * SPEC §2. USE_ASYNC_DIGEST=false: sync, whatever else is set (the instant
 * rollback). Otherwise a user (from.aadObjectId or from.id) or conversation
 * key listed in ASYNC_DIGEST_ALLOW: async. Otherwise async exactly when the
 * user's bucket is below the percentage (true = 100 %).
 *
 * The bucket is the 64-bit FNV-1a hash (core/hash.h) of the user id's bytes
 * (from.aadObjectId when the activity has one, else from.id), mod 100. It is
 * fixed and unkeyed on purpose: every process, version and machine puts a
 * user in the same bucket, so the user stays on one path across requests,
 * replicas and restarts, and raising N only moves users from sync to async.
 * An operator can compute a user's bucket by hand (README.md). Users
 * cannot choose their ids, so an unkeyed hash is safe here. Measured spread:
 * 2,000 ids of any shape land within ±2 points of N (tests/unit/digestd).
 *
 * Pure: reads the config, borrows every string, keeps nothing.
 */
#pragma once

#include <stdbool.h>

struct config;

/* Why rollout_async decided as it did (for logs and tests). */
enum rollout_why {
    ROLLOUT_OFF = 0,  /* USE_ASYNC_DIGEST=false: sync */
    ROLLOUT_ALLOWED,  /* the user or conversation is in ASYNC_DIGEST_ALLOW: async */
    ROLLOUT_IN_SHARE, /* the user's bucket < N: async */
    ROLLOUT_OUTSIDE,  /* the user's bucket >= N: sync */
};

/* The id a user is bucketed by: aad_id when non-empty, else from_id. Borrowed. */
const char *rollout_user_id(const char *aad_id, const char *from_id);

/* The user's bucket, 0..99: FNV-1a 64 of user_id mod 100. */
unsigned rollout_bucket(const char *user_id);

/*
 * True when the digest request of this user (aad_id may be "" or NULL;
 * from_id not NULL) in conversation conv_key ("<channelId>:<conversation.id>",
 * may be NULL) goes the async way. why (may be NULL) receives the reason.
 */
bool rollout_async(const struct config *cfg, const char *aad_id, const char *from_id,
                   const char *conv_key, enum rollout_why *why);

/* "off", "allowed", "in_share", "outside": the reason as a word. */
const char *rollout_why_name(enum rollout_why why);
