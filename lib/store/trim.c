/*
 * trim.c: one bounded step of the retention rule (see trim.h), as one
 * script: the cut is computed and applied in the same atomic step, so an
 * entry read or claimed in between cannot be cut from under its reader.
 */
#include "store/trim.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/json_build.h"
#include "store/cmd.h"
#include "store/history.h"
#include "store/keys.h"
#include "store/procs.h"
#include "store/redis.h"
#include "store/script.h"

/*
 * KEYS: 1 stream, 2 dead stream, 3 the caller's minute. ARGV: 1 the
 * stream's age limit in ms (0: leave it), 2 step, 3 DEAD_MAX_LEN (0: leave
 * the dead stream), 4 the dead stream's age limit, 5 the group whose lag is
 * recorded ('' for none), 6 '1' to count what was kept.
 * Ids compare as (ms, seq) numbers. An exclusive XRANGE bound '(' is 6.2.
 */
/* clang-format off */
static const char trim_lua[] =
    LUA_NOW_MS
    "local now, step = now_ms(), tonumber(ARGV[2])\n"
    "local function parse(id)\n"
    "  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')\n"
    "  return ms, tonumber(seq)\n"
    "end\n"
    "local function lt(a, b)\n"
    "  local am, as = parse(a)\n"
    "  local bm, bs = parse(b)\n"
    "  am, bm = tonumber(am), tonumber(bm)\n"
    "  return am < bm or (am == bm and as < bs)\n"
    "end\n"
    "local function after(id)\n"
    "  local ms, seq = parse(id)\n"
    "  return ms .. '-' .. (seq + 1)\n"
    "end\n"
    /*
     * Removes entries of key below cut, about step at most: whole nodes first
     * (an approximate trim never passes its id, and LIMIT bounds it), then the
     * few left in the node the cut falls in, exactly. Only when nodes hold more
     * than a step (a redis.conf of huge nodes) is the cut stepped by XRANGE.
     * Answers removed, more.
     */
    "local function trim_below(key, cut)\n"
    "  local n = redis.call('XTRIM', key, 'MINID', '~', cut, 'LIMIT', step)\n"
    "  if n > 0 then return n, true end\n"
    "  local page = redis.call('XRANGE', key, '-', '(' .. cut, 'COUNT', step + 1)\n"
    "  if #page == 0 then return 0, false end\n"
    "  if #page > step then return redis.call('XTRIM', key, 'MINID', page[step + 1][1]), true end\n"
    "  return redis.call('XTRIM', key, 'MINID', cut), false\n"
    "end\n"
    /* The same for a length: whole nodes past max first, then exactly. */
    "local function trim_to_len(key, max)\n"
    "  local over = redis.call('XLEN', key) - max\n"
    "  if over <= 0 then return 0, false end\n"
    "  local n = redis.call('XTRIM', key, 'MAXLEN', '~', max, 'LIMIT', step)\n"
    "  if n > 0 then return n, true end\n"
    "  if over > step then\n"
    "    local page = redis.call('XRANGE', key, '-', '+', 'COUNT', step + 1)\n"
    "    return redis.call('XTRIM', key, 'MINID', page[step + 1][1]), true\n"
    "  end\n"
    "  return redis.call('XTRIM', key, 'MAXLEN', max), false\n"
    "end\n"
    "local removed, dremoved, more = 0, 0, false\n"
    "local reason, kid, kgroup, kconsumer, kept = 'age', '', '', '', -1\n"
    "local age_cut = (now - tonumber(ARGV[1])) .. '-0'\n"
    "local cut = age_cut\n"
    "local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])\n"
    "if not ok then groups = {} end\n"
    "if #groups == 0 then cut, reason = '0-0', 'no_group' end\n"
    "for _, g in ipairs(groups) do\n"
    "  local info = {}\n"
    "  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end\n"
    "  if info['name'] == ARGV[5] and type(info['lag']) == 'number' then\n"
    "    redis.call('HSET', KEYS[3], '" HISTORY_F_LAG "', info['lag'])\n"
    "    redis.call('EXPIRE', KEYS[3], " DG_STRINGIFY(HISTORY_TTL_S) ")\n"
    "  end\n"
    "  local p = redis.call('XPENDING', KEYS[1], info['name'], '-', '+', 1)\n"
    "  if p[1] and lt(p[1][1], cut) then\n"
    "    cut, reason, kid, kgroup, kconsumer = p[1][1], 'pending', p[1][1], info['name'], p[1][2]\n"
    "  end\n"
    "  local u = redis.call('XRANGE', KEYS[1], after(info['last-delivered-id']), '+', 'COUNT', 1)\n"
    "  if u[1] and lt(u[1][1], cut) then\n"
    "    cut, reason, kid, kgroup, kconsumer = u[1][1], 'unread', u[1][1], info['name'], ''\n"
    "  end\n"
    "end\n"
    "if tonumber(ARGV[1]) > 0 then\n"
    "  if redis.call('XLEN', KEYS[1]) == 0 then\n"
    "    reason = 'empty'\n"
    "  elseif cut ~= '0-0' then\n"
    "    removed, more = trim_below(KEYS[1], cut)\n"
    "  end\n"
    "  if ARGV[6] == '1' and kid ~= '' and not more then\n"
    "    kept = #redis.call('XRANGE', KEYS[1], kid, '(' .. age_cut, 'COUNT',\n"
    "      " DG_STRINGIFY(TRIM_MAX_KEPT_SHOWN) " + 1)\n"
    "  end\n"
    "end\n"
    "if tonumber(ARGV[3]) > 0 then\n"
    "  local dmore\n"
    "  dremoved, dmore = trim_to_len(KEYS[2], tonumber(ARGV[3]))\n"
    "  if not dmore then\n"
    "    local n\n"
    "    n, dmore = trim_below(KEYS[2], (now - tonumber(ARGV[4])) .. '-0')\n"
    "    dremoved = dremoved + n\n"
    "  end\n"
    "  more = more or dmore\n"
    "end\n"
    "return {removed, dremoved, more and 1 or 0, redis.call('XLEN', KEYS[1]), reason, age_cut,\n"
    "  kid, kgroup, kconsumer, kept, now}\n";
/* clang-format on */

const struct store_script trim_script = {"trim", trim_lua, sizeof(trim_lua) - 1};

void trim_cmd(struct store_cmd *c, const char *prefix, const struct trim_opts *o,
              char scratch[][24])
{
    snprintf(scratch[0], 24, "%" PRIu64, o->older_than_ms);
    snprintf(scratch[1], 24, "%d", TRIM_STEP);
    snprintf(scratch[2], 24, "%u", o->dead_max_len);
    snprintf(scratch[3], 24, "%" PRIu64, o->dead_older_than_ms);
    store_cmd_init(c);
    store_cmd_arg(c, "EVAL");
    store_cmd_arg_len(c, trim_lua, sizeof(trim_lua) - 1);
    store_cmd_arg(c, "3");
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_take(c, keys_dead(prefix));
    store_cmd_take(c, keys_minute(prefix, o->minute));
    store_cmd_arg(c, scratch[0]);
    store_cmd_arg(c, scratch[1]);
    store_cmd_arg(c, scratch[2]);
    store_cmd_arg(c, scratch[3]);
    store_cmd_arg(c, o->lag_minute ? KEYS_GROUP : "");
    store_cmd_arg(c, o->count_kept ? "1" : "0");
}

static bool is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

int trim_decode(const redisReply *r, struct trim_step *out)
{
    static const int ints[] = {0, 1, 2, 3, 9, 10}, strs[] = {4, 5, 6, 7, 8};
    char *const dst[] = {out->reason, out->cut_id, out->kept_id, out->kept_group,
                         out->kept_consumer};
    const size_t size[] = {sizeof(out->reason), sizeof(out->cut_id), sizeof(out->kept_id),
                           sizeof(out->kept_group), sizeof(out->kept_consumer)};

    memset(out, 0, sizeof(*out));
    if (!r)
        return DG_ERR_UNAVAILABLE;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 11)
        return DG_ERR_PROTOCOL;
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++)
        if (r->element[ints[i]]->type != REDIS_REPLY_INTEGER)
            return DG_ERR_PROTOCOL;
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
        if (!is_str(r->element[strs[i]]))
            return DG_ERR_PROTOCOL;
        snprintf(dst[i], size[i], "%s", r->element[strs[i]]->str);
    }
    out->removed = r->element[0]->integer;
    out->dead_removed = r->element[1]->integer;
    out->more = r->element[2]->integer == 1;
    out->length = r->element[3]->integer;
    out->kept_older = r->element[9]->integer;
    out->now_ms = r->element[10]->integer;
    return 0;
}

struct trim_op {
    trim_cb cb;
    void *data;
};

static void on_trimmed(int err, redisReply *r, void *data)
{
    struct trim_op *op = data;
    struct trim_step s;

    if (!err)
        err = trim_decode(r, &s);
    op->cb(err, err ? NULL : &s, op->data);
    xfree(op);
}

int trim_run(struct redis_conn *conn, const char *prefix, const struct trim_opts *o, trim_cb cb,
             void *data)
{
    char scratch[TRIM_SCRATCH][24];
    struct trim_op *op = xcalloc(1, sizeof(*op));
    struct store_cmd c;
    int err;

    op->cb = cb;
    op->data = data;
    trim_cmd(&c, prefix, o, scratch);
    err = redis_conn_command(conn, 0, on_trimmed, op, c.argc, c.argv, c.argvlen);
    if (err)
        xfree(op);
    store_cmd_free(&c);
    return err;
}

void trim_total_add(struct trim_total *t, const struct trim_step *s)
{
    t->removed += s->removed;
    t->dead_removed += s->dead_removed;
    t->steps++;
    t->last = *s;
}

struct json_object *trim_total_json(const struct trim_total *t)
{
    const struct trim_step *s = &t->last;
    struct json_object *o = jobj(), *kept = NULL;

    jset(o, "older_than_ms", jint64((int64_t)t->older_than_ms));
    jset(o, "removed", jint64(t->removed));
    jset(o, "dead_removed", jint64(t->dead_removed));
    jset(o, "steps", jint64(t->steps));
    jset(o, "length", jint64(s->length));
    jset_str(o, "cut_id", s->cut_id);
    if (strcmp(s->reason, "age") != 0 && strcmp(s->reason, "empty") != 0) {
        kept = jobj();
        jset_str(kept, "reason", s->reason);
        jset(kept, "id", s->kept_id[0] ? jstr(s->kept_id) : NULL);
        jset(kept, "group", s->kept_group[0] ? jstr(s->kept_group) : NULL);
        jset(kept, "consumer", s->kept_consumer[0] ? jstr(s->kept_consumer) : NULL);
        jset(kept, "older_entries",
             s->kept_older < 0 ? NULL
                               : jint64(s->kept_older > TRIM_MAX_KEPT_SHOWN ? TRIM_MAX_KEPT_SHOWN
                                                                            : s->kept_older));
        jset(kept, "older_entries_capped", jbool(s->kept_older > TRIM_MAX_KEPT_SHOWN));
    }
    jset(o, "kept", kept);
    return o;
}
