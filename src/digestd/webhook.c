/*
 * webhook.c: the Bot Framework webhook. The checks run in the order SPEC §3
 * gives, and the first failure answers with nothing stored or sent: 415
 * content type, 401 a missing or odd Authorization header, 400 broken JSON,
 * 401/403 the token (auth.c; it may wait for keys, bounded), 400 missing
 * field, 403 serviceUrl, 503 Redis unreachable or load shed. Only
 * then is Redis written, in one atomic step, and the answer waits for its
 * reply: a 202 is never given for a job that is not in the stream. The card
 * is posted after the answer, so the channel never waits on Microsoft.
 */
#include "webhook_internal.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "core/buf.h"
#include "teams/card.h"
#include "core/clock.h"
#include "config.h"
#include "teams/connector.h"
#include "http/http_server.h"
#include "core/log.h"
#include "metrics.h"
#include "rollout.h"
#include "store/queue.h"
#include "store/requests.h"
#include "teams/service_url.h"

/* Requests waiting on Redis beyond this are shed with 503: a slow Redis must
 * not turn into unbounded memory. Sync requests waiting on the upstream are
 * bounded by MAX_CONNECTIONS and the http_client's budget instead. */
#define WEBHOOK_MAX_PENDING 8192

/* Acknowledgment cards under way at once (posted, recorded, maybe updated).
 * Webhooks come faster than a connector may take cards (past ≈ 12,000 a
 * second here, bench/RESULTS.md), and each card waiting holds its request
 * and a transfer (≈ 20 kB). Past this bound a new job's acknowledgment is
 * skipped, never the job: it is queued and answered 202, and its result card
 * comes as usual; digestd_ack_cards_skipped_total counts the skips. */
#define WEBHOOK_MAX_ACKS_PENDING 1024

/* The ack card goes out right after the 202, and the other cards (help,
 * status, errors) as the answer. Microsoft says to retry 412, 429, 502, 503
 * and 504 (research §4.5); a POST whose fate is unknown (timeout, 502/504) is
 * retried too, because a user left without a card types the command again
 * and queues a second job: two cards are the better failure
 * (docs/connector.md). */
static const struct connector_opts ack_opts = {.max_attempts = 3, .retry_ambiguous = true};

static const struct http_header retry_after[] = {{"Retry-After", "1"}};

struct webhook *webhook_create(const struct config *cfg, struct queue *queue,
                               struct connector *connector, struct http_client *http,
                               struct metrics *metrics)
{
    struct webhook *wh = xcalloc(1, sizeof(*wh));
    wh->cfg = cfg;
    wh->queue = queue;
    wh->connector = connector;
    wh->http = http;
    wh->metrics = metrics;
    return wh;
}

void webhook_set_auth(struct webhook *wh, struct auth *auth)
{
    wh->auth = auth;
}

void webhook_drain(struct webhook *wh, webhook_drained_cb cb, void *data)
{
    wh->drained_cb = cb;
    wh->drained_data = data;
    if (wh->in_flight == 0)
        cb(wh, data);
}

void webhook_free(struct webhook *wh)
{
    xfree(wh);
}

void webhook_answer_json(struct webhook_req *w, int status, const char *body)
{
    if (!w->req)
        return;
    http_request_respond(w->req, status, "application/json", body, strlen(body), NULL, 0);
    w->req = NULL;
}

void webhook_answer_error(struct webhook_req *w, int status, const char *code, const char *msg)
{
    if (!w->req)
        return;
    http_request_respond_error(w->req, status, code, msg, status == 503 ? retry_after : NULL,
                               status == 503 ? ARRAY_SIZE(retry_after) : 0);
    w->req = NULL;
}

static void answer_unavailable(struct webhook_req *w, const char *why)
{
    webhook_answer_error(w, 503, "unavailable", why);
}

void webhook_req_done(struct webhook_req *w)
{
    struct webhook *wh = w->wh;

    /* Every path answers before it ends; this is the last line of defence. */
    if (w->req)
        webhook_answer_error(w, 500, "internal", "the request could not be completed");
    if (w->ack_pending)
        wh->acks_pending--;
    activity_free(&w->act);
    xfree(w->conv_key);
    xfree(w->ack_activity_id);
    xfree(w);
    wh->in_flight--;
    if (wh->in_flight == 0 && wh->drained_cb)
        wh->drained_cb(wh, wh->drained_data);
}

void webhook_card_address(const struct webhook_req *w, struct card_address *to)
{
    card_address_reply(to, w->act.recipient_id, w->act.recipient_name, w->act.from_id,
                       w->act.from_name, w->act.conversation_id, w->act.id);
}

/* application/json, any case, with or without parameters such as charset. */
static bool is_json_content_type(const char *ct)
{
    size_t n;

    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    n = strcspn(ct, "; \t");
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* --- cards posted after the answer ------------------------------------ */

static void on_card_posted(const struct connector_result *res, void *data)
{
    struct webhook_req *w = data;
    const char *rid = w->request_id[0] ? w->request_id : NULL;

    /* A conversation flooded past Teams' pacing: the connector says it, once per interval. */
    if (res->paced_out)
        log_emit(LOG_LEVEL_DEBUG, rid,
                 "reply card refused: its conversation's pacing queue is full");
    else if (res->err == DG_ERR_CLOSED)
        log_emit(LOG_LEVEL_WARN, rid,
                 "reply card given up at shutdown (the shutdown grace is over) after %u attempts",
                 res->attempts);
    else if (res->err)
        log_emit(LOG_LEVEL_WARN, rid, "reply card not delivered: %s (status %ld, %u attempts)",
                 dg_strerror(res->err), res->status, res->attempts);
    webhook_req_done(w);
}

/* Posts card (taken) as a reply to w's activity, then ends w. */
static void post_card_then_done(struct webhook_req *w, struct json_object *card,
                                connector_done_cb cb)
{
    struct card_address to;
    int err;

    webhook_card_address(w, &to);
    err = connector_send_card(w->wh->connector, CONNECTOR_REPLY, w->act.service_url, &to, card,
                              w->request_id[0] ? w->request_id : NULL, &ack_opts,
                              cb ? cb : on_card_posted, w);
    if (err) {
        log_emit(LOG_LEVEL_WARN, w->request_id[0] ? w->request_id : NULL, "reply card not sent: %s",
                 dg_strerror(err));
        webhook_req_done(w);
    }
}

/* The acknowledgment as a reply to w's activity (written without a json-c tree), then ends w. */
static void post_ack_then_done(struct webhook_req *w, const struct card_ack_info *info,
                               connector_done_cb cb)
{
    struct card_address to;
    int err;

    webhook_card_address(w, &to);
    err = connector_send_ack(w->wh->connector, CONNECTOR_REPLY, w->act.service_url, &to, info,
                             w->request_id[0] ? w->request_id : NULL, &ack_opts, cb, w);
    if (err) {
        log_emit(LOG_LEVEL_WARN, w->request_id[0] ? w->request_id : NULL, "reply card not sent: %s",
                 dg_strerror(err));
        webhook_req_done(w);
    }
}

/* The job may have finished before we knew the ack card's id: update it now. */
static void on_ack_recorded(int err, bool found, enum request_status status, void *data)
{
    struct webhook_req *w = data;
    struct card_ack_info info = {w->cmd.audience, w->request_id, w->cmd.test_email,
                                 CARD_ACK_QUEUED};
    struct card_address to;

    if (err)
        log_emit(LOG_LEVEL_WARN, w->request_id, "ack id not recorded: %s", dg_strerror(err));
    if (err || !found || !request_status_ended(status)) {
        webhook_req_done(w);
        return;
    }
    info.state = status == REQUEST_STATUS_DELIVERED ? CARD_ACK_DELIVERED : CARD_ACK_FAILED;
    webhook_card_address(w, &to);
    to.activity_id = w->ack_activity_id;
    err = connector_send_ack(w->wh->connector, CONNECTOR_UPDATE, w->act.service_url, &to, &info,
                             w->request_id, &ack_opts, on_card_posted, w);
    if (err)
        webhook_req_done(w);
}

static void on_ack_posted(const struct connector_result *res, void *data)
{
    struct webhook_req *w = data;
    int err;

    if (res->err || !res->activity_id[0]) {
        on_card_posted(res, data);
        return;
    }
    w->ack_activity_id = xstrdup(res->activity_id);
    err = queue_record_ack(w->wh->queue, w->request_id, res->activity_id, on_ack_recorded, w);
    if (err)
        webhook_req_done(w);
}

/* --- async digest ------------------------------------------------------- */

static void on_enqueued(int err, const char *request_id, bool duplicate, void *data)
{
    struct webhook_req *w = data;
    struct card_ack_info info = {w->cmd.audience, w->request_id, w->cmd.test_email,
                                 CARD_ACK_QUEUED};
    static const char head[] = "{\"requestId\":\"", tail[] = "\"}";
    char body[sizeof(head) - 1 + UUID_STR_LEN + sizeof(tail)];
    size_t n;

    w->wh->redis_waiting--;
    if (err) {
        /* Not the sync fallback: the script may have run before the reply
         * was lost, and serving it here too would deliver it twice. A 503 is
         * safe: the channel retries, and the dedup key answers "duplicate"
         * if the job did land. */
        log_emit(LOG_LEVEL_WARN, w->request_id, "enqueue failed: %s", dg_strerror(err));
        answer_unavailable(w, "the job queue did not answer; retry later");
        webhook_req_done(w);
        return;
    }
    if (duplicate) {
        webhook_answer_duplicate(w, request_id);
        webhook_req_done(w);
        return;
    }
    metrics_request_mode(w->wh->metrics, METRICS_MODE_ASYNC);
    /* The id is a UUID (w->request_id's size), so body holds it. */
    n = strlen(w->request_id);
    memcpy(body, head, sizeof(head) - 1);
    memcpy(body + sizeof(head) - 1, w->request_id, n);
    memcpy(body + sizeof(head) - 1 + n, tail, sizeof(tail));
    webhook_answer_json(w, 202, body);
    if (w->wh->acks_pending >= WEBHOOK_MAX_ACKS_PENDING) {
        metrics_inc(w->wh->metrics, METRICS_C_ACKS_SKIPPED);
        log_emit(LOG_LEVEL_DEBUG, w->request_id,
                 "acknowledgment card skipped: %u are under way already", w->wh->acks_pending);
        webhook_req_done(w);
        return;
    }
    w->ack_pending = true;
    w->wh->acks_pending++;
    post_ack_then_done(w, &info, on_ack_posted);
}

int webhook_record(struct webhook_req *w, const char *mode, queue_enqueue_cb cb)
{
    struct activity_ref ref;
    struct queue_job job = {
        .request_id = w->request_id,
        .conv_key = w->conv_key,
        .activity_id = w->act.id,
        .audience = w->cmd.audience,
        .test_email = w->cmd.test_email,
        .created_ms = clock_wall_ms(),
        .mode = mode,
        .ref_fields = ref.fields,
        .ref_values = ref.values,
        .n_ref = ACTIVITY_REF_FIELDS,
    };

    int err;

    activity_reference(&w->act, job.created_ms, false, &ref);
    err = queue_enqueue(w->wh->queue, &job, cb, w);
    if (!err)
        w->wh->redis_waiting++;
    return err;
}

void webhook_answer_dispatch_error(struct webhook_req *w, int err)
{
    /* Only a dependency being away is worth the channel's retry. */
    if (err == DG_ERR_TOO_LARGE)
        webhook_answer_error(w, 413, "payload_too_large",
                             "the activity's fields are too large to store");
    else if (err == DG_ERR_INVALID)
        webhook_answer_error(w, 400, "bad_activity", "the activity cannot be stored");
    else
        answer_unavailable(w, "the job queue is unreachable");
}

void webhook_answer_duplicate(struct webhook_req *w, const char *first_id)
{
    char body[160];

    snprintf(body, sizeof(body), "{\"requestId\":\"%s\",\"duplicate\":true}", first_id);
    log_emit(LOG_LEVEL_INFO, first_id, "duplicate activity %s", w->act.id);
    webhook_answer_json(w, 200, body);
}

/* --- commands that queue nothing ---------------------------------------- */

static void on_status_read(int err, const char *request_id, const char *const *fields,
                           const char *const *values, size_t n, void *data)
{
    struct webhook_req *w = data;
    struct card_status_info info = {request_id, fields, values, n};

    if (err) {
        struct card_error_info e = {"The status could not be read.", dg_strerror(err), NULL,
                                    "Try again in a minute."};
        post_card_then_done(w, card_error(&e), NULL);
        return;
    }
    post_card_then_done(w, card_status(&info), NULL);
}

/* "Valid audiences: a, b, c." from the configured list, into out. */
static void audience_list(const struct config *cfg, char *out, size_t size)
{
    size_t i, n = (size_t)snprintf(out, size, "Valid audiences:");

    for (i = 0; i < cfg->audiences.len && n < size; i++)
        n += (size_t)snprintf(out + n, size - n, "%s %s", i ? "," : "", cfg->audiences.items[i]);
    if (n < size)
        snprintf(out + n, size - n, ".");
}

/* The card for help, status and a digest request with bad arguments. */
static void post_command_card(struct webhook_req *w)
{
    const struct config *cfg = w->wh->cfg;
    struct card_error_info e = {0};
    char detail[160], valid[512];
    int err;

    if (w->cmd.kind == COMMAND_STATUS && w->cmd.error == COMMAND_OK) {
        err = requests_get(queue_conn(w->wh->queue), cfg, w->cmd.request_id, w->conv_key,
                           on_status_read, w);
        if (err)
            on_status_read(err, "", NULL, NULL, 0, w);
        return;
    }
    if (w->cmd.kind == COMMAND_DIGEST && w->cmd.error == COMMAND_BAD_AUDIENCE) {
        /* SPEC §4: the error card lists the valid audiences. */
        snprintf(detail, sizeof(detail), "'%s' is not an audience I know.", w->cmd.word);
        audience_list(cfg, valid, sizeof(valid));
        e.what = "Unknown audience.";
        e.detail = w->cmd.word[0] ? detail : "No audience was given.";
        e.next = valid;
    } else if (w->cmd.kind == COMMAND_DIGEST && w->cmd.error == COMMAND_BAD_EMAIL) {
        e.what = "That test email address does not look right.";
        e.next = "Use digest <audience> name@example.com, or leave the address out.";
    } else if (w->cmd.kind == COMMAND_STATUS) {
        e.what = "That request id does not look right.";
        e.next = "Use status <request-id> as shown on the acknowledgment card, or just status.";
    } else {
        post_card_then_done(w, card_help(cfg->audiences.items, cfg->audiences.len), NULL);
        return;
    }
    post_card_then_done(w, card_error(&e), NULL);
}

static void on_reference_stored(int err, void *data)
{
    struct webhook_req *w = data;

    w->wh->redis_waiting--;
    if (err) {
        answer_unavailable(w, "the conversation store is unreachable; retry later");
        webhook_req_done(w);
        return;
    }
    webhook_answer_json(w, 200, "{}");
    if (strcmp(w->act.type, "message") == 0)
        post_command_card(w);
    else
        webhook_req_done(w);
}

/* Anything that queues nothing still refreshes the reference (SPEC §3). */
static int start_reference(struct webhook_req *w, const struct activity_ref *ref)
{
    int err = queue_store_reference(w->wh->queue, w->conv_key, ref->fields, ref->values,
                                    ACTIVITY_REF_FIELDS, on_reference_stored, w);
    if (!err)
        w->wh->redis_waiting++;
    return err;
}

/* --- ingress ------------------------------------------------------------ */

static bool is_removal(const struct activity *a)
{
    return strcmp(a->type, "installationUpdate") == 0 && strcmp(a->action, "remove") == 0;
}

static bool is_digest(const struct webhook_req *w)
{
    return strcmp(w->act.type, "message") == 0 && w->cmd.kind == COMMAND_DIGEST &&
           w->cmd.error == COMMAND_OK;
}

/*
 * The activity is valid and trusted: decide where it goes. Returns 0 when
 * something is under way that will answer, else an error and nothing sent.
 */
static int dispatch(struct webhook_req *w)
{
    struct activity_ref ref;
    enum rollout_why why;

    if (is_digest(w)) {
        w->async = rollout_async(w->wh->cfg, w->act.from_aad_id, w->act.from_id, w->conv_key, &why);
        log_emit(LOG_LEVEL_DEBUG, w->request_id, "digest path %s (%s)", w->async ? "async" : "sync",
                 rollout_why_name(why));
        /* The async path needs Redis; without it the sync path serves (a fallback). */
        if (!w->async || !queue_ready(w->wh->queue)) {
            webhook_sync_start(w);
            return 0;
        }
        return webhook_record(w, "async", on_enqueued);
    }
    activity_reference(&w->act, clock_wall_ms(), is_removal(&w->act), &ref);
    return start_reference(w, &ref);
}

static void parse_command(struct webhook_req *w)
{
    char *text;

    if (strcmp(w->act.type, "message") != 0)
        return;
    text = activity_command_text(&w->act);
    command_parse(&w->cmd, text, w->wh->cfg->audiences.items, w->wh->cfg->audiences.len);
    xfree(text);
}

/*
 * The token is trusted (or BOT_AUTH=off): the rest of SPEC §3's order, 400
 * missing field and 403 serviceUrl, then where the activity goes. Answers
 * and ends w on every failure.
 */
static void accept_activity(struct webhook_req *w)
{
    struct webhook *wh = w->wh;
    char err[128], msg[200];
    int rc = activity_check_fields(&w->act, err, sizeof(err));

    if (rc != 0) {
        snprintf(msg, sizeof(msg), "missing or invalid field: %s", err);
        webhook_answer_error(w, 400, "bad_activity", msg);
        webhook_req_done(w);
        return;
    }
    if (service_url_check(w->act.service_url, &wh->cfg->service_url_allow) != 0) {
        webhook_answer_error(w, 403, "service_url_not_allowed",
                             "serviceUrl is not an allowed https host");
        webhook_req_done(w);
        return;
    }
    parse_command(w);
    if (wh->redis_waiting >= WEBHOOK_MAX_PENDING) {
        answer_unavailable(w, "too many requests in flight");
        webhook_req_done(w);
        return;
    }
    /* Only a digest can be served without Redis (the sync path). */
    if (!queue_ready(wh->queue) && !is_digest(w)) {
        answer_unavailable(w, "the job queue is unreachable");
        webhook_req_done(w);
        return;
    }
    uuid_v4(w->request_id);
    w->conv_key = activity_conv_key(&w->act);
    rc = dispatch(w);
    if (rc) {
        webhook_answer_dispatch_error(w, rc);
        webhook_req_done(w);
    }
}

/* --- authentication (SPEC §3, docs/security.md) ------------------------ */

/* RFC 7235: a 401 names the scheme it wants. */
static const struct http_header www_authenticate[] = {{"WWW-Authenticate", "Bearer"}};

/* Answers a refused token; nothing has been stored or sent for it. */
static void refuse(struct webhook_req *w, int status, const char *why)
{
    log_emit(LOG_LEVEL_INFO, NULL, "activity refused: %d %s", status, why);
    if (status == 401 && w->req) {
        http_request_respond_error(w->req, 401, "unauthorized", why, www_authenticate,
                                   ARRAY_SIZE(www_authenticate));
        w->req = NULL;
    } else if (status == 403) {
        webhook_answer_error(w, 403, "forbidden", why);
    } else {
        answer_unavailable(w, why);
    }
    webhook_req_done(w);
}

/* The token's verdict; data is the request, which holds the parsed body. */
static void on_auth_done(int status, const char *why, void *data)
{
    struct webhook_req *w = data;

    if (status != 200)
        refuse(w, status, why);
    else
        accept_activity(w);
}

/*
 * The token checks, after the body parsed and before its fields are
 * checked: they need the activity's serviceUrl (the token's serviceurl claim
 * must equal it) and channelId (the key's endorsements), NULL when absent.
 */
static void check_token(struct webhook_req *w)
{
    struct webhook *wh = w->wh;
    const char *why = "";
    int status;

    if (wh->cfg->bot_auth == BOT_AUTH_OFF) {
        accept_activity(w);
        return;
    }
    if (!wh->auth) { /* fail closed: never trust what could not be checked */
        refuse(w, 503, "authentication is not available");
        return;
    }
    status = auth_check(wh->auth, http_request_header(w->req, "Authorization"), w->act.service_url,
                        w->act.channel_id, &why, on_auth_done, w);
    /* Answered at once: the verdict goes the same way as one that comes later. */
    if (status != AUTH_PENDING)
        on_auth_done(status, why, w);
}

static void handle_webhook(struct http_request *req, void *data)
{
    struct webhook *wh = data;
    struct activity act;
    struct webhook_req *w;
    const char *body;
    size_t len;

    if (!is_json_content_type(http_request_header(req, "Content-Type"))) {
        http_request_respond_error(req, 415, "unsupported_media_type",
                                   "Content-Type must be application/json", NULL, 0);
        return;
    }
    /* SPEC §3: a missing or odd header is refused before the body is parsed. */
    if (wh->cfg->bot_auth == BOT_AUTH_JWT &&
        !auth_header_ok(http_request_header(req, "Authorization"))) {
        http_request_respond_error(req, 401, "unauthorized",
                                   "Authorization must be 'Bearer' and one token", www_authenticate,
                                   ARRAY_SIZE(www_authenticate));
        return;
    }
    body = http_request_body(req, &len);
    if (activity_parse(&act, body, len, NULL) != 0) {
        http_request_respond_error(req, 400, "bad_json", "the body is not a JSON object", NULL, 0);
        return;
    }
    w = xcalloc(1, sizeof(*w));
    w->wh = wh;
    w->req = req;
    w->act = act; /* moved: w frees it */
    wh->in_flight++;
    check_token(w);
}

void webhook_register(struct webhook *wh, struct http_server *srv)
{
    http_server_route(srv, "POST", "/api/messages", "webhook", handle_webhook, wh);
    http_server_route(srv, "POST", "/api/teams/webhook", "webhook", handle_webhook, wh);
}
