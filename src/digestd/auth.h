/*
 * auth.h: inbound Bot Framework authentication for the webhook (SPEC §3,
 * research/botframework.md §3.1). It owns the signing keys: it fetches
 * BOT_OPENID_URL, then the jwks_uri named there, through the http_client
 * (curl multi, never a blocking call), keeps the set for 24 h, and refetches
 * it on an unknown kid at most every JWKS_MIN_REFRESH_S. The token checks
 * themselves are jwt_verify.c's; this module feeds them keys and time, and
 * keeps the verdicts on tokens already verified (jwt_cache.c), so a reused
 * token costs no RSA operation.
 *
 * A request that arrives before the first set is loaded (or while a refetch
 * for its kid is under way) waits for it, at most AUTH_WAIT_MS; then it is
 * answered 503 so the channel retries. Lifecycle: create → start → checks →
 * stop (pending checks finish with 503, the fetch is cancelled, timers
 * close) → free once the loop has run out. Config, http_client and metrics
 * are borrowed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "core/common.h"

/* How long a request may wait for keys that are being fetched. */
#define AUTH_WAIT_MS 5000
/* Requests waiting for keys at once; past it 503 at once (each holds its parsed body). */
#define AUTH_MAX_WAITERS 1024
/* Each of the two fetches (metadata, key set) is bounded by this. */
#define AUTH_FETCH_TIMEOUT_MS 5000
/* Keys older than this are refetched in the background (SDKs: 24 h). */
#define AUTH_KEYS_MAX_AGE_MS (24ull * 3600 * 1000)
/* Retry delays after a failed fetch: doubling from MIN up to MAX. */
#define AUTH_RETRY_MIN_MS 500
#define AUTH_RETRY_MAX_MS 30000
/*
 * Tokens whose verdict is kept (jwt_cache.h): a channel reuses its token for
 * up to an hour, so a handful are in use at once; ~1.5 kB each.
 */
#define AUTH_TOKEN_CACHE_ENTRIES 1024
/* The one issuer of channel → bot tokens, and the clock tolerance. */
#define AUTH_ISSUER "https://api.botframework.com"
#define AUTH_LEEWAY_S 300

/* auth_check's answer when it will call back later. */
#define AUTH_PENDING 0

struct auth;
struct config;
struct http_client;
struct metrics;

/*
 * The outcome of a check: status is 200 (trusted), 401, 403 or 503 (keys
 * not to be had in time; answer with Retry-After); why is a short static
 * text for the log and the JSON error body.
 */
typedef void (*auth_done_cb)(int status, const char *why, void *data);

struct auth *auth_create(uv_loop_t *loop, const struct config *cfg, struct http_client *http,
                         struct metrics *metrics);
/* Begins the first fetch; returns at once. */
void auth_start(struct auth *a);
/* True once a key set is loaded (for /readyz). */
bool auth_ready(const struct auth *a);
/* Why auth_ready is false, for /readyz (borrowed, valid until the next loop turn). */
const char *auth_reason(const struct auth *a);

/*
 * The part of the header check that runs before the body is parsed (SPEC
 * §3): value is present, its scheme is "Bearer" in any case, one space,
 * then exactly one non-empty token with no further space. Pure.
 */
bool auth_header_ok(const char *value);

/*
 * Checks the Authorization header value against the activity's serviceUrl
 * and channelId (both may be NULL: a NULL serviceUrl is a 401). Returns the
 * status at once (200, 401, 403, 503), with *why, and never calls cb; or
 * returns AUTH_PENDING and calls cb exactly once later (never from inside
 * this call). Every argument is copied.
 */
int auth_check(struct auth *a, const char *authorization, const char *service_url,
               const char *channel_id, const char **why, auth_done_cb cb, void *data) WARN_UNUSED;

/*
 * Shutdown: pending checks finish with 503 before this returns, the fetch
 * in flight is cancelled, the timers close. Call it before stopping the
 * http_client. Idempotent.
 */
void auth_stop(struct auth *a);
/* After auth_stop and once the loop has run its close callbacks. NULL-safe. */
void auth_free(struct auth *a);
