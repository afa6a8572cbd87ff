/*
 * inspect.h: what operators read and repair in the queue — the one module
 * behind digestd's /admin/ routes (SPEC §3) and digestctl (SPEC §7), so
 * both show the same data from the same scripts.
 *
 * Each query comes in three parts: a command builder (store_cmd, cmd.h),
 * a decoder from the reply to the answer, and an async call that joins
 * the two on a redis_conn. Builders and decoders are pure functions over
 * hiredis's redisReply, so a blocking caller sends the same command with
 * redisCommandArgv and decodes the reply with the same function: one
 * implementation, sync or async. Answers are JSON (json-c, owned by the
 * receiver: json_object_put), because that is what both callers print.
 * Fields copied from Redis keep Redis's names, with '-' written '_'; what
 * we add is snake_case, and times and spans end in _ms. Every query that
 * ages anything reads Redis's clock (now_ms in the answer), the clock the
 * stream ids are made of.
 *
 * The queries (each one script, so its numbers agree with each other):
 * queue (stats and its verdict), procs, pending, dead, history, show (one
 * request), consumers (and pruning), the check's facts; the repairs:
 * requeue of one dead job, of all of them (stepped). The retention rule is
 * trim.h. Decoders answer 0, DG_ERR_PROTOCOL for an error reply or a reply
 * of the wrong shape, or DG_ERR_UNAVAILABLE for a NULL reply (a blocking
 * caller's lost connection). Async calls go out on the connection given
 * (borrowed) and finish exactly once (redis.h rules).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

struct json_object;
struct redis_conn;
struct redisReply;
struct store_cmd;

/* Request ids are UUIDs (36); anything much longer is not one of ours. */
#define INSPECT_MAX_ID 64
#define INSPECT_MAX_LIMIT 1000  /* entries a pending or dead listing returns at most */
#define INSPECT_DEAD_SHOWN 5    /* the newest dead jobs the queue snapshot names */
#define INSPECT_REQUEUE_STEP 25 /* dead jobs requeued per call of a requeue of all (bench/) */

/* The four verdicts of SPEC §7, the first that holds in this order. */
#define INSPECT_NO_CONSUMERS "no consumers"
#define INSPECT_STUCK "stuck"
#define INSPECT_BACKLOG_GROWING "backlog growing"
#define INSPECT_HEALTHY "healthy"

/* out: the answer (taken by the callback; NULL when err, or when there is no such thing). */
typedef void (*inspect_json_cb)(int err, struct json_object *out, void *data);
/* stream_id: the new entry (borrowed for the callback), NULL when the request is not dead. */
typedef void (*inspect_requeue_cb)(int err, const char *stream_id, void *data);

/*
 * An id we could have issued: 1..INSPECT_MAX_ID of [A-Za-z0-9-]. Anything
 * else (a '*', a NUL, a megabyte) never becomes part of a key: it is
 * simply not found.
 */
bool inspect_request_id_ok(const char *id);

/*
 * The queue at a glance (GET /admin/queue, digestctl stats):
 * {"now_ms","length","first_id","last_id","entries_added",
 *  "groups":[XINFO GROUPS of each, as Redis says it],
 *  "consumers":[{"group","name","pending","idle_ms","alive"}],
 *  "live_consumers", "oldest_pending", "stuck_after_ms", "stuck",
 *    (each {"group","id","consumer","idle_ms","deliveries","age_ms"} or null;
 *     stuck: the oldest entry idle longer than stuck_after_ms, twice the claim idle time)
 *  "dead", "dead_recent":[dead entries, newest first],
 *  "rates":{"this_minute","last_minute","last_hour": per-minute counts summed;
 *    last_minute the last complete one, last_hour this one and the 59 before},
 *  "lag_trend":{"current","previous"}, "procs":[as inspect_procs],
 *  "verdict", "verdict_text"}.
 * alive: the consumer has a live heartbeat; verdict: one of the four above,
 * verdict_text with its evidence ("stuck: oldest pending 14m").
 */
void inspect_queue_cmd(struct store_cmd *c, const char *prefix, uint64_t claim_idle_ms);
int inspect_queue_decode(const struct redisReply *r, struct json_object **out) WARN_UNUSED;
int inspect_queue(struct redis_conn *conn, const char *prefix, uint64_t claim_idle_ms,
                  inspect_json_cb cb, void *data) WARN_UNUSED;

/*
 * The live processes (GET /admin/procs, digestctl procs): {"now_ms",
 * "procs":[{"name","role","version","host","pid","listen","started_ms",
 * "beat_ms","in_flight","concurrency","rss_bytes","jobs_done","jobs_failed",
 * "async_mode","uptime_ms","beat_age_ms"}], "dead_consumers":[{"group",
 * "name","pending","idle_ms"}]}: consumers of a group without a live
 * heartbeat, which are not workers, whatever XINFO says.
 */
void inspect_procs_cmd(struct store_cmd *c, const char *prefix);
int inspect_procs_decode(const struct redisReply *r, struct json_object **out) WARN_UNUSED;
int inspect_procs(struct redis_conn *conn, const char *prefix, inspect_json_cb cb,
                  void *data) WARN_UNUSED;

/*
 * The group's oldest pending entries (GET /admin/pending, digestctl
 * pending): {"now_ms","group","group_exists","count","entries":[{"id",
 * "request_id","consumer","consumer_alive","idle_ms","deliveries",
 * "age_ms"}]}, at most limit (1..INSPECT_MAX_LIMIT; else DG_ERR_INVALID).
 */
int inspect_pending_cmd(struct store_cmd *c, const char *prefix, unsigned limit) WARN_UNUSED;
int inspect_pending_decode(const struct redisReply *r, struct json_object **out) WARN_UNUSED;
int inspect_pending(struct redis_conn *conn, const char *prefix, unsigned limit, inspect_json_cb cb,
                    void *data) WARN_UNUSED;

/*
 * The newest dead jobs (GET /admin/dead, digestctl dead): {"now_ms",
 * "count","entries":[{"id", and every field as stored}]}, newest first.
 */
int inspect_dead_cmd(struct store_cmd *c, const char *prefix, unsigned limit) WARN_UNUSED;
int inspect_dead_decode(const struct redisReply *r, struct json_object **out) WARN_UNUSED;
int inspect_dead(struct redis_conn *conn, const char *prefix, unsigned limit, inspect_json_cb cb,
                 void *data) WARN_UNUSED;

/*
 * The last `minutes` minutes of counts (GET /admin/history; 1..
 * HISTORY_MAX_MINUTES), oldest first, the current one last:
 * {"now_ms","minutes":[{"minute","start_ms","enqueued","delivered",
 * "failed","dead","sync","fallback","lag"}]}; absent counts are 0, an
 * absent lag is null.
 */
int inspect_history_cmd(struct store_cmd *c, const char *prefix, unsigned minutes) WARN_UNUSED;
int inspect_history_decode(const struct redisReply *r, struct json_object **out) WARN_UNUSED;
int inspect_history(struct redis_conn *conn, const char *prefix, unsigned minutes,
                    inspect_json_cb cb, void *data) WARN_UNUSED;

/*
 * One request (GET /admin/requests/{id}, digestctl show): its audit record,
 * every field as stored, and beside them "request_id", "now_ms",
 * "timeline":[{"step","at_ms","after_ms"}] (queued or received, processing,
 * fetched, delivered, requeued, dead or failed, in time order), "entry"
 * (its stream entry {"id","fields"} or null when it was trimmed or there is
 * none), "pending" ({"consumer","consumer_alive","idle_ms","deliveries"} or
 * null), "dead_entry" and "conversation" (the reference as stored, or
 * null). *out NULL when there is no such record. DG_ERR_INVALID from the
 * builder for an id that fails inspect_request_id_ok (nothing is sent).
 */
int inspect_request_cmd(struct store_cmd *c, const char *prefix,
                        const char *request_id) WARN_UNUSED;
int inspect_request_decode(const struct redisReply *r, struct json_object **out) WARN_UNUSED;
int inspect_request(struct redis_conn *conn, const char *prefix, const char *request_id,
                    inspect_json_cb cb, void *data) WARN_UNUSED;

/*
 * The group's consumers, and with prune those removed that hold nothing
 * pending, have no live heartbeat and were idle at least idle_ms (SPEC §7
 * consumers --prune): {"now_ms","consumers":[{"group","name","pending",
 * "idle_ms","alive","removed"}],"removed":N}. One script: a consumer is
 * never removed while something is pending under it (DELCONSUMER would
 * leave those entries unclaimable).
 */
void inspect_consumers_cmd(struct store_cmd *c, const char *prefix, bool prune, uint64_t idle_ms);
int inspect_consumers_decode(const struct redisReply *r, struct json_object **out) WARN_UNUSED;

/*
 * The facts the pre-rollout check needs beyond the snapshot:
 * {"now_ms","redis_version","newest_entry":{"id","request_id",
 * "record_status"}|null,"newest_dead":{"id",fields…}|null}. record_status
 * is null when the newest entry's audit record is missing; newest_dead is
 * the newest dead entry when it is from the last hour.
 */
void inspect_check_facts_cmd(struct store_cmd *c, const char *prefix);
int inspect_check_facts_decode(const struct redisReply *r, struct json_object **out) WARN_UNUSED;

/*
 * Puts a dead job back on the stream as a new entry with its original
 * fields, deletes its dead entry and resets its record (status queued,
 * attempts 0, stream_id the new entry, requeued_ms, requeues + 1),
 * atomically. *stream_id is the new entry's id (borrowed from r), NULL
 * when the request is not dead. DG_ERR_INVALID from the builder for a bad
 * id.
 */
int inspect_requeue_cmd(struct store_cmd *c, const char *prefix,
                        const char *request_id) WARN_UNUSED;
int inspect_requeue_decode(const struct redisReply *r, const char **stream_id) WARN_UNUSED;
int inspect_requeue(struct redis_conn *conn, const char *prefix, const char *request_id,
                    inspect_requeue_cb cb, void *data) WARN_UNUSED;
/* The answer to a requeue: {"requestId":…,"streamId":…} (owned). */
struct json_object *inspect_requeued_json(const char *request_id, const char *stream_id);

/*
 * Requeues every dead job, only if exactly `expected` are dead when it
 * starts (SPEC §3 POST /admin/dead/requeue-all): the first call checks the
 * count and notes the newest dead entry; every call requeues up to
 * INSPECT_REQUEUE_STEP of the entries up to that one, as above, so a long
 * dead stream never holds Redis for long and a job dead-lettered meanwhile
 * is not part of it. Call the builder and the decoder until done.
 */
struct inspect_requeue_all {
    long long expected; /* the caller's count */
    long long requeued; /* so far */
    long long dead_now; /* mismatch: how many were dead */
    bool mismatch;      /* the count was not the caller's: nothing was requeued */
    bool done;
    char boundary[48]; /* the newest dead entry when it started */
};

void inspect_requeue_all_init(struct inspect_requeue_all *s, long long expected);
void inspect_requeue_all_cmd(struct store_cmd *c, const char *prefix,
                             const struct inspect_requeue_all *s);
/* Updates s from one reply. */
int inspect_requeue_all_decode(const struct redisReply *r,
                               struct inspect_requeue_all *s) WARN_UNUSED;
typedef void (*inspect_requeue_all_cb)(int err, const struct inspect_requeue_all *s, void *data);
/* The whole loop on conn; cb once, at the end (after a mismatch, or done, or an error). */
int inspect_requeue_all(struct redis_conn *conn, const char *prefix, long long expected,
                        inspect_requeue_all_cb cb, void *data) WARN_UNUSED;
