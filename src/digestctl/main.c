/*
 * main.c: digestctl's entry point (SPEC §7). The command line is read in
 * one pass — options may come anywhere, before or after the command — then
 * the settings as digestd reads them (lib/config.c: defaults, --config
 * FILE, the environment; --redis and --prefix win over REDIS_URL and
 * DIGEST_PREFIX), then one connection and one command. Exit 0 ok, 1
 * failure (Redis unreachable, an unknown id, a check that fails), 2 usage.
 */
#include "ctl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "store/inspect.h"

extern char **environ;

struct command {
    const char *name;
    int (*run)(struct ctl *ctl);
    int positional;      /* 0, or 1 for the one argument it takes */
    const char *options; /* the command options it accepts, as they are spelled */
};

static const struct command commands[] = {
    {"stats", ctl_stats, 0, ""},
    {"watch", ctl_watch, 0, ""},
    {"procs", ctl_procs, 0, ""},
    {"pending", ctl_pending, 0, "--limit"},
    {"show", ctl_show, 1, ""},
    {"dead", ctl_dead, 0, "--limit"},
    {"requeue", ctl_requeue, 1, "--all-dead --yes"},
    {"trim", ctl_trim, 0, "--older-than"},
    {"consumers", ctl_consumers, 0, "--prune --idle"},
    {"check", ctl_check, 0, "--scale-to-zero"},
};

/* The settings digestctl reads (config_print_vars prints them as digestd --help does). */
static const char *const env_vars[] = {"REDIS_URL",
                                       "REDIS_TLS_CA_FILE",
                                       "REDIS_TLS_CERT_FILE",
                                       "REDIS_TLS_KEY_FILE",
                                       "DIGEST_PREFIX",
                                       "WORKER_CLAIM_IDLE_MS",
                                       NULL};

static void usage(FILE *out)
{
    fprintf(out, "usage: digestctl [options] <command> [command options]\n"
                 "       digestctl --help | --version\n");
}

static void help(void)
{
    printf("Usage: digestctl [options] <command> [command options]\n"
           "       digestctl --help | --version\n\n"
           "Inspects and repairs digestd's Redis queue (the same data as digestd's /admin/\n"
           "routes). Options may come anywhere on the line.\n\n"
           "Commands:\n"
           "  stats                     the queue at a glance and a verdict: healthy, backlog\n"
           "                            growing, stuck, or no consumers\n"
           "  watch                     stats redrawn every second; q or Ctrl-C quits\n"
           "  procs                     live digestd processes from their heartbeats; group\n"
           "                            consumers without one are shown as dead\n"
           "  pending [--limit N]       the oldest pending entries (default 20, at most 1000)\n"
           "  show <request-id>         one request: timeline, stream entry, pending state,\n"
           "                            dead entry, conversation reference\n"
           "  dead [--limit N]          the newest dead jobs and why they died\n"
           "  requeue <request-id>      put a dead job back on the stream\n"
           "  requeue --all-dead [--yes]  put every dead job back (asks first unless --yes)\n"
           "  trim --older-than DURATION  remove acknowledged entries older than DURATION,\n"
           "                            never unread or pending ones (exact MINID, stepped)\n"
           "  consumers [--prune] [--idle DURATION]  the group's consumers; --prune removes\n"
           "                            those holding nothing pending, without a live\n"
           "                            heartbeat, idle at least DURATION (default 0s)\n"
           "  check [--scale-to-zero]   the pre-rollout checklist; exit 0 only when every\n"
           "                            item holds (--scale-to-zero: no live worker is fine\n"
           "                            while nothing is unread or pending)\n\n"
           "Options:\n"
           "  --json                    print JSON for scripts (what /admin/ answers)\n"
           "  --redis URL               the Redis to use, in REDIS_URL's form\n"
           "  --prefix P                the key prefix (DIGEST_PREFIX)\n"
           "  --claim-idle DURATION     the workers' WORKER_CLAIM_IDLE_MS, for \"stuck\"\n"
           "  --config FILE             read KEY=VALUE lines as digestd --config does\n"
           "  --wide                    do not cut tables at 100 columns\n"
           "  --help                    print this help and exit\n"
           "  --version                 print the version and exit\n\n"
           "Durations: 500ms, 10s, 5m, 2h, 7d; a bare number is seconds.\n"
           "Exit status: 0 ok, 1 failure (Redis unreachable, no such request, a failed\n"
           "check item), 2 usage.\n\n"
           "Environment (read as digestd reads it; the options above win):\n");
    config_print_vars(env_vars);
}

static int usage_error(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* One line saying what is wrong, then the usage line: exit 2. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("digestctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    return CTL_USAGE;
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* "--name" or "--name=value": the value (borrowed) when the option matches, else NULL. */
static const char *value_of(int argc, char **argv, int *i, const char *name, bool *missing)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

/* A duration (SPEC §1) into *ms; false when it is not one (or zero when positive is asked). */
static bool duration(const char *v, bool positive, uint64_t *ms)
{
    return config_parse_duration_ms(v, ms) == 0 && (!positive || *ms > 0);
}

/* Options with a value; returns CTL_OK, CTL_USAGE, or -1 when argv[*i] is not one of them. */
static int value_option(struct ctl_opts *o, int argc, char **argv, int *i)
{
    static const char *const names[] = {"--redis",      "--prefix", "--config", "--claim-idle",
                                        "--older-than", "--idle",   "--limit"};
    bool missing = false;
    const char *v = NULL;
    size_t k;

    for (k = 0; k < ARRAY_SIZE(names) && !v && !missing; k++)
        v = value_of(argc, argv, i, names[k], &missing);
    if (missing)
        return usage_error("%s needs a value", argv[*i]);
    if (!v)
        return -1;
    switch (k - 1) {
    case 0:
        o->redis_url = v;
        return CTL_OK;
    case 1:
        o->prefix = v;
        return CTL_OK;
    case 2:
        o->config_file = v;
        return CTL_OK;
    case 3:
        o->have_claim_idle = true;
        return duration(v, true, &o->claim_idle_ms) ? CTL_OK
                                                    : usage_error("--claim-idle: expected a "
                                                                  "duration like 60s, got '%s'",
                                                                  v);
    case 4:
        o->have_older_than = true;
        return duration(v, true, &o->older_than_ms) ? CTL_OK
                                                    : usage_error("--older-than: expected a "
                                                                  "duration like 24h, got '%s'",
                                                                  v);
    case 5:
        o->have_idle = true;
        return duration(v, false, &o->idle_ms)
                   ? CTL_OK
                   : usage_error("--idle: expected a duration like 10m, got '%s'", v);
    default: {
        char *end;
        unsigned long n = strtoul(v, &end, 10);

        o->have_limit = true;
        o->limit = (unsigned)n;
        if (*v < '0' || *v > '9' || *end || n == 0 || n > INSPECT_MAX_LIMIT)
            return usage_error("--limit: expected a number 1..1000, got '%s'", v);
        return CTL_OK;
    }
    }
}

/* One pass over argv: options anywhere, the command and its one argument. */
static int parse_args(struct ctl_opts *o, int argc, char **argv)
{
    static const struct {
        const char *name;
        size_t off;
    } flags[] = {
        {"--json", offsetof(struct ctl_opts, json)},
        {"--wide", offsetof(struct ctl_opts, wide)},
        {"--all-dead", offsetof(struct ctl_opts, all_dead)},
        {"--yes", offsetof(struct ctl_opts, yes)},
        {"--prune", offsetof(struct ctl_opts, prune)},
        {"--scale-to-zero", offsetof(struct ctl_opts, scale_to_zero)},
    };

    o->limit = CTL_DEFAULT_LIMIT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool flag = false;
        int rc;

        for (size_t k = 0; k < ARRAY_SIZE(flags) && !flag; k++)
            if (strcmp(a, flags[k].name) == 0)
                flag = *(bool *)((char *)o + flags[k].off) = true;
        if (flag)
            continue;
        rc = value_option(o, argc, argv, &i);
        if (rc == CTL_USAGE)
            return rc;
        if (rc == CTL_OK)
            continue;
        if (a[0] == '-' && a[1] != '\0')
            return usage_error("unknown option '%s'", a);
        if (!o->command)
            o->command = a;
        else if (!o->arg)
            o->arg = a;
        else
            return usage_error("unexpected argument '%s'", a);
    }
    return CTL_OK;
}

/* The command's own options on another command are a mistake worth saying so. */
static int check_options(const struct ctl_opts *o, const struct command *cmd)
{
    const struct {
        bool given;
        const char *name;
    } own[] = {
        {o->have_limit, "--limit"},
        {o->all_dead, "--all-dead"},
        {o->yes, "--yes"},
        {o->have_older_than, "--older-than"},
        {o->prune, "--prune"},
        {o->have_idle, "--idle"},
        {o->scale_to_zero, "--scale-to-zero"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(own); i++)
        if (own[i].given && !strstr(cmd->options, own[i].name))
            return usage_error("%s does not apply to this command", own[i].name);
    if (cmd->positional == 0 && o->arg)
        return usage_error("unexpected argument '%s'", o->arg);
    if (strcmp(cmd->name, "show") == 0 && !o->arg)
        return usage_error("%s needs a request id", "show");
    if (strcmp(cmd->name, "requeue") == 0 && !o->arg == !o->all_dead)
        return usage_error("%s takes a request id or --all-dead", "requeue");
    if (strcmp(cmd->name, "trim") == 0 && !o->have_older_than)
        return usage_error("%s needs --older-than DURATION", "trim");
    if (o->have_idle && !o->prune)
        return usage_error("%s goes with --prune", "--idle");
    return CTL_OK;
}

/* The environment, with --redis and --prefix appended: read_env takes the last of a name. */
static char **environment(const struct ctl_opts *o, char **extra, size_t *n_extra)
{
    size_t n = 0;
    char **env;

    while (environ && environ[n])
        n++;
    env = xcalloc(n + 3, sizeof(*env));
    memcpy(env, environ, n * sizeof(*env));
    *n_extra = 0;
    if (o->redis_url) {
        size_t len = strlen("REDIS_URL=") + strlen(o->redis_url) + 1;
        extra[*n_extra] = xmalloc(len);
        snprintf(extra[*n_extra], len, "REDIS_URL=%s", o->redis_url);
        env[n++] = extra[(*n_extra)++];
    }
    if (o->prefix) {
        size_t len = strlen("DIGEST_PREFIX=") + strlen(o->prefix) + 1;
        extra[*n_extra] = xmalloc(len);
        snprintf(extra[*n_extra], len, "DIGEST_PREFIX=%s", o->prefix);
        env[n++] = extra[(*n_extra)++];
    }
    return env;
}

/* The settings; a bad one is one line naming it (as the option when it came from one), exit 2. */
static int load_config(struct ctl *ctl)
{
    char *extra[2], err[512];
    size_t n_extra, i;
    char **env = environment(&ctl->opts, extra, &n_extra);
    int rc = config_load(&ctl->cfg, ctl->opts.config_file, env, err, sizeof(err));

    for (i = 0; i < n_extra; i++)
        xfree(extra[i]);
    xfree(env);
    if (rc == 0) {
        if (ctl->opts.have_claim_idle)
            ctl->cfg.worker_claim_idle_ms = ctl->opts.claim_idle_ms;
        return CTL_OK;
    }
    if (ctl->opts.redis_url && strncmp(err, "REDIS_URL:", 10) == 0)
        fprintf(stderr, "digestctl: --redis%s\n", err + 9);
    else if (ctl->opts.prefix && strncmp(err, "DIGEST_PREFIX:", 14) == 0)
        fprintf(stderr, "digestctl: --prefix%s\n", err + 13);
    else
        fprintf(stderr, "digestctl: %s\n", err);
    return CTL_USAGE;
}

int main(int argc, char **argv)
{
    static struct ctl ctl;
    const struct command *cmd;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return CTL_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("digestctl %s\n", DIGESTD_VERSION);
            return CTL_OK;
        }
    }
    log_setup(LOG_LEVEL_WARN, false); /* config.c's warnings, as text on stderr */
    ctl.out = stdout;
    rc = parse_args(&ctl.opts, argc, argv);
    if (rc != CTL_OK)
        return rc;
    if (!ctl.opts.command)
        return usage_error("no command given");
    cmd = find_command(ctl.opts.command);
    if (!cmd)
        return usage_error("unknown command '%s'", ctl.opts.command);
    rc = check_options(&ctl.opts, cmd);
    if (rc == CTL_OK)
        rc = load_config(&ctl);
    if (rc == CTL_OK)
        rc = ctl_connect(&ctl);
    if (rc == CTL_OK)
        rc = cmd->run(&ctl);
    ctl_disconnect(&ctl);
    config_free(&ctl.cfg);
    return rc;
}
