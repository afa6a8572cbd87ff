/*
 * inspect.c: one request's whole state, and the repairs of dead jobs (see
 * inspect.h), plus the reply-to-JSON helpers every query shares
 * (inspect_internal.h). The queue-wide views are inspect_queue.c. Each
 * query is one round trip; where several keys are read together or change
 * together it is one script, so the numbers agree with each other and a
 * crash cannot leave a job both dead and queued.
 */
#include "store/inspect.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json_build.h"
#include "store/cmd.h"
#include "store/inspect_internal.h"
#include "store/keys.h"
#include "store/op.h"
#include "store/procs.h"
#include "store/redis.h"
#include "store/script.h"

/* Names of fields a JSON answer copies from Redis; longer ones are cut. */
#define INSPECT_MAX_NAME 64

/*
 * Lua: requeue_one(stream, dead, did, fields, rec, now) puts a dead entry's
 * job fields (SPEC §5, without the dead-letter ones) back on the stream as a
 * new entry, deletes the dead entry and resets the record if there is one
 * (a record that expired is not recreated as a stub: the worker rebuilds it
 * from the job). Returns the new entry's id. Shared by both requeues.
 */
/* clang-format off */
#define LUA_REQUEUE_ONE                                                                          \
    "local job = {request_id=1, activity_id=1, audience=1, test_email=1, conv=1, created_ms=1}\n" \
    "local function requeue_one(stream, dead, did, f, rec, now)\n"                               \
    "  local args = {}\n"                                                                        \
    "  for i = 1, #f, 2 do\n"                                                                    \
    "    if job[f[i]] then args[#args + 1] = f[i]; args[#args + 1] = f[i + 1] end\n"              \
    "  end\n"                                                                                    \
    "  local id = redis.call('XADD', stream, '*', unpack(args))\n"                               \
    "  redis.call('XDEL', dead, did)\n"                                                          \
    "  if rec and redis.call('EXISTS', rec) == 1 then\n"                                         \
    "    redis.call('HSET', rec, 'status', " LUA_QUEUED ", 'attempts', '0', 'stream_id', id,\n"   \
    "      'requeued_ms', now)\n"                                                                \
    "    redis.call('HINCRBY', rec, 'requeues', 1)\n"                                            \
    "    redis.call('HDEL', rec, 'dead_id', 'attempt_token')\n"                                  \
    "  end\n"                                                                                    \
    "  return id\n"                                                                              \
    "end\n"
/* clang-format on */

/*
 * KEYS[1] = dead stream, KEYS[2] = stream, KEYS[3] = the audit record;
 * ARGV[1] = request id. The record's dead_id (written by the worker when it
 * dead-letters the job) names the dead entry, so this is O(1) however long
 * the dead stream: a scan inside one script would stall Redis for everyone.
 * Without it (the record expired after REQUEST_TTL_S) only the newest 1,000
 * dead entries are searched, a bounded cost. Returns the new entry id, or
 * false when the request is not dead.
 */
/* clang-format off */
static const char requeue_lua[] =
    LUA_NOW_MS
    LUA_REQUEUE_ONE
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
    "end\n"
    "local f, mine = page[1][2], false\n"
    "for i = 1, #f, 2 do\n"
    "  if f[i] == 'request_id' and f[i + 1] == ARGV[1] then mine = true end\n"
    "end\n"
    "if not mine then return false end\n"
    "return requeue_one(KEYS[2], KEYS[1], page[1][1], f, KEYS[3], now_ms())\n";
/* clang-format on */

const struct store_script inspect_requeue_script = {"inspect_requeue", requeue_lua,
                                                    sizeof(requeue_lua) - 1};

/*
 * KEYS[1] = dead stream, KEYS[2] = stream; ARGV[1] = the record key
 * prefix, ARGV[2] = the count expected ('' after the first call), ARGV[3] =
 * the newest dead entry when it started ('' on the first call), ARGV[4] =
 * entries per call. The first call answers {-1, count} when the count is
 * not the caller's and requeues nothing. Answers {requeued, more,
 * boundary}. Each entry's record key is built from its request_id, which is
 * safe: every key shares the {P} hash tag.
 */
/* clang-format off */
static const char requeue_all_lua[] =
    LUA_NOW_MS
    LUA_REQUEUE_ONE
    "local boundary = ARGV[3]\n"
    "if ARGV[2] ~= '' then\n"
    "  local n = redis.call('XLEN', KEYS[1])\n"
    "  if n ~= tonumber(ARGV[2]) then return {-1, n, ''} end\n"
    "  if n == 0 then return {0, 0, ''} end\n"
    "  boundary = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1][1]\n"
    "end\n"
    "local now = now_ms()\n"
    "local page = redis.call('XRANGE', KEYS[1], '-', boundary, 'COUNT', ARGV[4])\n"
    "for _, e in ipairs(page) do\n"
    "  local rec = false\n"
    "  for i = 1, #e[2], 2 do\n"
    "    if e[2][i] == 'request_id' then rec = ARGV[1] .. e[2][i + 1] end\n"
    "  end\n"
    "  requeue_one(KEYS[2], KEYS[1], e[1], e[2], rec, now)\n"
    "end\n"
    "local left = redis.call('XRANGE', KEYS[1], '-', boundary, 'COUNT', 1)\n"
    "return {#page, #left, boundary}\n";
/* clang-format on */

const struct store_script inspect_requeue_all_script = {"inspect_requeue_all", requeue_all_lua,
                                                        sizeof(requeue_all_lua) - 1};

/*
 * KEYS[1] = the record, KEYS[2] = stream, KEYS[3] = dead stream; ARGV[1] =
 * group, ARGV[2] = the reference key prefix, ARGV[3] = the heartbeat key
 * prefix. The entry, its pending state and the dead entry are found from
 * the record's stream_id and dead_id, so this is O(1) however long the
 * streams. The reference and the holder's heartbeat are named from what
 * the record and XPENDING say (same hash tag). ARGV[4] is the request id,
 * answered back for the decoder. Answers {now, record, entry, pending,
 * holder alive, dead entry, reference, request id}, or {now, {}} for none.
 */
/* clang-format off */
static const char request_lua[] =
    LUA_NOW_MS
    "local now = now_ms()\n"
    "local rec = redis.call('HGETALL', KEYS[1])\n"
    "if #rec == 0 then return {now, rec} end\n"
    "local r = {}\n"
    "for i = 1, #rec, 2 do r[rec[i]] = rec[i + 1] end\n"
    "local entry, pend, alive, dead, conv = false, false, 0, false, false\n"
    "if r['stream_id'] then\n"
    "  entry = redis.call('XRANGE', KEYS[2], r['stream_id'], r['stream_id'])[1] or false\n"
    "  local ok, p = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[1], r['stream_id'],\n"
    "    r['stream_id'], 1)\n"
    "  if ok and p[1] then\n"
    "    pend = p[1]\n"
    "    alive = redis.call('EXISTS', ARGV[3] .. p[1][2])\n"
    "  end\n"
    "end\n"
    "if r['dead_id'] then\n"
    "  dead = redis.call('XRANGE', KEYS[3], r['dead_id'], r['dead_id'])[1] or false\n"
    "end\n"
    "if r['conv'] then\n"
    "  local c = redis.call('HGETALL', ARGV[2] .. r['conv'])\n"
    "  if #c > 0 then conv = c end\n"
    "end\n"
    "return {now, rec, entry, pend, alive, dead, conv, ARGV[4]}\n";
/* clang-format on */

const struct store_script inspect_request_script = {"inspect_request", request_lua,
                                                    sizeof(request_lua) - 1};

/* ---- Reply → JSON (inspect_internal.h) ------------------------------------ */

bool inspect_is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

int inspect_reply_usable(const redisReply *r)
{
    if (!r)
        return DG_ERR_UNAVAILABLE;
    return r->type == REDIS_REPLY_ERROR ? DG_ERR_PROTOCOL : 0;
}

struct json_object *inspect_value_json(const redisReply *r)
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

struct json_object *inspect_pairs_json(const redisReply *r)
{
    struct json_object *o = jobj();
    char name[INSPECT_MAX_NAME];
    size_t i, j;

    if (r->type != REDIS_REPLY_ARRAY)
        return o;
    for (i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];

        if (!inspect_is_str(k))
            continue;
        for (j = 0; j < k->len && j < sizeof(name) - 1; j++)
            name[j] = k->str[j] == '-' ? '_' : k->str[j];
        name[j] = '\0';
        jset(o, name, inspect_value_json(r->element[i + 1]));
    }
    return o;
}

const redisReply *inspect_pair(const redisReply *flat, const char *name)
{
    if (!flat || flat->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < flat->elements; i += 2)
        if (inspect_is_str(flat->element[i]) && strcmp(flat->element[i]->str, name) == 0)
            return flat->element[i + 1];
    return NULL;
}

int64_t inspect_int(const redisReply *r, int64_t dflt)
{
    char *end;
    long long v;

    if (!r)
        return dflt;
    if (r->type == REDIS_REPLY_INTEGER)
        return (int64_t)r->integer;
    if (!inspect_is_str(r) || r->len == 0)
        return dflt;
    v = strtoll(r->str, &end, 10);
    return *end == '\0' ? (int64_t)v : dflt;
}

int64_t inspect_id_ms(const char *id)
{
    char *end;
    long long ms = strtoll(id, &end, 10);

    return end != id && *end == '-' ? (int64_t)ms : 0;
}

struct json_object *inspect_entry_json(const redisReply *e)
{
    struct json_object *o;

    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !inspect_is_str(e->element[0]))
        return NULL;
    o = inspect_pairs_json(e->element[1]);
    jset_str(o, "id", e->element[0]->str);
    return o;
}

/* Heartbeat fields written as numbers (procs.h); the rest stay strings. */
static const char *const proc_numbers[] = {"pid",         "started_ms", "beat_ms",   "in_flight",
                                           "concurrency", "rss_bytes",  "jobs_done", "jobs_failed"};

struct json_object *inspect_proc_json(const redisReply *p, int64_t now_ms)
{
    static const char *const strings[] = {"role", "version", "host", "listen", "async_mode"};
    const redisReply *flat = p->element[1];
    struct json_object *o = jobj();
    int64_t started, beat;

    jset_str(o, "name", p->element[0]->str);
    for (size_t i = 0; i < ARRAY_SIZE(strings); i++) {
        const redisReply *v = inspect_pair(flat, strings[i]);
        jset(o, strings[i], v ? inspect_value_json(v) : NULL);
    }
    for (size_t i = 0; i < ARRAY_SIZE(proc_numbers); i++) {
        const redisReply *v = inspect_pair(flat, proc_numbers[i]);
        int64_t n = inspect_int(v, -1);
        jset(o, proc_numbers[i], n >= 0 ? jint64(n) : NULL);
    }
    started = inspect_int(inspect_pair(flat, "started_ms"), 0);
    beat = inspect_int(inspect_pair(flat, "beat_ms"), 0);
    /* started_ms is the process's clock, now Redis's: a little skew is clamped away. */
    jset(o, "uptime_ms", started ? jint64(now_ms > started ? now_ms - started : 0) : NULL);
    jset(o, "beat_age_ms", beat ? jint64(now_ms > beat ? now_ms - beat : 0) : NULL);
    return o;
}

bool inspect_proc_alive(const redisReply *procs, const char *name)
{
    if (!procs || procs->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < procs->elements; i++) {
        const redisReply *p = procs->element[i];
        if (p->type == REDIS_REPLY_ARRAY && p->elements == 2 && inspect_is_str(p->element[0]) &&
            strcmp(p->element[0]->str, name) == 0)
            return true;
    }
    return false;
}

void inspect_eval_start(struct store_cmd *c, const struct store_script *s, int numkeys)
{
    store_cmd_init(c);
    store_cmd_arg(c, "EVAL");
    store_cmd_arg_len(c, s->lua, s->len);
    store_cmd_arg_u64(c, (uint64_t)numkeys);
}

/* ---- Async plumbing ---------------------------------------------------- */

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

int inspect_send_json(struct redis_conn *conn, struct store_cmd *c,
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

/* ---- One request --------------------------------------------------------- */

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

int inspect_request_cmd(struct store_cmd *c, const char *prefix, const char *request_id)
{
    store_cmd_init(c);
    if (!inspect_request_id_ok(request_id))
        return DG_ERR_INVALID;
    inspect_eval_start(c, &inspect_request_script, 3);
    store_cmd_take(c, keys_request(prefix, request_id));
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_dead(prefix));
    store_cmd_arg(c, KEYS_GROUP);
    store_cmd_take(c, keys_conv(prefix, ""));
    store_cmd_take(c, keys_proc_prefix(prefix));
    store_cmd_arg(c, request_id);
    return 0;
}

/* The steps of a request that its record dates, in time order. */
struct step {
    const char *name;
    int64_t at;
};

static int step_cmp(const void *a, const void *b)
{
    const struct step *x = a, *y = b;

    return (x->at > y->at) - (x->at < y->at);
}

/* queued (received, for sync) → processing → fetched → delivered; requeued; dead/failed. */
static struct json_object *timeline_json(const redisReply *rec, const redisReply *dead)
{
    const redisReply *mode = inspect_pair(rec, "mode");
    const redisReply *status = inspect_pair(rec, "status");
    bool sync = mode && inspect_is_str(mode) && strcmp(mode->str, "sync") == 0;
    struct step s[6] = {
        {sync ? "received" : "queued", inspect_int(inspect_pair(rec, "created_ms"), 0)},
        {"processing", inspect_int(inspect_pair(rec, "started_ms"), 0)},
        {"fetched", inspect_int(inspect_pair(rec, "fetched_ms"), 0)},
        {"delivered", inspect_int(inspect_pair(rec, "delivered_ms"), 0)},
        {"requeued", inspect_int(inspect_pair(rec, "requeued_ms"), 0)},
        {status && inspect_is_str(status) ? status->str : "ended",
         dead ? inspect_int(inspect_pair(dead->element[1], "failed_ms"), 0) : 0},
    };
    struct json_object *arr = jarr();
    int64_t prev = 0;

    qsort(s, ARRAY_SIZE(s), sizeof(s[0]), step_cmp);
    for (size_t i = 0; i < ARRAY_SIZE(s); i++) {
        struct json_object *o;

        if (s[i].at <= 0)
            continue;
        o = jobj();
        jset_str(o, "step", s[i].name);
        jset(o, "at_ms", jint64(s[i].at));
        jset(o, "after_ms", prev ? jint64(s[i].at - prev) : NULL);
        jpush(arr, o);
        prev = s[i].at;
    }
    return arr;
}

/* XPENDING's [id, consumer, idle, deliveries] of the request's entry, and its holder's heartbeat.
 */
static struct json_object *pending_json(const redisReply *p, const redisReply *alive)
{
    struct json_object *o;

    if (p->type != REDIS_REPLY_ARRAY || p->elements != 4)
        return NULL;
    o = jobj();
    jset(o, "consumer", inspect_value_json(p->element[1]));
    jset(o, "consumer_alive", jbool(alive->type == REDIS_REPLY_INTEGER && alive->integer == 1));
    jset(o, "idle_ms", inspect_value_json(p->element[2]));
    jset(o, "deliveries", inspect_value_json(p->element[3]));
    return o;
}

/* {"id","fields":{…}}: an entry whose fields are data, beside the record's. */
static struct json_object *entry_fields_json(const redisReply *e)
{
    struct json_object *o;

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !inspect_is_str(e->element[0]))
        return NULL;
    o = jobj();
    jset_str(o, "id", e->element[0]->str);
    jset(o, "fields", inspect_pairs_json(e->element[1]));
    return o;
}

/* The script's answer (see request_lua) as inspect.h describes it. */
int inspect_request_decode(const redisReply *r, struct json_object **out)
{
    const redisReply *dead;
    struct json_object *o, *conv;
    int err = inspect_reply_usable(r);

    *out = NULL;
    if (!err &&
        (r->type != REDIS_REPLY_ARRAY || (r->elements != 2 && r->elements != 8) ||
         r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_ARRAY))
        err = DG_ERR_PROTOCOL;
    if (err || r->element[1]->elements == 0)
        return err;
    if (r->elements != 8 || !inspect_is_str(r->element[7]))
        return DG_ERR_PROTOCOL;
    /* An entry is [id, fields]: any other shape is no dead entry (found by fuzz_redis_reply). */
    dead = r->element[5]->type == REDIS_REPLY_ARRAY && r->element[5]->elements == 2 ? r->element[5]
                                                                                    : NULL;
    o = inspect_pairs_json(r->element[1]);
    jset_str(o, "request_id", r->element[7]->str);
    jset(o, "now_ms", jint64(r->element[0]->integer));
    jset(o, "timeline", timeline_json(r->element[1], dead));
    jset(o, "entry", entry_fields_json(r->element[2]));
    jset(o, "pending", pending_json(r->element[3], r->element[4]));
    jset(o, "dead_entry", dead ? entry_fields_json(dead) : NULL);
    conv = r->element[6]->type == REDIS_REPLY_ARRAY ? inspect_pairs_json(r->element[6]) : NULL;
    jset(o, "conversation", conv);
    *out = o;
    return 0;
}

int inspect_request(struct redis_conn *conn, const char *prefix, const char *request_id,
                    inspect_json_cb cb, void *data)
{
    struct store_cmd c;
    int err = inspect_request_cmd(&c, prefix, request_id);

    if (err)
        return err;
    return inspect_send_json(conn, &c, inspect_request_decode, cb, data);
}

/* ---- Requeue ----------------------------------------------------------- */

int inspect_requeue_cmd(struct store_cmd *c, const char *prefix, const char *request_id)
{
    store_cmd_init(c);
    if (!inspect_request_id_ok(request_id))
        return DG_ERR_INVALID;
    inspect_eval_start(c, &inspect_requeue_script, 3);
    store_cmd_take(c, keys_dead(prefix));
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_request(prefix, request_id));
    store_cmd_arg(c, request_id);
    return 0;
}

/* The script answers the new id, or false (nil in RESP2) when the request is not dead. */
int inspect_requeue_decode(const redisReply *r, const char **stream_id)
{
    int err = inspect_reply_usable(r);

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

/* ---- Requeue of every dead job ----------------------------------------- */

void inspect_requeue_all_init(struct inspect_requeue_all *s, long long expected)
{
    memset(s, 0, sizeof(*s));
    s->expected = expected;
}

void inspect_requeue_all_cmd(struct store_cmd *c, const char *prefix,
                             const struct inspect_requeue_all *s)
{
    bool first = s->boundary[0] == '\0';

    inspect_eval_start(c, &inspect_requeue_all_script, 2);
    store_cmd_take(c, keys_dead(prefix));
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_request_prefix(prefix));
    if (first)
        store_cmd_arg_u64(c, (uint64_t)(s->expected > 0 ? s->expected : 0));
    else
        store_cmd_arg(c, "");
    store_cmd_arg(c, s->boundary);
    store_cmd_arg_u64(c, INSPECT_REQUEUE_STEP);
}

int inspect_requeue_all_decode(const redisReply *r, struct inspect_requeue_all *s)
{
    int err = inspect_reply_usable(r);

    if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
                 r->element[0]->type != REDIS_REPLY_INTEGER ||
                 r->element[1]->type != REDIS_REPLY_INTEGER || !inspect_is_str(r->element[2])))
        err = DG_ERR_PROTOCOL;
    if (err)
        return err;
    if (r->element[0]->integer < 0) {
        s->mismatch = true;
        s->dead_now = r->element[1]->integer;
        s->done = true;
        return 0;
    }
    s->requeued += r->element[0]->integer;
    snprintf(s->boundary, sizeof(s->boundary), "%s", r->element[2]->str);
    s->done = r->element[1]->integer == 0 || s->boundary[0] == '\0';
    return 0;
}

struct requeue_all_op {
    struct redis_conn *conn;
    char *prefix;
    inspect_requeue_all_cb cb;
    void *data;
    struct inspect_requeue_all s;
};

static int requeue_all_send(struct requeue_all_op *op);

static void on_requeue_all(int err, redisReply *r, void *data)
{
    struct requeue_all_op *op = data;

    if (!err)
        err = inspect_requeue_all_decode(r, &op->s);
    if (!err && !op->s.done)
        err = requeue_all_send(op);
    if (!err && !op->s.done)
        return;
    op->cb(err, &op->s, op->data);
    xfree(op->prefix);
    xfree(op);
}

static int requeue_all_send(struct requeue_all_op *op)
{
    struct store_cmd c;
    int err;

    inspect_requeue_all_cmd(&c, op->prefix, &op->s);
    err = redis_conn_command(op->conn, 0, on_requeue_all, op, c.argc, c.argv, c.argvlen);
    store_cmd_free(&c);
    return err;
}

int inspect_requeue_all(struct redis_conn *conn, const char *prefix, long long expected,
                        inspect_requeue_all_cb cb, void *data)
{
    struct requeue_all_op *op = xcalloc(1, sizeof(*op));
    int err;

    op->conn = conn;
    op->prefix = xstrdup(prefix);
    op->cb = cb;
    op->data = data;
    inspect_requeue_all_init(&op->s, expected);
    err = requeue_all_send(op);
    if (err) {
        xfree(op->prefix);
        xfree(op);
    }
    return err;
}
