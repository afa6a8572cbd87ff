/*
 * webhook_sync.c: the synchronous digest path (SPEC §3): USE_ASYNC_DIGEST=
 * false or a user outside the rollout's share (rollout.h), and the async
 * path's fallback while Redis is unreachable. The
 * digest is fetched inside the request — the loop only waits on sockets, so
 * thousands of these wait side by side — the result (or error) card is
 * posted as a reply, and only then is the request answered. When Redis is
 * there the dedup applies and the audit record says mode "sync".
 */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "teams/card.h"
#include "core/clock.h"
#include "config.h"
#include "teams/connector.h"
#include "core/log.h"
#include "metrics.h"
#include "store/queue.h"
#include "store/requests.h"
#include "digest/upstream.h"
#include "webhook_internal.h"

/* The result is posted once; a POST whose fate is unknown is not repeated. */
static const struct connector_opts sync_opts = {.max_attempts = 3, .retry_ambiguous = false};

static void on_record_updated(int err, void *data)
{
    struct webhook_req *w = data;

    if (err)
        log_emit(LOG_LEVEL_WARN, w->request_id, "audit record not updated: %s", dg_strerror(err));
    webhook_req_done(w);
}

/*
 * Cancelled by a shutdown before the digest was fetched: 503, so the channel
 * retries (another instance serves it), and the dedup key is released so
 * that the retry is not taken for a duplicate.
 */
static void release(struct webhook_req *w)
{
    webhook_answer_error(w, 503, "unavailable", w->last_error);
    if (!w->recorded || !queue_ready(w->wh->queue) ||
        requests_release(queue_conn(w->wh->queue), w->wh->cfg, w->request_id, w->conv_key,
                         w->act.id, w->last_error, on_record_updated, w) != 0)
        webhook_req_done(w);
}

/* Answers, writes the final audit state (when there is a record), ends w. */
static void finish(struct webhook_req *w, bool delivered, const char *result_id)
{
    char started[24], fetched[24], now[24], body[160];
    /* The last two only for a delivery: a failure has no delivered_ms. */
    const char *fields[] = {"status",     "started_ms",   "fetched_ms",        "attempts",
                            "last_error", "delivered_ms", "result_activity_id"};
    const char *values[] = {
        request_status_name(delivered ? REQUEST_STATUS_DELIVERED : REQUEST_STATUS_FAILED),
        started,
        fetched,
        "1",
        w->last_error,
        now,
        result_id ? result_id : ""};

    if (w->sync_status == 503) {
        metrics_job_outcome(w->wh->metrics, "sync_released");
        release(w);
        return;
    }
    metrics_job_outcome(w->wh->metrics, delivered ? "sync_delivered" : "sync_failed");
    if (delivered) {
        snprintf(body, sizeof(body), "{\"requestId\":\"%s\",\"mode\":\"sync\"}", w->request_id);
        webhook_answer_json(w, 200, body);
    } else {
        webhook_answer_error(w, w->sync_status,
                             w->sync_status == 504 ? "upstream_timeout" : "upstream_failed",
                             w->last_error);
    }
    if (!w->recorded || !queue_ready(w->wh->queue)) {
        webhook_req_done(w);
        return;
    }
    snprintf(started, sizeof(started), "%llu", (unsigned long long)w->started_ms);
    snprintf(fetched, sizeof(fetched), "%llu", (unsigned long long)w->fetched_ms);
    snprintf(now, sizeof(now), "%llu", (unsigned long long)clock_wall_ms());
    if (requests_update(queue_conn(w->wh->queue), w->wh->cfg, w->request_id, fields, values,
                        delivered ? ARRAY_SIZE(fields) : ARRAY_SIZE(fields) - 2, on_record_updated,
                        w) != 0)
        webhook_req_done(w);
}

static void on_result_posted(const struct connector_result *res, void *data)
{
    struct webhook_req *w = data;

    if (res->err) {
        snprintf(w->last_error, sizeof(w->last_error),
                 "the result card was not delivered (connector status %ld)", res->status);
        w->sync_status = 502;
        finish(w, false, NULL);
        return;
    }
    finish(w, true, res->activity_id);
}

static void on_error_card_posted(const struct connector_result *res, void *data)
{
    struct webhook_req *w = data;

    /* paced_out: the connector logs a flooded conversation, once per interval. */
    if (res->err && !res->paced_out)
        log_emit(LOG_LEVEL_WARN, w->request_id, "error card not delivered: %s",
                 dg_strerror(res->err));
    finish(w, false, NULL);
}

static void post_error_card(struct webhook_req *w)
{
    struct card_error_info e = {w->sync_status == 504
                                    ? "The digest service did not answer in time."
                                    : "The digest service could not build your digest.",
                                w->last_error, w->request_id, "Try again in a few minutes."};
    struct card_address to;

    webhook_card_address(w, &to);
    if (connector_send_card(w->wh->connector, CONNECTOR_REPLY, w->act.service_url, &to,
                            card_error(&e), w->request_id, &sync_opts, on_error_card_posted,
                            w) != 0)
        finish(w, false, NULL);
}

static void post_result(struct webhook_req *w, const struct digest *d)
{
    struct card_result_info info = {w->cmd.audience, w->request_id, w->cmd.test_email, d};
    struct connector_msg msg = {
        .op = CONNECTOR_REPLY,
        .service_url = w->act.service_url,
        .conversation_id = w->act.conversation_id,
        .activity_id = w->act.id,
        .request_id = w->request_id,
    };
    struct card_address to;
    char *body = NULL;
    int err;

    webhook_card_address(w, &to);
    err = card_render_result(&to, &info, &body, &msg.body_len, NULL);
    if (!err) {
        msg.body = body;
        err = connector_send(w->wh->connector, &msg, &sync_opts, on_result_posted, w);
    }
    xfree(body);
    if (err) {
        snprintf(w->last_error, sizeof(w->last_error), "the result card could not be sent: %s",
                 dg_strerror(err));
        w->sync_status = 502;
        finish(w, false, NULL);
    }
}

static void on_fetched(const struct upstream_result *res, void *data)
{
    struct webhook_req *w = data;

    w->fetched_ms = clock_wall_ms();
    if (res->outcome == HTTP_OUTCOME_OK) {
        post_result(w, res->digest);
        return;
    }
    if (res->err == DG_ERR_CLOSED) {
        w->sync_status = 503;
        snprintf(w->last_error, sizeof(w->last_error), "digestd is shutting down; retry");
        finish(w, false, NULL);
        return;
    }
    w->sync_status = res->err == DG_ERR_TIMEOUT ? 504 : 502;
    if (res->status)
        snprintf(w->last_error, sizeof(w->last_error), "%s (HTTP %ld)", res->detail, res->status);
    else
        snprintf(w->last_error, sizeof(w->last_error), "%s (%s)", res->detail,
                 dg_strerror(res->err));
    log_emit(LOG_LEVEL_WARN, w->request_id, "sync digest failed: %s", w->last_error);
    post_error_card(w);
}

static void fetch(struct webhook_req *w)
{
    int err = upstream_fetch(w->wh->http, w->wh->cfg, w->cmd.audience, on_fetched, w, NULL);

    if (err == DG_ERR_CLOSED) {
        /* Stopping: give it back to the channel, as on_fetched does. */
        w->sync_status = 503;
        snprintf(w->last_error, sizeof(w->last_error), "digestd is shutting down; retry");
        finish(w, false, NULL);
    } else if (err) {
        w->sync_status = 502;
        snprintf(w->last_error, sizeof(w->last_error), "the digest could not be requested: %s",
                 dg_strerror(err));
        post_error_card(w);
    }
}

/*
 * Served without Redis: no record, no dedup, no count in Redis. The
 * process counts it (metrics, and its minute once Redis is back): a
 * fallback when the async path had been chosen, else a sync request.
 */
static void fetch_unrecorded(struct webhook_req *w)
{
    bool fallback = w->async;

    metrics_request_mode(w->wh->metrics, fallback ? METRICS_MODE_FALLBACK : METRICS_MODE_SYNC);
    queue_count_offline(w->wh->queue, fallback ? HISTORY_OFFLINE_FALLBACK : HISTORY_OFFLINE_SYNC);
    fetch(w);
}

static void on_recorded(int err, const char *request_id, bool duplicate, void *data)
{
    struct webhook_req *w = data;

    w->wh->redis_waiting--;
    if (err == DG_ERR_UNAVAILABLE) {
        fetch_unrecorded(w); /* Redis went away: serve it unrecorded, as when it is down */
        return;
    }
    if (err == DG_ERR_TIMEOUT) {
        /*
         * The reply was lost, but the script may have run: a 503 would make
         * the channel's retry a "duplicate" of a request that nobody serves
         * (sync mode queues no job). Serve it unrecorded; a record that did
         * land stays as the script left it.
         */
        log_emit(LOG_LEVEL_WARN, w->request_id,
                 "the record's reply was lost (%s); serving the digest unrecorded",
                 dg_strerror(err));
        fetch_unrecorded(w);
        return;
    }
    if (err) {
        webhook_answer_error(w, 503, "unavailable", "the job queue did not answer; retry later");
        webhook_req_done(w);
        return;
    }
    if (duplicate) {
        webhook_answer_duplicate(w, request_id);
        webhook_req_done(w);
        return;
    }
    w->recorded = true;
    metrics_request_mode(w->wh->metrics, METRICS_MODE_SYNC); /* its minute: the script's */
    fetch(w);
}

void webhook_sync_start(struct webhook_req *w)
{
    int err;

    w->started_ms = clock_wall_ms();
    if (!queue_ready(w->wh->queue)) {
        fetch_unrecorded(w); /* Redis is away: serve it unrecorded (no dedup possible) */
        return;
    }
    err = webhook_record(w, "sync", on_recorded);
    if (err == DG_ERR_UNAVAILABLE) {
        fetch_unrecorded(w);
    } else if (err) {
        webhook_answer_dispatch_error(w, err);
        webhook_req_done(w);
    }
}
