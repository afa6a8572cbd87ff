/*
 * worker.h: the job consumer of digestd (SPEC §6): reads {P}:requests in the
 * consumer group "workers" as consumer "host:pid" on a Redis connection of
 * its own (a blocking XREADGROUP must not hold up XACK and the audit
 * writes, which go on the queue's command connection), and runs each job —
 * fetch the digest, post the result card as a reply, record it, XACK,
 * update the acknowledgment card — at most WORKER_CONCURRENCY at a time.
 *
 * At least once, never lost: a job is acknowledged only in the Redis step
 * that records its end (delivered, or dead-lettered on {P}:dead); a job
 * whose record already says it ended is only acknowledged; jobs idle past
 * WORKER_CLAIM_IDLE_MS under a vanished consumer are claimed (XAUTOCLAIM),
 * while the jobs this process works on have their lease renewed so slow
 * retries are not taken from under it.
 *
 * Lifecycle: create → start → drain(cb) on SIGTERM (stop reading, hand back
 * jobs that are only waiting, let the rest finish) → stop(cb) → free.
 */
#pragma once

#include <stddef.h>
#include <uv.h>

struct worker;
struct config;
struct queue;
struct connector;
struct http_client;
struct metrics;

typedef void (*worker_cb)(struct worker *w, void *data);

/* Everything is borrowed and must outlive the worker. */
struct worker *worker_create(uv_loop_t *loop, const struct config *cfg, struct queue *queue,
                             struct connector *connector, struct http_client *http,
                             struct metrics *metrics);
/* Connects the reader and starts the claim and lease timers. */
void worker_start(struct worker *w);
/*
 * Stops taking jobs and hands back (re-queues) the ones waiting for a
 * retry; jobs under way finish, or are handed back when the outbound
 * clients are stopped under them (grace expired). cb runs once no job is
 * left. Idempotent.
 */
void worker_drain(struct worker *w, worker_cb cb, void *data);
/*
 * The shutdown grace is over: jobs waiting on a timer let go at once and
 * stay pending for another worker; Redis steps under way end the jobs that
 * make them. Call after worker_drain, before stopping the outbound clients
 * (whose cancelled calls hand their jobs back).
 */
void worker_cancel(struct worker *w);
/* Closes the reader connection and the timers; cb once all are closed. */
void worker_stop(struct worker *w, worker_cb cb, void *data);
void worker_free(struct worker *w);
