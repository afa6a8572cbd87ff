/*
 * trim.h: keeping {P}:requests and {P}:dead bounded (SPEC §2, §5). The
 * workers do it by themselves (STREAM_RETENTION, DEAD_MAX_LEN,
 * DEAD_RETENTION); `digestctl trim --older-than` is the manual form of the
 * same rule and runs the same script.
 *
 * The rule: entries of the stream older than the cut go, exactly (MINID),
 * but the cut never passes the oldest entry that any group has pending or
 * not yet read, and with no group at all nothing goes (a group created
 * later at 0 would still read them). The dead stream loses its oldest
 * entries past DEAD_MAX_LEN and those older than DEAD_RETENTION.
 *
 * Redis refuses LIMIT on an exact trim, and one exact trim of a million
 * entries is one long command, so each call removes about TRIM_STEP
 * entries of each stream at most and says whether more is left: the caller
 * calls again, and other clients run in between. A call first drops whole
 * nodes below the cut (an approximate trim with LIMIT, which never goes
 * past its id and copies no entry), and only when none is left trims the
 * few entries of the node the cut falls in exactly; XRANGE … COUNT steps
 * the cut only if nodes were configured larger than a step. Every call
 * also writes the group's lag into the caller's minute (history.h), which
 * is how the per-minute lag is sampled.
 *
 * Times are Redis's clock, the one the entry ids are made of. Builders and
 * the decoder are pure (a blocking caller shares them); the async call
 * finishes exactly once (redis.h rules).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "core/common.h"

struct json_object;
struct redis_conn;
struct redisReply;
struct store_cmd;

#define TRIM_STEP 1000          /* entries per call and stream (bench/RESULTS.md) */
#define TRIM_MAX_KEPT_SHOWN 100 /* kept entries counted for the report, at most */

struct trim_opts {
    uint64_t older_than_ms; /* the stream: entries older than this go; 0 leaves it alone */
    unsigned dead_max_len;  /* the dead stream: 0 leaves it alone */
    uint64_t dead_older_than_ms;
    bool lag_minute; /* write the group's lag into minute */
    uint64_t minute; /* the caller's epoch minute (history_minute) */
    bool count_kept; /* count the entries kept older than the cut (for a report) */
};

/* What one call did, and why it stopped where it did. */
struct trim_step {
    long long now_ms;  /* Redis's clock */
    long long removed; /* from the stream */
    long long dead_removed;
    long long length; /* of the stream, after */
    bool more;        /* a step was full: call again */
    char reason[16];  /* the stream's cut: age, pending, unread, no_group, empty */
    char cut_id[48];  /* the cut by age ("<now - older_than>-0") */
    char kept_id[48]; /* pending / unread: the oldest such entry */
    char kept_group[128];
    char kept_consumer[320]; /* pending: who holds it */
    long long kept_older;    /* count_kept: entries from kept_id to the cut (-1 unknown) */
};

/* A manual trim's steps added up, for the report. */
struct trim_total {
    uint64_t older_than_ms;
    long long removed, dead_removed, steps;
    struct trim_step last;
};

typedef void (*trim_cb)(int err, const struct trim_step *s, void *data);

/* scratch holds the numbers as text: it must live until the command is sent. */
void trim_cmd(struct store_cmd *c, const char *prefix, const struct trim_opts *o,
              char scratch[][24]);
#define TRIM_SCRATCH 5
/* 0, DG_ERR_PROTOCOL (an error reply, or the wrong shape) or DG_ERR_UNAVAILABLE (NULL). */
int trim_decode(const struct redisReply *r, struct trim_step *out) WARN_UNUSED;
int trim_run(struct redis_conn *conn, const char *prefix, const struct trim_opts *o, trim_cb cb,
             void *data) WARN_UNUSED;

void trim_total_add(struct trim_total *t, const struct trim_step *s);
/*
 * {"older_than_ms","removed","dead_removed","steps","length","cut_id",
 * "kept":{"reason","id","group","consumer","older_entries","older_entries_capped"}|null}
 * (owned): kept says why the cut stopped short of the age, null when it did not.
 */
struct json_object *trim_total_json(const struct trim_total *t);
