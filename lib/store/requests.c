/* requests.c: audit-record operations, each one script round trip. */
#include "store/requests.h"

#include <hiredis/hiredis.h>

#include "core/buf.h"
#include "config.h"
#include "store/keys.h"
#include "store/op.h"
#include "store/redis.h"
#include "store/script.h"

#define REQUESTS_MAX_PAIRS 32

/*
 * KEYS[1] = record, KEYS[2] = conversation reference; ARGV[1] = request id
 * ("" = the conversation's latest), ARGV[2] = the record key prefix, ARGV[3]
 * = the asking conversation. A record of another conversation reads as none:
 * an id seen elsewhere must not show someone else's request (test email
 * included). The "latest" key is built here, not passed in KEYS, which is
 * safe because every key of a deployment shares the {prefix} hash tag.
 */
static const char get_lua[] =
    "local id = ARGV[1]\n"
    "local key = KEYS[1]\n"
    "if id == '' then\n"
    "  id = redis.call('HGET', KEYS[2], 'last_request_id')\n"
    "  if not id then return {'', {}} end\n"
    "  key = ARGV[2] .. id\n"
    "end\n"
    "if redis.call('HGET', key, 'conv') ~= ARGV[3] then return {'', {}} end\n"
    "return {id, redis.call('HGETALL', key)}\n";

const struct store_script requests_get_script = {"requests_get", get_lua, sizeof(get_lua) - 1};

/* KEYS[1] = record; ARGV = field/value pairs. Never recreates an expired record. */
static const char update_lua[] = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
                                 "redis.call('HSET', KEYS[1], unpack(ARGV))\n"
                                 "return 1\n";

const struct store_script requests_update_script = {"requests_update", update_lua,
                                                    sizeof(update_lua) - 1};

/*
 * Gives a request back to the channel. KEYS[1] = record, KEYS[2] = dedup
 * key; ARGV[1] = request id, ARGV[2] = why. The dedup key goes only while
 * it still names this request (a later activity's would stay).
 */
static const char fail_and_free_dedup_lua[] =
    "if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  redis.call('HSET', KEYS[1], 'status', " LUA_FAILED ", 'last_error', ARGV[2])\n"
    "end\n"
    "return 1\n";

const struct store_script requests_fail_and_free_dedup_script = {
    "requests_fail_and_free_dedup", fail_and_free_dedup_lua, sizeof(fail_and_free_dedup_lua) - 1};

static void on_get(int err, redisReply *r, void *data)
{
    struct store_op *op = data;
    const char *fields[REQUESTS_MAX_PAIRS], *values[REQUESTS_MAX_PAIRS];
    size_t i, n = 0;

    err = redis_reply_status(err, r);
    if (!err &&
        (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
         r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY))
        err = DG_ERR_PROTOCOL;
    if (err) {
        op->cb.get(err, "", NULL, NULL, 0, op->data);
        xfree(op);
        return;
    }
    for (i = 0; i + 1 < r->element[1]->elements && n < REQUESTS_MAX_PAIRS; i += 2, n++) {
        fields[n] = r->element[1]->element[i]->str;
        values[n] = r->element[1]->element[i + 1]->str;
    }
    op->cb.get(0, n ? r->element[0]->str : "", fields, values, n, op->data);
    xfree(op);
}

int requests_get(struct redis_conn *conn, const struct config *cfg, const char *request_id,
                 const char *conv_key, requests_get_cb cb, void *data)
{
    char *rec = keys_request(cfg->prefix, request_id);
    char *conv = keys_conv(cfg->prefix, conv_key);
    char *rec_prefix = keys_request_prefix(cfg->prefix);
    const char *argv[] = {"EVAL", get_lua, "2", rec, conv, request_id, rec_prefix, conv_key};
    struct store_op *op = store_op_new(data);
    int err;

    op->cb.get = cb;
    err = store_op_send(conn, on_get, op, (int)ARRAY_SIZE(argv), argv, NULL);
    xfree(rec);
    xfree(conv);
    xfree(rec_prefix);
    return err;
}

static void on_update(int err, redisReply *r, void *data)
{
    struct store_op *op = data;

    op->cb.done(redis_reply_status(err, r), op->data);
    xfree(op);
}

int requests_update(struct redis_conn *conn, const struct config *cfg, const char *request_id,
                    const char *const *fields, const char *const *values, size_t n,
                    requests_done_cb cb, void *data)
{
    const char *argv[4 + 2 * REQUESTS_MAX_PAIRS];
    char *rec;
    struct store_op *op;
    size_t i;
    int err;

    if (n == 0 || n > REQUESTS_MAX_PAIRS)
        return DG_ERR_INVALID;
    rec = keys_request(cfg->prefix, request_id);
    argv[0] = "EVAL";
    argv[1] = update_lua;
    argv[2] = "1";
    argv[3] = rec;
    for (i = 0; i < n; i++) {
        argv[4 + 2 * i] = fields[i];
        argv[5 + 2 * i] = values[i] ? values[i] : "";
    }
    op = store_op_new(data);
    op->cb.done = cb;
    err = store_op_send(conn, on_update, op, (int)(4 + 2 * n), argv, NULL);
    xfree(rec);
    return err;
}

int requests_release(struct redis_conn *conn, const struct config *cfg, const char *request_id,
                     const char *conv_key, const char *activity_id, const char *why,
                     requests_done_cb cb, void *data)
{
    char *rec = keys_request(cfg->prefix, request_id);
    char *dedup = keys_dedup(cfg->prefix, conv_key, activity_id);
    const char *argv[] = {"EVAL", fail_and_free_dedup_lua, "2", rec, dedup, request_id, why};
    struct store_op *op = store_op_new(data);
    int err;

    op->cb.done = cb;
    err = store_op_send(conn, on_update, op, (int)ARRAY_SIZE(argv), argv, NULL);
    xfree(rec);
    xfree(dedup);
    return err;
}
