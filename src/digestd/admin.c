/*
 * admin.c: health, readiness and metrics endpoints, and the /admin/...
 * routes. An admin request is checked against ADMIN_TOKEN by comparing the
 * SHA-256 digests of the two tokens with CRYPTO_memcmp: equal lengths
 * always, and no early exit, so timing tells nothing about the token. Each
 * admin route is one Redis round trip; where several keys change together
 * (requeue) it is one Lua script, so a crash cannot leave a job both dead
 * and queued.
 */
#include "admin.h"

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "core/buf.h"
#include "config.h"
#include "http/http_server.h"
#include "core/log.h"
#include "metrics.h"
#include "store/queue.h"
#include "store/redis.h"

/* A /metrics page is a few KiB; the cap only guards against a runaway. */
#define METRICS_MAX_BYTES (1u << 20)
/* Request ids are UUIDs (36); anything much longer is not one of ours. */
#define ADMIN_MAX_ID 64
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
    const char *text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

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

/* One Redis value as JSON: numbers stay numbers, nil is null. */
static struct json_object *reply_json(const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_INTEGER:
        return json_object_new_int64((int64_t)r->integer);
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        return json_object_new_string_len(r->str, (int)r->len);
    default:
        return NULL;
    }
}

/* A flat [field, value, …] array as an object; '-' in names becomes '_'. */
static struct json_object *pairs_json(const redisReply *r)
{
    struct json_object *o = json_object_new_object();
    char name[64];
    size_t i, j;

    for (i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];
        if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
            continue;
        for (j = 0; j < k->len && j < sizeof(name) - 1; j++)
            name[j] = k->str[j] == '-' ? '_' : k->str[j];
        name[j] = '\0';
        json_object_object_add(o, name, reply_json(r->element[i + 1]));
    }
    return o;
}

/* An id we could have issued: 1..ADMIN_MAX_ID of [A-Za-z0-9-]. */
static bool id_ok(const char *id, size_t len)
{
    size_t i;

    if (len == 0 || len > ADMIN_MAX_ID)
        return false;
    for (i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-'))
            return false;
    }
    return true;
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
    struct json_object *o = json_object_new_object();
    struct json_object *reasons = json_object_new_array();
    bool ready = true;

    if (!queue_ready(adm->queue)) {
        json_object_array_add(reasons, json_object_new_string("redis: not connected"));
        ready = false;
    }
    if (adm->auth && !auth_ready(adm->auth)) {
        json_object_array_add(reasons, json_object_new_string(auth_reason(adm->auth)));
        ready = false;
    }
    json_object_object_add(o, "ready", json_object_new_boolean(ready));
    json_object_object_add(o, "reasons", reasons);
    if (adm->cfg->bot_auth == BOT_AUTH_OFF) {
        struct json_object *w = json_object_new_array();
        json_object_array_add(
            w, json_object_new_string("BOT_AUTH=off: inbound activities are not authenticated "
                                      "(local development only)"));
        json_object_object_add(o, "warnings", w);
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

/* --- GET /admin/queue ---------------------------------------------------- */

/* KEYS[1] = stream, KEYS[2] = dead stream. XINFO fails on a missing stream. */
static const char queue_lua[] =
    "local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])\n"
    "if not ok then groups = {} end\n"
    "return {redis.call('XLEN', KEYS[1]), groups, redis.call('XLEN', KEYS[2])}\n";

/* {"length":N,"groups":[{"name","consumers","pending","lag",…}],"dead":N} */
static void on_queue_info(int err, redisReply *r, void *data)
{
    struct http_request *req = data;
    struct json_object *o, *groups;
    size_t i;

    if (!err && r->type == REDIS_REPLY_ERROR)
        err = DG_ERR_PROTOCOL;
    if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
                 r->element[1]->type != REDIS_REPLY_ARRAY))
        err = DG_ERR_PROTOCOL;
    if (err) {
        respond_redis_error(req, err);
        return;
    }
    o = json_object_new_object();
    groups = json_object_new_array();
    for (i = 0; i < r->element[1]->elements; i++)
        if (r->element[1]->element[i]->type == REDIS_REPLY_ARRAY)
            json_object_array_add(groups, pairs_json(r->element[1]->element[i]));
    json_object_object_add(o, "length", reply_json(r->element[0]));
    json_object_object_add(o, "groups", groups);
    json_object_object_add(o, "dead", reply_json(r->element[2]));
    respond_json(req, 200, o);
}

/* One script, so the three numbers are one consistent snapshot. */
static void handle_queue(struct http_request *req, void *data)
{
    struct admin *adm = data;
    char *stream, *dead;
    int err;

    if (!authorized(adm, req))
        return;
    stream = queue_key(adm->cfg, "requests", NULL);
    dead = queue_key(adm->cfg, "dead", NULL);
    {
        const char *argv[] = {"EVAL", queue_lua, "2", stream, dead};
        err = redis_conn_command(queue_conn(adm->queue), 0, on_queue_info, req,
                                 (int)ARRAY_SIZE(argv), argv, NULL);
    }
    xfree(stream);
    xfree(dead);
    if (err)
        respond_redis_error(req, err);
}

/* --- GET /admin/requests/{id} -------------------------------------------- */

/* HGETALL answers an empty array for a missing key: that is the 404. */
static void on_record(int err, redisReply *r, void *data)
{
    struct http_request *req = data;

    if (!err && r->type != REDIS_REPLY_ARRAY)
        err = DG_ERR_PROTOCOL;
    if (err)
        respond_redis_error(req, err);
    else if (r->elements == 0)
        respond_not_found(req, "no such request");
    else
        respond_json(req, 200, pairs_json(r));
}

/*
 * The id is checked before it becomes part of a key: an id of ours is a
 * UUID, and anything else (a '*', a NUL, a megabyte) is simply not found.
 */
static void handle_request(struct http_request *req, void *data)
{
    static const char prefix[] = "/admin/requests/";
    struct admin *adm = data;
    const char *id = http_request_path(req) + sizeof(prefix) - 1;
    char *key;
    int err;

    if (!authorized(adm, req))
        return;
    if (!id_ok(id, strlen(id))) {
        respond_not_found(req, "no such request");
        return;
    }
    key = queue_key(adm->cfg, "req", id);
    {
        const char *argv[] = {"HGETALL", key};
        err = redis_conn_command(queue_conn(adm->queue), 0, on_record, req, (int)ARRAY_SIZE(argv),
                                 argv, NULL);
    }
    xfree(key);
    if (err)
        respond_redis_error(req, err);
}

/* --- POST /admin/dead/{id}/requeue --------------------------------------- */

/*
 * KEYS[1] = dead stream, KEYS[2] = stream, KEYS[3] = the audit record;
 * ARGV[1] = request id. The record's dead_id (written by the worker when it
 * dead-letters the job) names the dead entry, so this is O(1) however long
 * the dead stream: a scan inside one script would stall Redis for everyone.
 * Without it (the record expired after REQUEST_TTL_S) only the newest 1,000
 * dead entries are searched, a bounded cost.
 * Puts the entry's original job fields (SPEC §5, without the dead-letter
 * ones) back on the stream, deletes the dead entry and resets the record,
 * all in one atomic step. Returns the new entry id, or false when the
 * request is not dead. A record that has expired is not recreated as a
 * stub: the worker rebuilds it from the job.
 */
static const char requeue_lua[] =
    "local job = {request_id=1, activity_id=1, audience=1, test_email=1, conv=1, created_ms=1}\n"
    "local did = redis.call('HGET', KEYS[3], 'dead_id')\n"
    "local page = {}\n"
    "if did then page = redis.call('XRANGE', KEYS[1], did, did) end\n"
    "if #page == 0 then\n"
    "  -- the record expired (or predates dead_id): look among the newest only\n"
    "  for _, e in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1000)) do\n"
    "    for i = 1, #e[2], 2 do\n"
    "      if e[2][i] == 'request_id' and e[2][i + 1] == ARGV[1] then page = {e} end\n"
    "    end\n"
    "    if #page > 0 then break end\n"
    "  end\n"
    "  if #page == 0 then return false end\n"
    "  did = page[1][1]\n"
    "end\n"
    "local f, args, mine = page[1][2], {}, false\n"
    "for i = 1, #f, 2 do\n"
    "  if job[f[i]] then args[#args + 1] = f[i]; args[#args + 1] = f[i + 1] end\n"
    "  if f[i] == 'request_id' and f[i + 1] == ARGV[1] then mine = true end\n"
    "end\n"
    "if not mine then return false end\n"
    "local id = redis.call('XADD', KEYS[2], '*', unpack(args))\n"
    "redis.call('XDEL', KEYS[1], did)\n"
    "if redis.call('EXISTS', KEYS[3]) == 1 then\n"
    "  redis.call('HSET', KEYS[3], 'status', 'queued', 'attempts', '0')\n"
    "  redis.call('HDEL', KEYS[3], 'dead_id', 'attempt_token')\n"
    "end\n"
    "return id\n";

struct requeue {
    struct http_request *req;
    char id[ADMIN_MAX_ID + 1];
};

static void on_requeued(int err, redisReply *r, void *data)
{
    struct requeue *rq = data;
    struct json_object *o;

    if (!err && r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)
        err = DG_ERR_PROTOCOL;
    if (err) {
        respond_redis_error(rq->req, err);
    } else if (r->type == REDIS_REPLY_NIL) {
        respond_not_found(rq->req, "no dead job for that request");
    } else {
        log_emit(LOG_LEVEL_INFO, rq->id, "admin: dead job requeued as stream entry %s", r->str);
        o = json_object_new_object();
        json_object_object_add(o, "requestId", json_object_new_string(rq->id));
        json_object_object_add(o, "streamId", json_object_new_string(r->str));
        respond_json(rq->req, 200, o);
    }
    xfree(rq);
}

/* Sends the requeue script for rq; DG_ERR_* at submission (rq untouched). */
static int send_requeue(struct admin *adm, struct requeue *rq)
{
    char *dead = queue_key(adm->cfg, "dead", NULL);
    char *stream = queue_key(adm->cfg, "requests", NULL);
    char *record = queue_key(adm->cfg, "req", rq->id);
    const char *argv[] = {"EVAL", requeue_lua, "3", dead, stream, record, rq->id};
    int err = redis_conn_command(queue_conn(adm->queue), 0, on_requeued, rq, (int)ARRAY_SIZE(argv),
                                 argv, NULL);

    xfree(dead);
    xfree(stream);
    xfree(record);
    return err;
}

/* The script's reply decides 200 or 404; the id is copied for the log line. */
static void handle_requeue(struct http_request *req, void *data)
{
    static const char prefix[] = "/admin/dead/", suffix[] = "/requeue";
    struct admin *adm = data;
    const char *id = http_request_path(req) + sizeof(prefix) - 1;
    size_t len = strlen(id);
    struct requeue *rq;
    int err;

    if (!authorized(adm, req))
        return;
    /* {id}/requeue and nothing else below /admin/dead/. */
    if (len < sizeof(suffix) || strcmp(id + len - (sizeof(suffix) - 1), suffix) != 0 ||
        !id_ok(id, len - (sizeof(suffix) - 1))) {
        respond_not_found(req, "no such route");
        return;
    }
    rq = xcalloc(1, sizeof(*rq));
    rq->req = req;
    memcpy(rq->id, id, len - (sizeof(suffix) - 1));
    err = send_requeue(adm, rq);
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
