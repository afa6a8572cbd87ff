/*
 * repair.c: the commands that change Redis (requeue, trim, consumers
 * --prune). Each says what it did and what it left and why, and each runs
 * the store's own script, the one digestd runs: a requeue of all dead jobs
 * is the admin route's stepped requeue, a trim is the workers' retention
 * step with a different age. Nothing here holds Redis for long: the
 * stepped ones send bounded calls one after the other.
 */
#include "ctl.h"

#include <inttypes.h>
#include <string.h>

#include <json-c/json.h>

#include "core/json_build.h"
#include "field.h"
#include "store/cmd.h"
#include "store/inspect.h"
#include "store/trim.h"
#include "table.h"

/* ---- requeue ------------------------------------------------------------- */

static int requeue_one(struct ctl *ctl)
{
    struct store_cmd c;
    const char *sid;
    redisReply *r;
    int rc = CTL_OK;

    if (inspect_requeue_cmd(&c, ctl->cfg.prefix, ctl->opts.arg) != 0)
        return ctl_error(CTL_FAIL, "no dead job for request %s", ctl->opts.arg);
    r = ctl_command(ctl, &c);
    if (!r)
        return CTL_FAIL;
    if (inspect_requeue_decode(r, &sid) != 0)
        rc = ctl_error(CTL_FAIL, "Redis at %s answered something unexpected", ctl->where);
    else if (!sid)
        rc = ctl_error(CTL_FAIL, "no dead job for request %s", ctl->opts.arg);
    else if (ctl->opts.json)
        ctl_print_json(ctl, inspect_requeued_json(ctl->opts.arg, sid));
    else
        fprintf(ctl->out, "requeued %s as stream entry %s\n", ctl->opts.arg, sid);
    freeReplyObject(r);
    return rc;
}

/* The number of dead jobs now, or -1 after printing why not. */
static long long dead_count(struct ctl *ctl)
{
    struct store_cmd c;
    struct json_object *o;
    long long n;

    if (inspect_dead_cmd(&c, ctl->cfg.prefix, 1) != 0 ||
        ctl_query(ctl, &c, inspect_dead_decode, &o) != CTL_OK)
        return -1;
    n = field_int(o, "count", 0);
    json_object_put(o);
    return n;
}

/* "Requeue all N dead jobs? [y/N]" on stderr, the answer from stdin: true for y or yes. */
static bool confirmed(long long n)
{
    char line[32];

    fprintf(stderr, "Requeue all %lld dead jobs? [y/N] ", n);
    fflush(stderr);
    if (!fgets(line, sizeof(line), stdin))
        return false;
    return strcmp(line, "y\n") == 0 || strcmp(line, "yes\n") == 0 || strcmp(line, "Y\n") == 0;
}

/* The steps of inspect_requeue_all until done: exactly the jobs counted, or none. */
static int requeue_all(struct ctl *ctl)
{
    struct inspect_requeue_all s;
    long long n = dead_count(ctl);
    struct json_object *o;

    if (n < 0)
        return CTL_FAIL;
    if (!ctl->opts.json)
        fprintf(ctl->out, "%lld dead job(s)\n", n);
    if (n > 0 && !ctl->opts.yes && !confirmed(n))
        return ctl_error(CTL_FAIL, "not confirmed: nothing requeued (--yes skips the question)");
    inspect_requeue_all_init(&s, n);
    while (n > 0 && !s.done) {
        struct store_cmd c;
        redisReply *r;
        int err;

        inspect_requeue_all_cmd(&c, ctl->cfg.prefix, &s);
        r = ctl_command(ctl, &c);
        if (!r)
            return ctl_error(CTL_FAIL, "stopped after %lld requeued; the rest is still dead",
                             s.requeued);
        err = inspect_requeue_all_decode(r, &s);
        freeReplyObject(r);
        if (err)
            return ctl_error(CTL_FAIL, "Redis at %s answered something unexpected", ctl->where);
    }
    if (s.mismatch)
        return ctl_error(CTL_FAIL, "%lld dead jobs now, not %lld: nothing requeued; look again",
                         s.dead_now, n);
    if (ctl->opts.json) {
        o = jobj();
        jset(o, "requeued", jint64(s.requeued));
        ctl_print_json(ctl, o);
    } else {
        fprintf(ctl->out, "requeued %lld dead job(s)\n", s.requeued);
    }
    return CTL_OK;
}

int ctl_requeue(struct ctl *ctl)
{
    return ctl->opts.all_dead ? requeue_all(ctl) : requeue_one(ctl);
}

/* ---- trim ----------------------------------------------------------------- */

/* Why the cut stopped short of the age, in words. */
static void trim_kept_print(struct ctl *ctl, const struct trim_step *s)
{
    char n[32];

    if (strcmp(s->reason, "no_group") == 0) {
        fprintf(ctl->out, "kept everything: no consumer group reads the stream, so every entry "
                          "is unread to one created later\n");
        return;
    }
    if (strcmp(s->reason, "pending") != 0 && strcmp(s->reason, "unread") != 0)
        return;
    if (s->kept_older >= 0)
        snprintf(n, sizeof(n), "%s%lld", s->kept_older > TRIM_MAX_KEPT_SHOWN ? "over " : "",
                 s->kept_older > TRIM_MAX_KEPT_SHOWN ? (long long)TRIM_MAX_KEPT_SHOWN
                                                     : s->kept_older);
    else
        snprintf(n, sizeof(n), "some");
    if (strcmp(s->reason, "pending") == 0)
        fprintf(ctl->out,
                "kept %s older entries from %s on: it is pending in group %s under %s "
                "(never trimmed past what is pending)\n",
                n, s->kept_id, s->kept_group, s->kept_consumer);
    else
        fprintf(ctl->out,
                "kept %s older entries from %s on: group %s has not read it yet (never trimmed "
                "past what is unread)\n",
                n, s->kept_id, s->kept_group);
}

int ctl_trim(struct ctl *ctl)
{
    struct trim_opts o = {.older_than_ms = ctl->opts.older_than_ms, .count_kept = true};
    struct trim_total t = {.older_than_ms = ctl->opts.older_than_ms};
    struct trim_step s;
    char age[32];

    do {
        char scratch[TRIM_SCRATCH][24];
        struct store_cmd c;
        redisReply *r;
        int err;

        trim_cmd(&c, ctl->cfg.prefix, &o, scratch);
        r = ctl_command(ctl, &c);
        if (!r)
            return ctl_error(CTL_FAIL, "stopped after removing %lld entries", t.removed);
        err = trim_decode(r, &s);
        freeReplyObject(r);
        if (err)
            return ctl_error(CTL_FAIL, "Redis at %s answered something unexpected", ctl->where);
        trim_total_add(&t, &s);
    } while (s.more);
    if (ctl->opts.json) {
        ctl_print_json(ctl, trim_total_json(&t));
        return CTL_OK;
    }
    fprintf(ctl->out,
            "removed %lld acknowledged entries older than %s in %lld step(s); %lld left\n",
            t.removed, fmt_span((int64_t)t.older_than_ms, age, sizeof(age)), t.steps, s.length);
    trim_kept_print(ctl, &s);
    return CTL_OK;
}

/* ---- consumers -------------------------------------------------------------- */

/* What --prune did with one consumer, and why. */
static const char *action(struct ctl *ctl, struct json_object *c, char *out, size_t size)
{
    char a[32], b[32];

    if (!ctl->opts.prune)
        return NULL;
    if (field_bool(c, "removed"))
        return "removed";
    if (field_int(c, "pending", 0) > 0)
        snprintf(out, size, "kept: holds %" PRId64 " pending", field_int(c, "pending", 0));
    else if (field_bool(c, "alive"))
        snprintf(out, size, "kept: live heartbeat");
    else
        snprintf(out, size, "kept: idle %s < %s", fmt_span(field_int(c, "idle_ms", 0), a, 32),
                 fmt_span((int64_t)ctl->opts.idle_ms, b, sizeof(b)));
    return out;
}

static void consumers_print(struct ctl *ctl, struct json_object *o)
{
    static const char *const h[] = {"~CONSUMER", "GROUP",     ">PENDING",
                                    ">IDLE",     "HEARTBEAT", "ACTION"};
    struct json_object *list = field(o, "consumers");
    struct table *t = table_new(ctl->opts.prune ? 6 : 5, h);
    char n[3][64];

    for (size_t i = 0; i < field_len(list); i++) {
        struct json_object *c = field_at(list, i);
        const char *row[] = {field_str(c, "name"),
                             field_str(c, "group"),
                             fmt_int(field_int(c, "pending", -1), n[0], sizeof(n[0])),
                             fmt_span(field_int(c, "idle_ms", -1), n[1], sizeof(n[1])),
                             field_bool(c, "alive") ? "live" : "none",
                             action(ctl, c, n[2], sizeof(n[2]))};
        table_row(t, row);
    }
    if (field_len(list) == 0)
        fprintf(ctl->out, "no consumers\n");
    else
        table_print(t, ctl->out, 0, ctl->opts.wide ? 0 : CTL_WIDTH);
    if (ctl->opts.prune)
        fprintf(ctl->out, "removed %" PRId64 " of %zu consumer(s)\n", field_int(o, "removed", 0),
                field_len(list));
    table_free(t);
}

int ctl_consumers(struct ctl *ctl)
{
    struct store_cmd c;
    struct json_object *o;
    int rc;

    inspect_consumers_cmd(&c, ctl->cfg.prefix, ctl->opts.prune, ctl->opts.idle_ms);
    rc = ctl_query(ctl, &c, inspect_consumers_decode, &o);
    if (rc != CTL_OK)
        return rc;
    if (ctl->opts.json) {
        ctl_print_json(ctl, o);
        return CTL_OK;
    }
    consumers_print(ctl, o);
    json_object_put(o);
    return CTL_OK;
}
