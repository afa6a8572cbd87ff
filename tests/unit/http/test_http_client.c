/*
 * test_http_client.c: the curl ⇄ libuv client against a real HTTP/1.1 server
 * running in the same loop. The server (tserver below) reads each request,
 * records its exact bytes, and answers a canned reply chosen by request
 * number after an optional delay, or never: curl's <reply>/<verify> idea.
 * Every test ends with the client stopped, the server closed and
 * uv_loop_close() == 0, and checks each callback ran exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "http/http_client.h"
#include "core/clock.h"
#include "core/log.h"

#define MAX_REPLIES 4
#define MAX_SLOTS 1200 /* the shard tests hold 600 at once, twice */
#define MS 1000000ull

/* ---- a tiny HTTP/1.1 server --------------------------------------------- */

struct tconn;

struct tserver {
    uv_tcp_t listener;
    int port;
    const char *replies[MAX_REPLIES]; /* reply to request i (the last repeats); NULL: silence */
    size_t n_replies;
    uint64_t delay_ms; /* before each reply */
    int accepts;
    int requests;
    struct buf log; /* every request received, concatenated */
    struct tconn *conns;
};

struct tconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    struct tserver *srv;
    struct tconn *prev, *next;
    struct buf in;
    const char *reply; /* being delayed or written */
    int open;          /* handles not yet closed */
    bool busy;         /* answering a request (or ignoring it for good) */
    bool closing;
};

static void conn_closed(uv_handle_t *h)
{
    struct tconn *tc = h->data;

    if (--tc->open == 0) {
        buf_free(&tc->in);
        xfree(tc);
    }
}

static void conn_close(struct tconn *tc)
{
    struct tserver *srv = tc->srv;

    if (tc->closing)
        return;
    tc->closing = true;
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        srv->conns = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    uv_close((uv_handle_t *)&tc->tcp, conn_closed);
    uv_close((uv_handle_t *)&tc->timer, conn_closed);
}

/* Length of the first complete request in b (headers + Content-Length), or 0. */
static size_t request_len(const struct buf *b)
{
    const char *end = b->data ? memmem(b->data, b->len, "\r\n\r\n", 4) : NULL;
    size_t head, body = 0, i;

    if (!end)
        return 0;
    head = (size_t)(end - b->data) + 4;
    for (i = 2; i < head; i++)
        if (b->data[i - 2] == '\r' && b->data[i - 1] == '\n' &&
            strncasecmp(b->data + i, "Content-Length:", 15) == 0)
            body = strtoul(b->data + i + 15, NULL, 10);
    return b->len >= head + body ? head + body : 0;
}

static void conn_next(struct tconn *tc);

static void on_written(uv_write_t *wr, int status)
{
    struct tconn *tc = container_of(wr, struct tconn, wr);

    tc->busy = false;
    if (status < 0 || strstr(tc->reply, "Connection: close"))
        conn_close(tc);
    else
        conn_next(tc);
}

static void conn_write(struct tconn *tc)
{
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)tc->reply, (unsigned)strlen(tc->reply));

    if (uv_write(&tc->wr, (uv_stream_t *)&tc->tcp, &b, 1, on_written) != 0)
        conn_close(tc);
}

static void on_delay(uv_timer_t *t)
{
    conn_write(container_of(t, struct tconn, timer));
}

/* Answers the next buffered request, if any and if idle. */
static void conn_next(struct tconn *tc)
{
    struct tserver *srv = tc->srv;
    size_t n = tc->closing || tc->busy ? 0 : request_len(&tc->in);
    size_t i;

    if (!n)
        return;
    assert_int_equal(buf_append(&srv->log, tc->in.data, n), 0);
    i = (size_t)srv->requests++;
    tc->reply = srv->replies[i < srv->n_replies ? i : srv->n_replies - 1];
    buf_consume(&tc->in, n);
    tc->busy = true;
    if (!tc->reply)
        return; /* never answers this connection again */
    if (srv->delay_ms)
        uv_timer_start(&tc->timer, on_delay, srv->delay_ms, 0);
    else
        conn_write(tc);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    *b = uv_buf_init(xmalloc(65536), 65536);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct tconn *tc = container_of((uv_tcp_t *)s, struct tconn, tcp);

    if (nread < 0)
        conn_close(tc);
    else if (nread > 0 && buf_append(&tc->in, b->base, (size_t)nread) == 0)
        conn_next(tc);
    xfree(b->base);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct tserver *srv = container_of((uv_tcp_t *)listener, struct tserver, listener);
    struct tconn *tc;

    assert_int_equal(status, 0);
    tc = xcalloc(1, sizeof(*tc));
    tc->srv = srv;
    buf_init(&tc->in, 1 << 20);
    uv_tcp_init(listener->loop, &tc->tcp);
    uv_timer_init(listener->loop, &tc->timer);
    tc->tcp.data = tc->timer.data = tc;
    tc->open = 2;
    tc->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = tc;
    srv->conns = tc;
    srv->accepts++;
    assert_int_equal(uv_accept(listener, (uv_stream_t *)&tc->tcp), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&tc->tcp, on_alloc, on_read), 0);
}

static void tserver_start(struct tserver *srv, uv_loop_t *loop)
{
    struct sockaddr_in addr;
    struct sockaddr_storage got;
    int len = sizeof(got);

    buf_init(&srv->log, 1 << 22);
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_init(loop, &srv->listener), 0);
    assert_int_equal(uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection), 0);
    assert_int_equal(uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&got, &len), 0);
    srv->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void tserver_stop(struct tserver *srv)
{
    uv_close((uv_handle_t *)&srv->listener, NULL);
    while (srv->conns)
        conn_close(srv->conns);
}

/* ---- the client side ---------------------------------------------------- */

struct ctx;

struct slot {
    struct ctx *t;
    int calls; /* must end at exactly 1 */
    int err;
    long status;
    char *body;
    size_t body_len;
    int64_t retry_after_s;
    char error[256];
    uint64_t elapsed_ns;
    bool during_cancel; /* the callback ran inside http_client_cancel */
};

struct ctx {
    uv_loop_t loop;
    struct tserver srv;
    struct http_client *client;
    struct metrics *metrics;
    uv_timer_t watchdog; /* fails a test that hangs */
    uv_timer_t step;     /* a test's scheduled action */
    void (*step_fn)(struct ctx *t);
    void (*on_each)(struct slot *s); /* runs inside every done callback */
    int done;
    int expect;  /* after this many callbacks everything shuts down */
    int stopped; /* stopped_cb calls */
    bool in_cancel;
    bool shut;
    char url[256];
    struct slot slots[MAX_SLOTS];
};

static struct ctx T; /* one test at a time; large, so not on the stack */

/*
 * Proxy tests: these variables are set to this test server's own address
 * just before http_client_create, and cleared right after it.
 */
static const char *const *proxy_vars;

static void on_stopped(struct http_client *c, void *data)
{
    struct ctx *t = data;

    assert_ptr_equal(c, t->client);
    t->stopped++;
}

static void shutdown_all(struct ctx *t)
{
    if (t->shut)
        return;
    t->shut = true;
    http_client_stop(t->client, on_stopped, t);
    tserver_stop(&t->srv);
    uv_close((uv_handle_t *)&t->step, NULL);
    uv_close((uv_handle_t *)&t->watchdog, NULL);
}

static void on_done(const struct http_client_response *res, void *data)
{
    struct slot *s = data;
    struct ctx *t = s->t;

    s->calls++;
    s->err = res->err;
    s->status = res->status;
    s->body_len = res->body->len;
    s->body = buf_take(res->body); /* ownership moves to the test */
    s->retry_after_s = res->retry_after_s;
    snprintf(s->error, sizeof(s->error), "%s", res->error);
    s->elapsed_ns = res->elapsed_ns;
    s->during_cancel = t->in_cancel;
    if (t->on_each)
        t->on_each(s);
    if (++t->done == t->expect)
        shutdown_all(t);
}

static void on_watchdog(uv_timer_t *timer)
{
    fail_msg("test hung: %d of %d callbacks", T.done, T.expect);
}

static void on_step(uv_timer_t *timer)
{
    struct ctx *t = container_of(timer, struct ctx, step);

    t->step_fn(t);
}

/* replies: up to MAX_REPLIES canned responses by request number. */
static struct ctx *ctx_init(uint64_t delay_ms, int expect, const char *r0, const char *r1)
{
    struct ctx *t = &T;
    int i;

    memset(t, 0, sizeof(*t));
    assert_int_equal(uv_loop_init(&t->loop), 0);
    t->srv.replies[0] = r0;
    t->srv.replies[1] = r1;
    t->srv.n_replies = r1 ? 2 : 1;
    t->srv.delay_ms = delay_ms;
    tserver_start(&t->srv, &t->loop);
    t->metrics = metrics_create();
    for (i = 0; proxy_vars && proxy_vars[i]; i++) {
        char self[64];

        snprintf(self, sizeof(self), "http://127.0.0.1:%d", t->srv.port);
        setenv(proxy_vars[i], strcmp(proxy_vars[i], "no_proxy") ? self : "127.0.0.1", 1);
    }
    t->client = http_client_create(&t->loop, t->metrics);
    assert_non_null(t->client);
    for (i = 0; proxy_vars && proxy_vars[i]; i++)
        unsetenv(proxy_vars[i]);
    proxy_vars = NULL;
    uv_timer_init(&t->loop, &t->step);
    uv_timer_init(&t->loop, &t->watchdog);
    uv_timer_start(&t->watchdog, on_watchdog, 30000, 0);
    uv_unref((uv_handle_t *)&t->watchdog);
    t->expect = expect;
    for (i = 0; i < MAX_SLOTS; i++) {
        t->slots[i].t = t;
        t->slots[i].retry_after_s = -2;
    }
    return t;
}

static void run_later(struct ctx *t, uint64_t ms, void (*fn)(struct ctx *t))
{
    t->step_fn = fn;
    uv_timer_start(&t->step, on_step, ms, 0);
}

/* Runs the loop to the end and checks nothing of ours or the server's remains. */
static void ctx_finish(struct ctx *t)
{
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(t->stopped, 1);
    assert_int_equal(http_client_pending(t->client), 0);
    http_client_free(t->client);
    assert_int_equal(uv_loop_close(&t->loop), 0);
}

/* cmocka teardown: what the assertions read after ctx_finish. */
static int ctx_cleanup(void **state)
{
    int i;

    metrics_free(T.metrics);
    T.metrics = NULL;
    buf_free(&T.srv.log);
    for (i = 0; i < MAX_SLOTS; i++) {
        xfree(T.slots[i].body);
        T.slots[i].body = NULL;
    }
    return 0;
}

static struct http_client_request req_to(struct ctx *t, const char *method, const char *path)
{
    struct http_client_request req = {
        .method = method,
        .url = t->url,
        .timeout_ms = 5000,
        .max_response_bytes = 1 << 16,
    };

    snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d%s", t->srv.port, path);
    return req;
}

static void send_ok(struct ctx *t, const struct http_client_request *req, struct slot *s)
{
    assert_int_equal(http_client_send(t->client, req, on_done, s, NULL), 0);
}

static const char *log_text(struct ctx *t)
{
    return buf_cstr(&t->srv.log);
}

/* ---- tests ------------------------------------------------------------------ */

static void get_returns_status_and_body(void **state)
{
    static const enum metrics_hist upstream = METRICS_H_UPSTREAM;
    struct ctx *t = ctx_init(0, 1, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", NULL);
    struct http_client_request req = req_to(t, "GET", "/api/digest?audience=a%20b");
    struct buf text;
    char want[512];

    req.hist = &upstream;
    send_ok(t, &req, &t->slots[0]);
    /* The callback never runs inside send. */
    assert_int_equal(t->slots[0].calls, 0);
    assert_int_equal(http_client_pending(t->client), 1);
    ctx_finish(t);
    assert_int_equal(t->slots[0].calls, 1);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->slots[0].status, 200);
    assert_string_equal(t->slots[0].body, "hello");
    assert_int_equal(t->slots[0].retry_after_s, -1);
    assert_string_equal(t->slots[0].error, "");
    snprintf(want, sizeof(want),
             "GET /api/digest?audience=a%%20b HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "User-Agent: digestd/" DIGESTD_VERSION "\r\nAccept: */*\r\n\r\n",
             t->srv.port);
    assert_string_equal(log_text(t), want);
    /* The latency went to the histogram the request named, and only there. */
    buf_init(&text, 1 << 20);
    assert_int_equal(metrics_render(t->metrics, &text), 0);
    assert_non_null(strstr(buf_cstr(&text), "digestd_upstream_duration_seconds_count 1\n"));
    assert_non_null(strstr(buf_cstr(&text), "digestd_connector_duration_seconds_count 0\n"));
    buf_free(&text);
}

static void post_sends_headers_and_body_exactly(void **state)
{
    static const char body[] = "{\"a\":1}\0z"; /* a NUL inside must survive */
    static const char *const headers[] = {"Content-Type: application/json", "X-Request-Id: r-1"};
    struct ctx *t = ctx_init(0, 1, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", NULL);
    struct http_client_request req = req_to(t, "POST", "/v3/conversations/a%3Ab/activities");
    char want[1024];
    int n;

    req.headers = headers;
    req.n_headers = ARRAY_SIZE(headers);
    req.body = body;
    req.body_len = sizeof(body) - 1;
    send_ok(t, &req, &t->slots[0]);
    ctx_finish(t);
    assert_int_equal(t->slots[0].status, 201);
    n = snprintf(want, sizeof(want),
                 "POST /v3/conversations/a%%3Ab/activities HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                 "User-Agent: digestd/" DIGESTD_VERSION "\r\nAccept: */*\r\n"
                 "Content-Type: application/json\r\nX-Request-Id: r-1\r\n"
                 "Content-Length: 9\r\n\r\n",
                 t->srv.port);
    memcpy(want + n, body, sizeof(body) - 1);
    assert_int_equal(t->srv.log.len, (size_t)n + sizeof(body) - 1);
    assert_memory_equal(t->srv.log.data, want, t->srv.log.len);
}

static void put_sends_no_default_content_type(void **state)
{
    struct ctx *t = ctx_init(0, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL);
    struct http_client_request req = req_to(t, "PUT", "/v3/x");
    char want[512];

    req.body = "abc";
    req.body_len = 3;
    send_ok(t, &req, &t->slots[0]);
    ctx_finish(t);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->slots[0].status, 200);
    assert_int_equal(t->slots[0].body_len, 0);
    snprintf(want, sizeof(want),
             "PUT /v3/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: digestd/" DIGESTD_VERSION
             "\r\nAccept: */*\r\nContent-Length: 3\r\n\r\nabc",
             t->srv.port);
    assert_string_equal(log_text(t), want);
}

static void error_status_is_surfaced_with_body(void **state)
{
    struct ctx *t = ctx_init(
        0, 1, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 11\r\n\r\n{\"error\":1}",
        NULL);
    struct http_client_request req = req_to(t, "GET", "/");

    send_ok(t, &req, &t->slots[0]);
    ctx_finish(t);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->slots[0].status, 500);
    assert_string_equal(t->slots[0].body, "{\"error\":1}");
}

static char date_reply[256];

/* The second request goes out from the first one's callback. */
static void send_second(struct slot *s)
{
    struct ctx *t = s->t;
    struct http_client_request req = req_to(t, "GET", "/again");

    if (s == &t->slots[0])
        send_ok(t, &req, &t->slots[1]);
}

static void retry_after_seconds_and_http_date(void **state)
{
    struct ctx *t;
    struct http_client_request req;
    char date[64];
    time_t when = time(NULL) + 120;
    struct tm tm;

    gmtime_r(&when, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(date_reply, sizeof(date_reply),
             "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\nContent-Length: 0\r\n\r\n",
             date);
    t = ctx_init(0, 2,
                 "HTTP/1.1 429 Too Many Requests\r\nRetry-After:  7 \r\nContent-Length: 0\r\n\r\n",
                 date_reply);
    t->on_each = send_second;
    req = req_to(t, "GET", "/");
    send_ok(t, &req, &t->slots[0]);
    ctx_finish(t);
    assert_int_equal(t->slots[0].status, 429);
    assert_int_equal(t->slots[0].retry_after_s, 7);
    assert_int_equal(t->slots[1].status, 503);
    assert_in_range(t->slots[1].retry_after_s, 117, 120);
}

static void retry_after_parser(void **state)
{
    int64_t s = -5;
    const int64_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */

    assert_int_equal(http_client_parse_retry_after("0", now, &s), 0);
    assert_int_equal(s, 0);
    assert_int_equal(http_client_parse_retry_after("120", now, &s), 0);
    assert_int_equal(s, 120);
    assert_int_equal(http_client_parse_retry_after("99999999999999999999", now, &s), 0);
    assert_int_equal(s, INT32_MAX);
    /* The three HTTP-date forms of RFC 9110, 60 s after now. */
    assert_int_equal(http_client_parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now, &s), 0);
    assert_int_equal(s, 60);
    assert_int_equal(http_client_parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now, &s), 0);
    assert_int_equal(s, 60);
    assert_int_equal(http_client_parse_retry_after("Sun Nov  6 08:50:37 1994", now, &s), 0);
    assert_int_equal(s, 60);
    /* A date already past means "now". */
    assert_int_equal(http_client_parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now, &s), 0);
    assert_int_equal(s, 0);
    s = 42;
    assert_int_equal(http_client_parse_retry_after("", now, &s), DG_ERR_INVALID);
    assert_int_equal(http_client_parse_retry_after("-5", now, &s), DG_ERR_INVALID);
    assert_int_equal(http_client_parse_retry_after("5s", now, &s), DG_ERR_INVALID);
    assert_int_equal(http_client_parse_retry_after("1.5", now, &s), DG_ERR_INVALID);
    assert_int_equal(http_client_parse_retry_after("soon", now, &s), DG_ERR_INVALID);
    assert_int_equal(s, 42);
}

static char big_reply[4096];

/* Same body twice: with Content-Length (refused early) and chunked (refused mid-way). */
static void body_over_cap_is_too_large(void **state)
{
    struct ctx *t;
    struct http_client_request req;
    char body[121];
    int i;

    memset(body, 'x', 120);
    body[120] = '\0';
    for (i = 0; i < 2; i++) {
        if (i == 0)
            snprintf(big_reply, sizeof(big_reply),
                     "HTTP/1.1 200 OK\r\nContent-Length: 120\r\n\r\n%s", body);
        else
            snprintf(big_reply, sizeof(big_reply),
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n%.60s\r\n"
                     "3c\r\n%.60s\r\n0\r\n\r\n",
                     body, body);
        t = ctx_init(0, 2, big_reply, NULL);
        req = req_to(t, "GET", "/big");
        req.max_response_bytes = 100;
        send_ok(t, &req, &t->slots[0]);
        /* Exactly at the cap is fine. */
        req.max_response_bytes = 120;
        send_ok(t, &req, &t->slots[1]);
        ctx_finish(t);
        assert_int_equal(t->slots[0].err, DG_ERR_TOO_LARGE);
        assert_int_equal(t->slots[0].status, 200);
        assert_true(t->slots[0].body_len <= 100);
        assert_int_equal(t->slots[1].err, 0);
        assert_string_equal(t->slots[1].body, body);
        ctx_cleanup(NULL);
    }
}

static void silent_server_times_out(void **state)
{
    struct ctx *t = ctx_init(0, 1, NULL, NULL);
    struct http_client_request req = req_to(t, "GET", "/slow");

    req.timeout_ms = 300;
    send_ok(t, &req, &t->slots[0]);
    ctx_finish(t);
    assert_int_equal(t->slots[0].calls, 1);
    assert_int_equal(t->slots[0].err, DG_ERR_TIMEOUT);
    assert_int_equal(t->slots[0].status, 0);
    assert_in_range(t->slots[0].elapsed_ns, 290 * MS, 1500 * MS);
    assert_non_null(strstr(t->slots[0].error, "imed out"));
}

static void refused_connection_is_unavailable(void **state)
{
    struct ctx *t = ctx_init(0, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL);
    struct http_client_request req;
    struct sockaddr_in addr;
    struct sockaddr_storage got;
    int len = sizeof(got);
    uv_tcp_t closed;

    /* Bound but not listening: the port is ours and refuses connections. */
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(&t->loop, &closed);
    assert_int_equal(uv_tcp_bind(&closed, (const struct sockaddr *)&addr, 0), 0);
    uv_tcp_getsockname(&closed, (struct sockaddr *)&got, &len);
    req = req_to(t, "GET", "/");
    snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d/",
             ntohs(((struct sockaddr_in *)&got)->sin_port));
    send_ok(t, &req, &t->slots[0]);
    uv_close((uv_handle_t *)&closed, NULL);
    ctx_finish(t);
    assert_int_equal(t->slots[0].err, DG_ERR_UNAVAILABLE);
    assert_int_equal(t->slots[0].status, 0);
    assert_true(t->slots[0].elapsed_ns < 1000 * MS);
    assert_non_null(strstr(t->slots[0].error, "Failed to connect"));
    assert_int_equal(t->srv.accepts, 0);
}

static void two_hundred_slow_requests_run_concurrently(void **state)
{
    struct ctx *t = ctx_init(1000, 200, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL);
    struct http_client_request req = req_to(t, "GET", "/slow");
    uint64_t start = clock_mono_ns(), took;
    int i;

    for (i = 0; i < 200; i++)
        send_ok(t, &req, &t->slots[i]);
    ctx_finish(t);
    took = clock_mono_ns() - start;
    for (i = 0; i < 200; i++) {
        assert_int_equal(t->slots[i].calls, 1);
        assert_int_equal(t->slots[i].status, 200);
    }
    /* In series this takes 200 s; each needed its own connection. */
    assert_true(took < 10000 * MS);
    assert_int_equal(t->srv.accepts, 200);
    print_message("200 requests delayed 1 s each took %.2f s\n", (double)took / 1e9);
}

/* Each callback sends the next request until five have run. */
static void send_next(struct slot *s)
{
    struct ctx *t = s->t;
    struct http_client_request req = req_to(t, "GET", "/seq");
    int i = (int)(s - t->slots);

    if (i < 4)
        send_ok(t, &req, &t->slots[i + 1]);
}

static void sequential_requests_reuse_one_connection(void **state)
{
    struct ctx *t = ctx_init(0, 5, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL);
    struct http_client_request req = req_to(t, "GET", "/seq");
    int i;

    t->on_each = send_next;
    send_ok(t, &req, &t->slots[0]);
    ctx_finish(t);
    for (i = 0; i < 5; i++)
        assert_int_equal(t->slots[i].status, 200);
    assert_int_equal(t->srv.requests, 5);
    assert_int_equal(t->srv.accepts, 1);
}

/*
 * Finished easy handles are reset and reused: a later request must carry
 * nothing of an earlier one (method, headers, body, cap). The sends run
 * from timers, after the previous call was freed, so each reuses a handle.
 */
static void reuse_fourth(struct ctx *t)
{
    struct http_client_request req = req_to(t, "POST", "/four");

    req.body = "x";
    req.body_len = 1;
    send_ok(t, &req, &t->slots[3]);
}

/* A URL curl must read whole (a dot segment) after one that went as origin + target. */
static void reuse_third(struct ctx *t)
{
    struct http_client_request req = req_to(t, "GET", "/x/./three");

    send_ok(t, &req, &t->slots[2]);
    run_later(t, 200, reuse_fourth);
}

static void reuse_second(struct ctx *t)
{
    struct http_client_request req = req_to(t, "GET", "/two");

    req.max_response_bytes = 1; /* "ok" is over it */
    send_ok(t, &req, &t->slots[1]);
    run_later(t, 200, reuse_third);
}

static void reused_handles_carry_nothing_over(void **state)
{
    static const char *const headers[] = {"Content-Type: application/json", "X-A: 1"};
    struct ctx *t = ctx_init(0, 4, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL);
    struct http_client_request req = req_to(t, "PUT", "/one");
    char want[1024];

    req.headers = headers;
    req.n_headers = 2;
    req.body = "{}";
    req.body_len = 2;
    send_ok(t, &req, &t->slots[0]);
    run_later(t, 200, reuse_second);
    ctx_finish(t);
    assert_int_equal(t->slots[0].status, 200);
    assert_int_equal(t->slots[1].err, DG_ERR_TOO_LARGE);
    assert_int_equal(t->slots[2].err, 0);
    assert_string_equal(t->slots[2].body, "ok");
    assert_int_equal(t->slots[3].status, 200);
    /* Sent one after another: each took the handle the one before it left. */
    snprintf(want, sizeof(want),
             "{}GET /two HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: digestd/" DIGESTD_VERSION
             "\r\nAccept: */*\r\n\r\nGET /x/three HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: "
             "digestd/" DIGESTD_VERSION "\r\nAccept: */*\r\n\r\n"
             "POST /four HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: digestd/" DIGESTD_VERSION
             "\r\nAccept: */*\r\nContent-Length: 1\r\n\r\nx",
             t->srv.port, t->srv.port, t->srv.port);
    assert_non_null(strstr(log_text(t), want));
}

static void count_live_poll(uv_handle_t *h, void *arg)
{
    if (h->type == UV_POLL && !uv_is_closing(h))
        ++*(int *)arg;
}

static int max_live_polls;

/* Sends the next request, and notes how many sockets the client still watches. */
static void send_next_counting(struct slot *s)
{
    int n = 0;

    uv_walk(&s->t->loop, count_live_poll, &n);
    if (n > max_live_polls)
        max_live_polls = n;
    send_next(s);
}

/*
 * A server that closes after each reply forces a new connection each time,
 * and each dead socket's poll handle must be closed, not merely stopped.
 */
static void connection_close_is_honoured(void **state)
{
    struct ctx *t =
        ctx_init(0, 5, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", NULL);
    struct http_client_request req = req_to(t, "GET", "/seq");
    int i;

    max_live_polls = 0;
    t->on_each = send_next_counting;
    send_ok(t, &req, &t->slots[0]);
    ctx_finish(t);
    for (i = 0; i < 5; i++)
        assert_int_equal(t->slots[i].status, 200);
    assert_int_equal(t->srv.accepts, 5);
    assert_in_range(max_live_polls, 0, 1);
}

static struct http_client_call *to_cancel;

static void cancel_in_flight(struct ctx *t)
{
    assert_int_equal(http_client_pending(t->client), 2);
    t->in_cancel = true;
    http_client_cancel(to_cancel);
    t->in_cancel = false;
    assert_int_equal(http_client_pending(t->client), 1);
}

static void cancel_runs_callback_once_with_closed(void **state)
{
    struct ctx *t = ctx_init(300, 3, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL);
    struct http_client_request req = req_to(t, "GET", "/x");
    struct http_client_call *call;

    /* Cancelled before the loop ever ran it. */
    assert_int_equal(http_client_send(t->client, &req, on_done, &t->slots[2], &call), 0);
    t->in_cancel = true;
    http_client_cancel(call);
    t->in_cancel = false;
    assert_int_equal(t->slots[2].calls, 1);
    assert_true(t->slots[2].during_cancel);
    assert_int_equal(t->slots[2].err, DG_ERR_CLOSED);
    /* Cancelled while connected and waiting for the reply. */
    assert_int_equal(http_client_send(t->client, &req, on_done, &t->slots[0], &to_cancel), 0);
    send_ok(t, &req, &t->slots[1]);
    run_later(t, 100, cancel_in_flight);
    ctx_finish(t);
    assert_int_equal(t->slots[0].calls, 1);
    assert_true(t->slots[0].during_cancel);
    assert_int_equal(t->slots[0].err, DG_ERR_CLOSED);
    assert_string_equal(t->slots[0].error, "cancelled");
    assert_int_equal(t->slots[1].calls, 1);
    assert_int_equal(t->slots[1].err, 0);
    assert_int_equal(t->slots[1].status, 200);
    assert_int_equal(t->srv.requests, 2);
}

static void stop_now(struct ctx *t)
{
    struct http_client_request req = req_to(t, "GET", "/late");

    shutdown_all(t);
    assert_int_equal(http_client_pending(t->client), 0);
    /* A stopping client refuses work and never calls back for it. */
    assert_int_equal(http_client_send(t->client, &req, on_done, &t->slots[10], NULL),
                     DG_ERR_CLOSED);
}

static void stop_fails_pending_requests_once(void **state)
{
    struct ctx *t = ctx_init(0, 0, NULL, NULL);
    struct http_client_request req = req_to(t, "POST", "/never");
    int i;

    req.body = "x";
    req.body_len = 1;
    for (i = 0; i < 5; i++)
        send_ok(t, &req, &t->slots[i]);
    run_later(t, 100, stop_now);
    ctx_finish(t);
    for (i = 0; i < 5; i++) {
        assert_int_equal(t->slots[i].calls, 1);
        assert_int_equal(t->slots[i].err, DG_ERR_CLOSED);
    }
    assert_int_equal(t->slots[10].calls, 0);
    assert_int_equal(t->srv.requests, 5);
}

/* The first reply arrives; its callback stops the client with two still waiting. */
static void stop_from_inside_a_callback(void **state)
{
    struct ctx *t = ctx_init(0, 1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL);
    struct http_client_request req = req_to(t, "GET", "/x");
    int i;

    t->srv.replies[1] = NULL; /* only the first request is answered */
    t->srv.n_replies = 2;
    send_ok(t, &req, &t->slots[0]);
    req.timeout_ms = 20000;
    send_ok(t, &req, &t->slots[1]);
    send_ok(t, &req, &t->slots[2]);
    ctx_finish(t);
    for (i = 0; i < 3; i++)
        assert_int_equal(t->slots[i].calls, 1);
    /* Whichever request the server answered finished; the others were cancelled. */
    assert_int_equal(t->slots[0].err + t->slots[1].err + t->slots[2].err, 2 * DG_ERR_CLOSED);
}

/*
 * Request A times out while the loop is blocked, and B is added at that
 * moment: curl closes A's socket and opens B's in one socket_action, so B
 * usually gets A's fd number while A's poll handle is still closing.
 */
static void late_send(struct ctx *t)
{
    struct http_client_request req = req_to(t, "GET", "/b");

    usleep(40 * 1000);
    send_ok(t, &req, &t->slots[1]);
}

static void new_socket_on_a_closing_fd_works(void **state)
{
    struct ctx *t = ctx_init(0, 2, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
    struct http_client_request req = req_to(t, "GET", "/a");

    req.timeout_ms = 200;
    send_ok(t, &req, &t->slots[0]);
    run_later(t, 190, late_send);
    ctx_finish(t);
    assert_int_equal(t->slots[0].err, DG_ERR_TIMEOUT);
    assert_int_equal(t->slots[1].err, 0);
    assert_string_equal(t->slots[1].body, "b");
}

static void bad_requests_are_refused_without_callback(void **state)
{
    static const char *const crlf[] = {"X-A: 1\r\nX-B: 2"};
    static const char *const nocolon[] = {"X-A 1"};
    struct ctx *t = ctx_init(0, 2, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL);
    struct http_client_request req = req_to(t, "DELETE", "/");

    assert_int_equal(http_client_send(t->client, &req, on_done, &t->slots[9], NULL),
                     DG_ERR_INVALID);
    req = req_to(t, "GET", "/");
    req.timeout_ms = 0;
    assert_int_equal(http_client_send(t->client, &req, on_done, &t->slots[9], NULL),
                     DG_ERR_INVALID);
    req = req_to(t, "GET", "/");
    req.max_response_bytes = 0;
    assert_int_equal(http_client_send(t->client, &req, on_done, &t->slots[9], NULL),
                     DG_ERR_INVALID);
    req = req_to(t, "GET", "/");
    req.headers = crlf;
    req.n_headers = 1;
    assert_int_equal(http_client_send(t->client, &req, on_done, &t->slots[9], NULL),
                     DG_ERR_INVALID);
    req.headers = nocolon;
    assert_int_equal(http_client_send(t->client, &req, on_done, &t->slots[9], NULL),
                     DG_ERR_INVALID);
    req = req_to(t, "GET", "/");
    req.body = "x";
    req.body_len = 1;
    assert_int_equal(http_client_send(t->client, &req, on_done, &t->slots[9], NULL),
                     DG_ERR_INVALID);
    /* Only http and https: other schemes fail in the callback, never connect. */
    req = req_to(t, "GET", "/");
    snprintf(t->url, sizeof(t->url), "ftp://127.0.0.1:%d/", t->srv.port);
    send_ok(t, &req, &t->slots[0]);
    req = req_to(t, "GET", "/");
    snprintf(t->url, sizeof(t->url), "file:///etc/passwd");
    send_ok(t, &req, &t->slots[1]);
    ctx_finish(t);
    assert_int_equal(t->slots[9].calls, 0);
    assert_int_equal(t->slots[0].err, DG_ERR_INVALID);
    assert_int_equal(t->slots[1].err, DG_ERR_INVALID);
    assert_int_equal(t->slots[1].body_len, 0);
    assert_int_equal(t->srv.accepts, 0);
}

static void redirects_are_not_followed(void **state)
{
    struct ctx *t = ctx_init(
        0, 1, "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n", NULL);
    struct http_client_request req = req_to(t, "GET", "/");

    send_ok(t, &req, &t->slots[0]);
    ctx_finish(t);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->slots[0].status, 302);
    assert_int_equal(t->srv.requests, 1);
}

/* ---- shards ----------------------------------------------------------------- */

#define SHARDED 600 /* more than two shards hold: ceil(600 / 256) = 3 */

/*
 * The shard tests hold SHARDED transfers at once: both ends of each
 * connection are in this process, and the client's budget is half the soft
 * limit. Raise the soft limit to the hard one, or skip when that is too low.
 */
static void need_descriptors(void)
{
    struct rlimit rl;
    rlim_t want = 4 * SHARDED + 100;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
            print_message("RLIMIT_NOFILE hard limit %llu < %llu: shard test skipped\n",
                          (unsigned long long)rl.rlim_max, (unsigned long long)want);
            skip();
        }
        rl.rlim_cur = want;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
}

static void second_wave(struct ctx *t)
{
    struct http_client_request req = req_to(t, "GET", "/wave2");
    size_t shards, max;
    int i;

    /* Everything from the first wave has finished; its shards are idle. */
    assert_int_equal(t->done, SHARDED);
    assert_int_equal(http_client_pending(t->client), 0);
    for (i = SHARDED; i < 2 * SHARDED; i++)
        send_ok(t, &req, &t->slots[i]);
    shards = http_client_shards(t->client, &max);
    /* No shard is added while the existing ones have room. */
    assert_int_equal(shards, 3);
    assert_true(shards <= max);
}

static void more_transfers_than_one_shard_all_complete(void **state)
{
    struct ctx *t;
    struct http_client_request req;
    size_t shards, max;
    int i;

    need_descriptors();
    t = ctx_init(500, 2 * SHARDED, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL);
    req = req_to(t, "GET", "/wave1");
    assert_int_equal(http_client_shards(t->client, &max), 1);
    for (i = 0; i < SHARDED; i++)
        send_ok(t, &req, &t->slots[i]);
    shards = http_client_shards(t->client, &max);
    assert_int_equal(shards,
                     (SHARDED + HTTP_CLIENT_SHARD_TRANSFERS - 1) / HTTP_CLIENT_SHARD_TRANSFERS);
    /* The budget bounds the shards: ceil(budget / HTTP_CLIENT_SHARD_TRANSFERS). */
    assert_true(max >= shards);
    assert_true(max <= (HTTP_CLIENT_MAX_CONNECTIONS + HTTP_CLIENT_SHARD_TRANSFERS - 1) /
                           HTTP_CLIENT_SHARD_TRANSFERS);
    run_later(t, 1500, second_wave);
    ctx_finish(t);
    for (i = 0; i < 2 * SHARDED; i++) {
        assert_int_equal(t->slots[i].calls, 1);
        assert_int_equal(t->slots[i].err, 0);
        assert_int_equal(t->slots[i].status, 200);
    }
    assert_int_equal(t->srv.requests, 2 * SHARDED);
    /*
     * Each shard keeps its idle connections (up to a shard's worth), and the
     * second wave reuses them: at most one shard's worth is new (the
     * least-loaded rule deals the wave evenly, so the last shard gets more
     * transfers than it had connections).
     */
    assert_in_range(t->srv.accepts, SHARDED, SHARDED + HTTP_CLIENT_SHARD_TRANSFERS);
    print_message("%d requests in %zu shards, %d connections\n", 2 * SHARDED, shards,
                  t->srv.accepts);
}

static struct http_client_call *sharded_calls[SHARDED];

/* Cancels one transfer in the last shard and one in the middle one, in flight. */
static void cancel_two(struct ctx *t)
{
    assert_int_equal(http_client_pending(t->client), SHARDED);
    t->in_cancel = true;
    http_client_cancel(sharded_calls[SHARDED - 1]); /* shard 2 */
    http_client_cancel(sharded_calls[300]);         /* shard 1 */
    t->in_cancel = false;
    assert_int_equal(http_client_pending(t->client), SHARDED - 2);
}

static void cancel_in_another_shard(void **state)
{
    struct ctx *t;
    struct http_client_request req;
    int i;

    need_descriptors();
    t = ctx_init(400, SHARDED, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL);
    req = req_to(t, "GET", "/c");
    for (i = 0; i < SHARDED; i++)
        assert_int_equal(
            http_client_send(t->client, &req, on_done, &t->slots[i], &sharded_calls[i]), 0);
    assert_int_equal(http_client_shards(t->client, NULL), 3);
    run_later(t, 150, cancel_two);
    ctx_finish(t);
    for (i = 0; i < SHARDED; i++) {
        assert_int_equal(t->slots[i].calls, 1);
        if (i == SHARDED - 1 || i == 300) {
            assert_true(t->slots[i].during_cancel);
            assert_int_equal(t->slots[i].err, DG_ERR_CLOSED);
        } else {
            assert_false(t->slots[i].during_cancel);
            assert_int_equal(t->slots[i].err, 0);
            assert_int_equal(t->slots[i].status, 200);
        }
    }
}

/*
 * One GET with the proxy variables vars pointing at the test server: to
 * url (NULL: the server itself), which must arrive in absolute-form when a
 * proxy was used and in origin-form when the request went direct.
 */
static void proxy_case(const char *const *vars, const char *url, bool via_proxy)
{
    struct ctx *t;
    struct http_client_request req;
    char want[256];

    proxy_vars = vars;
    t = ctx_init(0, 1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL);
    req = req_to(t, "GET", "/x");
    if (url)
        snprintf(t->url, sizeof(t->url), "%s", url);
    send_ok(t, &req, &t->slots[0]);
    ctx_finish(t);
    assert_int_equal(t->slots[0].err, 0);
    assert_int_equal(t->slots[0].status, 200);
    if (via_proxy)
        snprintf(want, sizeof(want), "GET http://digestd-proxy-test.invalid/x HTTP/1.1\r\n");
    else
        snprintf(want, sizeof(want), "GET /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", t->srv.port);
    assert_true(strncmp(log_text(t), want, strlen(want)) == 0);
}

/* One GET of path (after the server's origin): its request line must be want's. */
static void target_case(const char *path, const char *want_target)
{
    struct ctx *t = ctx_init(0, 1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL);
    struct http_client_request req = req_to(t, "GET", path);
    char want[512];

    send_ok(t, &req, &t->slots[0]);
    ctx_finish(t);
    assert_int_equal(t->slots[0].status, 200);
    snprintf(want, sizeof(want), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", want_target,
             t->srv.port);
    if (strncmp(log_text(t), want, strlen(want)))
        fail_msg("%s: sent %.*s", path, (int)strcspn(log_text(t), "\r"), log_text(t));
    ctx_cleanup(NULL);
}

/*
 * A URL whose path and query go to the server as they are is handed to curl
 * as its origin and a request target (http_client.c, url_origin_len); any
 * other is curl's to read. Either way the server sees what curl alone would
 * have sent: every case here is curl 7.88's own rendering of the URL.
 */
static void request_target_is_what_curl_would_send(void **state)
{
    (void)state;
    target_case("/v3/conversations/19%3Aab%40thread.tacv2%3Bmessageid%3D1/activities/1f-2",
                "/v3/conversations/19%3Aab%40thread.tacv2%3Bmessageid%3D1/activities/1f-2");
    target_case("/a/b?x=1&y=a/b:c@d;e=f,g+h*i(j)!k$l'm~n_o.p",
                "/a/b?x=1&y=a/b:c@d;e=f,g+h*i(j)!k$l'm~n_o.p");
    target_case("/x?..", "/x?..");                   /* dots in a query are not segments */
    target_case("/.well/..x/...", "/.well/..x/..."); /* nor are longer names */
    target_case("/%7e%2F/%41", "/%7e%2F/%41");       /* escapes stay as they came */
    target_case("/a/%zz", "/a/%zz");                 /* not an escape: curl's to read */
    /* What curl rewrites goes to curl: dot segments, fragments, no path. */
    target_case("/a/./b/../c?x=1", "/a/c?x=1");
    target_case("/a/b/..", "/a/");
    target_case("/a/.", "/a/");
    target_case("/a#frag", "/a");
    target_case("", "/");
    target_case("?q=1", "/?q=1");
}

/* Read at create (each case clears the variables before sending), in curl's order. */
static void proxy_environment_is_read_once_as_curl_reads_it(void **state)
{
    static const char *const http[] = {"http_proxy", NULL};
    static const char *const all[] = {"all_proxy", NULL};
    static const char *const all_upper[] = {"ALL_PROXY", NULL};
    static const char *const upper[] = {"HTTP_PROXY", NULL};
    static const char *const https_only[] = {"https_proxy", "HTTPS_PROXY", NULL};
    static const char *const bypass[] = {"http_proxy", "no_proxy", NULL};
    /* A name that cannot resolve: only the proxy can have answered. */
    static const char *const far = "http://digestd-proxy-test.invalid/x";

    proxy_case(http, far, true);
    ctx_cleanup(NULL);
    proxy_case(all, "HTTP://digestd-proxy-test.invalid/x", true); /* schemes ignore case */
    ctx_cleanup(NULL);
    proxy_case(all_upper, far, true);
    ctx_cleanup(NULL);
    /* Never HTTP_PROXY for http (curl's CGI rule); https's variables are not http's. */
    proxy_case(upper, NULL, false);
    ctx_cleanup(NULL);
    proxy_case(https_only, NULL, false);
    ctx_cleanup(NULL);
    /* no_proxy (here "127.0.0.1") wins over http_proxy. */
    proxy_case(bypass, NULL, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(get_returns_status_and_body, ctx_cleanup),
        cmocka_unit_test_teardown(request_target_is_what_curl_would_send, ctx_cleanup),
        cmocka_unit_test_teardown(post_sends_headers_and_body_exactly, ctx_cleanup),
        cmocka_unit_test_teardown(put_sends_no_default_content_type, ctx_cleanup),
        cmocka_unit_test_teardown(error_status_is_surfaced_with_body, ctx_cleanup),
        cmocka_unit_test_teardown(retry_after_seconds_and_http_date, ctx_cleanup),
        cmocka_unit_test_teardown(retry_after_parser, ctx_cleanup),
        cmocka_unit_test_teardown(body_over_cap_is_too_large, ctx_cleanup),
        cmocka_unit_test_teardown(silent_server_times_out, ctx_cleanup),
        cmocka_unit_test_teardown(refused_connection_is_unavailable, ctx_cleanup),
        cmocka_unit_test_teardown(two_hundred_slow_requests_run_concurrently, ctx_cleanup),
        cmocka_unit_test_teardown(sequential_requests_reuse_one_connection, ctx_cleanup),
        cmocka_unit_test_teardown(connection_close_is_honoured, ctx_cleanup),
        cmocka_unit_test_teardown(cancel_runs_callback_once_with_closed, ctx_cleanup),
        cmocka_unit_test_teardown(stop_fails_pending_requests_once, ctx_cleanup),
        cmocka_unit_test_teardown(stop_from_inside_a_callback, ctx_cleanup),
        cmocka_unit_test_teardown(new_socket_on_a_closing_fd_works, ctx_cleanup),
        cmocka_unit_test_teardown(bad_requests_are_refused_without_callback, ctx_cleanup),
        cmocka_unit_test_teardown(redirects_are_not_followed, ctx_cleanup),
        cmocka_unit_test_teardown(more_transfers_than_one_shard_all_complete, ctx_cleanup),
        cmocka_unit_test_teardown(cancel_in_another_shard, ctx_cleanup),
        cmocka_unit_test_teardown(proxy_environment_is_read_once_as_curl_reads_it, ctx_cleanup),
        cmocka_unit_test_teardown(reused_handles_carry_nothing_over, ctx_cleanup),
    };

    /* Loopback only: a proxy from the environment must not intercept. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    unsetenv("all_proxy");
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    log_setup(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN, false);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
