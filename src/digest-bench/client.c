/*
 * client.c: one HTTP/1.1 client connection on libuv + llhttp.
 *
 * States: NEW (no socket yet) → CONNECTING → BUSY (request written or being
 * written, response being parsed) → IDLE (keep-alive) → BUSY … ; DEAD once
 * the server closed, an error happened or the response forbade reuse;
 * CLOSING after client_conn_close(). A send's callback runs exactly once,
 * from deliver(), which leaves BUSY first, so late libuv callbacks
 * (cancelled writes, a timer that lost the race) see another state and do
 * nothing. The socket is read while idle too, so a server's close is seen
 * at once and the next send goes to a fresh connection.
 */
#include "client.h"

#include <assert.h>
#include <string.h>

#include <llhttp.h>

#include "core/buf.h"
#include "core/clock.h"

#define READ_CHUNK (64 * 1024)

enum conn_state {
    CONN_NEW,
    CONN_CONNECTING,
    CONN_BUSY,
    CONN_IDLE,
    CONN_DEAD,
    CONN_CLOSING,
};

struct client_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    llhttp_t parser;
    enum conn_state state;
    int open_handles;
    bool complete; /* on_message_complete ran for the current response */
    bool too_large;
    char *req; /* borrowed, never written */
    size_t req_len;
    struct buf body;
    struct sockaddr_storage addr;
    client_response_cb cb;
    void *data;
};

/* Every read is parsed before the next alloc, so one buffer serves all connections. */
static char read_chunk[READ_CHUNK];

/* Bodies arrive in pieces; past CLIENT_BODY_MAX the answer is a protocol error. */
static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct client_conn *c = container_of(p, struct client_conn, parser);

    if (buf_append(&c->body, at, len) != 0) {
        c->too_large = true;
        return -1;
    }
    return 0;
}

/* Pausing stops llhttp at the end of this response, so bytes behind it are seen as extra. */
static int on_message_complete(llhttp_t *p)
{
    struct client_conn *c = container_of(p, struct client_conn, parser);

    c->complete = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Two handles (socket and timer): the connection is freed when both have closed. */
static void on_closed(uv_handle_t *h)
{
    struct client_conn *c = h->data;

    if (--c->open_handles == 0) {
        buf_free(&c->body);
        xfree(c);
    }
}

struct client_conn *client_conn_create(uv_loop_t *loop, const struct sockaddr *addr,
                                       client_response_cb cb, void *data)
{
    struct client_conn *c = xcalloc(1, sizeof(*c));

    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    memcpy(&c->addr, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    buf_init(&c->body, CLIENT_BODY_MAX);
    c->cb = cb;
    c->data = data;
    c->state = CONN_NEW;
    return c;
}

/* Ends the current send with res; the connection is then idle or dead. */
static void deliver(struct client_conn *c, struct client_result *res)
{
    if (!client_conn_busy(c))
        return;
    uv_timer_stop(&c->timer);
    res->done_ns = clock_mono_ns();
    c->state = res->reusable ? CONN_IDLE : CONN_DEAD;
    if (!res->reusable)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->cb(c, res, c->data);
}

bool client_conn_busy(const struct client_conn *c)
{
    return c->state == CONN_CONNECTING || c->state == CONN_BUSY;
}

/* Ends the send with an error; the connection is dead afterwards. */
static void fail(struct client_conn *c, enum client_error e, int uv_err)
{
    struct client_result res = {.error = e, .uv_err = uv_err};

    deliver(c, &res);
}

/* The response is whole: hand it over, reusable when keep-alive and nothing extra came. */
static void finish(struct client_conn *c, bool eof, size_t left_over)
{
    struct client_result res = {
        .status = (int)c->parser.status_code,
        .body = buf_cstr(&c->body),
        .body_len = c->body.len,
        .reusable = !eof && left_over == 0 && llhttp_should_keep_alive(&c->parser),
    };

    deliver(c, &res);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    b->base = read_chunk;
    b->len = sizeof(read_chunk);
}

/* Feeds n bytes to llhttp; a complete or broken response ends the send. */
static void parse(struct client_conn *c, const char *data, size_t n)
{
    llhttp_errno_t e = llhttp_execute(&c->parser, data, n);

    if (e == HPE_PAUSED && c->complete) {
        const char *stop = llhttp_get_error_pos(&c->parser);
        finish(c, false, (size_t)(data + n - stop));
    } else if (e != HPE_OK) {
        fail(c, CLIENT_ERR_PROTOCOL, 0);
    }
}

/*
 * Data while busy is the response; data while idle is garbage (the
 * connection is given up); EOF while idle is a server closing a keep-alive
 * connection, which only makes the next send open a new one.
 */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct client_conn *c = s->data;

    if (c->state == CONN_CLOSING)
        return;
    if (n > 0 && c->state == CONN_BUSY) {
        parse(c, b->base, (size_t)n);
        return;
    }
    if (n > 0) {
        /* Bytes nobody asked for: the connection cannot be trusted any more. */
        c->state = CONN_DEAD;
        uv_read_stop(s);
        return;
    }
    if (n == 0)
        return;
    /* EOF or error. A response framed by the close completes here. */
    if (c->state == CONN_BUSY && n == UV_EOF && llhttp_finish(&c->parser) == HPE_OK && c->complete)
        finish(c, true, 0);
    else if (c->state == CONN_BUSY)
        fail(c, CLIENT_ERR_IO, (int)n);
    else
        c->state = CONN_DEAD;
    uv_read_stop(s);
}

/* The timeout covers connect, write and the whole response. */
static void on_timeout(uv_timer_t *t)
{
    fail(t->data, CLIENT_ERR_TIMEOUT, 0);
}

/* Success needs nothing: the response ends the send. A write error does. */
static void on_written(uv_write_t *w, int status)
{
    struct client_conn *c = container_of(w, struct client_conn, write);

    if (status < 0 && c->state == CONN_BUSY)
        fail(c, CLIENT_ERR_IO, status);
}

static void write_request(struct client_conn *c)
{
    uv_buf_t b = uv_buf_init(c->req, (unsigned)c->req_len);
    int err = uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written);

    if (err)
        fail(c, CLIENT_ERR_IO, err);
}

/* Nagle off: a request is one write, and its answer must not wait for a delayed ACK. */
static void on_connected(uv_connect_t *r, int status)
{
    struct client_conn *c = container_of(r, struct client_conn, connect);
    int err;

    if (c->state != CONN_CONNECTING)
        return;
    c->state = CONN_BUSY;
    if (status < 0) {
        fail(c, CLIENT_ERR_CONNECT, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (err) {
        fail(c, CLIENT_ERR_IO, err);
        return;
    }
    write_request(c);
}

/* A fresh parser per response: keep-alive responses are parsed one by one. */
void client_conn_send(struct client_conn *c, char *req, size_t len, uint64_t timeout_ms)
{
    int err;

    assert(c->state == CONN_NEW || c->state == CONN_IDLE);
    c->req = req;
    c->req_len = len;
    c->complete = false;
    c->too_large = false;
    buf_reset(&c->body);
    llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
    uv_timer_start(&c->timer, on_timeout, timeout_ms, 0);
    if (c->state == CONN_IDLE) {
        c->state = CONN_BUSY;
        write_request(c);
        return;
    }
    c->state = CONN_CONNECTING;
    err = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&c->addr, on_connected);
    if (err) {
        c->state = CONN_BUSY;
        fail(c, CLIENT_ERR_CONNECT, err);
    }
}

bool client_conn_usable(const struct client_conn *c)
{
    return c->state == CONN_NEW || c->state == CONN_IDLE;
}

/* uv_close cancels a pending connect or write; their callbacks see CLOSING and return. */
void client_conn_close(struct client_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}
