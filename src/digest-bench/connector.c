/*
 * connector.c: the listener. Every answer is immediate: digest-bench is the
 * fastest connector a bot can have, so what is measured is the bot.
 */
#include "connector.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/json_strict.h"
#include "core/log.h"
#include "http/http_server.h"
#include "teams/jwt_sign.h"

#define BODY_MAX (4u << 20) /* a result card is ~10 kB; Teams' limit is 100 kB */
#define CARD_JSON_DEPTH 64
#define TOKEN_SUFFIX "/oauth2/v2.0/token"
#define CONV_PREFIX "/v3/conversations/"
#define ACTIVITIES "/activities"

struct connector {
    struct http_server *http;
    struct tally *tally;
    char url[96];
    char *openid_json, *keys_json;
    uint64_t n_posted; /* ids handed out for posted activities */
    void (*stopped)(void *);
    void *stopped_data;
};

/* Leading decimal digits of s[0..len) as a number; false when there are none or too many. */
static bool leading_number(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return i > 0;
}

/* Only the activity id is read from the path: the conversation segment is the bot's business. */
int connector_parse(const char *method, const char *path, const char *body, size_t len,
                    struct connector_msg *out)
{
    const char *conv = strstr(path, CONV_PREFIX), *slash, *id;
    struct json_object *o = NULL;

    memset(out, 0, sizeof(*out));
    if (!conv)
        return DG_ERR_INVALID;
    conv += strlen(CONV_PREFIX);
    slash = strchr(conv, '/');
    if (slash == conv || !slash || strncmp(slash, ACTIVITIES, strlen(ACTIVITIES)) != 0)
        return DG_ERR_INVALID;
    id = slash + strlen(ACTIVITIES);
    if (*id != '\0' && *id != '/')
        return DG_ERR_INVALID;
    out->update = strcmp(method, "PUT") == 0;
    /* Our ids are digits, so no percent-encoding is ever needed to read them. */
    if (*id == '/')
        out->has_activity = leading_number(id + 1, strlen(id + 1), &out->activity_id);
    if (json_strict_object(body, len, CARD_JSON_DEPTH, false, &o) != 0)
        o = NULL;
    card_describe(o, &out->card);
    json_object_put(o);
    return 0;
}

/* card_describe names by heading; the tally wants what the card means for a request. */
enum tally_card connector_card_kind(const struct connector_msg *m)
{
    static const struct {
        const char *kind;
        enum tally_card card;
    } map[] = {
        {"ack", TALLY_CARD_ACK},
        {"result", TALLY_CARD_RESULT},
        {"error", TALLY_CARD_ERROR},
        {"ack-delivered", TALLY_CARD_UPDATE_OK},
        {"ack-failed", TALLY_CARD_UPDATE_FAILED},
    };

    for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
        if (strcmp(m->card.kind, map[i].kind) == 0)
            return map[i].card;
    }
    return TALLY_CARD_OTHER;
}

static void respond_json_text(struct http_request *req, int status, const char *text)
{
    http_request_respond(req, status, "application/json", text, strlen(text), NULL, 0);
}

/*
 * A connector call: matched, then answered {"id":…}. A posted activity's id
 * starts with the activity it replies to, so an update of it (PUT …/{id})
 * is matched to the same request.
 */
static void handle_connector(struct connector *c, struct http_request *req)
{
    const char *auth = http_request_header(req, "Authorization");
    struct connector_msg m;
    size_t len;
    const char *body = http_request_body(req, &len);
    char answer[96];

    if (!auth || strcmp(auth, "Bearer " CONNECTOR_TOKEN) != 0) {
        tally_error(c->tally, TALLY_ERR_CONNECTOR_AUTH);
        respond_json_text(req, 401,
                          "{\"message\":\"Authorization has been denied for this "
                          "request.\"}");
        return;
    }
    if (connector_parse(http_request_method(req), http_request_path(req), body, len, &m) != 0) {
        tally_error(c->tally, TALLY_ERR_CARD_UNKNOWN);
        http_request_respond_error(req, 404, "NotFound", "no such connector operation", NULL, 0);
        return;
    }
    tally_card(c->tally, m.has_activity, m.activity_id, connector_card_kind(&m), m.card.request_id,
               clock_mono_ns());
    if (m.update || !m.has_activity)
        snprintf(answer, sizeof(answer), "{\"id\":\"%" PRIu64 "\"}", m.activity_id);
    else
        snprintf(answer, sizeof(answer), "{\"id\":\"%" PRIu64 ".%" PRIu64 "\"}", m.activity_id,
                 ++c->n_posted);
    respond_json_text(req, 200, answer);
}

/* Client credentials: any tenant, grant_type=client_credentials, one token for the run. */
static void handle_token(struct connector *c, struct http_request *req)
{
    size_t len;
    const char *body = http_request_body(req, &len);

    c->tally->token_requests++;
    if (!memmem(body, len, "grant_type=client_credentials", 29)) {
        respond_json_text(req, 400,
                          "{\"error\":\"unsupported_grant_type\",\"error_description\":"
                          "\"grant_type must be client_credentials\"}");
        return;
    }
    respond_json_text(req, 200,
                      "{\"token_type\":\"Bearer\",\"expires_in\":86400,\"ext_expires_in\":86400,"
                      "\"access_token\":\"" CONNECTOR_TOKEN "\"}");
}

/* The connector and the token endpoint share the catch-all POST: told apart by the path. */
static void handle_write(struct http_request *req, void *data)
{
    struct connector *c = data;
    const char *path = http_request_path(req);
    size_t n = strlen(path), suffix = strlen(TOKEN_SUFFIX);

    if (strstr(path, CONV_PREFIX))
        handle_connector(c, req);
    else if (strcmp(http_request_method(req), "POST") == 0 && n > suffix &&
             strcmp(path + n - suffix, TOKEN_SUFFIX) == 0)
        handle_token(c, req);
    else
        http_request_respond_error(req, 404, "not_found", "no such route in digest-bench", NULL, 0);
}

/* The documents are built once at start; every fetch gets the same bytes. */
static void handle_openid(struct http_request *req, void *data)
{
    respond_json_text(req, 200, ((struct connector *)data)->openid_json);
}

static void handle_keys(struct http_request *req, void *data)
{
    respond_json_text(req, 200, ((struct connector *)data)->keys_json);
}

static void handle_healthz(struct http_request *req, void *data)
{
    respond_json_text(req, 200, "{\"status\":\"ok\"}");
}

static char *json_take(struct json_object *o)
{
    char *s = xstrdup(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));

    json_object_put(o);
    return s;
}

/* The key set and metadata as login.botframework.com publishes them, for our key. */
static int build_documents(struct connector *c, EVP_PKEY *key, const char *kid)
{
    static const char *const endorsements[] = {"msteams"};
    struct json_object *jwk, *keys, *meta, *algs;
    char jwks_uri[160];

    if (jwt_jwk_from_key(key, kid, endorsements, 1, &jwk) != 0)
        return DG_ERR_INVALID;
    keys = json_object_new_object();
    json_object_object_add(keys, "keys", json_object_new_array());
    json_object_array_add(json_object_object_get(keys, "keys"), jwk);
    c->keys_json = json_take(keys);
    snprintf(jwks_uri, sizeof(jwks_uri), "%s/v1/.well-known/keys", c->url);
    meta = json_object_new_object();
    algs = json_object_new_array();
    json_object_array_add(algs, json_object_new_string("RS256"));
    json_object_object_add(meta, "issuer", json_object_new_string("https://api.botframework.com"));
    json_object_object_add(meta, "jwks_uri", json_object_new_string(jwks_uri));
    json_object_object_add(meta, "id_token_signing_alg_values_supported", algs);
    c->openid_json = json_take(meta);
    return 0;
}

/* Catch-all POST and PUT: connector paths carry a prefix (…/amer/v3/…) of the bot's choosing. */
static void routes(struct connector *c)
{
    http_server_route(c->http, "GET", "/healthz", "healthz", handle_healthz, c);
    http_server_route(c->http, "GET", "/v1/.well-known/openidconfiguration", "openid",
                      handle_openid, c);
    http_server_route(c->http, "GET", "/v1/.well-known/keys", "keys", handle_keys, c);
    http_server_route(c->http, "POST", "/*", "write", handle_write, c);
    http_server_route(c->http, "PUT", "/*", "write", handle_write, c);
}

struct connector *connector_start(uv_loop_t *loop, const char *host, int port, EVP_PKEY *key,
                                  const char *kid, struct tally *tally)
{
    const struct http_server_limits limits = {
        .max_header_bytes = 32 * 1024,
        .max_body_bytes = BODY_MAX,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 600000,
        .max_connections = 60000,
    };
    struct connector *c = xcalloc(1, sizeof(*c));
    bool v6 = strchr(host, ':') != NULL;
    int err;

    c->tally = tally;
    c->http = http_server_create(loop, &limits, NULL);
    routes(c);
    err = http_server_listen(c->http, host, port);
    if (err) {
        log_error("--connector-listen: cannot listen on %s:%d: %s", host, port, uv_strerror(err));
        goto fail;
    }
    snprintf(c->url, sizeof(c->url), "http://%s%s%s:%d", v6 ? "[" : "",
             strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1"
             : strcmp(host, "::") == 0    ? "::1"
                                          : host,
             v6 ? "]" : "", http_server_port(c->http));
    if (build_documents(c, key, kid) == 0)
        return c;
    log_error("cannot publish the signing key");
fail:
    connector_stop(c, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    connector_free(c);
    return NULL;
}

const char *connector_url(const struct connector *c)
{
    return c->url;
}

/* The listener and every connection are closed: tell the owner. */
static void on_stopped(struct http_server *srv, void *data)
{
    struct connector *c = data;

    if (c->stopped)
        c->stopped(c->stopped_data);
}

void connector_stop(struct connector *c, void (*cb)(void *data), void *data)
{
    c->stopped = cb;
    c->stopped_data = data;
    http_server_stop(c->http, on_stopped, c);
}

void connector_free(struct connector *c)
{
    if (!c)
        return;
    http_server_free(c->http);
    xfree(c->openid_json);
    xfree(c->keys_json);
    xfree(c);
}
