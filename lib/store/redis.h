/*
 * redis.h: one resilient asynchronous Redis connection on the libuv loop:
 * our own transport (redis_wire.h: TCP, unix socket, or TLS through OpenSSL
 * memory BIOs) carrying commands formatted by resp.h and replies parsed by
 * hiredis's reader (redisReader). It connects with
 * capped exponential backoff and full jitter, sends AUTH ([user] password)
 * and SELECT from REDIS_URL before anything else,
 * reconnects after any disconnect with a fresh wire, and watches the
 * connection's liveness: while commands are pending, Redis must send reply
 * bytes within REDIS_COMMAND_TIMEOUT_MS of the last ones it sent (or of the
 * oldest pending command's write to the socket, when nothing was pending
 * before it).
 * A long queue that Redis works through is therefore not a timeout, only
 * silence is. A command given its own timeout_ms is bounded by it from its
 * write (Redis counts a BLOCK from when it gets the command), and while it is the oldest pending
 * one its own bound replaces the liveness rule (a BLOCK is silent on purpose). A timeout tears the
 * connection down (replies are FIFO, so everything behind it is stuck too);
 * all pending callbacks then finish with an error and a reconnect is
 * scheduled.
 *
 * Lifecycle: create → start → (commands) → stop(cb) → free in or after cb.
 * Every command finishes exactly once (STYLE rule 11): a nonzero return at
 * submission and no callback, or exactly one callback later. Host names are
 * resolved with uv_getaddrinfo, so nothing here blocks the loop.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/common.h"

struct redis_conn;
struct redisReply;
struct config;
struct metrics;

/*
 * err is 0 and reply non-NULL when Redis answered (the reply may still be a
 * Redis error reply: check reply->type); otherwise err is DG_ERR_UNAVAILABLE
 * (connection lost), DG_ERR_TIMEOUT or DG_ERR_CLOSED (stopping) and reply is
 * NULL. reply is borrowed: it is freed after the callback returns.
 */
typedef void (*redis_reply_cb)(int err, struct redisReply *reply, void *data);

/*
 * Called with up=true each time the connection becomes usable (after AUTH and
 * SELECT succeeded) — the owner sends its setup commands from here — and
 * with up=false each time a usable connection is lost.
 */
typedef void (*redis_state_cb)(struct redis_conn *c, bool up, void *data);
typedef void (*redis_stopped_cb)(struct redis_conn *c, void *data);

/* name appears in logs ("queue", "reader"). cfg and metrics are borrowed. */
struct redis_conn *redis_conn_create(uv_loop_t *loop, const struct config *cfg, const char *name,
                                     struct metrics *metrics);
void redis_conn_set_state_cb(struct redis_conn *c, redis_state_cb cb, void *data);
/* Begins connecting; returns at once. */
void redis_conn_start(struct redis_conn *c);
/* True when connected and AUTH/SELECT are done. */
bool redis_conn_ready(const struct redis_conn *c);

/*
 * Sends one command (binary-safe argv, borrowed for the call only: it is
 * formatted into the wire's output buffer at once). timeout_ms 0: only the
 * connection's liveness rule applies (above); on a teardown the command
 * finishes with DG_ERR_TIMEOUT when it was the oldest pending one or had
 * waited REDIS_COMMAND_TIMEOUT_MS since its write, else DG_ERR_UNAVAILABLE.
 * Nonzero: DG_ERR_TIMEOUT (and a teardown) once timeout_ms has passed since
 * its write, however busy the queue; use it for blocking commands (BLOCK
 * plus a margin). Returns DG_ERR_UNAVAILABLE (no callback) when the
 * connection is not ready, DG_ERR_CLOSED when stopping; else 0 and cb runs
 * exactly once later. Safe to call from inside any callback of this module.
 */
int redis_conn_command(struct redis_conn *c, uint64_t timeout_ms, redis_reply_cb cb, void *data,
                       int argc, const char **argv, const size_t *argvlen) WARN_UNUSED;

/*
 * redis_conn_command for a command the caller wrote in RESP itself (len
 * bytes, copied): one append, where hiredis would format each argument.
 * The caller must write exactly one well-formed command.
 */
int redis_conn_command_resp(struct redis_conn *c, uint64_t timeout_ms, redis_reply_cb cb,
                            void *data, const char *resp, size_t len) WARN_UNUSED;

/*
 * Drops a usable connection that the owner found unfit (for example its setup
 * commands failed) and reconnects after the usual backoff. Pending commands
 * finish with DG_ERR_UNAVAILABLE. Takes effect on the next loop iteration, so
 * it is safe inside a reply callback; a no-op unless connected.
 */
void redis_conn_reset(struct redis_conn *c);

/*
 * Disconnects; pending commands finish with DG_ERR_CLOSED; no reconnect.
 * cb runs once every handle is closed (our timer and the adapter's poll), so
 * the owner's loop can then be closed. Calling it again is a no-op.
 */
void redis_conn_stop(struct redis_conn *c, redis_stopped_cb cb, void *data);
/* Only after the stopped callback ran (or inside it). */
void redis_conn_free(struct redis_conn *c);

/*
 * A reply callback's outcome as one code: err when the command failed, or
 * DG_ERR_PROTOCOL when Redis answered with an error reply (it is up, but
 * said no), else 0.
 */
int redis_reply_status(int err, const struct redisReply *reply);

/* "redis://host:port", "rediss://[::1]:6380" or "unix:/path": REDIS_URL without secrets. */
void redis_where(const struct config *cfg, char *out, size_t n);
