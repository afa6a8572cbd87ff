/*
 * http_client.h: outbound HTTP/1.1 (upstream digest, bot connector, token and
 * key fetches) on libcurl multi handles (shards of up to
 * HTTP_CLIENT_SHARD_TRANSFERS transfers) driven by the libuv loop. The
 * client owns the multis, a timer and an idle handle per multi, one
 * uv_poll_t per socket curl watches, and every request in flight;
 * connections are kept alive and reused within a shard. Life:
 * http_client_create → http_client_send… → http_client_stop (every pending
 * callback runs once with DG_ERR_CLOSED, handles close) → stopped_cb →
 * http_client_free. Response bytes are borrowed for the callback only.
 * See docs/http_client.md for the design and the fd limit (RLIMIT_NOFILE).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/common.h"
#include "metrics.h"

/* Connect phase bound when a request does not set its own. */
#define HTTP_CLIENT_CONNECT_TIMEOUT_MS 5000
/*
 * Upper bound on requests in flight (each may hold a connection). The
 * effective bound is min(this, RLIMIT_NOFILE soft limit / 2), logged at
 * create; see docs/http_client.md.
 */
#define HTTP_CLIENT_MAX_CONNECTIONS 16384
/*
 * Transfers per curl multi handle (shard) before a new shard is opened;
 * the client holds at most ceil(budget / this) shards.
 */
#define HTTP_CLIENT_SHARD_TRANSFERS 256

struct http_client;
struct http_client_call;

/* What a caller asks for. Everything is copied by http_client_send. */
struct http_client_request {
    const char *method;         /* "GET", "POST" or "PUT" */
    const char *url;            /* http:// or https:// only; redirects are not followed */
    const char *const *headers; /* "Name: value" strings, or NULL */
    size_t n_headers;
    const void *body; /* POST/PUT body (may hold NULs), or NULL */
    size_t body_len;
    uint64_t timeout_ms;           /* whole request: connect, send, wait, body; > 0 */
    uint64_t connect_timeout_ms;   /* 0 = min(timeout_ms, HTTP_CLIENT_CONNECT_TIMEOUT_MS) */
    size_t max_response_bytes;     /* body cap; past it the transfer stops: DG_ERR_TOO_LARGE */
    const enum metrics_hist *hist; /* histogram for the latency, or NULL; read at send */
};

/* What the callback gets. Valid during the callback only. */
struct http_client_response {
    int err;               /* 0, DG_ERR_TIMEOUT, DG_ERR_UNAVAILABLE (DNS, connect, TLS,
                              transport), DG_ERR_TOO_LARGE, DG_ERR_PROTOCOL (malformed
                              reply), DG_ERR_INVALID (bad URL/scheme), DG_ERR_CLOSED */
    long status;           /* HTTP status, also set with an error; 0 if none arrived */
    struct buf *body;      /* received bytes (up to the cap); buf_take() keeps them */
    int64_t retry_after_s; /* Retry-After in seconds (delta or HTTP-date), -1 if absent */
    const char *error;     /* curl's message when err != 0, else "" */
    uint64_t elapsed_ns;   /* from http_client_send to completion */
};

typedef void (*http_client_done_cb)(const struct http_client_response *res, void *data);
typedef void (*http_client_stopped_cb)(struct http_client *c, void *data);

/*
 * Creates a client on loop. metrics may be NULL; borrowed for the client's
 * life. Returns NULL (logged) when libcurl cannot be initialised or lacks an
 * asynchronous resolver, because DNS would then block the loop.
 */
struct http_client *http_client_create(uv_loop_t *loop, struct metrics *metrics);

/*
 * Starts a request. Returns 0 and later calls cb exactly once, never from
 * inside this call; or returns DG_ERR_INVALID (bad method, URL, header,
 * timeout or cap), DG_ERR_CLOSED (client stopping) or UV_EMFILE (the
 * in-flight budget is used up) and never calls cb. When call is
 * not NULL it receives a handle for http_client_cancel, valid until cb
 * starts running.
 */
int http_client_send(struct http_client *c, const struct http_client_request *req,
                     http_client_done_cb cb, void *data,
                     struct http_client_call **call) WARN_UNUSED;

/*
 * Cancels a pending request: its connection is dropped and its callback
 * runs once with DG_ERR_CLOSED before this function returns. Must not be
 * called on a call whose callback has started.
 */
void http_client_cancel(struct http_client_call *call);

/*
 * Begins shutdown: every pending request's callback runs once with
 * DG_ERR_CLOSED (before this returns), new sends fail, and all handles
 * close; cb (may be NULL) runs when the last has closed, after which the
 * loop holds nothing of ours. Safe from inside a done callback. Idempotent.
 */
void http_client_stop(struct http_client *c, http_client_stopped_cb cb, void *data);

/* Frees a client whose stopped_cb has run (from inside it is fine), or NULL. */
void http_client_free(struct http_client *c);

/* Number of requests whose callback has not run yet. */
size_t http_client_pending(const struct http_client *c);

/*
 * Number of curl multi handles (shards) the client has opened so far; they
 * stay until stop. *max_shards (if not NULL) gets the bound.
 */
size_t http_client_shards(const struct http_client *c, size_t *max_shards);

/*
 * Parses a Retry-After value: delta-seconds ("120") or an HTTP-date (IMF
 * fixdate, RFC 850 or asctime), relative to now_s (Unix seconds). A date in
 * the past gives 0. Returns 0 and *out_s, or DG_ERR_INVALID.
 */
int http_client_parse_retry_after(const char *value, int64_t now_s, int64_t *out_s) WARN_UNUSED;
