/*
 * metrics.c: fixed tables of counters, gauges and histograms. The request
 * table is keyed by (route, status) and scanned linearly: a process sees a
 * few dozen distinct pairs, and comparing route pointers first keeps the
 * scan to a handful of integer compares per request.
 */
#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "core/clock.h"

#define N_BUCKETS 18
#define MAX_REQUEST_KEYS 96
#define MAX_OUTCOMES 16
#define MAX_OUTBOUND_KEYS 64

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const uint64_t bucket_us[N_BUCKETS - 1] = {
    250,    500,    1000,    2500,    5000,    10000,    25000,    50000,    100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

struct histogram {
    uint64_t buckets[N_BUCKETS]; /* not cumulative; summed at render time */
    uint64_t count;
    uint64_t sum_ns;
};

struct request_key {
    const char *route;
    int status;
    uint64_t count;
};

struct outbound_key {
    enum metrics_hist target;
    long status;
    uint64_t count;
};

struct outcome {
    const char *name;
    uint64_t count;
};

struct metrics {
    struct histogram hist[METRICS_H_COUNT_];
    uint64_t counters[METRICS_C_COUNT_];
    int64_t gauges[METRICS_G_COUNT_];
    struct request_key requests[MAX_REQUEST_KEYS];
    size_t n_requests;
    uint64_t requests_overflow; /* pairs past the table: still counted, unlabelled */
    struct outcome outcomes[MAX_OUTCOMES];
    size_t n_outcomes;
    struct outbound_key outbound[MAX_OUTBOUND_KEYS];
    size_t n_outbound;
    uint64_t modes[METRICS_MODE_COUNT_];
    uint64_t start_ms; /* wall clock at metrics_create: the process's start, to the ms */
};

static const char *const hist_names[METRICS_H_COUNT_] = {
    "digestd_webhook_duration_seconds",  "digestd_enqueue_duration_seconds",
    "digestd_upstream_duration_seconds", "digestd_connector_duration_seconds",
    "digestd_job_delivery_seconds",
};

static const char *const hist_help[METRICS_H_COUNT_] = {
    "Webhook request received to response queued",
    "Enqueue round trip to Redis",
    "Upstream digest fetch",
    "Bot connector call",
    "Job created to result card accepted by the connector",
};

/* The label of an outbound target, by the histogram that times it. */
static const char *const target_names[METRICS_H_COUNT_] = {"webhook", "enqueue", "upstream",
                                                           "connector", "job"};

/* A metric family without labels: its name and the # HELP text promtool asks for. */
struct family {
    const char *name;
    const char *help;
};

static const struct family counters[METRICS_C_COUNT_] = {
    {"digestd_redis_reconnects_total", "Redis connections re-established after a loss"},
    {"digestd_redis_errors_total", "Redis connection losses and refused commands"},
    {"digestd_jobs_enqueued_total", "Digest jobs added to the stream by the webhook"},
    {"digestd_jobs_duplicate_total", "Repeated activities answered from the dedup key"},
    {"digestd_retries_total", "Retries of outbound calls and of jobs"},
    {"digestd_token_refreshes_total", "Bot token requests to the token endpoint"},
    {"digestd_connections_rejected_total", "HTTP connections refused past MAX_CONNECTIONS"},
    {"digestd_job_attempts_total", "Worker attempts begun, first ones included"},
    {"digestd_connector_pacing_refused_total",
     "Connector sends refused at once: their conversation already had the most sends waiting "
     "for Teams' pacing limits"},
    {"digestd_ack_cards_skipped_total",
     "Acknowledgment cards not posted because too many were under way already (the jobs were "
     "queued and get their result cards)"},
};

static const struct family gauges[METRICS_G_COUNT_] = {
    {"digestd_http_connections", "Open inbound HTTP connections"},
    {"digestd_redis_connected", "Redis connections of this process that are up"},
    {"digestd_jobs_in_flight", "Jobs this worker holds"},
    {"digestd_stream_length", "Entries in the requests stream (sampled)"},
    {"digestd_stream_pending", "Entries delivered to the group but not acknowledged (sampled)"},
    {"digestd_stream_lag", "Entries not yet delivered to the group (sampled; -1: unknown)"},
};

struct metrics *metrics_create(void)
{
    struct metrics *m = xcalloc(1, sizeof(struct metrics));

    m->start_ms = clock_wall_ms();
    return m;
}

void metrics_free(struct metrics *m)
{
    xfree(m);
}

static void hist_observe(struct histogram *h, uint64_t ns)
{
    uint64_t us = ns / 1000;
    size_t i = 0;

    while (i < N_BUCKETS - 1 && us > bucket_us[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum_ns += ns;
}

void metrics_http_request(struct metrics *m, const char *route, int status, uint64_t elapsed_ns)
{
    size_t i;

    if (!m)
        return;
    if (route && strcmp(route, "webhook") == 0)
        hist_observe(&m->hist[METRICS_H_WEBHOOK], elapsed_ns);
    for (i = 0; i < m->n_requests; i++) {
        struct request_key *k = &m->requests[i];
        if (k->status == status && (k->route == route || strcmp(k->route, route) == 0)) {
            k->count++;
            return;
        }
    }
    if (m->n_requests == MAX_REQUEST_KEYS) {
        m->requests_overflow++;
        return;
    }
    m->requests[m->n_requests++] = (struct request_key){route, status, 1};
}

void metrics_observe(struct metrics *m, enum metrics_hist h, uint64_t elapsed_ns)
{
    if (m)
        hist_observe(&m->hist[h], elapsed_ns);
}

void metrics_inc(struct metrics *m, enum metrics_counter c)
{
    metrics_add(m, c, 1);
}

void metrics_add(struct metrics *m, enum metrics_counter c, uint64_t n)
{
    if (m)
        m->counters[c] += n;
}

void metrics_gauge_set(struct metrics *m, enum metrics_gauge g, int64_t v)
{
    if (m)
        m->gauges[g] = v;
}

void metrics_gauge_add(struct metrics *m, enum metrics_gauge g, int64_t delta)
{
    if (m)
        m->gauges[g] += delta;
}

void metrics_outbound(struct metrics *m, enum metrics_hist h, long status)
{
    size_t i;

    if (!m)
        return;
    for (i = 0; i < m->n_outbound; i++) {
        if (m->outbound[i].target == h && m->outbound[i].status == status) {
            m->outbound[i].count++;
            return;
        }
    }
    if (m->n_outbound < MAX_OUTBOUND_KEYS)
        m->outbound[m->n_outbound++] = (struct outbound_key){h, status, 1};
}

void metrics_job_outcome(struct metrics *m, const char *outcome)
{
    size_t i;

    if (!m)
        return;
    for (i = 0; i < m->n_outcomes; i++) {
        if (strcmp(m->outcomes[i].name, outcome) == 0) {
            m->outcomes[i].count++;
            return;
        }
    }
    if (m->n_outcomes < MAX_OUTCOMES)
        m->outcomes[m->n_outcomes++] = (struct outcome){outcome, 1};
}

void metrics_request_mode(struct metrics *m, enum metrics_mode mode)
{
    if (m)
        m->modes[mode]++;
}

int64_t metrics_gauge_get(const struct metrics *m, enum metrics_gauge g)
{
    return m ? m->gauges[g] : 0;
}

uint64_t metrics_counter_get(const struct metrics *m, enum metrics_counter c)
{
    return m ? m->counters[c] : 0;
}

uint64_t metrics_job_outcome_count(const struct metrics *m, const char *outcome)
{
    for (size_t i = 0; m && i < m->n_outcomes; i++)
        if (strcmp(m->outcomes[i].name, outcome) == 0)
            return m->outcomes[i].count;
    return 0;
}

static int render_hist(const struct histogram *h, const char *name, const char *help,
                       struct buf *out)
{
    uint64_t cum = 0;
    size_t i;
    int err;

    err = buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (i = 0; !err && i < N_BUCKETS; i++) {
        cum += h->buckets[i];
        if (i < N_BUCKETS - 1)
            err = buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, (double)bucket_us[i] / 1e6,
                             (unsigned long long)cum);
        else
            err = buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    if (!err)
        err = buf_printf(out, "%s_sum %.9f\n%s_count %llu\n", name, (double)h->sum_ns / 1e9, name,
                         (unsigned long long)h->count);
    return err;
}

static int render_requests(const struct metrics *m, struct buf *out)
{
    size_t i;
    int err;

    err = buf_append_str(out, "# HELP digestd_http_requests_total HTTP requests by route and "
                              "status\n# TYPE digestd_http_requests_total counter\n");
    for (i = 0; !err && i < m->n_requests; i++)
        err = buf_printf(out, "digestd_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                         m->requests[i].route, m->requests[i].status,
                         (unsigned long long)m->requests[i].count);
    if (!err && m->requests_overflow)
        err =
            buf_printf(out, "digestd_http_requests_total{route=\"other\",status=\"other\"} %llu\n",
                       (unsigned long long)m->requests_overflow);
    return err;
}

/* ---- requests by mode, build info, process_* --------------------------- */

static const char *const mode_names[METRICS_MODE_COUNT_] = {"async", "sync", "fallback"};

static int render_modes(const struct metrics *m, struct buf *out)
{
    int err = buf_append_str(out, "# HELP digestd_requests_by_mode_total Digest requests by how "
                                  "they were served (fallback: sync while Redis was unreachable)\n"
                                  "# TYPE digestd_requests_by_mode_total counter\n");

    for (size_t i = 0; !err && i < METRICS_MODE_COUNT_; i++)
        err = buf_printf(out, "digestd_requests_by_mode_total{mode=\"%s\"} %llu\n", mode_names[i],
                         (unsigned long long)m->modes[i]);
    if (!err)
        err = buf_printf(out,
                         "# HELP digestd_sync_fallbacks_total Digests served synchronously because "
                         "Redis was unreachable\n"
                         "# TYPE digestd_sync_fallbacks_total counter\n"
                         "digestd_sync_fallbacks_total %llu\n"
                         "# HELP digestd_build_info The version of this digestd (value 1)\n"
                         "# TYPE digestd_build_info gauge\n"
                         "digestd_build_info{version=\"%s\"} 1\n",
                         (unsigned long long)m->modes[METRICS_MODE_FALLBACK], DIGESTD_VERSION);
    return err;
}

/* Entries of /proc/self/fd, less the one opendir holds; -1 when there is no /proc. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* A gauge or counter family of one sample, with its HELP and TYPE. */
static int render_one(struct buf *out, const char *name, const char *type, const char *help,
                      double v)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name,
                      v);
}

/*
 * The standard process collector's families (Prometheus client libraries
 * name them so): CPU time, resident and virtual memory, open and maximum
 * file descriptors, start time. A value we cannot read is left out, not
 * written as a guess.
 */
static int render_process(const struct metrics *m, struct buf *out)
{
    uv_rusage_t ru;
    struct rlimit rl;
    size_t rss = 0;
    long fds = open_fds(), vm_pages = 0, rss_pages;
    FILE *statm = fopen("/proc/self/statm", "r");
    int err = 0;

    if (statm) {
        if (fscanf(statm, "%ld %ld", &vm_pages, &rss_pages) != 2)
            vm_pages = 0;
        fclose(statm);
    }
    if (uv_getrusage(&ru) == 0)
        err = render_one(out, "process_cpu_seconds_total", "counter",
                         "Total user and system CPU time spent in seconds",
                         (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                             (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    if (!err && uv_resident_set_memory(&rss) == 0)
        err = render_one(out, "process_resident_memory_bytes", "gauge",
                         "Resident memory size in bytes", (double)rss);
    if (!err && vm_pages > 0)
        err = render_one(out, "process_virtual_memory_bytes", "gauge",
                         "Virtual memory size in bytes", (double)vm_pages * sysconf(_SC_PAGESIZE));
    if (!err && fds >= 0)
        err = render_one(out, "process_open_fds", "gauge", "Number of open file descriptors",
                         (double)fds);
    if (!err && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        err = render_one(out, "process_max_fds", "gauge", "Maximum number of open file descriptors",
                         (double)rl.rlim_cur);
    if (!err)
        err = render_one(out, "process_start_time_seconds", "gauge",
                         "Start time of the process since unix epoch in seconds",
                         (double)m->start_ms / 1000.0);
    return err;
}

int metrics_render(const struct metrics *m, struct buf *out)
{
    size_t i;
    int err;

    err = render_requests(m, out);
    for (i = 0; !err && i < METRICS_H_COUNT_; i++)
        err = render_hist(&m->hist[i], hist_names[i], hist_help[i], out);
    for (i = 0; !err && i < METRICS_C_COUNT_; i++)
        err = buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name,
                         counters[i].help, counters[i].name, counters[i].name,
                         (unsigned long long)m->counters[i]);
    for (i = 0; !err && i < METRICS_G_COUNT_; i++)
        err = buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauges[i].name,
                         gauges[i].help, gauges[i].name, gauges[i].name, (long long)m->gauges[i]);
    if (!err)
        err = buf_append_str(out, "# HELP digestd_outbound_responses_total Responses to outbound "
                                  "calls by target and HTTP status (0: none arrived)\n"
                                  "# TYPE digestd_outbound_responses_total counter\n");
    for (i = 0; !err && i < m->n_outbound; i++)
        err =
            buf_printf(out, "digestd_outbound_responses_total{target=\"%s\",status=\"%ld\"} %llu\n",
                       target_names[m->outbound[i].target], m->outbound[i].status,
                       (unsigned long long)m->outbound[i].count);
    if (!err)
        err = buf_append_str(out, "# HELP digestd_jobs_total Jobs by outcome\n"
                                  "# TYPE digestd_jobs_total counter\n");
    for (i = 0; !err && i < m->n_outcomes; i++)
        err = buf_printf(out, "digestd_jobs_total{outcome=\"%s\"} %llu\n", m->outcomes[i].name,
                         (unsigned long long)m->outcomes[i].count);
    if (!err)
        err = render_modes(m, out);
    if (!err)
        err = render_process(m, out);
    return err;
}
