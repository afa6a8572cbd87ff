/*
 * inspect_queue.c: the queue-wide views of inspect.h — the snapshot and
 * its verdict, the live processes, pending and dead listings, the
 * per-minute history, the consumers (and pruning them), and the facts the
 * pre-rollout check needs. Each is one script, so a view is one consistent
 * moment, and each is bounded however long the streams: XINFO, XPENDING
 * with a COUNT, XRANGE with a COUNT, and a fixed number of minutes.
 *
 * The scripts name a few keys from what they read in Redis: a heartbeat
 * from a consumer's name, a minute from Redis's clock. They are given the
 * key prefix for that, which is safe because every key shares the {P} hash
 * tag (docs/store.md).
 */
#include "store/inspect.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/json_build.h"
#include "store/cmd.h"
#include "store/history.h"
#include "store/inspect_internal.h"
#include "store/keys.h"
#include "store/procs.h"
#include "store/script.h"

#define MINUTE_MS 60000
#define STATS_MINUTES 62 /* the current one, the hour up to it, and more for the lag trend */
#define CHECK_WINDOW_MS 3600000

/*
 * KEYS: 1 stream, 2 dead stream, 3 heartbeat set. ARGV: 1 heartbeat key
 * prefix, 2 minute key prefix, 3 stuck after (ms), 4 dead entries shown.
 * Answers {now, length, XINFO STREAM or false, per group {XINFO GROUPS
 * entry, XINFO CONSUMERS, oldest pending or false, oldest stuck or false},
 * dead length, newest dead, STATS_MINUTES minutes oldest first, live
 * processes, stuck after}.
 */
/* clang-format off */
static const char queue_lua[] =
    LUA_NOW_MS
    LUA_LIVE_PROCS
    "local now = now_ms()\n"
    "local procs = live_procs(KEYS[3], ARGV[1], now, " DG_STRINGIFY(PROCS_TTL_MS) ")\n"
    "local ok, sinfo = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])\n"
    "if not ok then sinfo = false end\n"
    "local ok2, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])\n"
    "if not ok2 then groups = {} end\n"
    "local gout = {}\n"
    "for i, g in ipairs(groups) do\n"
    "  local name\n"
    "  for j = 1, #g, 2 do if g[j] == 'name' then name = g[j + 1] end end\n"
    "  gout[i] = {g, redis.call('XINFO', 'CONSUMERS', KEYS[1], name),\n"
    "    redis.call('XPENDING', KEYS[1], name, '-', '+', 1)[1] or false,\n"
    "    redis.call('XPENDING', KEYS[1], name, 'IDLE', ARGV[3], '-', '+', 1)[1] or false}\n"
    "end\n"
    "local m, minutes = math.floor(now / 60000), {}\n"
    "for i = 1, " DG_STRINGIFY(STATS_MINUTES) " do\n"
    "  minutes[i] = redis.call('HGETALL', ARGV[2] .. (m - " DG_STRINGIFY(STATS_MINUTES) " + i))\n"
    "end\n"
    "return {now, redis.call('XLEN', KEYS[1]), sinfo, gout, redis.call('XLEN', KEYS[2]),\n"
    "  redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[4]), minutes, procs,\n"
    "  tonumber(ARGV[3])}\n";
/* clang-format on */

const struct store_script inspect_queue_script = {"inspect_queue", queue_lua,
                                                  sizeof(queue_lua) - 1};

/* KEYS: 1 stream, 2 heartbeat set. ARGV: 1 heartbeat prefix. {now, live, {group, consumer}…}. */
/* clang-format off */
static const char procs_lua[] =
    LUA_NOW_MS
    LUA_LIVE_PROCS
    "local now = now_ms()\n"
    "local procs, alive = live_procs(KEYS[2], ARGV[1], now, " DG_STRINGIFY(PROCS_TTL_MS) ")\n"
    "local dead = {}\n"
    "local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])\n"
    "if not ok then groups = {} end\n"
    "for _, g in ipairs(groups) do\n"
    "  local name\n"
    "  for j = 1, #g, 2 do if g[j] == 'name' then name = g[j + 1] end end\n"
    "  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], name)) do\n"
    "    local cname\n"
    "    for j = 1, #c, 2 do if c[j] == 'name' then cname = c[j + 1] end end\n"
    "    if not alive[cname] then dead[#dead + 1] = {name, c} end\n"
    "  end\n"
    "end\n"
    "return {now, procs, dead}\n";
/* clang-format on */

const struct store_script inspect_procs_script = {"inspect_procs", procs_lua,
                                                  sizeof(procs_lua) - 1};

/*
 * KEYS: 1 stream, 2 heartbeat set. ARGV: 1 group, 2 limit, 3 heartbeat
 * prefix. {now, count or false (no group), {id, consumer, idle, deliveries,
 * request id, holder alive}…}: one XRANGE of one entry each for its
 * request id, limit of them at most.
 */
/* clang-format off */
static const char pending_lua[] =
    LUA_NOW_MS
    LUA_LIVE_PROCS
    "local now = now_ms()\n"
    "local _, alive = live_procs(KEYS[2], ARGV[3], now, " DG_STRINGIFY(PROCS_TTL_MS) ")\n"
    "local ok, sum = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])\n"
    "if not ok then return {now, false, {}} end\n"
    "local out = {}\n"
    "for i, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[2])) do\n"
    "  local e, rid = redis.call('XRANGE', KEYS[1], p[1], p[1])[1], ''\n"
    "  if e then\n"
    "    for j = 1, #e[2], 2 do if e[2][j] == 'request_id' then rid = e[2][j + 1] end end\n"
    "  end\n"
    "  out[i] = {p[1], p[2], p[3], p[4], rid, alive[p[2]] and 1 or 0}\n"
    "end\n"
    "return {now, sum[1], out}\n";
/* clang-format on */

const struct store_script inspect_pending_script = {"inspect_pending", pending_lua,
                                                    sizeof(pending_lua) - 1};

/* KEYS: 1 dead stream. ARGV: 1 limit. {now, length, newest entries}. */
/* clang-format off */
static const char dead_lua[] =
    LUA_NOW_MS
    "return {now_ms(), redis.call('XLEN', KEYS[1]),\n"
    "  redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1])}\n";
/* clang-format on */

const struct store_script inspect_dead_script = {"inspect_dead", dead_lua, sizeof(dead_lua) - 1};

/* ARGV: 1 minute key prefix, 2 minutes. {now, the minutes oldest first, the current last}. */
/* clang-format off */
static const char history_lua[] =
    LUA_NOW_MS
    "local now = now_ms()\n"
    "local m, n, out = math.floor(now / 60000), tonumber(ARGV[2]), {}\n"
    "for i = 1, n do out[i] = redis.call('HGETALL', ARGV[1] .. (m - n + i)) end\n"
    "return {now, out}\n";
/* clang-format on */

const struct store_script inspect_history_script = {"inspect_history", history_lua,
                                                    sizeof(history_lua) - 1};

/*
 * KEYS: 1 stream, 2 heartbeat set. ARGV: 1 heartbeat prefix, 2 '1' to
 * prune, 3 idle ms at least. {now, {group, name, pending, idle, alive,
 * removed}…}. The pending count and the removal are one atomic step.
 */
/* clang-format off */
static const char consumers_lua[] =
    LUA_NOW_MS
    LUA_LIVE_PROCS
    "local now = now_ms()\n"
    "local _, alive = live_procs(KEYS[2], ARGV[1], now, " DG_STRINGIFY(PROCS_TTL_MS) ")\n"
    "local out = {}\n"
    "local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])\n"
    "if not ok then groups = {} end\n"
    "for _, g in ipairs(groups) do\n"
    "  local gname\n"
    "  for j = 1, #g, 2 do if g[j] == 'name' then gname = g[j + 1] end end\n"
    "  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], gname)) do\n"
    "    local info = {}\n"
    "    for j = 1, #c, 2 do info[c[j]] = c[j + 1] end\n"
    "    local live, removed = alive[info['name']] and 1 or 0, 0\n"
    "    if ARGV[2] == '1' and info['pending'] == 0 and live == 0 and\n"
    "       info['idle'] >= tonumber(ARGV[3]) then\n"
    "      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], gname, info['name'])\n"
    "      removed = 1\n"
    "    end\n"
    "    out[#out + 1] = {gname, info['name'], info['pending'], info['idle'], live, removed}\n"
    "  end\n"
    "end\n"
    "return {now, out}\n";
/* clang-format on */

const struct store_script inspect_consumers_script = {"inspect_consumers", consumers_lua,
                                                      sizeof(consumers_lua) - 1};

/*
 * KEYS: 1 stream, 2 dead stream. ARGV: 1 record key prefix. {now, Redis's
 * version, {newest entry id, its request id, its record's status or false}
 * or false, the newest dead entry if it is from the last hour, or false}.
 * How many died in the hour the per-minute counts say (the snapshot): no
 * dead entry is copied here but one.
 */
/* clang-format off */
static const char check_lua[] =
    LUA_NOW_MS
    "local now = now_ms()\n"
    "local ver = string.match(redis.call('INFO', 'server'), 'redis_version:([%d%.]+)') or ''\n"
    "local last, newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1], false\n"
    "if last then\n"
    "  local rid = ''\n"
    "  for i = 1, #last[2], 2 do if last[2][i] == 'request_id' then rid = last[2][i + 1] end end\n"
    "  local st = rid ~= '' and redis.call('HGET', ARGV[1] .. rid, 'status')\n"
    "  newest = {last[1], rid, st or false}\n"
    "end\n"
    "local since = (now - " DG_STRINGIFY(CHECK_WINDOW_MS) ") .. '-0'\n"
    "local dead = redis.call('XREVRANGE', KEYS[2], '+', since, 'COUNT', 1)\n"
    "return {now, ver, newest, dead[1] or false}\n";
/* clang-format on */

const struct store_script inspect_check_script = {"inspect_check", check_lua,
                                                  sizeof(check_lua) - 1};

/* ---- helpers ----------------------------------------------------------- */

static bool is_array(const redisReply *r, size_t n)
{
    return r && r->type == REDIS_REPLY_ARRAY && (n == 0 || r->elements == n);
}

/* XPENDING's [id, consumer, idle, deliveries] as an object with its age; group when given. */
static struct json_object *pel_json(const char *group, const redisReply *p, int64_t now)
{
    struct json_object *o;
    int64_t ms;

    if (!is_array(p, 0) || p->elements < 4 || !inspect_is_str(p->element[0]))
        return NULL;
    ms = inspect_id_ms(p->element[0]->str);
    o = jobj();
    if (group)
        jset_str(o, "group", group);
    jset_str(o, "id", p->element[0]->str);
    jset(o, "consumer", inspect_value_json(p->element[1]));
    jset(o, "idle_ms", inspect_value_json(p->element[2]));
    jset(o, "deliveries", inspect_value_json(p->element[3]));
    jset(o, "age_ms", jint64(ms && now > ms ? now - ms : 0));
    return o;
}

/* inspect_value_json of r, null for no reply at all. */
static struct json_object *value_or_null(const redisReply *r)
{
    return r ? inspect_value_json(r) : NULL;
}

/* The string at name of a flat array, "" when absent. */
static const char *pair_str(const redisReply *flat, const char *name)
{
    const redisReply *v = inspect_pair(flat, name);

    return v && inspect_is_str(v) ? v->str : "";
}

/* The six counts of a minute's hash into sums (in the order of count_names). */
static const char *const count_names[] = {HISTORY_F_ENQUEUED, HISTORY_F_DELIVERED,
                                          HISTORY_F_FAILED,   HISTORY_F_DEAD,
                                          HISTORY_F_SYNC,     HISTORY_F_FALLBACK};

static void minute_add_to(const redisReply *flat, int64_t sums[6])
{
    for (size_t i = 0; i < ARRAY_SIZE(count_names); i++)
        sums[i] += inspect_int(inspect_pair(flat, count_names[i]), 0);
}

static struct json_object *counts_json(const int64_t sums[6])
{
    struct json_object *o = jobj();

    for (size_t i = 0; i < ARRAY_SIZE(count_names); i++)
        jset(o, count_names[i], jint64(sums[i]));
    return o;
}

/* The lag a minute recorded, -1 when none. */
static int64_t minute_lag(const redisReply *flat)
{
    return inspect_int(inspect_pair(flat, HISTORY_F_LAG), -1);
}

/* ---- the snapshot ------------------------------------------------------ */

/* What the verdict is made of. */
struct verdict_in {
    int64_t live_consumers;
    int64_t stuck_idle;                /* -1: nothing stuck */
    int64_t lag_current, lag_previous; /* -1: unknown */
};

/*
 * SPEC §7, the first that holds: no consumers (none with a live heartbeat);
 * stuck (an entry idle past twice the claim idle time); backlog growing
 * (the current minute's lag above the previous one's and above 0: a
 * previous minute with no sample counts as 0); healthy.
 */
static const char *verdict(const struct verdict_in *v, char *text, size_t size)
{
    char span[32];

    if (v->live_consumers == 0) {
        snprintf(text, size, "%s", INSPECT_NO_CONSUMERS);
        return INSPECT_NO_CONSUMERS;
    }
    if (v->stuck_idle >= 0) {
        snprintf(text, size, "%s: oldest pending %s", INSPECT_STUCK,
                 clock_format_span((uint64_t)v->stuck_idle, span, sizeof(span)));
        return INSPECT_STUCK;
    }
    if (v->lag_current > 0 && v->lag_current > (v->lag_previous > 0 ? v->lag_previous : 0)) {
        snprintf(text, size, "%s: lag %lld, was %lld a minute before", INSPECT_BACKLOG_GROWING,
                 (long long)v->lag_current, (long long)(v->lag_previous > 0 ? v->lag_previous : 0));
        return INSPECT_BACKLOG_GROWING;
    }
    snprintf(text, size, "%s", INSPECT_HEALTHY);
    return INSPECT_HEALTHY;
}

void inspect_queue_cmd(struct store_cmd *c, const char *prefix, uint64_t claim_idle_ms)
{
    inspect_eval_start(c, &inspect_queue_script, 3);
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_dead(prefix));
    store_cmd_take(c, keys_procs(prefix));
    store_cmd_take(c, keys_proc_prefix(prefix));
    store_cmd_take(c, keys_minute_prefix(prefix));
    store_cmd_arg_u64(c, 2 * claim_idle_ms);
    store_cmd_arg_u64(c, INSPECT_DEAD_SHOWN);
}

/* XINFO STREAM's length, first and last ids and entries added (null on a missing stream). */
static void stream_json(struct json_object *o, const redisReply *len, const redisReply *info)
{
    const redisReply *first = inspect_pair(info, "first-entry");
    const redisReply *last = inspect_pair(info, "last-entry");

    jset(o, "length", inspect_value_json(len));
    jset(o, "first_id", is_array(first, 2) ? inspect_value_json(first->element[0]) : NULL);
    jset(o, "last_id", is_array(last, 2) ? inspect_value_json(last->element[0]) : NULL);
    jset(o, "entries_added", value_or_null(inspect_pair(info, "entries-added")));
}

/* What the groups part of the snapshot adds up to, beside its JSON. */
struct groups_sum {
    int64_t live_consumers;
    const redisReply *oldest, *stuck; /* XPENDING entries, the smallest id of all groups */
    const char *oldest_group, *stuck_group;
};

/* The smaller stream id of a and b (either may be NULL). */
static bool id_before(const redisReply *a, const redisReply *b)
{
    int64_t am, bm;

    if (!b)
        return true;
    am = inspect_id_ms(a->element[0]->str);
    bm = inspect_id_ms(b->element[0]->str);
    if (am != bm)
        return am < bm;
    return strcmp(a->element[0]->str, b->element[0]->str) < 0; /* same ms: seq, mostly */
}

/* One consumer of XINFO CONSUMERS as {"group","name","pending","idle_ms","alive"}. */
static struct json_object *consumer_json(const char *group, const redisReply *c,
                                         const redisReply *procs, bool *alive)
{
    struct json_object *o = jobj();
    const char *name = pair_str(c, "name");

    *alive = inspect_proc_alive(procs, name);
    jset_str(o, "group", group);
    jset_str(o, "name", name);
    jset(o, "pending", value_or_null(inspect_pair(c, "pending")));
    jset(o, "idle_ms", value_or_null(inspect_pair(c, "idle")));
    jset(o, "alive", jbool(*alive));
    return o;
}

/* Per group {XINFO GROUPS entry, XINFO CONSUMERS, oldest, stuck}: groups and consumers. */
static void groups_json(struct json_object *o, const redisReply *gout, const redisReply *procs,
                        struct groups_sum *sum)
{
    struct json_object *groups = jarr(), *consumers = jarr();

    for (size_t i = 0; i < gout->elements; i++) {
        const redisReply *g = gout->element[i];
        const char *name;

        if (!is_array(g, 4) || !is_array(g->element[0], 0) || !is_array(g->element[1], 0))
            continue;
        name = pair_str(g->element[0], "name");
        jpush(groups, inspect_pairs_json(g->element[0]));
        for (size_t j = 0; j < g->element[1]->elements; j++) {
            bool alive;
            jpush(consumers, consumer_json(name, g->element[1]->element[j], procs, &alive));
            sum->live_consumers += alive;
        }
        if (is_array(g->element[2], 4) && id_before(g->element[2], sum->oldest)) {
            sum->oldest = g->element[2];
            sum->oldest_group = name;
        }
        if (is_array(g->element[3], 4) && id_before(g->element[3], sum->stuck)) {
            sum->stuck = g->element[3];
            sum->stuck_group = name;
        }
    }
    jset(o, "groups", groups);
    jset(o, "consumers", consumers);
    jset(o, "live_consumers", jint64(sum->live_consumers));
}

/*
 * The minutes (oldest first, the current one last) as rates — this minute
 * so far, the last complete minute, and the last hour: this minute and the
 * 59 before it — and the lag trend. The current lag is this minute's, or the last minute's while
 * this one has no sample yet (workers sample it every 10 s at least); previous is the minute before
 * that one.
 */
static void minutes_json(struct json_object *o, const redisReply *mins, struct verdict_in *v)
{
    int64_t this_m[6] = {0}, last_m[6] = {0}, hour[6] = {0};
    size_t n = mins->elements, cur;
    struct json_object *rates, *lag;

    v->lag_current = v->lag_previous = -1;
    for (size_t i = 0; i < n; i++) {
        /* Checked before anything is allocated: a bad minute leaks nothing (fuzz_redis_reply). */
        if (!is_array(mins->element[i], 0))
            return;
        if (i == n - 1)
            minute_add_to(mins->element[i], this_m);
        if (i + 60 >= n) /* this minute and the 59 before it */
            minute_add_to(mins->element[i], hour);
        if (i == n - 2)
            minute_add_to(mins->element[i], last_m);
    }
    rates = jobj();
    lag = jobj();
    jset(rates, "this_minute", counts_json(this_m));
    jset(rates, "last_minute", counts_json(last_m));
    jset(rates, "last_hour", counts_json(hour));
    jset(o, "rates", rates);
    cur = n - 1;
    if (n >= 3 && minute_lag(mins->element[cur]) < 0)
        cur--;
    if (n >= 2) {
        v->lag_current = minute_lag(mins->element[cur]);
        v->lag_previous = minute_lag(mins->element[cur - 1]);
    }
    jset(lag, "current", v->lag_current >= 0 ? jint64(v->lag_current) : NULL);
    jset(lag, "previous", v->lag_previous >= 0 ? jint64(v->lag_previous) : NULL);
    jset(o, "lag_trend", lag);
}

static struct json_object *procs_list_json(const redisReply *procs, int64_t now)
{
    struct json_object *arr = jarr();

    for (size_t i = 0; i < procs->elements; i++) {
        const redisReply *p = procs->element[i];
        if (is_array(p, 2) && inspect_is_str(p->element[0]) && is_array(p->element[1], 0))
            jpush(arr, inspect_proc_json(p, now));
    }
    return arr;
}

static struct json_object *entries_json(const redisReply *entries)
{
    struct json_object *arr = jarr();

    for (size_t i = 0; i < entries->elements; i++) {
        struct json_object *e = inspect_entry_json(entries->element[i]);
        if (e)
            jpush(arr, e);
    }
    return arr;
}

int inspect_queue_decode(const redisReply *r, struct json_object **out)
{
    struct groups_sum sum = {0};
    struct verdict_in v = {0};
    struct json_object *o;
    char text[128];
    int64_t now;
    int err = inspect_reply_usable(r);

    *out = NULL;
    if (!err && (!is_array(r, 9) || r->element[0]->type != REDIS_REPLY_INTEGER ||
                 !is_array(r->element[3], 0) || !is_array(r->element[5], 0) ||
                 !is_array(r->element[6], 0) || !is_array(r->element[7], 0) ||
                 r->element[8]->type != REDIS_REPLY_INTEGER))
        err = DG_ERR_PROTOCOL;
    if (err)
        return err;
    now = r->element[0]->integer;
    o = jobj();
    jset(o, "now_ms", jint64(now));
    stream_json(o, r->element[1], is_array(r->element[2], 0) ? r->element[2] : NULL);
    groups_json(o, r->element[3], r->element[7], &sum);
    jset(o, "oldest_pending", pel_json(sum.oldest_group, sum.oldest, now));
    jset(o, "stuck_after_ms", jint64(r->element[8]->integer));
    jset(o, "stuck", pel_json(sum.stuck_group, sum.stuck, now));
    jset(o, "dead", inspect_value_json(r->element[4]));
    jset(o, "dead_recent", entries_json(r->element[5]));
    minutes_json(o, r->element[6], &v);
    jset(o, "procs", procs_list_json(r->element[7], now));
    v.live_consumers = sum.live_consumers;
    v.stuck_idle = sum.stuck ? inspect_int(sum.stuck->element[2], 0) : -1;
    jset_str(o, "verdict", verdict(&v, text, sizeof(text)));
    jset_str(o, "verdict_text", text);
    *out = o;
    return 0;
}

int inspect_queue(struct redis_conn *conn, const char *prefix, uint64_t claim_idle_ms,
                  inspect_json_cb cb, void *data)
{
    struct store_cmd c;

    inspect_queue_cmd(&c, prefix, claim_idle_ms);
    return inspect_send_json(conn, &c, inspect_queue_decode, cb, data);
}

/* ---- processes --------------------------------------------------------- */

void inspect_procs_cmd(struct store_cmd *c, const char *prefix)
{
    inspect_eval_start(c, &inspect_procs_script, 2);
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_procs(prefix));
    store_cmd_take(c, keys_proc_prefix(prefix));
}

int inspect_procs_decode(const redisReply *r, struct json_object **out)
{
    struct json_object *o, *dead;
    int err = inspect_reply_usable(r);

    *out = NULL;
    if (!err && (!is_array(r, 3) || r->element[0]->type != REDIS_REPLY_INTEGER ||
                 !is_array(r->element[1], 0) || !is_array(r->element[2], 0)))
        err = DG_ERR_PROTOCOL;
    if (err)
        return err;
    o = jobj();
    dead = jarr();
    jset(o, "now_ms", jint64(r->element[0]->integer));
    jset(o, "procs", procs_list_json(r->element[1], r->element[0]->integer));
    for (size_t i = 0; i < r->element[2]->elements; i++) {
        const redisReply *d = r->element[2]->element[i];
        struct json_object *c;

        if (!is_array(d, 2) || !inspect_is_str(d->element[0]))
            continue;
        c = jobj();
        jset_str(c, "group", d->element[0]->str);
        jset_str(c, "name", pair_str(d->element[1], "name"));
        jset(c, "pending", value_or_null(inspect_pair(d->element[1], "pending")));
        jset(c, "idle_ms", value_or_null(inspect_pair(d->element[1], "idle")));
        jpush(dead, c);
    }
    jset(o, "dead_consumers", dead);
    *out = o;
    return 0;
}

int inspect_procs(struct redis_conn *conn, const char *prefix, inspect_json_cb cb, void *data)
{
    struct store_cmd c;

    inspect_procs_cmd(&c, prefix);
    return inspect_send_json(conn, &c, inspect_procs_decode, cb, data);
}

/* ---- pending ------------------------------------------------------------- */

int inspect_pending_cmd(struct store_cmd *c, const char *prefix, unsigned limit)
{
    store_cmd_init(c);
    if (limit == 0 || limit > INSPECT_MAX_LIMIT)
        return DG_ERR_INVALID;
    inspect_eval_start(c, &inspect_pending_script, 2);
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_procs(prefix));
    store_cmd_arg(c, KEYS_GROUP);
    store_cmd_arg_u64(c, limit);
    store_cmd_take(c, keys_proc_prefix(prefix));
    return 0;
}

int inspect_pending_decode(const redisReply *r, struct json_object **out)
{
    struct json_object *o, *arr;
    int64_t now;
    int err = inspect_reply_usable(r);

    *out = NULL;
    if (!err && (!is_array(r, 3) || r->element[0]->type != REDIS_REPLY_INTEGER ||
                 !is_array(r->element[2], 0)))
        err = DG_ERR_PROTOCOL;
    if (err)
        return err;
    now = r->element[0]->integer;
    o = jobj();
    arr = jarr();
    jset(o, "now_ms", jint64(now));
    jset_str(o, "group", KEYS_GROUP);
    jset(o, "group_exists", jbool(r->element[1]->type == REDIS_REPLY_INTEGER));
    jset(o, "count", jint64(inspect_int(r->element[1], 0)));
    for (size_t i = 0; i < r->element[2]->elements; i++) {
        const redisReply *p = r->element[2]->element[i];
        struct json_object *e;

        if (!is_array(p, 6) || !inspect_is_str(p->element[0]))
            continue;
        e = pel_json(NULL, p, now); /* reads the first four */
        jset(e, "request_id", inspect_value_json(p->element[4]));
        jset(e, "consumer_alive", jbool(inspect_int(p->element[5], 0) == 1));
        jpush(arr, e);
    }
    jset(o, "entries", arr);
    *out = o;
    return 0;
}

int inspect_pending(struct redis_conn *conn, const char *prefix, unsigned limit, inspect_json_cb cb,
                    void *data)
{
    struct store_cmd c;
    int err = inspect_pending_cmd(&c, prefix, limit);

    if (err)
        return err;
    return inspect_send_json(conn, &c, inspect_pending_decode, cb, data);
}

/* ---- dead ---------------------------------------------------------------- */

int inspect_dead_cmd(struct store_cmd *c, const char *prefix, unsigned limit)
{
    store_cmd_init(c);
    if (limit == 0 || limit > INSPECT_MAX_LIMIT)
        return DG_ERR_INVALID;
    inspect_eval_start(c, &inspect_dead_script, 1);
    store_cmd_take(c, keys_dead(prefix));
    store_cmd_arg_u64(c, limit);
    return 0;
}

int inspect_dead_decode(const redisReply *r, struct json_object **out)
{
    struct json_object *o;
    int err = inspect_reply_usable(r);

    *out = NULL;
    if (!err && (!is_array(r, 3) || r->element[0]->type != REDIS_REPLY_INTEGER ||
                 !is_array(r->element[2], 0)))
        err = DG_ERR_PROTOCOL;
    if (err)
        return err;
    o = jobj();
    jset(o, "now_ms", jint64(r->element[0]->integer));
    jset(o, "count", inspect_value_json(r->element[1]));
    jset(o, "entries", entries_json(r->element[2]));
    *out = o;
    return 0;
}

int inspect_dead(struct redis_conn *conn, const char *prefix, unsigned limit, inspect_json_cb cb,
                 void *data)
{
    struct store_cmd c;
    int err = inspect_dead_cmd(&c, prefix, limit);

    if (err)
        return err;
    return inspect_send_json(conn, &c, inspect_dead_decode, cb, data);
}

/* ---- history ------------------------------------------------------------- */

int inspect_history_cmd(struct store_cmd *c, const char *prefix, unsigned minutes)
{
    store_cmd_init(c);
    if (minutes == 0 || minutes > HISTORY_MAX_MINUTES)
        return DG_ERR_INVALID;
    inspect_eval_start(c, &inspect_history_script, 0);
    store_cmd_take(c, keys_minute_prefix(prefix));
    store_cmd_arg_u64(c, minutes);
    return 0;
}

int inspect_history_decode(const redisReply *r, struct json_object **out)
{
    struct json_object *o, *arr;
    int64_t now, m;
    size_t n;
    int err = inspect_reply_usable(r);

    *out = NULL;
    if (!err && (!is_array(r, 2) || r->element[0]->type != REDIS_REPLY_INTEGER ||
                 !is_array(r->element[1], 0)))
        err = DG_ERR_PROTOCOL;
    if (err)
        return err;
    now = r->element[0]->integer;
    n = r->element[1]->elements;
    m = now / MINUTE_MS - (int64_t)n + 1;
    o = jobj();
    arr = jarr();
    jset(o, "now_ms", jint64(now));
    for (size_t i = 0; i < n; i++, m++) {
        const redisReply *h = r->element[1]->element[i];
        int64_t sums[6] = {0}, lag;
        struct json_object *e;

        minute_add_to(h, sums);
        lag = minute_lag(h);
        e = counts_json(sums);
        jset(e, "minute", jint64(m));
        jset(e, "start_ms", jint64(m * MINUTE_MS));
        jset(e, "lag", lag >= 0 ? jint64(lag) : NULL);
        jpush(arr, e);
    }
    jset(o, "minutes", arr);
    *out = o;
    return 0;
}

int inspect_history(struct redis_conn *conn, const char *prefix, unsigned minutes,
                    inspect_json_cb cb, void *data)
{
    struct store_cmd c;
    int err = inspect_history_cmd(&c, prefix, minutes);

    if (err)
        return err;
    return inspect_send_json(conn, &c, inspect_history_decode, cb, data);
}

/* ---- consumers ----------------------------------------------------------- */

void inspect_consumers_cmd(struct store_cmd *c, const char *prefix, bool prune, uint64_t idle_ms)
{
    inspect_eval_start(c, &inspect_consumers_script, 2);
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_procs(prefix));
    store_cmd_take(c, keys_proc_prefix(prefix));
    store_cmd_arg(c, prune ? "1" : "0");
    store_cmd_arg_u64(c, idle_ms);
}

int inspect_consumers_decode(const redisReply *r, struct json_object **out)
{
    struct json_object *o, *arr;
    int64_t removed = 0;
    int err = inspect_reply_usable(r);

    *out = NULL;
    if (!err && (!is_array(r, 2) || r->element[0]->type != REDIS_REPLY_INTEGER ||
                 !is_array(r->element[1], 0)))
        err = DG_ERR_PROTOCOL;
    if (err)
        return err;
    o = jobj();
    arr = jarr();
    jset(o, "now_ms", jint64(r->element[0]->integer));
    for (size_t i = 0; i < r->element[1]->elements; i++) {
        const redisReply *c = r->element[1]->element[i];
        struct json_object *e;

        if (!is_array(c, 6))
            continue;
        e = jobj();
        jset(e, "group", inspect_value_json(c->element[0]));
        jset(e, "name", inspect_value_json(c->element[1]));
        jset(e, "pending", inspect_value_json(c->element[2]));
        jset(e, "idle_ms", inspect_value_json(c->element[3]));
        jset(e, "alive", jbool(inspect_int(c->element[4], 0) == 1));
        jset(e, "removed", jbool(inspect_int(c->element[5], 0) == 1));
        removed += inspect_int(c->element[5], 0) == 1;
        jpush(arr, e);
    }
    jset(o, "consumers", arr);
    jset(o, "removed", jint64(removed));
    *out = o;
    return 0;
}

/* ---- the check's facts --------------------------------------------------- */

void inspect_check_facts_cmd(struct store_cmd *c, const char *prefix)
{
    inspect_eval_start(c, &inspect_check_script, 2);
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_dead(prefix));
    store_cmd_take(c, keys_request_prefix(prefix));
}

int inspect_check_facts_decode(const redisReply *r, struct json_object **out)
{
    const redisReply *newest;
    struct json_object *o, *n = NULL;
    int err = inspect_reply_usable(r);

    *out = NULL;
    if (!err && (!is_array(r, 4) || r->element[0]->type != REDIS_REPLY_INTEGER ||
                 !inspect_is_str(r->element[1])))
        err = DG_ERR_PROTOCOL;
    if (err)
        return err;
    newest = r->element[2];
    if (is_array(newest, 3)) {
        n = jobj();
        jset(n, "id", inspect_value_json(newest->element[0]));
        jset(n, "request_id", inspect_value_json(newest->element[1]));
        jset(n, "record_status", inspect_value_json(newest->element[2]));
    }
    o = jobj();
    jset(o, "now_ms", jint64(r->element[0]->integer));
    jset(o, "redis_version", inspect_value_json(r->element[1]));
    jset(o, "newest_entry", n);
    jset(o, "newest_dead", inspect_entry_json(r->element[3]));
    *out = o;
    return 0;
}
