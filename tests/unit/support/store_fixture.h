/*
 * store_fixture.h: what the lib/store tests that talk to Redis share: a
 * real redis-server of their own, a config pointing at it, one async
 * redis_conn on a loop (digestd's way) and one blocking hiredis context
 * (digestctl's way, and the test's own view of Redis). Set up and torn
 * down per test, so each starts from an empty Redis.
 */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "redis_server.h"

struct json_object;
struct metrics;
struct store_cmd;

struct store_fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    struct config cfg;
    struct metrics *metrics;
    struct redis_server srv;
    struct redis_conn *conn;
    redisContext *rc;
    bool stopped;
};

/* cmocka setup and teardown: *state is the struct store_fixture. */
int store_fixture_setup(void **state);
int store_fixture_teardown(void **state);

/* Runs the loop until *calls > 0 (bounded: 5 s), then a little more: asserts exactly one. */
void store_fixture_wait_one(struct store_fixture *f, int *calls);

/*
 * Sends c (freed) on the blocking context and decodes the reply with
 * decode, as digestctl does; the JSON as compact text into out ("" for
 * none). Returns the decoder's result.
 */
int store_fixture_sync_json(struct store_fixture *f, struct store_cmd *c,
                            int (*decode)(const struct redisReply *, struct json_object **),
                            char *out, size_t size);

/* JSON (taken) as compact text into out; "" for NULL. */
void store_fixture_json_text(struct json_object *o, char *out, size_t size);
