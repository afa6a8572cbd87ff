/*
 * views.c: the read-only commands (stats, procs, pending, dead, show):
 * one inspect.h query each, printed as the JSON it answers (--json) or as
 * labelled lines and tables for a person. The human forms lead with what
 * an operator asks first: the verdict, what is stuck, who holds it.
 */
#include "ctl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "field.h"
#include "store/cmd.h"
#include "store/inspect.h"
#include "table.h"

#define LABEL "%-11s "    /* the label column of the human views */
#define NAME_MAX_SHOWN 40 /* a consumer's or a conversation's name in a line of text */

/* The ms part of a stream id, 0 when it is not one. */
static int64_t id_ms(const char *id)
{
    char *end;
    long long ms = strtoll(id, &end, 10);

    return end != id && *end == '-' ? (int64_t)ms : 0;
}

/* Runs a query and prints its JSON (--json), or hands it to print (borrowed), then frees it. */
static int show_answer(struct ctl *ctl, struct store_cmd *c,
                       int (*decode)(const redisReply *, struct json_object **),
                       void (*print)(struct ctl *, struct json_object *))
{
    struct json_object *o;
    int rc = ctl_query(ctl, c, decode, &o);

    if (rc != CTL_OK)
        return rc;
    if (ctl->opts.json) {
        ctl_print_json(ctl, o);
        return CTL_OK;
    }
    print(ctl, o);
    json_object_put(o);
    return CTL_OK;
}

static int width(const struct ctl *ctl)
{
    return ctl->opts.wide ? 0 : CTL_WIDTH;
}

/* ---- stats --------------------------------------------------------------- */

static void stats_counts(struct ctl *ctl, struct json_object *o)
{
    struct json_object *rates = field(o, "rates"), *hour = field(rates, "last_hour");
    struct json_object *lag = field(o, "lag_trend");
    const char *first = field_str(o, "first_id");
    int64_t now = field_int(o, "now_ms", 0);
    char a[32], b[32];

    fprintf(ctl->out, LABEL "%" PRId64 " entries", "stream", field_int(o, "length", 0));
    if (*first)
        fprintf(ctl->out, ", the first %s old", fmt_span(now - id_ms(first), a, sizeof(a)));
    fprintf(ctl->out,
            "\n" LABEL "%" PRId64 " this minute, %" PRId64 " last minute, %" PRId64 " last hour\n",
            "added", field_int(field(rates, "this_minute"), "enqueued", 0),
            field_int(field(rates, "last_minute"), "enqueued", 0), field_int(hour, "enqueued", 0));
    fprintf(ctl->out,
            LABEL "%" PRId64 " delivered, %" PRId64 " failed, %" PRId64 " dead; %" PRId64
                  " sync, %" PRId64 " fallback\n",
            "last hour", field_int(hour, "delivered", 0), field_int(hour, "failed", 0),
            field_int(hour, "dead", 0), field_int(hour, "sync", 0), field_int(hour, "fallback", 0));
    fprintf(ctl->out, LABEL "%s, a minute before %s\n", "lag",
            fmt_int(field_int(lag, "current", -1), a, sizeof(a)),
            fmt_int(field_int(lag, "previous", -1), b, sizeof(b)));
}

/* The oldest pending entry and what is stuck, the first things to look at. */
static void stats_pending(struct ctl *ctl, struct json_object *o)
{
    struct json_object *p = field(o, "oldest_pending"), *s = field(o, "stuck");
    struct json_object *groups = field(o, "groups");
    char a[32], b[32], c[32], name[NAME_MAX_SHOWN + 1];
    int64_t pending = 0;

    for (size_t i = 0; i < field_len(groups); i++)
        pending += field_int(field_at(groups, i), "pending", 0);
    fprintf(ctl->out, LABEL "%" PRId64 "\n", "pending", pending);
    if (p)
        fprintf(ctl->out, LABEL "%s under %s\n" LABEL "age %s, idle %s, deliveries %" PRId64 "\n",
                "oldest", field_str(p, "id"),
                fmt_cut(field_str(p, "consumer"), NAME_MAX_SHOWN, name, sizeof(name)), "",
                fmt_span(field_int(p, "age_ms", -1), a, sizeof(a)),
                fmt_span(field_int(p, "idle_ms", -1), b, sizeof(b)), field_int(p, "deliveries", 0));
    if (s)
        fprintf(ctl->out,
                LABEL "%s under %s\n" LABEL "idle %s (limit %s), deliveries %" PRId64 "\n", "stuck",
                field_str(s, "id"),
                fmt_cut(field_str(s, "consumer"), NAME_MAX_SHOWN, name, sizeof(name)), "",
                fmt_span(field_int(s, "idle_ms", -1), a, sizeof(a)),
                fmt_span(field_int(o, "stuck_after_ms", -1), c, sizeof(c)),
                field_int(s, "deliveries", 0));
}

static void stats_dead(struct ctl *ctl, struct json_object *o)
{
    struct json_object *d = field_at(field(o, "dead_recent"), 0);
    int64_t now = field_int(o, "now_ms", 0), failed;
    char a[32], reason[NAME_MAX_SHOWN + 1];

    fprintf(ctl->out, LABEL "%" PRId64, "dead", field_int(o, "dead", 0));
    if (d) {
        failed = field_int(d, "failed_ms", 0);
        fprintf(ctl->out, "; newest: %s (request %s, %s ago)",
                fmt_cut(field_str(d, "reason"), NAME_MAX_SHOWN, reason, sizeof(reason)),
                field_str(d, "request_id"), failed ? fmt_span(now - failed, a, sizeof(a)) : "?");
    }
    fputc('\n', ctl->out);
}

static void groups_table(struct ctl *ctl, struct json_object *groups)
{
    static const char *const h[] = {"GROUP", ">CONSUMERS",    ">PENDING",
                                    ">LAG",  ">ENTRIES READ", "LAST DELIVERED"};
    struct table *t = table_new(6, h);
    char n[4][24];

    for (size_t i = 0; i < field_len(groups); i++) {
        struct json_object *g = field_at(groups, i);
        const char *row[] = {field_str(g, "name"),
                             fmt_int(field_int(g, "consumers", -1), n[0], sizeof(n[0])),
                             fmt_int(field_int(g, "pending", -1), n[1], sizeof(n[1])),
                             fmt_int(field_int(g, "lag", -1), n[2], sizeof(n[2])),
                             fmt_int(field_int(g, "entries_read", -1), n[3], sizeof(n[3])),
                             field_str(g, "last_delivered_id")};
        table_row(t, row);
    }
    fputc('\n', ctl->out);
    if (field_len(groups) == 0)
        fprintf(ctl->out, "no consumer group on the stream\n");
    else
        table_print(t, ctl->out, 0, width(ctl));
    table_free(t);
}

static void consumers_table(struct ctl *ctl, struct json_object *consumers)
{
    static const char *const h[] = {"~CONSUMER", "GROUP", ">PENDING", ">IDLE", "HEARTBEAT"};
    struct table *t = table_new(5, h);
    char n[2][32];

    if (field_len(consumers) == 0) {
        table_free(t);
        return;
    }
    for (size_t i = 0; i < field_len(consumers); i++) {
        struct json_object *c = field_at(consumers, i);
        const char *row[] = {field_str(c, "name"), field_str(c, "group"),
                             fmt_int(field_int(c, "pending", -1), n[0], sizeof(n[0])),
                             fmt_span(field_int(c, "idle_ms", -1), n[1], sizeof(n[1])),
                             field_bool(c, "alive") ? "live" : "none (dead)"};
        table_row(t, row);
    }
    fputc('\n', ctl->out);
    table_print(t, ctl->out, 0, width(ctl));
    table_free(t);
}

static void procs_table(struct ctl *ctl, struct json_object *procs, struct json_object *dead);

void ctl_stats_print(struct ctl *ctl, struct json_object *o)
{
    fprintf(ctl->out, "verdict: %s\n\n", field_str(o, "verdict_text"));
    stats_counts(ctl, o);
    stats_pending(ctl, o);
    stats_dead(ctl, o);
    groups_table(ctl, field(o, "groups"));
    consumers_table(ctl, field(o, "consumers"));
    procs_table(ctl, field(o, "procs"), NULL);
}

int ctl_stats(struct ctl *ctl)
{
    struct store_cmd c;

    inspect_queue_cmd(&c, ctl->cfg.prefix, ctl->cfg.worker_claim_idle_ms);
    return show_answer(ctl, &c, inspect_queue_decode, ctl_stats_print);
}

/* ---- procs ----------------------------------------------------------------- */

/* Live processes, then (when given) the group's consumers without a heartbeat, as dead. */
static void procs_table(struct ctl *ctl, struct json_object *procs, struct json_object *dead)
{
    static const char *const h[] = {"~PROCESS",   "STATE", "ROLE",       "VERSION", ">UP",
                                    ">IN FLIGHT", ">RSS",  ">LAST BEAT", "ASYNC"};
    struct table *t = table_new(9, h);
    char n[5][40];

    if (field_len(procs) + field_len(dead) == 0) {
        fprintf(ctl->out, "\nno live digestd process (none has beaten in the last 15s)\n");
        table_free(t);
        return;
    }
    for (size_t i = 0; i < field_len(procs); i++) {
        struct json_object *p = field_at(procs, i);
        const char *row[9] = {field_str(p, "name"), "live", field_str(p, "role"),
                              field_str(p, "version")};

        row[4] = fmt_span(field_int(p, "uptime_ms", -1), n[0], sizeof(n[0]));
        snprintf(n[1], sizeof(n[1]), "%" PRId64 "/%" PRId64, field_int(p, "in_flight", 0),
                 field_int(p, "concurrency", 0));
        row[5] = n[1];
        row[6] = fmt_bytes(field_int(p, "rss_bytes", -1), n[2], sizeof(n[2]));
        snprintf(n[3], sizeof(n[3]), "%s ago",
                 fmt_span(field_int(p, "beat_age_ms", -1), n[4], sizeof(n[4])));
        row[7] = n[3];
        row[8] = field_str(p, "async_mode");
        table_row(t, row);
    }
    for (size_t i = 0; i < field_len(dead); i++) {
        struct json_object *d = field_at(dead, i);
        const char *row[9] = {field_str(d, "name"), "dead", "consumer", NULL, NULL};

        snprintf(n[1], sizeof(n[1]), "%" PRId64 " pending", field_int(d, "pending", 0));
        row[5] = n[1];
        snprintf(n[3], sizeof(n[3]), "none (idle %s)",
                 fmt_span(field_int(d, "idle_ms", -1), n[4], sizeof(n[4])));
        row[7] = n[3];
        table_row(t, row);
    }
    fputc('\n', ctl->out);
    table_print(t, ctl->out, 0, width(ctl));
    table_free(t);
}

static void procs_print(struct ctl *ctl, struct json_object *o)
{
    procs_table(ctl, field(o, "procs"), field(o, "dead_consumers"));
}

int ctl_procs(struct ctl *ctl)
{
    struct store_cmd c;

    inspect_procs_cmd(&c, ctl->cfg.prefix);
    return show_answer(ctl, &c, inspect_procs_decode, procs_print);
}

/* ---- pending and dead ----------------------------------------------------- */

static void pending_print(struct ctl *ctl, struct json_object *o)
{
    static const char *const h[] = {"ID",   "~REQUEST", "CONSUMER",   "HEARTBEAT",
                                    ">AGE", ">IDLE",    ">DELIVERIES"};
    struct json_object *entries = field(o, "entries");
    struct table *t = table_new(7, h);
    char n[3][32];

    if (!field_bool(o, "group_exists")) {
        fprintf(ctl->out, "no group %s on the stream: nothing is pending\n", field_str(o, "group"));
        table_free(t);
        return;
    }
    fprintf(ctl->out, "%" PRId64 " pending in group %s", field_int(o, "count", 0),
            field_str(o, "group"));
    if (field_len(entries) < (size_t)field_int(o, "count", 0))
        fprintf(ctl->out, "; the oldest %zu", field_len(entries));
    fputc('\n', ctl->out);
    for (size_t i = 0; i < field_len(entries); i++) {
        struct json_object *e = field_at(entries, i);
        const char *row[] = {field_str(e, "id"),
                             field_str(e, "request_id"),
                             field_str(e, "consumer"),
                             field_bool(e, "consumer_alive") ? "live" : "none (dead)",
                             fmt_span(field_int(e, "age_ms", -1), n[0], sizeof(n[0])),
                             fmt_span(field_int(e, "idle_ms", -1), n[1], sizeof(n[1])),
                             fmt_int(field_int(e, "deliveries", -1), n[2], sizeof(n[2]))};
        table_row(t, row);
    }
    if (field_len(entries) > 0)
        table_print(t, ctl->out, 0, width(ctl));
    table_free(t);
}

int ctl_pending(struct ctl *ctl)
{
    struct store_cmd c;

    if (inspect_pending_cmd(&c, ctl->cfg.prefix, ctl->opts.limit) != 0)
        return ctl_error(CTL_USAGE, "--limit: expected 1..%d", INSPECT_MAX_LIMIT);
    return show_answer(ctl, &c, inspect_pending_decode, pending_print);
}

static void dead_print(struct ctl *ctl, struct json_object *o)
{
    static const char *const h[] = {"ID", "REQUEST", ">AGE", ">ATTEMPTS", "~REASON"};
    struct json_object *entries = field(o, "entries");
    struct table *t = table_new(5, h);
    int64_t now = field_int(o, "now_ms", 0);
    char n[32];

    fprintf(ctl->out, "%" PRId64 " dead job(s)", field_int(o, "count", 0));
    if (field_len(entries) > 0)
        fprintf(ctl->out, "; the newest %zu first", field_len(entries));
    fputc('\n', ctl->out);
    for (size_t i = 0; i < field_len(entries); i++) {
        struct json_object *e = field_at(entries, i);
        int64_t failed = field_int(e, "failed_ms", 0);
        const char *row[] = {field_str(e, "id"), field_str(e, "request_id"),
                             failed ? fmt_span(now - failed, n, sizeof(n)) : NULL,
                             field_str(e, "attempts"), field_str(e, "reason")};
        table_row(t, row);
    }
    if (field_len(entries) > 0)
        table_print(t, ctl->out, 0, width(ctl));
    table_free(t);
}

int ctl_dead(struct ctl *ctl)
{
    struct store_cmd c;

    if (inspect_dead_cmd(&c, ctl->cfg.prefix, ctl->opts.limit) != 0)
        return ctl_error(CTL_USAGE, "--limit: expected 1..%d", INSPECT_MAX_LIMIT);
    return show_answer(ctl, &c, inspect_dead_decode, dead_print);
}

/* ---- show ------------------------------------------------------------------- */

static void show_timeline(struct ctl *ctl, struct json_object *t)
{
    char a[40], b[32];

    for (size_t i = 0; i < field_len(t); i++) {
        struct json_object *s = field_at(t, i);
        int64_t after = field_int(s, "after_ms", -1);

        fprintf(ctl->out, LABEL "%-11s %s", i == 0 ? "timeline" : "", field_str(s, "step"),
                fmt_time(field_int(s, "at_ms", 0), a, sizeof(a)));
        if (after >= 0)
            fprintf(ctl->out, "  +%s", fmt_span(after, b, sizeof(b)));
        fputc('\n', ctl->out);
    }
}

/* Where the job is on the stream: pending under whom, or gone, and why that is fine. */
static void show_entry(struct ctl *ctl, struct json_object *o)
{
    struct json_object *e = field(o, "entry"), *p = field(o, "pending");
    const char *sid = field_str(o, "stream_id");
    char a[32], name[NAME_MAX_SHOWN + 1];

    if (p)
        fprintf(ctl->out,
                LABEL "%s pending under %s (%s)\n" LABEL "idle %s, deliveries %" PRId64 "\n",
                "entry", sid, fmt_cut(field_str(p, "consumer"), NAME_MAX_SHOWN, name, sizeof(name)),
                field_bool(p, "consumer_alive") ? "live" : "no heartbeat: dead", "",
                fmt_span(field_int(p, "idle_ms", -1), a, sizeof(a)), field_int(p, "deliveries", 0));
    else if (e)
        fprintf(ctl->out, LABEL "%s, not pending (%s)\n", "entry", sid,
                strcmp(field_str(o, "status"), "queued") == 0 ? "not read yet" : "acknowledged");
    else if (*sid)
        fprintf(ctl->out, LABEL "%s, trimmed (acknowledged, past STREAM_RETENTION)\n", "entry",
                sid);
    else
        fprintf(ctl->out, LABEL "none (%s)\n", "entry",
                strcmp(field_str(o, "mode"), "sync") == 0 ? "served in the webhook"
                                                          : "not recorded");
}

static void show_print(struct ctl *ctl, struct json_object *o)
{
    struct json_object *d = field(o, "dead_entry"), *conv = field(o, "conversation");
    const char *err = field_str(o, "last_error"), *mail = field_str(o, "test_email");
    char a[32], name[NAME_MAX_SHOWN + 1];

    fprintf(ctl->out, LABEL "%s\n", "request", field_str(o, "request_id"));
    fprintf(ctl->out, LABEL "%s (%s), %s attempt(s)", "status", field_str(o, "status"),
            field_str(o, "mode"), *field_str(o, "attempts") ? field_str(o, "attempts") : "0");
    if (field_int(o, "requeues", 0) > 0)
        fprintf(ctl->out, ", requeued %" PRId64 " time(s)", field_int(o, "requeues", 0));
    fprintf(ctl->out, "\n" LABEL "%s%s%s\n", "audience", field_str(o, "audience"),
            *mail ? ", test email " : "", mail);
    if (*err)
        fprintf(ctl->out, LABEL "%s\n", "last error", err);
    show_timeline(ctl, field(o, "timeline"));
    show_entry(ctl, o);
    if (d)
        fprintf(ctl->out, LABEL "%s: %s after %s attempt(s)\n", "dead entry", field_str(d, "id"),
                field_str(field(d, "fields"), "reason"), field_str(field(d, "fields"), "attempts"));
    if (conv) {
        int64_t updated = field_int(conv, "updated_ms", 0);
        fprintf(ctl->out, LABEL "%s, %s, updated %s ago\n", "conversation",
                fmt_cut(field_str(o, "conv"), NAME_MAX_SHOWN, name, sizeof(name)),
                strcmp(field_str(conv, "stale"), "1") == 0 ? "STALE (the bot was removed)"
                                                           : "not stale",
                updated ? fmt_span(field_int(o, "now_ms", 0) - updated, a, sizeof(a)) : "?");
    } else {
        fprintf(ctl->out, LABEL "%s: no reference stored\n", "conversation",
                fmt_cut(field_str(o, "conv"), NAME_MAX_SHOWN, name, sizeof(name)));
    }
    if (*field_str(o, "ack_activity_id") || *field_str(o, "result_activity_id"))
        fprintf(ctl->out, LABEL "ack %s, result %s\n", "cards",
                *field_str(o, "ack_activity_id") ? field_str(o, "ack_activity_id") : "-",
                *field_str(o, "result_activity_id") ? field_str(o, "result_activity_id") : "-");
}

int ctl_show(struct ctl *ctl)
{
    struct store_cmd c;
    struct json_object *o;
    int rc;

    /* An id digestd could not have issued names no request: not found, nothing sent. */
    if (inspect_request_cmd(&c, ctl->cfg.prefix, ctl->opts.arg) != 0)
        return ctl_error(CTL_FAIL, "no request %s", ctl->opts.arg);
    rc = ctl_query(ctl, &c, inspect_request_decode, &o);
    if (rc != CTL_OK)
        return rc;
    if (!o)
        return ctl_error(CTL_FAIL, "no request %s (its record expires after REQUEST_TTL_S)",
                         ctl->opts.arg);
    if (ctl->opts.json) {
        ctl_print_json(ctl, o);
        return CTL_OK;
    }
    show_print(ctl, o);
    json_object_put(o);
    return CTL_OK;
}
