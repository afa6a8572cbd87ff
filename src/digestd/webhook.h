/*
 * webhook.h: POST /api/messages (and its alias /api/teams/webhook) from top
 * to bottom, SPEC §3: content type → auth → activity → serviceUrl → command
 * → Redis → the answer → the card posted as a reply. It owns one context per
 * activity, alive until the answer is sent AND its card has been posted;
 * config, queue, connector, http_client and metrics are borrowed from main.
 * A request whose client leaves early finishes anyway (http_server drops
 * the bytes), so nothing is ever half-done.
 */
#pragma once

#include <uv.h>

struct webhook;
struct auth;
struct config;
struct queue;
struct connector;
struct http_client;
struct metrics;
struct http_server;

typedef void (*webhook_drained_cb)(struct webhook *wh, void *data);

struct webhook *webhook_create(const struct config *cfg, struct queue *queue,
                               struct connector *connector, struct http_client *http,
                               struct metrics *metrics);
/*
 * With BOT_AUTH=jwt, the module that checks tokens (borrowed). Without it a
 * jwt configuration refuses every activity (503) rather than trust it.
 */
void webhook_set_auth(struct webhook *wh, struct auth *auth);
/* Adds the webhook routes to srv. */
void webhook_register(struct webhook *wh, struct http_server *srv);
/* cb runs (from the loop or at once) when nothing is in flight any more. */
void webhook_drain(struct webhook *wh, webhook_drained_cb cb, void *data);
void webhook_free(struct webhook *wh);
