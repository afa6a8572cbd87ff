/* test_metrics.c: counting and the Prometheus text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"

static char *render(struct metrics *m)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(m, &b), 0);
    return buf_take(&b);
}

static void requests_are_counted_by_route_and_status(void **state)
{
    struct metrics *m = metrics_create();
    char *text;

    metrics_http_request(m, "webhook", 202, 1000000);
    metrics_http_request(m, "webhook", 202, 2000000);
    metrics_http_request(m, "webhook", 400, 100000);
    metrics_http_request(m, "healthz", 200, 1000);
    text = render(m);
    assert_non_null(
        strstr(text, "digestd_http_requests_total{route=\"webhook\",status=\"202\"} 2\n"));
    assert_non_null(
        strstr(text, "digestd_http_requests_total{route=\"webhook\",status=\"400\"} 1\n"));
    assert_non_null(
        strstr(text, "digestd_http_requests_total{route=\"healthz\",status=\"200\"} 1\n"));
    /* Only the webhook feeds the webhook histogram. */
    assert_non_null(strstr(text, "digestd_webhook_duration_seconds_count 3\n"));
    xfree(text);
    metrics_free(m);
}

static void histogram_buckets_are_cumulative(void **state)
{
    struct metrics *m = metrics_create();
    char *text;

    metrics_observe(m, METRICS_H_ENQUEUE, 200000);          /* 0.2 ms */
    metrics_observe(m, METRICS_H_ENQUEUE, 3000000);         /* 3 ms */
    metrics_observe(m, METRICS_H_ENQUEUE, 120000000000ull); /* 120 s: only +Inf */
    text = render(m);
    assert_non_null(strstr(text, "digestd_enqueue_duration_seconds_bucket{le=\"0.00025\"} 1\n"));
    assert_non_null(strstr(text, "digestd_enqueue_duration_seconds_bucket{le=\"0.0025\"} 1\n"));
    assert_non_null(strstr(text, "digestd_enqueue_duration_seconds_bucket{le=\"0.005\"} 2\n"));
    assert_non_null(strstr(text, "digestd_enqueue_duration_seconds_bucket{le=\"10\"} 2\n"));
    assert_non_null(strstr(text, "digestd_enqueue_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "digestd_enqueue_duration_seconds_count 3\n"));
    xfree(text);
    metrics_free(m);
}

static void counters_gauges_and_outcomes(void **state)
{
    struct metrics *m = metrics_create();
    char *text;

    metrics_inc(m, METRICS_C_REDIS_RECONNECTS);
    metrics_add(m, METRICS_C_JOBS_ENQUEUED, 5);
    metrics_gauge_set(m, METRICS_G_CONNECTIONS, 7);
    metrics_gauge_add(m, METRICS_G_CONNECTIONS, -2);
    metrics_job_outcome(m, "delivered");
    metrics_job_outcome(m, "delivered");
    text = render(m);
    assert_non_null(strstr(text, "digestd_redis_reconnects_total 1\n"));
    assert_non_null(strstr(text, "digestd_jobs_enqueued_total 5\n"));
    assert_non_null(strstr(text, "digestd_http_connections 5\n"));
    assert_non_null(strstr(text, "digestd_jobs_total{outcome=\"delivered\"} 2\n"));
    xfree(text);
    metrics_free(m);
}

static void outbound_statuses_by_target(void **state)
{
    struct metrics *m = metrics_create();
    char *text;

    metrics_outbound(m, METRICS_H_CONNECTOR, 200);
    metrics_outbound(m, METRICS_H_CONNECTOR, 200);
    metrics_outbound(m, METRICS_H_CONNECTOR, 429);
    metrics_outbound(m, METRICS_H_UPSTREAM, 0);
    text = render(m);
    assert_non_null(
        strstr(text, "digestd_outbound_responses_total{target=\"connector\",status=\"200\"} 2\n"));
    assert_non_null(
        strstr(text, "digestd_outbound_responses_total{target=\"connector\",status=\"429\"} 1\n"));
    assert_non_null(
        strstr(text, "digestd_outbound_responses_total{target=\"upstream\",status=\"0\"} 1\n"));
    xfree(text);
    metrics_free(m);
}

/* Whether text has a line "# kind family …" (kind: HELP or TYPE). */
static bool has_comment(const char *text, const char *kind, const char *family, size_t n)
{
    char pat[160];

    snprintf(pat, sizeof(pat), "\n# %s %.*s ", kind, (int)n, family);
    return strstr(text, pat) || strncmp(text, pat + 1, strlen(pat) - 1) == 0;
}

/* The length of line's family name: a histogram's series without _bucket/_sum/_count. */
static size_t family_len(const char *text, const char *line)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    size_t n = strcspn(line, "{ ");
    char type[160];

    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t k = strlen(suffixes[i]);

        if (n <= k || strncmp(line + n - k, suffixes[i], k) != 0)
            continue;
        snprintf(type, sizeof(type), "\n# TYPE %.*s histogram\n", (int)(n - k), line);
        if (strstr(text, type))
            return n - k;
    }
    return n;
}

/*
 * promtool check metrics wants # HELP and # TYPE for every family. The
 * integration test runs promtool itself on a live /metrics.
 */
static void every_family_has_help_and_type(void **state)
{
    struct metrics *m = metrics_create();
    char *text, *lines, *line, *save = NULL;
    int samples = 0;

    metrics_http_request(m, "webhook", 202, 1000);
    metrics_outbound(m, METRICS_H_CONNECTOR, 200);
    metrics_job_outcome(m, "delivered");
    text = render(m);
    lines = xstrdup(text);
    for (line = strtok_r(lines, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n = family_len(text, line);

        if (line[0] == '#')
            continue;
        samples++;
        if (!has_comment(text, "HELP", line, n) || !has_comment(text, "TYPE", line, n))
            fail_msg("no HELP or TYPE for the family of: %s", line);
    }
    assert_true(samples > METRICS_C_COUNT_ + METRICS_G_COUNT_);
    xfree(lines);
    xfree(text);
    metrics_free(m);
}

/* Requests by mode, the fallback counter, build info and process_*: each with HELP and TYPE. */
static void modes_build_info_and_process_families(void **state)
{
    static const char *const families[] = {
        "digestd_requests_by_mode_total",
        "digestd_sync_fallbacks_total",
        "digestd_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    };
    struct metrics *m = metrics_create();
    char *text, line[160];

    metrics_request_mode(m, METRICS_MODE_ASYNC);
    metrics_request_mode(m, METRICS_MODE_FALLBACK);
    metrics_request_mode(m, METRICS_MODE_FALLBACK);
    metrics_gauge_set(m, METRICS_G_JOBS_IN_FLIGHT, 4);
    metrics_job_outcome(m, "failed");
    text = render(m);
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        snprintf(line, sizeof(line), "# HELP %s ", families[i]);
        assert_non_null(strstr(text, line));
        snprintf(line, sizeof(line), "# TYPE %s ", families[i]);
        assert_non_null(strstr(text, line));
    }
    assert_non_null(strstr(text, "digestd_requests_by_mode_total{mode=\"async\"} 1\n"));
    assert_non_null(strstr(text, "digestd_requests_by_mode_total{mode=\"sync\"} 0\n"));
    assert_non_null(strstr(text, "digestd_requests_by_mode_total{mode=\"fallback\"} 2\n"));
    assert_non_null(strstr(text, "digestd_sync_fallbacks_total 2\n"));
    assert_non_null(strstr(text, "digestd_build_info{version=\"" DIGESTD_VERSION "\"} 1\n"));
    assert_null(strstr(text, "process_open_fds -")); /* counted, not a failure's -1 */
    assert_int_equal(metrics_gauge_get(m, METRICS_G_JOBS_IN_FLIGHT), 4);
    assert_int_equal(metrics_job_outcome_count(m, "failed"), 1);
    assert_int_equal(metrics_job_outcome_count(m, "delivered"), 0);
    xfree(text);
    metrics_free(m);
}

static void null_metrics_count_nothing(void **state)
{
    /* Modules may run without metrics (unit tests): nothing may crash. */
    metrics_http_request(NULL, "webhook", 200, 1);
    metrics_observe(NULL, METRICS_H_UPSTREAM, 1);
    metrics_inc(NULL, METRICS_C_RETRIES);
    metrics_gauge_set(NULL, METRICS_G_JOBS_IN_FLIGHT, 1);
    metrics_job_outcome(NULL, "dead");
    metrics_request_mode(NULL, METRICS_MODE_SYNC);
    assert_int_equal(metrics_gauge_get(NULL, METRICS_G_JOBS_IN_FLIGHT), 0);
    assert_int_equal(metrics_job_outcome_count(NULL, "dead"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(requests_are_counted_by_route_and_status),
        cmocka_unit_test(histogram_buckets_are_cumulative),
        cmocka_unit_test(counters_gauges_and_outcomes),
        cmocka_unit_test(outbound_statuses_by_target),
        cmocka_unit_test(every_family_has_help_and_type),
        cmocka_unit_test(modes_build_info_and_process_families),
        cmocka_unit_test(null_metrics_count_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
