/*
 * admin.c: health, readiness and metrics endpoints, and the /admin/...
 * routes. An admin request is checked against ADMIN_TOKEN by comparing the
 * SHA-256 digests of the two tokens with CRYPTO_memcmp: equal lengths
 * always, and no early exit, so timing tells nothing about the token. The
 * admin routes are thin: what they read and repair, and how, is
 * store/inspect.h (the same calls digestctl makes); here is only the HTTP
 * around it.
 */
#include "admin.h"

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin_page.h"
#include "auth.h"
#include "core/buf.h"
#include "config.h"
#include "core/json_build.h"
#include "core/json_strict.h"
#include "core/json_write.h"
#include "core/url.h"
#include "http/http_server.h"
#include "core/log.h"
#include "metrics.h"
#include "store/history.h"
#include "store/inspect.h"
#include "store/queue.h"

/* A /metrics page is a few KiB; the cap only guards against a runaway. */
#define METRICS_MAX_BYTES (1u << 20)
#define DIGEST_LEN 32
#define ADMIN_DEFAULT_LIMIT 20   /* entries of /admin/pending and /admin/dead without ?limit= */
#define ADMIN_DEFAULT_MINUTES 60 /* of /admin/history without ?minutes= */

struct admin {
    const struct config *cfg;
    struct queue *queue;
    struct auth *auth;
    struct metrics *metrics;
    unsigned char token_digest[DIGEST_LEN]; /* SHA-256 of ADMIN_TOKEN */
};

static const struct http_header retry_after[] = {{"Retry-After", "1"}};
/* Every JSON answer here is live (most of it behind the token): no cache keeps a copy. */
static const struct http_header no_store[] = {{"Cache-Control", "no-store"}};
static const struct http_header www_authenticate[] = {{"WWW-Authenticate", "Bearer"}};

/* SHA-256 of len bytes; libcrypto cannot fail on this in practice. */
static void sha256(const void *p, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned int n = DIGEST_LEN;

    if (EVP_Digest(p, len, out, &n, EVP_sha256(), NULL) != 1)
        memset(out, 0xff, DIGEST_LEN); /* matches no real digest's twin */
}

struct admin *admin_create(const struct config *cfg, struct queue *queue, struct auth *auth,
                           struct metrics *metrics)
{
    struct admin *adm = xcalloc(1, sizeof(*adm));

    adm->cfg = cfg;
    adm->queue = queue;
    adm->auth = auth;
    adm->metrics = metrics;
    if (cfg->admin_token)
        sha256(cfg->admin_token, strlen(cfg->admin_token), adm->token_digest);
    return adm;
}

void admin_free(struct admin *adm)
{
    if (adm)
        OPENSSL_cleanse(adm->token_digest, sizeof(adm->token_digest));
    xfree(adm);
}

/* --- helpers ------------------------------------------------------------ */

/* Sends obj (taken) as the JSON body. */
static void respond_json(struct http_request *req, int status, struct json_object *obj)
{
    size_t len;
    const char *text = json_write_compact(obj, &len);

    http_request_respond(req, status, "application/json", text, len, no_store,
                         ARRAY_SIZE(no_store));
    json_object_put(obj);
}

/*
 * Redis said no (a script error, a key of the wrong type): retrying will not
 * help, so 500. Redis away or slow: 503 with Retry-After, as the webhook does.
 */
static void respond_redis_error(struct http_request *req, int err)
{
    if (err == DG_ERR_PROTOCOL)
        http_request_respond_error(req, 500, "internal", "Redis refused the command", NULL, 0);
    else
        http_request_respond_error(req, 503, "unavailable", "Redis is unreachable; retry later",
                                   retry_after, ARRAY_SIZE(retry_after));
}

static void respond_not_found(struct http_request *req, const char *what)
{
    http_request_respond_error(req, 404, "not_found", what, NULL, 0);
}

/*
 * True when the request carries "Bearer <ADMIN_TOKEN>"; otherwise answers
 * 401 and returns false. Digests of equal length are compared in constant
 * time, so neither the length nor a prefix of the token leaks.
 */
static bool authorized(struct admin *adm, struct http_request *req)
{
    const char *h = http_request_header(req, "Authorization");
    unsigned char got[DIGEST_LEN];

    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        sha256(h + 7, strlen(h + 7), got);
        if (CRYPTO_memcmp(got, adm->token_digest, DIGEST_LEN) == 0)
            return true;
    }
    http_request_respond_error(req, 401, "unauthorized", "a valid admin token is required",
                               www_authenticate, ARRAY_SIZE(www_authenticate));
    return false;
}

/* --- health, readiness, metrics ------------------------------------------ */

static void handle_healthz(struct http_request *req, void *data)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_request_respond(req, 200, "application/json", body, sizeof(body) - 1, NULL, 0);
}

static void handle_readyz(struct http_request *req, void *data)
{
    struct admin *adm = data;
    struct json_object *o = jobj();
    struct json_object *reasons = jarr();
    bool ready = true;

    if (!queue_ready(adm->queue)) {
        jpush(reasons, jstr("redis: not connected"));
        ready = false;
    }
    if (adm->auth && !auth_ready(adm->auth)) {
        jpush(reasons, jstr(auth_reason(adm->auth)));
        ready = false;
    }
    jset(o, "ready", jbool(ready));
    jset(o, "reasons", reasons);
    if (adm->cfg->bot_auth == BOT_AUTH_OFF) {
        struct json_object *w = jarr();
        jpush(w, jstr("BOT_AUTH=off: inbound activities are not authenticated "
                      "(local development only)"));
        jset(o, "warnings", w);
    }
    respond_json(req, ready ? 200 : 503, o);
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

/* --- GET /admin/queue, procs, pending, dead, history, requests/{id} ------- */

/* The answer of an inspect query: 200 with it, 404 when there is none. */
static void on_inspected(int err, struct json_object *out, void *data)
{
    struct http_request *req = data;

    if (err)
        respond_redis_error(req, err);
    else if (!out)
        respond_not_found(req, "no such request");
    else
        respond_json(req, 200, out);
}

/*
 * The number of name=N in the query string, dflt when absent; false (and
 * 400 answered) when it is there but not a number in [min, max].
 */
static bool query_number(struct http_request *req, const char *name, unsigned dflt, unsigned min,
                         unsigned max, unsigned *out)
{
    char msg[96];

    if (url_query_uint(http_request_query(req), name, min, max, dflt, out) == 0)
        return true;
    snprintf(msg, sizeof(msg), "%s must be a number %u..%u", name, min, max);
    http_request_respond_error(req, 400, "bad_request", msg, NULL, 0);
    return false;
}

/* Answers the submission error of an inspect call, if there was one. */
static void sent(struct http_request *req, int err)
{
    if (err)
        respond_redis_error(req, err);
}

static void handle_queue(struct http_request *req, void *data)
{
    struct admin *adm = data;

    if (authorized(adm, req))
        sent(req, inspect_queue(queue_conn(adm->queue), adm->cfg->prefix,
                                adm->cfg->worker_claim_idle_ms, on_inspected, req));
}

static void handle_procs(struct http_request *req, void *data)
{
    struct admin *adm = data;

    if (authorized(adm, req))
        sent(req, inspect_procs(queue_conn(adm->queue), adm->cfg->prefix, on_inspected, req));
}

static void handle_pending(struct http_request *req, void *data)
{
    struct admin *adm = data;
    unsigned limit;

    if (authorized(adm, req) &&
        query_number(req, "limit", ADMIN_DEFAULT_LIMIT, 1, INSPECT_MAX_LIMIT, &limit))
        sent(req,
             inspect_pending(queue_conn(adm->queue), adm->cfg->prefix, limit, on_inspected, req));
}

static void handle_dead(struct http_request *req, void *data)
{
    struct admin *adm = data;
    unsigned limit;

    if (authorized(adm, req) &&
        query_number(req, "limit", ADMIN_DEFAULT_LIMIT, 1, INSPECT_MAX_LIMIT, &limit))
        sent(req, inspect_dead(queue_conn(adm->queue), adm->cfg->prefix, limit, on_inspected, req));
}

static void handle_history(struct http_request *req, void *data)
{
    struct admin *adm = data;
    unsigned minutes;

    if (authorized(adm, req) &&
        query_number(req, "minutes", ADMIN_DEFAULT_MINUTES, 1, HISTORY_MAX_MINUTES, &minutes))
        sent(req,
             inspect_history(queue_conn(adm->queue), adm->cfg->prefix, minutes, on_inspected, req));
}

/* An id we could not have issued is simply not found (inspect_request_id_ok). */
static void handle_request(struct http_request *req, void *data)
{
    static const char prefix[] = "/admin/requests/";
    struct admin *adm = data;
    const char *id = http_request_path(req) + sizeof(prefix) - 1;

    if (!authorized(adm, req))
        return;
    if (!inspect_request_id_ok(id)) {
        respond_not_found(req, "no such request");
        return;
    }
    sent(req, inspect_request(queue_conn(adm->queue), adm->cfg->prefix, id, on_inspected, req));
}

/* --- POST /admin/dead/{id}/requeue --------------------------------------- */

struct requeue {
    struct http_request *req;
    char id[INSPECT_MAX_ID + 1];
};

static void on_requeued(int err, const char *stream_id, void *data)
{
    struct requeue *rq = data;

    if (err) {
        respond_redis_error(rq->req, err);
    } else if (!stream_id) {
        respond_not_found(rq->req, "no dead job for that request");
    } else {
        log_emit(LOG_LEVEL_INFO, rq->id, "admin: dead job requeued as stream entry %s", stream_id);
        respond_json(rq->req, 200, inspect_requeued_json(rq->id, stream_id));
    }
    xfree(rq);
}

/*
 * "{id}/requeue" (what follows /admin/dead/) into id; false for any other
 * path below /admin/dead/, or an id we could not have issued.
 */
static bool requeue_path(const char *rest, char id[INSPECT_MAX_ID + 1])
{
    static const char suffix[] = "/requeue";
    size_t len = strlen(rest), id_len;

    if (len < sizeof(suffix) || strcmp(rest + len - (sizeof(suffix) - 1), suffix) != 0)
        return false;
    id_len = len - (sizeof(suffix) - 1);
    if (id_len > INSPECT_MAX_ID)
        return false;
    memcpy(id, rest, id_len);
    id[id_len] = '\0';
    return inspect_request_id_ok(id);
}

/* The script's reply decides 200 or 404; the id is copied for the log line. */
static void handle_requeue(struct http_request *req, void *data)
{
    static const char prefix[] = "/admin/dead/";
    struct admin *adm = data;
    char id[INSPECT_MAX_ID + 1];
    struct requeue *rq;
    int err;

    if (!authorized(adm, req))
        return;
    if (!requeue_path(http_request_path(req) + sizeof(prefix) - 1, id)) {
        respond_not_found(req, "no such route");
        return;
    }
    rq = xcalloc(1, sizeof(*rq));
    rq->req = req;
    memcpy(rq->id, id, sizeof(rq->id));
    err = inspect_requeue(queue_conn(adm->queue), adm->cfg->prefix, rq->id, on_requeued, rq);
    if (err) {
        xfree(rq);
        respond_redis_error(req, err);
    }
}

/* --- POST /admin/dead/requeue-all {"count":N} ------------------------------ */

static void on_requeued_all(int err, const struct inspect_requeue_all *s, void *data)
{
    struct http_request *req = data;
    struct json_object *o;
    char msg[128];

    if (err && s->requeued == 0) {
        respond_redis_error(req, err);
        return;
    }
    if (s->mismatch) {
        snprintf(msg, sizeof(msg), "%lld dead jobs, not %lld: look again before requeueing",
                 s->dead_now, s->expected);
        http_request_respond_error(req, 409, "conflict", msg, NULL, 0);
        return;
    }
    /* Cut short by Redis: what went back is said, the rest stays dead for another try. */
    log_info("admin: %lld dead job(s) requeued%s", s->requeued, err ? " before Redis failed" : "");
    o = jobj();
    jset(o, "requeued", jint64(s->requeued));
    respond_json(req, 200, o);
}

/* The count the operator saw, {"count":N} with N >= 0; -1 when the body is not that. */
static long long requeue_all_count(struct http_request *req)
{
    size_t len;
    const char *body = http_request_body(req, &len);
    struct json_object *o = NULL, *n;
    long long count = -1;

    if (json_strict_object(body, len, JSON_MAX_DEPTH, true, &o) == 0 &&
        json_object_object_get_ex(o, "count", &n) && json_object_is_type(n, json_type_int) &&
        json_object_get_int64(n) >= 0)
        count = json_object_get_int64(n);
    json_object_put(o);
    return count;
}

static void handle_requeue_all(struct http_request *req, void *data)
{
    struct admin *adm = data;
    long long count;

    if (!authorized(adm, req))
        return;
    count = requeue_all_count(req);
    if (count < 0) {
        http_request_respond_error(req, 400, "bad_request",
                                   "expected {\"count\":N}, the number of dead jobs you saw", NULL,
                                   0);
        return;
    }
    sent(req, inspect_requeue_all(queue_conn(adm->queue), adm->cfg->prefix, count, on_requeued_all,
                                  req));
}

void admin_register(struct admin *adm, struct http_server *srv)
{
    http_server_route(srv, "GET", "/healthz", "healthz", handle_healthz, adm);
    http_server_route(srv, "GET", "/readyz", "readyz", handle_readyz, adm);
    http_server_route(srv, "GET", "/metrics", "metrics", handle_metrics, adm);
    /* Unset ADMIN_TOKEN: no route, so every /admin/ path is a plain 404. */
    if (!adm->cfg->admin_token)
        return;
    admin_page_register(srv);
    http_server_route(srv, "GET", "/admin/queue", "admin", handle_queue, adm);
    http_server_route(srv, "GET", "/admin/procs", "admin", handle_procs, adm);
    http_server_route(srv, "GET", "/admin/pending", "admin", handle_pending, adm);
    http_server_route(srv, "GET", "/admin/dead", "admin", handle_dead, adm);
    http_server_route(srv, "GET", "/admin/history", "admin", handle_history, adm);
    http_server_route(srv, "GET", "/admin/requests/*", "admin", handle_request, adm);
    /* The exact route first: the router takes the first that matches. */
    http_server_route(srv, "POST", "/admin/dead/requeue-all", "admin", handle_requeue_all, adm);
    http_server_route(srv, "POST", "/admin/dead/*", "admin", handle_requeue, adm);
}
