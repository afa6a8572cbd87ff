/*
 * jwt_cache.h: verdicts on inbound tokens, kept so that a token is not
 * parsed and RSA-verified again for every activity (a Bot Framework channel
 * reuses one token for up to an hour). Pure: no I/O and no clock, the
 * caller passes jwt_expect with now_s.
 *
 * An entry is keyed by the whole Authorization value: a lookup hits only
 * when every byte is the same (a hash finds the candidates, memcmp
 * decides), so no other token, not even one differing in one bit of its
 * signature, can use another's verdict. Only a token jwt_verify found good
 * is stored, with its claims and the fingerprint of the key that verified
 * it. A hit runs jwt_reverify: every check of jwt_verify but the RSA one,
 * against the key set in use now and the activity at hand, so the checks
 * that depend on the activity (serviceurl against serviceUrl, the key's
 * endorsements against channelId) and on time (exp with its leeway, to the
 * second) are still applied each time. A key set that no longer holds the
 * kid, or holds other numbers under it, turns the hit into a miss and the
 * entry is dropped; so does a token whose lifetime (exp + leeway) is over.
 *
 * Bounded: at most max_entries tokens, the oldest replaced first. Owns
 * copies of the tokens and their claims; borrows keys and expectations for
 * the call only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "teams/jwt_verify.h"

struct jwt_cache;

struct jwt_cache_stats {
    uint64_t hits, misses, stored, dropped; /* dropped: stale key or lifetime over */
    size_t entries;
};

/* max_entries >= 1. */
struct jwt_cache *jwt_cache_new(size_t max_entries);
void jwt_cache_free(struct jwt_cache *c); /* NULL-safe */

/*
 * Looks up the Authorization value (len bytes). On a hit returns true and
 * *v, *why (may be NULL) are jwt_verify's answer for this activity; false
 * on a miss (the caller parses and verifies, then jwt_cache_put).
 */
bool jwt_cache_check(struct jwt_cache *c, const char *authorization, size_t len,
                     const struct jwks *keys, const struct jwt_expect *e, enum jwt_verdict *v,
                     const char **why);

/*
 * Stores t (parsed from authorization) after jwt_verify answered JWT_OK for
 * it with keys. Copies what it keeps; a token already held is left as it is.
 */
void jwt_cache_put(struct jwt_cache *c, const char *authorization, size_t len, const struct jwt *t,
                   const struct jwks *keys);

/* Forgets every entry. */
void jwt_cache_clear(struct jwt_cache *c);

void jwt_cache_get_stats(const struct jwt_cache *c, struct jwt_cache_stats *out);
