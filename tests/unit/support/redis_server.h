/*
 * redis_server.h: test helpers that start real redis-server processes (on a
 * free loopback port or a unix socket, in a temp dir, killed by pid, never by
 * name), check Redis with hiredis's blocking API (tests may block; the code
 * under test may not), and run a libuv loop until a condition holds.
 * Failures go through cmocka's assertions, so these only run inside a test.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include <hiredis/hiredis.h>

struct redis_server {
    pid_t pid;
    int port; /* 0 with a unix socket only */
    char dir[64];
    char sock[128];
    const char *password;     /* borrowed; NULL for none */
    const char *const *extra; /* borrowed, NULL-terminated: more redis-server arguments */
};

/* Fresh temp dir, then spawn and wait for PING (bounded: 5 s). */
void redis_server_start(struct redis_server *s, bool unix_only, const char *password);
/* The same with more redis-server arguments (extra: borrowed, NULL-terminated, or NULL). */
void redis_server_start_with(struct redis_server *s, bool unix_only, const char *password,
                             const char *const *extra);
/* (Re)starts the process on s's port/socket and dir (plus s->extra), e.g. after a kill. */
void redis_server_spawn(struct redis_server *s);
/* SIGKILL by the pid we started, and reap it. A no-op when not running. */
void redis_server_kill(struct redis_server *s);
/* Kills, then removes the log, the socket and the temp dir. */
void redis_server_cleanup(struct redis_server *s);

/* A blocking connection (AUTH, SELECT db done), NULL when refused. */
redisContext *sync_connect(const struct redis_server *s, int db);
/* A blocking command; the reply is never NULL (asserted). Free it. */
redisReply *sync_cmd(redisContext *rc, const char *fmt, ...);
/* A one-argument command whose reply must be an integer. */
long long sync_cmd_int(redisContext *rc, const char *fmt, const char *key);
/* A flat reply array (HGETALL, fields of a stream entry) equals want[]. */
void sync_assert_pairs(const redisReply *r, const char *const *want, size_t n);

/*
 * Runs loop until pred(arg) holds or timeout_ms passes; returns pred. tick is
 * an initialised timer of loop, re-armed to bound each UV_RUN_ONCE.
 */
bool loop_run_until(uv_loop_t *loop, uv_timer_t *tick, bool (*pred)(void *), void *arg,
                    uint64_t timeout_ms);
/* Runs loop for ms, whatever happens. */
void loop_run_for(uv_loop_t *loop, uv_timer_t *tick, uint64_t ms);
