/*
 * redis.c: one resilient asynchronous Redis connection (see redis.h).
 *
 * States: IDLE → [RESOLVING] → CONNECTING → HANDSHAKE → READY; any failure
 * leads to WAITING (backoff) and a fresh attempt with a fresh context; stop
 * leads to STOPPING → STOPPED. One uv_timer_t serves every state: the backoff
 * delay in WAITING, the attempt deadline in RESOLVING/CONNECTING, and the
 * earliest command deadline in HANDSHAKE/READY (one timer per connection,
 * not one per command, so 25k commands/s cost no timer churn).
 *
 * hiredis ownership rules this file relies on (0.14.1 async.c): a context is
 * freed by hiredis after a failed connect or a disconnect, right after our
 * callback returns, so we forget it (c->ac = NULL) inside that callback and
 * never free it there. redisAsyncFree() inside a reply callback is deferred
 * by hiredis until the callback returns; inside the connect or disconnect
 * callback it is not (0.14 sets no REDIS_IN_CALLBACK there), so we never
 * call it from those two.
 */
#include "store/redis.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
/*
 * The libuv adapter is a header of static functions (with generic names such
 * as on_close): it is included in this one file so that there is one copy
 * and every hook into hiredis's event layer lives in one place. We use its
 * attach function and poll structure, then replace the hooks that have 0.14
 * quirks (see "Adapter" below).
 */
#include <hiredis/adapters/libuv.h>

#include "core/buf.h"
#include "config.h"
#include "core/list.h"
#include "core/log.h"
#include "metrics.h"

enum redis_state {
    RS_IDLE = 0,   /* created, not started */
    RS_WAITING,    /* timer = backoff before the next attempt */
    RS_RESOLVING,  /* uv_getaddrinfo in flight; timer = attempt deadline */
    RS_CONNECTING, /* non-blocking connect in flight; timer = attempt deadline */
    RS_HANDSHAKE,  /* AUTH / SELECT / PING in flight; timer = command deadlines */
    RS_READY,      /* usable; timer = command deadlines */
    RS_STOPPING,   /* timer and poll closing */
    RS_STOPPED,
};

/* One command in flight; hiredis holds it as privdata until it calls back. */
struct redis_cmd {
    struct list_node node; /* c->cmds, deadline order */
    struct redis_conn *conn;
    redis_reply_cb cb;
    void *data;
    uint64_t deadline; /* uv_now() ms */
    int fail_err;      /* set before a teardown: what a NULL reply means */
};

struct redis_conn {
    uv_loop_t *loop;
    const struct config *cfg;
    struct metrics *metrics;
    char *name;
    enum redis_state state;
    redisAsyncContext *ac; /* NULL whenever hiredis is freeing or has freed it */
    uv_timer_t timer;
    uint64_t timer_due; /* deadline the timer is armed for (HANDSHAKE/READY) */
    uv_getaddrinfo_t gai;
    bool resolving;        /* gai in flight (it may outlive its attempt) */
    struct list_node cmds; /* struct redis_cmd, earliest deadline first */
    unsigned polls_open;   /* adapter poll handles not yet closed */
    bool timer_closed;
    bool broken; /* teardown requested; done from the timer */
    char broken_why[160];
    int handshake_left;
    unsigned attempt; /* failures in a row, drives the backoff */
    bool ever_ready;
    bool outage_logged; /* the current outage was logged at warn */
    bool counted;       /* we added 1 to METRICS_G_REDIS_CONNECTED */
    uint64_t rng;
    redis_state_cb state_cb;
    void *state_data;
    redis_stopped_cb stopped_cb;
    void *stopped_data;
};

static void on_timer(uv_timer_t *t);
static void maybe_finish(struct redis_conn *c);

/* ---- Adapter ---------------------------------------------------------- */

/*
 * The 0.14 adapter returns early when libuv reports a poll error, so a
 * refused non-blocking connect (EPOLLERR) would hang until our deadline. Like
 * hiredis 1.x, we hand the registered events to hiredis instead; its read or
 * write then finds the socket error itself.
 */
static void poll_cb(uv_poll_t *handle, int status, int events)
{
    redisLibuvEvents *p = handle->data;
    int ev = status != 0 ? p->events : events;

    if (p->context != NULL && (ev & UV_READABLE))
        redisAsyncHandleRead(p->context);
    /* The read may have freed the context: the cleanup hook clears it. */
    if (p->context != NULL && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
}

static void poll_update(redisLibuvEvents *p)
{
    if (uv_is_closing((uv_handle_t *)&p->handle))
        return;
    if (p->events != 0)
        uv_poll_start(&p->handle, p->events, poll_cb);
    else
        uv_poll_stop(&p->handle);
}

static void poll_add_read(void *privdata)
{
    redisLibuvEvents *p = privdata;
    p->events |= UV_READABLE;
    poll_update(p);
}

static void poll_del_read(void *privdata)
{
    redisLibuvEvents *p = privdata;
    p->events &= ~UV_READABLE;
    poll_update(p);
}

static void poll_add_write(void *privdata)
{
    redisLibuvEvents *p = privdata;
    p->events |= UV_WRITABLE;
    poll_update(p);
}

static void poll_del_write(void *privdata)
{
    redisLibuvEvents *p = privdata;
    p->events &= ~UV_WRITABLE;
    poll_update(p);
}

/*
 * The adapter frees its poll in a close callback and tells nobody, so the
 * owner could not know when its loop may be closed. Our close callback
 * borrows handle->data to find the connection, restores it for the
 * adapter's own on_close (which frees with the allocator that allocated),
 * then counts the poll as gone.
 */
static void poll_closed(uv_handle_t *handle)
{
    struct redis_conn *c = handle->data;

    handle->data = container_of((uv_poll_t *)handle, redisLibuvEvents, handle);
    on_close(handle);
    c->polls_open--;
    maybe_finish(c);
}

static void poll_cleanup(void *privdata)
{
    redisLibuvEvents *p = privdata;
    struct redis_conn *c;

    if (uv_is_closing((uv_handle_t *)&p->handle))
        return;
    c = p->context->data;
    p->context = NULL;
    p->handle.data = c;
    uv_close((uv_handle_t *)&p->handle, poll_closed);
}

static void on_connect(const redisAsyncContext *cac, int status);
static void on_disconnect(const redisAsyncContext *cac, int status);

/* Hooks a fresh context to the loop. On failure the caller frees ac. */
static int attach(struct redis_conn *c, redisAsyncContext *ac)
{
    if (redisLibuvAttach(ac, c->loop) != REDIS_OK) {
        /*
         * The adapter installs its hooks before uv_poll_init, and leaves them
         * with ev.data NULL when that fails: hiredis would then call its
         * cleanup on NULL. Unhook so redisAsyncFree stays safe (the adapter's
         * small allocation leaks in that case; we cannot reach it).
         */
        memset(&ac->ev, 0, sizeof(ac->ev));
        return DG_ERR_UNAVAILABLE;
    }
    c->polls_open++;
    ac->ev.addRead = poll_add_read;
    ac->ev.delRead = poll_del_read;
    ac->ev.addWrite = poll_add_write;
    ac->ev.delWrite = poll_del_write;
    ac->ev.cleanup = poll_cleanup;
    ac->data = c;
    /* Both before any command; setting the connect callback arms the write watch. */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return 0;
}

/* ---- Command list and deadlines --------------------------------------- */

/* Inserts in deadline order; with one timeout for all this is an append. */
static void cmd_insert(struct redis_conn *c, struct redis_cmd *cmd)
{
    struct list_node *after = c->cmds.prev;

    while (after != &c->cmds &&
           container_of(after, struct redis_cmd, node)->deadline > cmd->deadline)
        after = after->prev;
    list_insert_after(after, &cmd->node);
}

/* The command with the earliest deadline, NULL when none is pending. */
static struct redis_cmd *cmd_first(const struct redis_conn *c)
{
    struct list_node *n = list_first(&c->cmds);

    return n != NULL ? container_of(n, struct redis_cmd, node) : NULL;
}

/*
 * Keeps the timer at or before the earliest deadline. Replies never re-arm:
 * a timer that fires early just re-arms for the new head (lazy, cheap).
 */
static void arm_deadline(struct redis_conn *c)
{
    uint64_t now = uv_now(c->loop);
    struct redis_cmd *first = cmd_first(c);
    uint64_t due;

    if (first == NULL || c->broken)
        return;
    due = first->deadline;
    if (uv_is_active((uv_handle_t *)&c->timer) && c->timer_due <= due)
        return;
    c->timer_due = due;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

/* hiredis reply callback for every command; reply is NULL on teardown. */
static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_cmd *cmd = privdata;
    struct redis_conn *c = cmd->conn;
    redis_reply_cb cb = cmd->cb;
    void *data = cmd->data;
    int err = 0;

    if (r == NULL) {
        err = cmd->fail_err;
        if (err == 0)
            err = c->state == RS_STOPPING ? DG_ERR_CLOSED : DG_ERR_UNAVAILABLE;
    }
    list_remove(&cmd->node);
    xfree(cmd);
    cb(err, r, data);
}

/* argv (argc > 0) or, with argc 0, the RESP text resp of len bytes. */
static int submit(struct redis_conn *c, uint64_t timeout_ms, redis_reply_cb cb, void *data,
                  int argc, const char **argv, const size_t *argvlen, const char *resp, size_t len)
{
    struct redis_cmd *cmd = xcalloc(1, sizeof(*cmd));
    int rc;

    cmd->conn = c;
    cmd->cb = cb;
    cmd->data = data;
    /* uv_now() is the start of this loop turn, which a long turn leaves
     * far behind: the deadline must count from now. */
    uv_update_time(c->loop);
    cmd->deadline = uv_now(c->loop) + (timeout_ms != 0 ? timeout_ms : REDIS_COMMAND_TIMEOUT_MS);
    /* REDIS_ERR means hiredis kept nothing (disconnecting, or bad argv). */
    if (argc > 0)
        rc = redisAsyncCommandArgv(c->ac, on_reply, cmd, argc, argv, argvlen);
    else
        rc = redisAsyncFormattedCommand(c->ac, on_reply, cmd, resp, len);
    if (rc != REDIS_OK) {
        xfree(cmd);
        return DG_ERR_UNAVAILABLE;
    }
    cmd_insert(c, cmd);
    arm_deadline(c);
    return 0;
}

/* ---- Connection lifecycle --------------------------------------------- */

static uint64_t next_random(struct redis_conn *c)
{
    /* xorshift64: jitter needs spread, not cryptographic quality. */
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}

/*
 * Capped exponential backoff with full jitter above the floor: [MIN, cap].
 * The cap stays under a quarter of WORKER_CLAIM_IDLE_MS, so after an outage
 * every live worker is back and has renewed its leases well before anyone
 * may claim them (docs/worker.md, "Claims after an outage").
 */
static uint64_t backoff_ms(struct redis_conn *c)
{
    uint64_t max = c->cfg->worker_claim_idle_ms / 4, cap = REDIS_BACKOFF_MIN_MS;

    if (max > REDIS_BACKOFF_MAX_MS)
        max = REDIS_BACKOFF_MAX_MS;
    if (max < REDIS_BACKOFF_MIN_MS)
        max = REDIS_BACKOFF_MIN_MS;
    for (unsigned i = 0; i < c->attempt && cap < max; i++)
        cap *= 2;
    if (cap > max)
        cap = max;
    return REDIS_BACKOFF_MIN_MS + next_random(c) % (cap - REDIS_BACKOFF_MIN_MS + 1);
}

/*
 * Forgets the current context and frees it. hiredis first runs every pending
 * reply callback with NULL (on_reply maps that to fail_err or the state's
 * error); its disconnect callback then sees c->ac != ac and does nothing.
 * Inside a reply callback hiredis defers the free until that callback
 * returns. Never called from on_connect/on_disconnect (see file comment).
 */
static void drop_context(struct redis_conn *c)
{
    redisAsyncContext *ac = c->ac;

    if (ac == NULL)
        return;
    c->ac = NULL;
    redisAsyncFree(ac);
}

static void set_counted(struct redis_conn *c, bool up)
{
    if (c->counted == up)
        return;
    c->counted = up;
    metrics_gauge_add(c->metrics, METRICS_G_REDIS_CONNECTED, up ? 1 : -1);
}

/*
 * The current attempt failed or the connection was lost: schedule the next
 * attempt, log once per outage (debug for each further retry, so a long
 * outage cannot flood the log), fail what is pending, then tell the owner.
 */
static void conn_down(struct redis_conn *c, const char *why)
{
    bool was_ready = c->state == RS_READY;

    if (c->state == RS_STOPPING || c->state == RS_STOPPED)
        return;
    metrics_inc(c->metrics, METRICS_C_REDIS_ERRORS);
    set_counted(c, false);
    c->state = RS_WAITING;
    c->broken = false;
    uv_timer_start(&c->timer, on_timer, backoff_ms(c), 0);
    c->attempt++;
    if (was_ready)
        log_warn("redis %s: connection lost (%s), reconnecting", c->name, why);
    else if (!c->outage_logged)
        log_warn("redis %s: cannot connect (%s), retrying with backoff", c->name, why);
    else
        log_debug("redis %s: attempt %u failed (%s)", c->name, c->attempt, why);
    c->outage_logged = true;
    drop_context(c); /* runs pending callbacks, which may stop us */
    if (was_ready && c->state == RS_WAITING && c->state_cb != NULL)
        c->state_cb(c, false, c->state_data);
}

static void connect_to(struct redis_conn *c, const char *ip)
{
    const struct config *cfg = c->cfg;
    redisAsyncContext *ac;
    char why[160];

    if (cfg->redis_kind == REDIS_UNIX)
        ac = redisAsyncConnectUnix(cfg->redis_path);
    else
        ac = redisAsyncConnect(ip, cfg->redis_port);
    if (ac == NULL) {
        conn_down(c, "out of memory");
        return;
    }
    /* Some failures (unix socket missing, refused at once) are synchronous. */
    if (ac->err != 0 || attach(c, ac) != 0) {
        snprintf(why, sizeof(why), "%s", ac->err != 0 ? ac->errstr : "cannot watch socket");
        redisAsyncFree(ac);
        conn_down(c, why);
        return;
    }
    c->ac = ac;
    c->state = RS_CONNECTING;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct redis_conn *c = container_of(req, struct redis_conn, gai);
    char ip[INET6_ADDRSTRLEN] = "";
    struct addrinfo *ai;
    unsigned n = 0;

    c->resolving = false;
    /* A late answer for an attempt that already timed out, or a stop. */
    if (c->state != RS_RESOLVING) {
        uv_freeaddrinfo(res);
        maybe_finish(c);
        return;
    }
    if (status != 0 || res == NULL) {
        uv_freeaddrinfo(res);
        conn_down(c, status != 0 ? uv_strerror(status) : "no address");
        return;
    }
    /*
     * hiredis takes one address: rotate through the answers across attempts,
     * so a name with an unreachable first address (say ::1 for "localhost"
     * while Redis listens on 127.0.0.1 only) still connects.
     */
    for (ai = res; ai != NULL; ai = ai->ai_next)
        n++;
    ai = res;
    for (unsigned i = c->attempt % n; i > 0; i--)
        ai = ai->ai_next;
    if (ai->ai_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip, sizeof(ip));
    else
        uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip, sizeof(ip));
    uv_freeaddrinfo(res);
    connect_to(c, ip);
}

static bool is_numeric_host(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/*
 * One connection attempt, bounded by REDIS_CONNECT_TIMEOUT_MS. hiredis 0.14
 * resolves names with a blocking getaddrinfo, so names go through libuv's
 * thread pool first and hiredis only ever sees a numeric address.
 */
static void attempt_start(struct redis_conn *c)
{
    const struct config *cfg = c->cfg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc;

    if (c->resolving) {
        /* The previous lookup is still running: let it finish first. */
        uv_timer_start(&c->timer, on_timer, backoff_ms(c), 0);
        return;
    }
    uv_timer_start(&c->timer, on_timer, REDIS_CONNECT_TIMEOUT_MS, 0);
    if (cfg->redis_kind == REDIS_UNIX || is_numeric_host(cfg->redis_host)) {
        connect_to(c, cfg->redis_host);
        return;
    }
    rc = uv_getaddrinfo(c->loop, &c->gai, on_resolved, cfg->redis_host, NULL, &hints);
    if (rc != 0) {
        conn_down(c, uv_strerror(rc));
        return;
    }
    c->resolving = true;
    c->state = RS_RESOLVING;
}

static void become_ready(struct redis_conn *c)
{
    c->state = RS_READY;
    c->attempt = 0;
    if (c->ever_ready) {
        metrics_inc(c->metrics, METRICS_C_REDIS_RECONNECTS);
        log_info("redis %s: reconnected", c->name);
    } else {
        log_info("redis %s: connected", c->name);
    }
    c->ever_ready = true;
    c->outage_logged = false;
    set_counted(c, true);
    if (c->state_cb != NULL)
        c->state_cb(c, true, c->state_data);
}

/* Asks the timer to tear the connection down: never inside hiredis itself. */
static void request_teardown(struct redis_conn *c, const char *why)
{
    if (c->broken || (c->state != RS_HANDSHAKE && c->state != RS_READY))
        return;
    c->broken = true;
    snprintf(c->broken_why, sizeof(c->broken_why), "%s", why);
    uv_timer_start(&c->timer, on_timer, 0, 0);
}

static void on_handshake(int err, struct redisReply *reply, void *data)
{
    struct redis_conn *c = data;
    char why[160];

    if (err != 0)
        return; /* the teardown that caused this moves the state on */
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "handshake refused: %s", reply->str);
        request_teardown(c, why);
        return;
    }
    if (--c->handshake_left == 0 && c->state == RS_HANDSHAKE && !c->broken)
        become_ready(c);
}

/* AUTH and SELECT when configured, else PING: readiness always waits for a reply. */
static void handshake_send(struct redis_conn *c)
{
    const struct config *cfg = c->cfg;
    char db[16];
    const char *argv[2];
    int rc = 0;

    c->handshake_left = 0;
    if (cfg->redis_password != NULL) {
        argv[0] = "AUTH";
        argv[1] = cfg->redis_password;
        rc = submit(c, 0, on_handshake, c, 2, argv, NULL, NULL, 0);
        c->handshake_left += rc == 0;
    }
    if (rc == 0 && cfg->redis_db != 0) {
        snprintf(db, sizeof(db), "%d", cfg->redis_db);
        argv[0] = "SELECT";
        argv[1] = db;
        rc = submit(c, 0, on_handshake, c, 2, argv, NULL, NULL, 0);
        c->handshake_left += rc == 0;
    }
    if (rc == 0 && c->handshake_left == 0) {
        argv[0] = "PING";
        rc = submit(c, 0, on_handshake, c, 1, argv, NULL, NULL, 0);
        c->handshake_left += rc == 0;
    }
    if (rc != 0)
        request_teardown(c, "cannot send handshake");
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    struct redis_conn *c = cac->data;
    char why[160];

    if (c->ac != cac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context when we return. */
        snprintf(why, sizeof(why), "%s", cac->errstr != NULL ? cac->errstr : "connect failed");
        c->ac = NULL;
        conn_down(c, why);
        return;
    }
    c->state = RS_HANDSHAKE;
    uv_timer_stop(&c->timer);
    handshake_send(c);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    struct redis_conn *c = cac->data;
    char why[160];

    /* Contexts we dropped ourselves are no longer c->ac. */
    if (c->ac != cac)
        return;
    snprintf(why, sizeof(why), "%s",
             status != REDIS_OK && cac->errstr != NULL ? cac->errstr : "closed by server");
    c->ac = NULL;
    conn_down(c, why);
}

/* The earliest deadline passed (or a teardown was requested). */
static void check_deadlines(struct redis_conn *c)
{
    uint64_t now = uv_now(c->loop);
    struct redis_cmd *first = cmd_first(c);
    struct list_node *n;
    unsigned expired = 0, pending = 0;
    char why[96];

    if (c->broken) {
        conn_down(c, c->broken_why);
        return;
    }
    if (first == NULL)
        return;
    if (first->deadline > now) {
        arm_deadline(c);
        return;
    }
    list_for_each(n, &c->cmds) {
        struct redis_cmd *cmd = container_of(n, struct redis_cmd, node);

        pending++;
        if (cmd->deadline <= now) {
            cmd->fail_err = DG_ERR_TIMEOUT;
            expired++;
        }
    }
    /* Replies are FIFO: everything behind a stuck command is stuck too. */
    snprintf(why, sizeof(why), "%u of %u pending command(s) timed out", expired, pending);
    conn_down(c, why);
}

static void on_timer(uv_timer_t *t)
{
    struct redis_conn *c = container_of(t, struct redis_conn, timer);

    switch (c->state) {
    case RS_WAITING:
        attempt_start(c);
        break;
    case RS_RESOLVING:
        conn_down(c, "name resolution timed out");
        break;
    case RS_CONNECTING:
        conn_down(c, "connect timed out");
        break;
    case RS_HANDSHAKE:
    case RS_READY:
        check_deadlines(c);
        break;
    default:
        break;
    }
}

/* ---- Public API ------------------------------------------------------- */

struct redis_conn *redis_conn_create(uv_loop_t *loop, const struct config *cfg, const char *name,
                                     struct metrics *metrics)
{
    struct redis_conn *c = xcalloc(1, sizeof(*c));

    c->loop = loop;
    c->cfg = cfg;
    c->metrics = metrics;
    list_init(&c->cmds);
    c->name = xstrdup(name);
    c->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
    if (c->rng == 0)
        c->rng = 0x9e3779b97f4a7c15u;
    uv_timer_init(loop, &c->timer);
    return c;
}

void redis_conn_set_state_cb(struct redis_conn *c, redis_state_cb cb, void *data)
{
    c->state_cb = cb;
    c->state_data = data;
}

void redis_conn_start(struct redis_conn *c)
{
    assert(c->state == RS_IDLE);
    c->state = RS_WAITING;
    attempt_start(c);
}

bool redis_conn_ready(const struct redis_conn *c)
{
    return c->state == RS_READY && c->ac != NULL && !c->broken;
}

int redis_conn_command(struct redis_conn *c, uint64_t timeout_ms, redis_reply_cb cb, void *data,
                       int argc, const char **argv, const size_t *argvlen)
{
    if (c->state == RS_STOPPING || c->state == RS_STOPPED)
        return DG_ERR_CLOSED;
    if (!redis_conn_ready(c))
        return DG_ERR_UNAVAILABLE;
    if (argc <= 0)
        return DG_ERR_INVALID;
    return submit(c, timeout_ms, cb, data, argc, argv, argvlen, NULL, 0);
}

int redis_conn_command_resp(struct redis_conn *c, uint64_t timeout_ms, redis_reply_cb cb,
                            void *data, const char *resp, size_t len)
{
    if (c->state == RS_STOPPING || c->state == RS_STOPPED)
        return DG_ERR_CLOSED;
    if (!redis_conn_ready(c))
        return DG_ERR_UNAVAILABLE;
    if (len == 0)
        return DG_ERR_INVALID;
    return submit(c, timeout_ms, cb, data, 0, NULL, NULL, resp, len);
}

void redis_conn_reset(struct redis_conn *c)
{
    request_teardown(c, "reset by owner");
}

static void on_timer_closed(uv_handle_t *h)
{
    struct redis_conn *c = container_of((uv_timer_t *)h, struct redis_conn, timer);

    c->timer_closed = true;
    maybe_finish(c);
}

/* The stopped callback runs once nothing of ours is left on the loop. */
static void maybe_finish(struct redis_conn *c)
{
    if (c->state != RS_STOPPING || !c->timer_closed || c->polls_open > 0 || c->resolving ||
        c->ac != NULL)
        return;
    assert(list_empty(&c->cmds));
    c->state = RS_STOPPED;
    log_debug("redis %s: stopped", c->name);
    if (c->stopped_cb != NULL)
        c->stopped_cb(c, c->stopped_data); /* may free c: touch nothing after */
}

void redis_conn_stop(struct redis_conn *c, redis_stopped_cb cb, void *data)
{
    if (c->state == RS_STOPPING || c->state == RS_STOPPED)
        return;
    c->stopped_cb = cb;
    c->stopped_data = data;
    c->state = RS_STOPPING;
    set_counted(c, false);
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai); /* best effort; on_resolved still runs */
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    drop_context(c); /* pending commands finish with DG_ERR_CLOSED */
}

void redis_conn_free(struct redis_conn *c)
{
    if (c == NULL)
        return;
    assert(c->state == RS_STOPPED);
    xfree(c->name);
    xfree(c);
}

int redis_reply_status(int err, const struct redisReply *reply)
{
    if (err)
        return err;
    return reply->type == REDIS_REPLY_ERROR ? DG_ERR_PROTOCOL : 0;
}
