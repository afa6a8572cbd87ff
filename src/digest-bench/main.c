/*
 * main.c: digest-bench (SPEC §8). Wiring in the order a run goes: options,
 * the signing key, the target's address (all before the loop runs: the
 * only blocking steps), the connector listener, the payload, the load;
 * when the schedule is over and every request is answered, the drain waits
 * for awaited cards; then everything closes, the loop runs out, and the
 * report is printed.
 */
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "connector.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "load.h"
#include "options.h"
#include "payload.h"
#include "report.h"
#include "tally.h"
#include "teams/devkey.h"

#define DRAIN_POLL_MS 20
#define TOKEN_SLACK_S 3600

struct bench {
    uv_loop_t loop;
    struct bench_opts o;
    struct tally tally;
    struct payload *payload;
    struct connector *connector;
    struct load *load;
    uv_timer_t drain;
    uv_signal_t sigint, sigterm;
    uint64_t drain_until_ns;
    uint64_t measure_start_ns;
    char service_url[160];
    int interrupts;
    bool finishing;
};

/* Resolves the target once, before the loop runs (a blocking getaddrinfo is fine then). */
static int resolve(const struct bench_opts *o, struct sockaddr_storage *out)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    int rc;

    snprintf(port, sizeof(port), "%d", o->port);
    rc = getaddrinfo(o->host, port, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "digest-bench: --target: cannot resolve %s: %s\n", o->host,
                gai_strerror(rc));
        return DG_ERR_UNAVAILABLE;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* Open loop may hold thousands of connections; the soft limit is often 1024. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void on_closed(uv_handle_t *h)
{
}

static void on_connector_stopped(void *data)
{
}

/* Everything closes; uv_run returns once libuv is done. */
static void finish(struct bench *b)
{
    if (b->finishing)
        return;
    b->finishing = true;
    uv_timer_stop(&b->drain);
    if (b->connector)
        connector_stop(b->connector, on_connector_stopped, b);
    if (b->load)
        load_close(b->load);
    b->load = NULL;
    uv_close((uv_handle_t *)&b->drain, on_closed);
    uv_close((uv_handle_t *)&b->sigint, on_closed);
    uv_close((uv_handle_t *)&b->sigterm, on_closed);
}

/* Polled, not signalled: cards arrive through the connector, whose handler knows nothing of the
 * drain. */
static void on_drain_poll(uv_timer_t *t)
{
    struct bench *b = container_of(t, struct bench, drain);

    if (tally_cards_in(&b->tally) || clock_mono_ns() >= b->drain_until_ns)
        finish(b);
}

/* The schedule is over and every request answered: wait for the cards, up to --drain. */
static void on_load_done(struct load *l, void *data)
{
    struct bench *b = data;

    b->drain_until_ns = clock_mono_ns() + b->o.drain_ms * 1000000ULL;
    if (!b->o.listen || tally_cards_in(&b->tally) || b->interrupts > 1) {
        finish(b);
        return;
    }
    uv_timer_start(&b->drain, on_drain_poll, DRAIN_POLL_MS, DRAIN_POLL_MS);
}

/* First signal: stop sending, drain as usual; second: stop waiting too. */
static void on_signal(uv_signal_t *s, int signum)
{
    struct bench *b = s->data;

    if (++b->interrupts == 1 && b->load)
        load_cut_short(b->load);
    else
        finish(b);
}

static int start_connector(struct bench *b, EVP_PKEY *key, const char *kid)
{
    b->connector =
        connector_start(&b->loop, b->o.listen_host, b->o.listen_port, key, kid, &b->tally);
    if (!b->connector)
        return DG_ERR_UNAVAILABLE;
    snprintf(b->service_url, sizeof(b->service_url), "%s/", connector_url(b->connector));
    fprintf(stderr, "digest-bench: connector, token endpoint and keys on %s\n",
            connector_url(b->connector));
    return 0;
}

/* The token lives for the whole run plus an hour, as the channel's tokens outlive a turn. */
static int make_payload(struct bench *b, EVP_PKEY *key, const char *kid)
{
    const struct bench_opts *o = &b->o;
    struct payload_opts po = {
        .host_header = o->host_header,
        .path = o->path,
        .service_url = o->service_url ? o->service_url
                       : o->listen    ? b->service_url
                                      : BENCH_DEFAULT_SERVICE_URL,
        .app_id = o->app_id,
        .text = o->text,
        .shapes = o->shapes,
        .conversations = o->conversations,
        .key = key,
        .kid = kid,
        .now_s = clock_wall_ms() / 1000,
        .token_ttl_s = (o->warmup_ms + o->duration_ms) / 1000 + TOKEN_SLACK_S,
    };

    return payload_create(&po, &b->payload);
}

/* Key, address, listener, payload: what has to be there before the first request. */
static int setup(struct bench *b, struct load_opts *lo)
{
    char kid[JWT_KID_LEN + 1];
    EVP_PKEY *key = NULL;
    int err = stub_key_load(b->o.key_dir, &key, kid);

    if (err)
        fprintf(stderr, "digest-bench: --key-dir: no usable key in %s\n", b->o.key_dir);
    if (!err)
        err = resolve(&b->o, &lo->addr);
    if (!err && b->o.listen)
        err = start_connector(b, key, kid);
    if (!err)
        err = make_payload(b, key, kid);
    EVP_PKEY_free(key);
    return err;
}

static void init_handles(struct bench *b)
{
    uv_timer_init(&b->loop, &b->drain);
    uv_signal_init(&b->loop, &b->sigint);
    uv_signal_init(&b->loop, &b->sigterm);
    b->sigint.data = b->sigterm.data = b;
    uv_signal_start(&b->sigint, on_signal, SIGINT);
    uv_signal_start(&b->sigterm, on_signal, SIGTERM);
}

static int run(struct bench *b)
{
    struct load_opts lo = {
        .open_loop = b->o.open_loop,
        .rate = b->o.rate,
        .connections = b->o.connections,
        .warmup_ns = b->o.warmup_ms * 1000000ULL,
        .duration_ns = b->o.duration_ms * 1000000ULL,
        .timeout_ms = b->o.timeout_ms,
    };
    int err = setup(b, &lo);

    if (!err)
        err = load_start(&b->loop, &lo, b->payload, &b->tally, on_load_done, b, &b->load);
    if (!err)
        b->measure_start_ns = load_measure_start_ns(b->load);
    if (err)
        finish(b);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    return err;
}

/* duration_s is measured: from the end of the warm-up to the last measured answer. */
static void report(struct bench *b)
{
    uint64_t measure_start_ns = b->measure_start_ns;
    struct report r = {.opts = &b->o, .tally = &b->tally};

    r.completed = tally_finish(&b->tally);
    r.duration_s = (double)b->o.duration_ms / 1000.0;
    if (b->tally.last_answer_ns > measure_start_ns)
        r.duration_s = (double)(b->tally.last_answer_ns - measure_start_ns) / 1e9;
    report_print(&r);
}

int main(int argc, char **argv)
{
    static struct bench b; /* three 0.5 MB histograms: too big for the stack */
    int err;

    bench_opts_parse(argc, argv, &b.o);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    log_setup(LOG_LEVEL_WARN, false);
    uv_loop_init(&b.loop);
    init_handles(&b);
    tally_init(&b.tally, clock_wall_ms() * 1000, b.o.await, b.o.listen);
    err = run(&b);
    connector_free(b.connector);
    payload_free(b.payload);
    if (uv_loop_close(&b.loop) != 0)
        fprintf(stderr, "digest-bench: the loop did not close cleanly\n");
    if (!err)
        report(&b);
    tally_free(&b.tally);
    return err ? 1 : 0;
}
