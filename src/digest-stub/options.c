/*
 * options.c: digest-stub's option table, parser and --help. Defaults go
 * through the same setters as user values, so the help text cannot drift
 * from what is applied.
 */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"

#define CMD_BIT(c) (1u << (c))
#define SERVE CMD_BIT(STUB_CMD_SERVE)
#define SAY CMD_BIT(STUB_CMD_SAY)
#define TOKEN CMD_BIT(STUB_CMD_TOKEN)

/* Sets one option from text; returns NULL, or why the value is wrong. */
typedef const char *(*opt_set_fn)(struct stub_opts *o, const char *v);

struct opt_def {
    const char *name; /* "--listen" */
    const char *env;
    const char *metavar;
    const char *def; /* NULL: no default (or a computed one, said in help) */
    const char *help;
    opt_set_fn set;
    unsigned cmds;
};

/* Digits only: strtoull alone would take "-1", " 7" and "0x10". */
static const char *parse_u64(const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long n;

    if (*v < '0' || *v > '9')
        return "expected a whole number";
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno || *end || n > max)
        return "number out of range";
    *out = n;
    return NULL;
}

static const char *parse_duration(const char *v, uint64_t *out)
{
    return config_parse_duration_ms(v, out) ? "expected a duration such as 500ms, 10s or 5m" : NULL;
}

static const char *parse_url(const char *v)
{
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
        return "expected an http:// or https:// URL";
    return NULL;
}

/*
 * HOST:PORT with an IP literal, as digestd's DIGEST_LISTEN; the last colon
 * splits, so "[::1]:8000" works and a bare IPv6 address without brackets
 * does not (its last group would be read as the port).
 */
static const char *set_listen(struct stub_opts *o, const char *v)
{
    const char *colon = strrchr(v, ':'), *host = v, *why;
    size_t hlen = colon ? (size_t)(colon - v) : 0;
    unsigned char addr[16];
    uint64_t port;

    if (!colon || hlen == 0)
        return "expected HOST:PORT (an IP address and a port, 0 = any free port)";
    if (*v == '[' && hlen >= 2 && v[hlen - 1] == ']') {
        host = v + 1;
        hlen -= 2;
    }
    if (hlen >= sizeof(o->listen_host))
        return "host too long";
    memcpy(o->listen_host, host, hlen);
    o->listen_host[hlen] = '\0';
    if (uv_inet_pton(AF_INET, o->listen_host, addr) != 0 &&
        uv_inet_pton(AF_INET6, o->listen_host, addr) != 0)
        return "host must be an IPv4 or [IPv6] address";
    why = parse_u64(colon + 1, 65535, &port);
    if (why)
        return why;
    o->listen_port = (int)port;
    return NULL;
}

/*
 * "2s" or "5s-15s". Durations never contain '-', so the first dash splits;
 * both ends are inclusive.
 */
static const char *set_delay(struct stub_opts *o, const char *v)
{
    const char *dash = strchr(v, '-');
    char min[32];
    size_t n = dash ? (size_t)(dash - v) : strlen(v);

    if (n >= sizeof(min))
        return "expected DURATION or MIN-MAX, e.g. 2s or 5s-15s";
    memcpy(min, v, n);
    min[n] = '\0';
    if (parse_duration(min, &o->delay_min_ms))
        return "expected DURATION or MIN-MAX, e.g. 2s or 5s-15s";
    o->delay_max_ms = o->delay_min_ms;
    if (dash && parse_duration(dash + 1, &o->delay_max_ms))
        return "expected DURATION or MIN-MAX, e.g. 2s or 5s-15s";
    if (o->delay_max_ms < o->delay_min_ms)
        return "MAX is below MIN";
    return NULL;
}

static const char *set_failure_rate(struct stub_opts *o, const char *v)
{
    char *end;
    double r;

    errno = 0;
    r = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(r) || r < 0 || r > 1)
        return "expected a number from 0 to 1";
    o->failure_rate = r;
    return NULL;
}

static const char *set_items(struct stub_opts *o, const char *v)
{
    uint64_t n;
    const char *why = parse_u64(v, STUB_ITEMS_MAX, &n);

    if (!why)
        o->items = (unsigned)n;
    return why ? "expected a number of items from 0 to 100" : NULL;
}

static const char *set_seed(struct stub_opts *o, const char *v)
{
    return parse_u64(v, UINT64_MAX, &o->seed);
}

/* expires_in is whole seconds, so anything below a second would read as 0. */
static const char *set_token_ttl(struct stub_opts *o, const char *v)
{
    if (parse_duration(v, &o->token_ttl_ms) || o->token_ttl_ms < 1000)
        return "expected a duration of at least 1s";
    return NULL;
}

static const char *set_connector_auth(struct stub_opts *o, const char *v)
{
    if (strcmp(v, "check") != 0 && strcmp(v, "off") != 0)
        return "expected check or off";
    o->connector_auth = strcmp(v, "check") == 0;
    return NULL;
}

static const char *set_outbox_max(struct stub_opts *o, const char *v)
{
    uint64_t n;

    if (parse_u64(v, 1000000, &n) || n == 0)
        return "expected a number from 1 to 1000000";
    o->outbox_max = (unsigned)n;
    return NULL;
}

static const char *set_key_dir(struct stub_opts *o, const char *v)
{
    if (!*v)
        return "expected a directory";
    o->key_dir = v;
    return NULL;
}

static const char *set_app_id(struct stub_opts *o, const char *v)
{
    if (!*v || strlen(v) > 200)
        return "expected the bot's Microsoft App ID";
    o->app_id = v;
    return NULL;
}

static const char *set_to(struct stub_opts *o, const char *v)
{
    o->to = v;
    return parse_url(v);
}

static const char *set_stub_url(struct stub_opts *o, const char *v)
{
    o->stub_url = v;
    return parse_url(v);
}

static const char *set_service_url(struct stub_opts *o, const char *v)
{
    o->service_url = v;
    return parse_url(v);
}

static const char *set_conversation(struct stub_opts *o, const char *v)
{
    return conv_kind_parse(v, &o->conversation) ? "expected personal, channel or group" : NULL;
}

static const char *set_conversation_id(struct stub_opts *o, const char *v)
{
    o->conversation_id = v;
    return *v ? NULL : "expected a conversation id";
}

static const char *set_activity_id(struct stub_opts *o, const char *v)
{
    o->activity_id = v;
    return *v ? NULL : "expected an activity id";
}

static const char *set_timeout(struct stub_opts *o, const char *v)
{
    if (parse_duration(v, &o->timeout_ms) || o->timeout_ms == 0)
        return "expected a duration above 0, e.g. 30s";
    return NULL;
}

static const char *set_ttl(struct stub_opts *o, const char *v)
{
    if (parse_duration(v, &o->ttl_ms) || o->ttl_ms < 1000)
        return "expected a duration of at least 1s";
    return NULL;
}

/* A signed whole number of seconds, e.g. -301 (SECONDS, not a duration: it may be negative). */
static const char *parse_i64(const char *v, int64_t *out)
{
    char *end;
    long long n;

    if (!((*v >= '0' && *v <= '9') || (*v == '-' && v[1] >= '0' && v[1] <= '9')))
        return "expected a whole number of seconds, e.g. -301";
    errno = 0;
    n = strtoll(v, &end, 10);
    /* Bounded to ±100 years so that now + offset cannot overflow. */
    if (errno || *end || n > 3155760000LL || n < -3155760000LL)
        return "number of seconds out of range";
    *out = n;
    return NULL;
}

/*
 * "msteams,skype" into the key's endorsements; "" publishes an empty list
 * and "-" none at all. The list is copied because entries are cut at commas.
 */
static const char *set_endorsements(struct stub_opts *o, const char *v)
{
    char *p, *comma;

    o->n_endorsements = 0;
    o->has_endorsements = strcmp(v, "-") != 0;
    if (!o->has_endorsements || !*v)
        return NULL;
    if (strlen(v) >= sizeof(o->endorsements_buf))
        return "list too long";
    memcpy(o->endorsements_buf, v, strlen(v) + 1);
    for (p = o->endorsements_buf; p; p = comma ? comma + 1 : NULL) {
        comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!*p || o->n_endorsements == STUB_MAX_ENDORSEMENTS)
            return "expected up to 16 comma-separated channel ids, \"\" or -";
        o->endorsements[o->n_endorsements++] = p;
    }
    return NULL;
}

static const char *set_aud(struct stub_opts *o, const char *v)
{
    o->tok_aud = v;
    return NULL;
}

static const char *set_iss(struct stub_opts *o, const char *v)
{
    o->tok_iss = v;
    return NULL;
}

static const char *set_kid(struct stub_opts *o, const char *v)
{
    o->tok_kid = v;
    return NULL;
}

static const char *set_alg(struct stub_opts *o, const char *v)
{
    static const char *const names[] = {"RS256", "RS384", "RS512", "HS256", "none"};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(v, names[i]) == 0) {
            o->tok_alg = (enum stub_tok_alg)i;
            return NULL;
        }
    }
    return "expected RS256, RS384, RS512, HS256 or none";
}

static const char *set_exp_offset(struct stub_opts *o, const char *v)
{
    o->has_exp_offset = true;
    return parse_i64(v, &o->exp_offset_s);
}

static const char *set_nbf_offset(struct stub_opts *o, const char *v)
{
    return parse_i64(v, &o->nbf_offset_s);
}

/* A flag of the token command: any value but "1"/"true" would be a typo. */
static const char *parse_flag(const char *v, bool *out)
{
    if (strcmp(v, "1") != 0 && strcmp(v, "true") != 0)
        return "a flag: give it without a value";
    *out = true;
    return NULL;
}

static const char *set_no_serviceurl(struct stub_opts *o, const char *v)
{
    return parse_flag(v, &o->no_serviceurl);
}

static const char *set_bad_signature(struct stub_opts *o, const char *v)
{
    return parse_flag(v, &o->bad_signature);
}

/*
 * Every option of every command. A setter used for two commands (key-dir,
 * app-id) is one entry with two bits, so serve and say cannot disagree on
 * a default.
 */
static const struct opt_def opts[] = {
    {"--listen", "DIGEST_STUB_LISTEN", "HOST:PORT", STUB_DEFAULT_LISTEN,
     "where to listen; port 0 picks a free one (the first stdout line names it)", set_listen,
     SERVE},
    {"--upstream-delay", "DIGEST_STUB_UPSTREAM_DELAY", "MIN[-MAX]", "0",
     "digest reply delay, uniform in [MIN, MAX] (the real service takes 5s-15s)", set_delay, SERVE},
    {"--upstream-failure-rate", "DIGEST_STUB_UPSTREAM_FAILURE_RATE", "0..1", "0",
     "share of digest requests answered 500", set_failure_rate, SERVE},
    {"--upstream-items", "DIGEST_STUB_UPSTREAM_ITEMS", "N", "5", "candidates per digest (0-100)",
     set_items, SERVE},
    {"--seed", "DIGEST_STUB_SEED", "N", "1",
     "seed of the digest content, delays and failures (same seed, same content)", set_seed, SERVE},
    {"--token-ttl", "DIGEST_STUB_TOKEN_TTL", "DURATION", "3600s",
     "expires_in of issued bot tokens; the connector refuses them after that", set_token_ttl,
     SERVE},
    {"--connector-auth", "DIGEST_STUB_CONNECTOR_AUTH", "check|off", "check",
     "check: the connector answers 401 unless the bearer token is one we issued and unexpired",
     set_connector_auth, SERVE},
    {"--outbox-max", "DIGEST_STUB_OUTBOX_MAX", "N", "1000",
     "connector messages kept for GET /stub/outbox (oldest dropped)", set_outbox_max, SERVE},
    {"--key-dir", "DIGEST_STUB_KEY_DIR", "DIR", NULL,
     "development signing key (created on first use); default /tmp/digest-stub-keys-<uid>",
     set_key_dir, SERVE | SAY | TOKEN},
    {"--app-id", "DIGEST_STUB_APP_ID", "ID", STUB_DEFAULT_APP_ID,
     "the bot's App ID: token client_id, JWT aud, recipient 28:<ID> (else MICROSOFT_APP_ID)",
     set_app_id, SERVE | SAY | TOKEN},
    {"--to", "DIGEST_STUB_TO", "URL", "http://127.0.0.1:3978/api/messages",
     "where to POST the activity", set_to, SAY},
    {"--stub", "DIGEST_STUB_URL", "URL", "http://127.0.0.1:8000",
     "the running stub, whose connector gets the replies", set_stub_url, SAY | TOKEN},
    {"--service-url", "DIGEST_STUB_SERVICE_URL", "URL", NULL,
     "the activity's serviceUrl and the JWT serviceurl claim; default <stub>/", set_service_url,
     SAY | TOKEN},
    {"--conversation", "DIGEST_STUB_CONVERSATION", "KIND", "personal",
     "personal, channel or group (research fixtures a, b, c)", set_conversation, SAY},
    {"--conversation-id", NULL, "ID", NULL, "replace the kind's usual conversation id",
     set_conversation_id, SAY},
    {"--id", NULL, "ACTIVITY_ID", NULL, "activity id; default a fresh Teams-like number",
     set_activity_id, SAY},
    {"--timeout", "DIGEST_STUB_TIMEOUT", "DURATION", "60s", "give up waiting for the answer",
     set_timeout, SAY},
    {"--ttl", NULL, "DURATION", "3600s", "lifetime of the printed token: exp = now + DURATION",
     set_ttl, TOKEN},
    {"--endorsements", "DIGEST_STUB_ENDORSEMENTS", "LIST", "msteams",
     "channels the JWKS key endorses, comma-separated; \"\" = [] (none), - = no property (all)",
     set_endorsements, SERVE},
    {"--aud", NULL, "ID", NULL, "the token's aud claim; default the app id", set_aud, TOKEN},
    {"--iss", NULL, "ISSUER", "https://api.botframework.com", "the token's iss claim", set_iss,
     TOKEN},
    {"--exp-offset", NULL, "SECONDS", NULL,
     "exp = now + SECONDS, negative = already expired (overrides --ttl)", set_exp_offset, TOKEN},
    {"--nbf-offset", NULL, "SECONDS", "-5", "nbf = iat = now + SECONDS", set_nbf_offset, TOKEN},
    {"--kid", NULL, "KID", NULL, "the header's kid; default the key's RFC 7638 thumbprint", set_kid,
     TOKEN},
    {"--alg", NULL, "ALG", "RS256",
     "RS256, RS384, RS512 (signed so), HS256 (HMAC keyed with the public key's PEM) or none "
     "(empty signature)",
     set_alg, TOKEN},
    {"--no-serviceurl", NULL, "", NULL, "leave the serviceurl claim out (a flag)",
     set_no_serviceurl, TOKEN},
    {"--bad-signature", NULL, "", NULL, "change one character of the signature (a flag)",
     set_bad_signature, TOKEN},
};

static const char *const cmd_names[] = {"serve", "say", "token"};

static void print_help(void)
{
    size_t i;
    int c;

    printf("usage: digest-stub [serve] [OPTIONS]          the outside world on loopback\n"
           "       digest-stub say \"TEXT\" [OPTIONS]      send a signed Teams activity\n"
           "       digest-stub token [OPTIONS]           print a signed Bot Framework JWT\n"
           "       digest-stub --help | --version\n");
    for (c = STUB_CMD_SERVE; c <= STUB_CMD_TOKEN; c++) {
        printf("\n%s options (value from the option, else the variable, else the default):\n",
               cmd_names[c]);
        for (i = 0; i < ARRAY_SIZE(opts); i++) {
            const struct opt_def *d = &opts[i];
            if (!(d->cmds & CMD_BIT(c)))
                continue;
            printf("  %s%s%s\n      %s", d->name, *d->metavar ? " " : "", d->metavar, d->help);
            if (d->env)
                printf("\n      env %s", d->env);
            printf("%s%s\n", d->def ? "; default " : "", d->def ? d->def : "");
        }
    }
    printf("\nDurations: 500ms, 10s, 5m, 2h, 7d (a bare number is seconds).\n"
           "Routes, output formats and injection: see the comment at the top of "
           "src/stub_serve.c.\n");
}

/* One line naming the option or variable, then exit 2 (SPEC §1). */
static void fail(const char *what, const char *why, const char *value)
{
    fprintf(stderr, "%s: %s, got '%s'\n", what, why, value);
    exit(2);
}

/* Applies the defaults, then the environment, of one command's options. */
static void apply_defaults_and_env(struct stub_opts *o)
{
    const char *v, *why;
    size_t i;

    snprintf(o->key_dir_buf, sizeof(o->key_dir_buf), "/tmp/digest-stub-keys-%lu",
             (unsigned long)getuid());
    o->key_dir = o->key_dir_buf;
    for (i = 0; i < ARRAY_SIZE(opts); i++) {
        if (opts[i].def && opts[i].set(o, opts[i].def))
            abort(); /* a default that its own setter refuses is a bug */
    }
    /* digestd's variable, so one environment can configure both. */
    v = getenv("MICROSOFT_APP_ID");
    if (v && *v && (why = set_app_id(o, v)))
        fail("MICROSOFT_APP_ID", why, v);
    for (i = 0; i < ARRAY_SIZE(opts); i++) {
        if (!(opts[i].cmds & CMD_BIT(o->cmd)) || !opts[i].env)
            continue;
        v = getenv(opts[i].env);
        if (v && (why = opts[i].set(o, v)))
            fail(opts[i].env, why, v);
    }
}

/* The option named by arg[0..len), if the command takes it. */
static const struct opt_def *find_opt(const char *arg, size_t len, enum stub_cmd cmd)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(opts); i++) {
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, arg, len) == 0 &&
            (opts[i].cmds & CMD_BIT(cmd)))
            return &opts[i];
    }
    return NULL;
}

/* Parses the options after the command word; `say` takes one TEXT operand. */
static void parse_argv(int argc, char **argv, int first, struct stub_opts *o)
{
    int i;

    for (i = first; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '='), *v, *why;
        const struct opt_def *d;

        if (strncmp(a, "--", 2) != 0) {
            if (o->cmd == STUB_CMD_SAY && !o->text) {
                o->text = a;
                continue;
            }
            fail(cmd_names[o->cmd], "unexpected argument", a);
        }
        d = find_opt(a, eq ? (size_t)(eq - a) : strlen(a), o->cmd);
        if (!d)
            fail(cmd_names[o->cmd], "unknown option", a);
        /* Flags (an empty metavar) take no separate value: "--bad-signature". */
        if (!*d->metavar && !eq) {
            why = d->set(o, "1");
            if (why)
                fail(d->name, why, "");
            continue;
        }
        if (!eq && i + 1 >= argc)
            fail(d->name, "missing value", "");
        v = eq ? eq + 1 : argv[++i];
        why = d->set(o, v);
        if (why)
            fail(d->name, why, v);
    }
}

void stub_opts_parse(int argc, char **argv, struct stub_opts *o)
{
    int i, first = 1;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help();
            exit(0);
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("digest-stub %s\n", DIGESTD_VERSION);
            exit(0);
        }
    }
    memset(o, 0, sizeof(*o));
    o->cmd = STUB_CMD_SERVE;
    for (i = STUB_CMD_SERVE; argc > 1 && i <= STUB_CMD_TOKEN; i++) {
        if (strcmp(argv[1], cmd_names[i]) == 0) {
            o->cmd = (enum stub_cmd)i;
            first = 2;
        }
    }
    apply_defaults_and_env(o);
    parse_argv(argc, argv, first, o);
    if (o->cmd == STUB_CMD_SAY && (!o->text || !*o->text))
        fail("say", "expected the message text, e.g. digest-stub say \"digest advisors\"",
             o->text ? o->text : "");
    if (!o->service_url) {
        size_t n = strlen(o->stub_url);
        snprintf(o->service_url_buf, sizeof(o->service_url_buf), "%s%s", o->stub_url,
                 n && o->stub_url[n - 1] == '/' ? "" : "/");
        o->service_url = o->service_url_buf;
    }
}
