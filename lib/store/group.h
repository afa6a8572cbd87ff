/*
 * group.h: the consumer group KEYS_GROUP ("workers") on {P}:requests
 * (SPEC §5). It is created, idempotently, wherever it may be missing: by
 * the queue on every (re)connect and by the worker's reader on NOGROUP
 * (a Redis restarted without its data). A consumer leaves it at a clean
 * exit, but only when it holds nothing pending. The command builder and
 * the reply reading are pure, so a blocking caller (digestctl) shares
 * them; the async calls go out on the connection given (borrowed) and
 * finish exactly once (redis.h rules).
 */
#pragma once

#include <stdbool.h>

#include "core/common.h"

struct redis_conn;
struct redisReply;
struct store_cmd;

/*
 * err 0: the group exists (created now, or it was there: BUSYGROUP).
 * DG_ERR_PROTOCOL: Redis refused (refusal is its error text: a key of the
 * wrong type, -LOADING); else the connection's error, refusal "". Borrowed.
 */
typedef void (*group_done_cb)(int err, const char *refusal, void *data);
/* left: the consumer is gone; false when it holds pending entries and stays for a claim. */
typedef void (*group_leave_cb)(int err, bool left, void *data);

/*
 * XGROUP CREATE {P}:requests workers 0 MKSTREAM. At 0, not $: entries added
 * while no group existed (by an older process, before the group was
 * deleted) are still delivered.
 */
void group_create_cmd(struct store_cmd *c, const char *prefix);
/*
 * What a reply to it means: 0 (created, or BUSYGROUP), DG_ERR_PROTOCOL
 * with *refusal set (borrowed from r), or DG_ERR_UNAVAILABLE when r is
 * NULL (a blocking caller's lost connection).
 */
int group_create_result(const struct redisReply *r, const char **refusal);
int group_create(struct redis_conn *conn, const char *prefix, group_done_cb cb,
                 void *data) WARN_UNUSED;

/*
 * Removes consumer from the group when nothing is pending under it (one
 * script: DELCONSUMER would make its pending entries unclaimable), so that
 * a process that exited cleanly is not listed in XINFO CONSUMERS forever.
 */
int group_leave(struct redis_conn *conn, const char *prefix, const char *consumer,
                group_leave_cb cb, void *data) WARN_UNUSED;
