/*
 * test_redis_wire.c: the Redis transport (redis_wire.c) and the connection
 * on top of it (redis.c), against real redis-servers (plain, an ACL user,
 * TLS with certificates made here by `openssl`) and against small fake
 * servers on the test's own loop for what a real Redis never does: bytes
 * that are not RESP, a reply nobody asked for, replies one byte at a time,
 * silence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>

#include <openssl/err.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "core/buf.h"
#include "core/log.h"
#include "metrics.h"
#include "redis_server.h"
#include "store/redis.h"
#include "store/redis_sync.h"
#include "store/redis_tls.h"
#include "store/redis_wire.h"

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    struct config cfg;
    struct metrics *metrics;
    struct redis_conn *conn;
    bool stopped;
};

/* Replaces a config string (owned). */
static void put(char **field, const char *v)
{
    xfree(*field);
    *field = v ? xstrdup(v) : NULL;
}

static struct fixture *fixture_new(void)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    config_defaults(&f->cfg);
    log_setup(LOG_LEVEL_ERROR, false);
    f->metrics = metrics_create();
    return f;
}

static void on_stopped(struct redis_conn *c, void *data)
{
    ((struct fixture *)data)->stopped = true;
}

static bool is_ready(void *arg)
{
    return redis_conn_ready(arg);
}

static bool is_stopped(void *arg)
{
    return ((struct fixture *)arg)->stopped;
}

static void conn_start(struct fixture *f, const char *host, int port)
{
    put(&f->cfg.redis_host, host);
    f->cfg.redis_port = port;
    f->conn = redis_conn_create(&f->loop, &f->cfg, "test", f->metrics);
    redis_conn_start(f->conn);
}

/* Stops the connection (unless the test did) and closes the loop. */
static void fixture_free(struct fixture *f)
{
    if (f->conn) {
        redis_conn_stop(f->conn, on_stopped, f);
        assert_true(loop_run_until(&f->loop, &f->tick, is_stopped, f, 5000));
        redis_conn_free(f->conn);
    }
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    metrics_free(f->metrics);
    config_free(&f->cfg);
    xfree(f);
}

/* ---- replies -------------------------------------------------------------- */

struct replies {
    int calls;
    int errs[4096];
    long long ints[4096];
    char *str; /* the last string reply */
};

static void on_reply(int err, struct redisReply *r, void *data)
{
    struct replies *rs = data;
    int i = rs->calls++;

    assert_true(i < 4096);
    rs->errs[i] = err;
    if (err == 0 && r->type == REDIS_REPLY_INTEGER)
        rs->ints[i] = r->integer;
    if (err == 0 && r->type == REDIS_REPLY_STRING) {
        xfree(rs->str);
        rs->str = xstrndup(r->str, r->len);
    }
}

static bool calls_reach(void *arg)
{
    struct replies *rs = arg;

    return rs->calls >= rs->ints[4095]; /* the target is parked in the last slot */
}

static void wait_calls(struct fixture *f, struct replies *rs, int n)
{
    rs->ints[4095] = n;
    assert_true(loop_run_until(&f->loop, &f->tick, calls_reach, rs, 10000));
    rs->ints[4095] = 0;
}

static int cmd(struct fixture *f, struct replies *rs, const char *a, const char *b, const char *c)
{
    const char *argv[3] = {a, b, c};

    return redis_conn_command(f->conn, 0, on_reply, rs, c ? 3 : b ? 2 : 1, argv, NULL);
}

/* 2,000 commands sent in one loop turn come back in order, each exactly once. */
static void pipelined_commands_answer_in_order(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct replies *rs = xcalloc(1, sizeof(*rs));

    redis_server_start(&srv, false, NULL);
    conn_start(f, "127.0.0.1", srv.port);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    for (int i = 0; i < 2000; i++)
        assert_int_equal(cmd(f, rs, "INCR", "n", NULL), 0);
    wait_calls(f, rs, 2000);
    loop_run_for(&f->loop, &f->tick, 20);
    assert_int_equal(rs->calls, 2000);
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(rs->errs[i], 0);
        assert_int_equal(rs->ints[i], i + 1);
    }
    xfree(rs->str);
    xfree(rs);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/* A 4 MiB value goes out in many writes and comes back in many reads. */
static void a_large_value_round_trips(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct replies *rs = xcalloc(1, sizeof(*rs));
    size_t n = 4 * 1024 * 1024;
    char *big = xmalloc(n + 1);

    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    redis_server_start(&srv, false, NULL);
    conn_start(f, "127.0.0.1", srv.port);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    assert_int_equal(cmd(f, rs, "SET", "big", big), 0);
    assert_int_equal(cmd(f, rs, "GET", "big", NULL), 0);
    wait_calls(f, rs, 2);
    assert_int_equal(rs->errs[0], 0);
    assert_int_equal(rs->errs[1], 0);
    assert_non_null(rs->str);
    assert_int_equal(strlen(rs->str), n);
    assert_memory_equal(rs->str, big, n);
    xfree(big);
    xfree(rs->str);
    xfree(rs);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/* AUTH user password: a Redis 6 ACL user (ACL WHOAMI names it, not the default user). */
static void an_acl_user_authenticates(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct replies *rs = xcalloc(1, sizeof(*rs));
    redisContext *rc;

    redis_server_start(&srv, false, "adminpw");
    rc = sync_connect(&srv, 0);
    assert_non_null(rc);
    freeReplyObject(sync_cmd(rc, "ACL SETUSER app on >app%%pw ~* &* +@all"));
    redisFree(rc);
    put(&f->cfg.redis_user, "app");
    put(&f->cfg.redis_password, "app%pw");
    f->cfg.redis_db = 2;
    conn_start(f, "127.0.0.1", srv.port);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    assert_int_equal(cmd(f, rs, "ACL", "WHOAMI", NULL), 0);
    assert_int_equal(cmd(f, rs, "CLIENT", "INFO", NULL), 0);
    wait_calls(f, rs, 2);
    assert_int_equal(rs->errs[0], 0);
    /* CLIENT INFO is the last string reply: it names the user and the db SELECTed. */
    assert_non_null(strstr(rs->str, " user=app "));
    assert_non_null(strstr(rs->str, " db=2 "));
    xfree(rs->str);
    xfree(rs);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/* Stop from inside a reply callback: every other pending command gets DG_ERR_CLOSED, once. */
struct stop_inside {
    struct fixture *f;
    struct replies rs;
};

static void stop_from_reply(int err, struct redisReply *r, void *data)
{
    struct stop_inside *s = data;

    on_reply(err, r, &s->rs);
    if (s->rs.calls == 1)
        redis_conn_stop(s->f->conn, on_stopped, s->f);
}

static void stop_inside_a_reply_finishes_the_rest_once(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct stop_inside *s = xcalloc(1, sizeof(*s));
    const char *argv[] = {"PING"};

    s->f = f;
    redis_server_start(&srv, false, NULL);
    conn_start(f, "127.0.0.1", srv.port);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    for (int i = 0; i < 50; i++)
        assert_int_equal(redis_conn_command(f->conn, 0, stop_from_reply, s, 1, argv, NULL), 0);
    assert_true(loop_run_until(&f->loop, &f->tick, is_stopped, f, 5000));
    loop_run_for(&f->loop, &f->tick, 20);
    assert_int_equal(s->rs.calls, 50);
    assert_int_equal(s->rs.errs[0], 0);
    for (int i = 1; i < 50; i++)
        assert_int_equal(s->rs.errs[i], DG_ERR_CLOSED);
    redis_conn_free(f->conn);
    f->conn = NULL;
    xfree(s);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/* ---- fake servers on the test's loop -------------------------------------- */

enum fake_mode {
    FAKE_GARBAGE,     /* answers the handshake PING with bytes that are not RESP */
    FAKE_UNSOLICITED, /* answers PING twice */
    FAKE_DRIP,        /* answers each command one byte per write */
    FAKE_SILENT,      /* answers the handshake, then nothing */
    FAKE_HUGE,        /* an array header that would ask hiredis 0.14 for 13.6 GB */
};

struct fake {
    uv_tcp_t listener;
    uv_tcp_t peer[8];
    int npeers;
    int port;
    enum fake_mode mode;
    int commands; /* "*" seen in what clients sent: commands, roughly */
};

static void fake_write(uv_tcp_t *peer, const char *p, size_t n)
{
    char copy[64];
    uv_buf_t b = uv_buf_init(copy, (unsigned)n);

    assert_true(n <= sizeof(copy));
    memcpy(copy, p, n);
    /* Loopback takes a few bytes at once; the test never writes more. */
    assert_true(uv_try_write((uv_stream_t *)peer, &b, 1) == (int)n);
}

static void fake_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    static char mem[65536];

    *b = uv_buf_init(mem, sizeof(mem));
}

static void fake_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct fake *fk = s->data;
    static const char pong[] = "+PONG\r\n";

    if (nread < 0) {
        uv_read_stop(s);
        return;
    }
    for (ssize_t i = 0; i < nread; i++) {
        if (b->base[i] != '*')
            continue;
        fk->commands++;
        switch (fk->mode) {
        case FAKE_GARBAGE:
            fake_write((uv_tcp_t *)s, "?garbage\r\n", 10);
            break;
        case FAKE_UNSOLICITED:
            fake_write((uv_tcp_t *)s, "+PONG\r\n+PONG\r\n", 14);
            break;
        case FAKE_DRIP:
            for (size_t k = 0; k < sizeof(pong) - 1; k++)
                fake_write((uv_tcp_t *)s, pong + k, 1);
            break;
        case FAKE_HUGE:
            fake_write((uv_tcp_t *)s, "*1700000000\r\n", 13);
            break;
        case FAKE_SILENT:
            if (fk->commands == 1)
                fake_write((uv_tcp_t *)s, pong, sizeof(pong) - 1);
            break;
        }
    }
}

static void fake_accept(uv_stream_t *l, int status)
{
    struct fake *fk = l->data;
    uv_tcp_t *peer;

    assert_int_equal(status, 0);
    assert_true(fk->npeers < 8);
    peer = &fk->peer[fk->npeers++];
    uv_tcp_init(l->loop, peer);
    peer->data = fk;
    assert_int_equal(uv_accept(l, (uv_stream_t *)peer), 0);
    uv_read_start((uv_stream_t *)peer, fake_alloc, fake_read);
}

static void fake_start(struct fixture *f, struct fake *fk, enum fake_mode mode)
{
    struct sockaddr_in sa;
    int len = sizeof(sa);

    memset(fk, 0, sizeof(*fk));
    fk->mode = mode;
    uv_tcp_init(&f->loop, &fk->listener);
    fk->listener.data = fk;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&fk->listener, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&fk->listener, 8, fake_accept), 0);
    uv_tcp_getsockname(&fk->listener, (struct sockaddr *)&sa, &len);
    fk->port = ntohs(sa.sin_port);
}

static void fake_stop(struct fake *fk)
{
    uv_close((uv_handle_t *)&fk->listener, NULL);
    for (int i = 0; i < fk->npeers; i++)
        uv_close((uv_handle_t *)&fk->peer[i], NULL);
}

static bool two_peers(void *arg)
{
    return ((struct fake *)arg)->npeers >= 2;
}

/*
 * Bytes that are not RESP, a reply nobody asked for, an array too long to
 * allocate (resp.h): the stream is dropped and redialled.
 */
static void protocol_errors_reconnect(void **state)
{
    enum fake_mode modes[] = {FAKE_GARBAGE, FAKE_UNSOLICITED, FAKE_HUGE};

    for (size_t m = 0; m < ARRAY_SIZE(modes); m++) {
        struct fixture *f = fixture_new();
        struct fake fk;

        fake_start(f, &fk, modes[m]);
        conn_start(f, "127.0.0.1", fk.port);
        /* Never ready with garbage; with a second PONG, ready then dropped: both redial. */
        assert_true(loop_run_until(&f->loop, &f->tick, two_peers, &fk, 5000));
        if (modes[m] != FAKE_UNSOLICITED)
            assert_false(redis_conn_ready(f->conn));
        redis_conn_stop(f->conn, on_stopped, f);
        assert_true(loop_run_until(&f->loop, &f->tick, is_stopped, f, 5000));
        fake_stop(&fk);
        fixture_free(f);
    }
}

/* A reply that arrives one byte per packet is still one reply. */
static void replies_split_into_single_bytes(void **state)
{
    struct fixture *f = fixture_new();
    struct replies *rs = xcalloc(1, sizeof(*rs));
    struct fake fk;

    fake_start(f, &fk, FAKE_DRIP);
    conn_start(f, "127.0.0.1", fk.port);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    for (int i = 0; i < 3; i++)
        assert_int_equal(cmd(f, rs, "PING", NULL, NULL), 0);
    wait_calls(f, rs, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rs->errs[i], 0);
    assert_int_equal(fk.npeers, 1);
    xfree(rs);
    redis_conn_stop(f->conn, on_stopped, f);
    assert_true(loop_run_until(&f->loop, &f->tick, is_stopped, f, 5000));
    fake_stop(&fk);
    fixture_free(f);
}

/* Silence after the handshake: our own deadline fails the command, then we redial. */
static void a_silent_server_times_out(void **state)
{
    struct fixture *f = fixture_new();
    struct replies *rs = xcalloc(1, sizeof(*rs));
    const char *argv[] = {"PING"};
    struct fake fk;

    fake_start(f, &fk, FAKE_SILENT);
    conn_start(f, "127.0.0.1", fk.port);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    assert_int_equal(redis_conn_command(f->conn, 200, on_reply, rs, 1, argv, NULL), 0);
    wait_calls(f, rs, 1);
    assert_int_equal(rs->errs[0], DG_ERR_TIMEOUT);
    assert_false(redis_conn_ready(f->conn));
    assert_true(loop_run_until(&f->loop, &f->tick, two_peers, &fk, 5000));
    xfree(rs);
    redis_conn_stop(f->conn, on_stopped, f);
    assert_true(loop_run_until(&f->loop, &f->tick, is_stopped, f, 5000));
    fake_stop(&fk);
    fixture_free(f);
}

/* ---- deadlines: silence, not queueing, is a timeout ----------------------- */

/* A script that keeps Redis busy for 5 ms of wall time (TIME, so a loaded machine cannot shorten
 * it). */
static const char slow_script[] =
    "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] "
    "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - s >= 5000 return 1";

struct watch {
    struct replies rs;
    int ups, downs;
    uint64_t last_ok_ms, down_ms; /* uv_hrtime() in ms */
};

static uint64_t hr_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void on_watch_state(struct redis_conn *c, bool up, void *data)
{
    struct watch *wa = data;

    if (up) {
        wa->ups++;
    } else {
        wa->downs++;
        wa->down_ms = hr_ms();
    }
}

static void on_watch_reply(int err, struct redisReply *r, void *data)
{
    struct watch *wa = data;

    on_reply(err, r, &wa->rs);
    if (err == 0)
        wa->last_ok_ms = hr_ms();
}

static int slow_eval(struct fixture *f, struct watch *wa)
{
    const char *argv[] = {"EVAL", slow_script, "0"};

    return redis_conn_command(f->conn, 0, on_watch_reply, wa, 3, argv, NULL);
}

static bool went_down(void *arg)
{
    return ((struct watch *)arg)->downs > 0;
}

/*
 * 600 commands of 5 ms each, sent at once: the last answers ~3 s after it
 * was sent, past REDIS_COMMAND_TIMEOUT_MS, but Redis answered all along, so
 * nothing times out and the connection stays up.
 */
static void a_long_queue_that_progresses_never_times_out(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct watch *wa = xcalloc(1, sizeof(*wa));
    uint64_t t0;

    redis_server_start(&srv, false, NULL);
    conn_start(f, "127.0.0.1", srv.port);
    redis_conn_set_state_cb(f->conn, on_watch_state, wa);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    t0 = hr_ms();
    for (int i = 0; i < 600; i++)
        assert_int_equal(slow_eval(f, wa), 0);
    wait_calls(f, &wa->rs, 600);
    assert_true(hr_ms() - t0 >= REDIS_COMMAND_TIMEOUT_MS + 500); /* the test means something */
    for (int i = 0; i < 600; i++) {
        assert_int_equal(wa->rs.errs[i], 0);
        assert_int_equal(wa->rs.ints[i], 1);
    }
    assert_int_equal(wa->downs, 0);
    assert_int_equal(wa->ups, 1);
    assert_true(redis_conn_ready(f->conn));
    xfree(wa);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/*
 * The same queue, and Redis stops (SIGSTOP) in the middle: the connection
 * goes down about REDIS_COMMAND_TIMEOUT_MS after the last reply, the head
 * with DG_ERR_TIMEOUT, and comes back once Redis runs again.
 */
static void a_stopped_server_times_out_after_the_deadline_of_silence(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct watch *wa = xcalloc(1, sizeof(*wa));
    int answered;

    redis_server_start(&srv, false, NULL);
    conn_start(f, "127.0.0.1", srv.port);
    redis_conn_set_state_cb(f->conn, on_watch_state, wa);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    for (int i = 0; i < 200; i++)
        assert_int_equal(slow_eval(f, wa), 0);
    wait_calls(f, &wa->rs, 20);
    kill(srv.pid, SIGSTOP);
    assert_true(loop_run_until(&f->loop, &f->tick, went_down, wa, REDIS_COMMAND_TIMEOUT_MS + 3000));
    answered = 0;
    while (answered < wa->rs.calls && wa->rs.errs[answered] == 0)
        answered++;
    assert_true(answered >= 20 && answered < 200);
    assert_true(wa->down_ms - wa->last_ok_ms >= REDIS_COMMAND_TIMEOUT_MS - 20);
    assert_true(wa->down_ms - wa->last_ok_ms <= REDIS_COMMAND_TIMEOUT_MS + 1000);
    assert_int_equal(wa->rs.calls, 200); /* every one finished, once */
    assert_int_equal(wa->rs.errs[answered], DG_ERR_TIMEOUT);
    for (int i = answered + 1; i < 200; i++)
        assert_true(wa->rs.errs[i] == DG_ERR_TIMEOUT || wa->rs.errs[i] == DG_ERR_UNAVAILABLE);
    kill(srv.pid, SIGCONT);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 10000));
    assert_int_equal(wa->ups, 2);
    xfree(wa);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/*
 * A blocking command with its own, longer timeout (the worker's XREADGROUP
 * BLOCK) is silent on purpose: neither it nor the command queued behind it
 * times out at REDIS_COMMAND_TIMEOUT_MS.
 */
static void a_blocking_command_with_its_own_timeout_may_be_silent(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct watch *wa = xcalloc(1, sizeof(*wa));
    const char *blpop[] = {"BLPOP", "nothing", "2.6"};
    const char *ping[] = {"PING"};
    uint64_t t0;

    redis_server_start(&srv, false, NULL);
    conn_start(f, "127.0.0.1", srv.port);
    redis_conn_set_state_cb(f->conn, on_watch_state, wa);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    t0 = hr_ms();
    assert_int_equal(redis_conn_command(f->conn, 2600 + REDIS_COMMAND_TIMEOUT_MS, on_watch_reply,
                                        wa, 3, blpop, NULL),
                     0);
    assert_int_equal(redis_conn_command(f->conn, 0, on_watch_reply, wa, 1, ping, NULL), 0);
    wait_calls(f, &wa->rs, 2);
    assert_true(hr_ms() - t0 >= 2500);
    assert_int_equal(wa->rs.errs[0], 0);
    assert_int_equal(wa->rs.errs[1], 0);
    assert_int_equal(wa->downs, 0);
    xfree(wa);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/* A caller's own shorter timeout still bounds its command from submission, even behind a queue. */
static void an_own_short_timeout_still_bounds_its_command(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct watch *wa = xcalloc(1, sizeof(*wa));
    const char *ping[] = {"PING"};
    uint64_t t0;

    redis_server_start(&srv, false, NULL);
    conn_start(f, "127.0.0.1", srv.port);
    redis_conn_set_state_cb(f->conn, on_watch_state, wa);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    for (int i = 0; i < 200; i++) /* ~1 s of work */
        assert_int_equal(slow_eval(f, wa), 0);
    t0 = hr_ms();
    assert_int_equal(redis_conn_command(f->conn, 300, on_watch_reply, wa, 1, ping, NULL), 0);
    assert_true(loop_run_until(&f->loop, &f->tick, went_down, wa, 3000));
    assert_true(wa->down_ms - t0 >= 290 && wa->down_ms - t0 <= 900);
    wait_calls(f, &wa->rs, 201);
    assert_int_equal(wa->rs.errs[200], DG_ERR_TIMEOUT);
    xfree(wa);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/*
 * A loop turn longer than the deadline (the worker after thousands of HTTP
 * completions) right after the command went out: the reply that arrived
 * meanwhile is read, not taken for silence.
 */
static void hold_loop(uv_check_t *h)
{
    uv_check_stop(h);
    usleep((REDIS_COMMAND_TIMEOUT_MS + 400) * 1000);
}

static void a_long_loop_turn_is_not_silence(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct watch *wa = xcalloc(1, sizeof(*wa));
    uv_check_t hold;

    redis_server_start(&srv, false, NULL);
    conn_start(f, "127.0.0.1", srv.port);
    redis_conn_set_state_cb(f->conn, on_watch_state, wa);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    /* Started before the command, so it runs after the wire's flush in the check phase. */
    uv_check_init(&f->loop, &hold);
    uv_check_start(&hold, hold_loop);
    assert_int_equal(cmd(f, &wa->rs, "PING", NULL, NULL), 0);
    wait_calls(f, &wa->rs, 1);
    assert_int_equal(wa->rs.errs[0], 0);
    assert_int_equal(wa->downs, 0);
    uv_close((uv_handle_t *)&hold, NULL);
    xfree(wa);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/*
 * The worker's burst: a command submitted early in a loop turn that then
 * runs on past the deadline goes out only at the turn's end. Its clock
 * starts there, so a reply that takes a few ms more than one poll is no
 * timeout.
 */
struct late {
    struct fixture *f;
    struct watch *wa;
};

static void submit_then_hold(uv_timer_t *t)
{
    struct late *l = t->data;

    assert_int_equal(slow_eval(l->f, l->wa), 0);
    usleep((REDIS_COMMAND_TIMEOUT_MS + 400) * 1000);
}

static void a_command_written_late_is_timed_from_its_write(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct watch *wa = xcalloc(1, sizeof(*wa));
    struct late l = {f, wa};
    uv_timer_t t;

    redis_server_start(&srv, false, NULL);
    conn_start(f, "127.0.0.1", srv.port);
    redis_conn_set_state_cb(f->conn, on_watch_state, wa);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    uv_timer_init(&f->loop, &t);
    t.data = &l;
    uv_timer_start(&t, submit_then_hold, 1, 0);
    wait_calls(f, &wa->rs, 1);
    assert_int_equal(wa->rs.errs[0], 0);
    assert_int_equal(wa->downs, 0);
    uv_close((uv_handle_t *)&t, NULL);
    xfree(wa);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/*
 * The worker's XREADGROUP BLOCK with BLOCK + 2 s as its own timeout, sent
 * early in a loop turn that runs on for 2.4 s: Redis counts the block from
 * when it gets the command, so the bound must count from the write too.
 */
static void submit_block_then_hold(uv_timer_t *t)
{
    struct late *l = t->data;
    const char *blpop[] = {"BLPOP", "nothing", "2.6"};

    assert_int_equal(redis_conn_command(l->f->conn, 2600 + REDIS_COMMAND_TIMEOUT_MS, on_watch_reply,
                                        l->wa, 3, blpop, NULL),
                     0);
    usleep((REDIS_COMMAND_TIMEOUT_MS + 400) * 1000);
}

static void an_own_timeout_counts_from_the_write(void **state)
{
    struct fixture *f = fixture_new();
    struct redis_server srv;
    struct watch *wa = xcalloc(1, sizeof(*wa));
    struct late l = {f, wa};
    uv_timer_t t;

    redis_server_start(&srv, false, NULL);
    conn_start(f, "127.0.0.1", srv.port);
    redis_conn_set_state_cb(f->conn, on_watch_state, wa);
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    uv_timer_init(&f->loop, &t);
    t.data = &l;
    uv_timer_start(&t, submit_block_then_hold, 1, 0);
    wait_calls(f, &wa->rs, 1);
    assert_int_equal(wa->rs.errs[0], 0); /* the nil of a BLPOP that waited it out */
    assert_int_equal(wa->downs, 0);
    uv_close((uv_handle_t *)&t, NULL);
    xfree(wa);
    fixture_free(f);
    redis_server_cleanup(&srv);
}

/* ---- TLS ------------------------------------------------------------------ */

struct tls_world {
    char dir[64];
    char ca[128], other_ca[128], crt[128], key[128];
    char port[16];
    const char *extra[16];
    struct redis_server srv;
};

static void sh(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void sh(const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    assert_int_equal(system(line), 0);
}

static int any_port(void)
{
    struct sockaddr_in sa;
    int len = sizeof(sa), port;
    uv_loop_t loop;
    uv_tcp_t t;

    uv_loop_init(&loop);
    uv_tcp_init(&loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&sa, 0), 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&sa, &len);
    port = ntohs(sa.sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return port;
}

/* A CA, a server certificate for localhost/127.0.0.1 it signed, another CA; a TLS port too. */
static struct tls_world *tls_world_start(void)
{
    struct tls_world *w = xcalloc(1, sizeof(*w));
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    int n = 0;

    snprintf(w->dir, sizeof(w->dir), "/tmp/test_tls.XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    snprintf(w->ca, sizeof(w->ca), "%s/ca.crt", w->dir);
    snprintf(w->other_ca, sizeof(w->other_ca), "%s/other.crt", w->dir);
    snprintf(w->crt, sizeof(w->crt), "%s/server.crt", w->dir);
    snprintf(w->key, sizeof(w->key), "%s/server.key", w->dir);
    sh("cd %s && openssl req -x509 %s -keyout ca.key -out ca.crt -days 2 -subj /CN=t-ca "
       ">/dev/null 2>&1 && openssl req -x509 %s -keyout other.key -out other.crt -days 2 "
       "-subj /CN=t-other >/dev/null 2>&1 && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' "
       "> ext && openssl req %s -keyout server.key -out server.csr -subj /CN=localhost "
       ">/dev/null 2>&1 && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
       "-CAcreateserial -out server.crt -days 2 -extfile ext >/dev/null 2>&1",
       w->dir, ec, ec, ec);
    snprintf(w->port, sizeof(w->port), "%d", any_port());
    w->extra[n++] = "--tls-port";
    w->extra[n++] = w->port;
    w->extra[n++] = "--tls-cert-file";
    w->extra[n++] = w->crt;
    w->extra[n++] = "--tls-key-file";
    w->extra[n++] = w->key;
    w->extra[n++] = "--tls-ca-cert-file";
    w->extra[n++] = w->ca;
    w->extra[n++] = "--tls-auth-clients";
    w->extra[n++] = "no";
    w->extra[n] = NULL;
    redis_server_start_with(&w->srv, false, NULL, w->extra);
    return w;
}

static void tls_world_free(struct tls_world *w)
{
    redis_server_cleanup(&w->srv);
    sh("rm -rf %s", w->dir);
    xfree(w);
}

/* Pipelined commands and a value of many TLS records, over the memory BIOs. */
static void commands_flow_over_tls(void **state)
{
    struct tls_world *w = tls_world_start();
    struct fixture *f = fixture_new();
    struct replies *rs = xcalloc(1, sizeof(*rs));
    size_t n = 1024 * 1024 + 7;
    char *big = xmalloc(n + 1);

    for (size_t i = 0; i < n; i++)
        big[i] = (char)('A' + i % 23);
    big[n] = '\0';
    f->cfg.redis_tls = true;
    put(&f->cfg.redis_tls_ca_file, w->ca);
    conn_start(f, "localhost", atoi(w->port));
    assert_true(loop_run_until(&f->loop, &f->tick, is_ready, f->conn, 5000));
    for (int i = 0; i < 500; i++)
        assert_int_equal(cmd(f, rs, "INCR", "tls", NULL), 0);
    assert_int_equal(cmd(f, rs, "SET", "big", big), 0);
    assert_int_equal(cmd(f, rs, "GET", "big", NULL), 0);
    wait_calls(f, rs, 502);
    for (int i = 0; i < 500; i++)
        assert_int_equal(rs->ints[i], i + 1);
    assert_int_equal(rs->errs[501], 0);
    assert_int_equal(strlen(rs->str), n);
    assert_memory_equal(rs->str, big, n);
    xfree(big);
    xfree(rs->str);
    xfree(rs);
    fixture_free(f);
    tls_world_free(w);
}

struct wire_probe {
    bool opened, failed, closed;
    char why[256];
    char got[64];
    size_t len;
};

static void probe_open(struct redis_wire *wire, void *data)
{
    ((struct wire_probe *)data)->opened = true;
    assert_int_equal(redis_wire_write(wire, "PING\r\n", 6), 0);
}

static void probe_read(struct redis_wire *wire, const char *p, size_t n, void *data)
{
    struct wire_probe *pr = data;

    assert_true(pr->len + n < sizeof(pr->got));
    memcpy(pr->got + pr->len, p, n);
    pr->len += n;
}

static void probe_fail(struct redis_wire *wire, const char *why, void *data)
{
    struct wire_probe *pr = data;

    pr->failed = true;
    snprintf(pr->why, sizeof(pr->why), "%s", why);
}

static void probe_closed(struct redis_wire *wire, void *data)
{
    ((struct wire_probe *)data)->closed = true;
}

static const struct redis_wire_cbs probe_cbs = {probe_open, probe_read, probe_fail, probe_closed};

static bool probe_done(void *arg)
{
    struct wire_probe *pr = arg;

    return pr->failed || pr->len >= 7;
}

static bool probe_closed_yet(void *arg)
{
    return ((struct wire_probe *)arg)->closed;
}

/* One wire with cbs, one SSL for host, checked against ca, run until done: what it read or why
 * it failed. */
static void probe_with(struct tls_world *w, const char *ca, const char *host,
                       const struct redis_wire_cbs *cbs, bool (*done)(void *),
                       struct wire_probe *pr)
{
    struct fixture *f = fixture_new();
    struct sockaddr_in sa;
    struct redis_wire *wire;
    char err[256];
    SSL_CTX *ctx;
    SSL *ssl;

    f->cfg.redis_tls = true;
    put(&f->cfg.redis_tls_ca_file, ca);
    ctx = redis_tls_ctx_create(&f->cfg, err, sizeof(err));
    assert_non_null(ctx);
    ssl = redis_tls_new(ctx, host, err, sizeof(err));
    assert_non_null(ssl);
    uv_ip4_addr("127.0.0.1", atoi(w->port), &sa);
    wire = redis_wire_create(&f->loop, cbs, pr);
    assert_int_equal(redis_wire_connect_tcp(wire, (struct sockaddr *)&sa, ssl), 0);
    assert_true(loop_run_until(&f->loop, &f->tick, done, pr, 5000));
    /* After a failure the wire is closing on its own and may be gone already. */
    if (!pr->failed)
        redis_wire_close(wire);
    assert_true(loop_run_until(&f->loop, &f->tick, probe_closed_yet, pr, 5000));
    SSL_CTX_free(ctx);
    fixture_free(f);
}

static void probe(struct tls_world *w, const char *ca, const char *host, struct wire_probe *pr)
{
    probe_with(w, ca, host, &probe_cbs, probe_done, pr);
}

/* The wire alone: PONG for the right CA and host; a clear reason for a wrong CA or host. */
static void the_wire_checks_ca_and_host(void **state)
{
    struct tls_world *w = tls_world_start();
    struct wire_probe ok = {0}, bad_ca = {0}, bad_host = {0};

    probe(w, w->ca, "localhost", &ok);
    assert_true(ok.opened);
    assert_false(ok.failed);
    assert_int_equal(ok.len, 7);
    assert_memory_equal(ok.got, "+PONG\r\n", 7);

    probe(w, w->other_ca, "localhost", &bad_ca);
    assert_false(bad_ca.opened);
    assert_true(bad_ca.failed);
    assert_non_null(strstr(bad_ca.why, "TLS handshake: certificate verify failed"));

    probe(w, w->ca, "redis.example.com", &bad_host);
    assert_false(bad_host.opened);
    assert_non_null(strstr(bad_host.why, "certificate verify failed: hostname mismatch"));
    tls_world_free(w);
}

/*
 * The read callback runs code that shares this thread's OpenSSL error queue
 * (libcurl closing a TLS connection when a reply cancels a fetch): an error
 * it leaves there must not be taken for the wire's own next SSL_read.
 */
static void errors_left_by_read_callback(struct redis_wire *wire, const char *p, size_t n,
                                         void *data)
{
    struct wire_probe *pr = data;

    probe_read(wire, p, n, data);
    if (pr->len == 7) {
        ERR_raise(ERR_LIB_SYS, ECONNRESET);
        assert_int_equal(redis_wire_write(wire, "PING\r\n", 6), 0);
    }
}

static const struct redis_wire_cbs dirty_cbs = {probe_open, errors_left_by_read_callback,
                                                probe_fail, probe_closed};

static bool two_pongs(void *arg)
{
    struct wire_probe *pr = arg;

    return pr->failed || pr->len >= 14;
}

static void tls_reads_ignore_errors_left_by_callbacks(void **state)
{
    struct tls_world *w = tls_world_start();
    struct wire_probe pr = {0};

    probe_with(w, w->ca, "localhost", &dirty_cbs, two_pongs, &pr);
    ERR_clear_error();
    assert_false(pr.failed);
    assert_int_equal(pr.len, 14);
    assert_memory_equal(pr.got, "+PONG\r\n+PONG\r\n", 14);
    tls_world_free(w);
}

/* The blocking client digestctl uses: the same URL forms, over TLS too. */
static void the_blocking_client_speaks_tls(void **state)
{
    struct tls_world *w = tls_world_start();
    struct config cfg;
    struct redis_sync *s;
    redisReply *r;
    const char *argv[] = {"ECHO", "over tls"};
    char err[256];

    config_defaults(&cfg);
    cfg.redis_tls = true;
    cfg.redis_port = atoi(w->port);
    put(&cfg.redis_tls_ca_file, w->ca);
    s = redis_sync_connect(&cfg, 2000, err, sizeof(err));
    assert_non_null(s);
    r = redis_sync_command(s, 2, argv, NULL, err, sizeof(err));
    assert_non_null(r);
    assert_string_equal(r->str, "over tls");
    freeReplyObject(r);
    redis_sync_free(s);
    put(&cfg.redis_tls_ca_file, w->other_ca);
    assert_null(redis_sync_connect(&cfg, 2000, err, sizeof(err)));
    assert_non_null(strstr(err, "TLS handshake: certificate verify failed"));
    config_free(&cfg);
    tls_world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pipelined_commands_answer_in_order),
        cmocka_unit_test(a_large_value_round_trips),
        cmocka_unit_test(an_acl_user_authenticates),
        cmocka_unit_test(stop_inside_a_reply_finishes_the_rest_once),
        cmocka_unit_test(protocol_errors_reconnect),
        cmocka_unit_test(replies_split_into_single_bytes),
        cmocka_unit_test(a_silent_server_times_out),
        cmocka_unit_test(a_long_queue_that_progresses_never_times_out),
        cmocka_unit_test(a_stopped_server_times_out_after_the_deadline_of_silence),
        cmocka_unit_test(a_blocking_command_with_its_own_timeout_may_be_silent),
        cmocka_unit_test(an_own_short_timeout_still_bounds_its_command),
        cmocka_unit_test(a_long_loop_turn_is_not_silence),
        cmocka_unit_test(a_command_written_late_is_timed_from_its_write),
        cmocka_unit_test(an_own_timeout_counts_from_the_write),
        cmocka_unit_test(commands_flow_over_tls),
        cmocka_unit_test(the_wire_checks_ca_and_host),
        cmocka_unit_test(tls_reads_ignore_errors_left_by_callbacks),
        cmocka_unit_test(the_blocking_client_speaks_tls),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
