/*
 * webhook.c: the Bot Framework webhook. The checks run in the order SPEC §3
 * gives, and the first failure answers with nothing stored: 415 content
 * type, (401 authorization: the JWT issue), 400 broken JSON, 400 missing
 * field, 403 serviceUrl, 503 Redis unreachable or load shed. Only then is
 * Redis written, in one atomic step, and the answer waits for its reply: a
 * 202 is never given for a job that is not in the stream.
 */
#include "webhook.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "activity.h"
#include "buf.h"
#include "clock.h"
#include "command.h"
#include "config.h"
#include "http_server.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "service_url.h"
#include "uuid.h"

/* Requests waiting on Redis beyond this are shed with 503: a slow Redis must
 * not turn into unbounded memory. */
#define WEBHOOK_MAX_PENDING 8192

struct webhook {
    uv_loop_t *loop;
    const struct config *cfg;
    struct queue *queue;
    struct metrics *metrics;
    unsigned pending;
};

/* One request between its handler and the Redis reply. */
struct webhook_req {
    struct webhook *wh;
    struct http_request *req;
    struct activity act;
    char request_id[UUID_STR_LEN + 1];
    char *conv_key;
};

static const struct http_header retry_after[] = {{"Retry-After", "1"}};

struct webhook *webhook_create(uv_loop_t *loop, const struct config *cfg, struct queue *queue,
                               struct metrics *metrics)
{
    struct webhook *wh = xcalloc(1, sizeof(*wh));
    wh->loop = loop;
    wh->cfg = cfg;
    wh->queue = queue;
    wh->metrics = metrics;
    return wh;
}

unsigned webhook_in_flight(const struct webhook *wh)
{
    return wh->pending;
}

void webhook_free(struct webhook *wh)
{
    xfree(wh);
}

static void respond_json(struct http_request *req, int status, const char *body)
{
    http_request_respond(req, status, "application/json", body, strlen(body), NULL, 0);
}

static void respond_unavailable(struct http_request *req, const char *why)
{
    http_request_respond_error(req, 503, "unavailable", why, retry_after, ARRAY_SIZE(retry_after));
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

static void wreq_free(struct webhook_req *w)
{
    activity_free(&w->act);
    xfree(w->conv_key);
    xfree(w);
}

static void wreq_finish(struct webhook_req *w)
{
    w->wh->pending--;
    wreq_free(w);
}

static void on_enqueued(int err, const char *request_id, bool duplicate, void *data)
{
    struct webhook_req *w = data;
    char body[160];

    if (err) {
        log_emit(LOG_LEVEL_WARN, w->request_id, "enqueue failed: %s", dg_strerror(err));
        respond_unavailable(w->req, "the job queue is unreachable; retry later");
    } else if (duplicate) {
        snprintf(body, sizeof(body), "{\"requestId\":\"%s\",\"duplicate\":true}", request_id);
        log_emit(LOG_LEVEL_INFO, request_id, "duplicate activity %s", w->act.id);
        respond_json(w->req, 200, body);
    } else {
        snprintf(body, sizeof(body), "{\"requestId\":\"%s\"}", request_id);
        log_emit(LOG_LEVEL_DEBUG, request_id, "queued digest %s", w->act.id);
        respond_json(w->req, 202, body);
    }
    wreq_finish(w);
}

static void on_reference_stored(int err, void *data)
{
    struct webhook_req *w = data;

    if (err)
        respond_unavailable(w->req, "the conversation store is unreachable; retry later");
    else
        respond_json(w->req, 200, "{}");
    wreq_finish(w);
}

/* A digest request: dedup + reference + audit + XADD in one atomic step. */
static int start_enqueue(struct webhook_req *w, const struct command *cmd,
                         const struct activity_ref *ref)
{
    struct queue_job job = {
        .request_id = w->request_id,
        .conv_key = w->conv_key,
        .activity_id = w->act.id,
        .audience = cmd->audience,
        .test_email = cmd->test_email,
        .created_ms = clock_wall_ms(),
        .mode = "async",
        .ref_fields = ref->fields,
        .ref_values = ref->values,
        .n_ref = ACTIVITY_REF_FIELDS,
    };
    return queue_enqueue(w->wh->queue, &job, on_enqueued, w);
}

/* Anything that queues nothing still refreshes the reference (SPEC §3). */
static int start_reference(struct webhook_req *w, const struct activity_ref *ref)
{
    return queue_store_reference(w->wh->queue, w->conv_key, ref->fields, ref->values,
                                 ACTIVITY_REF_FIELDS, on_reference_stored, w);
}

static bool is_removal(const struct activity *a)
{
    return strcmp(a->type, "installationUpdate") == 0 && strcmp(a->action, "remove") == 0;
}

/*
 * The activity is valid and trusted: decide what to write. Returns 0 when a
 * Redis step is under way (it will answer), else an error and nothing sent.
 */
static int dispatch(struct webhook_req *w)
{
    struct activity_ref ref;
    struct command cmd;
    char *text;

    activity_reference(&w->act, clock_wall_ms(), is_removal(&w->act), &ref);
    if (strcmp(w->act.type, "message") != 0)
        return start_reference(w, &ref);

    text = activity_command_text(&w->act);
    command_parse(&cmd, text, w->wh->cfg->audiences.items, w->wh->cfg->audiences.len);
    xfree(text);
    if (cmd.kind == COMMAND_DIGEST && cmd.error == COMMAND_OK)
        return start_enqueue(w, &cmd, &ref);
    /* help, status, unknown text and bad arguments: their cards come with
     * the outbound issue; the reference is what matters here. */
    log_emit(LOG_LEVEL_DEBUG, w->request_id, "command %s (%s)", command_kind_name(cmd.kind),
             command_error_name(cmd.error));
    return start_reference(w, &ref);
}

/* Parses and checks the body; answers and returns false on any failure. */
static bool check_activity(struct webhook_req *w)
{
    struct json_object *root = NULL;
    char err[128];
    size_t len;
    const char *body = http_request_body(w->req, &len);
    int rc;

    if (activity_json_parse(body, len, &root) != 0) {
        http_request_respond_error(w->req, 400, "bad_json", "the body is not a JSON object", NULL,
                                   0);
        return false;
    }
    /* 401/403 token checks belong here, between the two parse steps. */
    rc = activity_from_json(&w->act, root, err, sizeof(err));
    json_object_put(root);
    if (rc != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "missing or invalid field: %s", err);
        http_request_respond_error(w->req, 400, "bad_activity", msg, NULL, 0);
        return false;
    }
    if (service_url_check(w->act.service_url, &w->wh->cfg->service_url_allow) != 0) {
        http_request_respond_error(w->req, 403, "service_url_not_allowed",
                                   "serviceUrl is not an allowed https host", NULL, 0);
        return false;
    }
    return true;
}

static void handle_webhook(struct http_request *req, void *data)
{
    struct webhook *wh = data;
    struct webhook_req *w;

    if (!is_json_content_type(http_request_header(req, "Content-Type"))) {
        http_request_respond_error(req, 415, "unsupported_media_type",
                                   "Content-Type must be application/json", NULL, 0);
        return;
    }
    w = xcalloc(1, sizeof(*w));
    w->wh = wh;
    w->req = req;
    if (!check_activity(w)) {
        wreq_free(w);
        return;
    }
    if (!queue_ready(wh->queue) || wh->pending >= WEBHOOK_MAX_PENDING) {
        /* The channel retries a 503; dedup makes the retry safe. */
        respond_unavailable(req, queue_ready(wh->queue) ? "too many requests in flight"
                                                        : "the job queue is unreachable");
        wreq_free(w);
        return;
    }
    uuid_v4(w->request_id);
    w->conv_key = activity_conv_key(&w->act);
    wh->pending++;
    if (dispatch(w) != 0) {
        respond_unavailable(req, "the job queue is unreachable");
        wreq_finish(w);
    }
}

void webhook_register(struct webhook *wh, struct http_server *srv)
{
    http_server_route(srv, "POST", "/api/messages", "webhook", handle_webhook, wh);
    http_server_route(srv, "POST", "/api/teams/webhook", "webhook", handle_webhook, wh);
}
