/*
 * redis.c: one resilient asynchronous Redis connection (see redis.h).
 *
 * States: IDLE → [RESOLVING] → CONNECTING → HANDSHAKE → READY; any failure
 * leads to WAITING (backoff) and a fresh attempt with a fresh wire and
 * reader; stop leads to STOPPING → STOPPED. One uv_timer_t serves every
 * state: the backoff delay in WAITING, the attempt deadline in
 * RESOLVING/CONNECTING (which, with TLS, covers the handshake), and the
 * earliest of the liveness deadline and the callers' own deadlines in
 * HANDSHAKE/READY (one timer per connection, not one per command, so 25k
 * commands/s cost no timer churn).
 *
 * Liveness: replies come back in send order, so only the oldest command
 * (the head of c->sent) can be owed a reply. With a default timeout it must
 * answer within REDIS_COMMAND_TIMEOUT_MS of becoming the head: of its
 * write or of the last reply bytes, whichever is later. The write, not the
 * submission: commands go out at the end of the loop turn, which after
 * thousands of HTTP completions can be seconds later. A burst of
 * thousands of commands that Redis works through is therefore never a
 * timeout, only silence is. A command given its own timeout_ms keeps an
 * absolute deadline from its write (a caller's bound: BLOCK counts from
 * when Redis gets the command), and while it is the head the liveness rule
 * waits for it (a BLOCK is silent on purpose).
 *
 * The bytes travel over redis_wire (the socket, the TLS, the buffers);
 * this file formats each command with resp_put_command and parses replies
 * with hiredis's redisReader (resp.h), and matches them to commands in send
 * order (c->sent). Borrowed from hiredis: the reader only. Owned here: the
 * reader, the command records, the formatting scratch, the timer.
 */
#include "store/redis.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "config.h"
#include "core/buf.h"
#include "core/list.h"
#include "core/log.h"
#include "metrics.h"
#include "store/redis_tls.h"
#include "store/resp.h"
#include "store/redis_wire.h"

#define REDIS_FMT_KEEP_BYTES (64 * 1024) /* the scratch kept between commands */

enum redis_state {
    RS_IDLE = 0,   /* created, not started */
    RS_WAITING,    /* timer = backoff before the next attempt */
    RS_RESOLVING,  /* uv_getaddrinfo in flight; timer = attempt deadline */
    RS_CONNECTING, /* connect (and TLS handshake) in flight; timer = attempt deadline */
    RS_HANDSHAKE,  /* AUTH / SELECT / PING in flight; timer = command deadlines */
    RS_READY,      /* usable; timer = command deadlines */
    RS_STOPPING,   /* timer and wire closing */
    RS_STOPPED,
};

/* One command sent and not yet answered. */
struct redis_cmd {
    struct list_node node; /* c->cmds, deadline order: own timeout_ms only */
    struct list_node sent; /* c->sent, send order: replies come back in it */
    redis_reply_cb cb;
    void *data;
    uint64_t own_ms;   /* the caller's timeout_ms; 0 for the liveness rule only */
    uint64_t sent_ms;  /* uv_now() when handed to the socket; 0 until then */
    uint64_t deadline; /* sent_ms + own_ms, from the write; 0 until then or without */
    int fail_err;      /* set before a teardown: what a lost reply means */
};

struct redis_conn {
    uv_loop_t *loop;
    const struct config *cfg;
    struct metrics *metrics;
    char *name;
    char where[300]; /* rediss://host:port or unix:path, for logs: never the password */
    enum redis_state state;
    struct redis_wire *wire; /* NULL between attempts and once dropped */
    unsigned wires_open;     /* wires not yet closed (a dropped one closes later) */
    redisReader *reader;     /* the current attempt's; NULL between attempts */
    struct buf fmt;          /* scratch: one command in RESP, copied to the wire */
    SSL_CTX *tls;            /* rediss:// only */
    char tls_err[256];       /* why tls is NULL with rediss:// */
    uv_timer_t timer;
    uint64_t timer_due; /* deadline the timer is armed for (HANDSHAKE/READY) */
    uv_getaddrinfo_t gai;
    bool resolving;        /* gai in flight (it may outlive its attempt) */
    struct list_node cmds; /* commands with their own timeout_ms, earliest deadline first */
    struct list_node sent; /* every pending command, oldest first */
    uint64_t progress_ms;  /* uv_now() when reply bytes last arrived on this wire */
    bool grace;            /* found overdue once; the poll phase gets a turn first */
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
static void conn_down(struct redis_conn *c, const char *why);
static void request_teardown(struct redis_conn *c, const char *why);

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

/* The own-timeout command with the earliest deadline, NULL when none is pending. */
static struct redis_cmd *cmd_first(const struct redis_conn *c)
{
    struct list_node *n = list_first(&c->cmds);

    return n != NULL ? container_of(n, struct redis_cmd, node) : NULL;
}

/* The oldest pending command: the one the next reply belongs to. */
static struct redis_cmd *cmd_head(const struct redis_conn *c)
{
    struct list_node *n = list_first(&c->sent);

    return n != NULL ? container_of(n, struct redis_cmd, sent) : NULL;
}

/* Since when the head has waited for its reply: its write or the last reply bytes. */
static uint64_t head_since(const struct redis_conn *c, const struct redis_cmd *head)
{
    return head->sent_ms > c->progress_ms ? head->sent_ms : c->progress_ms;
}

/*
 * When the connection is overdue (see the top of this file), UINT64_MAX
 * when nothing is owed: the earliest own deadline, or the head's liveness
 * deadline when the head has none of its own.
 */
static uint64_t due_ms(const struct redis_conn *c)
{
    struct redis_cmd *first = cmd_first(c), *head = cmd_head(c);
    uint64_t due = first != NULL ? first->deadline : UINT64_MAX;

    if (head != NULL && head->own_ms == 0 && head->sent_ms != 0 &&
        head_since(c, head) + REDIS_COMMAND_TIMEOUT_MS < due)
        due = head_since(c, head) + REDIS_COMMAND_TIMEOUT_MS;
    return due;
}

/*
 * Keeps the timer at or before the earliest due time. Progress only moves
 * the liveness deadline later, so replies need not re-arm: a timer that
 * fires early just re-arms (lazy, cheap).
 */
static void arm_deadline(struct redis_conn *c)
{
    uint64_t now = uv_now(c->loop);
    uint64_t due = due_ms(c);

    if (due == UINT64_MAX || c->broken)
        return;
    if (uv_is_active((uv_handle_t *)&c->timer) && c->timer_due <= due)
        return;
    c->timer_due = due;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

/* Takes cmd off both lists and runs its callback once (reply NULL: err). */
static void cmd_finish(struct redis_cmd *cmd, int err, struct redisReply *reply)
{
    redis_reply_cb cb = cmd->cb;
    void *data = cmd->data;

    list_remove(&cmd->node);
    list_remove(&cmd->sent);
    xfree(cmd);
    cb(err, reply, data);
}

/*
 * Finishes every pending command after a teardown: with its fail_err
 * (DG_ERR_TIMEOUT for the expired ones), else what the state says. The
 * head is taken afresh each time because a callback may submit (refused:
 * not ready) or stop us (which drains the rest with DG_ERR_CLOSED).
 */
static void fail_pending(struct redis_conn *c)
{
    struct list_node *n;

    while ((n = list_first(&c->sent)) != NULL) {
        struct redis_cmd *cmd = container_of(n, struct redis_cmd, sent);
        int err = cmd->fail_err;

        if (err == 0)
            err = c->state == RS_STOPPING ? DG_ERR_CLOSED : DG_ERR_UNAVAILABLE;
        cmd_finish(cmd, err, NULL);
    }
}

/* argv (argc > 0) or, with argc 0, the RESP text resp of len bytes. */
static int submit(struct redis_conn *c, uint64_t timeout_ms, redis_reply_cb cb, void *data,
                  int argc, const char **argv, const size_t *argvlen, const char *resp, size_t len)
{
    struct redis_cmd *cmd;
    int rc;

    if (argc > 0) {
        buf_reset(&c->fmt);
        if (resp_put_command(&c->fmt, argc, argv, argvlen) != 0)
            return DG_ERR_TOO_LARGE;
        rc = redis_wire_write(c->wire, c->fmt.data, c->fmt.len);
        /* A rare big command (a long requeue) does not keep its memory. */
        if (c->fmt.cap > REDIS_FMT_KEEP_BYTES)
            buf_free(&c->fmt);
    } else {
        rc = redis_wire_write(c->wire, resp, len);
    }
    if (rc != 0) {
        /* Part of a stream we can no longer trust: start over. */
        request_teardown(c, "output buffer over its cap");
        return DG_ERR_UNAVAILABLE;
    }
    cmd = xcalloc(1, sizeof(*cmd));
    cmd->cb = cb;
    cmd->data = data;
    cmd->own_ms = timeout_ms;
    list_insert_after(c->sent.prev, &cmd->sent);
    list_init(&cmd->node); /* on c->cmds once written, with its own timeout only */
    return 0;
}

/* ---- Wire callbacks ----------------------------------------------------- */

static void handshake_send(struct redis_conn *c);

static void on_wire_open(struct redis_wire *w, void *data)
{
    struct redis_conn *c = data;

    if (c->wire != w)
        return;
    c->state = RS_HANDSHAKE;
    uv_timer_stop(&c->timer);
    handshake_send(c);
}

/* A reply with no command waiting, or bytes that are not RESP: the stream is lost. */
static void protocol_error(struct redis_conn *c, const char *what)
{
    char why[160];

    snprintf(why, sizeof(why), "protocol error: %s", what);
    request_teardown(c, why);
}

/*
 * Parses what arrived and answers the oldest commands. Stops as soon as
 * a callback tore the connection down (c->wire changes or broken is set):
 * the rest of this buffer belongs to a stream we no longer read.
 */
static void on_wire_read(struct redis_wire *w, const char *p, size_t n, void *data)
{
    struct redis_conn *c = data;
    redisReader *reader = c->reader;

    if (c->wire != w || c->broken)
        return;
    /* Any reply bytes are progress, even part of a long reply. */
    c->progress_ms = uv_now(c->loop);
    if (redisReaderFeed(reader, p, n) != REDIS_OK) {
        protocol_error(c, resp_reader_error(reader));
        return;
    }
    while (c->wire == w && !c->broken) {
        struct list_node *first;
        void *reply = NULL;

        if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
            protocol_error(c, resp_reader_error(reader));
            return;
        }
        if (reply == NULL) {
            /* A new head without an own deadline may be due before the armed timer. */
            arm_deadline(c);
            return;
        }
        first = list_first(&c->sent);
        if (first == NULL) {
            freeReplyObject(reply);
            protocol_error(c, "a reply nobody asked for");
            return;
        }
        cmd_finish(container_of(first, struct redis_cmd, sent), 0, reply);
        freeReplyObject(reply);
    }
}

/* A write began: stamp the commands it carries (the newest ones without a stamp). */
static void on_wire_sent(struct redis_wire *w, void *data)
{
    struct redis_conn *c = data;
    struct list_node *n;
    uint64_t now;

    if (c->wire != w || (c->state != RS_HANDSHAKE && c->state != RS_READY))
        return;              /* TLS handshake records carry no command */
    uv_update_time(c->loop); /* the check phase's loop time is the turn's start */
    now = uv_now(c->loop);
    for (n = c->sent.prev; n != &c->sent; n = n->prev) {
        struct redis_cmd *cmd = container_of(n, struct redis_cmd, sent);

        if (cmd->sent_ms != 0)
            break;
        cmd->sent_ms = now;
        if (cmd->own_ms != 0) {
            cmd->deadline = now + cmd->own_ms;
            cmd_insert(c, cmd);
        }
    }
    arm_deadline(c);
}

static void on_wire_fail(struct redis_wire *w, const char *why, void *data)
{
    struct redis_conn *c = data;

    if (c->wire != w)
        return;
    conn_down(c, why);
}

static void on_wire_closed(struct redis_wire *w, void *data)
{
    struct redis_conn *c = data;

    c->wires_open--;
    maybe_finish(c);
}

static const struct redis_wire_cbs wire_cbs = {
    .open = on_wire_open,
    .read = on_wire_read,
    .fail = on_wire_fail,
    .closed = on_wire_closed,
    .sent = on_wire_sent,
};

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
 * Forgets the current wire (it closes on its own time) and finishes what
 * was pending on it. Safe inside any callback: the wire defers its free to
 * its close callbacks, and on_wire_read stops once c->wire changed.
 */
static void drop_wire(struct redis_conn *c)
{
    struct redis_wire *w = c->wire;

    if (w != NULL) {
        c->wire = NULL;
        redis_wire_close(w);
    }
    fail_pending(c);
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
        log_warn("redis %s: connection to %s lost (%s), reconnecting", c->name, c->where, why);
    else if (!c->outage_logged)
        log_warn("redis %s: cannot connect to %s (%s), retrying with backoff", c->name, c->where,
                 why);
    else
        log_debug("redis %s: attempt %u to %s failed (%s)", c->name, c->attempt, c->where, why);
    c->outage_logged = true;
    drop_wire(c); /* runs pending callbacks, which may stop us */
    if (was_ready && c->state == RS_WAITING && c->state_cb != NULL)
        c->state_cb(c, false, c->state_data);
}

/* A fresh wire (and reader, and SSL) for this attempt, connecting to ip. */
static void connect_to(struct redis_conn *c, const char *ip)
{
    const struct config *cfg = c->cfg;
    struct sockaddr_storage sa;
    char why[300];
    SSL *ssl = NULL;
    int rc;

    if (cfg->redis_kind == REDIS_TCP) {
        rc = strchr(ip, ':') ? uv_ip6_addr(ip, cfg->redis_port, (struct sockaddr_in6 *)&sa)
                             : uv_ip4_addr(ip, cfg->redis_port, (struct sockaddr_in *)&sa);
        if (rc != 0) {
            conn_down(c, uv_strerror(rc));
            return;
        }
    }
    if (cfg->redis_tls) {
        if (c->tls == NULL) {
            conn_down(c, c->tls_err);
            return;
        }
        /* SNI and the host check use the configured name, not the address. */
        ssl = redis_tls_new(c->tls, cfg->redis_host, why, sizeof(why));
        if (ssl == NULL) {
            conn_down(c, why);
            return;
        }
    }
    if (c->reader != NULL)
        redisReaderFree(c->reader);
    c->reader = resp_reader_create();
    c->progress_ms = 0;
    c->grace = false;
    c->wire = redis_wire_create(c->loop, &wire_cbs, c);
    c->wires_open++;
    c->state = RS_CONNECTING;
    if (cfg->redis_kind == REDIS_UNIX)
        rc = redis_wire_connect_unix(c->wire, cfg->redis_path);
    else
        rc = redis_wire_connect_tcp(c->wire, (const struct sockaddr *)&sa, ssl);
    if (rc != 0) {
        c->wire = NULL; /* closing already */
        conn_down(c, uv_strerror(rc));
    }
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
     * One address per attempt: rotate through the answers across attempts,
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
 * One connection attempt, bounded by REDIS_CONNECT_TIMEOUT_MS (TLS handshake
 * included). Names go through libuv's thread pool (uv_getaddrinfo), so the
 * wire only ever connects to a numeric address and nothing blocks.
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
        log_info("redis %s: reconnected to %s", c->name, c->where);
    } else {
        log_info("redis %s: connected to %s", c->name, c->where);
    }
    c->ever_ready = true;
    c->outage_logged = false;
    set_counted(c, true);
    if (c->state_cb != NULL)
        c->state_cb(c, true, c->state_data);
}

/* Asks the timer to tear the connection down: never from inside the reader's loop. */
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
    const char *argv[3];
    int rc = 0;

    c->handshake_left = 0;
    /* A user means a Redis 6 ACL user: AUTH user password ("" for a nopass user). */
    if (cfg->redis_user != NULL) {
        argv[0] = "AUTH";
        argv[1] = cfg->redis_user;
        argv[2] = cfg->redis_password != NULL ? cfg->redis_password : "";
        rc = submit(c, 0, on_handshake, c, 3, argv, NULL, NULL, 0);
        c->handshake_left += rc == 0;
    } else if (cfg->redis_password != NULL) {
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

/*
 * The timer fired: a teardown was requested, or something may be overdue.
 * Overdue the first time, the poll phase gets one turn (a 1 ms timer: one of
 * 0 ms would run again in this same timers phase) to read replies that came
 * while a long loop turn kept us from reading them. Those move progress_ms,
 * so what is still overdue after that turn is silence or an own deadline.
 */
static void check_deadlines(struct redis_conn *c)
{
    uint64_t now = uv_now(c->loop);
    struct redis_cmd *head;
    struct list_node *n;
    unsigned expired = 0, pending = 0;
    char why[128];

    if (c->broken) {
        conn_down(c, c->broken_why);
        return;
    }
    if (due_ms(c) > now) {
        c->grace = false;
        arm_deadline(c);
        return;
    }
    if (!c->grace) {
        c->grace = true;
        c->timer_due = now + 1;
        uv_timer_start(&c->timer, on_timer, 1, 0);
        return;
    }
    c->grace = false;
    head = cmd_head(c);
    /* Timed out: the head, and what waited its own bound or 2 s since its write; the rest lost. */
    list_for_each (n, &c->sent) {
        struct redis_cmd *cmd = container_of(n, struct redis_cmd, sent);
        uint64_t bound = cmd->sent_ms == 0  ? UINT64_MAX
                         : cmd->own_ms != 0 ? cmd->deadline
                                            : cmd->sent_ms + REDIS_COMMAND_TIMEOUT_MS;

        pending++;
        if (bound <= now || cmd == head) {
            cmd->fail_err = DG_ERR_TIMEOUT;
            expired++;
        }
    }
    /* Replies are FIFO: everything behind a stuck command is stuck too. */
    snprintf(why, sizeof(why), "%u of %u pending command(s) timed out, no reply for %llu ms",
             expired, pending,
             (unsigned long long)(head->sent_ms != 0 ? now - head_since(c, head) : 0));
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
    list_init(&c->sent);
    buf_init(&c->fmt, RESP_MAX_COMMAND_BYTES);
    c->name = xstrdup(name);
    redis_where(cfg, c->where, sizeof(c->where));
    /* Built once: the CA store and the client certificate are read at start only. */
    if (cfg->redis_tls) {
        c->tls = redis_tls_ctx_create(cfg, c->tls_err, sizeof(c->tls_err));
        if (c->tls == NULL)
            log_error("redis %s: %s", name, c->tls_err);
    }
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
    return c->state == RS_READY && c->wire != NULL && !c->broken;
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
    if (c->state != RS_STOPPING || !c->timer_closed || c->wires_open > 0 || c->resolving ||
        c->wire != NULL)
        return;
    assert(list_empty(&c->cmds) && list_empty(&c->sent));
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
    drop_wire(c); /* pending commands finish with DG_ERR_CLOSED */
}

void redis_conn_free(struct redis_conn *c)
{
    if (c == NULL)
        return;
    assert(c->state == RS_STOPPED);
    if (c->reader != NULL)
        redisReaderFree(c->reader);
    SSL_CTX_free(c->tls);
    buf_free(&c->fmt);
    xfree(c->name);
    xfree(c);
}

int redis_reply_status(int err, const struct redisReply *reply)
{
    if (err)
        return err;
    return reply->type == REDIS_REPLY_ERROR ? DG_ERR_PROTOCOL : 0;
}

void redis_where(const struct config *cfg, char *out, size_t n)
{
    if (cfg->redis_kind == REDIS_UNIX)
        snprintf(out, n, "unix:%s", cfg->redis_path);
    else
        snprintf(out, n, strchr(cfg->redis_host, ':') ? "%s://[%s]:%d" : "%s://%s:%d",
                 cfg->redis_tls ? "rediss" : "redis", cfg->redis_host, cfg->redis_port);
}
