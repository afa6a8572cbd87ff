/* redis_server.c: see redis_server.h (moved here from test_queue.c). */
#include "redis_server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"

extern char **environ;

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

redisContext *sync_connect(const struct redis_server *s, int db)
{
    struct timeval tv = {1, 0};
    redisContext *rc;
    redisReply *r;

    rc = s->port != 0 ? redisConnectWithTimeout("127.0.0.1", s->port, tv)
                      : redisConnectUnixWithTimeout(s->sock, tv);
    if (rc == NULL || rc->err != 0)
        goto fail;
    redisSetTimeout(rc, tv);
    if (s->password != NULL) {
        r = redisCommand(rc, "AUTH %s", s->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            goto fail_reply;
        freeReplyObject(r);
    }
    r = redisCommand(rc, "SELECT %d", db);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        goto fail_reply;
    freeReplyObject(r);
    return rc;
fail_reply:
    if (r != NULL)
        freeReplyObject(r);
fail:
    if (rc != NULL)
        redisFree(rc);
    return NULL;
}

/* Blocks until the server answers PING (bounded: 5 s). */
static void server_wait(const struct redis_server *s)
{
    for (int i = 0; i < 250; i++) {
        redisContext *rc = sync_connect(s, 0);
        if (rc != NULL) {
            redisReply *r = redisCommand(rc, "PING");
            bool ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
            if (r != NULL)
                freeReplyObject(r);
            redisFree(rc);
            if (ok)
                return;
        }
        usleep(20 * 1000);
    }
    fail_msg("redis-server did not answer PING within 5 s");
}

void redis_server_spawn(struct redis_server *s)
{
    char port[16], log[160];
    const char *args[40];
    char *argv[40];
    int n = 0;
    posix_spawn_file_actions_t fa;

    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(log, sizeof(log), "%s/redis.log", s->dir);
    args[n++] = "redis-server";
    args[n++] = "--port";
    args[n++] = port;
    args[n++] = "--bind";
    args[n++] = "127.0.0.1";
    args[n++] = "--save";
    args[n++] = "";
    args[n++] = "--appendonly";
    args[n++] = "no";
    args[n++] = "--daemonize";
    args[n++] = "no";
    args[n++] = "--dir";
    args[n++] = s->dir;
    if (s->password != NULL) {
        args[n++] = "--requirepass";
        args[n++] = s->password;
    }
    if (s->sock[0] != '\0') {
        args[n++] = "--unixsocket";
        args[n++] = s->sock;
    }
    for (const char *const *e = s->extra; e != NULL && *e != NULL && n < 38; e++)
        args[n++] = *e;
    /* posix_spawn takes char *const[]: hand it copies, not literals. */
    for (int i = 0; i < n; i++)
        argv[i] = xstrdup(args[i]);
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    assert_int_equal(posix_spawn(&s->pid, "/usr/bin/redis-server", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < n; i++)
        xfree(argv[i]);
    server_wait(s);
}

void redis_server_start(struct redis_server *s, bool unix_only, const char *password)
{
    redis_server_start_with(s, unix_only, password, NULL);
}

void redis_server_start_with(struct redis_server *s, bool unix_only, const char *password,
                             const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    s->extra = extra;
    snprintf(s->dir, sizeof(s->dir), "/tmp/test_redis.XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    s->password = password;
    if (unix_only)
        snprintf(s->sock, sizeof(s->sock), "%s/redis.sock", s->dir);
    else
        s->port = free_port();
    redis_server_spawn(s);
}

void redis_server_kill(struct redis_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void redis_server_cleanup(struct redis_server *s)
{
    char path[192];

    redis_server_kill(s);
    snprintf(path, sizeof(path), "%s/redis.log", s->dir);
    unlink(path);
    if (s->sock[0] != '\0')
        unlink(s->sock);
    rmdir(s->dir);
}

redisReply *sync_cmd(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

long long sync_cmd_int(redisContext *rc, const char *fmt, const char *key)
{
    redisReply *r = sync_cmd(rc, fmt, key);
    long long v;

    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

void sync_assert_pairs(const redisReply *r, const char *const *want, size_t n)
{
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(r->element[i]->str, want[i]);
}

static void on_tick(uv_timer_t *t)
{
}

bool loop_run_until(uv_loop_t *loop, uv_timer_t *tick, bool (*pred)(void *), void *arg,
                    uint64_t timeout_ms)
{
    uint64_t deadline;

    uv_update_time(loop);
    deadline = uv_now(loop) + timeout_ms;
    while (!pred(arg)) {
        if (uv_now(loop) >= deadline)
            return false;
        uv_timer_start(tick, on_tick, 5, 0); /* bounds each UV_RUN_ONCE */
        uv_run(loop, UV_RUN_ONCE);
    }
    return true;
}

static bool never(void *arg)
{
    return false;
}

void loop_run_for(uv_loop_t *loop, uv_timer_t *tick, uint64_t ms)
{
    loop_run_until(loop, tick, never, NULL, ms);
}
