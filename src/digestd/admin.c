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
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "core/buf.h"
#include "config.h"
#include "core/json_build.h"
#include "core/json_write.h"
#include "http/http_server.h"
#include "core/log.h"
#include "metrics.h"
#include "store/inspect.h"
#include "store/queue.h"

/* A /metrics page is a few KiB; the cap only guards against a runaway. */
#define METRICS_MAX_BYTES (1u << 20)
#define DIGEST_LEN 32

struct admin {
    const struct config *cfg;
    struct queue *queue;
    struct auth *auth;
    struct metrics *metrics;
    unsigned char token_digest[DIGEST_LEN]; /* SHA-256 of ADMIN_TOKEN */
};

static const struct http_header retry_after[] = {{"Retry-After", "1"}};
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

    http_request_respond(req, status, "application/json", text, len, NULL, 0);
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

/* --- GET /admin/queue, GET /admin/requests/{id} --------------------------- */

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

static void handle_queue(struct http_request *req, void *data)
{
    struct admin *adm = data;
    int err;

    if (!authorized(adm, req))
        return;
    err = inspect_queue(queue_conn(adm->queue), adm->cfg->prefix, on_inspected, req);
    if (err)
        respond_redis_error(req, err);
}

/* An id we could not have issued is simply not found (inspect_request_id_ok). */
static void handle_request(struct http_request *req, void *data)
{
    static const char prefix[] = "/admin/requests/";
    struct admin *adm = data;
    const char *id = http_request_path(req) + sizeof(prefix) - 1;
    int err;

    if (!authorized(adm, req))
        return;
    if (!inspect_request_id_ok(id)) {
        respond_not_found(req, "no such request");
        return;
    }
    err = inspect_request(queue_conn(adm->queue), adm->cfg->prefix, id, on_inspected, req);
    if (err)
        respond_redis_error(req, err);
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

void admin_register(struct admin *adm, struct http_server *srv)
{
    http_server_route(srv, "GET", "/healthz", "healthz", handle_healthz, adm);
    http_server_route(srv, "GET", "/readyz", "readyz", handle_readyz, adm);
    http_server_route(srv, "GET", "/metrics", "metrics", handle_metrics, adm);
    /* Unset ADMIN_TOKEN: no route, so every /admin/ path is a plain 404. */
    if (!adm->cfg->admin_token)
        return;
    http_server_route(srv, "GET", "/admin/queue", "admin", handle_queue, adm);
    http_server_route(srv, "GET", "/admin/requests/*", "admin", handle_request, adm);
    http_server_route(srv, "POST", "/admin/dead/*", "admin", handle_requeue, adm);
}
