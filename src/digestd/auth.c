/*
 * auth.c: the signing keys of Bot Framework and the check of each inbound
 * token against them. Keys come in two steps (OpenID metadata, then its
 * jwks_uri), both through the http_client, so nothing here blocks the loop.
 *
 * One fetch at a time (enum fetch_state). It starts at auth_start, again
 * when the set is AUTH_KEYS_MAX_AGE_MS old (the refresh timer), after a
 * failure with a doubling backoff (the same timer), and for a token whose
 * kid is not in the set when the last fetch began JWKS_MIN_REFRESH_S ago or
 * more. A failed fetch keeps the old set: Microsoft's endpoint having a bad
 * minute must not lock every user out.
 *
 * Requests that need a fetch to finish wait in `waiters`, oldest first, each
 * with a deadline AUTH_WAIT_MS away; the deadline timer answers them 503
 * when keys cannot be had in time. Every waiter is finished exactly once:
 * by a fetch ending, by its deadline, or by auth_stop.
 */
#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/clock.h"
#include "config.h"
#include "http/http_client.h"
#include "teams/jwks.h"
#include "teams/jwt_cache.h"
#include "teams/jwt_verify.h"
#include "core/list.h"
#include "core/log.h"

enum fetch_state {
    FETCH_IDLE = 0, /* nothing in flight; the refresh timer may be armed */
    FETCH_META,     /* GET BOT_OPENID_URL in flight */
    FETCH_KEYS,     /* GET jwks_uri in flight */
    FETCH_STOPPED,  /* auth_stop ran: nothing starts again */
};

struct auth_wait {
    struct list_node node;
    struct auth *auth;
    struct jwt token;  /* owned: parsed at auth_check */
    char *service_url; /* owned; NULL when the activity had none */
    char *channel_id;  /* owned; NULL when the activity had none */
    uint64_t deadline; /* uv_now() value past which it is answered 503 */
    auth_done_cb cb;
    void *data;
};

struct auth {
    uv_loop_t *loop;
    const struct config *cfg;
    struct http_client *http;
    struct metrics *metrics;
    struct jwks keys;           /* the set in use; n == 0 until the first load */
    struct jwt_cache *verdicts; /* tokens verified with keys, see jwt_cache.h */
    enum fetch_state state;
    struct http_client_call *call; /* the request in flight, or NULL */
    bool fetched_once;             /* last_fetch is meaningful */
    uint64_t last_fetch;           /* uv_now() when the last fetch began */
    uint64_t backoff_ms;           /* next retry delay after a failure */
    uv_timer_t refresh;            /* retry after failure, or the 24 h refresh */
    uv_timer_t deadline;           /* the oldest waiter's deadline */
    struct list_node waiters;      /* struct auth_wait, oldest first */
    size_t n_waiters;
    char reason[256]; /* why not ready, for /readyz */
};

static void start_fetch(struct auth *a);

static void close_noop(uv_handle_t *h)
{
}

struct auth *auth_create(uv_loop_t *loop, const struct config *cfg, struct http_client *http,
                         struct metrics *metrics)
{
    struct auth *a = xcalloc(1, sizeof(*a));

    a->loop = loop;
    a->cfg = cfg;
    a->http = http;
    a->metrics = metrics;
    a->backoff_ms = AUTH_RETRY_MIN_MS;
    a->verdicts = jwt_cache_new(AUTH_TOKEN_CACHE_ENTRIES);
    list_init(&a->waiters);
    uv_timer_init(loop, &a->refresh);
    uv_timer_init(loop, &a->deadline);
    snprintf(a->reason, sizeof(a->reason), "auth: signing keys not loaded yet");
    return a;
}

void auth_start(struct auth *a)
{
    if (a->state == FETCH_IDLE && !a->fetched_once)
        start_fetch(a);
}

bool auth_ready(const struct auth *a)
{
    return a->keys.n > 0;
}

const char *auth_reason(const struct auth *a)
{
    return a->reason;
}

/* --- the header, before the body is parsed ------------------------------ */

bool auth_header_ok(const char *value)
{
    const char *token;

    /* The SDKs split on one space and want exactly two parts. */
    if (!value || strncasecmp(value, "Bearer ", 7) != 0)
        return false;
    token = value + 7;
    return token[0] != '\0' && strchr(token, ' ') == NULL;
}

/* --- verdicts ----------------------------------------------------------- */

static struct jwt_expect expect(const struct auth *a, const char *service_url,
                                const char *channel_id)
{
    struct jwt_expect e = {
        .issuer = AUTH_ISSUER,
        .audience = a->cfg->app_id,
        .service_url = service_url,
        .channel_id = channel_id,
        .now_s = (int64_t)(clock_wall_ms() / 1000),
        .leeway_s = AUTH_LEEWAY_S,
    };

    return e;
}

static enum jwt_verdict verify(const struct auth *a, const struct jwt *t, const char *service_url,
                               const char *channel_id, const char **why)
{
    struct jwt_expect e = expect(a, service_url, channel_id);

    return jwt_verify(t, &a->keys, &e, why);
}

static int verdict_status(enum jwt_verdict v)
{
    switch (v) {
    case JWT_OK:
        return 200;
    case JWT_FORBIDDEN:
        return 403;
    case JWT_UNAUTHORIZED:
    case JWT_UNKNOWN_KID:
    default:
        return 401;
    }
}

/* Finishes one waiter: unlinks it, calls back, frees it. */
static void finish_wait(struct auth_wait *w, int status, const char *why)
{
    auth_done_cb cb = w->cb;
    void *data = w->data;

    list_remove(&w->node);
    w->auth->n_waiters--;
    jwt_free(&w->token);
    xfree(w->service_url);
    xfree(w->channel_id);
    xfree(w);
    cb(status, why, data);
}

static void on_deadline(uv_timer_t *t);

/* Arms the deadline timer for the oldest waiter, or stops it when none. */
static void rearm_deadline(struct auth *a)
{
    struct list_node *first = list_first(&a->waiters);
    struct auth_wait *w;
    uint64_t now = uv_now(a->loop);

    if (!first || a->state == FETCH_STOPPED) {
        uv_timer_stop(&a->deadline);
        return;
    }
    w = container_of(first, struct auth_wait, node);
    uv_timer_start(&a->deadline, on_deadline, w->deadline > now ? w->deadline - now : 0, 0);
}

/* The oldest waiters' time is up: keys could not be had, the channel retries. */
static void on_deadline(uv_timer_t *t)
{
    struct auth *a = container_of(t, struct auth, deadline);
    uint64_t now = uv_now(a->loop);
    struct list_node *first;

    while ((first = list_first(&a->waiters)) != NULL) {
        struct auth_wait *w = container_of(first, struct auth_wait, node);
        if (w->deadline > now)
            break;
        finish_wait(w, 503, "signing keys are not available yet");
    }
    rearm_deadline(a);
}

/*
 * A fetch ended (ok: a new set is in place): decides every waiter the set
 * in use can decide. Waiters are moved to a private list first, because a
 * callback may start a new check that waits again.
 */
static void settle_waiters(struct auth *a, bool ok)
{
    struct list_node batch, *pos, *tmp;

    list_init(&batch);
    list_for_each_safe (pos, tmp, &a->waiters) {
        list_remove(pos);
        list_insert_tail(&batch, pos);
    }
    while ((pos = list_first(&batch)) != NULL) {
        struct auth_wait *w = container_of(pos, struct auth_wait, node);
        const char *why = NULL;
        enum jwt_verdict v;

        if (a->state == FETCH_STOPPED) {
            finish_wait(w, 503, "shutting down");
            continue;
        }
        v = verify(a, &w->token, w->service_url, w->channel_id, &why);
        if (v == JWT_UNKNOWN_KID && a->keys.n == 0) {
            /* No set at all yet: the retry may bring one before the deadline. */
            list_remove(pos);
            list_insert_tail(&a->waiters, pos);
        } else if (v == JWT_UNKNOWN_KID) {
            /* A failed refresh says nothing about the kid: let the channel retry. */
            finish_wait(w, ok ? 401 : 503,
                        ok ? "unknown signing key" : "signing keys could not be refreshed");
        } else {
            finish_wait(w, verdict_status(v), why);
        }
    }
    rearm_deadline(a);
}

/* --- fetching ------------------------------------------------------------ */

static void on_refresh(uv_timer_t *t)
{
    struct auth *a = container_of(t, struct auth, refresh);

    if (a->state == FETCH_IDLE)
        start_fetch(a);
}

/*
 * Ends a failed fetch. The set in use (if any) stays. A retry is scheduled
 * unless the http_client is going away (err DG_ERR_CLOSED). settle is false
 * when we are still inside auth_check, which must not call back.
 */
static void fetch_failed(struct auth *a, const char *what, const char *detail, int err, bool settle)
{
    a->state = FETCH_IDLE;
    if (a->keys.n == 0)
        snprintf(a->reason, sizeof(a->reason), "auth: signing keys not loaded (%s: %s)", what,
                 detail);
    log_warn("auth: cannot load the signing keys (%s: %s); %zu keys kept, retry in %llu ms", what,
             detail, a->keys.n, (unsigned long long)a->backoff_ms);
    if (err != DG_ERR_CLOSED) {
        uv_timer_start(&a->refresh, on_refresh, a->backoff_ms, 0);
        a->backoff_ms =
            a->backoff_ms * 2 > AUTH_RETRY_MAX_MS ? AUTH_RETRY_MAX_MS : a->backoff_ms * 2;
    }
    if (settle)
        settle_waiters(a, false);
}

static int send_get(struct auth *a, const char *url, http_client_done_cb cb)
{
    static const char *const headers[] = {"Accept: application/json"};
    struct http_client_request req = {
        .method = "GET",
        .url = url,
        .headers = headers,
        .n_headers = ARRAY_SIZE(headers),
        .timeout_ms = AUTH_FETCH_TIMEOUT_MS,
        .max_response_bytes = JWKS_MAX_BODY,
    };

    return http_client_send(a->http, &req, cb, a, &a->call);
}

/* NULL for a 200 with its body; else why not, for the log and /readyz. */
static const char *response_problem(const struct http_client_response *res, char *buf, size_t size)
{
    if (res->err)
        return res->error[0] ? res->error : dg_strerror(res->err);
    if (res->status != 200) {
        snprintf(buf, size, "HTTP status %ld", res->status);
        return buf;
    }
    return NULL;
}

/*
 * Where both answers start: the call is over; true when there is a body to
 * read. false when the fetch was stopped, or failed as what (logged, and
 * retried after a backoff): the caller only returns.
 */
static bool fetch_answered(struct auth *a, const struct http_client_response *res, const char *what)
{
    char detail[64];
    const char *problem;

    a->call = NULL;
    if (a->state == FETCH_STOPPED)
        return false;
    problem = response_problem(res, detail, sizeof(detail));
    if (problem) {
        fetch_failed(a, what, problem, res->err, true);
        return false;
    }
    return true;
}

static void on_keys(const struct http_client_response *res, void *data)
{
    struct auth *a = data;
    struct jwks fresh = {0};
    int err;

    if (!fetch_answered(a, res, "key set"))
        return;
    err = jwks_parse(&fresh, res->body->data ? res->body->data : "", res->body->len);
    if (err || fresh.n == 0) {
        jwks_free(&fresh);
        fetch_failed(a, "key set", err ? dg_strerror(err) : "no usable RSA signing key", 0, true);
        return;
    }
    jwks_free(&a->keys);
    a->keys = fresh;
    a->state = FETCH_IDLE;
    a->backoff_ms = AUTH_RETRY_MIN_MS;
    a->reason[0] = '\0';
    log_info("auth: %zu signing keys loaded", a->keys.n);
    uv_timer_start(&a->refresh, on_refresh, AUTH_KEYS_MAX_AGE_MS, 0);
    settle_waiters(a, true);
}

/* Metadata fetched over https must not send us to plain http for the keys. */
static bool downgrade(const char *from, const char *to)
{
    return strncasecmp(from, "https://", 8) == 0 && strncasecmp(to, "https://", 8) != 0;
}

static void on_metadata(const struct http_client_response *res, void *data)
{
    struct auth *a = data;
    char *uri = NULL;
    int err;

    if (!fetch_answered(a, res, "metadata"))
        return;
    err = jwks_openid_uri(res->body->data ? res->body->data : "", res->body->len, &uri);
    if (err || downgrade(a->cfg->openid_url, uri)) {
        fetch_failed(a, "metadata", err ? "no usable jwks_uri" : "jwks_uri is not https", 0, true);
        xfree(uri);
        return;
    }
    a->state = FETCH_KEYS;
    err = send_get(a, uri, on_keys);
    xfree(uri);
    if (err)
        fetch_failed(a, "key set", dg_strerror(err), err, true);
}

static void start_fetch(struct auth *a)
{
    int err;

    uv_timer_stop(&a->refresh);
    a->state = FETCH_META;
    a->fetched_once = true;
    a->last_fetch = uv_now(a->loop);
    log_info("auth: fetching the signing keys (metadata %s)", a->cfg->openid_url);
    err = send_get(a, a->cfg->openid_url, on_metadata);
    if (err)
        fetch_failed(a, "metadata", dg_strerror(err), err, false);
}

/* --- checks -------------------------------------------------------------- */

/*
 * The token names a kid the set in use does not hold. True when a fetch
 * that may bring it is under way (started here if allowed); false, with
 * *why, when the answer is final now.
 */
static bool must_wait(struct auth *a, const char **why)
{
    if (a->state == FETCH_STOPPED) {
        *why = "shutting down";
        return false;
    }
    if (a->keys.n == 0 || a->state != FETCH_IDLE)
        return true;
    /* Random kids must not turn into a flood of fetches to Microsoft. */
    if (uv_now(a->loop) - a->last_fetch < a->cfg->jwks_min_refresh_s * 1000) {
        *why = "unknown signing key";
        return false;
    }
    log_info("auth: a token names an unknown key; refetching the signing keys");
    start_fetch(a);
    return true;
}

int auth_check(struct auth *a, const char *authorization, const char *service_url,
               const char *channel_id, const char **why, auth_done_cb cb, void *data)
{
    struct auth_wait *w;
    struct jwt_expect e;
    enum jwt_verdict v;
    struct jwt t;
    size_t len;

    *why = "malformed bearer token";
    if (!authorization)
        return 401;
    len = strlen(authorization);
    e = expect(a, service_url, channel_id);
    /* A token seen before: no parse and no RSA, the rest is checked again. */
    if (jwt_cache_check(a->verdicts, authorization, len, &a->keys, &e, &v, why))
        return verdict_status(v);
    if (jwt_parse(&t, authorization, len) != 0)
        return 401;
    v = jwt_verify(&t, &a->keys, &e, why);
    if (v == JWT_OK)
        jwt_cache_put(a->verdicts, authorization, len, &t, &a->keys);
    if (v != JWT_UNKNOWN_KID || !must_wait(a, why)) {
        jwt_free(&t);
        if (v == JWT_UNKNOWN_KID)
            return a->state == FETCH_STOPPED ? 503 : 401;
        return verdict_status(v);
    }
    /* Made-up kids during a fetch must not pile up bodies without bound. */
    if (a->n_waiters >= AUTH_MAX_WAITERS) {
        jwt_free(&t);
        *why = "signing keys are being fetched; retry";
        return 503;
    }
    a->n_waiters++;
    w = xcalloc(1, sizeof(*w));
    w->auth = a;
    w->token = t; /* the waiter owns the parsed token now */
    w->service_url = service_url ? xstrdup(service_url) : NULL;
    w->channel_id = channel_id ? xstrdup(channel_id) : NULL;
    w->deadline = uv_now(a->loop) + AUTH_WAIT_MS;
    w->cb = cb;
    w->data = data;
    list_insert_tail(&a->waiters, &w->node);
    if (list_first(&a->waiters) == &w->node)
        rearm_deadline(a);
    return AUTH_PENDING;
}

/* --- shutdown ------------------------------------------------------------ */

void auth_stop(struct auth *a)
{
    struct list_node *first;

    if (a->state == FETCH_STOPPED)
        return;
    a->state = FETCH_STOPPED;
    /* Its callback runs at once and sees FETCH_STOPPED. */
    if (a->call)
        http_client_cancel(a->call);
    while ((first = list_first(&a->waiters)) != NULL)
        finish_wait(container_of(first, struct auth_wait, node), 503, "shutting down");
    uv_close((uv_handle_t *)&a->refresh, close_noop);
    uv_close((uv_handle_t *)&a->deadline, close_noop);
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    jwks_free(&a->keys);
    jwt_cache_free(a->verdicts);
    xfree(a);
}
