/* admin.c: health, readiness and metrics endpoints. */
#include "admin.h"

#include <string.h>

#include "buf.h"
#include "config.h"
#include "http_server.h"
#include "metrics.h"
#include "queue.h"

/* A /metrics page is a few KiB; the cap only guards against a runaway. */
#define METRICS_MAX_BYTES (1u << 20)

struct admin {
    const struct config *cfg;
    struct queue *queue;
    struct metrics *metrics;
};

struct admin *admin_create(const struct config *cfg, struct queue *queue, struct metrics *metrics)
{
    struct admin *adm = xcalloc(1, sizeof(*adm));
    adm->cfg = cfg;
    adm->queue = queue;
    adm->metrics = metrics;
    return adm;
}

void admin_free(struct admin *adm)
{
    xfree(adm);
}

static void handle_healthz(struct http_request *req, void *data)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_request_respond(req, 200, "application/json", body, sizeof(body) - 1, NULL, 0);
}

static void handle_readyz(struct http_request *req, void *data)
{
    struct admin *adm = data;
    bool ready = queue_ready(adm->queue);
    struct buf b;
    int err;

    buf_init(&b, 4096);
    err = buf_printf(&b, "{\"ready\":%s,\"reasons\":[%s]", ready ? "true" : "false",
                     ready ? "" : "\"redis: not connected\"");
    if (!err && adm->cfg->bot_auth == BOT_AUTH_OFF)
        err = buf_append_str(&b, ",\"warnings\":[\"BOT_AUTH=off: inbound activities are not "
                                 "authenticated (local development only)\"]");
    if (!err)
        err = buf_append_str(&b, "}");
    if (err)
        http_request_respond_error(req, 500, "internal", "readiness report too large", NULL, 0);
    else
        http_request_respond(req, ready ? 200 : 503, "application/json", b.data, b.len, NULL, 0);
    buf_free(&b);
}

static void handle_metrics(struct http_request *req, void *data)
{
    struct admin *adm = data;
    struct buf b;

    buf_init(&b, METRICS_MAX_BYTES);
    if (metrics_render(adm->metrics, &b) != 0)
        http_request_respond_error(req, 500, "internal", "metrics too large", NULL, 0);
    else
        http_request_respond(req, 200, "text/plain; version=0.0.4", b.data, b.len, NULL, 0);
    buf_free(&b);
}

void admin_register(struct admin *adm, struct http_server *srv)
{
    http_server_route(srv, "GET", "/healthz", "healthz", handle_healthz, adm);
    http_server_route(srv, "GET", "/readyz", "readyz", handle_readyz, adm);
    http_server_route(srv, "GET", "/metrics", "metrics", handle_metrics, adm);
}
