/*
 * webhook.h: POST /api/messages (and its alias /api/teams/webhook) from top
 * to bottom, SPEC §3: content type → auth → activity → serviceUrl → command
 * → one atomic enqueue → the answer. It owns one context per request in
 * flight; config, queue and metrics are borrowed from main. A request whose
 * Redis step is still running when the client leaves finishes anyway (the
 * response is dropped by http_server), so nothing is half-done.
 */
#pragma once

#include <uv.h>

struct webhook;
struct config;
struct queue;
struct metrics;
struct http_server;

struct webhook *webhook_create(uv_loop_t *loop, const struct config *cfg, struct queue *queue,
                               struct metrics *metrics);
/* Adds the webhook routes to srv. */
void webhook_register(struct webhook *wh, struct http_server *srv);
/* Requests still waiting for Redis (for shutdown and /metrics). */
unsigned webhook_in_flight(const struct webhook *wh);
void webhook_free(struct webhook *wh);
