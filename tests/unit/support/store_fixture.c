/* store_fixture.c: see store_fixture.h. */
#include "store_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "core/log.h"
#include "metrics.h"
#include "store/cmd.h"
#include "store/redis.h"

static bool is_ready(void *arg)
{
    return redis_conn_ready(arg);
}

static bool is_stopped(void *arg)
{
    return ((struct store_fixture *)arg)->stopped;
}

static bool has_calls(void *arg)
{
    return *(const int *)arg > 0;
}

static void on_stopped(struct redis_conn *c, void *data)
{
    ((struct store_fixture *)data)->stopped = true;
}

int store_fixture_setup(void **state)
{
    struct store_fixture *f = xcalloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    config_defaults(&f->cfg);
    log_setup(LOG_LEVEL_ERROR, false);
    f->metrics = metrics_create();
    redis_server_start(&f->srv, false, NULL);
    f->cfg.redis_kind = REDIS_TCP;
    xfree(f->cfg.redis_host);
    f->cfg.redis_host = xstrdup("127.0.0.1");
    f->cfg.redis_port = f->srv.port;
    f->conn = redis_conn_create(&f->loop, &f->cfg, "test", f->metrics);
    redis_conn_start(f->conn);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    f->rc = sync_connect(&f->srv, 0);
    assert_non_null(f->rc);
    *state = f;
    return 0;
}

int store_fixture_teardown(void **state)
{
    struct store_fixture *f = *state;

    redis_conn_stop(f->conn, on_stopped, f);
    assert_true(loop_run_until(&f->loop, &f->tick, is_stopped, f, 5000));
    redis_conn_free(f->conn);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    redisFree(f->rc);
    redis_server_cleanup(&f->srv);
    metrics_free(f->metrics);
    config_free(&f->cfg);
    xfree(f);
    return 0;
}

void store_fixture_wait_one(struct store_fixture *f, int *calls)
{
    assert_true(loop_run_until(&f->loop, &f->tick, has_calls, calls, 5000));
    loop_run_for(&f->loop, &f->tick, 20);
    assert_int_equal(*calls, 1);
}

void store_fixture_json_text(struct json_object *o, char *out, size_t size)
{
    snprintf(out, size, "%s", o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "");
    json_object_put(o);
}

int store_fixture_sync_json(struct store_fixture *f, struct store_cmd *c,
                            int (*decode)(const struct redisReply *, struct json_object **),
                            char *out, size_t size)
{
    redisReply *rep = redisCommandArgv(f->rc, c->argc, c->argv, c->argvlen);
    struct json_object *o;
    int err = decode(rep, &o);

    store_cmd_free(c);
    freeReplyObject(rep);
    store_fixture_json_text(o, out, size);
    return err;
}
