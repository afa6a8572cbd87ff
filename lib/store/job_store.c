/* job_store.c: the worker's Redis steps, one script each (see job_store.h). */
#include "store/job_store.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/dec.h"
#include "config.h"
#include "store/history.h"
#include "store/keys.h"
#include "store/op.h"
#include "store/redis.h"
#include "store/script.h"

#define JOB_STORE_MAX_REF_PAIRS 32

/*
 * KEYS: stream, record, conversation reference. ARGV: group, entry id, now,
 * record TTL, then audience, test_email, conv, activity_id, created_ms (to
 * recreate a record that expired: the job is real, its log should be too),
 * then the attempt token: a begin sent again because its reply was lost
 * (a timeout) carries the same token and does not count a second attempt.
 */
static const char begin_lua[] =
    "local st = redis.call('HGET', KEYS[2], 'status')\n"
    "if " LUA_ST_ENDED " then\n"
    "  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "  return {st, 0, '', {}}\n"
    "end\n"
    "if not st then\n"
    "  redis.call('HSET', KEYS[2], 'mode', 'async', 'audience', ARGV[5], 'test_email', ARGV[6],\n"
    "    'conv', ARGV[7], 'activity_id', ARGV[8], 'created_ms', ARGV[9])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[4])\n"
    "end\n"
    "local n\n"
    "if redis.call('HGET', KEYS[2], 'attempt_token') == ARGV[10] then\n"
    "  n = tonumber(redis.call('HGET', KEYS[2], 'attempts')) or 0\n"
    "else\n"
    "  n = redis.call('HINCRBY', KEYS[2], 'attempts', 1)\n"
    "  redis.call('HSET', KEYS[2], 'attempt_token', ARGV[10])\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'status', " LUA_PROCESSING ")\n"
    "redis.call('HSETNX', KEYS[2], 'started_ms', ARGV[3])\n"
    "return {st or '', n, redis.call('HGET', KEYS[2], 'ack_activity_id') or '',\n"
    "  redis.call('HGETALL', KEYS[3])}\n";

const struct store_script job_store_begin_script = {"job_store_begin", begin_lua,
                                                    sizeof(begin_lua) - 1};

/*
 * Lua: whether the job's entry (ARGV[1] group, id) is pending under the
 * consumer named c, and the record (KEYS[2]) is processing under the
 * attempt token t: "this attempt holds the job".
 */
#define LUA_HOLDS                                                                                  \
    "local function holds(stream, rec, group, id, c, t)\n"                                         \
    "  local p = redis.call('XPENDING', stream, group, id, id, 1)\n"                               \
    "  return p[1] ~= nil and p[1][2] == c and\n"                                                  \
    "    redis.call('HGET', rec, 'status') == " LUA_PROCESSING " and\n"                            \
    "    redis.call('HGET', rec, 'attempt_token') == t\n"                                          \
    "end\n"

/*
 * The fence before a result is posted. KEYS: stream, record, schema. ARGV:
 * group, entry id, consumer, attempt token, this process's nonce, how long
 * a send marked by another process stays "maybe in flight" (ms), schema
 * version. Answers {code, text}: 0 not ours (text: the record's status, or
 * "entry deleted" when the entry is gone from the stream); 1 send; 2 a send
 * by another process was marked and is long over: send again, its outcome
 * unknown; 3 that send may still be in flight: ask again in text ms; 4 a
 * result was accepted already for an attempt that had lost the job (text:
 * its id): record it, send nothing. On 1 and 2 the send is marked
 * (send_token, send_consumer, send_ms from Redis's clock) and the lease
 * renewed in the same step, so the lease's safe end is a full
 * WORKER_CLAIM_IDLE_MS from here.
 */
static const char fence_lua[] = LUA_HOLDS
    "if not holds(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) then\n"
    "  return {0, redis.call('HGET', KEYS[2], 'status') or 'no record'}\n"
    "end\n"
    "local late = redis.call('HGET', KEYS[2], 'late_result_activity_id')\n"
    "if late then return {4, late} end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local code = 1\n"
    "local prev = redis.call('HGET', KEYS[2], 'send_token')\n"
    "if prev and prev ~= ARGV[4] and string.sub(prev, 1, #ARGV[5] + 1) ~= ARGV[5] .. '/' then\n"
    "  local left = (tonumber(redis.call('HGET', KEYS[2], 'send_ms')) or 0) +\n"
    "    tonumber(ARGV[6]) - now\n"
    "  if left > 0 then return {3, tostring(left)} end\n"
    "  code = 2\n"
    "end\n"
    /* An entry deleted from the stream leaves the pending list here (Redis 7): not ours. */
    "if #redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID') == 0 then\n"
    "  return {0, 'entry deleted'}\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'send_token', ARGV[4], 'send_consumer', ARGV[3],\n"
    "  'send_ms', tostring(now))\n"
    "if (tonumber(redis.call('GET', KEYS[3])) or 1) < tonumber(ARGV[7]) then\n"
    "  redis.call('SET', KEYS[3], ARGV[7])\n"
    "end\n"
    "return {code, ''}\n";

const struct store_script job_store_fence_script = {"job_store_fence", fence_lua,
                                                    sizeof(fence_lua) - 1};

/*
 * KEYS: stream, record, this minute's counts. ARGV: group, entry id, now,
 * result id, fetched_ms, TTL, consumer, attempt token. Only the attempt
 * that holds the job records it delivered (and XACKs): answers {1, ack
 * id}, or {2, ack id} when this very attempt recorded it already (its
 * reply was lost). Anything else is refused, {0, ''}: a record delivered
 * by another attempt is never overwritten, and a result accepted for an
 * attempt that lost the job is kept as late_result_activity_id (once) for
 * the holder, whose fence then records it instead of sending again.
 */
static const char delivered_lua[] = LUA_MINUTE_ADD LUA_HOLDS
    "local st = redis.call('HGET', KEYS[2], 'status')\n"
    "if st == " LUA_DELIVERED " then\n"
    "  if redis.call('HGET', KEYS[2], 'attempt_token') == ARGV[8] and\n"
    "     redis.call('HGET', KEYS[2], 'result_activity_id') == ARGV[4] then\n"
    "    return {2, redis.call('HGET', KEYS[2], 'ack_activity_id') or ''}\n"
    "  end\n"
    "  return {0, ''}\n"
    "end\n"
    "if not holds(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[7], ARGV[8]) then\n"
    "  if st == " LUA_PROCESSING " or st == " LUA_QUEUED " then\n"
    "    redis.call('HSETNX', KEYS[2], 'late_result_activity_id', ARGV[4])\n"
    "    redis.call('HSETNX', KEYS[2], 'late_ms', ARGV[3])\n"
    "  end\n"
    "  return {0, ''}\n"
    "end\n"
    "minute_add(KEYS[3], '" HISTORY_F_DELIVERED "', 1)\n"
    "redis.call('HSET', KEYS[2], 'status', " LUA_DELIVERED ", 'delivered_ms', ARGV[3],\n"
    "  'result_activity_id', ARGV[4], 'fetched_ms', ARGV[5], 'last_error', '')\n"
    /* Delivered and recorded: the send mark has nothing left to say. */
    "redis.call('HDEL', KEYS[2], 'send_token', 'send_consumer', 'send_ms')\n"
    "if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end\n"
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "return {1, redis.call('HGET', KEYS[2], 'ack_activity_id') or ''}\n";

const struct store_script job_store_delivered_script = {"job_store_delivered", delivered_lua,
                                                        sizeof(delivered_lua) - 1};

/*
 * KEYS: stream, dead stream, record, reference, this minute's counts. ARGV:
 * group, entry id, status, reason, attempts, now, stale flag, TTL, attempt
 * token, consumer, then the job's field pairs. Only the consumer whose
 * pending entry it is ends a job (and XACKs it): another one's attempt,
 * which lost the job, changes nothing and is told recorded 0. The minute counts the end under the
 * status's own name (dead or failed), once.
 * The status check makes a second run (a lost reply, sent again) add nothing,
 * and keeps a job that was delivered from being called dead. Answers
 * {recorded, ack id}: recorded 0 when the job had ended already, unless by
 * this very attempt (its token is the record's): then this is our own step
 * sent again after its reply was lost, and the user is still to be told. The
 * record keeps the dead entry's id (dead_id) for a requeue to find it.
 */
static const char dead_lua[] = LUA_MINUTE_ADD
    "local st = redis.call('HGET', KEYS[3], 'status')\n"
    "local ended = " LUA_ST_ENDED "\n"
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)\n"
    "local mine = p[1] ~= nil and p[1][2] == ARGV[10]\n"
    "if not ended and not mine then\n"
    "  return {0, redis.call('HGET', KEYS[3], 'ack_activity_id') or ''}\n"
    "end\n"
    "if not ended then\n"
    "  minute_add(KEYS[5], ARGV[3], 1)\n"
    "  local f = {}\n"
    "  for i = 11, #ARGV do f[#f + 1] = ARGV[i] end\n"
    "  f[#f + 1] = 'reason'; f[#f + 1] = ARGV[4]\n"
    "  f[#f + 1] = 'attempts'; f[#f + 1] = ARGV[5]\n"
    "  f[#f + 1] = 'failed_ms'; f[#f + 1] = ARGV[6]\n"
    "  local did = redis.call('XADD', KEYS[2], '*', unpack(f))\n"
    "  redis.call('HSET', KEYS[3], 'status', ARGV[3], 'last_error', ARGV[4], 'attempts', ARGV[5],\n"
    "    'dead_id', did)\n"
    /* Ended knowingly: a requeue must not wait out this attempt's send mark. */
    "  redis.call('HDEL', KEYS[3], 'send_token', 'send_consumer', 'send_ms')\n"
    "  if redis.call('TTL', KEYS[3]) < 0 then redis.call('EXPIRE', KEYS[3], ARGV[8]) end\n"
    "  if ARGV[7] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then\n"
    "    redis.call('HSET', KEYS[4], 'stale', '1')\n"
    "  end\n"
    "end\n"
    "if mine then redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) end\n"
    "local recorded = 0\n"
    "if not ended or (st ~= " LUA_DELIVERED " and\n"
    "                 redis.call('HGET', KEYS[3], 'attempt_token') == ARGV[9]) then\n"
    "  recorded = 1\n"
    "end\n"
    "return {recorded, redis.call('HGET', KEYS[3], 'ack_activity_id') or ''}\n";

const struct store_script job_store_dead_script = {"job_store_dead", dead_lua,
                                                   sizeof(dead_lua) - 1};

/* KEYS: stream. ARGV: group, consumer, ids… Answers the ids that are not ours. */
static const char renew_lua[] =
    "local lost = {}\n"
    "for i = 3, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
    "  if p[1] and p[1][2] == ARGV[2] then\n"
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')\n"
    "  else\n"
    "    lost[#lost + 1] = ARGV[i]\n"
    "  end\n"
    "end\n"
    "return lost\n";

const struct store_script job_store_renew_script = {"job_store_renew", renew_lua,
                                                    sizeof(renew_lua) - 1};

/*
 * Hands a job back at shutdown. KEYS: stream, record. ARGV: group, consumer,
 * entry id, then the job's field pairs. Only while the entry is still
 * pending under this consumer (else another holds it, or it ended).
 */
static const char return_to_stream_lua[] =
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)\n"
    "if not p[1] or p[1][2] ~= ARGV[2] then return 0 end\n"
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])\n"
    "local sid = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))\n"
    "if redis.call('HGET', KEYS[2], 'status') == " LUA_PROCESSING " then\n"
    "  redis.call('HSET', KEYS[2], 'status', " LUA_QUEUED ", 'stream_id', sid)\n"
    "end\n"
    "return 1\n";

const struct store_script job_store_return_to_stream_script = {
    "job_store_return_to_stream", return_to_stream_lua, sizeof(return_to_stream_lua) - 1};

static bool is_string(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

/* Keys of one job: the stream, its record and its conversation reference. */
struct job_keys {
    char *stream, *rec, *conv;
};

static void keys_make(struct job_keys *k, const struct config *cfg, const struct job_fields *job)
{
    k->stream = keys_stream(cfg->prefix);
    k->rec = keys_request(cfg->prefix, job->request_id);
    k->conv = keys_conv(cfg->prefix, job->conv);
}

static void keys_free(struct job_keys *k)
{
    xfree(k->stream);
    xfree(k->rec);
    xfree(k->conv);
}

static void on_begin(int err, redisReply *r, void *data)
{
    struct store_op *op = data;
    const char *fields[JOB_STORE_MAX_REF_PAIRS], *values[JOB_STORE_MAX_REF_PAIRS];
    struct job_begin b = {0};
    const redisReply *ref;
    size_t i;

    err = redis_reply_status(err, r);
    if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || !is_string(r->element[0]) ||
                 r->element[1]->type != REDIS_REPLY_INTEGER || !is_string(r->element[2]) ||
                 r->element[3]->type != REDIS_REPLY_ARRAY))
        err = DG_ERR_PROTOCOL;
    if (err) {
        op->cb.begin(err, NULL, op->data);
        xfree(op);
        return;
    }
    /* "" (no record) or a name we do not know: no status, so not ended (as in the script). */
    b.had_status = request_status_parse(r->element[0]->str, &b.status) == 0;
    b.ended = b.had_status && request_status_ended(b.status);
    b.attempts = r->element[1]->integer > 0 ? (unsigned)r->element[1]->integer : 0;
    b.ack_activity_id = r->element[2]->str;
    ref = r->element[3];
    for (i = 0; i + 1 < ref->elements && b.n_ref < JOB_STORE_MAX_REF_PAIRS; i += 2) {
        if (!is_string(ref->element[i]) || !is_string(ref->element[i + 1]))
            continue;
        fields[b.n_ref] = ref->element[i]->str;
        values[b.n_ref] = ref->element[i + 1]->str;
        b.n_ref++;
    }
    b.ref_fields = fields;
    b.ref_values = values;
    op->cb.begin(0, &b, op->data);
    xfree(op);
}

int job_store_begin(struct redis_conn *conn, const struct config *cfg, const struct job_fields *job,
                    const char *attempt_token, uint64_t now_ms, job_store_begin_cb cb, void *data)
{
    struct job_keys k;
    char now[DEC_U64_SIZE], ttl[DEC_U64_SIZE];
    struct store_op *op = store_op_new(data);
    int err;

    keys_make(&k, cfg, job);
    dec_u64(now, now_ms);
    dec_u64(ttl, cfg->request_ttl_s);
    {
        const char *argv[] = {"EVAL",
                              begin_lua,
                              "3",
                              k.stream,
                              k.rec,
                              k.conv,
                              KEYS_GROUP,
                              job->stream_id,
                              now,
                              ttl,
                              job->audience,
                              job->test_email,
                              job->conv,
                              job->activity_id,
                              job->created_ms,
                              attempt_token};
        op->cb.begin = cb;
        err = store_op_send(conn, on_begin, op, (int)ARRAY_SIZE(argv), argv, NULL);
    }
    keys_free(&k);
    return err;
}

static void on_dead(int err, redisReply *r, void *data)
{
    struct store_op *op = data;

    err = redis_reply_status(err, r);
    if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                 r->element[0]->type != REDIS_REPLY_INTEGER || !is_string(r->element[1])))
        err = DG_ERR_PROTOCOL;
    op->cb.dead(err, !err && r->element[0]->integer == 1, err ? "" : r->element[1]->str, op->data);
    xfree(op);
}

static void on_delivered(int err, redisReply *r, void *data)
{
    struct store_op *op = data;

    err = redis_reply_status(err, r);
    if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                 r->element[0]->type != REDIS_REPLY_INTEGER || !is_string(r->element[1])))
        err = DG_ERR_PROTOCOL;
    op->cb.delivered(err, !err && r->element[0]->integer != 0, err ? "" : r->element[1]->str,
                     op->data);
    xfree(op);
}

int job_store_delivered(struct redis_conn *conn, const struct config *cfg,
                        const struct job_fields *job, const char *consumer,
                        const char *attempt_token, const char *result_activity_id,
                        uint64_t fetched_ms, uint64_t now_ms, job_store_delivered_cb cb, void *data)
{
    struct job_keys k;
    char now[DEC_U64_SIZE], fetched[DEC_U64_SIZE], ttl[DEC_U64_SIZE], *minute;
    struct store_op *op = store_op_new(data);
    int err;

    keys_make(&k, cfg, job);
    minute = keys_minute(cfg->prefix, history_minute(now_ms));
    dec_u64(now, now_ms);
    dec_u64(fetched, fetched_ms);
    dec_u64(ttl, cfg->request_ttl_s);
    {
        const char *argv[] = {"EVAL",     delivered_lua,  "3", k.stream,           k.rec,   minute,
                              KEYS_GROUP, job->stream_id, now, result_activity_id, fetched, ttl,
                              consumer,   attempt_token};
        op->cb.delivered = cb;
        err = store_op_send(conn, on_delivered, op, (int)ARRAY_SIZE(argv), argv, NULL);
    }
    keys_free(&k);
    xfree(minute);
    return err;
}

int job_store_dead(struct redis_conn *conn, const struct config *cfg, const struct job_fields *job,
                   const char *consumer, const char *attempt_token, enum request_status status,
                   const char *reason, unsigned attempts, bool mark_stale, uint64_t now_ms,
                   job_store_dead_cb cb, void *data)
{
    struct job_keys k;
    char *dead, *minute;
    char now[DEC_U64_SIZE], ttl[DEC_U64_SIZE], n[DEC_U64_SIZE];
    struct store_op *op;
    int err;

    /* Only these two end a job without a result. */
    if (status != REQUEST_STATUS_DEAD && status != REQUEST_STATUS_FAILED)
        return DG_ERR_INVALID;
    dead = keys_dead(cfg->prefix);
    minute = keys_minute(cfg->prefix, history_minute(now_ms));
    op = store_op_new(data);
    keys_make(&k, cfg, job);
    dec_u64(now, now_ms);
    dec_u64(ttl, cfg->request_ttl_s);
    dec_u64(n, attempts);
    {
        /* The dead entry keeps the job's own fields first, as on the stream. */
        const char *argv[] = {"EVAL",
                              dead_lua,
                              "5",
                              k.stream,
                              dead,
                              k.rec,
                              k.conv,
                              minute,
                              KEYS_GROUP,
                              job->stream_id,
                              request_status_name(status),
                              reason,
                              n,
                              now,
                              mark_stale ? "1" : "0",
                              ttl,
                              attempt_token,
                              consumer,
                              "request_id",
                              job->request_id,
                              "activity_id",
                              job->activity_id,
                              "audience",
                              job->audience,
                              "test_email",
                              job->test_email,
                              "conv",
                              job->conv,
                              "created_ms",
                              job->created_ms,
                              "stream_id",
                              job->stream_id};
        op->cb.dead = cb;
        err = store_op_send(conn, on_dead, op, (int)ARRAY_SIZE(argv), argv, NULL);
    }
    keys_free(&k);
    xfree(dead);
    xfree(minute);
    return err;
}

static void on_renew(int err, redisReply *r, void *data)
{
    struct store_op *op = data;
    const char *lost[JOB_STORE_MAX_RENEW];
    size_t i, n = 0;

    err = redis_reply_status(err, r);
    if (!err && r->type != REDIS_REPLY_ARRAY)
        err = DG_ERR_PROTOCOL;
    for (i = 0; !err && i < r->elements && n < JOB_STORE_MAX_RENEW; i++)
        if (is_string(r->element[i]))
            lost[n++] = r->element[i]->str;
    op->cb.renew(err, lost, n, op->data);
    xfree(op);
}

int job_store_renew(struct redis_conn *conn, const struct config *cfg, const char *consumer,
                    const char *const *ids, size_t n, job_store_renew_cb cb, void *data)
{
    const char *argv[6 + JOB_STORE_MAX_RENEW];
    char *stream;
    struct store_op *op;
    size_t i;
    int err;

    if (n == 0 || n > JOB_STORE_MAX_RENEW)
        return DG_ERR_INVALID;
    stream = keys_stream(cfg->prefix);
    argv[0] = "EVAL";
    argv[1] = renew_lua;
    argv[2] = "1";
    argv[3] = stream;
    argv[4] = KEYS_GROUP;
    argv[5] = consumer;
    for (i = 0; i < n; i++)
        argv[6 + i] = ids[i];
    op = store_op_new(data);
    op->cb.renew = cb;
    err = store_op_send(conn, on_renew, op, (int)(6 + n), argv, NULL);
    xfree(stream);
    return err;
}

static void on_release(int err, redisReply *r, void *data)
{
    struct store_op *op = data;

    err = redis_reply_status(err, r);
    if (!err && r->type != REDIS_REPLY_INTEGER)
        err = DG_ERR_PROTOCOL;
    op->cb.release(err, !err && r->integer == 1, op->data);
    xfree(op);
}

int job_store_release(struct redis_conn *conn, const struct config *cfg, const char *consumer,
                      const struct job_fields *job, job_store_release_cb cb, void *data)
{
    struct job_keys k;
    struct store_op *op = store_op_new(data);
    int err;

    keys_make(&k, cfg, job);
    {
        const char *argv[] = {"EVAL",        return_to_stream_lua,
                              "2",           k.stream,
                              k.rec,         KEYS_GROUP,
                              consumer,      job->stream_id,
                              "request_id",  job->request_id,
                              "activity_id", job->activity_id,
                              "audience",    job->audience,
                              "test_email",  job->test_email,
                              "conv",        job->conv,
                              "created_ms",  job->created_ms};
        op->cb.release = cb;
        err = store_op_send(conn, on_release, op, (int)ARRAY_SIZE(argv), argv, NULL);
    }
    keys_free(&k);
    return err;
}

static void on_fence(int err, redisReply *r, void *data)
{
    struct store_op *op = data;
    struct job_fence f = {0};
    char *end;

    err = redis_reply_status(err, r);
    if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                 r->element[0]->type != REDIS_REPLY_INTEGER || !is_string(r->element[1]) ||
                 r->element[0]->integer < 0 || r->element[0]->integer > JOB_FENCE_LATE))
        err = DG_ERR_PROTOCOL;
    if (!err) {
        f.answer = (enum job_fence_answer)r->element[0]->integer;
        f.text = r->element[1]->str;
        if (f.answer == JOB_FENCE_WAIT) {
            f.wait_ms = strtoull(f.text, &end, 10);
            if (*end != '\0')
                err = DG_ERR_PROTOCOL;
        }
    }
    op->cb.fence(err, err ? NULL : &f, op->data);
    xfree(op);
}

int job_store_fence(struct redis_conn *conn, const struct config *cfg, const struct job_fields *job,
                    const char *consumer, const char *attempt_token, const char *nonce,
                    uint64_t unknown_wait_ms, job_store_fence_cb cb, void *data)
{
    struct job_keys k;
    char wait[DEC_U64_SIZE], *schema;
    struct store_op *op = store_op_new(data);
    int err;

    keys_make(&k, cfg, job);
    schema = keys_schema(cfg->prefix);
    dec_u64(wait, unknown_wait_ms);
    {
        const char *argv[] = {"EVAL",
                              fence_lua,
                              "3",
                              k.stream,
                              k.rec,
                              schema,
                              KEYS_GROUP,
                              job->stream_id,
                              consumer,
                              attempt_token,
                              nonce,
                              wait,
                              DG_STRINGIFY(JOB_STORE_SCHEMA)};
        op->cb.fence = cb;
        err = store_op_send(conn, on_fence, op, (int)ARRAY_SIZE(argv), argv, NULL);
    }
    keys_free(&k);
    xfree(schema);
    return err;
}
