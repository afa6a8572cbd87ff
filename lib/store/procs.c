/* procs.c: process heartbeats, written and removed (see procs.h). */
#include "store/procs.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "core/buf.h"
#include "store/cmd.h"
#include "store/keys.h"
#include "store/redis.h"
#include "store/script.h"

/*
 * KEYS: the record, the set. ARGV: name, TTL ms, then the record's pairs.
 * beat_ms and the score come from Redis's clock, one clock for every host.
 */
static const char beat_lua[] =
    LUA_NOW_MS "local now = now_ms()\n"
               "redis.call('HSET', KEYS[1], 'beat_ms', now, unpack(ARGV, 3))\n"
               "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
               "redis.call('ZADD', KEYS[2], now, ARGV[1])\n"
               "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - ARGV[2]))\n"
               "return now\n";

const struct store_script procs_beat_script = {"procs_beat", beat_lua, sizeof(beat_lua) - 1};

/* KEYS: the record, the set. ARGV: name. */
static const char remove_lua[] = "redis.call('DEL', KEYS[1])\n"
                                 "return redis.call('ZREM', KEYS[2], ARGV[1])\n";

const struct store_script procs_remove_script = {"procs_remove", remove_lua,
                                                 sizeof(remove_lua) - 1};

void procs_self_name(char *out, size_t size)
{
    char host[256];

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    snprintf(out, size, "%s:%ld", host, (long)getpid());
}

static void eval_start(struct store_cmd *c, const char *lua, size_t len, char *rec, char *set)
{
    store_cmd_init(c);
    store_cmd_arg(c, "EVAL");
    store_cmd_arg_len(c, lua, len);
    store_cmd_arg(c, "2");
    store_cmd_take(c, rec);
    store_cmd_take(c, set);
}

/* One field and its value (borrowed). */
static void pair(struct store_cmd *c, const char *field, const char *value)
{
    store_cmd_arg(c, field);
    store_cmd_arg(c, value ? value : "");
}

void procs_beat_cmd(struct store_cmd *c, const char *prefix, const struct procs_beat *b,
                    char scratch[][24])
{
    const uint64_t nums[] = {b->started_ms, b->in_flight, b->concurrency,
                             b->rss_bytes,  b->jobs_done, b->jobs_failed};
    const char *names[] = {"started_ms", "in_flight", "concurrency",
                           "rss_bytes",  "jobs_done", "jobs_failed"};

    eval_start(c, beat_lua, sizeof(beat_lua) - 1, keys_proc(prefix, b->name), keys_procs(prefix));
    store_cmd_arg(c, b->name);
    store_cmd_arg(c, DG_STRINGIFY(PROCS_TTL_MS));
    pair(c, "role", b->role);
    pair(c, "version", b->version);
    pair(c, "host", b->host);
    pair(c, "listen", b->listen);
    pair(c, "async_mode", b->async_mode);
    snprintf(scratch[0], 24, "%ld", b->pid);
    pair(c, "pid", scratch[0]);
    for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
        snprintf(scratch[1 + i], 24, "%" PRIu64, nums[i]);
        pair(c, names[i], scratch[1 + i]);
    }
}

void procs_remove_cmd(struct store_cmd *c, const char *prefix, const char *name)
{
    eval_start(c, remove_lua, sizeof(remove_lua) - 1, keys_proc(prefix, name), keys_procs(prefix));
    store_cmd_arg(c, name);
}

struct done_op {
    procs_done_cb cb;
    void *data;
};

static void on_done(int err, redisReply *r, void *data)
{
    struct done_op *op = data;

    op->cb(redis_reply_status(err, r), op->data);
    xfree(op);
}

/* Sends c (freed here) with cb for its outcome. */
static int send_cmd(struct redis_conn *conn, struct store_cmd *c, procs_done_cb cb, void *data)
{
    struct done_op *op = xcalloc(1, sizeof(*op));
    int err;

    op->cb = cb;
    op->data = data;
    err = redis_conn_command(conn, 0, on_done, op, c->argc, c->argv, c->argvlen);
    if (err)
        xfree(op);
    store_cmd_free(c);
    return err;
}

int procs_beat(struct redis_conn *conn, const char *prefix, const struct procs_beat *b,
               procs_done_cb cb, void *data)
{
    char scratch[PROCS_BEAT_SCRATCH][24];
    struct store_cmd c;

    procs_beat_cmd(&c, prefix, b, scratch);
    return send_cmd(conn, &c, cb, data);
}

int procs_remove(struct redis_conn *conn, const char *prefix, const char *name, procs_done_cb cb,
                 void *data)
{
    struct store_cmd c;

    procs_remove_cmd(&c, prefix, name);
    return send_cmd(conn, &c, cb, data);
}
