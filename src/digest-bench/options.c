/*
 * options.c: one table drives parsing and --help, so the two cannot
 * disagree (as digest-stub's options do).
 */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "core/common.h"
#include "teams/activity_build.h"

#define MAX_CONNECTIONS 60000
#define MAX_RATE 1000000.0

struct option {
    const char *name, *arg, *def, *help;
    const char *(*set)(struct bench_opts *o, const char *v); /* NULL or why v is bad */
};

/* One line naming what is wrong, then exit 2 (SPEC §1). */
static void usage_fail(const char *what, const char *why, const char *value)
{
    if (value)
        fprintf(stderr, "digest-bench: %s: %s, got '%s'\n", what, why, value);
    else
        fprintf(stderr, "digest-bench: %s: %s\n", what, why);
    exit(2);
}

static const char *parse_uint(const char *v, unsigned long lo, unsigned long hi, unsigned *out)
{
    char *end;
    unsigned long x;

    errno = 0;
    if (*v < '0' || *v > '9')
        return "expected a whole number";
    x = strtoul(v, &end, 10);
    if (*end || errno || x < lo || x > hi)
        return "expected a whole number in range";
    *out = (unsigned)x;
    return NULL;
}

static const char *parse_duration(const char *v, uint64_t *out)
{
    return config_parse_duration_ms(v, out) == 0
               ? NULL
               : "expected a duration like 500ms, 10s, 5m, 2h, 7d (a bare number is seconds)";
}

/* host:port with a numeric port; [v6]:port. */
static const char *split_host_port(const char *v, char *host, size_t size, int *port, bool need)
{
    const char *colon, *h = v, *end;
    size_t n;
    unsigned p = 0;

    if (*v == '[') {
        end = strchr(v, ']');
        if (!end || (end[1] != ':' && end[1] != '\0' && end[1] != '/'))
            return "expected [IPv6]:PORT";
        h = v + 1;
        n = (size_t)(end - h);
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = strrchr(v, ':');
        n = colon ? (size_t)(colon - v) : strlen(v);
    }
    if (n == 0 || n >= size)
        return "expected a host name or address";
    memcpy(host, h, n);
    host[n] = '\0';
    if (!colon && need)
        return "expected HOST:PORT";
    *port = 0;
    if (colon && parse_uint(colon + 1, 0, 65535, &p))
        return "expected a port number 0-65535";
    *port = colon ? (int)p : 80;
    return NULL;
}

static const char *set_target(struct bench_opts *o, const char *v)
{
    const char *rest, *slash;
    char hostport[300];
    size_t n;

    if (strncmp(v, "https://", 8) == 0)
        return "https targets are not supported (digest-bench has no TLS client)";
    if (strncmp(v, "http://", 7) != 0)
        return "expected a full URL, http://HOST[:PORT]/PATH";
    rest = v + 7;
    slash = strchr(rest, '/');
    n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= sizeof(hostport) || strlen(slash ? slash : "/") >= sizeof(o->path))
        return "expected a full URL, http://HOST[:PORT]/PATH";
    memcpy(hostport, rest, n);
    hostport[n] = '\0';
    if (split_host_port(hostport, o->host, sizeof(o->host), &o->port, false) || o->port == 0)
        return "expected a full URL, http://HOST[:PORT]/PATH";
    snprintf(o->host_header, sizeof(o->host_header), "%s", hostport);
    snprintf(o->path, sizeof(o->path), "%s", slash ? slash : "/");
    o->target = v;
    return NULL;
}

static const char *set_connections(struct bench_opts *o, const char *v)
{
    return parse_uint(v, 1, MAX_CONNECTIONS, &o->connections);
}

static const char *set_rate(struct bench_opts *o, const char *v)
{
    char *end;
    double r;

    errno = 0;
    r = strtod(v, &end);
    if (*v < '0' || *v > '9' || *end || errno || !isfinite(r) || r <= 0 || r > MAX_RATE)
        return "expected requests a second, a number above 0 (up to 1000000)";
    o->rate = r;
    o->open_loop = true;
    return NULL;
}

static const char *set_duration(struct bench_opts *o, const char *v)
{
    const char *why = parse_duration(v, &o->duration_ms);

    return why ? why : o->duration_ms == 0 ? "must be longer than 0" : NULL;
}

static const char *set_warmup(struct bench_opts *o, const char *v)
{
    return parse_duration(v, &o->warmup_ms);
}

static const char *set_timeout(struct bench_opts *o, const char *v)
{
    const char *why = parse_duration(v, &o->timeout_ms);

    return why ? why : o->timeout_ms == 0 ? "must be longer than 0" : NULL;
}

static const char *set_drain(struct bench_opts *o, const char *v)
{
    return parse_duration(v, &o->drain_ms);
}

static const char *set_listen(struct bench_opts *o, const char *v)
{
    o->listen = true;
    return split_host_port(v, o->listen_host, sizeof(o->listen_host), &o->listen_port, true);
}

static const char *set_service_url(struct bench_opts *o, const char *v)
{
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return "expected a full http(s) URL";
    o->service_url = v;
    return NULL;
}

static const char *set_await(struct bench_opts *o, const char *v)
{
    static const char *const names[] = {"none", "ack", "result"};

    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(v, names[i]) == 0) {
            o->await = (enum tally_await)i;
            return NULL;
        }
    }
    return "expected none, ack or result";
}

static const char *set_key_dir(struct bench_opts *o, const char *v)
{
    o->key_dir = v;
    return *v ? NULL : "expected a directory";
}

static const char *set_app_id(struct bench_opts *o, const char *v)
{
    o->app_id = v;
    return *v && strlen(v) < 200 ? NULL : "expected the bot's App ID";
}

static const char *set_conversations(struct bench_opts *o, const char *v)
{
    return parse_uint(v, 1, 100000000, &o->conversations);
}

/* A comma-separated list of personal, channel, group. */
static const char *set_shapes(struct bench_opts *o, const char *v)
{
    char item[16];
    enum conv_kind k;
    const char *p = v;

    o->shapes = 0;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof(item))
            return "expected a list of personal, channel, group";
        memcpy(item, p, n);
        item[n] = '\0';
        if (conv_kind_parse(item, &k) != 0)
            return "expected a list of personal, channel, group";
        o->shapes |= 1u << k;
        p += n + (p[n] == ',');
    }
    return o->shapes ? NULL : "expected a list of personal, channel, group";
}

static const char *set_text(struct bench_opts *o, const char *v)
{
    o->text = v;
    return *v && strlen(v) < 1024 ? NULL : "expected the message text";
}

static const struct option opts[] = {
    {"--target", "URL", NULL, "where to POST the activities, a full http:// URL (required)",
     set_target},
    {"--connections", "N", "50",
     "closed loop: N connections, each sending when its last request is answered; with --rate: "
     "the most open at once (default 1000 then)",
     set_connections},
    {"--rate", "R", NULL,
     "open loop: R requests a second on schedule, latency counted from each one's due time",
     set_rate},
    {"--duration", "DURATION", "10s", "how long the measured part lasts", set_duration},
    {"--warmup", "DURATION", "2s", "sent before the measured part, left out of the report",
     set_warmup},
    {"--timeout", "DURATION", "10s", "longest wait for a webhook answer", set_timeout},
    {"--connector-listen", "HOST:PORT", NULL,
     "be the Bot Framework connector, its token endpoint and its OpenID keys on HOST:PORT, and "
     "measure the acknowledgment and result cards (port 0: any free port)",
     set_listen},
    {"--service-url", "URL", "the connector's URL, else " BENCH_DEFAULT_SERVICE_URL,
     "the activities' serviceUrl (and the token's serviceurl claim)", set_service_url},
    {"--await", "none|ack|result", "result with --connector-listen, else none",
     "the cards a request needs to count as completed", set_await},
    {"--drain", "DURATION", "30s", "after the last answer, the longest wait for awaited cards",
     set_drain},
    {"--key-dir", "DIR", "/tmp/digest-stub-keys-<uid>, as digest-stub",
     "the development signing key (DIR/"
     "dev-signing-key.pem, made when missing)",
     set_key_dir},
    {"--app-id", "ID", BENCH_DEFAULT_APP_ID " (or MICROSOFT_APP_ID)",
     "the bot's App ID: the token's aud and the activities' recipient", set_app_id},
    {"--conversations", "N", "20000",
     "conversations (one user each) the requests rotate over; Teams paces each conversation",
     set_conversations},
    {"--shapes", "LIST", "personal,channel,group", "activity shapes sent in turn", set_shapes},
    {"--text", "TEXT", "digest advisors", "what the user types", set_text},
};

static void print_help(void)
{
    printf("usage: digest-bench --target URL [--connections N | --rate R] [OPTIONS]\n"
           "       digest-bench --help | --version\n\n"
           "Posts realistic, signed Teams activities to a bot and reports the webhook answer's\n"
           "latency, and with --connector-listen the time to its acknowledgment and result\n"
           "cards: p50/p90/p99/p99.9/max, throughput and errors by kind (SPEC section 8).\n\n"
           "Options:\n");
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
        printf("  %s %s\n      %s", opts[i].name, opts[i].arg, opts[i].help);
        if (opts[i].def)
            printf(" [default: %s]", opts[i].def);
        printf("\n");
    }
    printf("  --json\n      print one JSON object (SPEC section 8) instead of the table\n"
           "  --help, --version\n\n"
           "Durations: 500ms, 10s, 5m, 2h, 7d; a bare number is seconds.\n\n"
           "Environment:\n"
           "  MICROSOFT_APP_ID\n      the App ID when --app-id is not given [default: %s]\n\n"
           "Exit status: 0 the run finished (its errors are in the report), 1 it could not\n"
           "run, 2 bad usage.\n",
           BENCH_DEFAULT_APP_ID);
}

/* The defaults of --help; MICROSOFT_APP_ID is read here so --app-id can still override it. */
static void defaults(struct bench_opts *o)
{
    const char *env = getenv("MICROSOFT_APP_ID");

    memset(o, 0, sizeof(*o));
    o->duration_ms = 10000;
    o->warmup_ms = 2000;
    o->timeout_ms = 10000;
    o->drain_ms = 30000;
    o->await = TALLY_AWAIT_NONE;
    snprintf(o->key_dir_buf, sizeof(o->key_dir_buf), "/tmp/digest-stub-keys-%lu",
             (unsigned long)getuid());
    o->key_dir = o->key_dir_buf;
    o->app_id = BENCH_DEFAULT_APP_ID;
    if (env && *env && set_app_id(o, env))
        usage_fail("MICROSOFT_APP_ID", "expected the bot's App ID", env);
    o->conversations = 20000;
    o->shapes = 7;
    o->text = "digest advisors";
}

static const struct option *find(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    }
    return NULL;
}

/* Reads argv; returns which of --connections and --await were given. */
static void parse_argv(int argc, char **argv, struct bench_opts *o, bool *conns, bool *await)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '='), *v, *why;
        const struct option *opt;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            usage_fail(a, "unexpected argument (every option starts with --)", NULL);
        opt = find(a, eq ? (size_t)(eq - a) : strlen(a));
        if (!opt)
            usage_fail(a, "unknown option", NULL);
        if (!eq && i + 1 >= argc)
            usage_fail(opt->name, "needs a value", NULL);
        v = eq ? eq + 1 : argv[++i];
        why = opt->set(o, v);
        if (why)
            usage_fail(opt->name, why, v);
        *conns |= opt->set == set_connections;
        *await |= opt->set == set_await;
    }
}

/* --help and --version win wherever they stand, before any value is checked. */
void bench_opts_parse(int argc, char **argv, struct bench_opts *o)
{
    bool conns = false, await = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help();
            exit(0);
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("digest-bench %s\n", DIGESTD_VERSION);
            exit(0);
        }
    }
    defaults(o);
    parse_argv(argc, argv, o, &conns, &await);
    if (!o->target)
        usage_fail("--target", "required: the URL to POST activities to", NULL);
    if (!conns)
        o->connections = o->open_loop ? 1000 : 50;
    if (!await)
        o->await = o->listen ? TALLY_AWAIT_RESULT : TALLY_AWAIT_NONE;
    if (o->await != TALLY_AWAIT_NONE && !o->listen)
        usage_fail("--await", "cards can only be awaited with --connector-listen", NULL);
}
