/*
 * heartbeat.c: a timer looks every HEARTBEAT_TICK_MS and beats when the
 * last beat is PROCS_BEAT_MS old (or failed, or never happened), so the
 * first beat lands within a tick of Redis being ready, and a Redis that
 * comes back gets the record again at once. One beat in flight at most.
 * The values are read when the beat goes out: RSS from libuv (procfs, not
 * disk), the rest from this process's metrics.
 */
#include "heartbeat.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "metrics.h"
#include "store/procs.h"
#include "store/queue.h"

#define HEARTBEAT_TICK_MS 500

struct heartbeat {
    uv_loop_t *loop;
    const struct config *cfg;
    struct queue *queue;
    struct metrics *metrics;
    uv_timer_t timer;
    char name[PROCS_MAX_NAME];
    char host[256];
    char listen[320];
    uint64_t started_ms;
    uint64_t last_beat; /* uv_now of the last beat answered, 0: none (or it failed) */
    bool in_flight;     /* a beat or the removal is outstanding */
    bool stopping;
    bool removed_sent;
    bool timer_closed;
    heartbeat_cb stopped_cb;
    void *stopped_data;
};

static const char *const role_names[] = {"all", "api", "worker"};

static void maybe_finish(struct heartbeat *hb);

static void on_beat(int err, void *data)
{
    struct heartbeat *hb = data;

    hb->in_flight = false;
    if (err)
        log_debug("heartbeat: not written: %s", dg_strerror(err));
    hb->last_beat = err ? 0 : uv_now(hb->loop);
    maybe_finish(hb);
}

static void beat(struct heartbeat *hb)
{
    size_t rss = 0;
    struct procs_beat b = {
        .name = hb->name,
        .role = role_names[hb->cfg->role],
        .version = DIGESTD_VERSION,
        .host = hb->host,
        .listen = hb->listen,
        .async_mode = hb->cfg->async_mode,
        .pid = (long)getpid(),
        .started_ms = hb->started_ms,
        .in_flight = (uint64_t)metrics_gauge_get(hb->metrics, METRICS_G_JOBS_IN_FLIGHT),
        .concurrency = hb->cfg->role == ROLE_API ? 0 : hb->cfg->worker_concurrency,
        .jobs_done = metrics_job_outcome_count(hb->metrics, "delivered"),
        .jobs_failed = metrics_job_outcome_count(hb->metrics, "failed") +
                       metrics_job_outcome_count(hb->metrics, "dead"),
    };

    if (uv_resident_set_memory(&rss) == 0)
        b.rss_bytes = rss;
    if (procs_beat(queue_conn(hb->queue), hb->cfg->prefix, &b, on_beat, hb) == 0)
        hb->in_flight = true;
}

static void on_tick(uv_timer_t *t)
{
    struct heartbeat *hb = container_of(t, struct heartbeat, timer);

    if (hb->in_flight || !queue_ready(hb->queue))
        return;
    if (hb->last_beat == 0 || uv_now(hb->loop) - hb->last_beat >= PROCS_BEAT_MS)
        beat(hb);
}

struct heartbeat *heartbeat_create(uv_loop_t *loop, const struct config *cfg, struct queue *queue,
                                   struct metrics *metrics, int listen_port)
{
    struct heartbeat *hb = xcalloc(1, sizeof(*hb));
    bool v6 = strchr(cfg->listen_host, ':') != NULL;

    hb->loop = loop;
    hb->cfg = cfg;
    hb->queue = queue;
    hb->metrics = metrics;
    procs_self_name(hb->name, sizeof(hb->name));
    if (gethostname(hb->host, sizeof(hb->host)) != 0)
        snprintf(hb->host, sizeof(hb->host), "localhost");
    hb->host[sizeof(hb->host) - 1] = '\0';
    snprintf(hb->listen, sizeof(hb->listen), v6 ? "[%s]:%d" : "%s:%d", cfg->listen_host,
             listen_port);
    hb->started_ms = clock_wall_ms();
    uv_timer_init(loop, &hb->timer);
    return hb;
}

void heartbeat_start(struct heartbeat *hb)
{
    uv_timer_start(&hb->timer, on_tick, 0, HEARTBEAT_TICK_MS);
}

static void on_removed(int err, void *data)
{
    struct heartbeat *hb = data;

    hb->in_flight = false;
    if (err)
        log_warn("heartbeat: record not removed (%s); it expires in %d s", dg_strerror(err),
                 PROCS_TTL_MS / 1000);
    maybe_finish(hb);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct heartbeat *hb = container_of((uv_timer_t *)h, struct heartbeat, timer);

    hb->timer_closed = true;
    maybe_finish(hb);
}

/* Stopping: once no beat is out, the removal goes; once that is answered, done. */
static void maybe_finish(struct heartbeat *hb)
{
    heartbeat_cb cb = hb->stopped_cb;

    if (!hb->stopping || hb->in_flight)
        return;
    if (!hb->removed_sent) {
        hb->removed_sent = true;
        if (queue_ready(hb->queue) &&
            procs_remove(queue_conn(hb->queue), hb->cfg->prefix, hb->name, on_removed, hb) == 0) {
            hb->in_flight = true;
            return;
        }
    }
    if (!hb->timer_closed || !cb)
        return;
    hb->stopped_cb = NULL;
    cb(hb, hb->stopped_data);
}

void heartbeat_stop(struct heartbeat *hb, heartbeat_cb cb, void *data)
{
    if (hb->stopping)
        return;
    hb->stopping = true;
    hb->stopped_cb = cb;
    hb->stopped_data = data;
    uv_close((uv_handle_t *)&hb->timer, on_timer_closed);
    maybe_finish(hb);
}

void heartbeat_free(struct heartbeat *hb)
{
    xfree(hb);
}
