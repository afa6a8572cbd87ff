/*
 * client.h: digest-bench's HTTP/1.1 client, one TCP connection per struct
 * client_conn, on libuv + llhttp (no curl: the load generator must add as
 * little as it can to what it measures, and never block its loop). The
 * connection is opened by the first send and kept alive while the server
 * allows; one request at a time (no pipelining, as wrk). The owner creates
 * it, sends, gets exactly one callback per send, and closes it with
 * client_conn_close() when done or once it is no longer usable; it frees
 * itself when its handles have closed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/common.h"

#define CLIENT_BODY_MAX (1u << 20) /* a webhook answer is a few bytes */

enum client_error {
    CLIENT_OK = 0,
    CLIENT_ERR_CONNECT,  /* the TCP connect failed */
    CLIENT_ERR_TIMEOUT,  /* no whole response within the timeout */
    CLIENT_ERR_IO,       /* write failed, reset, or closed before a whole response */
    CLIENT_ERR_PROTOCOL, /* not HTTP llhttp accepts, or a body over CLIENT_BODY_MAX */
};

struct client_result {
    enum client_error error;
    int uv_err;       /* the libuv code behind CONNECT/IO, else 0 */
    int status;       /* HTTP status when error is CLIENT_OK */
    const char *body; /* borrowed, valid during the callback; NUL-terminated */
    size_t body_len;
    uint64_t done_ns; /* clock_mono_ns() when the response was complete */
    bool reusable;    /* keep-alive: the connection may take another send */
};

struct client_conn;
typedef void (*client_response_cb)(struct client_conn *c, const struct client_result *res,
                                   void *data);

/* A connection to addr (copied), not yet opened. cb gets every result with data. */
struct client_conn *client_conn_create(uv_loop_t *loop, const struct sockaddr *addr,
                                       client_response_cb cb, void *data);

/*
 * Sends len bytes (a whole request; borrowed, not written, until the callback) and waits
 * up to timeout_ms for the whole response. Only when client_conn_usable().
 */
void client_conn_send(struct client_conn *c, char *req, size_t len, uint64_t timeout_ms);

/* True when idle and not broken: a send may follow. */
bool client_conn_usable(const struct client_conn *c);
/* True when a send is waiting for its response. */
bool client_conn_busy(const struct client_conn *c);

/*
 * Closes the connection (a send in flight gets no callback) and frees it
 * once libuv is done with it; c must not be used afterwards. May be called
 * from the connection's own callback.
 */
void client_conn_close(struct client_conn *c);
