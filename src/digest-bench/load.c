/*
 * load.c: slots (a connection and the request buffer it sends from),
 * the schedule, and the queue of requests due but not yet sent.
 */
#include "load.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"

#define NS_PER_S 1000000000ULL
#define RECONNECT_PAUSE_MS 10 /* closed loop: after a failed connect, before the next */

struct slot {
    struct load *load;
    struct client_conn *conn; /* NULL until needed; replaced when it breaks */
    struct buf req;
    uint64_t n; /* the request in flight */
    bool busy;
};

struct load {
    uv_loop_t *loop;
    struct load_opts o;
    const struct payload *payload;
    struct tally *tally;
    load_done_cb done;
    void *done_data;
    struct slot *slots;
    unsigned n_slots; /* opened so far (open loop opens on demand) */
    unsigned *idle;   /* stack of idle slot numbers */
    unsigned n_idle;
    uint64_t *queue; /* ring of due request numbers waiting for a slot */
    uint64_t q_head, q_len, q_cap;
    uint64_t t0, measure_ns, end_ns;
    uint64_t next_due; /* open loop: the next request number to schedule */
    uint64_t in_flight;
    int tfd;
    uv_poll_t tick;       /* open loop: the timerfd */
    uv_timer_t end_timer; /* closed loop: the end of the schedule */
    uv_timer_t pause;     /* closed loop: slots waiting after a failed connect */
    unsigned *paused;     /* their numbers */
    unsigned n_paused;
    int open_handles;
    bool over, finished, closing;
};

/* Builds request n into the slot's own buffer, which stays untouched until the answer. */
static void send_on(struct slot *s, uint64_t n);

/* Done once the schedule is over and nothing is in flight or queued; once only. */
static void maybe_done(struct load *l)
{
    if (l->over && l->in_flight == 0 && l->q_len == 0 && !l->finished) {
        l->finished = true;
        l->done(l, l->done_data);
    }
}

/* Computed from i, not accumulated, so rounding never drifts the schedule. */
static uint64_t due_ns(const struct load *l, uint64_t i)
{
    return l->t0 + (uint64_t)((double)i * (double)NS_PER_S / l->o.rate);
}

/* ------------------------------------------------------------ the queue */

static void queue_push(struct load *l, uint64_t n)
{
    if (l->q_len == l->q_cap) {
        uint64_t cap = l->q_cap ? l->q_cap * 2 : 1024, i;
        uint64_t *q = xmalloc(cap * sizeof(*q));
        for (i = 0; i < l->q_len; i++)
            q[i] = l->queue[(l->q_head + i) % l->q_cap];
        xfree(l->queue);
        l->queue = q;
        l->q_cap = cap;
        l->q_head = 0;
    }
    l->queue[(l->q_head + l->q_len++) % l->q_cap] = n;
}

static uint64_t queue_pop(struct load *l)
{
    uint64_t n = l->queue[l->q_head];

    l->q_head = (l->q_head + 1) % l->q_cap;
    l->q_len--;
    return n;
}

/* ------------------------------------------------------------ connections */

/* Closed loop: the slot's next request, unless the schedule is over. */
static void next_closed(struct slot *s)
{
    struct load *l = s->load;
    uint64_t now = clock_mono_ns();

    if (!l->over && now < l->end_ns)
        send_on(s, tally_add(l->tally, now, now >= l->measure_ns));
}

static void on_pause_over(uv_timer_t *t)
{
    struct load *l = container_of(t, struct load, pause);

    while (l->n_paused && !l->closing)
        next_closed(&l->slots[l->paused[--l->n_paused]]);
    maybe_done(l);
}

/*
 * An answer frees the slot: closed loop sends its next request at once,
 * open loop takes the oldest queued request or goes idle. A connection that
 * may not be reused is replaced on the slot's next send.
 */
static void on_response(struct client_conn *c, const struct client_result *res, void *data)
{
    struct slot *s = data;
    struct load *l = s->load;

    s->busy = false;
    l->in_flight--;
    tally_answer(l->tally, s->n, res);
    if (!res->reusable) {
        client_conn_close(c);
        s->conn = NULL;
    }
    if (l->closing)
        return;
    if (!l->o.open_loop && res->error == CLIENT_ERR_CONNECT) {
        /* Nothing listens: pause rather than spin through connects as fast as they fail. */
        l->paused[l->n_paused++] = (unsigned)(s - l->slots);
        if (!uv_is_active((uv_handle_t *)&l->pause))
            uv_timer_start(&l->pause, on_pause_over, RECONNECT_PAUSE_MS, 0);
    } else if (!l->o.open_loop) {
        next_closed(s);
    } else if (l->q_len) {
        send_on(s, queue_pop(l));
    } else {
        l->idle[l->n_idle++] = (unsigned)(s - l->slots);
    }
    maybe_done(l);
}

/* Builds request n into the slot's own buffer, which stays untouched until the answer. */
static void send_on(struct slot *s, uint64_t n)
{
    struct load *l = s->load;

    if (s->conn && !client_conn_usable(s->conn)) {
        client_conn_close(s->conn);
        s->conn = NULL;
    }
    if (!s->conn)
        s->conn = client_conn_create(l->loop, (const struct sockaddr *)&l->o.addr, on_response, s);
    if (payload_request(l->payload, n, l->tally->activity_base + n, &s->req) != 0)
        abort(); /* templates are far below PAYLOAD_REQUEST_MAX */
    s->n = n;
    s->busy = true;
    l->in_flight++;
    client_conn_send(s->conn, s->req.data, s->req.len, l->o.timeout_ms);
}

/* Slots are opened in order and never closed before the end. */
static struct slot *slot_open(struct load *l)
{
    struct slot *s = &l->slots[l->n_slots++];

    s->load = l;
    buf_init(&s->req, PAYLOAD_REQUEST_MAX);
    return s;
}

/* Open loop: request n is due; send it on a free slot or queue it. */
static void dispatch(struct load *l, uint64_t n)
{
    if (l->n_idle)
        send_on(&l->slots[l->idle[--l->n_idle]], n);
    else if (l->n_slots < l->o.connections)
        send_on(slot_open(l), n);
    else
        queue_push(l, n);
}

/* ------------------------------------------------------------ the schedule */

static void load_free(struct load *l)
{
    for (unsigned i = 0; i < l->n_slots; i++)
        buf_free(&l->slots[i].req);
    if (l->tfd >= 0)
        close(l->tfd);
    xfree(l->slots);
    xfree(l->idle);
    xfree(l->paused);
    xfree(l->queue);
    xfree(l);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct load *l = h->data;

    if (--l->open_handles == 0)
        load_free(l);
}

/* Absolute CLOCK_MONOTONIC time: uv_hrtime() uses the same clock. */
static void arm(struct load *l, uint64_t at_ns)
{
    struct itimerspec its = {0};

    its.it_value.tv_sec = (time_t)(at_ns / NS_PER_S);
    its.it_value.tv_nsec = (long)(at_ns % NS_PER_S);
    /* An absolute time already past fires at once. */
    if (timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        log_error("timerfd_settime: %s", strerror(errno));
}

/* No new requests from here on; what is in flight still finishes. */
static void schedule_over(struct load *l)
{
    l->over = true;
    if (l->o.open_loop) {
        uv_poll_stop(&l->tick);
    } else {
        uv_timer_stop(&l->end_timer);
        uv_timer_stop(&l->pause);
        l->n_paused = 0;
    }
    maybe_done(l);
}

/* Sends everything due by now, then sleeps until the next due time. */
static void on_tick(uv_poll_t *p, int status, int events)
{
    struct load *l = container_of(p, struct load, tick);
    uint64_t expirations, now = clock_mono_ns(), due;

    /* Non-blocking: EAGAIN when another wake-up already drained it. */
    if (read(l->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        log_error("timerfd read: %s", strerror(errno));
    for (;;) {
        due = due_ns(l, l->next_due);
        if (due >= l->end_ns) {
            schedule_over(l);
            return;
        }
        if (due > now)
            break;
        dispatch(l, tally_add(l->tally, due, due >= l->measure_ns));
        l->next_due++;
    }
    arm(l, due);
}

static void on_end(uv_timer_t *t)
{
    schedule_over(container_of(t, struct load, end_timer));
}

/* The timerfd fires at the first due time, t0, at once. */
static int start_open(struct load *l)
{
    int err;

    l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (l->tfd < 0)
        return -errno;
    err = uv_poll_init(l->loop, &l->tick, l->tfd);
    if (err)
        return err;
    l->tick.data = l;
    l->open_handles++;
    err = uv_poll_start(&l->tick, UV_READABLE, on_tick);
    if (!err)
        arm(l, l->t0);
    return err;
}

/* Every connection starts with a request at t0; the end timer stops the refills. */
static void start_closed(struct load *l)
{
    uint64_t ms = (l->end_ns - l->t0 + 999999) / 1000000;

    uv_timer_init(l->loop, &l->end_timer);
    uv_timer_init(l->loop, &l->pause);
    l->end_timer.data = l->pause.data = l;
    l->open_handles += 2;
    uv_timer_start(&l->end_timer, on_end, ms, 0);
    for (unsigned i = 0; i < l->o.connections; i++)
        send_on(slot_open(l), tally_add(l->tally, l->t0, l->t0 >= l->measure_ns));
}

int load_start(uv_loop_t *loop, const struct load_opts *o, const struct payload *payload,
               struct tally *tally, load_done_cb done, void *data, struct load **out)
{
    struct load *l = xcalloc(1, sizeof(*l));
    int err = 0;

    l->loop = loop;
    l->o = *o;
    l->payload = payload;
    l->tally = tally;
    l->done = done;
    l->done_data = data;
    l->tfd = -1;
    l->slots = xcalloc(o->connections, sizeof(*l->slots));
    l->idle = xcalloc(o->connections, sizeof(*l->idle));
    l->paused = xcalloc(o->connections, sizeof(*l->paused));
    l->t0 = clock_mono_ns();
    l->measure_ns = l->t0 + o->warmup_ns;
    l->end_ns = l->measure_ns + o->duration_ns;
    if (o->open_loop)
        err = start_open(l);
    else
        start_closed(l);
    if (err) {
        log_error("cannot start the open-loop timer: %s", dg_strerror(err));
        load_close(l);
        return err;
    }
    *out = l;
    return 0;
}

void load_cut_short(struct load *l)
{
    if (l->over)
        return;
    l->q_len = 0; /* due but never sent: not counted at all */
    schedule_over(l);
}

uint64_t load_measure_start_ns(const struct load *l)
{
    return l->measure_ns;
}

void load_close(struct load *l)
{
    l->closing = true;
    for (unsigned i = 0; i < l->n_slots; i++) {
        if (l->slots[i].conn)
            client_conn_close(l->slots[i].conn);
        l->slots[i].conn = NULL;
    }
    if (l->open_handles == 0) {
        load_free(l);
        return;
    }
    if (l->o.open_loop) {
        uv_close((uv_handle_t *)&l->tick, on_handle_closed);
        return;
    }
    uv_close((uv_handle_t *)&l->end_timer, on_handle_closed);
    uv_close((uv_handle_t *)&l->pause, on_handle_closed);
}
