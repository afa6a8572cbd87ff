/*
 * metrics.h: counters, gauges and latency histograms of one process, and
 * their Prometheus text rendering (GET /metrics). Owned by main; every module
 * that counts something borrows the pointer. Single-threaded like the rest
 * of digestd, so no atomics. A NULL struct metrics * is accepted everywhere
 * and counts nothing (handy in unit tests). Besides our own families it
 * renders the standard process_* gauges (read at render time from libuv
 * and /proc, which is memory, not disk) and digestd_build_info.
 */
#pragma once

#include <stdint.h>

#include "core/buf.h"

enum metrics_hist {
    METRICS_H_WEBHOOK = 0, /* webhook request received → response queued */
    METRICS_H_ENQUEUE,     /* enqueue round trip to Redis */
    METRICS_H_UPSTREAM,    /* upstream digest fetch */
    METRICS_H_CONNECTOR,   /* connector call */
    METRICS_H_JOB,         /* job created (webhook) → result accepted by the connector */
    METRICS_H_COUNT_,
};

enum metrics_counter {
    METRICS_C_REDIS_RECONNECTS = 0,
    METRICS_C_REDIS_ERRORS,
    METRICS_C_JOBS_ENQUEUED,
    METRICS_C_JOBS_DUPLICATE,
    METRICS_C_RETRIES,
    METRICS_C_TOKEN_REFRESHES,
    METRICS_C_CONNECTIONS_REJECTED,
    METRICS_C_JOB_ATTEMPTS,   /* worker attempts begun, first ones included */
    METRICS_C_PACING_REFUSED, /* connector sends refused: their conversation's queue was full */
    METRICS_C_ACKS_SKIPPED,   /* acknowledgment cards not posted: too many under way */
    METRICS_C_COUNT_,
};

enum metrics_gauge {
    METRICS_G_CONNECTIONS = 0, /* open HTTP connections */
    METRICS_G_REDIS_CONNECTED,
    METRICS_G_JOBS_IN_FLIGHT,
    METRICS_G_STREAM_LENGTH,
    METRICS_G_STREAM_PENDING,
    METRICS_G_STREAM_LAG,
    METRICS_G_COUNT_,
};

/* How a digest request was served (SPEC §3 "requests by mode"). */
enum metrics_mode {
    METRICS_MODE_ASYNC = 0, /* queued on the stream */
    METRICS_MODE_SYNC,      /* USE_ASYNC_DIGEST=false: served inside the webhook */
    METRICS_MODE_FALLBACK,  /* the async path chosen, Redis unreachable: served sync */
    METRICS_MODE_COUNT_,
};

struct metrics;

struct metrics *metrics_create(void);
void metrics_free(struct metrics *m);

/*
 * One finished HTTP request. route is a static string naming the route
 * ("webhook", "healthz", "unmatched", …): compared by pointer first.
 */
void metrics_http_request(struct metrics *m, const char *route, int status, uint64_t elapsed_ns);
void metrics_observe(struct metrics *m, enum metrics_hist h, uint64_t elapsed_ns);
void metrics_inc(struct metrics *m, enum metrics_counter c);
void metrics_add(struct metrics *m, enum metrics_counter c, uint64_t n);
void metrics_gauge_set(struct metrics *m, enum metrics_gauge g, int64_t v);
void metrics_gauge_add(struct metrics *m, enum metrics_gauge g, int64_t delta);
/*
 * One outbound response of a call timed by histogram h (upstream,
 * connector): status is the HTTP status, 0 when none arrived.
 */
void metrics_outbound(struct metrics *m, enum metrics_hist h, long status);
/* Jobs by outcome ("enqueued", "delivered", "failed", "dead", …): static string. */
void metrics_job_outcome(struct metrics *m, const char *outcome);
/* One digest request served in mode (fallback also counts as a sync fallback). */
void metrics_request_mode(struct metrics *m, enum metrics_mode mode);

/* What a process reports of itself elsewhere (its heartbeat); 0 for NULL metrics. */
int64_t metrics_gauge_get(const struct metrics *m, enum metrics_gauge g);
uint64_t metrics_job_outcome_count(const struct metrics *m, const char *outcome);
uint64_t metrics_counter_get(const struct metrics *m, enum metrics_counter c);

/* Appends the Prometheus text exposition of everything to out. */
int metrics_render(const struct metrics *m, struct buf *out) WARN_UNUSED;
