/*
 * requests.h: the audit records of SPEC §5 ({P}:req:<id>) after they are
 * created by the enqueue: reading one (the `status` command) and moving
 * a record along (sync mode); the acknowledgment card's id goes through the
 * queue's batch (queue_record_ack). Each
 * operation is one round trip on the queue's command connection, borrowed;
 * scripts make "only if the record exists" atomic, so an expired record is
 * never resurrected as a stub. Calls finish exactly once (redis.h rules).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/common.h"
#include "store/request_status.h"

struct redis_conn;
struct config;

/*
 * request_id is the record found ("" when none). fields/values are the
 * record's pairs (n == 0 when there is no such record). All borrowed for the
 * callback only.
 */
typedef void (*requests_get_cb)(int err, const char *request_id, const char *const *fields,
                                const char *const *values, size_t n, void *data);
typedef void (*requests_done_cb)(int err, void *data);

/*
 * Reads the record of request_id, or when request_id is "" the latest
 * request of the conversation conv_key (its reference's last_request_id).
 * A record that belongs to another conversation reads as no record.
 */
int requests_get(struct redis_conn *conn, const struct config *cfg, const char *request_id,
                 const char *conv_key, requests_get_cb cb, void *data) WARN_UNUSED;

/*
 * Gives a request back to the channel: marks the record failed with why,
 * and deletes the dedup key (conv_key + ":" + activity_id) if it still
 * names request_id, so the channel's retry of the activity is served
 * rather than answered "duplicate". For work cancelled by a shutdown.
 */
int requests_release(struct redis_conn *conn, const struct config *cfg, const char *request_id,
                     const char *conv_key, const char *activity_id, const char *why,
                     requests_done_cb cb, void *data) WARN_UNUSED;

/* HSET of the pairs on an existing record (no-op when it expired). */
int requests_update(struct redis_conn *conn, const struct config *cfg, const char *request_id,
                    const char *const *fields, const char *const *values, size_t n,
                    requests_done_cb cb, void *data) WARN_UNUSED;
