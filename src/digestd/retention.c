/*
 * retention.c: the timer and the step loop (see retention.h). Every worker
 * runs it; two workers trimming at once only find less to do, since each
 * step is one atomic script. When the cut is held back by an old pending
 * or unread entry the worker says so, at most every RETENTION_WARN_MS: that
 * entry is what keeps the stream from shrinking, and likely stuck.
 */
#include "retention.h"

#include <inttypes.h>

#include "config.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "store/history.h"
#include "store/queue.h"
#include "store/trim.h"

#define RETENTION_WARN_MS (10 * 60 * 1000)
#define RETENTION_FIRST_MS 500

struct retention {
    uv_loop_t *loop;
    const struct config *cfg;
    struct queue *queue;
    uv_timer_t timer;
    bool running; /* a step is out */
    bool stopping;
    bool timer_closed;
    uint64_t warned_at;              /* uv_now of the last "kept" warning */
    long long removed, dead_removed; /* in the current run of steps */
    retention_cb stopped_cb;
    void *stopped_data;
};

static void maybe_stopped(struct retention *r);
static void step(struct retention *r);

/* The cut stopped at an entry older than the retention: worth an operator's look. */
static void warn_kept(struct retention *r, const struct trim_step *s)
{
    uint64_t now = uv_now(r->loop);

    if (s->kept_id[0] == '\0' || (r->warned_at && now - r->warned_at < RETENTION_WARN_MS))
        return;
    r->warned_at = now;
    if (s->kept_consumer[0])
        log_warn("retention: entries older than STREAM_RETENTION are kept behind %s, pending in "
                 "group %s under %s",
                 s->kept_id, s->kept_group, s->kept_consumer);
    else
        log_warn("retention: entries older than STREAM_RETENTION are kept behind %s, not yet "
                 "read by group %s",
                 s->kept_id, s->kept_group);
}

static void on_step(int err, const struct trim_step *s, void *data)
{
    struct retention *r = data;

    r->running = false;
    if (err) {
        log_debug("retention: step failed: %s", dg_strerror(err));
    } else {
        r->removed += s->removed;
        r->dead_removed += s->dead_removed;
        if (!s->more)
            warn_kept(r, s);
        if (s->more && !r->stopping) {
            step(r); /* the next bounded step, right away: others' commands go in between */
            return;
        }
        if (r->removed || r->dead_removed)
            log_debug("retention: %lld stream and %lld dead entries removed", r->removed,
                      r->dead_removed);
    }
    r->removed = r->dead_removed = 0;
    maybe_stopped(r);
}

static void step(struct retention *r)
{
    struct trim_opts o = {
        .older_than_ms = r->cfg->stream_retention_ms,
        .dead_max_len = r->cfg->dead_max_len,
        .dead_older_than_ms = r->cfg->dead_retention_ms,
        .lag_minute = true,
        .minute = history_minute(clock_wall_ms()),
    };

    if (trim_run(queue_conn(r->queue), r->cfg->prefix, &o, on_step, r) == 0)
        r->running = true;
}

static void on_tick(uv_timer_t *t)
{
    struct retention *r = container_of(t, struct retention, timer);

    if (!r->running && queue_ready(r->queue))
        step(r);
}

struct retention *retention_create(uv_loop_t *loop, const struct config *cfg, struct queue *queue)
{
    struct retention *r = xcalloc(1, sizeof(*r));

    r->loop = loop;
    r->cfg = cfg;
    r->queue = queue;
    uv_timer_init(loop, &r->timer);
    return r;
}

/* The first look soon after start (Redis is likely connected by then), then every interval. */
void retention_start(struct retention *r)
{
    uv_timer_start(&r->timer, on_tick, RETENTION_FIRST_MS, RETENTION_INTERVAL_MS);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct retention *r = container_of((uv_timer_t *)h, struct retention, timer);

    r->timer_closed = true;
    maybe_stopped(r);
}

static void maybe_stopped(struct retention *r)
{
    retention_cb cb = r->stopped_cb;

    if (!r->stopping || r->running || !r->timer_closed || !cb)
        return;
    r->stopped_cb = NULL;
    cb(r, r->stopped_data);
}

void retention_stop(struct retention *r, retention_cb cb, void *data)
{
    if (r->stopping)
        return;
    r->stopping = true;
    r->stopped_cb = cb;
    r->stopped_data = data;
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

void retention_free(struct retention *r)
{
    xfree(r);
}
