/*
 * test_connector.c: the Bot connector client against a fake token endpoint
 * and a fake connector, both routes of one real http_server listening on
 * loopback in the test's own loop. The fake records every request (method,
 * path, Authorization, Content-Type, body, arrival time) and answers from a
 * script: a status by request number, a token that is refused, a delay, or
 * no answer at all. Every test ends with the connector, the client and the
 * server stopped and uv_loop_close() == 0, and checks that each callback ran
 * exactly once. The pure helpers (escaping, token lifetime, pacing slots,
 * backoff) are tested directly: the source is included for its statics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../../lib/teams/connector.c"

#include "http/http_server.h"

#define MAX_RECS 512
#define MAX_SLOTS 512
#define MAX_STATUSES 8
#define MS 1000000ull
#define CONV_ID "19:abc@thread.skype;messageid=1700000000000"
#define CONV_ESC "19%3Aabc%40thread.skype%3Bmessageid%3D1700000000000"
#define ACT_ID "1:1xyz=="
#define ACT_ESC "1%3A1xyz%3D%3D"

struct rec {
    char method[8];
    char path[512];
    char auth[256];
    char ctype[128];
    char *body; /* owned */
    size_t body_len;
    uint64_t at_ns;
};

/* A response the fake sends later (delay), or only at teardown (held). */
struct held {
    struct held *next;
    uv_timer_t timer;
    struct http_request *req; /* NULL once answered */
    int status;
    char body[256];
    int retry_after_s;
};

struct slot {
    int calls; /* must end at exactly 1 */
    int err;
    long status;
    bool token_error;
    enum http_outcome outcome;
    int64_t retry_after_s;
    unsigned attempts;
    char id[64];
    uint64_t done_ns;
    bool held;
    struct connector_call *call; /* connector_send_call's handle */
};

struct ctx {
    uv_loop_t loop;
    struct config cfg;
    struct metrics *metrics;
    struct http_server *srv;
    struct http_client *http;
    struct connector *conn, *conn2; /* conn2: a second token cache, when a test wants one */
    char service_url[128];
    uv_timer_t watchdog, step;
    void (*step_fn)(struct ctx *t);
    int expect, done;
    bool shut;
    int conn_stopped, http_stopped, srv_stopped;
    uint64_t start_ns;

    /* the fake token endpoint */
    int tok_status;
    int64_t tok_expires_in;
    uint64_t tok_delay_ms;
    int tok_hold_after; /* token requests past this number are never answered; 0 = none */
    int n_tok;
    struct rec tok[MAX_RECS];

    /* the fake connector */
    int statuses[MAX_STATUSES]; /* by request number, the last repeats; none = 201 */
    int n_statuses;
    int retry_after_s;        /* sent with every non-2xx status when >= 0 */
    const char *reject_token; /* 401 for "Bearer <this>" */
    bool reject_all;          /* 401 for every request */
    bool hold;                /* connector requests are never answered… */
    const char *special;      /* …except those whose path holds this, which get: */
    int special_status;
    int n_conn;
    struct rec conn_recs[MAX_RECS];
    struct held *held;

    struct slot slots[MAX_SLOTS];
};

static struct ctx T; /* one test at a time; large, so not on the stack */

/* ---- the fake server ---------------------------------------------------- */

static void rec_fill(struct rec *r, struct http_request *req)
{
    const char *v;
    const char *body;
    size_t len;

    snprintf(r->method, sizeof(r->method), "%s", http_request_method(req));
    snprintf(r->path, sizeof(r->path), "%s", http_request_path(req));
    v = http_request_header(req, "Authorization");
    snprintf(r->auth, sizeof(r->auth), "%s", v ? v : "");
    v = http_request_header(req, "Content-Type");
    snprintf(r->ctype, sizeof(r->ctype), "%s", v ? v : "");
    body = http_request_body(req, &len);
    r->body = xstrndup(body ? body : "", len);
    r->body_len = len;
    r->at_ns = uv_hrtime();
}

static void respond(struct http_request *req, int status, const char *body, int retry_after_s)
{
    char ra[16];
    struct http_header h = {"Retry-After", ra};

    snprintf(ra, sizeof(ra), "%d", retry_after_s);
    http_request_respond(req, status, "application/json", body, strlen(body), &h,
                         retry_after_s >= 0 ? 1 : 0);
}

static void held_closed(uv_handle_t *h)
{
    struct held *hd = container_of((uv_timer_t *)h, struct held, timer);
    struct held **pp = &T.held;

    while (*pp != hd)
        pp = &(*pp)->next;
    *pp = hd->next;
    xfree(hd);
}

static void held_answer(struct held *hd)
{
    if (!hd->req)
        return;
    respond(hd->req, hd->status, hd->body, hd->retry_after_s);
    hd->req = NULL;
    uv_close((uv_handle_t *)&hd->timer, held_closed);
}

static void on_held_timer(uv_timer_t *t)
{
    held_answer(container_of(t, struct held, timer));
}

/* Answers after delay_ms, or (hold) only when the test shuts down. */
static void reply_later(struct http_request *req, int status, const char *body, int ra,
                        uint64_t delay_ms, bool hold)
{
    struct held *hd = xcalloc(1, sizeof(*hd));

    hd->req = req;
    hd->status = hold ? 503 : status;
    hd->retry_after_s = ra;
    snprintf(hd->body, sizeof(hd->body), "%s", body);
    uv_timer_init(&T.loop, &hd->timer);
    hd->next = T.held;
    T.held = hd;
    if (!hold)
        uv_timer_start(&hd->timer, on_held_timer, delay_ms, 0);
}

static void h_token(struct http_request *req, void *data)
{
    struct ctx *t = data;
    char body[256];
    int n;

    assert_true(t->n_tok < MAX_RECS);
    rec_fill(&t->tok[t->n_tok++], req);
    n = t->n_tok;
    if (t->tok_status != 200)
        snprintf(body, sizeof(body), "{\"error\":\"invalid_client\"}");
    else
        snprintf(body, sizeof(body),
                 "{\"token_type\":\"Bearer\",\"expires_in\":%lld,\"ext_expires_in\":%lld,"
                 "\"access_token\":\"tok-%d\"}",
                 (long long)t->tok_expires_in, (long long)t->tok_expires_in, n);
    if (t->tok_hold_after && n > t->tok_hold_after)
        reply_later(req, 0, body, -1, 0, true);
    else if (t->tok_delay_ms)
        reply_later(req, t->tok_status, body, -1, t->tok_delay_ms, false);
    else
        respond(req, t->tok_status, body, -1);
}

static void h_connector(struct http_request *req, void *data)
{
    struct ctx *t = data;
    struct rec *r;
    char body[128];
    int n, status;
    char bearer[64];

    assert_true(t->n_conn < MAX_RECS);
    r = &t->conn_recs[t->n_conn++];
    rec_fill(r, req);
    n = t->n_conn;
    status = t->n_statuses ? t->statuses[n <= t->n_statuses ? n - 1 : t->n_statuses - 1] : 201;
    snprintf(bearer, sizeof(bearer), "Bearer %s", t->reject_token ? t->reject_token : "");
    if (t->reject_all || (t->reject_token && strcmp(r->auth, bearer) == 0))
        status = 401;
    if (status / 100 == 2)
        snprintf(body, sizeof(body), "{\"id\":\"act-%d\"}", n);
    else
        snprintf(body, sizeof(body), "{\"error\":{\"code\":\"E%d\",\"message\":\"no\"}}", status);
    if (t->special && strstr(r->path, t->special))
        respond(req, t->special_status, body, t->retry_after_s);
    else if (t->hold)
        reply_later(req, 0, body, -1, 0, true);
    else
        respond(req, status, body, status / 100 == 2 ? -1 : t->retry_after_s);
}

/* ---- setup, shutdown, teardown ------------------------------------------ */

static void set_str(char **field, const char *v)
{
    xfree(*field);
    *field = xstrdup(v);
}

static void on_srv_stopped(struct http_server *srv, void *data)
{
    T.srv_stopped++;
}

static void on_http_stopped(struct http_client *c, void *data)
{
    T.http_stopped++;
}

static void on_conn_stopped(struct connector *c, void *data)
{
    T.conn_stopped++;
    if (c == T.conn)
        http_client_stop(T.http, on_http_stopped, NULL);
}

/* Stops everything; the loop then runs out. */
static void shutdown_all(struct ctx *t)
{
    struct held *hd;

    if (t->shut)
        return;
    t->shut = true;
    if (t->conn2)
        connector_stop(t->conn2, on_conn_stopped, NULL);
    connector_stop(t->conn, on_conn_stopped, NULL);
    for (hd = t->held; hd; hd = hd->next) {
        if (hd->req) {
            uv_timer_stop(&hd->timer);
            respond(hd->req, hd->status, hd->body, -1); /* the client is gone: dropped */
            hd->req = NULL;
            uv_close((uv_handle_t *)&hd->timer, held_closed);
        }
    }
    http_server_stop(t->srv, on_srv_stopped, NULL);
    uv_close((uv_handle_t *)&t->watchdog, NULL);
    uv_close((uv_handle_t *)&t->step, NULL);
}

static void on_watchdog(uv_timer_t *timer)
{
    fail_msg("test hung: %d of %d callbacks", T.done, T.expect);
}

static void on_step(uv_timer_t *timer)
{
    T.step_fn(&T);
}

static void run_later(struct ctx *t, uint64_t ms, void (*fn)(struct ctx *t))
{
    t->step_fn = fn;
    uv_timer_start(&t->step, on_step, ms, 0);
}

static int setup(void **state)
{
    struct ctx *t = &T;
    struct http_server_limits lim = {
        .max_header_bytes = 16384,
        .max_body_bytes = 1 << 20,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 30000,
        .max_connections = 2000,
    };
    char url[128];
    int port;

    memset(t, 0, sizeof(*t));
    assert_int_equal(uv_loop_init(&t->loop), 0);
    t->metrics = metrics_create();
    t->srv = http_server_create(&t->loop, &lim, t->metrics);
    http_server_route(t->srv, "POST", "/oauth/token", "token", h_token, t);
    http_server_route(t->srv, "POST", "/amer/*", "connector", h_connector, t);
    http_server_route(t->srv, "PUT", "/amer/*", "connector_put", h_connector, t);
    assert_int_equal(http_server_listen(t->srv, "127.0.0.1", 0), 0);
    port = http_server_port(t->srv);
    snprintf(t->service_url, sizeof(t->service_url), "http://127.0.0.1:%d/amer/", port);

    config_defaults(&t->cfg);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/oauth/token", port);
    set_str(&t->cfg.token_url, url);
    set_str(&t->cfg.app_id, "app id");
    set_str(&t->cfg.app_password, "s3cr&t=");
    for (size_t i = 0; i < t->cfg.service_url_allow.len; i++)
        xfree(t->cfg.service_url_allow.items[i]);
    t->cfg.service_url_allow.items = xrealloc(t->cfg.service_url_allow.items, sizeof(char *));
    t->cfg.service_url_allow.items[0] = xstrdup("127.0.0.1");
    t->cfg.service_url_allow.len = 1;
    t->cfg.connector_timeout_ms = 5000;
    t->cfg.retry_base_ms = 50;
    t->cfg.retry_max_ms = 5000;

    t->http = http_client_create(&t->loop, t->metrics);
    assert_non_null(t->http);
    t->conn = connector_create(&t->loop, t->http, &t->cfg, t->metrics);
    t->tok_status = 200;
    t->tok_expires_in = 3600;
    t->retry_after_s = -1;
    uv_timer_init(&t->loop, &t->step);
    uv_timer_init(&t->loop, &t->watchdog);
    uv_timer_start(&t->watchdog, on_watchdog, 60000, 0);
    uv_unref((uv_handle_t *)&t->watchdog);
    t->start_ns = uv_hrtime();
    return 0;
}

static int teardown(void **state)
{
    struct ctx *t = &T;
    int i;

    shutdown_all(t);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(t->conn_stopped, t->conn2 ? 2 : 1);
    assert_int_equal(t->http_stopped, 1);
    assert_int_equal(t->srv_stopped, 1);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    connector_free(t->conn);
    connector_free(t->conn2);
    http_client_free(t->http);
    http_server_free(t->srv);
    metrics_free(t->metrics);
    config_free(&t->cfg);
    for (i = 0; i < t->n_tok; i++)
        xfree(t->tok[i].body);
    for (i = 0; i < t->n_conn; i++)
        xfree(t->conn_recs[i].body);
    return 0;
}

/* ---- the client side ---------------------------------------------------- */

static void on_done(const struct connector_result *res, void *data)
{
    struct slot *s = data;

    s->calls++;
    s->err = res->err;
    s->status = res->status;
    s->token_error = res->token_error;
    s->outcome = res->outcome;
    s->retry_after_s = res->retry_after_s;
    s->attempts = res->attempts;
    s->held = res->held;
    s->call = NULL;
    snprintf(s->id, sizeof(s->id), "%s", res->activity_id);
    s->done_ns = uv_hrtime();
    if (++T.done == T.expect)
        shutdown_all(&T);
}

static const char BODY[] = "{\"type\":\"message\",\"text\":\"h\\u00e9llo\",\"n\":[1,2,3]}";

/* Submits one call and asserts it was accepted. */
static void send_to(struct connector *c, enum connector_op op, const char *service_url,
                    const char *conv, const struct connector_opts *opts, struct slot *s)
{
    struct connector_msg m = {
        .op = op,
        .service_url = service_url,
        .conversation_id = conv,
        .activity_id = ACT_ID,
        .body = BODY,
        .body_len = sizeof(BODY) - 1,
        .request_id = "req-1",
    };

    assert_int_equal(connector_send(c, &m, opts, on_done, s), 0);
}

static void send_one(struct ctx *t, enum connector_op op, const struct connector_opts *opts,
                     struct slot *s)
{
    send_to(t->conn, op, t->service_url, CONV_ID, opts, s);
}

/* Runs the loop until expect callbacks have run (and everything stopped). */
static void run(struct ctx *t, int expect)
{
    t->expect = expect;
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(t->done, expect);
}

static void assert_slots_once(const struct ctx *t, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(t->slots[i].calls, 1);
}

static uint64_t metric_value(struct ctx *t, const char *name)
{
    struct buf b;
    const char *p;
    uint64_t v = UINT64_MAX;
    char pat[128];

    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(t->metrics, &b), 0);
    snprintf(pat, sizeof(pat), "\n%s ", name);
    p = strstr(buf_cstr(&b), pat);
    if (p)
        v = strtoull(p + strlen(pat), NULL, 10);
    buf_free(&b);
    return v;
}

/* ---- pure helpers ------------------------------------------------------- */

static void escape_is_rfc3986_segment(void **state)
{
    struct buf b;

    buf_init(&b, 1024);
    assert_int_equal(url_encode_component(&b, CONV_ID), 0);
    assert_string_equal(buf_cstr(&b), CONV_ESC);
    buf_reset(&b);
    assert_int_equal(url_encode_component(&b, "AZaz09-._~ /?#%+\xc3\xa9"), 0);
    assert_string_equal(buf_cstr(&b), "AZaz09-._~%20%2F%3F%23%25%2B%C3%A9");
    buf_free(&b);
    buf_init(&b, 5);
    assert_int_equal(url_encode_component(&b, "::"), DG_ERR_TOO_LARGE);
    buf_free(&b);
}

static void token_lifetime_rules(void **state)
{
    assert_int_equal(token_use_ms(3600), 3300 * 1000);
    assert_int_equal(token_use_ms(601), 301 * 1000);
    assert_int_equal(token_use_ms(600), 300 * 1000); /* 10 minutes: half its life */
    assert_int_equal(token_use_ms(2), 1000);
    assert_int_equal(token_use_ms(1), 500);
    assert_int_equal(token_use_ms(0), 0);
    assert_int_equal(token_use_ms(-5), 0);
}

#define J(s) s, strlen(s)

static void token_parse_is_strict(void **state)
{
    char *tok = NULL;
    int64_t exp = -1;
    const char *ok = "{\"access_token\":\"ey.J\",\"expires_in\":\"3599\"}";

    assert_int_equal(token_parse(ok, strlen(ok), &tok, &exp), 0);
    assert_string_equal(tok, "ey.J");
    assert_int_equal(exp, 3599);
    xfree(tok);
    tok = NULL;
    assert_int_equal(token_parse(J("{\"access_token\":\"a\"}"), &tok, &exp), 0);
    assert_int_equal(exp, 0); /* no lifetime: used for the waiting calls only */
    xfree(tok);
    tok = NULL;
    assert_int_equal(token_parse(J("{\"access_token\":\"a\\r\\nX: y\"}"), &tok, &exp),
                     DG_ERR_PROTOCOL);
    assert_int_equal(token_parse(J("{\"access_token\":\"\"}"), &tok, &exp), DG_ERR_PROTOCOL);
    assert_int_equal(token_parse(J("{\"access_token\":5}"), &tok, &exp), DG_ERR_PROTOCOL);
    assert_int_equal(token_parse(J("{\"access_token\":\"a\"} x"), &tok, &exp), DG_ERR_PROTOCOL);
    assert_int_equal(token_parse(J("[1]"), &tok, &exp), DG_ERR_PROTOCOL);
    assert_int_equal(token_parse("", 0, &tok, &exp), DG_ERR_PROTOCOL);
    assert_null(tok);
}

/*
 * ResourceResponse {"id":…}: strict JSON, and no id cut short by an escaped
 * NUL; otherwise what json-c's tree and lookup gave (fuzz_reply_diff checks
 * that at large): the last "id" counts, a name is read up to its NUL, bytes
 * from 0x80 pass, a body past the stack copy is read the same.
 */
static void resource_id_is_strict(void **state)
{
    static const char *const no_id[] = {"",
                                        "{\"id\":\"a\\u0000b\"}",
                                        "{\"id\":1}",
                                        "{\"id\":\"a\"} x",
                                        "{\"id\":\"a\",}",
                                        "[\"a\"]",
                                        "\"a\"",
                                        "{}",
                                        "{\"x\":{\"id\":\"a\"}}",
                                        "{\"id\":\"a\",\"id\":null}",
                                        "{\"id\":'a'}"};
    static const struct {
        const char *body, *id;
    } found[] = {
        {"{\"id\":\"1:abc\"}\r\n", "1:abc"},
        {" {\"x\":[1,{\"id\":2}],\"id\":\"a\\/b\"} ", "a/b"},
        {"{\"id\":5,\"id\":\"last\"}", "last"},
        {"{\"id\\u0000x\":\"nul-named\"}", "nul-named"},
        {"{\"id\":\"\xff\xfe\"}", "\xff\xfe"},
    };
    struct buf b;
    char *id;
    size_t i;

    buf_init(&b, 4096);
    for (i = 0; i < ARRAY_SIZE(found); i++) {
        id = connector_resource_id(found[i].body, strlen(found[i].body));
        assert_non_null(id);
        assert_string_equal(id, found[i].id);
        xfree(id);
    }
    for (i = 0; i < ARRAY_SIZE(no_id); i++)
        assert_null(connector_resource_id(no_id[i], strlen(no_id[i])));
    /* Past the 256-byte stack copy: the same answers. */
    assert_int_equal(buf_append_str(&b, "{\"pad\":\""), 0);
    for (i = 0; i < 600; i++)
        assert_int_equal(buf_append_str(&b, "p"), 0);
    assert_int_equal(buf_append_str(&b, "\",\"id\":\"long\"}"), 0);
    id = connector_resource_id(buf_cstr(&b), b.len);
    assert_non_null(id);
    assert_string_equal(id, "long");
    xfree(id);
    assert_null(connector_resource_id(buf_cstr(&b), b.len - 1));
    buf_free(&b);
}

/* The conversation map finds each conversation again, past its first growth. */
static void conversations_are_found_again(void **state)
{
    struct connector c;
    struct conv *first[200];
    char key[32];
    int i;

    memset(&c, 0, sizeof(c));
    list_init(&c.lru);
    hash_table_init(&c.convs, CONV_BUCKETS_MIN);
    for (i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "https://smba/\nconv-%d", i);
        first[i] = conv_get(&c, key, 1000);
    }
    assert_int_equal(c.convs.count, 200);
    assert_true(c.convs.n_buckets > CONV_BUCKETS_MIN);
    for (i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "https://smba/\nconv-%d", i);
        assert_ptr_equal(conv_get(&c, key, 2000), first[i]);
        assert_string_equal(first[i]->key, key);
    }
    assert_int_equal(c.convs.count, 200);
    /* Idle for 30 s: every one is forgotten, oldest first. */
    conv_evict_idle(&c, 1000 + PACE_LONG_WINDOW_MS);
    assert_int_equal(c.convs.count, 0);
    assert_true(list_empty(&c.lru));
    hash_table_free(&c.convs);
}

/* A conversation as conv_get makes one, on the stack (tests of the pure helpers). */
static void conv_fresh(struct conv *cv)
{
    memset(cv, 0, sizeof(*cv));
    list_init(&cv->lru);
    conv_init(cv, 0);
}

static void conv_release(struct conv *cv)
{
    if (cv->sent != cv->inline_sent)
        free(cv->sent);
}

static void pace_slot_keeps_both_windows(void **state)
{
    struct conv cv;
    struct connector c;
    unsigned i;

    memset(&c, 0, sizeof(c));
    list_init(&c.lru);
    conv_fresh(&cv);
    for (i = 0; i < CONNECTOR_PACE_1S - 1; i++)
        pace_record(&c, &cv, 100 + i);
    assert_int_equal(pace_slot(&cv, 200), 200); /* six sent: room for a seventh */
    pace_record(&c, &cv, 200);
    assert_int_equal(pace_slot(&cv, 300), 1100); /* the first of the seven + 1 s */
    assert_int_equal(pace_slot(&cv, 5000), 5000);
    assert_int_equal(cv.cap, CONV_SENT_INLINE);

    /* 60 sends at two a second: the 1 s window is fine, the 30 s one is full. */
    conv_fresh(&cv);
    list_init(&c.lru);
    for (i = 0; i < CONNECTOR_PACE_30S; i++)
        pace_record(&c, &cv, 1000 + 500 * (uint64_t)i);
    assert_int_equal(cv.cap, CONNECTOR_PACE_30S); /* grew past the inline ring, in order */
    assert_int_equal(pace_slot(&cv, 30600), 31000);
    pace_record(&c, &cv, 31000);
    assert_int_equal(pace_slot(&cv, 31000), 31500); /* the second oldest + 30 s */
    conv_release(&cv);

    /* One send every 31 s for a long time: the inline ring is enough. */
    conv_fresh(&cv);
    list_init(&c.lru);
    for (i = 0; i < 1000; i++) {
        assert_int_equal(pace_slot(&cv, 31000 * (uint64_t)i), 31000 * (uint64_t)i);
        pace_record(&c, &cv, 31000 * (uint64_t)i);
    }
    assert_int_equal(cv.cap, CONV_SENT_INLINE);

    /* Send times are 32-bit: the windows hold across the wrap of loop time. */
    conv_fresh(&cv);
    list_init(&c.lru);
    for (i = 0; i < CONNECTOR_PACE_1S; i++)
        pace_record(&c, &cv, UINT32_MAX - 300 + 100 * (uint64_t)i);
    assert_int_equal(pace_slot(&cv, (uint64_t)UINT32_MAX + 400), (uint64_t)UINT32_MAX - 300 + 1000);
}

/*
 * The pacing windows as they were first written (every send time in full,
 * a ring of 60), kept here as the reference for the compact ring.
 */
struct pace_reference {
    uint64_t sent[CONNECTOR_PACE_30S];
    unsigned n, head;
};

static uint64_t pace_reference_slot(const struct pace_reference *r, uint64_t now)
{
    uint64_t at = now, t;

    if (r->n >= CONNECTOR_PACE_1S) {
        t = r->sent[(r->head + CONNECTOR_PACE_30S - CONNECTOR_PACE_1S) % CONNECTOR_PACE_30S] +
            PACE_WINDOW_MS;
        at = t > at ? t : at;
    }
    if (r->n >= CONNECTOR_PACE_30S) {
        t = r->sent[r->head] + PACE_LONG_WINDOW_MS;
        at = t > at ? t : at;
    }
    return at;
}

static void pace_reference_record(struct pace_reference *r, uint64_t now)
{
    r->sent[r->head] = now;
    r->head = (r->head + 1) % CONNECTOR_PACE_30S;
    if (r->n < CONNECTOR_PACE_30S)
        r->n++;
}

/*
 * The compact ring gives the reference's slot for every send of a generated
 * schedule: bursts, steady trickles and long pauses, starting just before
 * loop time passes 2^32, each send taken at its slot as pace_pump does.
 */
static void pace_slot_matches_reference(void **state)
{
    struct conv cv;
    struct connector c;
    struct pace_reference r;
    uint64_t now = (uint64_t)UINT32_MAX - 45000, rng = 0x9e3779b97f4a7c15ULL;
    unsigned i, grown = 0;

    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    list_init(&c.lru);
    conv_fresh(&cv);
    for (i = 0; i < 200000; i++) {
        uint64_t at, kind;

        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        kind = (rng >> 33) % 16;
        if (kind < 10)
            now += (rng >> 40) % 50; /* a burst */
        else if (kind < 15)
            now += 100 + (rng >> 40) % 900; /* a trickle */
        else
            now += 5000 + (rng >> 40) % 40000; /* a pause */
        at = pace_reference_slot(&r, now);
        assert_int_equal(pace_slot(&cv, now), at);
        now = at;
        pace_reference_record(&r, now);
        pace_record(&c, &cv, now);
        if (kind == 15 && (rng >> 20) % 64 == 0) {
            /* Now and then a conversation starts over (forgotten when idle). */
            grown += cv.cap == CONNECTOR_PACE_30S;
            conv_release(&cv);
            conv_fresh(&cv);
            memset(&r, 0, sizeof(r));
        }
    }
    /* The schedule reached the full ring, and started over on the inline one. */
    assert_true(grown > 0);
    conv_release(&cv);
}

static void backoff_is_full_jitter_capped(void **state)
{
    struct connector c;
    struct config cfg;
    bool seen_small = false, seen_large = false;
    int i;

    memset(&c, 0, sizeof(c));
    memset(&cfg, 0, sizeof(cfg));
    cfg.retry_base_ms = 100;
    cfg.retry_max_ms = 1000;
    cfg.connector_retry_after_max_s = 300;
    c.cfg = &cfg;
    c.rng = 12345;
    for (i = 0; i < 200; i++) {
        int64_t w1 = backoff_ms(&c, 1, -1), w3 = backoff_ms(&c, 3, -1);

        assert_true(w1 >= 0 && w1 <= 100);
        assert_true(w3 >= 0 && w3 <= 400);
        assert_true(backoff_ms(&c, 60, -1) <= 1000); /* no overflow past the shift cap */
        seen_small |= w3 < 100;
        seen_large |= w3 > 300;
    }
    assert_true(seen_small && seen_large); /* spread over the window, not fixed */
    assert_int_equal(backoff_ms(&c, 1, 0), 0);
    assert_int_equal(backoff_ms(&c, 1, 1), 1000); /* Retry-After exactly, no jitter */
    /* RETRY_MAX_MS caps our own backoff only; the server's word holds up to the max. */
    assert_int_equal(backoff_ms(&c, 1, 2), 2000);
    assert_false(retry_after_too_long(&c, -1));
    assert_false(retry_after_too_long(&c, 300));
    assert_true(retry_after_too_long(&c, 301));
}

/* ---- against the fake --------------------------------------------------- */

static void reply_reaches_path_with_token_and_body(void **state)
{
    struct ctx *t = &T;
    struct rec *r;

    send_one(t, CONNECTOR_REPLY, NULL, &t->slots[0]);
    run(t, 1);
    assert_slots_once(t, 1);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->slots[0].outcome, HTTP_OUTCOME_OK);
    assert_string_equal(t->slots[0].id, "act-1");
    assert_int_equal(t->slots[0].attempts, 1);

    assert_int_equal(t->n_tok, 1);
    r = &t->tok[0];
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->path, "/oauth/token");
    assert_string_equal(r->ctype, "application/x-www-form-urlencoded");
    assert_string_equal(r->body, "grant_type=client_credentials&client_id=app%20id"
                                 "&client_secret=s3cr%26t%3D"
                                 "&scope=https%3A%2F%2Fapi.botframework.com%2F.default");

    assert_int_equal(t->n_conn, 1);
    r = &t->conn_recs[0];
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->path, "/amer/v3/conversations/" CONV_ESC "/activities/" ACT_ESC);
    assert_string_equal(r->auth, "Bearer tok-1");
    assert_string_equal(r->ctype, "application/json");
    assert_int_equal(r->body_len, sizeof(BODY) - 1);
    assert_memory_equal(r->body, BODY, sizeof(BODY) - 1);
    assert_int_equal(metric_value(t, "digestd_token_refreshes_total"), 1);
}

static void update_send_and_url_without_slash(void **state)
{
    struct ctx *t = &T;
    char no_slash[128];
    int i;

    snprintf(no_slash, sizeof(no_slash), "%.*s", (int)strlen(t->service_url) - 1, t->service_url);
    send_one(t, CONNECTOR_UPDATE, NULL, &t->slots[0]);
    send_to(t->conn, CONNECTOR_SEND, t->service_url, CONV_ID, NULL, &t->slots[1]);
    send_to(t->conn, CONNECTOR_REPLY, no_slash, "a:1", NULL, &t->slots[2]);
    run(t, 3);
    assert_slots_once(t, 3);
    for (i = 0; i < 3; i++)
        assert_int_equal(t->slots[i].err, 0);
    assert_int_equal(t->n_conn, 3);
    assert_int_equal(t->n_tok, 1);
    for (i = 0; i < 3; i++) {
        struct rec *r = &t->conn_recs[i];

        if (strcmp(r->method, "PUT") == 0) {
            assert_string_equal(r->path, "/amer/v3/conversations/" CONV_ESC "/activities/" ACT_ESC);
        } else if (strstr(r->path, CONV_ESC)) {
            assert_string_equal(r->path, "/amer/v3/conversations/" CONV_ESC "/activities");
        } else {
            assert_string_equal(r->path, "/amer/v3/conversations/a%3A1/activities/" ACT_ESC);
        }
        assert_string_equal(r->auth, "Bearer tok-1");
    }
}

static void send_card_renders_the_activity(void **state)
{
    struct ctx *t = &T;
    struct card_address to = {.bot_id = "28:bot",
                              .user_id = "29:user",
                              .conversation_id = CONV_ID,
                              .reply_to_id = ACT_ID};
    struct card_ack_info ack = {.audience = "advisors", .request_id = "r-42"};
    char *expect = NULL;
    size_t len;

    assert_int_equal(card_render(&to, card_ack(&ack), &expect, &len), 0);
    assert_int_equal(connector_send_card(t->conn, CONNECTOR_REPLY, t->service_url, &to,
                                         card_ack(&ack), "r-42", NULL, on_done, &t->slots[0]),
                     0);
    run(t, 1);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->n_conn, 1);
    assert_string_equal(t->conn_recs[0].path,
                        "/amer/v3/conversations/" CONV_ESC "/activities/" ACT_ESC);
    assert_int_equal(t->conn_recs[0].body_len, len);
    assert_memory_equal(t->conn_recs[0].body, expect, len);
    assert_non_null(strstr(expect, "\"replyToId\":\"1:1xyz==\""));
    xfree(expect);
}

/* The error card written without json-c goes out as json-c would write it. */
static void send_error_renders_the_activity(void **state)
{
    struct ctx *t = &T;
    struct card_address to = {.bot_id = "28:bot",
                              .user_id = "29:user",
                              .conversation_id = CONV_ID,
                              .reply_to_id = ACT_ID};
    struct card_error_info e = {"Your digest could not be built.", "upstream \"500\"", "r-43",
                                "Try again in a few minutes."};
    char *expect = NULL;
    size_t len;

    assert_int_equal(card_render(&to, card_error(&e), &expect, &len), 0);
    assert_int_equal(connector_send_error(t->conn, CONNECTOR_REPLY, t->service_url, &to, &e, "r-43",
                                          NULL, on_done, &t->slots[0]),
                     0);
    run(t, 1);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->n_conn, 1);
    assert_string_equal(t->conn_recs[0].path,
                        "/amer/v3/conversations/" CONV_ESC "/activities/" ACT_ESC);
    assert_int_equal(t->conn_recs[0].body_len, len);
    assert_memory_equal(t->conn_recs[0].body, expect, len);
    xfree(expect);
}

static void concurrent_sends_share_one_token_request(void **state)
{
    struct ctx *t = &T;
    char conv[32];
    int i;

    t->tok_delay_ms = 200; /* every send is waiting when the token arrives */
    for (i = 0; i < 200; i++) {
        snprintf(conv, sizeof(conv), "conv-%d", i); /* 200 conversations: no pacing */
        send_to(t->conn, CONNECTOR_REPLY, t->service_url, conv, NULL, &t->slots[i]);
    }
    run(t, 200);
    assert_slots_once(t, 200);
    for (i = 0; i < 200; i++)
        assert_int_equal(t->slots[i].err, 0);
    assert_int_equal(t->n_tok, 1);
    assert_int_equal(t->n_conn, 200);
    for (i = 0; i < 200; i++)
        assert_string_equal(t->conn_recs[i].auth, "Bearer tok-1");
    assert_int_equal(metric_value(t, "digestd_token_refreshes_total"), 1);
}

static void second_send(struct ctx *t)
{
    send_one(t, CONNECTOR_REPLY, NULL, &t->slots[1]);
}

static void expired_token_is_refreshed(void **state)
{
    struct ctx *t = &T;

    t->tok_expires_in = 2; /* a short life: used for half of it, 1 s */
    send_one(t, CONNECTOR_REPLY, NULL, &t->slots[0]);
    run_later(t, 1300, second_send);
    run(t, 2);
    assert_int_equal(t->slots[1].err, 0);
    assert_int_equal(t->n_tok, 2);
    assert_string_equal(t->conn_recs[0].auth, "Bearer tok-1");
    assert_string_equal(t->conn_recs[1].auth, "Bearer tok-2");
}

static void token_within_its_life_is_reused(void **state)
{
    struct ctx *t = &T;

    t->tok_expires_in = 4; /* used for 2 s */
    send_one(t, CONNECTOR_REPLY, NULL, &t->slots[0]);
    run_later(t, 1300, second_send);
    run(t, 2);
    assert_int_equal(t->slots[1].err, 0);
    assert_int_equal(t->n_tok, 1);
    assert_string_equal(t->conn_recs[1].auth, "Bearer tok-1");
}

static void unauthorized_refetches_once_and_retries(void **state)
{
    struct ctx *t = &T;
    char conv[32];
    int i;

    t->reject_token = "tok-1"; /* the first token is revoked */
    for (i = 0; i < 20; i++) {
        snprintf(conv, sizeof(conv), "conv-%d", i);
        send_to(t->conn, CONNECTOR_REPLY, t->service_url, conv, NULL, &t->slots[i]);
    }
    run(t, 20);
    assert_slots_once(t, 20);
    for (i = 0; i < 20; i++) {
        assert_int_equal(t->slots[i].err, 0);
        assert_int_equal(t->slots[i].attempts, 2);
    }
    assert_int_equal(t->n_tok, 2); /* twenty 401s on one token: one refetch */
    assert_int_equal(t->n_conn, 40);
    for (i = 20; i < 40; i++)
        assert_string_equal(t->conn_recs[i].auth, "Bearer tok-2");
}

static void second_unauthorized_is_final(void **state)
{
    struct ctx *t = &T;
    struct connector_opts opts = {.max_attempts = 5, .retry_ambiguous = true};

    t->reject_all = true;
    send_one(t, CONNECTOR_REPLY, &opts, &t->slots[0]);
    run(t, 1);
    assert_int_equal(t->slots[0].err, DG_ERR_PROTOCOL);
    assert_int_equal(t->slots[0].status, 401);
    assert_int_equal(t->slots[0].outcome, HTTP_OUTCOME_FINAL);
    assert_false(t->slots[0].token_error);
    assert_int_equal(t->n_tok, 2);
    assert_int_equal(t->n_conn, 2);
    assert_string_equal(t->conn_recs[1].auth, "Bearer tok-2");
}

static void throttled_waits_for_retry_after(void **state)
{
    struct ctx *t = &T;
    uint64_t gap;

    t->statuses[0] = 429;
    t->statuses[1] = 201;
    t->n_statuses = 2;
    t->retry_after_s = 1;
    send_one(t, CONNECTOR_REPLY, NULL, &t->slots[0]);
    run(t, 1);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->slots[0].attempts, 2);
    assert_string_equal(t->slots[0].id, "act-2");
    assert_int_equal(t->n_conn, 2);
    gap = t->conn_recs[1].at_ns - t->conn_recs[0].at_ns;
    assert_true(gap >= 1000 * MS);
    assert_true(gap < 3000 * MS);
    assert_int_equal(metric_value(t, "digestd_retries_total"), 1);
}

/* One call with a handle and a hold-until time (loop ms from now; 0 = none). */
static void send_held(struct ctx *t, uint64_t hold_in_ms, struct slot *s)
{
    struct connector_msg m = {
        .op = CONNECTOR_REPLY,
        .service_url = t->service_url,
        .conversation_id = CONV_ID,
        .activity_id = ACT_ID,
        .body = BODY,
        .body_len = sizeof(BODY) - 1,
        .request_id = "req-1",
    };

    uv_update_time(&t->loop);
    assert_int_equal(connector_send_call(t->conn, &m, NULL,
                                         hold_in_ms ? uv_now(&t->loop) + hold_in_ms : 0, on_done, s,
                                         &s->call),
                     0);
    assert_non_null(s->call);
}

static void cancel_first(struct ctx *t)
{
    assert_int_equal(t->slots[0].calls, 0);
    connector_call_cancel(t->slots[0].call);
    /* Finished inside the cancel, once. */
    assert_int_equal(t->slots[0].calls, 1);
}

/* A send waiting on a 15 s Retry-After is given up at once by a cancel, never retried. */
static void cancel_ends_a_send_waiting_on_retry_after(void **state)
{
    struct ctx *t = &T;

    t->statuses[0] = 429;
    t->n_statuses = 1;
    t->retry_after_s = 15;
    t->cfg.retry_max_ms = 20000;
    send_held(t, 0, &t->slots[0]);
    run_later(t, 300, cancel_first);
    run(t, 1);
    assert_int_equal(t->slots[0].err, DG_ERR_CLOSED);
    assert_true(t->slots[0].held);
    assert_int_equal(t->slots[0].status, 429);
    assert_int_equal(t->slots[0].retry_after_s, 15);
    assert_int_equal(t->n_conn, 1);
    assert_true(t->slots[0].done_ns - t->start_ns < 2000 * MS);
}

/* A retry whose Retry-After ends past the hold-until time is not waited for. */
static void hold_until_cuts_a_retry_short(void **state)
{
    struct ctx *t = &T;

    t->statuses[0] = 429;
    t->n_statuses = 1;
    t->retry_after_s = 1;
    send_held(t, 500, &t->slots[0]);
    run(t, 1);
    assert_int_equal(t->slots[0].err, DG_ERR_TIMEOUT);
    assert_true(t->slots[0].held);
    assert_int_equal(t->slots[0].outcome, HTTP_OUTCOME_RETRYABLE);
    assert_int_equal(t->slots[0].status, 429);
    assert_int_equal(t->slots[0].retry_after_s, 1);
    assert_int_equal(t->n_conn, 1);
    assert_true(t->slots[0].done_ns - t->start_ns < 900 * MS);
}

/* A hold-until time already past: nothing leaves, not even a token request. */
static void hold_until_past_sends_nothing(void **state)
{
    struct ctx *t = &T;

    send_held(t, 1, &t->slots[0]);
    uv_sleep(5);
    run(t, 1);
    assert_true(t->slots[0].held);
    assert_int_equal(t->slots[0].err, DG_ERR_TIMEOUT);
    assert_int_equal(t->n_conn, 0);
    assert_int_equal(t->n_tok, 0);
}

/*
 * A Retry-After longer than RETRY_MAX_MS but within CONNECTOR_RETRY_AFTER_MAX_S
 * is waited out, for a POST with the default options as the webhook's
 * acknowledgment used to lose it, and the card then goes out once.
 */
static void retry_after_past_retry_max_is_waited(void **state)
{
    struct ctx *t = &T;
    uint64_t gap;

    t->cfg.retry_max_ms = 100; /* our own backoff: far below the server's 1 s */
    t->statuses[0] = 429;
    t->statuses[1] = 201;
    t->n_statuses = 2;
    t->retry_after_s = 1;
    send_one(t, CONNECTOR_REPLY, NULL, &t->slots[0]);
    run(t, 1);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->slots[0].outcome, HTTP_OUTCOME_OK);
    assert_int_equal(t->slots[0].attempts, 2);
    assert_string_equal(t->slots[0].id, "act-2");
    assert_int_equal(t->n_conn, 2); /* one refused, one delivered: sent once */
    gap = t->conn_recs[1].at_ns - t->conn_recs[0].at_ns;
    assert_true(gap >= 1000 * MS);
    assert_int_equal(metric_value(t, "digestd_retries_total"), 1);
}

/* Past CONNECTOR_RETRY_AFTER_MAX_S the send fails at once as throttled (final: nobody waits). */
static void retry_after_past_the_max_fails_as_throttled(void **state)
{
    struct ctx *t = &T;
    struct connector_opts opts = {.max_attempts = 5, .retry_ambiguous = true};

    t->cfg.connector_retry_after_max_s = 2;
    t->statuses[0] = 429;
    t->n_statuses = 1;
    t->retry_after_s = 3;
    send_one(t, CONNECTOR_REPLY, &opts, &t->slots[0]);
    send_to(t->conn, CONNECTOR_UPDATE, t->service_url, "c-2", NULL, &t->slots[1]);
    run(t, 2);
    assert_slots_once(t, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(t->slots[i].err, DG_ERR_PROTOCOL);
        assert_int_equal(t->slots[i].status, 429);
        assert_int_equal(t->slots[i].outcome, HTTP_OUTCOME_FINAL);
        assert_int_equal(t->slots[i].retry_after_s, 3);
        assert_int_equal(t->slots[i].attempts, 1); /* not waited out, not sent again */
    }
    assert_int_equal(t->n_conn, 2);
    assert_int_equal(metric_value(t, "digestd_retries_total"), 0);
}

/* The acknowledgment's options (retry_ambiguous): 502 and 504 are retried, as for results. */
static void ambiguous_gateway_errors_retried_when_asked(void **state)
{
    struct ctx *t = &T;
    struct connector_opts ack = {.max_attempts = 3, .retry_ambiguous = true};

    t->statuses[0] = 502;
    t->statuses[1] = 504;
    t->statuses[2] = 201;
    t->n_statuses = 3;
    send_one(t, CONNECTOR_REPLY, &ack, &t->slots[0]);
    run(t, 1);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->slots[0].attempts, 3);
    assert_string_equal(t->slots[0].id, "act-3");
    assert_int_equal(t->n_conn, 3);
    assert_int_equal(metric_value(t, "digestd_retries_total"), 2);
}

static void unavailable_backs_off_then_succeeds(void **state)
{
    struct ctx *t = &T;

    t->statuses[0] = 503;
    t->statuses[1] = 503;
    t->statuses[2] = 201;
    t->n_statuses = 3;
    send_one(t, CONNECTOR_REPLY, NULL, &t->slots[0]); /* 3 attempts by default */
    run(t, 1);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->slots[0].attempts, 3);
    assert_string_equal(t->slots[0].id, "act-3");
    assert_int_equal(t->n_conn, 3);
    assert_int_equal(t->n_tok, 1);
    /* Waits of at most 50 and 100 ms (RETRY_BASE_MS 50): full jitter, bounded. */
    assert_true(t->conn_recs[2].at_ns - t->conn_recs[0].at_ns < 1000 * MS);
    assert_int_equal(metric_value(t, "digestd_retries_total"), 2);
}

static void unavailable_spends_the_budget(void **state)
{
    struct ctx *t = &T;
    struct connector_opts opts = {.max_attempts = 4};

    t->statuses[0] = 503;
    t->n_statuses = 1;
    send_one(t, CONNECTOR_REPLY, &opts, &t->slots[0]);
    run(t, 1);
    assert_int_equal(t->slots[0].err, DG_ERR_PROTOCOL);
    assert_int_equal(t->slots[0].status, 503);
    assert_int_equal(t->slots[0].outcome, HTTP_OUTCOME_RETRYABLE);
    assert_int_equal(t->slots[0].attempts, 4);
    assert_int_equal(t->n_conn, 4);
}

static void ambiguous_post_is_not_retried_by_default(void **state)
{
    struct ctx *t = &T;
    struct connector_opts yes = {.max_attempts = 2, .retry_ambiguous = true};

    t->statuses[0] = 502;
    t->n_statuses = 1;
    send_to(t->conn, CONNECTOR_REPLY, t->service_url, "c-1", NULL, &t->slots[0]);
    send_to(t->conn, CONNECTOR_REPLY, t->service_url, "c-2", &yes, &t->slots[1]);
    send_to(t->conn, CONNECTOR_UPDATE, t->service_url, "c-3", NULL, &t->slots[2]);
    run(t, 3);
    assert_slots_once(t, 3);
    assert_int_equal(t->slots[0].attempts, 1);
    assert_int_equal(t->slots[0].outcome, HTTP_OUTCOME_RETRYABLE); /* the caller may decide */
    assert_int_equal(t->slots[0].status, 502);
    assert_int_equal(t->slots[1].attempts, 2);
    assert_int_equal(t->slots[2].attempts, 3); /* PUT is idempotent */
    assert_int_equal(t->n_conn, 6);
}

static void forbidden_is_not_retried(void **state)
{
    struct ctx *t = &T;
    struct connector_opts opts = {.max_attempts = 5, .retry_ambiguous = true};

    t->statuses[0] = 403;
    t->n_statuses = 1;
    send_one(t, CONNECTOR_REPLY, &opts, &t->slots[0]);
    run(t, 1);
    assert_int_equal(t->slots[0].err, DG_ERR_PROTOCOL);
    assert_int_equal(t->slots[0].status, 403);
    assert_int_equal(t->slots[0].outcome, HTTP_OUTCOME_FINAL);
    assert_int_equal(t->slots[0].attempts, 1);
    assert_int_equal(t->n_conn, 1);
    assert_int_equal(metric_value(t, "digestd_retries_total"), 0);
}

static void token_endpoint_errors(void **state)
{
    struct ctx *t = &T;

    t->tok_status = 400; /* a bad secret: final, and the connector never sees a thing */
    send_one(t, CONNECTOR_REPLY, NULL, &t->slots[0]);
    run(t, 1);
    assert_int_equal(t->slots[0].err, DG_ERR_PROTOCOL);
    assert_int_equal(t->slots[0].status, 400);
    assert_true(t->slots[0].token_error);
    assert_int_equal(t->slots[0].outcome, HTTP_OUTCOME_FINAL);
    assert_int_equal(t->n_tok, 1);
    assert_int_equal(t->n_conn, 0);
}

static void token_endpoint_outage_is_retried(void **state)
{
    struct ctx *t = &T;

    t->tok_status = 503;
    send_one(t, CONNECTOR_REPLY, NULL, &t->slots[0]);
    run(t, 1);
    assert_int_equal(t->slots[0].status, 503);
    assert_true(t->slots[0].token_error);
    assert_int_equal(t->slots[0].outcome, HTTP_OUTCOME_RETRYABLE);
    assert_int_equal(t->slots[0].attempts, 3);
    assert_int_equal(t->n_tok, 3);
    assert_int_equal(t->n_conn, 0);
}

static void nothing_sent(struct ctx *t)
{
    shutdown_all(t);
}

static void refused_service_url_sends_nothing(void **state)
{
    struct ctx *t = &T;
    char other[128], query[160];
    const char *bad[] = {"https://evil.example.com/",
                         "ftp://127.0.0.1/",
                         "",
                         other,
                         "http://user@127.0.0.1/",
                         query};
    struct connector_msg m = {.op = CONNECTOR_REPLY,
                              .conversation_id = CONV_ID,
                              .activity_id = ACT_ID,
                              .body = BODY,
                              .body_len = sizeof(BODY) - 1};
    struct card_address to = {
        .bot_id = "b", .user_id = "u", .conversation_id = "c", .reply_to_id = "r"};
    size_t i;

    /* Loopback but not listed: "localhost" and "127.0.0.2" are other entries. */
    snprintf(other, sizeof(other), "http://localhost:%d/amer/", http_server_port(t->srv));
    snprintf(query, sizeof(query), "%.100s?x=1", t->service_url);
    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        m.service_url = bad[i];
        assert_int_equal(connector_send(t->conn, &m, NULL, on_done, &t->slots[0]), DG_ERR_INVALID);
    }
    assert_int_equal(connector_send_card(t->conn, CONNECTOR_REPLY, other, &to, card_help(NULL, 0),
                                         NULL, NULL, on_done, &t->slots[0]),
                     DG_ERR_INVALID);
    /* Malformed messages are refused the same way. */
    m.service_url = t->service_url;
    m.activity_id = "";
    assert_int_equal(connector_send(t->conn, &m, NULL, on_done, &t->slots[0]), DG_ERR_INVALID);
    m.activity_id = ACT_ID;
    m.body_len = 0;
    assert_int_equal(connector_send(t->conn, &m, NULL, on_done, &t->slots[0]), DG_ERR_INVALID);
    assert_int_equal(connector_pending(t->conn), 0);
    run_later(t, 300, nothing_sent);
    run(t, 0);
    assert_int_equal(t->slots[0].calls, 0);
    assert_int_equal(t->n_tok, 0);
    assert_int_equal(t->n_conn, 0);
}

static void pacing_holds_one_conversation_only(void **state)
{
    struct ctx *t = &T;
    uint64_t first = UINT64_MAX, last = 0, b_last = 0, a_at[32];
    int i, n_a = 0;

    for (i = 0; i < 20; i++)
        send_to(t->conn, CONNECTOR_REPLY, t->service_url, "conv-A", NULL, &t->slots[i]);
    for (i = 20; i < 25; i++)
        send_to(t->conn, CONNECTOR_REPLY, t->service_url, "conv-B", NULL, &t->slots[i]);
    run(t, 25);
    assert_slots_once(t, 25);
    for (i = 0; i < t->n_conn; i++) {
        struct rec *r = &t->conn_recs[i];

        if (strstr(r->path, "conv-A")) {
            a_at[n_a++] = r->at_ns;
            first = r->at_ns < first ? r->at_ns : first;
            last = r->at_ns > last ? r->at_ns : last;
        } else {
            b_last = r->at_ns > b_last ? r->at_ns : b_last;
        }
    }
    assert_int_equal(n_a, 20);
    /* 7 + 7 + 6: the third group cannot start before 2 s. */
    assert_true(last - first >= 1900 * MS);
    assert_true(last - first < 4000 * MS);
    /* No 1 s window held more than 7 (a little slack for the network). */
    for (i = 0; i + CONNECTOR_PACE_1S < n_a; i++)
        assert_true(a_at[i + CONNECTOR_PACE_1S] - a_at[i] >= 950 * MS);
    /* The other conversation went straight through. */
    assert_true(b_last - t->start_ns < 500 * MS);
    for (i = 20; i < 25; i++)
        assert_true(t->slots[i].done_ns - t->start_ns < 500 * MS);
}

static void stop_now(struct ctx *t)
{
    int i;

    assert_int_equal(connector_pending(t->conn), 12);
    assert_int_equal(connector_pending(t->conn2), 1);
    shutdown_all(t);
    /* Every callback has run, once, before the stops returned. */
    assert_int_equal(t->done, 13);
    for (i = 0; i < 13; i++) {
        assert_int_equal(t->slots[i].calls, 1);
        assert_int_equal(t->slots[i].err, DG_ERR_CLOSED);
    }
}

/* conn2 has no token yet, and the fake will not answer its fetch. */
static void start_conn2(struct ctx *t)
{
    assert_int_equal(t->n_tok, 1);
    t->conn2 = connector_create(&t->loop, t->http, &t->cfg, t->metrics);
    send_to(t->conn2, CONNECTOR_REPLY, t->service_url, "conv-Z", NULL, &t->slots[12]);
    run_later(t, 300, stop_now);
}

static void stop_finishes_pending_calls_once(void **state)
{
    struct ctx *t = &T;
    int i;

    t->tok_hold_after = 1; /* token requests after the first hang */
    t->hold = true;        /* so do connector requests… */
    t->special = "conv-Y"; /* …but conv-Y's is refused for 15 s: a long wait */
    t->special_status = 429;
    t->retry_after_s = 15;
    t->cfg.retry_max_ms = 20000;
    send_to(t->conn, CONNECTOR_REPLY, t->service_url, "conv-Y", NULL, &t->slots[0]);
    /* conv-X: 7 go out and hang, 4 wait for a pacing slot. */
    for (i = 1; i < 12; i++)
        send_to(t->conn, CONNECTOR_REPLY, t->service_url, "conv-X", NULL, &t->slots[i]);
    run_later(t, 200, start_conn2);
    run(t, 13);
    assert_slots_once(t, 13);
    assert_int_equal(t->n_tok, 2);
    assert_int_equal(t->n_conn, 8);
}

/* 7 sent (and hanging), 120 waiting: the 5 past the cap failed at once. */
static void flood_checked(struct ctx *t)
{
    int i, refused = 0;

    for (i = 0; i < 7 + CONNECTOR_PACE_MAX_WAITING + 5; i++) {
        if (t->slots[i].calls == 1) {
            assert_int_equal(t->slots[i].err, DG_ERR_UNAVAILABLE);
            assert_int_equal(t->slots[i].outcome, HTTP_OUTCOME_RETRYABLE);
            refused++;
        }
    }
    assert_int_equal(refused, 5);
    assert_int_equal(t->n_conn, 7);
    shutdown_all(t);
}

static void pacing_queue_is_bounded(void **state)
{
    struct ctx *t = &T;
    int i, n = 7 + CONNECTOR_PACE_MAX_WAITING + 5;

    t->hold = true; /* the connector never answers: nothing leaves the windows */
    for (i = 0; i < n; i++)
        send_to(t->conn, CONNECTOR_REPLY, t->service_url, "conv-F", NULL, &t->slots[i]);
    run_later(t, 300, flood_checked);
    run(t, n);
    assert_slots_once(t, n);
}

/* ---- a flooded conversation's log lines --------------------------------- */

static FILE *log_file; /* stderr goes here while a test counts log lines */
static int saved_stderr = -1;

static void capture_log(void)
{
    log_file = tmpfile();
    assert_non_null(log_file);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(log_file), STDERR_FILENO);
    log_setup(LOG_LEVEL_WARN, false);
}

/* Restores stderr; the captured text (owned). */
static char *captured_log(void)
{
    struct buf b;
    char chunk[4096];
    size_t n;

    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    log_setup(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, false);
    rewind(log_file);
    buf_init(&b, 1 << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), log_file)) > 0)
        assert_int_equal(buf_append(&b, chunk, n), 0);
    fclose(log_file);
    return buf_take(&b);
}

/* Lines of text holding both a and b. */
static int lines_with(const char *text, const char *a, const char *b)
{
    int n = 0;

    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        char *line = xstrndup(l, len);

        n += strstr(line, a) && strstr(line, b);
        xfree(line);
    }
    return n;
}

static int n_flood; /* sends submitted by the flood test */

static void flood(struct ctx *t, const char *conv, int n)
{
    for (int i = 0; i < n; i++, n_flood++)
        send_to(t->conn, CONNECTOR_REPLY, t->service_url, conv, NULL, &t->slots[n_flood]);
}

/* The sweep says what was refused since the last line, then everything stops. */
static void flood_step3(struct ctx *t)
{
    on_sweep(&t->conn->sweep);
    shutdown_all(t);
}

/* Past the interval: this refusal brings a line with the count, the next four wait. */
static void flood_step2(struct ctx *t)
{
    assert_int_equal(metric_value(t, "digestd_connector_pacing_refused_total"), 20 + 2 + 5);
    flood(t, "conv-F", 1);
    flood(t, "conv-F", 4);
    run_later(t, 400, flood_step3);
}

/* Within the interval: counted, not said. */
static void flood_step1(struct ctx *t)
{
    assert_int_equal(metric_value(t, "digestd_connector_pacing_refused_total"), 20 + 2);
    flood(t, "conv-F", 5);
    run_later(t, 400, flood_step2);
}

/* A failed assertion leaves stderr captured: give it back before the next test. */
static int teardown_log(void **state)
{
    if (saved_stderr >= 0)
        xfree(captured_log());
    return teardown(state);
}

static void flooded_conversation_warns_once_per_interval(void **state)
{
    struct ctx *t = &T;
    const int full = 7 + CONNECTOR_PACE_MAX_WAITING; /* in flight (held) + waiting */
    char *log;
    int i, refused = 0;

    t->hold = true; /* nothing leaves the windows */
    t->conn->refusal_log_ms = 300;
    n_flood = 0;
    capture_log();
    flood(t, "conv-F", full + 20);
    flood(t, "conv-G", full + 2);
    run_later(t, 100, flood_step1);
    run(t, n_flood + 5 + 1 + 4); /* the steps send ten more */
    log = captured_log();
    assert_slots_once(t, n_flood);
    for (i = 0; i < n_flood; i++)
        refused += t->slots[i].err == DG_ERR_UNAVAILABLE;
    assert_int_equal(refused, 20 + 2 + 5 + 1 + 4);
    /* conv-F: the first refusal, "25 more" past the interval, "4 more" from the sweep. */
    assert_int_equal(lines_with(log, "conv-F", "pacing limits"), 3);
    assert_int_equal(lines_with(log, "conv-F", "refused at once"), 1);
    assert_int_equal(lines_with(log, "conv-F", ": 25 more sends refused"), 1);
    assert_int_equal(lines_with(log, "conv-F", ": 4 more sends refused"), 1);
    /* conv-G has lines of its own: its first refusal, then the sweep's "1 more". */
    assert_int_equal(lines_with(log, "conv-G", "pacing limits"), 2);
    assert_int_equal(lines_with(log, "conv-G", ": 1 more sends refused"), 1);
    xfree(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(escape_is_rfc3986_segment),
        cmocka_unit_test(token_lifetime_rules),
        cmocka_unit_test(token_parse_is_strict),
        cmocka_unit_test(resource_id_is_strict),
        cmocka_unit_test(conversations_are_found_again),
        cmocka_unit_test(pace_slot_keeps_both_windows),
        cmocka_unit_test(pace_slot_matches_reference),
        cmocka_unit_test(backoff_is_full_jitter_capped),
        cmocka_unit_test_setup_teardown(reply_reaches_path_with_token_and_body, setup, teardown),
        cmocka_unit_test_setup_teardown(update_send_and_url_without_slash, setup, teardown),
        cmocka_unit_test_setup_teardown(send_card_renders_the_activity, setup, teardown),
        cmocka_unit_test_setup_teardown(send_error_renders_the_activity, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_sends_share_one_token_request, setup, teardown),
        cmocka_unit_test_setup_teardown(expired_token_is_refreshed, setup, teardown),
        cmocka_unit_test_setup_teardown(token_within_its_life_is_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(unauthorized_refetches_once_and_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(second_unauthorized_is_final, setup, teardown),
        cmocka_unit_test_setup_teardown(throttled_waits_for_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_ends_a_send_waiting_on_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(hold_until_cuts_a_retry_short, setup, teardown),
        cmocka_unit_test_setup_teardown(hold_until_past_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(retry_after_past_retry_max_is_waited, setup, teardown),
        cmocka_unit_test_setup_teardown(retry_after_past_the_max_fails_as_throttled, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ambiguous_gateway_errors_retried_when_asked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(unavailable_backs_off_then_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(unavailable_spends_the_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(ambiguous_post_is_not_retried_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(forbidden_is_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(token_endpoint_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(token_endpoint_outage_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_service_url_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(pacing_holds_one_conversation_only, setup, teardown),
        cmocka_unit_test_setup_teardown(pacing_queue_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(flooded_conversation_warns_once_per_interval, setup,
                                        teardown_log),
        cmocka_unit_test_setup_teardown(stop_finishes_pending_calls_once, setup, teardown),
    };

    /* Loopback only: a proxy from the environment must not intercept. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    unsetenv("all_proxy");
    log_setup(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, false);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
