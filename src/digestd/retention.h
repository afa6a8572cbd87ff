/*
 * retention.h: the worker's upkeep of the streams (SPEC §2, §5): every
 * RETENTION_INTERVAL_MS (SPEC: at least every 10 s) it runs the retention
 * rule (store/trim.h) with STREAM_RETENTION, DEAD_MAX_LEN and
 * DEAD_RETENTION, and keeps running bounded steps while one says more is
 * left, so a backlog of old entries drains without any call holding Redis
 * for long. Each step also samples the group's lag into this minute's
 * history. On the queue's command connection.
 *
 * Lifecycle: create → start → stop(cb) (no new step; cb once the one in
 * flight, if any, is answered) → free. Borrows config and queue.
 */
#pragma once

#include <uv.h>

struct retention;
struct config;
struct queue;

#define RETENTION_INTERVAL_MS 5000

typedef void (*retention_cb)(struct retention *r, void *data);

struct retention *retention_create(uv_loop_t *loop, const struct config *cfg, struct queue *queue);
void retention_start(struct retention *r);
void retention_stop(struct retention *r, retention_cb cb, void *data);
void retention_free(struct retention *r);
