/*
 * serve.c: `digest-stub serve` (SPEC §9). One libuv loop and digestd's
 * own HTTP server play the digest upstream, the Bot Framework token
 * endpoint, its OpenID metadata and keys, and the connector. Every slow or
 * hung answer waits on a uv timer or in a list, never by blocking.
 *
 * Routes (JSON bodies; errors are {"error":{"code","message"}}):
 *   GET  /healthz                     {"status":"ok"}
 *   GET  /api/talentwell/digest?audience=X
 *        after --upstream-delay: 200 {"audience","generated_at","items":[{"name",
 *        "title","company","location","summary","url"}…]} (same audience+seed, same
 *        items), 500 at --upstream-failure-rate, 400 without an audience
 *   POST /{tenant}/oauth2/v2.0/token  (any tenant; form body) needs grant_type=
 *        client_credentials, client_id=--app-id, a client_secret and scope=
 *        https://api.botframework.com/.default, else 400/401 in Entra's shape
 *        {"error","error_description"}; 200 {"token_type":"Bearer","expires_in":S,
 *        "ext_expires_in":S,"access_token":"stub-token-<n>"}
 *   GET  /v1/.well-known/openidconfiguration  {"issuer":"https://api.botframework.com",
 *        "jwks_uri":"http://H:P/v1/.well-known/keys",…}
 *   GET  /v1/.well-known/keys         {"keys":[{"kty":"RSA","use":"sig","kid","n","e",
 *        "endorsements":["msteams"]}]} (--endorsements)
 *   POST|PUT [/prefix]/v3/conversations/{id}[/activities[/{activityId}]]
 *        the connector: recorded, one stdout line, then 200 {"id":"stub-activity-<n>"}
 *        (PUT: {"id":"<activityId>"}); 401 for a token we did not issue or that
 *        expired (unless --connector-auth off); 404 for other paths below it
 *   POST /stub/inject  {"target":"connector"|"upstream"|"token","status":429,
 *        "retry_after":1,"count":N,"delay_ms":D,"hang":true}: the next N requests
 *        of that target get that status (with Retry-After), after that delay, or
 *        never an answer; rules queue in order. DELETE /stub/inject drops them.
 *   GET  /stub/outbox[?since=SEQ][&brief=1]  [{"seq","received_ms","method","path" (raw),
 *        "kind" (reply|send|update|other),"conversation_id" (decoded),"activity_id",
 *        "authorization","status" (0 = hung),"response_id","card","request_id",
 *        "body" (the JSON sent, or its text when not JSON)}…] (brief: seq, received_ms,
 *        kind, status, card, request_id only); DELETE clears it
 *   GET  /stub/stats  {"token_requests","tokens_issued","upstream_requests",
 *        "connector_requests","keys_requests","outbox","pending","injections","last_token_tenant"}
 * Every request to a target counts, injected or refused ones included. The
 * catch-all POST/PUT routes make an unknown GET path answer 405, not 404.
 *
 * stdout: line 1 "digest-stub listening on http://H:P", then one line per
 * connector message:
 *   connector: POST reply conv=a:17I0kl9EkpE1O9PH5TWrzrLN… activity=1485983408511
 *   card=ack requestId=0d9f… status=200        (one line; status=hang when hung)
 */
#include "serve.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <json-c/json.h>

#include "core/clock.h"
#include "http/http_server.h"
#include "teams/jwt_sign.h"
#include "core/list.h"
#include "core/log.h"
#include "content.h"
#include "inject.h"
#include "teams/devkey.h"
#include "outbox.h"

#define BODY_MAX (4u << 20) /* a result card is far below; /stub/inject is tiny */
#define FIELD_MAX 4096      /* one decoded path segment or form value */
#define TOKEN_PREFIX "stub-token-"
#define BOT_SCOPE "https://api.botframework.com/.default"

/* A response decided when the request arrived, maybe sent later. */
struct reply {
    int status;
    char *body; /* owned JSON text */
    size_t len;
    int64_t retry_after_s; /* -1: no header */
};

/* A request whose answer waits on its timer (a delay) or forever (a hang). */
struct pending {
    uv_timer_t timer;
    struct stub *stub;
    struct http_request *req;
    struct reply reply;
    struct list_node node; /* stub->pending */
};

struct stub {
    uv_loop_t *loop;
    const struct stub_opts *opt;
    struct http_server *http;
    EVP_PKEY *key;
    char kid[JWT_KID_LEN + 1];
    char base_url[96];
    char *keys_json, *openid_json;
    uint64_t rng;
    struct stub_rules rules;
    uint64_t requests[STUB_TARGET_COUNT];
    uint64_t *token_expiry_ms; /* by token number - 1, monotonic ms */
    size_t n_tokens, token_cap;
    uint64_t n_activities;
    uint64_t n_keys_requests; /* GET of the JWKS: digestd's key (re)fetches */
    char last_tenant[128];
    struct stub_outbox outbox;
    struct list_node pending; /* struct pending, newest first */
    size_t n_pending;
    uv_signal_t sigterm, sigint;
    bool stopping;
};

/* ------------------------------------------------------------ JSON helpers */

static char *json_text(struct json_object *o, size_t *len)
{
    const char *t = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
    return xstrndup(t, *len);
}

/* Fills r with status and o's text; takes o. */
static void reply_json(struct reply *r, int status, struct json_object *o)
{
    r->status = status;
    r->retry_after_s = -1;
    r->body = json_text(o, &r->len);
    json_object_put(o);
}

static struct json_object *error_json(const char *code, const char *message)
{
    struct json_object *o = json_object_new_object(), *e = json_object_new_object();

    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(message));
    json_object_object_add(o, "error", e);
    return o;
}

static void reply_error(struct reply *r, int status, const char *code, const char *message)
{
    reply_json(r, status, error_json(code, message));
}

/* Answers now with o (taken). */
static void respond_json(struct http_request *req, int status, struct json_object *o)
{
    size_t len;
    const char *t = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    http_request_respond(req, status, "application/json", t, len, NULL, 0);
    json_object_put(o);
}

static struct json_object *string_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

/* ------------------------------------------------------ answering, maybe late */

static void send_reply(struct http_request *req, const struct reply *r)
{
    char ra[24];
    struct http_header h = {"Retry-After", ra};
    size_t n = 0;

    if (r->retry_after_s >= 0) {
        snprintf(ra, sizeof(ra), "%" PRId64, r->retry_after_s);
        n = 1;
    }
    http_request_respond(req, r->status, r->len ? "application/json" : NULL, r->body, r->len,
                         n ? &h : NULL, n);
}

static void pending_unlink(struct stub *s, struct pending *p)
{
    list_remove(&p->node);
    s->n_pending--;
}

static void on_pending_closed(uv_handle_t *h)
{
    struct pending *p = container_of((uv_timer_t *)h, struct pending, timer);

    xfree(p->reply.body);
    xfree(p);
}

/* Sends the stored answer and lets the timer close (the pending frees then). */
static void pending_finish(struct pending *p)
{
    pending_unlink(p->stub, p);
    send_reply(p->req, &p->reply);
    uv_close((uv_handle_t *)&p->timer, on_pending_closed);
}

static void on_pending_due(uv_timer_t *t)
{
    pending_finish(container_of(t, struct pending, timer));
}

/*
 * Sends r now, after delay_ms, or (hang) only at shutdown, when r says 503.
 * Takes r's body. While stopping nothing waits, so shutdown is never held up.
 */
static void deliver(struct stub *s, struct http_request *req, struct reply *r, uint64_t delay_ms,
                    bool hang)
{
    struct pending *p;

    if (hang) {
        xfree(r->body);
        reply_error(r, 503, "shutting_down", "digest-stub stopped while this request hung");
    }
    if (s->stopping || (!hang && delay_ms == 0)) {
        send_reply(req, r);
        xfree(r->body);
        return;
    }
    p = xcalloc(1, sizeof(*p));
    p->stub = s;
    p->req = req;
    p->reply = *r;
    list_insert_head(&s->pending, &p->node);
    s->n_pending++;
    uv_timer_init(s->loop, &p->timer);
    if (!hang)
        uv_timer_start(&p->timer, on_pending_due, delay_ms, 0);
}

/* ----------------------------------------------------------------- injection */

/*
 * Applies an injected rule: a status replaces the answer, a delay the usual
 * delay. Returns true when the rule decided the answer (status or hang).
 */
static bool apply_rule(const struct stub_rule *rule, struct reply *r, uint64_t *delay, bool *hang)
{
    if (rule->delay_ms >= 0)
        *delay = (uint64_t)rule->delay_ms;
    *hang = rule->hang;
    if (rule->status) {
        reply_error(r, rule->status, "injected", "failure injected through /stub/inject");
        r->retry_after_s = rule->retry_after_s;
    }
    return rule->status != 0 || rule->hang;
}

/* Takes the target's next injected answer, if any; true when it decided r. */
static bool injected(struct stub *s, enum stub_target t, struct reply *r, uint64_t *delay,
                     bool *hang)
{
    struct stub_rule rule;

    return stub_rules_take(&s->rules, t, &rule) && apply_rule(&rule, r, delay, hang);
}

static void handle_inject(struct http_request *req, void *data)
{
    struct stub *s = data;
    size_t len;
    const char *body = http_request_body(req, &len), *bad;
    enum stub_target t = STUB_TARGET_CONNECTOR;
    struct stub_rule r;
    struct json_object *res;
    char msg[128];

    bad = stub_rule_parse(body, len, &t, &r);
    if (bad) {
        snprintf(msg, sizeof(msg), "invalid injection: %s", bad);
        http_request_respond_error(req, 400, "bad_request", msg, NULL, 0);
        return;
    }
    stub_rules_add(&s->rules, t, &r);
    log_info("inject: next %" PRIu64 " %s request(s): status %d, delay %" PRId64 " ms%s",
             r.remaining, stub_target_name(t), r.status, r.delay_ms, r.hang ? ", hang" : "");
    res = json_object_new_object();
    json_object_object_add(res, "target", json_object_new_string(stub_target_name(t)));
    json_object_object_add(res, "count", json_object_new_int64((int64_t)r.remaining));
    json_object_object_add(res, "injections",
                           json_object_new_int64((int64_t)stub_rules_count(&s->rules)));
    respond_json(req, 200, res);
}

static void handle_inject_clear(struct http_request *req, void *data)
{
    struct stub *s = data;
    struct json_object *res = json_object_new_object();

    json_object_object_add(res, "cleared",
                           json_object_new_int64((int64_t)stub_rules_count(&s->rules)));
    stub_rules_clear(&s->rules);
    respond_json(req, 200, res);
}

/* ------------------------------------------------------------------ upstream */

static uint64_t upstream_delay(struct stub *s)
{
    uint64_t span = s->opt->delay_max_ms - s->opt->delay_min_ms;

    if (span == 0)
        return s->opt->delay_min_ms;
    return s->opt->delay_min_ms + stub_rand_next(&s->rng) % (span + 1);
}

static bool upstream_fails(struct stub *s)
{
    /* 53 random bits as a double in [0, 1). */
    double x = (double)(stub_rand_next(&s->rng) >> 11) * (1.0 / 9007199254740992.0);

    return s->opt->failure_rate > 0 && x < s->opt->failure_rate;
}

static void iso_now(char *out, size_t size)
{
    uint64_t ms = clock_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The digest reply for a valid audience. */
static void reply_digest(struct stub *s, const char *audience, struct reply *r)
{
    struct buf b;
    char now[32];

    iso_now(now, sizeof(now));
    buf_init(&b, BODY_MAX);
    if (stub_digest_json(audience, s->opt->seed, s->opt->items, now, &b) != 0) {
        buf_free(&b);
        reply_error(r, 500, "internal", "digest too large");
        return;
    }
    r->status = 200;
    r->retry_after_s = -1;
    r->len = b.len;
    r->body = buf_take(&b);
}

static void handle_upstream(struct http_request *req, void *data)
{
    struct stub *s = data;
    const char *q = http_request_query(req);
    struct reply r = {0};
    uint64_t delay = upstream_delay(s);
    bool hang = false;
    struct buf aud;

    s->requests[STUB_TARGET_UPSTREAM]++;
    buf_init(&aud, FIELD_MAX);
    if (injected(s, STUB_TARGET_UPSTREAM, &r, &delay, &hang))
        log_debug("upstream: answered by an injection");
    else if (stub_form_get(q, strlen(q), "audience", &aud) != 0 || aud.len == 0 ||
             strlen(buf_cstr(&aud)) != aud.len)
        reply_error(&r, 400, "bad_request", "audience query parameter required");
    else if (upstream_fails(s))
        reply_error(&r, 500, "upstream_failure", "simulated failure (--upstream-failure-rate)");
    else
        reply_digest(s, buf_cstr(&aud), &r);
    log_info("upstream: audience=%s status=%d delay=%" PRIu64 "ms%s", buf_cstr(&aud), r.status,
             delay, hang ? " hang" : "");
    buf_free(&aud);
    deliver(s, req, &r, delay, hang);
}

/* --------------------------------------------------------------------- token */

/* Entra ID's error shape: {"error":code,"error_description":text}. */
static void reply_entra_error(struct reply *r, int status, const char *code, const char *text)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "error", json_object_new_string(code));
    json_object_object_add(o, "error_description", json_object_new_string(text));
    reply_json(r, status, o);
}

/* True when form's key decodes to exactly want (or, with want NULL, is non-empty). */
static bool form_is(const char *form, size_t len, const char *key, const char *want)
{
    struct buf v;
    bool ok;

    buf_init(&v, FIELD_MAX);
    ok = stub_form_get(form, len, key, &v) == 0 &&
         (want ? strcmp(buf_cstr(&v), want) == 0 : v.len > 0);
    buf_free(&v);
    return ok;
}

static void issue_token(struct stub *s, struct reply *r)
{
    struct json_object *o = json_object_new_object();
    int64_t ttl_s = (int64_t)(s->opt->token_ttl_ms / 1000);
    char tok[48];

    if (s->n_tokens == s->token_cap) {
        s->token_cap = s->token_cap ? 2 * s->token_cap : 16;
        s->token_expiry_ms = xrealloc(s->token_expiry_ms, s->token_cap * sizeof(uint64_t));
    }
    s->token_expiry_ms[s->n_tokens++] = clock_mono_ns() / 1000000 + s->opt->token_ttl_ms;
    snprintf(tok, sizeof(tok), TOKEN_PREFIX "%zu", s->n_tokens);
    json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
    json_object_object_add(o, "expires_in", json_object_new_int64(ttl_s));
    json_object_object_add(o, "ext_expires_in", json_object_new_int64(ttl_s));
    json_object_object_add(o, "access_token", json_object_new_string(tok));
    reply_json(r, 200, o);
}

/* The client-credentials checks Entra ID makes, in its order. */
static void reply_token(struct stub *s, struct http_request *req, struct reply *r)
{
    size_t len;
    const char *form = http_request_body(req, &len);
    char msg[320];

    if (!form_is(form, len, "grant_type", "client_credentials")) {
        reply_entra_error(r, 400, "unsupported_grant_type",
                          "AADSTS70003: grant_type must be client_credentials");
    } else if (!form_is(form, len, "client_id", s->opt->app_id)) {
        snprintf(msg, sizeof(msg),
                 "AADSTS700016: Application with identifier in client_id "
                 "was not found (digest-stub expects '%s')",
                 s->opt->app_id);
        reply_entra_error(r, 400, "unauthorized_client", msg);
    } else if (!form_is(form, len, "client_secret", NULL)) {
        reply_entra_error(r, 401, "invalid_client",
                          "AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is "
                          "required for the 'client_credentials' grant type");
    } else if (!form_is(form, len, "scope", BOT_SCOPE)) {
        reply_entra_error(r, 400, "invalid_scope", "AADSTS70011: scope must be " BOT_SCOPE);
    } else {
        issue_token(s, r);
    }
}

static void handle_token(struct stub *s, struct http_request *req, const char *tenant,
                         size_t tenant_len)
{
    struct reply r = {0};
    uint64_t delay = 0;
    bool hang = false;

    s->requests[STUB_TARGET_TOKEN]++;
    snprintf(s->last_tenant, sizeof(s->last_tenant), "%.*s", (int)tenant_len, tenant);
    if (!injected(s, STUB_TARGET_TOKEN, &r, &delay, &hang))
        reply_token(s, req, &r);
    log_info("token: tenant=%s status=%d%s", s->last_tenant, r.status, hang ? " hang" : "");
    deliver(s, req, &r, delay, hang);
}

/* ----------------------------------------------------------------- connector */

/* True when auth is "Bearer stub-token-<n>" for a token issued and not expired. */
static bool token_valid(const struct stub *s, const char *auth)
{
    static const char want[] = "Bearer " TOKEN_PREFIX;
    char *end;
    unsigned long long n;

    if (!auth || strncmp(auth, want, sizeof(want) - 1) != 0)
        return false;
    auth += sizeof(want) - 1;
    if (*auth < '1' || *auth > '9')
        return false;
    n = strtoull(auth, &end, 10);
    if (*end || n > s->n_tokens)
        return false;
    return clock_mono_ns() / 1000000 < s->token_expiry_ms[n - 1];
}

static void print_record(const struct stub_record *rec)
{
    struct buf line;

    buf_init(&line, 1024);
    if (stub_record_line(rec, &line) == 0)
        printf("%s\n", buf_cstr(&line));
    buf_free(&line);
}

/* The normal connector answer: auth, then the path, then {"id":…}. */
static void reply_connector(struct stub *s, const struct stub_record *rec, struct reply *r,
                            char **response_id)
{
    struct json_object *o;
    char id[48];

    if (s->opt->connector_auth && !token_valid(s, rec->auth)) {
        o = json_object_new_object();
        json_object_object_add(
            o, "message",
            json_object_new_string("Authorization has been denied for this request."));
        reply_json(r, 401, o);
        return;
    }
    if (!rec->conv || strcmp(rec->kind, "other") == 0) {
        reply_error(r, 404, "NotFound", "no such connector operation in digest-stub");
        return;
    }
    if (strcmp(rec->kind, "update") == 0) {
        *response_id = xstrdup(rec->activity_id);
    } else {
        snprintf(id, sizeof(id), "stub-activity-%" PRIu64, ++s->n_activities);
        *response_id = xstrdup(id);
    }
    o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(*response_id));
    reply_json(r, 200, o);
}

static void handle_connector(struct stub *s, struct http_request *req)
{
    const char *auth = http_request_header(req, "Authorization");
    struct stub_record rec = {0};
    struct json_object *body;
    struct reply r = {0};
    uint64_t delay = 0;
    bool hang = false;
    size_t len;
    const char *text = http_request_body(req, &len);

    s->requests[STUB_TARGET_CONNECTOR]++;
    rec.received_ms = clock_wall_ms();
    stub_record_parse_path(&rec, http_request_method(req), http_request_path(req));
    rec.path = xstrdup(http_request_path(req));
    rec.auth = auth ? xstrdup(auth) : NULL;
    rec.body = xstrndup(text, len);
    body = stub_json_parse(text, len);
    card_describe(body, &rec.card);
    json_object_put(body);
    if (!injected(s, STUB_TARGET_CONNECTOR, &r, &delay, &hang))
        reply_connector(s, &rec, &r, &rec.response_id);
    rec.status = hang ? 0 : r.status;
    print_record(&rec);
    stub_outbox_add(&s->outbox, &rec);
    deliver(s, req, &r, delay, hang);
}

/* POST and PUT outside the fixed routes: the connector, or (POST) a token endpoint. */
static void handle_other_write(struct http_request *req, void *data)
{
    static const char token_suffix[] = "/oauth2/v2.0/token";
    struct stub *s = data;
    const char *path = http_request_path(req), *tenant = path + 1;
    size_t len = strlen(path), slen = sizeof(token_suffix) - 1;

    if (strstr(path, "/v3/conversations/")) {
        handle_connector(s, req);
        return;
    }
    if (strcmp(http_request_method(req), "POST") == 0 && len > slen + 1 &&
        strcmp(path + len - slen, token_suffix) == 0 &&
        memchr(tenant, '/', len - slen - 1) == NULL) {
        handle_token(s, req, tenant, len - slen - 1);
        return;
    }
    http_request_respond_error(req, 404, "not_found", "no such route in digest-stub", NULL, 0);
}

/* ---------------------------------------------------------- outbox and stats */

static void handle_outbox(struct http_request *req, void *data)
{
    struct stub *s = data;
    const char *q = http_request_query(req);
    unsigned long long since = 0;
    char *end = NULL;
    struct buf v;
    bool bad = false, brief;

    buf_init(&v, 32);
    if (stub_form_get(q, strlen(q), "since", &v) == 0) {
        since = strtoull(buf_cstr(&v), &end, 10);
        bad = v.len == 0 || *end || v.data[0] < '0' || v.data[0] > '9';
    }
    buf_reset(&v);
    brief = stub_form_get(q, strlen(q), "brief", &v) == 0 && strcmp(buf_cstr(&v), "1") == 0;
    buf_free(&v);
    if (bad)
        http_request_respond_error(req, 400, "bad_request", "since must be a number", NULL, 0);
    else
        respond_json(req, 200, stub_outbox_json(&s->outbox, since, brief));
}

static void handle_outbox_clear(struct http_request *req, void *data)
{
    struct stub *s = data;
    struct json_object *res = json_object_new_object();

    json_object_object_add(res, "cleared",
                           json_object_new_int64((int64_t)stub_outbox_clear(&s->outbox)));
    respond_json(req, 200, res);
}

static void handle_stats(struct http_request *req, void *data)
{
    struct stub *s = data;
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "token_requests",
                           json_object_new_int64((int64_t)s->requests[STUB_TARGET_TOKEN]));
    json_object_object_add(o, "tokens_issued", json_object_new_int64((int64_t)s->n_tokens));
    json_object_object_add(o, "upstream_requests",
                           json_object_new_int64((int64_t)s->requests[STUB_TARGET_UPSTREAM]));
    json_object_object_add(o, "connector_requests",
                           json_object_new_int64((int64_t)s->requests[STUB_TARGET_CONNECTOR]));
    json_object_object_add(o, "keys_requests", json_object_new_int64((int64_t)s->n_keys_requests));
    json_object_object_add(o, "outbox", json_object_new_int64((int64_t)s->outbox.len));
    json_object_object_add(o, "pending", json_object_new_int64((int64_t)s->n_pending));
    json_object_object_add(o, "injections",
                           json_object_new_int64((int64_t)stub_rules_count(&s->rules)));
    json_object_object_add(o, "last_token_tenant",
                           string_or_null(s->last_tenant[0] ? s->last_tenant : NULL));
    respond_json(req, 200, o);
}

/* ------------------------------------------------------------ keys, metadata */

static void respond_text_json(struct http_request *req, const char *text)
{
    http_request_respond(req, 200, "application/json", text, strlen(text), NULL, 0);
}

static void handle_openid(struct http_request *req, void *data)
{
    respond_text_json(req, ((struct stub *)data)->openid_json);
}

static void handle_keys(struct http_request *req, void *data)
{
    ((struct stub *)data)->n_keys_requests++;
    respond_text_json(req, ((struct stub *)data)->keys_json);
}

static void handle_healthz(struct http_request *req, void *data)
{
    static const char body[] = "{\"status\":\"ok\"}";

    http_request_respond(req, 200, "application/json", body, sizeof(body) - 1, NULL, 0);
}

/* Builds the JWKS and OpenID documents once the address is known. */
static int build_documents(struct stub *s)
{
    const struct stub_opts *o = s->opt;
    struct json_object *jwk, *keys, *meta, *algs, *auth;
    char uri[160];
    size_t len;

    /* --endorsements: NULL leaves the property out, an empty list publishes []. */
    if (jwt_jwk_from_key(s->key, s->kid, o->has_endorsements ? o->endorsements : NULL,
                         o->n_endorsements, &jwk) != 0)
        return DG_ERR_INVALID;
    keys = json_object_new_object();
    json_object_object_add(keys, "keys", json_object_new_array());
    json_object_array_add(json_object_object_get(keys, "keys"), jwk);
    s->keys_json = json_text(keys, &len);
    json_object_put(keys);

    snprintf(uri, sizeof(uri), "%s/v1/.well-known/keys", s->base_url);
    meta = json_object_new_object();
    algs = json_object_new_array();
    auth = json_object_new_array();
    json_object_array_add(algs, json_object_new_string("RS256"));
    json_object_array_add(auth, json_object_new_string("private_key_jwt"));
    json_object_object_add(meta, "issuer", json_object_new_string("https://api.botframework.com"));
    json_object_object_add(meta, "jwks_uri", json_object_new_string(uri));
    json_object_object_add(meta, "id_token_signing_alg_values_supported", algs);
    json_object_object_add(meta, "token_endpoint_auth_methods_supported", auth);
    s->openid_json = json_text(meta, &len);
    json_object_put(meta);
    return 0;
}

/* ------------------------------------------------------------------ lifecycle */

static void register_routes(struct stub *s)
{
    struct http_server *h = s->http;

    http_server_route(h, "GET", "/healthz", "healthz", handle_healthz, s);
    http_server_route(h, "GET", "/api/talentwell/digest", "upstream", handle_upstream, s);
    http_server_route(h, "GET", "/v1/.well-known/openidconfiguration", "openid", handle_openid, s);
    http_server_route(h, "GET", "/v1/.well-known/keys", "keys", handle_keys, s);
    http_server_route(h, "POST", "/stub/inject", "inject", handle_inject, s);
    http_server_route(h, "DELETE", "/stub/inject", "inject", handle_inject_clear, s);
    http_server_route(h, "GET", "/stub/outbox", "outbox", handle_outbox, s);
    http_server_route(h, "DELETE", "/stub/outbox", "outbox", handle_outbox_clear, s);
    http_server_route(h, "GET", "/stub/stats", "stats", handle_stats, s);
    /* Last: any tenant's token endpoint, and connector paths under any prefix. */
    http_server_route(h, "POST", "/*", "write", handle_other_write, s);
    http_server_route(h, "PUT", "/*", "write", handle_other_write, s);
}

static void close_noop(uv_handle_t *h)
{
}

static void on_http_closed(struct http_server *srv, void *data)
{
    struct stub *s = data;

    uv_close((uv_handle_t *)&s->sigterm, close_noop);
    uv_close((uv_handle_t *)&s->sigint, close_noop);
}

/* Answers everything still waiting, then closes the server (STYLE rule 20). */
static void stub_stop(struct stub *s)
{
    struct list_node *n;

    if (s->stopping)
        return;
    s->stopping = true;
    uv_signal_stop(&s->sigterm);
    uv_signal_stop(&s->sigint);
    /* Delayed answers go out early; hung requests get the 503 deliver() stored. */
    while ((n = list_first(&s->pending))) {
        struct pending *p = container_of(n, struct pending, node);

        uv_timer_stop(&p->timer);
        pending_finish(p);
    }
    http_server_stop(s->http, on_http_closed, s);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct stub *s = sig->data;

    log_info("received %s, stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    stub_stop(s);
}

/* 10,000 slow upstream fetches need as many sockets: take the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int stub_start(struct stub *s)
{
    const struct stub_opts *o = s->opt;
    const struct http_server_limits limits = {
        .max_header_bytes = 32 * 1024,
        .max_body_bytes = BODY_MAX,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 120000,
        .max_connections = 60000,
    };
    bool v6 = strchr(o->listen_host, ':') != NULL;
    int err;

    s->http = http_server_create(s->loop, &limits, NULL);
    register_routes(s);
    err = http_server_listen(s->http, o->listen_host, o->listen_port);
    if (err) {
        log_error("--listen: cannot listen on %s:%d: %s", o->listen_host, o->listen_port,
                  uv_strerror(err));
        return err;
    }
    /* URLs name a reachable address even when listening on any. */
    snprintf(s->base_url, sizeof(s->base_url), "http://%s%s%s:%d", v6 ? "[" : "",
             strcmp(o->listen_host, "0.0.0.0") == 0 ? "127.0.0.1"
             : strcmp(o->listen_host, "::") == 0    ? "::1"
                                                    : o->listen_host,
             v6 ? "]" : "", http_server_port(s->http));
    err = build_documents(s);
    if (err)
        return err;
    printf("digest-stub listening on %s\n", s->base_url);
    fflush(stdout);
    log_info("digest-stub %s: app id %s, key %s (kid %s), upstream delay %" PRIu64 "-%" PRIu64
             " ms, failure rate %g",
             DIGESTD_VERSION, o->app_id, o->key_dir, s->kid, o->delay_min_ms, o->delay_max_ms,
             o->failure_rate);
    return 0;
}

static void stub_free(struct stub *s)
{
    if (s->http)
        http_server_free(s->http);
    stub_outbox_free(&s->outbox);
    stub_rules_clear(&s->rules);
    xfree(s->token_expiry_ms);
    xfree(s->keys_json);
    xfree(s->openid_json);
    EVP_PKEY_free(s->key);
}

int stub_serve_run(const struct stub_opts *o)
{
    struct stub s = {0};
    int rc = 0;

    s.opt = o;
    list_init(&s.pending);
    stub_outbox_init(&s.outbox, o->outbox_max);
    s.rng = o->seed ^ 0x5851f42d4c957f2dull;
    if (stub_key_load(o->key_dir, &s.key, s.kid) != 0) {
        stub_outbox_free(&s.outbox);
        return 1;
    }
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    s.loop = uv_default_loop();
    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_init(s.loop, &s.sigint);
    s.sigterm.data = &s;
    s.sigint.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    if (stub_start(&s) != 0) {
        rc = 1;
        stub_stop(&s);
    }
    uv_run(s.loop, UV_RUN_DEFAULT);
    stub_free(&s);
    if (uv_loop_close(s.loop) != 0) {
        log_error("loop did not close cleanly");
        rc = 1;
    }
    return rc;
}
