/*
 * report.c: the table and the JSON object, from one tally.
 */
#include "report.h"

#include <stdio.h>
#include <sys/resource.h>

#include <json-c/json.h>

#include "hist.h"

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* Rounded to the µs: the histogram is not finer than that at these values anyway. */
static struct json_object *ms_json(uint64_t ns)
{
    return json_object_new_double((double)((ns + 500) / 1000) / 1000.0);
}

/* Percentiles for a latency-by-percentile plot (bench/plot.sh), 100 = max. */
static struct json_object *curve_json(const struct hist *h)
{
    static const double ps[] = {0,  10,   25,   50,    75,    90,     95,
                                99, 99.5, 99.9, 99.95, 99.99, 99.999, 100};
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]) && h->count; i++) {
        struct json_object *pt = json_object_new_array();
        json_object_array_add(pt, json_object_new_double(ps[i]));
        json_object_array_add(pt, ms_json(ps[i] > 0 ? hist_percentile(h, ps[i]) : h->min_ns));
        json_object_array_add(a, pt);
    }
    return a;
}

static struct json_object *latency_json(const struct hist *h)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "count", json_object_new_int64((int64_t)h->count));
    json_object_object_add(o, "p50_ms", ms_json(hist_percentile(h, 50)));
    json_object_object_add(o, "p90_ms", ms_json(hist_percentile(h, 90)));
    json_object_object_add(o, "p99_ms", ms_json(hist_percentile(h, 99)));
    json_object_object_add(o, "p999_ms", ms_json(hist_percentile(h, 99.9)));
    json_object_object_add(o, "max_ms", ms_json(h->max_ns));
    json_object_object_add(o, "mean_ms", ms_json((uint64_t)hist_mean_ns(h)));
    json_object_object_add(o, "curve", curve_json(h));
    return o;
}

/* Only the kinds that happened: a clean run reads {}. */
static struct json_object *errors_json(const struct tally *t)
{
    struct json_object *o = json_object_new_object();

    for (int e = 0; e < TALLY_ERR_COUNT; e++) {
        if (t->errors[e])
            json_object_object_add(o, tally_error_name((enum tally_error)e),
                                   json_object_new_int64((int64_t)t->errors[e]));
    }
    return o;
}

/* Completed requests over the measured time (not sent ones: an unanswered request did nothing). */
static double throughput(const struct report *r)
{
    return r->duration_s > 0 ? (double)r->completed / r->duration_s : 0.0;
}

/* digest-bench's own CPU so far, user + system seconds: what measuring cost. */
static double own_cpu_s(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void print_json(const struct report *r)
{
    const struct bench_opts *o = r->opts;
    const struct tally *t = r->tally;
    struct json_object *j = json_object_new_object();

    json_object_object_add(j, "target", json_object_new_string(o->target));
    json_object_object_add(j, "mode", json_object_new_string(o->open_loop ? "open" : "closed"));
    json_object_object_add(j, "connections", json_object_new_int64(o->connections));
    if (o->open_loop)
        json_object_object_add(j, "rate_rps", json_object_new_double(o->rate));
    json_object_object_add(j, "duration_s", json_object_new_double(r->duration_s));
    json_object_object_add(j, "requests", json_object_new_int64((int64_t)r->completed));
    json_object_object_add(j, "sent", json_object_new_int64((int64_t)t->measured_sent));
    json_object_object_add(j, "warmup_requests",
                           json_object_new_int64((int64_t)(t->sent - t->measured_sent)));
    json_object_object_add(j, "throughput_rps", json_object_new_double(throughput(r)));
    json_object_object_add(j, "errors", errors_json(t));
    json_object_object_add(j, "cpu_s", json_object_new_double(own_cpu_s()));
    json_object_object_add(j, "webhook", latency_json(&t->webhook));
    if (o->listen) {
        json_object_object_add(j, "ack", latency_json(&t->ack));
        json_object_object_add(j, "result", latency_json(&t->result));
    }
    printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(j);
}

static void print_row(const char *name, const struct hist *h)
{
    printf("%-8s %9llu %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, (unsigned long long)h->count,
           ms(hist_percentile(h, 50)), ms(hist_percentile(h, 90)), ms(hist_percentile(h, 99)),
           ms(hist_percentile(h, 99.9)), ms(h->max_ns));
}

static void print_errors(const struct tally *t)
{
    bool any = false;

    printf("errors:");
    for (int e = 0; e < TALLY_ERR_COUNT; e++) {
        if (t->errors[e]) {
            printf(" %s %llu", tally_error_name((enum tally_error)e),
                   (unsigned long long)t->errors[e]);
            any = true;
        }
    }
    printf("%s\n", any ? "" : " none");
}

static void print_table(const struct report *r)
{
    const struct bench_opts *o = r->opts;
    const struct tally *t = r->tally;

    if (o->open_loop)
        printf("%s: open loop at %.0f/s (up to %u connections), ", o->target, o->rate,
               o->connections);
    else
        printf("%s: closed loop, %u connections, ", o->target, o->connections);
    printf("%.2f s measured after %.1f s of warm-up\n", r->duration_s,
           (double)o->warmup_ms / 1000.0);
    printf("requests: %llu completed of %llu sent, %.1f/s\n", (unsigned long long)r->completed,
           (unsigned long long)t->measured_sent, throughput(r));
    print_errors(t);
    printf("%-8s %9s %9s %9s %9s %9s %9s  (ms from the due time)\n", "", "count", "p50", "p90",
           "p99", "p99.9", "max");
    print_row("webhook", &t->webhook);
    if (o->listen) {
        print_row("ack", &t->ack);
        print_row("result", &t->result);
    }
}

void report_print(const struct report *r)
{
    if (r->opts->json)
        print_json(r);
    else
        print_table(r);
    fflush(stdout);
}
