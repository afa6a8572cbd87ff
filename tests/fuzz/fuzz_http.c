/*
 * fuzz_http.c: arbitrary bytes through the real connection code of the HTTP
 * server. Each input gets a fresh server with small limits and one end of a
 * socketpair, adopted as if accepted (http_server_adopt), so llhttp's
 * callbacks, the 431/413/404/405/400 paths, routing, pipelining, the
 * asynchronous answer and response generation all run, with no network.
 * The first input byte seeds the chunk sizes the rest is written in (llhttp's
 * own tests replay every input at every chunk size); between chunks the
 * loop runs and the responses are read and thrown away. At the end the
 * write side is shut (EOF, llhttp_finish) and the server is stopped; the
 * loop must then run out, so a leaked handle or request shows as a hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "http/http_server.h"
#include "http/http_server_internal.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static bool stopped;

static const struct http_server_limits limits = {
    .max_header_bytes = 384,
    .max_body_bytes = 256,
    .header_timeout_ms = 60000, /* never fire within one input */
    .idle_timeout_ms = 60000,
    .max_connections = 4,
};

static void h_plain(struct http_request *req, void *data)
{
    static const struct http_header extra[] = {{"X-A", "1"}, {"Cache-Control", "no-store"}};

    http_request_respond(req, 200, "text/plain", "ok", 2, extra, 2);
}

/* Touches every accessor and echoes the body, as a real handler would. */
static void h_echo(struct http_request *req, void *data)
{
    size_t len;
    const char *body = http_request_body(req, &len);
    const char *ct = http_request_header(req, "content-type");
    const char *q = http_request_query(req);

    if (ct && strlen(ct) > 3 && !http_request_header(req, "x-none"))
        len = len / 2;
    if (*q && !http_request_client_alive(req))
        len = 0;
    http_request_respond(req, 200, ct, body, len, NULL, 0);
}

/* An error whose message is the request's path: exercises the escaping. */
static void h_error(struct http_request *req, void *data)
{
    http_request_respond_error(req, 409, http_request_method(req), http_request_path(req), NULL, 0);
}

struct later {
    uv_timer_t timer;
    struct http_request *req;
};

static void on_later_closed(uv_handle_t *h)
{
    xfree(container_of((uv_timer_t *)h, struct later, timer));
}

static void on_later(uv_timer_t *t)
{
    struct later *l = container_of(t, struct later, timer);

    http_request_respond(l->req, 202, "application/json", "{}", 2, NULL, 0);
    uv_close((uv_handle_t *)&l->timer, on_later_closed);
}

/* Answers on a later loop turn: the pipelined bytes wait meanwhile. */
static void h_async(struct http_request *req, void *data)
{
    struct later *l = xcalloc(1, sizeof(*l));

    l->req = req;
    uv_timer_init(&loop, &l->timer);
    uv_timer_start(&l->timer, on_later, 0, 0);
}

static void on_stopped(struct http_server *srv, void *data)
{
    stopped = true;
}

static void drain(int fd)
{
    char sink[4096];

    while (read(fd, sink, sizeof(sink)) > 0)
        ;
}

static void turn(int fd)
{
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    drain(fd);
}

/* Writes all of p, running the loop whenever the socket buffer is full. */
static void feed(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return; /* the server closed its end */
        }
        turn(fd);
    }
}

static struct http_server *server_new(void)
{
    struct http_server *srv = http_server_create(&loop, &limits, NULL);

    http_server_route(srv, "GET", "/", "root", h_plain, NULL);
    http_server_route(srv, "HEAD", "/", "root_head", h_plain, NULL);
    http_server_route(srv, "POST", "/api/messages", "webhook", h_echo, NULL);
    http_server_route(srv, "PUT", "/api/messages", "webhook_put", h_error, NULL);
    http_server_route(srv, "GET", "/a/*", "async", h_async, NULL);
    http_server_route(srv, "POST", "/a/*", "async_post", h_async, NULL);
    return srv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    struct http_server *srv;
    uint32_t rng;
    size_t off = 1, spins;
    int fds[2];

    if (!init) {
        uv_loop_init(&loop);
        log_setup(LOG_LEVEL_ERROR, true);
        /* As in digestd: a write to a vanished peer is an error code, not a signal. */
        signal(SIGPIPE, SIG_IGN);
        init = true;
    }
    if (size < 1 || socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0)
        return 0;
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    srv = server_new();
    if (http_server_adopt(srv, fds[0]) != 0)
        abort();
    rng = data[0] * 2654435761u + 1;
    while (off < size) {
        /* Chunks of 1..32 bytes, or the whole rest when the seed byte is 0. */
        size_t n = data[0] ? 1 + (rng >> 27) : size - off;
        rng = rng * 1103515245u + 12345u;
        if (n > size - off)
            n = size - off;
        feed(fds[1], data + off, n);
        off += n;
    }
    shutdown(fds[1], SHUT_WR);
    turn(fds[1]);
    stopped = false;
    http_server_stop(srv, on_stopped, NULL);
    for (spins = 0; !stopped; spins++) {
        /* NOWAIT: a blocking turn could wait on a write only our drain unblocks. */
        if (spins > 1000000) {
            fprintf(stderr, "fuzz_http: server did not stop\n");
            abort();
        }
        turn(fds[1]);
    }
    close(fds[1]);
    http_server_free(srv);
    return 0;
}
