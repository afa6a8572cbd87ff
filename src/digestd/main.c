/*
 * main.c: the digestd entry point. Configuration → loop → modules wired in
 * the order a request flows through them → signals → the fixed shutdown
 * order of STYLE rule 20: stop accepting, let requests in flight finish
 * (bounded by SHUTDOWN_GRACE_MS), disconnect Redis, close what is left, and
 * end with uv_loop_close() == 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "admin.h"
#include "auth.h"
#include "config.h"
#include "teams/connector.h"
#include "http/http_client.h"
#include "http/http_server.h"
#include "core/log.h"
#include "heartbeat.h"
#include "metrics.h"
#include "store/queue.h"
#include "store/redis.h"
#include "store/redis_tls.h"
#include "webhook.h"
#include "worker.h"

extern char **environ;

enum shutdown_state {
    RUNNING = 0,
    DRAINING, /* listener closed; requests and their cards finish */
    STOPPING, /* outbound stopped; Redis disconnecting; the loop runs out */
};

struct app {
    uv_loop_t *loop;
    struct config cfg;
    struct metrics *metrics;
    struct queue *queue;
    struct http_client *http_client;
    struct connector *connector;
    struct http_server *http;
    struct webhook *webhook;
    struct admin *admin;
    struct worker *worker;       /* role worker or all */
    struct heartbeat *heartbeat; /* every role: {P}:proc:<host:pid> */
    struct auth *auth;           /* BOT_AUTH=jwt and a webhook: the signing keys */
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_timer_t grace;
    enum shutdown_state state;
    bool http_closed;       /* every request answered, every connection closed */
    bool webhook_drained;   /* every card posted (or given up) */
    bool worker_drained;    /* every job finished or handed back */
    bool worker_stopped;    /* its reader connection and timers closed */
    bool outbound_stopping; /* connector and http_client told to stop */
    unsigned outbound_open; /* of those two, not yet stopped */
};

static const char *const role_names[] = {"all", "api", "worker"};

static void usage(FILE *out)
{
    fprintf(out, "usage: digestd [--config FILE] [--role all|api|worker] [--help] [--version]\n");
}

/* Parses argv; exits 0 for --help/--version and 2 on a usage error. */
static void parse_args(int argc, char **argv, const char **config_file, enum config_role *role)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            config_print_help("digestd");
            exit(0);
        } else if (strcmp(a, "--version") == 0) {
            printf("digestd %s\n", DIGESTD_VERSION);
            exit(0);
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            *config_file = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            *config_file = a + 9;
        } else if ((strcmp(a, "--role") == 0 && i + 1 < argc) || strncmp(a, "--role=", 7) == 0) {
            const char *v = a[6] == '=' ? a + 7 : argv[++i];
            if (config_parse_role(v, role) != 0) {
                fprintf(stderr, "--role: expected all, api or worker, got '%s'\n", v);
                exit(2);
            }
        } else {
            fprintf(stderr, "digestd: unknown argument '%s'\n", a);
            usage(stderr);
            exit(2);
        }
    }
}

/* Refuses settings that cannot work together, rather than pretending. */
static int check_buildable(const struct config *cfg)
{
    /* Every token's aud must equal it: without one nothing could ever pass. */
    if (cfg->bot_auth == BOT_AUTH_JWT && cfg->role != ROLE_WORKER && !cfg->app_id) {
        fprintf(stderr, "MICROSOFT_APP_ID: required with BOT_AUTH=jwt (tokens are checked "
                        "against it)\n");
        return 2;
    }
    /* A CA bundle or client key that OpenSSL cannot use would fail every attempt: say so now. */
    if (cfg->redis_tls) {
        char err[300];
        SSL_CTX *ctx = redis_tls_ctx_create(cfg, err, sizeof(err));

        if (!ctx) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
        SSL_CTX_free(ctx);
    }
    return 0;
}

static void close_cb_noop(uv_handle_t *h)
{
}

static void on_queue_stopped(struct queue *q, void *data)
{
    struct app *app = data;

    uv_close((uv_handle_t *)&app->grace, close_cb_noop);
    uv_close((uv_handle_t *)&app->sigterm, close_cb_noop);
    uv_close((uv_handle_t *)&app->sigint, close_cb_noop);
}

/* The heartbeat's record is gone (or could not be removed): Redis can go. */
static void on_heartbeat_stopped(struct heartbeat *hb, void *data)
{
    struct app *app = data;

    queue_stop(app->queue, on_queue_stopped, app);
}

/*
 * Redis goes last: the requests and cards finishing above still write to
 * it, and just before it the heartbeat removes this process's record, so a
 * clean exit is not shown as a live process or a dead consumer.
 */
static void maybe_stop_queue(struct app *app)
{
    if (app->state == STOPPING || !app->http_closed || !app->webhook_drained ||
        !app->worker_drained || !app->worker_stopped || !app->outbound_stopping ||
        app->outbound_open > 0)
        return;
    app->state = STOPPING;
    uv_timer_stop(&app->grace);
    heartbeat_stop(app->heartbeat, on_heartbeat_stopped, app);
}

static void on_connector_stopped(struct connector *c, void *data)
{
    struct app *app = data;

    app->outbound_open--;
    maybe_stop_queue(app);
}

static void on_http_client_stopped(struct http_client *c, void *data)
{
    struct app *app = data;

    app->outbound_open--;
    maybe_stop_queue(app);
}

/*
 * Cancels what is still going out: pending cards and upstream fetches
 * finish at once with DG_ERR_CLOSED (sync requests then answer 502/503).
 * The connector goes first because it sends through the http_client.
 */
static void stop_outbound(struct app *app)
{
    if (app->outbound_stopping)
        return;
    app->outbound_stopping = true;
    app->outbound_open = 2;
    if (app->auth)
        auth_stop(app->auth); /* before the http_client its fetch runs on */
    connector_stop(app->connector, on_connector_stopped, app);
    http_client_stop(app->http_client, on_http_client_stopped, app);
}

static void on_worker_stopped(struct worker *w, void *data)
{
    struct app *app = data;

    app->worker_stopped = true;
    maybe_stop_queue(app);
}

/* Outbound calls end only once neither the webhook nor the worker makes any. */
static void maybe_stop_outbound(struct app *app)
{
    if (!app->webhook_drained || !app->worker_drained)
        return;
    stop_outbound(app);
    if (app->worker && !app->worker_stopped)
        worker_stop(app->worker, on_worker_stopped, app);
    else
        app->worker_stopped = true;
    maybe_stop_queue(app);
}

static void on_webhook_drained(struct webhook *wh, void *data)
{
    struct app *app = data;

    app->webhook_drained = true;
    maybe_stop_outbound(app);
}

static void on_worker_drained(struct worker *w, void *data)
{
    struct app *app = data;

    app->worker_drained = true;
    maybe_stop_outbound(app);
}

static void on_http_closed(struct http_server *srv, void *data)
{
    struct app *app = data;

    app->http_closed = true;
    if (app->webhook)
        webhook_drain(app->webhook, on_webhook_drained, app);
    else
        on_webhook_drained(NULL, app);
}

static void on_grace_expired(uv_timer_t *t)
{
    struct app *app = container_of(t, struct app, grace);

    log_warn("shutdown grace of %llu ms expired; cancelling what is in flight",
             (unsigned long long)app->cfg.shutdown_grace_ms);
    if (app->worker)
        worker_cancel(app->worker); /* before the outbound calls fail under its jobs */
    stop_outbound(app);
    maybe_stop_queue(app);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *app = s->data;

    if (app->state != RUNNING)
        return;
    log_info("received %s, draining (grace %llu ms)", signum == SIGTERM ? "SIGTERM" : "SIGINT",
             (unsigned long long)app->cfg.shutdown_grace_ms);
    /* The watchers stay: stopping the last one restores the default
     * action, and a second SIGTERM would kill us mid-drain. */
    app->state = DRAINING;
    uv_timer_start(&app->grace, on_grace_expired, app->cfg.shutdown_grace_ms, 0);
    if (app->worker)
        worker_drain(app->worker, on_worker_drained, app);
    else
        app->worker_drained = true;
    http_server_stop(app->http, on_http_closed, app);
}

static int start_services(struct app *app)
{
    const struct config *cfg = &app->cfg;
    char where[300];
    struct http_server_limits limits = {
        .max_header_bytes = cfg->max_header_bytes,
        .max_body_bytes = cfg->max_body_bytes,
        .header_timeout_ms = cfg->header_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_connections = cfg->max_connections,
    };
    int err;

    app->metrics = metrics_create();
    app->http_client = http_client_create(app->loop, app->metrics);
    if (!app->http_client)
        return DG_ERR_UNAVAILABLE; /* logged: no asynchronous DNS in this libcurl */
    app->queue = queue_create(app->loop, cfg, app->metrics);
    app->connector = connector_create(app->loop, app->http_client, cfg, app->metrics);
    app->http = http_server_create(app->loop, &limits, app->metrics);
    if (cfg->role != ROLE_WORKER && cfg->bot_auth == BOT_AUTH_JWT)
        app->auth = auth_create(app->loop, cfg, app->http_client, app->metrics);
    app->admin = admin_create(cfg, app->queue, app->auth, app->metrics);
    admin_register(app->admin, app->http);
    if (cfg->role != ROLE_WORKER) {
        app->webhook =
            webhook_create(cfg, app->queue, app->connector, app->http_client, app->metrics);
        webhook_set_auth(app->webhook, app->auth);
        webhook_register(app->webhook, app->http);
    }
    if (cfg->role != ROLE_API)
        app->worker = worker_create(app->loop, cfg, app->queue, app->connector, app->http_client,
                                    app->metrics);
    err = http_server_listen(app->http, cfg->listen_host, cfg->listen_port);
    app->heartbeat = heartbeat_create(app->loop, cfg, app->queue, app->metrics,
                                      err ? cfg->listen_port : http_server_port(app->http));
    if (err) {
        log_error("DIGEST_LISTEN: cannot listen on %s:%d: %s", cfg->listen_host, cfg->listen_port,
                  uv_strerror(err));
        return err;
    }
    queue_start(app->queue);
    heartbeat_start(app->heartbeat);
    if (app->worker)
        worker_start(app->worker);
    if (app->auth)
        auth_start(app->auth);
    /* Never log redis_url: it may carry the password. */
    redis_where(cfg, where, sizeof(where));
    log_info("digestd %s listening on %s:%d (role %s, redis %s db %d)", DIGESTD_VERSION,
             cfg->listen_host, http_server_port(app->http), role_names[cfg->role], where,
             cfg->redis_db);
    if (cfg->bot_auth == BOT_AUTH_OFF)
        log_warn("BOT_AUTH=off: inbound activities are NOT authenticated (local development only)");
    /* Say it plainly rather than let queued jobs wait unnoticed. */
    if (cfg->use_async_digest && cfg->role == ROLE_API)
        log_info("role api: queued jobs are delivered by digestd --role worker processes");
    /* The rollout stage, so a log search shows when each process changed it. */
    log_info("digest path: USE_ASYNC_DIGEST=%s, %zu ASYNC_DIGEST_ALLOW entries%s", cfg->async_mode,
             cfg->async_allow.len,
             !cfg->use_async_digest && cfg->async_allow.len ? " (ignored: false wins)" : "");
    return 0;
}

static void free_services(struct app *app)
{
    if (app->webhook)
        webhook_free(app->webhook);
    if (app->admin)
        admin_free(app->admin);
    worker_free(app->worker);
    if (app->heartbeat)
        heartbeat_free(app->heartbeat);
    auth_free(app->auth);
    if (app->http)
        http_server_free(app->http);
    connector_free(app->connector);
    http_client_free(app->http_client);
    if (app->queue)
        queue_free(app->queue);
    metrics_free(app->metrics);
}

int main(int argc, char **argv)
{
    static struct app app;
    const char *config_file = NULL;
    enum config_role role = ROLE_ALL;
    char err[512];
    int rc;

    parse_args(argc, argv, &config_file, &role);
    if (config_load(&app.cfg, config_file, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        config_free(&app.cfg);
        return 2;
    }
    app.cfg.role = role;
    log_setup(app.cfg.log_level, app.cfg.log_json);
    rc = check_buildable(&app.cfg);
    if (rc) {
        config_free(&app.cfg);
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);

    app.loop = uv_default_loop();
    uv_timer_init(app.loop, &app.grace);
    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_init(app.loop, &app.sigint);
    app.sigterm.data = &app;
    app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);

    rc = start_services(&app);
    if (rc && app.http) {
        /* Nothing is serving: take the normal shutdown path, then fail. */
        app.state = DRAINING;
        if (app.worker)
            worker_drain(app.worker, on_worker_drained, &app);
        else
            app.worker_drained = true;
        http_server_stop(app.http, on_http_closed, &app);
    } else if (rc) {
        on_queue_stopped(NULL, &app); /* nothing else was created */
    }
    uv_run(app.loop, UV_RUN_DEFAULT);

    /* The loop ran out: every module closed its handles in order. */
    free_services(&app);
    if (uv_loop_close(app.loop) != 0) {
        log_error("loop did not close cleanly");
        rc = 1;
    } else if (rc == 0) {
        log_info("stopped cleanly");
    }
    config_free(&app.cfg);
    return rc ? 1 : 0;
}
