/*
 * procs.h: process heartbeats (SPEC §5). Every digestd process names
 * itself host:pid — the same name it uses as a consumer of the group — and
 * rewrites {P}:proc:<name> at most every PROCS_BEAT_MS with a TTL of three
 * periods, listing itself in the sorted set {P}:procs scored by that beat.
 * A clean exit deletes both; a crash leaves a record that expires, and a
 * set member whose record is gone is stale: every beat drops the members
 * older than the TTL, and every reader drops those it finds without a
 * record. Times are Redis's clock (TIME), so beats of many hosts compare.
 *
 * The readers (inspect.h) share LUA_LIVE_PROCS. Writes follow redis.h:
 * a nonzero return and no callback, or exactly one callback.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

struct redis_conn;
struct redisReply;
struct store_cmd;

#define PROCS_BEAT_MS 5000 /* SPEC §5: rewritten every 5 s (at most) */
#define PROCS_TTL_MS 15000 /* three periods (a literal: it is sent as text) */
#define PROCS_MAX_NAME 320 /* host (255) + ':' + pid */

/* What one heartbeat says (strings borrowed; SPEC §5's fields). */
struct procs_beat {
    const char *name; /* host:pid (procs_self_name) */
    const char *role; /* all, api or worker */
    const char *version;
    const char *host;
    const char *listen;     /* host:port as bound */
    const char *async_mode; /* the effective USE_ASYNC_DIGEST */
    long pid;
    uint64_t started_ms;
    uint64_t in_flight;
    uint64_t concurrency;
    uint64_t rss_bytes;
    uint64_t jobs_done;
    uint64_t jobs_failed; /* failed and dead */
};

/* err: 0, or the connection's error, or DG_ERR_PROTOCOL when Redis refused. */
typedef void (*procs_done_cb)(int err, void *data);

/*
 * "host:pid" of this process (gethostname, "localhost" when that fails):
 * its heartbeat's name and its consumer name in the group.
 */
void procs_self_name(char *out, size_t size);

/*
 * The heartbeat as one script: the record (beat_ms = Redis's now), its TTL,
 * the set's score, and the set's members older than the TTL dropped.
 */
void procs_beat_cmd(struct store_cmd *c, const char *prefix, const struct procs_beat *b,
                    char scratch[][24]);
#define PROCS_BEAT_SCRATCH 7 /* rows of scratch procs_beat_cmd needs (numbers as text) */
int procs_beat(struct redis_conn *conn, const char *prefix, const struct procs_beat *b,
               procs_done_cb cb, void *data) WARN_UNUSED;

/* A clean exit: the record and the set member go. */
void procs_remove_cmd(struct store_cmd *c, const char *prefix, const char *name);
int procs_remove(struct redis_conn *conn, const char *prefix, const char *name, procs_done_cb cb,
                 void *data) WARN_UNUSED;

/*
 * Lua, for readers: live_procs(zset, proc_prefix, now, ttl) returns the
 * live processes as a list of {name, {field, value, …}} and a table
 * alive[name] = true; members without a record are removed on the way.
 */
/* clang-format off */
#define LUA_LIVE_PROCS                                                                           \
    "local function live_procs(zset, proc_prefix, now, ttl)\n"                                   \
    "  local out, alive = {}, {}\n"                                                             \
    "  redis.call('ZREMRANGEBYSCORE', zset, '-inf', '(' .. (now - ttl))\n"                       \
    "  for _, name in ipairs(redis.call('ZRANGE', zset, 0, -1)) do\n"                            \
    "    local h = redis.call('HGETALL', proc_prefix .. name)\n"                                 \
    "    if #h > 0 then\n"                                                                       \
    "      out[#out + 1] = {name, h}\n"                                                          \
    "      alive[name] = true\n"                                                                 \
    "    else\n"                                                                                 \
    "      redis.call('ZREM', zset, name)\n"                                                     \
    "    end\n"                                                                                  \
    "  end\n"                                                                                    \
    "  return out, alive\n"                                                                      \
    "end\n"
/* clang-format on */

/* Lua: now_ms(), Redis's clock in ms (shared by every script that ages things). */
/* clang-format off */
#define LUA_NOW_MS                                                                               \
    "local function now_ms()\n"                                                                  \
    "  local t = redis.call('TIME')\n"                                                           \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                      \
    "end\n"
/* clang-format on */
