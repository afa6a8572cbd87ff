/*
 * inspect.c: queue inspection and repair (see inspect.h). Every query is
 * one round trip; where several keys are read together (the snapshot) or
 * change together (requeue) it is one script, so the numbers agree with
 * each other and a crash cannot leave a job both dead and queued.
 */
#include "store/inspect.h"

#include <hiredis/hiredis.h>
#include <string.h>

#include "core/buf.h"
#include "core/json_build.h"
#include "store/cmd.h"
#include "store/keys.h"
#include "store/op.h"
#include "store/redis.h"
#include "store/script.h"

/* Names of fields a JSON answer copies from Redis; longer ones are cut. */
#define INSPECT_MAX_NAME 64

/* KEYS[1] = stream, KEYS[2] = dead stream. XINFO fails on a missing stream. */
static const char queue_lua[] =
    "local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])\n"
    "if not ok then groups = {} end\n"
    "return {redis.call('XLEN', KEYS[1]), groups, redis.call('XLEN', KEYS[2])}\n";

const struct store_script inspect_queue_script = {"inspect_queue", queue_lua,
                                                  sizeof(queue_lua) - 1};

/*
 * KEYS[1] = dead stream, KEYS[2] = stream, KEYS[3] = the audit record;
 * ARGV[1] = request id. The record's dead_id (written by the worker when it
 * dead-letters the job) names the dead entry, so this is O(1) however long
 * the dead stream: a scan inside one script would stall Redis for everyone.
 * Without it (the record expired after REQUEST_TTL_S) only the newest 1,000
 * dead entries are searched, a bounded cost.
 * Puts the entry's original job fields (SPEC §5, without the dead-letter
 * ones) back on the stream, deletes the dead entry and resets the record,
 * all in one atomic step. Returns the new entry id, or false when the
 * request is not dead. A record that has expired is not recreated as a
 * stub: the worker rebuilds it from the job.
 */
static const char requeue_lua[] =
    "local job = {request_id=1, activity_id=1, audience=1, test_email=1, conv=1, created_ms=1}\n"
    "local did = redis.call('HGET', KEYS[3], 'dead_id')\n"
    "local page = {}\n"
    "if did then page = redis.call('XRANGE', KEYS[1], did, did) end\n"
    "if #page == 0 then\n"
    "  -- the record expired (or predates dead_id): look among the newest only\n"
    "  for _, e in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1000)) do\n"
    "    for i = 1, #e[2], 2 do\n"
    "      if e[2][i] == 'request_id' and e[2][i + 1] == ARGV[1] then page = {e} end\n"
    "    end\n"
    "    if #page > 0 then break end\n"
    "  end\n"
    "  if #page == 0 then return false end\n"
    "  did = page[1][1]\n"
    "end\n"
    "local f, args, mine = page[1][2], {}, false\n"
    "for i = 1, #f, 2 do\n"
    "  if job[f[i]] then args[#args + 1] = f[i]; args[#args + 1] = f[i + 1] end\n"
    "  if f[i] == 'request_id' and f[i + 1] == ARGV[1] then mine = true end\n"
    "end\n"
    "if not mine then return false end\n"
    "local id = redis.call('XADD', KEYS[2], '*', unpack(args))\n"
    "redis.call('XDEL', KEYS[1], did)\n"
    "if redis.call('EXISTS', KEYS[3]) == 1 then\n"
    "  redis.call('HSET', KEYS[3], 'status', " LUA_QUEUED ", 'attempts', '0')\n"
    "  redis.call('HDEL', KEYS[3], 'dead_id', 'attempt_token')\n"
    "end\n"
    "return id\n";

const struct store_script inspect_requeue_script = {"inspect_requeue", requeue_lua,
                                                    sizeof(requeue_lua) - 1};

/* ---- Reply → JSON ------------------------------------------------------- */

/* One Redis value as JSON: numbers stay numbers, nil (and anything else) is null. */
static struct json_object *value_json(const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_INTEGER:
        return jint64((int64_t)r->integer);
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        return jstr_len(r->str, r->len);
    default:
        return NULL;
    }
}

/* A flat [field, value, …] array as an object; '-' in names becomes '_'. */
static struct json_object *pairs_json(const redisReply *r)
{
    struct json_object *o = jobj();
    char name[INSPECT_MAX_NAME];
    size_t i, j;

    for (i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];

        if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
            continue;
        for (j = 0; j < k->len && j < sizeof(name) - 1; j++)
            name[j] = k->str[j] == '-' ? '_' : k->str[j];
        name[j] = '\0';
        jset(o, name, value_json(r->element[i + 1]));
    }
    return o;
}

/* A reply that is there and no error: 0, else the decoders' error. */
static int reply_usable(const redisReply *r)
{
    if (!r)
        return DG_ERR_UNAVAILABLE;
    return r->type == REDIS_REPLY_ERROR ? DG_ERR_PROTOCOL : 0;
}

/* ---- Queries ------------------------------------------------------------ */

bool inspect_request_id_ok(const char *id)
{
    size_t i, len = strnlen(id, INSPECT_MAX_ID + 1);

    if (len == 0 || len > INSPECT_MAX_ID)
        return false;
    for (i = 0; i < len; i++) {
        char c = id[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-'))
            return false;
    }
    return true;
}

/* "EVAL" <script> <numkeys>: the start of every script command here. */
static void eval_start(struct store_cmd *c, const struct store_script *s, const char *numkeys)
{
    store_cmd_init(c);
    store_cmd_arg(c, "EVAL");
    store_cmd_arg_len(c, s->lua, s->len);
    store_cmd_arg(c, numkeys);
}

void inspect_queue_cmd(struct store_cmd *c, const char *prefix)
{
    eval_start(c, &inspect_queue_script, "2");
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_dead(prefix));
}

int inspect_queue_decode(const redisReply *r, struct json_object **out)
{
    struct json_object *o, *groups;
    int err = reply_usable(r);
    size_t i;

    *out = NULL;
    if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
                 r->element[1]->type != REDIS_REPLY_ARRAY))
        err = DG_ERR_PROTOCOL;
    if (err)
        return err;
    o = jobj();
    groups = jarr();
    for (i = 0; i < r->element[1]->elements; i++)
        if (r->element[1]->element[i]->type == REDIS_REPLY_ARRAY)
            jpush(groups, pairs_json(r->element[1]->element[i]));
    jset(o, "length", value_json(r->element[0]));
    jset(o, "groups", groups);
    jset(o, "dead", value_json(r->element[2]));
    *out = o;
    return 0;
}

int inspect_request_cmd(struct store_cmd *c, const char *prefix, const char *request_id)
{
    store_cmd_init(c);
    if (!inspect_request_id_ok(request_id))
        return DG_ERR_INVALID;
    store_cmd_arg(c, "HGETALL");
    store_cmd_take(c, keys_request(prefix, request_id));
    return 0;
}

/* HGETALL answers an empty array for a missing key: that is "no such record". */
int inspect_request_decode(const redisReply *r, struct json_object **out)
{
    int err = reply_usable(r);

    *out = NULL;
    if (!err && r->type != REDIS_REPLY_ARRAY)
        err = DG_ERR_PROTOCOL;
    if (!err && r->elements > 0)
        *out = pairs_json(r);
    return err;
}

int inspect_requeue_cmd(struct store_cmd *c, const char *prefix, const char *request_id)
{
    store_cmd_init(c);
    if (!inspect_request_id_ok(request_id))
        return DG_ERR_INVALID;
    eval_start(c, &inspect_requeue_script, "3");
    store_cmd_take(c, keys_dead(prefix));
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_request(prefix, request_id));
    store_cmd_arg(c, request_id);
    return 0;
}

/* The script answers the new id, or false (nil in RESP2) when the request is not dead. */
int inspect_requeue_decode(const redisReply *r, const char **stream_id)
{
    int err = reply_usable(r);

    *stream_id = NULL;
    if (!err && r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)
        err = DG_ERR_PROTOCOL;
    if (!err && r->type == REDIS_REPLY_STRING)
        *stream_id = r->str;
    return err;
}

struct json_object *inspect_requeued_json(const char *request_id, const char *stream_id)
{
    struct json_object *o = jobj();

    jset_str(o, "requestId", request_id);
    jset_str(o, "streamId", stream_id);
    return o;
}

/* ---- Async calls -------------------------------------------------------- */

/* The decoder of a JSON query travels beside the caller's callback. */
struct json_op {
    struct store_op op;
    int (*decode)(const redisReply *r, struct json_object **out);
};

static void on_json(int err, redisReply *r, void *data)
{
    struct json_op *jo = data;
    struct json_object *out = NULL;

    if (!err)
        err = jo->decode(r, &out);
    jo->op.cb.json(err, out, jo->op.data);
    xfree(jo);
}

/* Sends c (freed here, sent or not) with decode for its reply. */
static int send_json(struct redis_conn *conn, struct store_cmd *c,
                     int (*decode)(const redisReply *, struct json_object **), inspect_json_cb cb,
                     void *data)
{
    struct json_op *jo = xcalloc(1, sizeof(*jo));
    int err;

    jo->op.cb.json = cb;
    jo->op.data = data;
    jo->decode = decode;
    err = redis_conn_command(conn, 0, on_json, jo, c->argc, c->argv, c->argvlen);
    if (err)
        xfree(jo);
    store_cmd_free(c);
    return err;
}

int inspect_queue(struct redis_conn *conn, const char *prefix, inspect_json_cb cb, void *data)
{
    struct store_cmd c;

    inspect_queue_cmd(&c, prefix);
    return send_json(conn, &c, inspect_queue_decode, cb, data);
}

int inspect_request(struct redis_conn *conn, const char *prefix, const char *request_id,
                    inspect_json_cb cb, void *data)
{
    struct store_cmd c;
    int err = inspect_request_cmd(&c, prefix, request_id);

    if (err)
        return err;
    return send_json(conn, &c, inspect_request_decode, cb, data);
}

static void on_requeue(int err, redisReply *r, void *data)
{
    struct store_op *op = data;
    const char *stream_id = NULL;

    if (!err)
        err = inspect_requeue_decode(r, &stream_id);
    op->cb.requeue(err, stream_id, op->data);
    xfree(op);
}

int inspect_requeue(struct redis_conn *conn, const char *prefix, const char *request_id,
                    inspect_requeue_cb cb, void *data)
{
    struct store_cmd c;
    struct store_op *op;
    int err = inspect_requeue_cmd(&c, prefix, request_id);

    if (err)
        return err;
    op = store_op_new(data);
    op->cb.requeue = cb;
    err = store_op_send(conn, on_requeue, op, c.argc, c.argv, c.argvlen);
    store_cmd_free(&c);
    return err;
}
