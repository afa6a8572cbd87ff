/*
 * http_fanout.c: the cost of lib/http/http_client.c (and libcurl under it)
 * per request when many are in flight at once, without Redis or digestd's
 * jobs around it. Sends N GETs at once, waits for all, and repeats for R
 * rounds (the second and later rounds reuse the kept-alive connections,
 * as a worker does in steady state). Prints wall time, CPU and VmHWM;
 * run it under valgrind --tool=callgrind for instruction counts, which
 * are repeatable where timings on a shared machine are not.
 *
 *   bench/delay_server.py 39300 1000 &            # answers after 1 s
 *   cc -O2 -g -std=gnu11 -D_GNU_SOURCE -DDIGESTD_VERSION='"0.1.0"' -Ilib \
 *      -isystem /usr/include/json-c bench/http_fanout.c lib/http/http_client.c \
 *      build-rel/libdg_metrics.a build-rel/libdg_config.a build-rel/libdg_core.a \
 *      -luv -lcurl -ljson-c -lm -o /tmp/http_fanout
 *   /tmp/http_fanout 5000 2 http://127.0.0.1:39300/x
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/log.h"
#include "http/http_client.h"

struct fanout {
    uv_loop_t *loop;
    struct http_client *client;
    struct http_client_request req;
    int n, rounds, round, done, ok;
};

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;

    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, strlen(key)) == 0)
            v = strtol(line + strlen(key), NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void send_round(struct fanout *f);

static void on_stopped(struct http_client *c, void *data)
{
    (void)c;
    (void)data;
}

static void on_done(const struct http_client_response *res, void *data)
{
    struct fanout *f = data;

    f->ok += res->err == 0 && res->status == 200;
    if (++f->done < f->n)
        return;
    f->done = 0;
    if (++f->round < f->rounds)
        send_round(f);
    else
        http_client_stop(f->client, on_stopped, f);
}

static void send_round(struct fanout *f)
{
    for (int i = 0; i < f->n; i++)
        if (http_client_send(f->client, &f->req, on_done, f, NULL)) {
            fprintf(stderr, "send %d refused\n", i);
            exit(1);
        }
    if (f->round == 0)
        printf("in flight %d: VmRSS %ld kB\n", f->n, status_kb("VmRSS:"));
}

int main(int argc, char **argv)
{
    struct fanout f = {0};
    struct rusage ru;
    uint64_t t0;

    if (argc != 4) {
        fprintf(stderr, "usage: http_fanout N ROUNDS URL\n");
        return 2;
    }
    log_setup(LOG_LEVEL_WARN, false);
    f.n = atoi(argv[1]);
    f.rounds = atoi(argv[2]);
    f.loop = uv_default_loop();
    f.client = http_client_create(f.loop, NULL);
    f.req = (struct http_client_request){
        .method = "GET", .url = argv[3], .timeout_ms = 120000, .max_response_bytes = 1 << 20};
    t0 = uv_hrtime();
    send_round(&f);
    uv_run(f.loop, UV_RUN_DEFAULT);
    http_client_free(f.client);
    getrusage(RUSAGE_SELF, &ru);
    printf("%d x %d requests, %d ok, %.2f s wall, CPU %.0f us per request, VmHWM %ld kB\n",
           f.rounds, f.n, f.ok, (double)(uv_hrtime() - t0) / 1e9,
           ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
            (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6) *
               1e6 / (f.rounds * f.n),
           status_kb("VmHWM:"));
    return f.ok == f.rounds * f.n ? 0 : 1;
}
