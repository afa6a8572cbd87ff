/*
 * admin.h: the operational endpoints of SPEC §3: GET /healthz (the loop
 * runs), GET /readyz (Redis connected and, with BOT_AUTH=jwt, keys loaded;
 * with reasons when not), GET /metrics (Prometheus text). The /admin/... routes
 * join here when an issue asks for them. Borrows config, queue and metrics.
 */
#pragma once

struct admin;
struct config;
struct queue;
struct metrics;
struct http_server;

struct admin *admin_create(const struct config *cfg, struct queue *queue, struct metrics *metrics);
void admin_register(struct admin *adm, struct http_server *srv);
void admin_free(struct admin *adm);
