/*
 * connector.c: Bot connector calls with the bot token, retries and
 * per-conversation pacing. One call goes through these states, one attempt
 * at a time:
 *
 *   SCHEDULED (its timer: the first turn, a backoff) → WAIT_TOKEN (queued
 *   behind the one token fetch, if the cached token is not usable) →
 *   WAIT_PACE (queued on its conversation until the 1 s / 30 s windows have
 *   room) → IN_FLIGHT (the HTTP request) → DONE, or SCHEDULED again.
 *
 * The token is taken before the pacing slot so that the send time recorded
 * for pacing is the time the request really leaves: a slot granted before a
 * slow token fetch would let later sends bunch up past Teams' limits.
 */
#include "teams/connector.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/hash.h"
#include "core/hash_table.h"
#include "teams/card.h"
#include "config.h"
#include "http/http_client.h"
#include "core/json_scan.h"
#include "core/json_strict.h"
#include "core/list.h"
#include "core/log.h"
#include "metrics.h"
#include "teams/service_url.h"
#include "core/url.h"

#define TOKEN_SCOPE "https://api.botframework.com/.default"
#define TOKEN_EARLY_S 300      /* refresh this long before expiry (SDKs do the same) */
#define TOKEN_SHORT_LIFE_S 600 /* a token living this long or less: use half its life */
#define PACE_WINDOW_MS 1000
#define PACE_LONG_WINDOW_MS 30000
#define CONV_BUCKETS_MIN 64
#define PACE_REFUSAL_LOG_MS 10000 /* a flooded conversation's warning: once per this */

enum call_state {
    CALL_SCHEDULED = 0, /* timer armed: the first turn or a backoff */
    CALL_WAIT_TOKEN,    /* in c->wait_head…wait_tail */
    CALL_WAIT_PACE,     /* in conv->q_head…q_tail */
    CALL_IN_FLIGHT,     /* hc is the request with the connector */
    CALL_DONE,          /* callback ran; the timer is closing */
};

struct conv;

/*
 * The public handle (struct connector_call, opaque in connector.h) is a
 * struct call: never defined, only converted where it crosses the API.
 */
struct call {
    struct connector *c;
    struct list_node node;  /* c->calls: every call whose callback has not run */
    struct call *next_wait; /* the token queue or the conversation queue */
    struct conv *conv;      /* while CALL_WAIT_PACE */
    uv_timer_t timer;
    enum call_state state;
    enum connector_op op;
    char *url;
    char *key; /* pacing key: serviceUrl "\n" conversation id */
    char *body;
    size_t body_len;
    char *request_id; /* "" when none */
    char *auth;       /* "Authorization: Bearer …" for this attempt; never logged */
    uint64_t token_gen;
    struct http_client_call *hc;
    connector_done_cb cb;
    void *data;
    unsigned max_attempts;
    unsigned attempts;    /* attempts begun, the re-authenticated one included */
    uint64_t retry_at_ms; /* loop time the backoff or Retry-After ends, while it runs */
    bool retry_ambiguous;
    bool reauthed;          /* the one 401 → new token → retry has been used */
    bool cancelled;         /* connector_call_cancel while in flight: no retry after it */
    uint64_t hold_until_ms; /* no request leaves at or after this (loop time); 0 = none */
    long last_status;       /* of the last attempt, for a held result */
    int64_t last_retry_after_s;
};

/*
 * Send times kept in the conversation itself. A conversation that has sent
 * this many in the last 30 s moves to a ring of CONNECTOR_PACE_30S; most never
 * do, and a bot with 20,000 conversations in 30 s holds 20,000 of these.
 */
#define CONV_SENT_INLINE 8
_Static_assert(CONNECTOR_PACE_30S <= UINT8_MAX && CONV_SENT_INLINE < CONNECTOR_PACE_30S,
               "a conversation's ring indexes fit its uint8_t fields");

/*
 * Pacing state of one conversation; kept while it has sent in the last 30 s.
 * Send times are the loop's ms truncated to 32 bits: only their ages are
 * read, and none gets near the 49 days of a wrap (each is overwritten
 * within cap sends, and a conversation silent for 30 s is forgotten).
 */
struct conv {
    struct hash_node hnode;       /* c->convs, by key */
    struct list_node lru;         /* c->lru, most recently used first */
    struct call *q_head, *q_tail; /* calls waiting for a slot, FIFO */
    uint64_t last_ms;             /* last send (or creation) */
    uint64_t refused;             /* sends refused since the last warning, not yet said */
    uint64_t refused_log_ms;      /* when that warning went out; 0: none yet */
    uint32_t *sent;               /* a ring of cap send times: inline_sent or owned */
    uint32_t inline_sent[CONV_SENT_INLINE];
    uint8_t cap;        /* CONV_SENT_INLINE, or CONNECTOR_PACE_30S once grown */
    uint8_t n_sent;     /* valid entries, up to cap */
    uint8_t head;       /* where the next send time goes */
    bool pumping;       /* pace_pump is on the stack */
    unsigned n_waiting; /* calls in that queue */
    char key[];         /* pacing key: serviceUrl "\n" conversation id */
};

struct connector {
    uv_loop_t *loop;
    struct http_client *http;
    const struct config *cfg;
    struct metrics *metrics;
    uv_timer_t sweep; /* forgets idle conversations while nothing is sent */

    char *token;                         /* the access token, NULL when none */
    uint64_t token_until_ms;             /* usable before this (loop time) */
    uint64_t token_gen;                  /* bumped by every new token */
    uint64_t token_sent_ms;              /* when the fetch in flight left */
    struct http_client_call *token_call; /* the one fetch in flight, or NULL */
    struct call *wait_head, *wait_tail;  /* calls waiting for that fetch */

    struct list_node calls;
    size_t n_pending;
    size_t open; /* handles not yet closed: every call's timer and sweep */

    struct hash_table convs; /* struct conv by key */
    struct list_node lru;    /* struct conv, most recently used first */

    uint64_t refusal_log_ms; /* PACE_REFUSAL_LOG_MS (a test shortens it) */
    size_t n_refusing;       /* conversations with refusals not yet said */
    uint64_t rng;            /* backoff jitter (backoff.h) */
    bool stopping;
    bool stopped_called;
    connector_stopped_cb stopped_cb;
    void *stopped_data;
};

static const enum metrics_hist connector_hist = METRICS_H_CONNECTOR;

static void on_call_timer(uv_timer_t *t);
static void attempt_failed(struct call *call, int err, long status, int64_t retry_after_s,
                           bool token_error);
static void pace_pump(struct conv *cv);

static uint64_t now_ms(struct connector *c)
{
    /*
     * The loop's cached time lags while callbacks run; a wait computed
     * from it could end early in real time, and Retry-After must never be
     * cut short.
     */
    uv_update_time(c->loop);
    return uv_now(c->loop);
}

static const char *op_name(enum connector_op op)
{
    switch (op) {
    case CONNECTOR_REPLY:
        return "reply";
    case CONNECTOR_UPDATE:
        return "update";
    case CONNECTOR_SEND:
        return "send";
    }
    return "?";
}

/* ---- the call list and finishing ---------------------------------------- */

static void maybe_stopped(struct connector *c)
{
    if (!c->stopping || c->open > 0 || c->stopped_called)
        return;
    c->stopped_called = true;
    if (c->stopped_cb)
        c->stopped_cb(c, c->stopped_data);
}

static void on_call_closed(uv_handle_t *h)
{
    struct call *call = container_of((uv_timer_t *)h, struct call, timer);
    struct connector *c = call->c;

    xfree(call->url);
    xfree(call->key);
    xfree(call->body);
    xfree(call->request_id);
    xfree(call->auth);
    xfree(call);
    c->open--;
    maybe_stopped(c);
}

/*
 * Runs the caller's callback once and retires the call. The call must not
 * sit in any queue any more: it is off the token and pace queues by the
 * time it gets here (popped, or the queue was dropped by connector_stop).
 */
static void call_finish(struct call *call, struct connector_result *res)
{
    struct connector *c = call->c;

    list_remove(&call->node);
    c->n_pending--;
    call->state = CALL_DONE;
    res->attempts = call->attempts;
    if (!res->activity_id)
        res->activity_id = "";
    /* Close first: a callback that stops the connector must find us gone. */
    uv_close((uv_handle_t *)&call->timer, on_call_closed);
    call->cb(res, call->data);
}

static void call_finish_closed(struct call *call)
{
    struct connector_result res = {
        .err = DG_ERR_CLOSED, .outcome = HTTP_OUTCOME_FINAL, .retry_after_s = -1};

    call_finish(call, &res);
}

/* Not sent (again): cancelled, or its hold-until time came first. */
static void call_finish_held(struct call *call, int err)
{
    struct connector_result res = {.err = err,
                                   .status = call->last_status,
                                   .outcome = HTTP_OUTCOME_RETRYABLE,
                                   .retry_after_s = call->last_retry_after_s,
                                   .held = true};

    log_info("connector: %s %s not sent: %s", call->request_id, op_name(call->op),
             err == DG_ERR_CLOSED ? "cancelled" : "its hold-until time has come");
    call_finish(call, &res);
}

/* Whether a request that would leave at now may not (its deadline passed). */
static bool call_past_hold(const struct call *call, uint64_t now)
{
    return call->hold_until_ms && now >= call->hold_until_ms;
}

static void call_schedule(struct call *call, uint64_t delay_ms)
{
    call->state = CALL_SCHEDULED;
    if (delay_ms)
        uv_update_time(call->c->loop);
    uv_timer_start(&call->timer, on_call_timer, delay_ms, 0);
}

/* ---- the token ---------------------------------------------------------- */

/* How long a token is used: until 5 min before expiry, or half a short life. */
static uint64_t token_use_ms(int64_t expires_in_s)
{
    if (expires_in_s <= 0)
        return 0;
    if (expires_in_s > TOKEN_SHORT_LIFE_S)
        return (uint64_t)(expires_in_s - TOKEN_EARLY_S) * 1000;
    return (uint64_t)expires_in_s * 500;
}

/* expires_in is a number in AAD v2 replies; v1 sent it as a string. */
static int64_t parse_expires_in(struct json_object *v)
{
    const char *s;
    char *end;
    long long n;

    if (json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_string))
        return 0;
    s = json_object_get_string(v);
    n = strtoll(s, &end, 10);
    return end != s && *end == '\0' ? (int64_t)n : 0;
}

/*
 * Parses {"access_token":…,"expires_in":…}. The token goes verbatim into a
 * header, so it must be visible ASCII: a CR or LF from a hostile endpoint
 * would otherwise inject headers. A missing expires_in makes a token good
 * only for the calls already waiting for it.
 */
static int token_parse(const char *body, size_t len, char **token, int64_t *expires_in_s)
{
    struct json_object *root, *v;
    const char *s;
    size_t i, n;
    int err = DG_ERR_PROTOCOL;

    if (json_strict_object(body, len, JSON_MAX_DEPTH, false, &root) != 0)
        return DG_ERR_PROTOCOL;
    if (!json_object_object_get_ex(root, "access_token", &v) ||
        !json_object_is_type(v, json_type_string))
        goto out;
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (n == 0 || n > CONNECTOR_MAX_TOKEN_BYTES)
        goto out;
    for (i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            goto out;
    *token = xstrndup(s, n);
    *expires_in_s = json_object_object_get_ex(root, "expires_in", &v) ? parse_expires_in(v) : 0;
    err = 0;
out:
    json_object_put(root);
    return err;
}

static void call_use_token(struct call *call, const char *token, uint64_t gen);

/*
 * Hands the fetch's outcome to every waiter, oldest first. On failure err
 * and status are what http_outcome_classify judges: err 0 with the
 * endpoint's status, or the transport (or parse) error.
 */
static void token_wake(struct connector *c, bool ok, int err, long status, int64_t retry_after_s)
{
    struct call *call;

    /* Pop one at a time: a waiter's callback may stop us and drop the queue. */
    while ((call = c->wait_head)) {
        c->wait_head = call->next_wait;
        if (!c->wait_head)
            c->wait_tail = NULL;
        call->next_wait = NULL;
        if (ok && c->token && !c->stopping)
            call_use_token(call, c->token, c->token_gen);
        else
            attempt_failed(call, err, status, retry_after_s, true);
    }
}

static void on_token(const struct http_client_response *res, void *data)
{
    struct connector *c = data;
    int64_t expires_in_s = 0;
    char *token = NULL;
    int err = res->err;

    c->token_call = NULL;
    if (!err && http_outcome_classify(0, res->status) != HTTP_OUTCOME_OK) {
        log_warn("connector: token request refused: status %ld", res->status);
        token_wake(c, false, 0, res->status, res->retry_after_s);
        return;
    }
    if (!err)
        err = token_parse(buf_cstr(res->body), res->body->len, &token, &expires_in_s);
    if (err) {
        log_warn("connector: token request failed: status %ld, %s", res->status, dg_strerror(err));
        token_wake(c, false, err, res->status, res->retry_after_s);
        return;
    }
    xfree(c->token);
    c->token = token;
    c->token_gen++;
    /* Counted from when the request left: the server's clock started then. */
    c->token_until_ms = c->token_sent_ms + token_use_ms(expires_in_s);
    log_info("connector: new bot token, expires in %" PRId64 " s", expires_in_s);
    token_wake(c, true, 0, res->status, -1);
}

/* The form body of the client-credentials grant (research §4.2). */
static int token_body(const struct config *cfg, struct buf *b)
{
    int err = buf_append_str(b, "grant_type=client_credentials&client_id=");

    if (!err)
        err = url_encode_component(b, cfg->app_id ? cfg->app_id : "");
    if (!err)
        err = buf_append_str(b, "&client_secret=");
    if (!err)
        err = url_encode_component(b, cfg->app_password ? cfg->app_password : "");
    if (!err)
        err = buf_append_str(b, "&scope=");
    if (!err)
        err = url_encode_component(b, TOKEN_SCOPE);
    return err;
}

/* Starts the one token fetch. The body holds the secret: it is never logged. */
static int token_fetch(struct connector *c)
{
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                          "Accept: application/json"};
    struct http_client_request req = {
        .method = "POST",
        .url = c->cfg->token_url,
        .headers = headers,
        .n_headers = ARRAY_SIZE(headers),
        .timeout_ms = c->cfg->connector_timeout_ms,
        .max_response_bytes = CONNECTOR_MAX_RESPONSE_BYTES,
    };
    struct buf body;
    int err;

    buf_init(&body, 4096);
    err = token_body(c->cfg, &body);
    if (err)
        goto out;
    req.body = body.data;
    req.body_len = body.len;
    c->token_sent_ms = now_ms(c);
    err = http_client_send(c->http, &req, on_token, c, &c->token_call);
    if (!err)
        metrics_inc(c->metrics, METRICS_C_TOKEN_REFRESHES);
out:
    /* Wipe the copy of the secret before the memory goes back. */
    if (body.data)
        memset(body.data, 0, body.cap);
    buf_free(&body);
    return err;
}

/* Joins the fetch in flight, or starts one. */
static void token_wait(struct call *call)
{
    struct connector *c = call->c;
    int err;

    call->state = CALL_WAIT_TOKEN;
    if (c->wait_tail)
        c->wait_tail->next_wait = call;
    else
        c->wait_head = call;
    c->wait_tail = call;
    if (c->token_call)
        return;
    err = token_fetch(c);
    if (err)
        token_wake(c, false, err, 0, -1);
}

/*
 * A 401 from the connector: forget the token the call used, unless another
 * call has already replaced it, so that a burst of 401s on one stale token
 * causes one fetch, not one per call.
 */
static void token_invalidate(struct connector *c, uint64_t gen)
{
    if (gen != c->token_gen || !c->token)
        return;
    xfree(c->token);
    c->token = NULL;
}

/* ---- pacing ------------------------------------------------------------- */

static void refusals_say(struct connector *c, struct conv *cv, uint64_t now,
                         const char *request_id);

static void conv_free(struct connector *c, struct conv *cv)
{
    /* The rest of a flood is said before the conversation is forgotten. */
    if (cv->refused)
        refusals_say(c, cv, uv_now(c->loop), NULL);
    hash_table_remove(&c->convs, &cv->hnode);
    list_remove(&cv->lru);
    if (cv->sent != cv->inline_sent)
        xfree(cv->sent);
    xfree(cv);
}

/*
 * Forgets conversations that have not sent for 30 s: their windows are
 * empty, so the state means nothing. The LRU keeps the oldest at the tail,
 * so this stops at the first one still in use: O(1) per call, amortized.
 */
static void conv_evict_idle(struct connector *c, uint64_t now)
{
    struct list_node *n;

    while ((n = list_last(&c->lru))) {
        struct conv *cv = container_of(n, struct conv, lru);

        if (cv->q_head || now - cv->last_ms < PACE_LONG_WINDOW_MS)
            break;
        conv_free(c, cv);
    }
}

static void conv_init(struct conv *cv, uint64_t now)
{
    cv->sent = cv->inline_sent;
    cv->cap = CONV_SENT_INLINE;
    cv->last_ms = now;
}

static struct conv *conv_get(struct connector *c, const char *key, uint64_t now)
{
    uint64_t h = hash_fnv1a(key);
    struct hash_node *n;
    struct conv *cv;
    size_t len;

    for (n = hash_table_find(&c->convs, h); n; n = hash_table_find_next(n)) {
        cv = container_of(n, struct conv, hnode);
        if (strcmp(cv->key, key) == 0)
            return cv;
    }
    len = strlen(key);
    cv = xcalloc(1, sizeof(*cv) + len + 1);
    memcpy(cv->key, key, len + 1);
    conv_init(cv, now);
    hash_table_insert(&c->convs, &cv->hnode, h);
    list_insert_head(&c->lru, &cv->lru);
    return cv;
}

/* How long ago (ms) the k-th most recent send was (1 <= k <= n_sent). */
static uint32_t conv_sent_age(const struct conv *cv, unsigned k, uint64_t now)
{
    unsigned i = cv->head >= k ? cv->head - k : cv->head + cv->cap - k;

    return (uint32_t)now - cv->sent[i];
}

/* When the k-th most recent send leaves a window of w ms: now if it has, or is none. */
static uint64_t window_free_at(const struct conv *cv, unsigned k, uint32_t w, uint64_t now)
{
    uint32_t age;

    if (cv->n_sent < k)
        return now;
    age = conv_sent_age(cv, k, now);
    return age < w ? now + (w - age) : now;
}

/*
 * The earliest time >= now at which one more send keeps both windows. The
 * ring holds every send of the last 30 s (pace_record), so fewer than k
 * entries means fewer than k sends in either window.
 */
static uint64_t pace_slot(const struct conv *cv, uint64_t now)
{
    uint64_t a = window_free_at(cv, CONNECTOR_PACE_1S, PACE_WINDOW_MS, now);
    uint64_t b = window_free_at(cv, CONNECTOR_PACE_30S, PACE_LONG_WINDOW_MS, now);

    return a > b ? a : b;
}

/* The inline ring is full of sends from the last 30 s: the full ring, oldest first. */
static void conv_grow(struct conv *cv)
{
    uint32_t *ring = xmalloc(CONNECTOR_PACE_30S * sizeof(*ring));
    unsigned i;

    for (i = 0; i < cv->cap; i++)
        ring[i] = cv->sent[(cv->head + i) % cv->cap];
    cv->sent = ring;
    cv->head = cv->cap;
    cv->cap = CONNECTOR_PACE_30S;
}

static void pace_record(struct connector *c, struct conv *cv, uint64_t now)
{
    /* Full: the oldest is overwritten only if it is out of the 30 s window. */
    if (cv->n_sent == cv->cap && cv->cap < CONNECTOR_PACE_30S &&
        conv_sent_age(cv, cv->cap, now) < PACE_LONG_WINDOW_MS)
        conv_grow(cv);
    cv->sent[cv->head] = (uint32_t)now;
    cv->head = (uint8_t)(cv->head + 1u == cv->cap ? 0 : cv->head + 1u);
    if (cv->n_sent < cv->cap)
        cv->n_sent++;
    cv->last_ms = now;
    list_remove(&cv->lru);
    list_insert_head(&c->lru, &cv->lru);
}

static void http_dispatch(struct call *call);

/*
 * Sends what the windows allow, in order; arms the head's timer for the
 * rest. Guarded, because a dispatch that fails at once runs a callback that
 * may send to this conversation again.
 */
static void pace_pump(struct conv *cv)
{
    struct call *call;

    if (cv->pumping)
        return;
    cv->pumping = true;
    while ((call = cv->q_head)) {
        struct connector *c = call->c;
        uint64_t now = now_ms(c), at = pace_slot(cv, now);

        if (at > now) {
            uv_timer_start(&call->timer, on_call_timer, at - now, 0);
            break;
        }
        uv_timer_stop(&call->timer);
        cv->q_head = call->next_wait;
        if (!cv->q_head)
            cv->q_tail = NULL;
        cv->n_waiting--;
        call->next_wait = NULL;
        call->conv = NULL;
        if (call_past_hold(call, now)) {
            call_finish_held(call, DG_ERR_TIMEOUT); /* the slot stays free for the next */
            continue;
        }
        pace_record(c, cv, now);
        http_dispatch(call);
    }
    cv->pumping = false;
}

/* The conversation id part of a pacing key (serviceUrl "\n" id), for log lines. */
static const char *conv_id_of(const struct conv *cv)
{
    const char *nl = strchr(cv->key, '\n');

    return nl ? nl + 1 : cv->key;
}

/*
 * The warning of a flooded conversation: the first refusal says that
 * refusing has begun; later lines say how many more were refused since.
 */
static void refusals_say(struct connector *c, struct conv *cv, uint64_t now, const char *request_id)
{
    if (cv->refused_log_ms == 0)
        log_emit(LOG_LEVEL_WARN, request_id,
                 "connector: conversation %.160s is past Teams' pacing limits with %u sends "
                 "waiting: further sends are refused at once (counted in "
                 "digestd_connector_pacing_refused_total; a line every %" PRIu64 " ms at most)",
                 conv_id_of(cv), cv->n_waiting, c->refusal_log_ms);
    else
        log_emit(LOG_LEVEL_WARN, request_id,
                 "connector: conversation %.160s: %" PRIu64 " more sends refused for Teams' "
                 "pacing limits in the last %" PRIu64 " ms (%u waiting)",
                 conv_id_of(cv), cv->refused, now - cv->refused_log_ms, cv->n_waiting);
    cv->refused = 0;
    cv->refused_log_ms = now ? now : 1;
    c->n_refusing--;
}

/*
 * A send refused because its conversation's queue is full. A flood into
 * one conversation must not flood the log as well: one line per
 * conversation per refusal_log_ms, the count in between.
 */
static void pace_refuse(struct connector *c, struct conv *cv, struct call *call, uint64_t now)
{
    struct connector_result res = {.err = DG_ERR_UNAVAILABLE,
                                   .outcome = HTTP_OUTCOME_RETRYABLE,
                                   .retry_after_s = -1,
                                   .paced_out = true};

    metrics_inc(c->metrics, METRICS_C_PACING_REFUSED);
    if (cv->refused++ == 0)
        c->n_refusing++;
    if (!cv->refused_log_ms || now - cv->refused_log_ms >= c->refusal_log_ms)
        refusals_say(c, cv, now, call->request_id[0] ? call->request_id : NULL);
    call_finish(call, &res);
}

/* The sweep says what flooded conversations refused since their last line. */
static void refusals_sweep(struct connector *c, uint64_t now)
{
    struct list_node *n;

    if (!c->n_refusing)
        return;
    list_for_each (n, &c->lru) {
        struct conv *cv = container_of(n, struct conv, lru);

        if (cv->refused && now - cv->refused_log_ms >= c->refusal_log_ms)
            refusals_say(c, cv, now, NULL);
    }
}

static void pace_enqueue(struct call *call)
{
    struct connector *c = call->c;
    uint64_t now = now_ms(c);
    struct conv *cv;

    conv_evict_idle(c, now);
    cv = conv_get(c, call->key, now);
    if (cv->n_waiting >= CONNECTOR_PACE_MAX_WAITING) {
        /* A flood into one conversation must not queue without bound: at
         * Teams' rate this one would wait minutes, so it fails now. */
        pace_refuse(c, cv, call, now);
        return;
    }
    cv->n_waiting++;
    call->state = CALL_WAIT_PACE;
    call->conv = cv;
    if (cv->q_tail)
        cv->q_tail->next_wait = call;
    else
        cv->q_head = call;
    cv->q_tail = call;
    pace_pump(cv);
}

static void on_sweep(uv_timer_t *t)
{
    struct connector *c = container_of(t, struct connector, sweep);
    uint64_t now = now_ms(c);

    refusals_sweep(c, now);
    conv_evict_idle(c, now);
}

static void on_sweep_closed(uv_handle_t *h)
{
    struct connector *c = container_of((uv_timer_t *)h, struct connector, sweep);

    c->open--;
    maybe_stopped(c);
}

/* ---- attempts ----------------------------------------------------------- */

/*
 * The call keeps its own copy of the header: the cached token may be
 * replaced or dropped (a 401 elsewhere) while the call waits for pacing.
 */
static void call_use_token(struct call *call, const char *token, uint64_t gen)
{
    static const char prefix[] = "Authorization: Bearer ";
    size_t n = strlen(token);

    xfree(call->auth);
    call->auth = xmalloc(sizeof(prefix) + n);
    memcpy(call->auth, prefix, sizeof(prefix) - 1);
    memcpy(call->auth + sizeof(prefix) - 1, token, n + 1);
    call->token_gen = gen;
    pace_enqueue(call);
}

/*
 * One attempt: a usable cached token goes straight to pacing; otherwise the
 * call queues behind the one fetch. "Usable" ends early (token_use_ms), so
 * a token is never sent in its last minutes, where clock skew or a slow
 * request would turn it into a 401.
 */
static void attempt_begin(struct call *call)
{
    struct connector *c = call->c;

    if (call_past_hold(call, now_ms(c))) {
        call_finish_held(call, DG_ERR_TIMEOUT);
        return;
    }
    call->attempts++;
    if (c->token && now_ms(c) < c->token_until_ms)
        call_use_token(call, c->token, c->token_gen);
    else
        token_wait(call);
}

static void on_call_timer(uv_timer_t *t)
{
    struct call *call = container_of(t, struct call, timer);

    switch (call->state) {
    case CALL_SCHEDULED:
        attempt_begin(call);
        break;
    case CALL_WAIT_PACE:
        pace_pump(call->conv);
        break;
    default:
        break; /* not armed in the other states */
    }
}

/*
 * Whether a retryable outcome may be retried. POST is not idempotent, and a
 * timeout, transport error, 502 or 504 leaves open whether the connector
 * delivered the activity; only rejections are surely undelivered: 412
 * (concurrent operations), 429 (throttled), 503 (not taken in). A caller
 * that prefers a possible duplicate to a lost card sets retry_ambiguous.
 */
static bool retry_is_safe(const struct call *call, int err, long status, bool token_error)
{
    if (token_error || call->op == CONNECTOR_UPDATE || call->retry_ambiguous)
        return true;
    return err == 0 && (status == 412 || status == 429 || status == 503);
}

/* A Retry-After longer than we wait for on any send: the send fails as throttled. */
static bool retry_after_too_long(const struct connector *c, int64_t retry_after_s)
{
    return retry_after_s >= 0 && (uint64_t)retry_after_s > c->cfg->connector_retry_after_max_s;
}

/*
 * The wait before attempt n + 1: the server's Retry-After exactly (the
 * caller has checked it against CONNECTOR_RETRY_AFTER_MAX_S), else our own
 * backoff, full jitter up to min(RETRY_MAX_MS, base·2^(n−1)).
 */
static int64_t backoff_ms(struct connector *c, unsigned n, int64_t retry_after_s)
{
    if (retry_after_s >= 0)
        return retry_after_s * 1000;
    return (int64_t)backoff_full_jitter(&c->rng, c->cfg->retry_base_ms, c->cfg->retry_max_ms, n);
}

/* Attempts counted against the budget: the 401 retry is extra. */
static unsigned attempts_used(const struct call *call)
{
    return call->attempts - (call->reauthed ? 1 : 0);
}

/*
 * An attempt failed: retry after a backoff when the SPEC §6 table calls it
 * retryable, the budget allows and retrying is safe for this call;
 * otherwise finish with what the last attempt said.
 */
static void attempt_failed(struct call *call, int err, long status, int64_t retry_after_s,
                           bool token_error)
{
    struct connector *c = call->c;
    enum http_outcome outcome = http_outcome_classify(err, status);
    struct connector_result res = {.err = err ? err : DG_ERR_PROTOCOL,
                                   .status = status,
                                   .token_error = token_error,
                                   .outcome = outcome,
                                   .retry_after_s = retry_after_s};
    int64_t wait = -1;

    /* DG_ERR_CLOSED is our own shutdown (or the client's), never a retry. */
    if (err == DG_ERR_CLOSED || c->stopping) {
        call_finish_closed(call);
        return;
    }
    call->last_status = status;
    call->last_retry_after_s = retry_after_s;
    if (call->cancelled && !token_error) {
        call_finish_held(call, DG_ERR_CLOSED); /* its answer came: no retry after a cancel */
        return;
    }
    if (outcome == HTTP_OUTCOME_RETRYABLE && retry_after_too_long(c, retry_after_s)) {
        /* Told to wait longer than we ever do: final, so no caller waits it out either. */
        res.outcome = HTTP_OUTCOME_FINAL;
        log_warn("connector: %s %s throttled: %sstatus %ld with Retry-After %" PRId64
                 " s, over CONNECTOR_RETRY_AFTER_MAX_S (%" PRIu64 " s); not sent after %u attempts",
                 call->request_id, op_name(call->op), token_error ? "token endpoint " : "", status,
                 retry_after_s, c->cfg->connector_retry_after_max_s, call->attempts);
        call_finish(call, &res);
        return;
    }
    if (outcome == HTTP_OUTCOME_RETRYABLE && attempts_used(call) < call->max_attempts &&
        retry_is_safe(call, err, status, token_error))
        wait = backoff_ms(c, attempts_used(call), retry_after_s);
    if (wait >= 0 && call_past_hold(call, now_ms(c) + (uint64_t)wait)) {
        /* The retry could not leave in time: the caller waits, and asks again, itself. */
        call_finish_held(call, DG_ERR_TIMEOUT);
        return;
    }
    if (wait >= 0) {
        call->retry_at_ms = now_ms(c) + (uint64_t)wait;
        metrics_inc(c->metrics, METRICS_C_RETRIES);
        log_info("connector: %s %s: status %ld, %s; retry %u in %" PRId64 " ms", call->request_id,
                 op_name(call->op), status, dg_strerror(err), attempts_used(call) + 1, wait);
        call_schedule(call, (uint64_t)wait);
        return;
    }
    log_warn("connector: %s %s failed: %sstatus %ld, %s, %s after %u attempts", call->request_id,
             op_name(call->op), token_error ? "token endpoint " : "", status, dg_strerror(err),
             http_outcome_name(outcome), call->attempts);
    call_finish(call, &res);
}

/*
 * One scan of a copy (the scanner decodes in place), held to what
 * json_strict_object(JSON_MAX_DEPTH, UTF-8 unchecked) with json-c's lookup
 * accepted before it (fuzz_reply_diff.c): the last "id" member counts, and
 * an id with an escaped NUL in it is none. Replies are some 50 bytes, so the
 * copy sits on the stack unless the body is large.
 */
char *connector_resource_id(const char *body, size_t len)
{
    char small[256];
    char *copy = len <= sizeof(small) ? small : xmalloc(len);
    struct json_scan s;
    struct json_scan_str key;
    const char *id = NULL;
    char *out = NULL;

    if (len)
        memcpy(copy, body, len);
    json_scan_init_flags(&s, copy, len, JSON_MAX_DEPTH,
                         JSON_SCAN_RAW_UTF8 | JSON_SCAN_DEPTH_VALUES);
    if (json_scan_object(&s) == 0) {
        while (json_scan_member(&s, &key) == 1) {
            if (!json_scan_name_is(&key, "id")) {
                json_scan_skip(&s);
                continue;
            }
            id = json_scan_cstring(&s);
        }
    }
    if (json_scan_end(&s) == 0 && id)
        out = xstrdup(id);
    if (copy != small)
        xfree(copy);
    return out;
}

/*
 * The connector's answer to one attempt. A 2xx finishes the call even when
 * the body holds no usable id: the activity was delivered, and failing it
 * would make the caller post it again.
 */
static void on_sent(const struct http_client_response *r, void *data)
{
    struct call *call = data;
    struct connector *c = call->c;
    struct connector_result res = {
        .outcome = HTTP_OUTCOME_OK, .status = r->status, .retry_after_s = -1};
    char *id;

    call->hc = NULL; /* dead once this callback returns */
    if (r->err == DG_ERR_CLOSED || c->stopping) {
        call_finish_closed(call);
        return;
    }
    if (http_outcome_classify(r->err, r->status) == HTTP_OUTCOME_OK) {
        id = connector_resource_id(buf_cstr(r->body), r->body->len);
        res.activity_id = id;
        call_finish(call, &res);
        xfree(id);
        return;
    }
    if (r->err == 0 && r->status == 401 && !call->reauthed && !call->cancelled) {
        /* The token may have been revoked or expired early: one new token, one retry. */
        call->reauthed = true;
        token_invalidate(c, call->token_gen);
        metrics_inc(c->metrics, METRICS_C_RETRIES);
        log_info("connector: %s %s: 401, retrying once with a new token", call->request_id,
                 op_name(call->op));
        call_schedule(call, 0);
        return;
    }
    attempt_failed(call, r->err, r->status, r->retry_after_s, false);
}

/*
 * Sends the attempt now (pacing has granted the slot). A failure at
 * submission goes through the same retry rules as one reported later.
 */
static void http_dispatch(struct call *call)
{
    struct connector *c = call->c;
    const char *headers[] = {call->auth, "Content-Type: application/json",
                             "Accept: application/json"};
    struct http_client_request req = {
        .method = call->op == CONNECTOR_UPDATE ? "PUT" : "POST",
        .url = call->url,
        .headers = headers,
        .n_headers = ARRAY_SIZE(headers),
        .body = call->body,
        .body_len = call->body_len,
        .timeout_ms = c->cfg->connector_timeout_ms,
        .max_response_bytes = CONNECTOR_MAX_RESPONSE_BYTES,
        .hist = &connector_hist,
    };
    int err;

    /* Checked at submission already; again here, so no path can skip it. */
    err = service_url_check(call->url, &c->cfg->service_url_allow);
    if (!err)
        err = http_client_send(c->http, &req, on_sent, call, &call->hc);
    if (err) {
        attempt_failed(call, err, 0, -1, false);
        return;
    }
    call->state = CALL_IN_FLIGHT;
}

/* ---- the public face ---------------------------------------------------- */

struct connector *connector_create(uv_loop_t *loop, struct http_client *http,
                                   const struct config *cfg, struct metrics *metrics)
{
    struct connector *c = xcalloc(1, sizeof(*c));

    c->loop = loop;
    c->http = http;
    c->cfg = cfg;
    c->metrics = metrics;
    list_init(&c->calls);
    list_init(&c->lru);
    hash_table_init(&c->convs, CONV_BUCKETS_MIN);
    c->refusal_log_ms = PACE_REFUSAL_LOG_MS;
    backoff_seed(&c->rng);
    uv_timer_init(loop, &c->sweep);
    uv_timer_start(&c->sweep, on_sweep, PACE_LONG_WINDOW_MS, PACE_LONG_WINDOW_MS);
    uv_unref((uv_handle_t *)&c->sweep); /* housekeeping must not keep the loop alive */
    c->open = 1;
    if (!cfg->app_id || !cfg->app_password)
        log_warn("connector: MICROSOFT_APP_ID or MICROSOFT_APP_PASSWORD unset; "
                 "token requests will carry empty credentials");
    return c;
}

/* {serviceUrl}[/]v3/conversations/{conv}/activities[/{id}] */
static int build_url(const struct connector_msg *m, char **out)
{
    size_t n = strlen(m->service_url);
    struct buf b;
    int err;

    buf_init(&b, HTTP_MAX_URL_BYTES);
    err = buf_append_str(&b, m->service_url);
    if (!err && (n == 0 || m->service_url[n - 1] != '/'))
        err = buf_append_str(&b, "/");
    if (!err)
        err = buf_append_str(&b, "v3/conversations/");
    if (!err)
        err = url_encode_component(&b, m->conversation_id);
    if (!err)
        err = buf_append_str(&b, "/activities");
    if (!err && m->op != CONNECTOR_SEND)
        err = buf_append_str(&b, "/");
    if (!err && m->op != CONNECTOR_SEND)
        err = url_encode_component(&b, m->activity_id);
    if (err) {
        buf_free(&b);
        return err;
    }
    *out = buf_take(&b);
    return 0;
}

/* Everything connector_send refuses at submission, before anything is sent. */
static int msg_check(struct connector *c, const struct connector_msg *m)
{
    if (!m || m->op > CONNECTOR_SEND || !m->service_url || !m->conversation_id ||
        !*m->conversation_id || !m->body || m->body_len == 0)
        return DG_ERR_INVALID;
    if (m->op != CONNECTOR_SEND && (!m->activity_id || !*m->activity_id))
        return DG_ERR_INVALID;
    /*
     * A query or fragment would end up in front of our path. The URL
     * itself is not logged: it came from the network.
     */
    if (strpbrk(m->service_url, "?#") ||
        service_url_check(m->service_url, &c->cfg->service_url_allow) != 0) {
        log_warn("connector: %s: serviceUrl not allowed (SERVICE_URL_ALLOW); nothing sent",
                 m->request_id ? m->request_id : "");
        return DG_ERR_INVALID;
    }
    return 0;
}

/*
 * connector_send with the body handed over (taken whatever the result).
 * Everything the call needs later is copied here, so the caller's message
 * may go away as soon as this returns.
 */
static int submit(struct connector *c, const struct connector_msg *m, char *body,
                  const struct connector_opts *opts, uint64_t hold_until_ms, connector_done_cb cb,
                  void *data, struct connector_call **out)
{
    struct call *call;
    char *url = NULL;
    size_t key_len, url_len;
    int err;

    err = c->stopping ? DG_ERR_CLOSED : !cb ? DG_ERR_INVALID : msg_check(c, m);
    if (!err)
        err = build_url(m, &url);
    if (err) {
        xfree(body);
        return err;
    }
    call = xcalloc(1, sizeof(*call));
    call->c = c;
    call->op = m->op;
    call->url = url;
    /* The pacing key: "serviceUrl\nconversation id". */
    url_len = strlen(m->service_url);
    key_len = url_len + 1 + strlen(m->conversation_id) + 1;
    call->key = xmalloc(key_len);
    memcpy(call->key, m->service_url, url_len);
    call->key[url_len] = '\n';
    memcpy(call->key + url_len + 1, m->conversation_id, key_len - url_len - 1);
    call->body = body;
    call->body_len = m->body_len;
    call->request_id = xstrdup(m->request_id ? m->request_id : "");
    call->cb = cb;
    call->data = data;
    call->max_attempts =
        opts && opts->max_attempts ? opts->max_attempts : CONNECTOR_DEFAULT_ATTEMPTS;
    call->retry_ambiguous = opts && opts->retry_ambiguous;
    call->hold_until_ms = hold_until_ms;
    call->last_retry_after_s = -1;
    uv_timer_init(c->loop, &call->timer);
    c->open++;
    list_insert_head(&c->calls, &call->node);
    c->n_pending++;
    /* The first attempt starts from the loop: the callback never runs in here. */
    call_schedule(call, 0);
    if (out)
        *out = (struct connector_call *)call;
    return 0;
}

int connector_send_call(struct connector *c, const struct connector_msg *msg,
                        const struct connector_opts *opts, uint64_t hold_until_ms,
                        connector_done_cb cb, void *data, struct connector_call **out)
{
    char *body = NULL;

    if (msg && msg->body && msg->body_len > 0) {
        body = xmalloc(msg->body_len);
        memcpy(body, msg->body, msg->body_len);
    }
    return submit(c, msg, body, opts, hold_until_ms, cb, data, out);
}

int connector_send(struct connector *c, const struct connector_msg *msg,
                   const struct connector_opts *opts, connector_done_cb cb, void *data)
{
    return connector_send_call(c, msg, opts, 0, cb, data, NULL);
}

/* Takes call off a singly linked wait queue; true when it was there. */
static bool unlink_wait(struct call **head, struct call **tail, struct call *call)
{
    struct call *prev = NULL, *p;

    for (p = *head; p && p != call; p = p->next_wait)
        prev = p;
    if (!p)
        return false;
    if (prev)
        prev->next_wait = call->next_wait;
    else
        *head = call->next_wait;
    if (*tail == call)
        *tail = prev;
    call->next_wait = NULL;
    return true;
}

void connector_call_cancel(struct connector_call *handle)
{
    struct call *call = (struct call *)handle;
    struct connector *c = call->c;
    struct conv *cv;

    switch (call->state) {
    case CALL_IN_FLIGHT:
        call->cancelled = true; /* its answer finishes it, never a retry */
        return;
    case CALL_DONE:
        return;
    case CALL_SCHEDULED:
        uv_timer_stop(&call->timer);
        break;
    case CALL_WAIT_TOKEN:
        unlink_wait(&c->wait_head, &c->wait_tail, call);
        break;
    case CALL_WAIT_PACE:
        cv = call->conv;
        uv_timer_stop(&call->timer);
        if (cv && unlink_wait(&cv->q_head, &cv->q_tail, call))
            cv->n_waiting--;
        call->conv = NULL;
        call_finish_held(call, DG_ERR_CLOSED);
        /* The head may have gone: the next one's timer must be armed. */
        if (cv && cv->q_head)
            pace_pump(cv);
        return;
    }
    call_finish_held(call, DG_ERR_CLOSED);
}

/*
 * A card rendered for to (body taken): the path comes from the same address
 * as the body, so they cannot disagree (REPLY uses to->reply_to_id, UPDATE
 * to->activity_id).
 */
static int submit_rendered(struct connector *c, struct connector_msg *m,
                           const struct card_address *to, char *body,
                           const struct connector_opts *opts, connector_done_cb cb, void *data)
{
    m->body = body;
    m->conversation_id = to->conversation_id;
    m->activity_id = m->op == CONNECTOR_REPLY ? to->reply_to_id : to->activity_id;
    return submit(c, m, body, opts, 0, cb, data, NULL);
}

int connector_send_card(struct connector *c, enum connector_op op, const char *service_url,
                        const struct card_address *to, struct json_object *card,
                        const char *request_id, const struct connector_opts *opts,
                        connector_done_cb cb, void *data)
{
    struct connector_msg m = {.op = op, .service_url = service_url, .request_id = request_id};
    char *body = NULL;
    int err;

    if (!to) {
        json_object_put(card);
        return DG_ERR_INVALID;
    }
    err = card_render(to, card, &body, &m.body_len);
    if (err)
        return err;
    return submit_rendered(c, &m, to, body, opts, cb, data);
}

int connector_send_error(struct connector *c, enum connector_op op, const char *service_url,
                         const struct card_address *to, const struct card_error_info *error,
                         const char *request_id, const struct connector_opts *opts,
                         connector_done_cb cb, void *data)
{
    struct connector_msg m = {.op = op, .service_url = service_url, .request_id = request_id};
    char *body = NULL;
    int err;

    if (!to || !error)
        return DG_ERR_INVALID;
    err = card_render_error(to, error, &body, &m.body_len);
    if (err)
        return err;
    return submit_rendered(c, &m, to, body, opts, cb, data);
}

int connector_send_ack(struct connector *c, enum connector_op op, const char *service_url,
                       const struct card_address *to, const struct card_ack_info *ack,
                       const char *request_id, const struct connector_opts *opts,
                       connector_done_cb cb, void *data)
{
    struct connector_msg m = {.op = op, .service_url = service_url, .request_id = request_id};
    char *body = NULL;
    int err;

    if (!to || !ack)
        return DG_ERR_INVALID;
    err = card_render_ack(to, ack, &body, &m.body_len);
    if (err)
        return err;
    return submit_rendered(c, &m, to, body, opts, cb, data);
}

/*
 * What a stop gives up, in one line: main stops the connector only once the
 * webhook and the worker are done or the shutdown grace is over, so every
 * call still here is a card that will not be sent (each caller logs its own).
 */
static void log_given_up(struct connector *c)
{
    size_t n_wait = 0, n_retry = 0, n_pace = 0, n_flight = 0;
    uint64_t now = now_ms(c), longest = 0;
    struct list_node *n;

    list_for_each (n, &c->calls) {
        const struct call *call = container_of(n, struct call, node);

        if (call->state == CALL_SCHEDULED && call->attempts > 0) {
            n_retry++;
            if (call->retry_at_ms > now && call->retry_at_ms - now > longest)
                longest = call->retry_at_ms - now;
        } else if (call->state == CALL_WAIT_PACE) {
            n_pace++;
        } else if (call->state == CALL_IN_FLIGHT) {
            n_flight++;
        } else {
            n_wait++;
        }
    }
    if (c->n_pending)
        log_warn("connector: stopping: %zu sends given up: %zu waiting to retry (at most %" PRIu64
                 " ms left), %zu for a pacing slot, %zu in flight (may have been delivered), "
                 "%zu for the token or their first turn",
                 c->n_pending, n_retry, longest, n_pace, n_flight, n_wait);
}

/*
 * Every call is finished synchronously, wherever it waits: an HTTP request
 * through http_client_cancel (whose callback runs at once), the rest
 * directly. Only the handle closes are left for the loop.
 */
void connector_stop(struct connector *c, connector_stopped_cb cb, void *data)
{
    struct list_node *n;

    if (c->stopping)
        return;
    log_given_up(c);
    c->stopping = true;
    c->stopped_cb = cb;
    c->stopped_data = data;
    /* Its callback runs now, with DG_ERR_CLOSED, and fails every waiter. */
    if (c->token_call)
        http_client_cancel(c->token_call);
    c->wait_head = c->wait_tail = NULL;
    while ((n = list_first(&c->calls))) {
        struct call *call = container_of(n, struct call, node);

        if (call->state == CALL_IN_FLIGHT && call->hc) {
            http_client_cancel(call->hc); /* on_sent finishes it */
            continue;
        }
        /* Every call is finished here, so a conversation's queue just goes. */
        if (call->state == CALL_WAIT_PACE && call->conv) {
            call->conv->q_head = call->conv->q_tail = NULL;
            call->conv->n_waiting = 0;
        }
        call->conv = NULL;
        call->next_wait = NULL;
        call_finish_closed(call);
    }
    uv_close((uv_handle_t *)&c->sweep, on_sweep_closed);
}

void connector_free(struct connector *c)
{
    struct list_node *n;

    if (!c)
        return;
    while ((n = list_first(&c->lru)))
        conv_free(c, container_of(n, struct conv, lru));
    hash_table_free(&c->convs);
    xfree(c->token);
    xfree(c);
}

size_t connector_pending(const struct connector *c)
{
    return c->n_pending;
}
