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
 * receiver: json_object_put), because that is what both callers print;
 * field names are Redis's, with '-' written '_'.
 *
 * Today: the queue snapshot, one request's record, and the requeue of a
 * dead job. Issue 11 adds stats, pending, dead, procs, history, requeue
 * of all dead jobs, trim and consumer pruning in the same shape.
 *
 * Async calls go out on the connection given (borrowed) and finish
 * exactly once (redis.h rules). Decoders answer 0, DG_ERR_PROTOCOL for an
 * error reply or a reply of the wrong shape, or DG_ERR_UNAVAILABLE for a
 * NULL reply (a blocking caller's lost connection).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/common.h"

struct json_object;
struct redis_conn;
struct redisReply;
struct store_cmd;

/* Request ids are UUIDs (36); anything much longer is not one of ours. */
#define INSPECT_MAX_ID 64

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
 * The queue at a glance, one consistent snapshot (one script):
 * {"length":N,"groups":[{"name","consumers","pending","last_delivered_id",
 * "entries_read","lag"}…],"dead":N}; the group fields are XINFO GROUPS's,
 * as this Redis version reports them.
 */
void inspect_queue_cmd(struct store_cmd *c, const char *prefix);
int inspect_queue_decode(const struct redisReply *r, struct json_object **out) WARN_UNUSED;
int inspect_queue(struct redis_conn *conn, const char *prefix, inspect_json_cb cb,
                  void *data) WARN_UNUSED;

/*
 * One request's audit record, every field as stored ({P}:req:<id>);
 * *out NULL when there is no such record. DG_ERR_INVALID from the builder
 * for an id that fails inspect_request_id_ok (nothing is sent).
 */
int inspect_request_cmd(struct store_cmd *c, const char *prefix,
                        const char *request_id) WARN_UNUSED;
int inspect_request_decode(const struct redisReply *r, struct json_object **out) WARN_UNUSED;
int inspect_request(struct redis_conn *conn, const char *prefix, const char *request_id,
                    inspect_json_cb cb, void *data) WARN_UNUSED;

/*
 * Puts a dead job back on the stream as a new entry with its original
 * fields, deletes its dead entry and resets its record (status queued,
 * attempts 0), atomically. *stream_id is the new entry's id (borrowed from
 * r), NULL when the request is not dead. DG_ERR_INVALID from the builder
 * for a bad id.
 */
int inspect_requeue_cmd(struct store_cmd *c, const char *prefix,
                        const char *request_id) WARN_UNUSED;
int inspect_requeue_decode(const struct redisReply *r, const char **stream_id) WARN_UNUSED;
int inspect_requeue(struct redis_conn *conn, const char *prefix, const char *request_id,
                    inspect_requeue_cb cb, void *data) WARN_UNUSED;
/* The answer to a requeue: {"requestId":…,"streamId":…} (owned). */
struct json_object *inspect_requeued_json(const char *request_id, const char *stream_id);
