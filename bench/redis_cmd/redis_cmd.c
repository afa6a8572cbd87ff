/*
 * redis_cmd.c: the cost of one command through store/redis.h, for
 * comparing Redis transports (bench/redis_cmd/run.sh builds this file
 * against the hiredis-async redis.c of before the TLS work and against
 * today's redis_wire transport, from the same sources otherwise).
 *
 * Usage: redis_cmd MODE N   (REDIS_URL and REDIS_TLS_* from the environment)
 *   MODE rt: N round trips, each PING sent from the previous reply's callback;
 *   MODE pipe: N PINGs with 128 in flight.
 * Prints one line: mode, n, seconds, commands per second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "core/log.h"
#include "metrics.h"
#include "store/redis.h"

#define WINDOW 128

extern char **environ;

struct bench {
    struct redis_conn *conn;
    long left, done, errors; /* commands still to send, answered, failed */
    int window;
    uint64_t t0;
    uint64_t deadline; /* uv_now() ms: give up connecting */
    uv_timer_t wait;
};

static void on_stopped(struct redis_conn *c, void *data)
{
}

static void send_one(struct bench *b);

static void on_reply(int err, struct redisReply *r, void *data)
{
    struct bench *b = data;

    b->done++;
    if (err != 0 || r->type == REDIS_REPLY_ERROR)
        b->errors++;
    /* Each reply sends the next: the window stays full until the last command. */
    if (b->left > 0)
        send_one(b);
}

static void send_one(struct bench *b)
{
    const char *argv[] = {"PING"};

    b->left--;
    if (redis_conn_command(b->conn, 0, on_reply, b, 1, argv, NULL) != 0) {
        fprintf(stderr, "redis_cmd: not connected\n");
        exit(1);
    }
}

/* Waits (polling every ms) for the connection, then starts the window. */
static void on_wait(uv_timer_t *t)
{
    struct bench *b = t->data;

    if (!redis_conn_ready(b->conn)) {
        if (uv_now(t->loop) > b->deadline) {
            fprintf(stderr, "redis_cmd: not connected after 5 s\n");
            exit(1);
        }
        return;
    }
    uv_timer_stop(t);
    b->t0 = uv_hrtime();
    for (int i = 0; i < b->window && b->left > 0; i++)
        send_one(b);
}

int main(int argc, char **argv)
{
    static struct bench b;
    struct config cfg;
    struct metrics *m;
    uv_loop_t *loop = uv_default_loop();
    char err[512];
    long n;
    double s;

    if (argc != 3 || (strcmp(argv[1], "rt") && strcmp(argv[1], "pipe")) ||
        (n = atol(argv[2])) <= 0) {
        fprintf(stderr, "usage: redis_cmd rt|pipe N\n");
        return 2;
    }
    if (config_load(&cfg, NULL, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    log_setup(LOG_LEVEL_ERROR, false);
    m = metrics_create();
    b.conn = redis_conn_create(loop, &cfg, "bench", m);
    b.left = n;
    b.window = strcmp(argv[1], "rt") == 0 ? 1 : WINDOW;
    uv_timer_init(loop, &b.wait);
    b.wait.data = &b;
    b.deadline = uv_now(loop) + 5000;
    uv_timer_start(&b.wait, on_wait, 1, 1);
    redis_conn_start(b.conn);
    while (b.done < n)
        uv_run(loop, UV_RUN_ONCE);
    s = (double)(uv_hrtime() - b.t0) / 1e9;
    printf("%s n=%ld errors=%ld seconds=%.3f per_s=%.0f\n", argv[1], n, b.errors, s, n / s);
    redis_conn_stop(b.conn, on_stopped, NULL);
    uv_close((uv_handle_t *)&b.wait, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    redis_conn_free(b.conn);
    metrics_free(m);
    config_free(&cfg);
    return b.errors != 0;
}
