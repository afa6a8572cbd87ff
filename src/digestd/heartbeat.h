/*
 * heartbeat.h: this process's heartbeat (SPEC §5, store/procs.h): who it
 * is (role, version, host:pid, where it listens, since when, the effective
 * USE_ASYNC_DIGEST) and how it does (jobs in flight of its concurrency,
 * RSS, jobs done and failed), written on the queue's command connection
 * every PROCS_BEAT_MS while Redis is there, and removed at a clean exit so
 * digestctl does not show a process that left. A crash leaves the record
 * to expire after three periods.
 *
 * Lifecycle: create → start → stop(cb) (removes the record; cb once that
 * is answered or cannot be sent) → free. Borrows config, queue, metrics.
 */
#pragma once

#include <uv.h>

struct heartbeat;
struct config;
struct queue;
struct metrics;

typedef void (*heartbeat_cb)(struct heartbeat *hb, void *data);

/* listen_port: the port bound (DIGEST_LISTEN may say 0). */
struct heartbeat *heartbeat_create(uv_loop_t *loop, const struct config *cfg, struct queue *queue,
                                   struct metrics *metrics, int listen_port);
void heartbeat_start(struct heartbeat *hb);
/* Stops beating and removes the record; call before the queue stops. Idempotent. */
void heartbeat_stop(struct heartbeat *hb, heartbeat_cb cb, void *data);
void heartbeat_free(struct heartbeat *hb);
