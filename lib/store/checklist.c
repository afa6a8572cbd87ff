/*
 * checklist.c: each item of the pre-rollout check is one function reading
 * the snapshot (inspect_queue) and the facts (inspect_check_facts) and
 * writing its evidence (see checklist.h). Where there has been no traffic,
 * an item that needs some says "none in the window" and holds: a quiet
 * system is not a broken one; what fails is evidence of breakage (jobs
 * that went in and none came out, a newest entry without its record).
 */
#include "store/checklist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/clock.h"
#include "core/json_build.h"
#include "store/keys.h"

#define EVIDENCE_MAX 256
#define WORKERS_NAMED 3 /* live workers named in the evidence, at most */

/* ---- reading the answers ------------------------------------------------ */

static struct json_object *get(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;

    return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* An integer member, dflt when absent or null. */
static int64_t get_int(struct json_object *o, const char *key, int64_t dflt)
{
    struct json_object *v = get(o, key);

    return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : dflt;
}

static const char *get_str(struct json_object *o, const char *key)
{
    struct json_object *v = get(o, key);

    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

/* The group named KEYS_GROUP in the snapshot's XINFO GROUPS, or NULL. */
static struct json_object *our_group(struct json_object *stats)
{
    struct json_object *groups = get(stats, "groups");
    size_t n = groups ? json_object_array_length(groups) : 0;

    for (size_t i = 0; i < n; i++) {
        struct json_object *g = json_object_array_get_idx(groups, i);
        if (strcmp(get_str(g, "name"), KEYS_GROUP) == 0)
            return g;
    }
    return NULL;
}

/* A count of the snapshot's last hour (this minute included). */
static int64_t window_count(struct json_object *stats, const char *field)
{
    return get_int(get(get(stats, "rates"), "last_hour"), field, 0);
}

static const char *span(int64_t ms, char *out, size_t size)
{
    return clock_format_span(ms > 0 ? (uint64_t)ms : 0, out, size);
}

/* ---- the items ----------------------------------------------------------- */

static void item(struct json_object *items, const char *name, bool ok, const char *evidence)
{
    struct json_object *o = jobj();

    jset_str(o, "item", name);
    jset(o, "ok", jbool(ok));
    jset_str(o, "evidence", evidence);
    jpush(items, o);
}

/* Nothing unread or pending in our group: what a worker scaled to zero may leave. */
static bool nothing_waiting(struct json_object *stats)
{
    struct json_object *g = our_group(stats);

    return !g || (get_int(g, "lag", -1) == 0 && get_int(g, "pending", -1) == 0);
}

static bool live_worker(struct json_object *stats, bool scale_to_zero, char *ev, size_t n)
{
    struct json_object *procs = get(stats, "procs");
    size_t np = procs ? json_object_array_length(procs) : 0, len = 0, workers = 0;
    char age[32], names[EVIDENCE_MAX] = "";

    for (size_t i = 0; i < np; i++) {
        struct json_object *p = json_object_array_get_idx(procs, i);
        const char *role = get_str(p, "role");

        if (strcmp(role, "worker") != 0 && strcmp(role, "all") != 0)
            continue;
        if (workers++ < WORKERS_NAMED && len < sizeof(names))
            len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s (%s, beat %s ago)",
                                    workers > 1 ? ", " : "", get_str(p, "name"), role,
                                    span(get_int(p, "beat_age_ms", 0), age, sizeof(age)));
    }
    if (workers > 0) {
        snprintf(ev, n, "%zu live: %.200s", workers, names);
        return true;
    }
    if (scale_to_zero && nothing_waiting(stats)) {
        snprintf(ev, n, "none live, and nothing is unread or pending (--scale-to-zero)");
        return true;
    }
    snprintf(ev, n, "no heartbeat of a digestd --role worker (or all) in the last 15s");
    return false;
}

static bool group_read(struct json_object *stats, bool scale_to_zero, char *ev, size_t n)
{
    struct json_object *g = our_group(stats), *consumers = get(stats, "consumers");
    size_t nc = consumers ? json_object_array_length(consumers) : 0, live = 0;
    int64_t lag;

    if (!g) {
        snprintf(ev, n, "no consumer group '%s' on the stream", KEYS_GROUP);
        return false;
    }
    for (size_t i = 0; i < nc; i++) {
        struct json_object *c = json_object_array_get_idx(consumers, i);
        live += strcmp(get_str(c, "group"), KEYS_GROUP) == 0 &&
                json_object_get_boolean(get(c, "alive"));
    }
    lag = get_int(g, "lag", -1);
    snprintf(ev, n, "entries read %" PRId64 ", lag %s%" PRId64 ", %zu live consumer(s)",
             get_int(g, "entries_read", 0), lag < 0 ? "unknown " : "", lag < 0 ? 0 : lag, live);
    if (live > 0 || lag == 0)
        return true;
    if (scale_to_zero && nothing_waiting(stats))
        return true;
    snprintf(ev + strlen(ev), n - strlen(ev), ": nobody reads what waits");
    return false;
}

static bool nothing_stuck(struct json_object *stats, char *ev, size_t n)
{
    struct json_object *stuck = get(stats, "stuck"), *oldest = get(stats, "oldest_pending");
    char a[32], b[32];
    int64_t limit = get_int(stats, "stuck_after_ms", 0);

    if (stuck) {
        snprintf(ev, n, "%s held by %s idle %s (limit %s), %" PRId64 " deliveries",
                 get_str(stuck, "id"), get_str(stuck, "consumer"),
                 span(get_int(stuck, "idle_ms", 0), a, sizeof(a)), span(limit, b, sizeof(b)),
                 get_int(stuck, "deliveries", 0));
        return false;
    }
    if (oldest)
        snprintf(ev, n, "oldest pending idle %s (limit %s)",
                 span(get_int(oldest, "idle_ms", 0), a, sizeof(a)), span(limit, b, sizeof(b)));
    else
        snprintf(ev, n, "nothing pending");
    return true;
}

static bool recent_records(struct json_object *facts, char *ev, size_t n)
{
    struct json_object *e = get(facts, "newest_entry");

    if (!e) {
        snprintf(ev, n, "none in the window (the stream is empty)");
        return true;
    }
    if (!get(e, "record_status")) {
        snprintf(ev, n, "newest entry %s: no audit record for request '%s' (expired or evicted?)",
                 get_str(e, "id"), get_str(e, "request_id"));
        return false;
    }
    snprintf(ev, n, "request %s (newest entry %s) is %s", get_str(e, "request_id"),
             get_str(e, "id"), get_str(e, "record_status"));
    return true;
}

static bool delivered_recently(struct json_object *stats, char *ev, size_t n)
{
    int64_t delivered = window_count(stats, "delivered");
    int64_t enqueued = window_count(stats, "enqueued");
    int64_t before = enqueued - get_int(get(get(stats, "rates"), "this_minute"), "enqueued", 0);

    if (delivered > 0) {
        snprintf(ev, n, "%" PRId64 " delivered in the last hour (%" PRId64 " enqueued)", delivered,
                 enqueued);
        return true;
    }
    if (enqueued == 0) {
        snprintf(ev, n, "none in the window (nothing enqueued in the last hour)");
        return true;
    }
    /* Jobs of this minute may simply not be done yet: only older ones count against. */
    if (before == 0) {
        snprintf(ev, n, "none yet: %" PRId64 " enqueued this minute", enqueued);
        return true;
    }
    snprintf(ev, n, "%" PRId64 " enqueued in the last hour, none delivered", enqueued);
    return false;
}

/* The hour's dead and failed jobs by the per-minute counts, and the newest dead entry's words. */
static bool no_dead(struct json_object *stats, struct json_object *facts, char *ev, size_t n)
{
    int64_t dead = window_count(stats, "dead") + window_count(stats, "failed");
    struct json_object *d = get(facts, "newest_dead");

    if (dead == 0 && !d) {
        snprintf(ev, n, "none");
        return true;
    }
    snprintf(ev, n, "%" PRId64 " in the last hour; newest: request %s, %s", dead ? dead : 1,
             get_str(d, "request_id"), get_str(d, "reason"));
    return false;
}

bool checklist_redis_version_ok(const char *version)
{
    char *end;
    long major = strtol(version, &end, 10);

    return end != version && (*end == '.' || *end == '\0') && major >= 7;
}

static bool redis_version(struct json_object *facts, char *ev, size_t n)
{
    const char *v = get_str(facts, "redis_version");
    bool ok = checklist_redis_version_ok(v);

    /* digestd: XINFO GROUPS lag, XAUTOCLAIM's deleted ids; KEDA's redis-streams
     * lag mode (lagCount, activationLagCount) reads the same lag. */
    snprintf(ev, n, "Redis %s (digestd and KEDA's lag mode need 7.0 or later)",
             *v ? v : "of unknown version");
    return ok;
}

struct json_object *checklist_evaluate(struct json_object *stats, struct json_object *facts,
                                       bool scale_to_zero)
{
    struct json_object *o = jobj(), *items = jarr();
    char ev[CHECKLIST_ITEMS][EVIDENCE_MAX];
    bool ok[CHECKLIST_ITEMS];
    const char *names[CHECKLIST_ITEMS] = {
        "a live worker",
        "the group exists and is read",
        "nothing stuck",
        "recent audit records",
        "a job delivered end to end recently",
        "no dead jobs in the last hour",
        "a Redis version digestd supports",
    };
    int passed = 0;

    ok[0] = live_worker(stats, scale_to_zero, ev[0], EVIDENCE_MAX);
    ok[1] = group_read(stats, scale_to_zero, ev[1], EVIDENCE_MAX);
    ok[2] = nothing_stuck(stats, ev[2], EVIDENCE_MAX);
    ok[3] = recent_records(facts, ev[3], EVIDENCE_MAX);
    ok[4] = delivered_recently(stats, ev[4], EVIDENCE_MAX);
    ok[5] = no_dead(stats, facts, ev[5], EVIDENCE_MAX);
    ok[6] = redis_version(facts, ev[6], EVIDENCE_MAX);
    for (int i = 0; i < CHECKLIST_ITEMS; i++) {
        item(items, names[i], ok[i], ev[i]);
        passed += ok[i];
    }
    jset(o, "ok", jbool(passed == CHECKLIST_ITEMS));
    jset_str(o, "redis_version", get_str(facts, "redis_version")); /* "" when unknown */
    jset(o, "passed", jint64(passed));
    jset(o, "total", jint64(CHECKLIST_ITEMS));
    jset(o, "items", items);
    return o;
}
