/*
 * admin.h: the operational endpoints of SPEC §3. GET /healthz (the loop
 * runs), GET /readyz (Redis connected and, with BOT_AUTH=jwt, signing keys
 * loaded; with reasons when not), GET /metrics (Prometheus text), and the
 * /admin/... routes behind ADMIN_TOKEN (not registered at all when it is
 * unset, so they answer 404): GET /admin/queue, /admin/procs,
 * /admin/pending, /admin/dead, /admin/history, /admin/requests/{id}, POST
 * /admin/dead/{id}/requeue and /admin/dead/requeue-all, each the JSON of
 * one store/inspect.h call (what digestctl --json prints). They run on the
 * queue's command connection, one round trip each (requeue-all: one per
 * INSPECT_REQUEUE_STEP jobs). JSON answers carry Cache-Control: no-store.
 * With the token set, the operators' page is registered too
 * (admin_page.h). Borrows config, queue, auth (NULL when BOT_AUTH=off or
 * there is no webhook) and metrics.
 */
#pragma once

struct admin;
struct auth;
struct config;
struct queue;
struct metrics;
struct http_server;

struct admin *admin_create(const struct config *cfg, struct queue *queue, struct auth *auth,
                           struct metrics *metrics);
void admin_register(struct admin *adm, struct http_server *srv);
void admin_free(struct admin *adm);
