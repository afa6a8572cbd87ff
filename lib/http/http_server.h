/*
 * http_server.h: the HTTP/1.1 server of digestd on libuv + llhttp. It owns
 * the listener and every connection; it enforces the request limits
 * (MAX_HEADER_BYTES → 431, MAX_BODY_BYTES → 413, MAX_CONNECTIONS → 503,
 * HEADER_TIMEOUT_MS and IDLE_TIMEOUT_MS → close), answers 404/405 from its
 * route table, and hands each complete request to the route's handler.
 *
 * A handler answers later, at most once, with http_request_respond*(); until
 * then the connection reads no further pipelined request, so responses go
 * out in request order. The struct http_request stays valid until the
 * handler responds, even if the client has gone (the response is then
 * dropped) — so asynchronous work never holds a dangling pointer. A
 * client that closes (or half-closes) its side while its request is with
 * the handler counts as gone. During shutdown (http_server_stop) no new
 * connection is accepted; idle connections close at once; a connection with
 * a request in progress closes right after its response.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/common.h"

struct http_server;
struct http_request;
struct metrics;

struct http_header {
    const char *name;
    const char *value;
};

typedef void (*http_handler_cb)(struct http_request *req, void *data);
typedef void (*http_server_closed_cb)(struct http_server *srv, void *data);

struct http_server_limits {
    size_t max_header_bytes;    /* request line + headers; past it 431 */
    size_t max_body_bytes;      /* decoded body; past it 413 */
    uint64_t header_timeout_ms; /* from first byte of a request to end of its headers */
    uint64_t idle_timeout_ms;   /* no byte received on a connection with nothing pending */
    unsigned max_connections;   /* past it: 503 and close */
};

/*
 * Creates a server (not yet listening); limits is copied. metrics may be
 * NULL; borrowed. A timeout of 0 disables that timeout.
 */
struct http_server *http_server_create(uv_loop_t *loop, const struct http_server_limits *limits,
                                       struct metrics *metrics);

/*
 * Adds a route. path is matched exactly against the request path without
 * its query string, or as a prefix when it ends with '*'. method is "GET",
 * "POST", … name is a static string used in metrics and logs. A path known
 * under another method answers 405 with an Allow header.
 */
void http_server_route(struct http_server *srv, const char *method, const char *path,
                       const char *name, http_handler_cb cb, void *data);

/* Binds and listens (host may be an IPv4/IPv6 literal). 0 or a UV_E* code. */
int http_server_listen(struct http_server *srv, const char *host, int port) WARN_UNUSED;
/* The bound port (useful with port 0). */
int http_server_port(const struct http_server *srv);

/*
 * Stops accepting and closes connections as described above. cb (may be
 * NULL) runs once, from the loop, when every handle is closed and every
 * request handed to a handler has been answered; then http_server_free()
 * may be called. A second call does nothing.
 */
void http_server_stop(struct http_server *srv, http_server_closed_cb cb, void *data);
void http_server_free(struct http_server *srv);

/* --- request accessors (borrowed; valid until the response) --- */
const char *http_request_method(const struct http_request *req);
const char *http_request_path(const struct http_request *req);  /* without query */
const char *http_request_query(const struct http_request *req); /* "" when none */
/* First header of that name (case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);
const char *http_request_body(const struct http_request *req, size_t *len);
uint64_t http_request_start_ns(const struct http_request *req); /* headers complete */
/*
 * False once the client has gone (or half-closed); the handler may still
 * respond (dropped), and must, to release req.
 */
bool http_request_client_alive(const struct http_request *req);

/*
 * Sends the response (status line, Date, Content-Length, Content-Type when
 * body is given, Connection as negotiated, then extra headers) and releases
 * req. Calling it twice is a bug (asserted).
 */
void http_request_respond(struct http_request *req, int status, const char *content_type,
                          const void *body, size_t len, const struct http_header *extra,
                          size_t n_extra);
/* JSON body {"error":{"code":…,"message":…}} (SPEC §3); extra may be NULL. */
void http_request_respond_error(struct http_request *req, int status, const char *code,
                                const char *message, const struct http_header *extra,
                                size_t n_extra);

/* Reason phrase for a status code. */
const char *http_status_text(int status);
