/*
 * job.c: one job's life (SPEC §6). begin (audit: processing,
 * attempts+1) → fetch the digest → render the result card → reply to the
 * user's activity → record delivered + XACK → update the acknowledgment
 * card. Retryable failures wait (full jitter, or Retry-After) and begin
 * again, keeping what is done: a rendered card is not fetched twice. The
 * attempts run out, or a failure is final → dead-letter + XACK first, then
 * the error card and the acknowledgment update, each at most once.
 *
 * A Redis step that cannot be made (Redis away) is simply made again a
 * little later: the step is idempotent, and a result already sent is
 * never sent again because of it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "teams/card.h"
#include "core/clock.h"
#include "config.h"
#include "teams/connector.h"
#include "http/http_client.h"
#include "core/log.h"
#include "metrics.h"
#include "store/queue.h"
#include "digest/upstream.h"
#include "worker_internal.h"

#define JOB_REDIS_RETRY_MS 500
/* Slack taken off a lease's safe end: timer lateness, clock rates, the claim tick. */
#define JOB_HOLD_SLACK_DIV 4
/* Beyond the connector timeout: a marked send is surely over after this. */
#define JOB_UNKNOWN_SLACK_MS 1000
#define JOB_MAX_RETRY_AFTER_MS (3600u * 1000) /* a longer Retry-After is not believed */

/*
 * The connector repeats only rejections (429, 412, 503, a 401 answered by a
 * new token). A POST whose fate is unknown (a timeout, 502, 504) comes back
 * here and is sent again after a backoff, as Microsoft says to (research
 * §4.5): the one way a result can reach a user twice (docs/worker.md).
 */
static const struct connector_opts result_opts = {.max_attempts = 3, .retry_ambiguous = false};
static const struct connector_opts notify_opts = {.max_attempts = 3, .retry_ambiguous = false};

static void begin(struct job *j);
static void send_result(struct job *j);
static void fence_send(struct job *j);
static void record_delivered(struct job *j);
static void record_end(struct job *j);
static void release(struct job *j);

static struct redis_conn *conn(const struct job *j)
{
    return queue_conn(j->w->queue);
}

static void ref_free(struct job_ref *r)
{
    xfree(r->service_url);
    xfree(r->conversation_id);
    xfree(r->bot_id);
    xfree(r->bot_name);
    xfree(r->user_id);
    xfree(r->user_name);
    memset(r, 0, sizeof(*r));
}

static void on_closed(uv_handle_t *h)
{
    struct job *j = container_of((uv_timer_t *)h, struct job, timer);
    struct worker *w = j->w;

    ref_free(&j->ref);
    xfree(j->strs);
    xfree(j->alt_id);
    xfree(j->ack_activity_id);
    xfree(j->body);
    xfree(j->result_id);
    xfree(j);
    w->n_jobs--;
    metrics_gauge_set(w->metrics, METRICS_G_JOBS_IN_FLIGHT, (int64_t)w->n_jobs);
    worker_job_finished(w);
}

/* The job leaves this process (ended, handed back, or someone else's now). */
static void finish(struct job *j)
{
    worker_index_remove(j->w, j);
    list_remove(&j->node);
    uv_close((uv_handle_t *)&j->timer, on_closed);
}

static void on_redis_wait(uv_timer_t *t)
{
    struct job *j = container_of(t, struct job, timer);

    j->redis_retry(j);
}

/*
 * Redis did not take a step: make it again shortly. Once the shutdown
 * grace is over there is no shortly: the job stays pending for another
 * worker (a result already sent would then be sent again: logged).
 */
static void redis_wait(struct job *j, void (*step)(struct job *j), int err)
{
    if (j->w->state == WORKER_CANCELLED) {
        if (j->sent)
            log_emit(LOG_LEVEL_ERROR, j->f.request_id,
                     "result delivered but not recorded (%s); another worker will send it again",
                     dg_strerror(err));
        finish(j);
        return;
    }
    log_emit(LOG_LEVEL_DEBUG, j->f.request_id, "redis step failed (%s); again in %d ms",
             dg_strerror(err), JOB_REDIS_RETRY_MS);
    j->step = JOB_REDIS_WAIT;
    j->redis_retry = step;
    uv_timer_start(&j->timer, on_redis_wait, JOB_REDIS_RETRY_MS, 0);
}

/* The reply address from the conversation reference stored with the job. */
static void job_address(const struct job *j, struct card_address *to)
{
    card_address_reply(to, j->ref.bot_id, j->ref.bot_name, j->ref.user_id, j->ref.user_name,
                       j->ref.conversation_id, j->f.activity_id);
}

/* ---- the end: record, then tell the user -------------------------------- */

static void on_ack_updated(const struct connector_result *res, void *data)
{
    struct job *j = data;

    /* paced_out: the connector logs a flooded conversation, once per interval. */
    if (res->err && !res->paced_out)
        log_emit(LOG_LEVEL_WARN, j->f.request_id,
                 "acknowledgment card not updated: %s (status %ld)", dg_strerror(res->err),
                 res->status);
    finish(j);
}

/* Best effort: a failure is logged and changes nothing else. */
static void update_ack(struct job *j)
{
    struct card_ack_info info = {j->f.audience, j->f.request_id, j->f.test_email,
                                 j->sent ? CARD_ACK_DELIVERED : CARD_ACK_FAILED};
    struct card_address to;
    int err;

    if (!j->ack_activity_id || !j->ack_activity_id[0] || j->mark_stale) {
        finish(j);
        return;
    }
    j->step = JOB_NOTIFY;
    job_address(j, &to);
    to.activity_id = j->ack_activity_id;
    err = connector_send_ack(j->w->connector, CONNECTOR_UPDATE, j->ref.service_url, &to, &info,
                             j->f.request_id, &notify_opts, on_ack_updated, j);
    if (err) {
        log_emit(LOG_LEVEL_WARN, j->f.request_id, "acknowledgment card not updated: %s",
                 dg_strerror(err));
        finish(j);
    }
}

static void on_error_card_sent(const struct connector_result *res, void *data)
{
    struct job *j = data;

    if (res->err && !res->paced_out)
        log_emit(LOG_LEVEL_WARN, j->f.request_id, "error card not delivered: %s (status %ld)",
                 dg_strerror(res->err), res->status);
    update_ack(j);
}

static void post_error_card(struct job *j)
{
    bool dead = j->end_status == REQUEST_STATUS_DEAD;
    struct card_error_info e = {dead ? "Your digest could not be built, even after retrying."
                                     : "Your digest could not be built.",
                                j->reason, j->f.request_id, "Try again in a few minutes."};
    struct card_address to;
    int err;

    if (!j->error_card || !j->ref.service_url) {
        update_ack(j);
        return;
    }
    j->step = JOB_NOTIFY;
    job_address(j, &to);
    err = connector_send_error(j->w->connector, CONNECTOR_REPLY, j->ref.service_url, &to, &e,
                               j->f.request_id, &notify_opts, on_error_card_sent, j);
    if (err) {
        log_emit(LOG_LEVEL_WARN, j->f.request_id, "error card not sent: %s", dg_strerror(err));
        update_ack(j);
    }
}

static void take_ack_id(struct job *j, const char *ack_activity_id)
{
    if (ack_activity_id && ack_activity_id[0]) {
        xfree(j->ack_activity_id);
        j->ack_activity_id = xstrdup(ack_activity_id);
    }
}

static void on_ended(int err, bool recorded, const char *ack_activity_id, void *data)
{
    struct job *j = data;

    if (err) {
        redis_wait(j, record_end, err);
        return;
    }
    if (!recorded) {
        /* Another consumer ended it (delivered, most likely): it tells the user. */
        finish(j);
        return;
    }
    metrics_job_outcome(j->w->metrics, request_status_name(j->end_status));
    log_emit(LOG_LEVEL_WARN, j->f.request_id, "job %s after %u attempt(s): %s",
             request_status_name(j->end_status), j->attempts, j->reason);
    take_ack_id(j, ack_activity_id);
    post_error_card(j);
}

static void record_end(struct job *j)
{
    int err;

    if (j->lost) {
        finish(j); /* another consumer holds it (a renewal while Redis was away) */
        return;
    }
    j->step = JOB_RECORD;
    err = job_store_dead(conn(j), j->w->cfg, &j->f, j->w->consumer, j->token, j->end_status,
                         j->reason, j->attempts, j->mark_stale, clock_wall_ms(), on_ended, j);
    if (err)
        redis_wait(j, record_end, err);
}

/*
 * Ends the job without a result: status dead (attempts spent) or failed
 * (final), dead-lettered, then the error card unless the conversation
 * cannot take one.
 */
static void end_job(struct job *j, enum request_status status, bool error_card, const char *fmt,
                    ...) PRINTF_LIKE(4, 5);

static void end_job(struct job *j, enum request_status status, bool error_card, const char *fmt,
                    ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(j->reason, sizeof(j->reason), fmt, ap);
    va_end(ap);
    j->end_status = status;
    j->error_card = error_card;
    record_end(j);
}

static void on_delivered(int err, bool recorded, const char *ack_activity_id, void *data)
{
    struct job *j = data;
    uint64_t now = clock_wall_ms();
    uint64_t window_us = (clock_mono_ns() - j->sent_ns) / 1000;

    if (err) {
        redis_wait(j, record_delivered, err);
        return;
    }
    if (!recorded) {
        /* Another attempt holds the job (its fence finds this result and
         * records it) or delivered it: not ours to record or to tell. */
        metrics_job_outcome(j->w->metrics, "late");
        log_emit(LOG_LEVEL_WARN, j->f.request_id,
                 "result accepted after this attempt lost the job: kept as a late result, "
                 "not recorded as delivered here");
        finish(j);
        return;
    }
    metrics_job_outcome(j->w->metrics, request_status_name(REQUEST_STATUS_DELIVERED));
    /* Until the connector took it: a slow record step is not the user's wait. */
    if (j->created_ms && j->sent_ms >= j->created_ms)
        metrics_observe(j->w->metrics, METRICS_H_JOB, (j->sent_ms - j->created_ms) * 1000000ull);
    /* window_us: from the connector's answer to the record's; the crash window (docs/worker.md). */
    log_emit(LOG_LEVEL_INFO, j->f.request_id,
             "delivered after %u attempt(s) in %llu ms; recorded %llu us after the connector's "
             "answer",
             j->attempts,
             (unsigned long long)(j->created_ms && now >= j->created_ms ? now - j->created_ms : 0),
             (unsigned long long)window_us);
    take_ack_id(j, ack_activity_id);
    update_ack(j);
}

static void record_delivered(struct job *j)
{
    int err;

    j->step = JOB_RECORD;
    err = job_store_delivered(conn(j), j->w->cfg, &j->f, j->w->consumer, j->token, j->result_id,
                              j->fetched_ms, clock_wall_ms(), on_delivered, j);
    if (err)
        redis_wait(j, record_delivered, err);
}

/* ---- retries ------------------------------------------------------------ */

static void on_wait_done(uv_timer_t *t)
{
    struct job *j = container_of(t, struct job, timer);

    j->try_id = ++j->w->tries; /* a new attempt; a begin merely sent again is not */
    begin(j);
}

/* A retryable failure: wait and begin again, or give up when attempts are spent. */
static void retry(struct job *j, int64_t retry_after_s, const char *why)
{
    const struct config *cfg = j->w->cfg;
    uint64_t delay;

    if (j->lost) {
        finish(j); /* another consumer holds it now: its outcome, not ours */
        return;
    }
    if (j->attempts >= cfg->worker_max_attempts) {
        end_job(j, REQUEST_STATUS_DEAD, true, "%s; gave up after %u attempts", why, j->attempts);
        return;
    }
    if (j->w->state != WORKER_RUNNING) {
        release(j);
        return;
    }
    if (retry_after_s >= 0)
        delay = (uint64_t)retry_after_s * 1000 > JOB_MAX_RETRY_AFTER_MS
                    ? JOB_MAX_RETRY_AFTER_MS
                    : (uint64_t)retry_after_s * 1000;
    else
        delay = backoff_full_jitter(&j->w->rng, cfg->retry_base_ms, cfg->retry_max_ms, j->attempts);
    metrics_inc(j->w->metrics, METRICS_C_RETRIES);
    log_emit(LOG_LEVEL_INFO, j->f.request_id, "attempt %u failed (%s); retrying in %llu ms",
             j->attempts, why, (unsigned long long)delay);
    j->step = JOB_WAIT;
    uv_timer_start(&j->timer, on_wait_done, delay, 0);
}

/* ---- sending ------------------------------------------------------------ */

static void on_result_sent(const struct connector_result *res, void *data)
{
    struct job *j = data;
    char why[96];

    j->send = NULL;
    if (res->err == 0) {
        j->sent = true;
        j->sent_ns = clock_mono_ns();
        j->sent_ms = clock_wall_ms();
        j->result_id = xstrdup(res->activity_id);
        /* Even after a loss: the script keeps it as a late result for the holder. */
        record_delivered(j);
        return;
    }
    if (res->held) {
        /* Nothing left: cancelled (the job was lost), or the lease's safe end came first. */
        if (j->lost) {
            finish(j);
            return;
        }
        if (!res->status) {
            /* Nothing was asked of Teams yet (a pacing queue, the token): not an attempt. */
            fence_send(j);
            return;
        }
        snprintf(why, sizeof(why),
                 "the connector answered HTTP %ld; its retry could not leave within the lease",
                 res->status);
        retry(j, res->retry_after_s, why);
        return;
    }
    if (res->err == DG_ERR_CLOSED) {
        release(j);
        return;
    }
    if (res->paced_out)
        snprintf(why, sizeof(why), "its conversation is over Teams' pacing limits");
    else if (res->status && res->retry_after_s >= 0)
        snprintf(why, sizeof(why), "the connector answered HTTP %ld, Retry-After %lld s",
                 res->status, (long long)res->retry_after_s);
    else if (res->status)
        snprintf(why, sizeof(why), "the connector answered HTTP %ld", res->status);
    else
        snprintf(why, sizeof(why), "the connector could not be reached: %s", dg_strerror(res->err));
    if (j->lost) {
        finish(j); /* another consumer holds it now */
        return;
    }
    if (res->outcome == HTTP_OUTCOME_FINAL) {
        /* 403/404: the bot is no longer in that conversation; nothing can reach it. */
        j->mark_stale = !res->token_error && (res->status == 403 || res->status == 404);
        end_job(j, REQUEST_STATUS_FAILED, !j->mark_stale, "%s", why);
        return;
    }
    retry(j, res->retry_after_s, why);
}

static void send_result(struct job *j)
{
    uint64_t idle = j->w->cfg->worker_claim_idle_ms;
    struct connector_msg msg = {
        .op = CONNECTOR_REPLY,
        .service_url = j->ref.service_url,
        .conversation_id = j->ref.conversation_id,
        .activity_id = j->f.activity_id,
        .body = j->body,
        .body_len = j->body_len,
        .request_id = j->f.request_id,
    };
    int err;

    j->step = JOB_SEND;
    /* No request leaves once another worker could have claimed the job. */
    err = connector_send_call(j->w->connector, &msg, &result_opts,
                              j->fence_at + idle - idle / JOB_HOLD_SLACK_DIV, on_result_sent, j,
                              &j->send);
    if (err == DG_ERR_CLOSED)
        release(j);
    else if (err == DG_ERR_INVALID || err == DG_ERR_TOO_LARGE)
        end_job(j, REQUEST_STATUS_FAILED, false,
                "the result cannot be sent to this conversation: %s", dg_strerror(err));
    else if (err)
        retry(j, -1, dg_strerror(err));
}

/* ---- the fence ---------------------------------------------------------- */

static void on_fence_wait(uv_timer_t *t)
{
    fence_send(container_of(t, struct job, timer));
}

static void on_fenced(int err, const struct job_fence *f, void *data)
{
    struct job *j = data;

    if (err && !j->lost) {
        redis_wait(j, fence_send, err); /* a send that cannot be marked is not made */
        return;
    }
    if (err || j->lost) {
        finish(j);
        return;
    }
    switch (f->answer) {
    case JOB_FENCE_NOT_OURS:
        log_emit(LOG_LEVEL_WARN, j->f.request_id,
                 "result not sent: this attempt no longer holds the job (record %s)", f->text);
        finish(j);
        return;
    case JOB_FENCE_WAIT:
        /* The last holder marked a send and vanished: it may still be in flight. */
        log_emit(LOG_LEVEL_INFO, j->f.request_id,
                 "an earlier holder's send may still be in flight; asking again in %llu ms",
                 (unsigned long long)f->wait_ms);
        j->step = JOB_WAIT;
        uv_timer_start(&j->timer, on_fence_wait, f->wait_ms + 1, 0);
        return;
    case JOB_FENCE_LATE:
        log_emit(LOG_LEVEL_INFO, j->f.request_id,
                 "an earlier holder's result was accepted after it lost the job: recorded, "
                 "not sent again");
        metrics_job_outcome(j->w->metrics, "late_recorded");
        j->sent = true;
        j->sent_ns = clock_mono_ns();
        j->sent_ms = clock_wall_ms();
        xfree(j->result_id);
        j->result_id = xstrdup(f->text);
        record_delivered(j);
        return;
    case JOB_FENCE_SEND_UNKNOWN:
        metrics_job_outcome(j->w->metrics, "resent_unknown");
        log_emit(LOG_LEVEL_WARN, j->f.request_id,
                 "an earlier holder marked this result as being sent and vanished: its outcome "
                 "is unknown; sending again");
        break;
    case JOB_FENCE_SEND:
        break;
    }
    send_result(j);
}

/*
 * Before the result is posted: marks in Redis, atomically, that this
 * attempt sends it, and only while the job is still this attempt's. Redis
 * away: no post, the mark is tried again.
 */
static void fence_send(struct job *j)
{
    const struct config *cfg = j->w->cfg;
    int err;

    if (j->lost) {
        finish(j);
        return;
    }
    j->step = JOB_FENCE;
    j->fence_at = uv_now(j->w->loop);
    err = job_store_fence(
        conn(j), cfg, &j->f, j->w->consumer, j->token, j->w->nonce,
        cfg->worker_claim_idle_ms + cfg->connector_timeout_ms + JOB_UNKNOWN_SLACK_MS, on_fenced, j);
    if (err)
        redis_wait(j, fence_send, err);
}

/* ---- fetching ----------------------------------------------------------- */

static void on_fetched(const struct upstream_result *res, void *data)
{
    struct job *j = data;
    struct card_result_info info = {j->f.audience, j->f.request_id, j->f.test_email, res->digest};
    struct card_address to;
    char why[160];
    int err;

    j->fetch = NULL;
    j->fetched_ms = clock_wall_ms();
    if (j->lost) {
        finish(j);
        return;
    }
    if (res->err == DG_ERR_CLOSED) {
        release(j);
        return;
    }
    if (res->status)
        snprintf(why, sizeof(why), "%s (HTTP %ld)", res->detail, res->status);
    else
        snprintf(why, sizeof(why), "%s (%s)", res->detail, dg_strerror(res->err));
    if (res->outcome == HTTP_OUTCOME_RETRYABLE) {
        retry(j, res->retry_after_s, why);
        return;
    }
    if (res->outcome == HTTP_OUTCOME_FINAL) {
        end_job(j, REQUEST_STATUS_FAILED, true, "%s", why);
        return;
    }
    job_address(j, &to);
    err = card_render_result(&to, &info, &j->body, &j->body_len, NULL);
    if (err) {
        end_job(j, REQUEST_STATUS_FAILED, true, "the result card could not be built: %s",
                dg_strerror(err));
        return;
    }
    fence_send(j);
}

static void fetch(struct job *j)
{
    int err;

    j->step = JOB_FETCH;
    err = upstream_fetch(j->w->http, j->w->cfg, j->f.audience, on_fetched, j, &j->fetch);
    if (err == DG_ERR_CLOSED)
        release(j);
    else if (err && http_outcome_classify(err, 0) == HTTP_OUTCOME_RETRYABLE)
        retry(j, -1, dg_strerror(err)); /* out of sockets, say: nothing was sent */
    else if (err)
        end_job(j, REQUEST_STATUS_FAILED, true, "the digest could not be requested: %s",
                dg_strerror(err));
}

/* ---- beginning ---------------------------------------------------------- */

static char *ref_value(const struct job_begin *b, const char *name)
{
    size_t i;

    for (i = 0; i < b->n_ref; i++)
        if (strcmp(b->ref_fields[i], name) == 0)
            return xstrdup(b->ref_values[i]);
    return xstrdup("");
}

static void take_ref(struct job *j, const struct job_begin *b)
{
    char *stale;

    ref_free(&j->ref);
    if (b->n_ref == 0)
        return;
    j->ref.service_url = ref_value(b, "service_url");
    j->ref.conversation_id = ref_value(b, "conversation_id");
    j->ref.bot_id = ref_value(b, "bot_id");
    j->ref.bot_name = ref_value(b, "bot_name");
    j->ref.user_id = ref_value(b, "user_id");
    j->ref.user_name = ref_value(b, "user_name");
    stale = ref_value(b, "stale");
    j->ref.stale = strcmp(stale, "1") == 0;
    xfree(stale);
}

static void on_begun(int err, const struct job_begin *b, void *data)
{
    struct job *j = data;

    if (err) {
        redis_wait(j, begin, err);
        return;
    }
    if (b->ended) {
        /* Redelivered after its end was recorded (a crash before XACK): acknowledged only. */
        log_emit(LOG_LEVEL_INFO, j->f.request_id, "already %s: acknowledged, nothing sent",
                 request_status_name(b->status));
        metrics_job_outcome(j->w->metrics, "skipped");
        finish(j);
        return;
    }
    j->attempts = b->attempts;
    metrics_inc(j->w->metrics, METRICS_C_JOB_ATTEMPTS);
    take_ack_id(j, b->ack_activity_id);
    take_ref(j, b);
    if (j->lost) {
        finish(j);
    } else if (j->attempts > j->w->cfg->worker_max_attempts) {
        /* Delivered again and again without an end: a crash loop, not a slow service. */
        end_job(j, REQUEST_STATUS_DEAD, true, "gave up after %u deliveries", j->attempts - 1);
    } else if (!j->ref.service_url || !j->ref.service_url[0]) {
        end_job(j, REQUEST_STATUS_FAILED, false, "the conversation reference is gone");
    } else if (j->ref.stale) {
        end_job(j, REQUEST_STATUS_FAILED, false, "the bot was removed from the conversation");
    } else if (j->body) {
        fence_send(j); /* fetched and rendered by an earlier attempt */
    } else {
        fetch(j);
    }
}

static void begin(struct job *j)
{
    int err;

    if (j->w->state != WORKER_RUNNING) {
        release(j);
        return;
    }
    j->step = JOB_BEGIN;
    snprintf(j->token, sizeof(j->token), "%s/%s/%llu", j->w->nonce, j->f.stream_id,
             (unsigned long long)j->try_id);
    err = job_store_begin(conn(j), j->w->cfg, &j->f, j->token, clock_wall_ms(), on_begun, j);
    if (err)
        redis_wait(j, begin, err);
}

/* ---- handing back ------------------------------------------------------- */

static void on_released(int err, bool released, void *data)
{
    struct job *j = data;

    if (err)
        log_emit(LOG_LEVEL_WARN, j->f.request_id,
                 "not handed back (%s): stays pending for another worker", dg_strerror(err));
    else if (released) {
        metrics_job_outcome(j->w->metrics, "released");
        log_emit(LOG_LEVEL_INFO, j->f.request_id, "handed back to the queue unfinished");
    }
    finish(j);
}

static void release(struct job *j)
{
    if (j->sent) {
        record_delivered(j); /* a result already sent is never handed back */
        return;
    }
    j->step = JOB_RELEASE;
    if (j->lost ||
        job_store_release(conn(j), j->w->cfg, j->w->consumer, &j->f, on_released, j) != 0)
        finish(j);
}

/* ---- entry points --------------------------------------------------------- */

/* Copies the job's strings into one allocation owned by j. */
static void copy_fields(struct job *j, const struct job_fields *f)
{
    const char *src[] = {f->stream_id,  f->request_id, f->activity_id, f->audience,
                         f->test_email, f->conv,       f->created_ms};
    const char **dst[] = {&j->f.stream_id,  &j->f.request_id, &j->f.activity_id, &j->f.audience,
                          &j->f.test_email, &j->f.conv,       &j->f.created_ms};
    size_t total = 0, i, n;
    char *p;

    for (i = 0; i < ARRAY_SIZE(src); i++)
        total += strlen(src[i] ? src[i] : "") + 1;
    p = j->strs = xmalloc(total);
    for (i = 0; i < ARRAY_SIZE(src); i++) {
        n = strlen(src[i] ? src[i] : "") + 1;
        memcpy(p, src[i] ? src[i] : "", n);
        *dst[i] = p;
        p += n;
    }
}

void worker_job_start(struct worker *w, const struct job_fields *f)
{
    struct job *j = xcalloc(1, sizeof(*j));
    char *end;

    j->w = w;
    copy_fields(j, f);
    j->created_ms = strtoull(j->f.created_ms, &end, 10);
    if (*end != '\0')
        j->created_ms = 0;
    j->try_id = ++w->tries;
    uv_timer_init(w->loop, &j->timer);
    list_insert_tail(&w->jobs, &j->node);
    worker_index_add(w, j);
    w->n_jobs++;
    metrics_gauge_set(w->metrics, METRICS_G_JOBS_IN_FLIGHT, (int64_t)w->n_jobs);
    if (!j->f.request_id[0] || !j->f.audience[0] || !j->f.conv[0] || !j->f.activity_id[0]) {
        /* Not a job digestd wrote: keep it for a human, out of the way, under
         * a record of its own (an empty id would share one record key). */
        if (!j->f.request_id[0]) {
            j->alt_id = xmalloc(strlen(j->f.stream_id) + sizeof("malformed-"));
            memcpy(j->alt_id, "malformed-", sizeof("malformed-") - 1);
            memcpy(j->alt_id + sizeof("malformed-") - 1, j->f.stream_id,
                   strlen(j->f.stream_id) + 1);
            j->f.request_id = j->alt_id;
        }
        end_job(j, REQUEST_STATUS_FAILED, false, "malformed stream entry %s", j->f.stream_id);
        return;
    }
    begin(j);
}

void worker_job_drain(struct job *j)
{
    if (j->step == JOB_WAIT) {
        uv_timer_stop(&j->timer);
        release(j);
    }
}

void worker_job_cancel(struct job *j)
{
    if (j->step == JOB_WAIT || j->step == JOB_REDIS_WAIT) {
        uv_timer_stop(&j->timer);
        if (j->sent)
            log_emit(LOG_LEVEL_ERROR, j->f.request_id,
                     "result delivered but not recorded; another worker will send it again");
        finish(j);
    }
}

void worker_job_lost(struct job *j)
{
    log_emit(LOG_LEVEL_WARN, j->f.request_id, "job %s is now held by another consumer",
             j->f.stream_id);
    j->lost = true;
    if (j->step == JOB_FETCH && j->fetch) {
        http_client_cancel(j->fetch); /* on_fetched sees lost and lets go */
    } else if (j->step == JOB_SEND && j->send) {
        /* A send waiting (Retry-After, backoff, pacing) ends now; one in flight is not
         * retried, and a success is kept as a late result, not as ours. */
        connector_call_cancel(j->send);
    } else if (j->step == JOB_WAIT) {
        uv_timer_stop(&j->timer);
        finish(j);
    }
}
