/*
 * test_config.c: config.c against SPEC §2. The expected defaults and the
 * list of variable names are written out here from the SPEC, not taken from
 * config.c's table, so a row that drifts from the SPEC fails a test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "config.h"

#define ERR_MAX 512

/* Owned, NULL-terminated copy of a list of "KEY=VALUE" strings ending in NULL. */
static char **env_vmake(va_list ap)
{
    char **env = NULL;
    size_t n = 0;
    const char *s;

    while ((s = va_arg(ap, const char *)) != NULL) {
        env = xrealloc(env, (n + 2) * sizeof(*env));
        env[n++] = xstrdup(s);
    }
    env = xrealloc(env, (n + 1) * sizeof(*env));
    env[n] = NULL;
    return env;
}

static void env_free(char **env)
{
    for (size_t i = 0; env[i]; i++)
        xfree(env[i]);
    xfree(env);
}

/* config_load with file (may be NULL) and the environment given as varargs. */
static int load(struct config *cfg, const char *file, char *err, ...)
{
    va_list ap;
    char **env;
    int rc;

    va_start(ap, err);
    env = env_vmake(ap);
    va_end(ap);
    rc = config_load(cfg, file, env, err, ERR_MAX);
    env_free(env);
    return rc;
}

/* Writes text to a fresh file under /tmp; path receives its name. */
static void write_tmp(char *path, size_t n, const char *text)
{
    int fd;

    snprintf(path, n, "/tmp/test_config.XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

static void assert_list(const struct config_list *l, const char *const *want, size_t n)
{
    assert_int_equal(l->len, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l->items[i], want[i]);
}

static void check_spec_defaults(const struct config *c)
{
    static const char *const audiences[] = {"advisors", "c_suite", "global"};
    static const char *const allow[] = {"smba.trafficmanager.net",
                                        "smba.infra.gcc.teams.microsoft.com",
                                        "smba.infra.gov.teams.microsoft.us"};

    assert_int_equal(c->role, ROLE_ALL);
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 3978);
    assert_string_equal(c->redis_url, "redis://127.0.0.1:6379/0");
    assert_int_equal(c->redis_kind, REDIS_TCP);
    assert_string_equal(c->redis_host, "127.0.0.1");
    assert_int_equal(c->redis_port, 6379);
    assert_null(c->redis_path);
    assert_null(c->redis_password);
    assert_int_equal(c->redis_db, 0);
    assert_string_equal(c->prefix, "digest");
    assert_true(c->use_async_digest);
    assert_int_equal(c->async_percent, 100);
    assert_string_equal(c->async_mode, "true");
    assert_int_equal(c->async_allow.len, 0);
    assert_string_equal(c->upstream_url,
                        "http://127.0.0.1:8000/api/talentwell/digest?audience={audience}");
    assert_list(&c->audiences, audiences, 3);
    assert_null(c->app_id);
    assert_null(c->app_password);
    assert_string_equal(c->tenant_id, "botframework.com");
    assert_string_equal(c->token_url,
                        "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token");
    assert_string_equal(c->openid_url,
                        "https://login.botframework.com/v1/.well-known/openidconfiguration");
    assert_int_equal(c->bot_auth, BOT_AUTH_JWT);
    assert_list(&c->service_url_allow, allow, 3);
    assert_null(c->admin_token);
    assert_int_equal(c->connector_retry_after_max_s, 300);
    assert_int_equal(c->worker_concurrency, 256);
    assert_int_equal(c->worker_max_attempts, 5);
    assert_int_equal(c->worker_claim_idle_ms, 60000);
    assert_int_equal(c->worker_claim_interval_ms, 5000);
    assert_int_equal(c->retry_base_ms, 1000);
    assert_int_equal(c->retry_max_ms, 60000);
    assert_int_equal(c->jwks_min_refresh_s, 300);
    assert_int_equal(c->upstream_timeout_ms, 30000);
    assert_int_equal(c->connector_timeout_ms, 15000);
    assert_int_equal(c->max_body_bytes, 262144);
    assert_int_equal(c->max_header_bytes, 16384);
    assert_int_equal(c->header_timeout_ms, 10000);
    assert_int_equal(c->idle_timeout_ms, 60000);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->dedup_ttl_s, 86400);
    assert_int_equal(c->request_ttl_s, 604800);
    assert_int_equal(c->stream_retention_ms, 24 * 3600 * 1000);
    assert_int_equal(c->dead_max_len, 10000);
    assert_int_equal(c->dead_retention_ms, 30ULL * 86400 * 1000);
    assert_int_equal(c->shutdown_grace_ms, 10000);
    assert_int_equal(c->log_level, LOG_LEVEL_INFO);
    assert_true(c->log_json);
}

/* config_defaults and a load with nothing set both give SPEC §2 to the letter. */
static void test_defaults_match_spec(void **state)
{
    struct config cfg;
    char err[ERR_MAX];

    config_defaults(&cfg);
    check_spec_defaults(&cfg);
    config_free(&cfg);

    /* Loading with nothing set, and with unrelated variables, gives the same. */
    assert_int_equal(config_load(&cfg, NULL, NULL, err, sizeof(err)), 0);
    check_spec_defaults(&cfg);
    config_free(&cfg);
    assert_int_equal(load(&cfg, NULL, err, "PATH=/bin", "HOME=/root", "NOEQUALS", NULL), 0);
    check_spec_defaults(&cfg);
    config_free(&cfg);
}

/* Every variable set to a non-default value lands in its field (and only there). */
static void test_every_variable_parsed(void **state)
{
    static const char *const audiences[] = {"alpha", "b-2"};
    static const char *const allow[] = {"localhost", "127.0.0.1"};
    static const char *const async_allow[] = {"29:1Ab", "msteams:a:X"}; /* case kept */
    struct config c;
    char err[ERR_MAX];
    int rc;

    rc =
        load(&c, NULL, err, "DIGEST_LISTEN=0.0.0.0:0", "REDIS_URL=redis://:pw@cache:6380/3",
             "DIGEST_PREFIX=dq", "USE_ASYNC_DIGEST=false", "ASYNC_DIGEST_ALLOW=29:1Ab, msteams:a:X",
             "DIGEST_UPSTREAM_URL=https://up.example/d?a={audience}", "DIGEST_AUDIENCES=alpha,b-2",
             "MICROSOFT_APP_ID=app-id", "MICROSOFT_APP_PASSWORD=secret",
             "MICROSOFT_APP_TENANT_ID=tenant1", "BOT_TOKEN_URL=http://127.0.0.1:9/{tenant}/token",
             "BOT_OPENID_URL=http://127.0.0.1:9/openid", "BOT_AUTH=off",
             "SERVICE_URL_ALLOW=localhost,127.0.0.1", "ADMIN_TOKEN=0123456789abcdef",
             "CONNECTOR_RETRY_AFTER_MAX_S=2m", "WORKER_CONCURRENCY=7", "WORKER_MAX_ATTEMPTS=9",
             "WORKER_CLAIM_IDLE_MS=1234", "WORKER_CLAIM_INTERVAL_MS=222", "RETRY_BASE_MS=10",
             "RETRY_MAX_MS=20", "JWKS_MIN_REFRESH_S=60", "UPSTREAM_TIMEOUT_MS=30s",
             "CONNECTOR_TIMEOUT_MS=1500", "MAX_BODY_BYTES=1024", "MAX_HEADER_BYTES=2048",
             "HEADER_TIMEOUT_MS=250", "IDLE_TIMEOUT_MS=2m", "MAX_CONNECTIONS=3", "DEDUP_TTL_S=1d",
             "REQUEST_TTL_S=2", "STREAM_RETENTION=90", "DEAD_MAX_LEN=12", "DEAD_RETENTION=2h",
             "SHUTDOWN_GRACE_MS=5", "LOG_LEVEL=DEBUG", "LOG_FORMAT=text", NULL);
    if (rc != 0)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 0);
    assert_string_equal(c.redis_host, "cache");
    assert_int_equal(c.redis_port, 6380);
    assert_string_equal(c.redis_password, "pw");
    assert_int_equal(c.redis_db, 3);
    assert_string_equal(c.prefix, "dq");
    assert_false(c.use_async_digest);
    assert_int_equal(c.async_percent, 0);
    assert_string_equal(c.async_mode, "false");
    assert_list(&c.async_allow, async_allow, 2);
    assert_string_equal(c.upstream_url, "https://up.example/d?a={audience}");
    assert_list(&c.audiences, audiences, 2);
    assert_string_equal(c.app_id, "app-id");
    assert_string_equal(c.app_password, "secret");
    assert_string_equal(c.tenant_id, "tenant1");
    assert_string_equal(c.token_url, "http://127.0.0.1:9/tenant1/token");
    assert_string_equal(c.openid_url, "http://127.0.0.1:9/openid");
    assert_int_equal(c.bot_auth, BOT_AUTH_OFF);
    assert_list(&c.service_url_allow, allow, 2);
    assert_string_equal(c.admin_token, "0123456789abcdef");
    assert_int_equal(c.connector_retry_after_max_s, 120);
    assert_int_equal(c.worker_concurrency, 7);
    assert_int_equal(c.worker_max_attempts, 9);
    assert_int_equal(c.worker_claim_idle_ms, 1234);
    assert_int_equal(c.worker_claim_interval_ms, 222);
    assert_int_equal(c.retry_base_ms, 10);
    assert_int_equal(c.retry_max_ms, 20);
    assert_int_equal(c.jwks_min_refresh_s, 60);
    assert_int_equal(c.upstream_timeout_ms, 30000);
    assert_int_equal(c.connector_timeout_ms, 1500);
    assert_int_equal(c.max_body_bytes, 1024);
    assert_int_equal(c.max_header_bytes, 2048);
    assert_int_equal(c.header_timeout_ms, 250);
    assert_int_equal(c.idle_timeout_ms, 120000);
    assert_int_equal(c.max_connections, 3);
    assert_int_equal(c.dedup_ttl_s, 86400);
    assert_int_equal(c.request_ttl_s, 2);
    assert_int_equal(c.stream_retention_ms, 90000); /* a bare number is seconds (SPEC §1) */
    assert_int_equal(c.dead_max_len, 12);
    assert_int_equal(c.dead_retention_ms, 2 * 3600 * 1000);
    assert_int_equal(c.shutdown_grace_ms, 5);
    assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
    assert_false(c.log_json);
    config_free(&c);
}

/* true/false, 1/0, yes/no in any case, and the rollout's N% (SPEC §2). */
static void test_bool_spellings(void **state)
{
    static const struct {
        const char *env;
        bool want;
        unsigned percent;
        const char *mode; /* what the heartbeat shows */
    } cases[] = {
        {"USE_ASYNC_DIGEST=true", true, 100, "true"},
        {"USE_ASYNC_DIGEST=TRUE", true, 100, "true"},
        {"USE_ASYNC_DIGEST=1", true, 100, "true"},
        {"USE_ASYNC_DIGEST=Yes", true, 100, "true"},
        {"USE_ASYNC_DIGEST=false", false, 0, "false"},
        {"USE_ASYNC_DIGEST=False", false, 0, "false"},
        {"USE_ASYNC_DIGEST=0", false, 0, "false"},
        {"USE_ASYNC_DIGEST=NO", false, 0, "false"},
        {"USE_ASYNC_DIGEST=0%", true, 0, "0%"},
        {"USE_ASYNC_DIGEST=10%", true, 10, "10%"},
        {"USE_ASYNC_DIGEST=50%", true, 50, "50%"},
        {"USE_ASYNC_DIGEST=100%", true, 100, "100%"},
        {"USE_ASYNC_DIGEST=7%", true, 7, "7%"},
        {"USE_ASYNC_DIGEST=007%", true, 7, "7%"},
    };
    struct config c;
    char err[ERR_MAX];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        assert_int_equal(load(&c, NULL, err, cases[i].env, NULL), 0);
        assert_int_equal(c.use_async_digest, cases[i].want);
        assert_int_equal(c.async_percent, cases[i].percent);
        assert_string_equal(c.async_mode, cases[i].mode);
        config_free(&c);
    }
}

/* One bad value: the error names the variable first and says what is wrong. */
struct bad_case {
    const char *env;
    const char *want;  /* a substring of the error after "NAME: " */
    const char *never; /* a substring that must not appear (secrets), or NULL */
};

static const struct bad_case bad_cases[] = {
    {"DIGEST_LISTEN=abc", "expected host:port", NULL},
    {"DIGEST_LISTEN=abc", "got 'abc'", NULL},
    {"DIGEST_LISTEN=127.0.0.1:70000", "expected host:port", NULL},
    {"DIGEST_LISTEN=::1:3978", "expected host:port", NULL},
    {"DIGEST_LISTEN=[::1]", "expected host:port", NULL},
    {"DIGEST_LISTEN=[nothost]:1", "expected host:port", NULL},
    {"DIGEST_LISTEN=host:12abc", "expected host:port", NULL},
    {"DIGEST_LISTEN=:3978", "expected host:port", NULL},
    {"DIGEST_LISTEN=", "must not be empty", NULL},
    {"REDIS_URL=http://h:6379/0", "expected redis://", NULL},
    {"REDIS_URL=redis://h:0/0", "port must be 1-65535", NULL},
    {"REDIS_URL=redis://h:6379/x", "database must be a number", NULL},
    {"REDIS_URL=redis://h:6379/1?timeout=3", "database must be a number", NULL},
    {"REDIS_URL=redis://us%zzer:hunter2@h", "bad %XX escape in the user", "hunter2"},
    {"REDIS_URL=rediss://:topsecret@h:0", "port must be 1-65535", "topsecret"},
    {"REDIS_URL=redisss://h", "expected redis://", NULL},
    {"REDIS_TLS_CA_FILE=/nonexistent/ca.pem", "cannot read '/nonexistent/ca.pem'", NULL},
    {"REDIS_TLS_CERT_FILE=/nonexistent/c.pem", "cannot read", NULL},
    {"REDIS_TLS_KEY_FILE=/nonexistent/k.pem", "cannot read", NULL},
    {"REDIS_TLS_KEY_FILE=/dev/null", "needs REDIS_TLS_CERT_FILE", NULL},
    {"REDIS_URL=redis://:@h", "password after ':' is empty", NULL},
    {"REDIS_URL=redis://:sec%zzret@h", "bad %XX escape", "sec"},
    {"REDIS_URL=redis://:sec%00ret@h", "bad %XX escape", "sec"},
    {"REDIS_URL=redis://:topsecret@", "expected a host name", "topsecret"},
    {"REDIS_URL=unix://relative.sock", "expected unix:///path", NULL},
    {"REDIS_URL=unix:///tmp/r.sock?foo=1", "expected ?db=N", NULL},
    {"DIGEST_PREFIX={x}", "no braces or white space", NULL},
    {"DIGEST_PREFIX=a b", "no braces or white space", NULL},
    {"DIGEST_PREFIX=a\tb", "control character", NULL},
    {"DIGEST_PREFIX=", "must not be empty", NULL},
    {"USE_ASYNC_DIGEST=maybe", "expected true, false or a percentage of users 0%-100%", NULL},
    {"USE_ASYNC_DIGEST=101%", "expected true, false or a percentage", NULL},
    {"USE_ASYNC_DIGEST=1000%", "expected true, false or a percentage", NULL},
    {"USE_ASYNC_DIGEST=30", "got '30'", NULL},
    {"USE_ASYNC_DIGEST=30.5%", "expected true, false or a percentage", NULL},
    {"USE_ASYNC_DIGEST=-5%", "expected true, false or a percentage", NULL},
    {"USE_ASYNC_DIGEST=%", "expected true, false or a percentage", NULL},
    {"USE_ASYNC_DIGEST=30 %", "expected true, false or a percentage", NULL},
    {"USE_ASYNC_DIGEST=30%%", "expected true, false or a percentage", NULL},
    {"USE_ASYNC_DIGEST=", "must not be empty", NULL},
    {"ASYNC_DIGEST_ALLOW=a,,b", "without empty entries", NULL},
    {"ASYNC_DIGEST_ALLOW=a,", "without empty entries", NULL},
    {"ASYNC_DIGEST_ALLOW=29:1a 29:1b", "holds white space", NULL},
    {"DIGEST_UPSTREAM_URL=ftp://h/{audience}", "expected an http:// or https:// URL", NULL},
    {"DIGEST_UPSTREAM_URL=http://h/digest", "containing {audience}", NULL},
    {"DIGEST_UPSTREAM_URL=http:///x{audience}", "expected an http:// or https:// URL", NULL},
    {"DIGEST_AUDIENCES=a,,b", "without empty entries", NULL},
    {"DIGEST_AUDIENCES=a,A", "'a' is listed twice", NULL},
    {"DIGEST_AUDIENCES=a b", "is not an audience", NULL},
    {"DIGEST_AUDIENCES=", "must not be empty", NULL},
    {"MICROSOFT_APP_PASSWORD=pa\nss", "control character", "pa"},
    {"MICROSOFT_APP_ID=a\rb", "control character", NULL},
    {"MICROSOFT_APP_TENANT_ID=a/b", "expected a tenant id", NULL},
    {"BOT_TOKEN_URL=not-a-url", "expected an http:// or https:// URL", NULL},
    {"BOT_TOKEN_URL=https://user:pw@h/{tenant}", "expected an http:// or https:// URL", NULL},
    {"BOT_OPENID_URL=https://h:99999/x", "expected an http:// or https:// URL", NULL},
    {"BOT_OPENID_URL=https://", "expected an http:// or https:// URL", NULL},
    {"BOT_OPENID_URL=http://login.botframework.com/v1/.well-known/openidconfiguration",
     "plain http only to a loopback host", NULL},
    {"BOT_TOKEN_URL=http://10.0.0.1/{tenant}/token", "plain http only to a loopback host", NULL},
    {"BOT_AUTH=none", "expected jwt or off", NULL},
    {"SERVICE_URL_ALLOW=https://a.com", "no scheme", NULL},
    {"SERVICE_URL_ALLOW=a.com:443", "no port", NULL},
    {"SERVICE_URL_ALLOW=*.a.com", "no wildcards", NULL},
    {"SERVICE_URL_ALLOW=a..b", "not a host name", NULL},
    {"SERVICE_URL_ALLOW=.", "not a host name", NULL},
    {"SERVICE_URL_ALLOW=a.com,", "without empty entries", NULL},
    {"ADMIN_TOKEN=short", "at least 16 characters", "short"},
    {"ADMIN_TOKEN=0123456789abcdef 01", "white space", "0123"},
    {"CONNECTOR_RETRY_AFTER_MAX_S=0", "must be 1..3600 s", NULL},
    {"CONNECTOR_RETRY_AFTER_MAX_S=2h", "must be 1..3600 s", NULL},
    {"CONNECTOR_RETRY_AFTER_MAX_S=2500ms", "expected whole seconds", NULL},
    {"WORKER_CONCURRENCY=0", "must be 1..100000", NULL},
    {"WORKER_CONCURRENCY=100001", "must be 1..100000", NULL},
    {"WORKER_CONCURRENCY=12abc", "expected a whole number", NULL},
    {"WORKER_CONCURRENCY=-1", "expected a whole number", NULL},
    {"WORKER_CONCURRENCY= 5", "expected a whole number", NULL},
    {"WORKER_CONCURRENCY=99999999999999999999999", "must be 1..100000", NULL},
    {"WORKER_CONCURRENCY=", "must not be empty", NULL},
    {"WORKER_MAX_ATTEMPTS=101", "must be 1..100", NULL},
    {"WORKER_CLAIM_IDLE_MS=0", "must be 1..", NULL},
    {"WORKER_CLAIM_INTERVAL_MS=soon", "expected milliseconds", NULL},
    {"RETRY_BASE_MS=0", "must be 1..", NULL},
    {"RETRY_MAX_MS=500", "must be >= RETRY_BASE_MS (1000)", NULL},
    {"JWKS_MIN_REFRESH_S=1500ms", "expected whole seconds", NULL},
    {"JWKS_MIN_REFRESH_S=0", "must be 1..86400 s", NULL},
    {"UPSTREAM_TIMEOUT_MS=0", "must be 1..3600000 ms", NULL},
    {"UPSTREAM_TIMEOUT_MS=2h", "must be 1..3600000 ms", NULL},
    {"UPSTREAM_TIMEOUT_MS=30x", "expected milliseconds", NULL},
    {"UPSTREAM_TIMEOUT_MS=1.5s", "expected milliseconds", NULL},
    {"UPSTREAM_TIMEOUT_MS=99999999999999999999d", "must be 1..3600000 ms", NULL},
    {"CONNECTOR_TIMEOUT_MS=-5", "expected milliseconds", NULL},
    {"MAX_BODY_BYTES=1023", "must be 1024..67108864", NULL},
    {"MAX_BODY_BYTES=67108865", "must be 1024..67108864", NULL},
    {"MAX_HEADER_BYTES=1048577", "must be 1024..1048576", NULL},
    {"HEADER_TIMEOUT_MS=0", "must be 1..", NULL},
    {"IDLE_TIMEOUT_MS=2d", "must be 1..86400000 ms", NULL},
    {"MAX_CONNECTIONS=0", "must be 1..1000000", NULL},
    {"DEDUP_TTL_S=0", "must be 1..", NULL},
    {"REQUEST_TTL_S=366d", "must be 1..31536000 s", NULL},
    {"STREAM_RETENTION=500ms", "must be 1s..365d", NULL},
    {"STREAM_RETENTION=1w", "expected a duration", NULL},
    {"STREAM_RETENTION=366d", "must be 1s..365d", NULL},
    {"DEAD_MAX_LEN=0", "must be 1..10000000", NULL},
    {"DEAD_MAX_LEN=10k", "expected a whole number", NULL},
    {"DEAD_RETENTION=-1d", "expected a duration", NULL},
    {"DEAD_RETENTION=3651d", "must be 1s..3650d", NULL},
    {"SHUTDOWN_GRACE_MS=0", "must be 1..", NULL},
    {"LOG_LEVEL=verbose", "expected debug, info, warn or error", NULL},
    {"LOG_FORMAT=xml", "expected json or text", NULL},
};

static void check_bad_case(const struct bad_case *bc)
{
    struct config c;
    char err[ERR_MAX], prefix[128];
    const char *eq = strchr(bc->env, '=');
    int rc = load(&c, NULL, err, bc->env, NULL);
    bool ok;

    snprintf(prefix, sizeof(prefix), "%.*s: ", (int)(eq - bc->env), bc->env);
    ok = rc == DG_ERR_CONFIG && strncmp(err, prefix, strlen(prefix)) == 0 &&
         strstr(err + strlen(prefix), bc->want) && !strchr(err, '\n') &&
         !(bc->never && strstr(err + strlen(prefix), bc->never));
    if (!ok)
        print_error("case '%s': rc %d, err '%s', wanted '%s'\n", bc->env, rc, err, bc->want);
    config_free(&c);
    assert_true(ok);
}

/* Each bad value: DG_ERR_CONFIG, one line, "NAME: what is wrong". */
static void test_bad_values_name_the_variable(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++)
        check_bad_case(&bad_cases[i]);
}

/* Guards the table above: a SPEC variable without a bad-value case fails here. */
static void test_every_variable_has_a_bad_case(void **state)
{
    /* Only the two free-form optional strings accept (almost) anything. */
    static const char *const names[] = {
        "DIGEST_LISTEN",
        "REDIS_URL",
        "REDIS_TLS_CA_FILE",
        "REDIS_TLS_CERT_FILE",
        "REDIS_TLS_KEY_FILE",
        "DIGEST_PREFIX",
        "USE_ASYNC_DIGEST",
        "ASYNC_DIGEST_ALLOW",
        "DIGEST_UPSTREAM_URL",
        "DIGEST_AUDIENCES",
        "MICROSOFT_APP_ID",
        "MICROSOFT_APP_PASSWORD",
        "MICROSOFT_APP_TENANT_ID",
        "BOT_TOKEN_URL",
        "BOT_OPENID_URL",
        "BOT_AUTH",
        "SERVICE_URL_ALLOW",
        "ADMIN_TOKEN",
        "CONNECTOR_RETRY_AFTER_MAX_S",
        "WORKER_CONCURRENCY",
        "WORKER_MAX_ATTEMPTS",
        "WORKER_CLAIM_IDLE_MS",
        "WORKER_CLAIM_INTERVAL_MS",
        "RETRY_BASE_MS",
        "RETRY_MAX_MS",
        "JWKS_MIN_REFRESH_S",
        "UPSTREAM_TIMEOUT_MS",
        "CONNECTOR_TIMEOUT_MS",
        "MAX_BODY_BYTES",
        "MAX_HEADER_BYTES",
        "HEADER_TIMEOUT_MS",
        "IDLE_TIMEOUT_MS",
        "MAX_CONNECTIONS",
        "DEDUP_TTL_S",
        "REQUEST_TTL_S",
        "STREAM_RETENTION",
        "DEAD_MAX_LEN",
        "DEAD_RETENTION",
        "SHUTDOWN_GRACE_MS",
        "LOG_LEVEL",
        "LOG_FORMAT",
    };

    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        size_t len = strlen(names[i]);
        bool found = false;
        for (size_t j = 0; !found && j < ARRAY_SIZE(bad_cases); j++)
            found = strncmp(bad_cases[j].env, names[i], len) == 0 && bad_cases[j].env[len] == '=';
        if (!found)
            print_error("no bad-value case for %s\n", names[i]);
        assert_true(found);
    }
}

/* Optional strings: an empty value is the same as no value (not an error). */
static void test_empty_optional_means_unset(void **state)
{
    struct config c;
    char err[ERR_MAX];

    assert_int_equal(load(&c, NULL, err, "ADMIN_TOKEN=", "MICROSOFT_APP_ID=",
                          "MICROSOFT_APP_PASSWORD=", "ASYNC_DIGEST_ALLOW=", NULL),
                     0);
    assert_int_equal(c.async_allow.len, 0);
    assert_null(c.admin_token);
    assert_null(c.app_id);
    assert_null(c.app_password);
    config_free(&c);
}

/* Comments, blank lines, trimming, both quotes, CRLF, repeats, env over file. */
static void test_file(void **state)
{
    static const char text[] = "# a comment\n"
                               "\n"
                               "   \t\n"
                               "  DIGEST_LISTEN = 0.0.0.0:8080  \n"
                               "DIGEST_PREFIX=\"dq\"\n"
                               "LOG_LEVEL='warn'\r\n"
                               "MICROSOFT_APP_PASSWORD=\" p#ss = word \"\n"
                               "MICROSOFT_APP_ID=id#1\n"
                               "WORKER_CONCURRENCY=10\n"
                               "WORKER_MAX_ATTEMPTS=2\n"
                               "WORKER_MAX_ATTEMPTS=3\n"
                               "  # indented comment\n"
                               "ADMIN_TOKEN=";
    char path[64], err[ERR_MAX];
    struct config c;
    int rc;

    write_tmp(path, sizeof(path), text);
    rc = load(&c, path, err, "WORKER_CONCURRENCY=20", NULL);
    if (rc != 0)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 8080);
    assert_string_equal(c.prefix, "dq");
    assert_int_equal(c.log_level, LOG_LEVEL_WARN);
    assert_string_equal(c.app_password, " p#ss = word ");
    assert_string_equal(c.app_id, "id#1");
    assert_int_equal(c.worker_concurrency, 20); /* the environment wins */
    assert_int_equal(c.worker_max_attempts, 3); /* the later line wins */
    assert_null(c.admin_token);
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6379/0"); /* untouched default */
    config_free(&c);
    unlink(path);
}

/* Loads text as a --config file and expects an error containing each of want[]. */
static void check_file_error(const char *text, const char *const *want, size_t n)
{
    char path[64], err[ERR_MAX], line[80];
    struct config c;
    int rc;

    write_tmp(path, sizeof(path), text);
    rc = load(&c, path, err, NULL);
    config_free(&c);
    unlink(path);
    if (rc != DG_ERR_CONFIG || !strstr(err, path))
        print_error("file '%s': rc %d, err '%s'\n", text, rc, err);
    assert_int_equal(rc, DG_ERR_CONFIG);
    assert_non_null(strstr(err, path));
    for (size_t i = 0; i < n; i++) {
        snprintf(line, sizeof(line), "%s", want[i]);
        if (!strstr(err, line))
            print_error("file '%s': err '%s' lacks '%s'\n", text, err, line);
        assert_non_null(strstr(err, line));
    }
}

/* File errors name the path and line; a bad value names the variable first. */
static void test_file_errors(void **state)
{
    static const char *const unknown[] = {":3: unknown key 'NOT_A_SETTING'"};
    static const char *const no_eq[] = {":2: expected KEY=VALUE"};
    static const char *const quote[] = {":1: DIGEST_PREFIX: unterminated quote"};
    static const char *const bad[] = {"DIGEST_LISTEN: expected host:port", "got 'abc'", ":2)"};
    static const char *const lower[] = {"unknown key 'digest_prefix'"};

    check_file_error("# x\nDIGEST_PREFIX=a\nNOT_A_SETTING=1\n", unknown, 1);
    check_file_error("DIGEST_PREFIX=a\njust words\n", no_eq, 1);
    check_file_error("DIGEST_PREFIX=\"abc\n", quote, 1);
    check_file_error("DIGEST_PREFIX=a\nDIGEST_LISTEN=abc\n", bad, 3);
    check_file_error("digest_prefix=a\n", lower, 1);
}

static void test_file_bad_value_overridden_by_env(void **state)
{
    char path[64], err[ERR_MAX];
    struct config c;

    /* The environment wins before anything is parsed, so a bad file value it replaces is moot. */
    write_tmp(path, sizeof(path), "DIGEST_LISTEN=abc\n");
    assert_int_equal(load(&c, path, err, "DIGEST_LISTEN=127.0.0.1:1", NULL), 0);
    assert_int_equal(c.listen_port, 1);
    config_free(&c);
    unlink(path);
}

/* A --config that cannot be opened is an error naming the path and the reason. */
static void test_missing_file(void **state)
{
    static const char path[] = "/tmp/test_config.does-not-exist.conf";
    char err[ERR_MAX];
    struct config c;

    unlink(path);
    assert_int_equal(load(&c, path, err, NULL), DG_ERR_CONFIG);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file"));
    config_free(&c);
}

/* SPEC §1 durations; garbage, signs, fractions and overflow are refused, out untouched. */
static void test_durations(void **state)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {
        {"500ms", 500},    {"10s", 10000},
        {"5m", 300000},    {"2h", 7200000},
        {"7d", 604800000}, {"0", 0},
        {"3", 3000},       {"007s", 7000},
        {"0ms", 0},        {"18446744073709551615ms", UINT64_MAX},
    };
    static const char *const bad[] = {
        "",
        "-1",
        "+1",
        "1.5s",
        "10 s",
        " 10s",
        "10s ",
        "s",
        "ms",
        "10S",
        "10sec",
        "1w",
        "12abc",
        "10ms5",
        "18446744073709551616",
        "18446744073709551615s",
        "213503982335d",
        "0x10",
    };
    uint64_t ms;

    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        ms = 42;
        assert_int_equal(config_parse_duration_ms(good[i].s, &ms), 0);
        assert_true(ms == good[i].ms);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        ms = 42;
        if (config_parse_duration_ms(bad[i], &ms) >= 0)
            print_error("duration '%s' accepted\n", bad[i]);
        assert_true(config_parse_duration_ms(bad[i], &ms) < 0);
        assert_true(ms == 42);
    }
}

/* Loads one REDIS_URL that must parse. */
static void load_redis(struct config *c, const char *url)
{
    char env[256], err[ERR_MAX];
    int rc;

    snprintf(env, sizeof(env), "REDIS_URL=%s", url);
    rc = load(c, NULL, err, env, NULL);
    if (rc != 0)
        print_error("%s: %s\n", url, err);
    assert_int_equal(rc, 0);
    assert_string_equal(c->redis_url, url);
}

/* Every REDIS_URL shape: defaults, password (escaped and raw), user, IPv6, unix. */
static void test_redis_url_forms(void **state)
{
    struct config c;

    load_redis(&c, "redis://cache");
    assert_int_equal(c.redis_kind, REDIS_TCP);
    assert_string_equal(c.redis_host, "cache");
    assert_int_equal(c.redis_port, 6379);
    assert_int_equal(c.redis_db, 0);
    assert_null(c.redis_password);
    config_free(&c);

    load_redis(&c, "redis://:p%40ss%2Fw@10.0.0.2:6380/2");
    assert_string_equal(c.redis_password, "p@ss/w");
    assert_string_equal(c.redis_host, "10.0.0.2");
    assert_int_equal(c.redis_port, 6380);
    assert_int_equal(c.redis_db, 2);
    config_free(&c);

    /* '+' is a plus in user info, not a space. */
    load_redis(&c, "redis://:a+b%2B@h");
    assert_string_equal(c.redis_password, "a+b+");
    config_free(&c);

    /* A raw '@' in the password: the last '@' ends the user info. */
    load_redis(&c, "redis://:a@b@h/");
    assert_string_equal(c.redis_password, "a@b");
    assert_string_equal(c.redis_host, "h");
    assert_int_equal(c.redis_db, 0);
    config_free(&c);

    /* Redis 6 ACL user:password: both kept, for AUTH user password. */
    load_redis(&c, "redis://default:pw@h:1/15");
    assert_string_equal(c.redis_user, "default");
    assert_string_equal(c.redis_password, "pw");
    assert_false(c.redis_tls);
    assert_string_equal(c.redis_host, "h");
    assert_int_equal(c.redis_port, 1);
    assert_int_equal(c.redis_db, 15);
    config_free(&c);

    /* rediss:// is the same form over TLS; a user alone is a nopass ACL user. */
    load_redis(&c, "rediss://app%2Dworker:s%3Acret@cache.redis.cache.windows.net:6380/0");
    assert_true(c.redis_tls);
    assert_int_equal(c.redis_kind, REDIS_TCP);
    assert_string_equal(c.redis_user, "app-worker");
    assert_string_equal(c.redis_password, "s:cret");
    assert_string_equal(c.redis_host, "cache.redis.cache.windows.net");
    assert_int_equal(c.redis_port, 6380);
    config_free(&c);

    load_redis(&c, "rediss://reader@h");
    assert_true(c.redis_tls);
    assert_string_equal(c.redis_user, "reader");
    assert_null(c.redis_password);
    assert_int_equal(c.redis_port, 6379);
    config_free(&c);

    load_redis(&c, "redis://[::1]:6379/1");
    assert_string_equal(c.redis_host, "::1");
    assert_int_equal(c.redis_db, 1);
    config_free(&c);

    load_redis(&c, "unix:///run/redis/redis.sock");
    assert_int_equal(c.redis_kind, REDIS_UNIX);
    assert_string_equal(c.redis_path, "/run/redis/redis.sock");
    assert_null(c.redis_host);
    assert_int_equal(c.redis_db, 0);
    config_free(&c);

    load_redis(&c, "unix:///tmp/r.sock?db=4");
    assert_string_equal(c.redis_path, "/tmp/r.sock");
    assert_int_equal(c.redis_db, 4);
    config_free(&c);
}

/* The TLS files: readable ones kept, an empty value unset, the key alone refused. */
static void test_redis_tls_files(void **state)
{
    struct config c;
    char err[ERR_MAX];

    assert_int_equal(load(&c, NULL, err, "REDIS_URL=rediss://:pw@h:6380",
                          "REDIS_TLS_CA_FILE=/dev/null", "REDIS_TLS_CERT_FILE=/dev/null",
                          "REDIS_TLS_KEY_FILE=", NULL),
                     0);
    assert_true(c.redis_tls);
    assert_string_equal(c.redis_tls_ca_file, "/dev/null");
    assert_string_equal(c.redis_tls_cert_file, "/dev/null");
    assert_null(c.redis_tls_key_file);
    config_free(&c);
}

/* IPv6 listen addresses lose their brackets; names are kept as given. */
static void test_listen_forms(void **state)
{
    struct config c;
    char err[ERR_MAX];

    assert_int_equal(load(&c, NULL, err, "DIGEST_LISTEN=[::1]:3978", NULL), 0);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 3978);
    config_free(&c);
    assert_int_equal(load(&c, NULL, err, "DIGEST_LISTEN=localhost:65535", NULL), 0);
    assert_string_equal(c.listen_host, "localhost");
    assert_int_equal(c.listen_port, 65535);
    config_free(&c);
}

/* {tenant} is replaced everywhere, and only when present. */
static void test_tenant_substitution(void **state)
{
    struct config c;
    char err[ERR_MAX];

    assert_int_equal(load(&c, NULL, err, "MICROSOFT_APP_TENANT_ID=contoso.onmicrosoft.com", NULL),
                     0);
    assert_string_equal(
        c.token_url, "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
    config_free(&c);

    assert_int_equal(load(&c, NULL, err, "BOT_TOKEN_URL=http://127.0.0.1:9/{tenant}/x/{tenant}",
                          "MICROSOFT_APP_TENANT_ID=t-1", NULL),
                     0);
    assert_string_equal(c.token_url, "http://127.0.0.1:9/t-1/x/t-1");
    config_free(&c);

    assert_int_equal(load(&c, NULL, err, "BOT_TOKEN_URL=http://127.0.0.1:9/token", NULL), 0);
    assert_string_equal(c.token_url, "http://127.0.0.1:9/token");
    config_free(&c);
}

/* Entries are trimmed and lowercased; IPv6 brackets dropped to match parsed hosts. */
static void test_service_url_allow(void **state)
{
    static const char *const want[] = {"smba.example.com", ".teams.microsoft.us", "10.0.0.1", "::1",
                                       "localhost"};
    struct config c;
    char err[ERR_MAX];

    assert_int_equal(load(&c, NULL, err,
                          "SERVICE_URL_ALLOW=SMBA.Example.COM, .Teams.Microsoft.US ,10.0.0.1,"
                          "[::1],LocalHost",
                          NULL),
                     0);
    assert_list(&c.service_url_allow, want, ARRAY_SIZE(want));
    config_free(&c);
}

/* Audiences are trimmed and lowercased; config_audience_ok is exact. */
static void test_audiences(void **state)
{
    static const char *const want[] = {"advisors", "c_suite", "x-1"};
    struct config c;
    char err[ERR_MAX];

    assert_int_equal(load(&c, NULL, err, "DIGEST_AUDIENCES= Advisors ,C_Suite,x-1", NULL), 0);
    assert_list(&c.audiences, want, ARRAY_SIZE(want));
    assert_true(config_audience_ok(&c, "advisors"));
    assert_true(config_audience_ok(&c, "x-1"));
    assert_false(config_audience_ok(&c, "Advisors"));
    assert_false(config_audience_ok(&c, "global"));
    assert_false(config_audience_ok(&c, ""));
    assert_false(config_audience_ok(&c, NULL));
    config_free(&c);
}

/* --role words; a bad one leaves the previous value. */
static void test_role(void **state)
{
    enum config_role r = ROLE_API;

    assert_int_equal(config_parse_role("all", &r), 0);
    assert_int_equal(r, ROLE_ALL);
    assert_int_equal(config_parse_role("api", &r), 0);
    assert_int_equal(r, ROLE_API);
    assert_int_equal(config_parse_role("Worker", &r), 0);
    assert_int_equal(r, ROLE_WORKER);
    assert_int_equal(config_parse_role("both", &r), DG_ERR_CONFIG);
    assert_int_equal(config_parse_role("", &r), DG_ERR_CONFIG);
    assert_int_equal(r, ROLE_WORKER);
}

/* Runs config_print_help with stdout sent to a temporary file; returns the text (owned). */
static void print_digestd_help(void)
{
    config_print_help("digestd");
}

static void print_some_vars(void)
{
    static const char *const names[] = {"REDIS_URL", "STREAM_RETENTION", NULL};

    config_print_vars(names);
}

/* What print writes to stdout (owned). */
static char *capture(void (*print)(void))
{
    char path[64], *text;
    struct buf b;
    char chunk[1024];
    size_t got;
    FILE *f;
    int saved, fd;

    write_tmp(path, sizeof(path), "");
    fflush(stdout);
    saved = dup(1);
    fd = open(path, O_WRONLY);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, 1), 1);
    print();
    fflush(stdout);
    assert_int_equal(dup2(saved, 1), 1);
    close(fd);
    close(saved);
    f = fopen(path, "r");
    assert_non_null(f);
    buf_init(&b, 1024 * 1024);
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(buf_append(&b, chunk, got), 0);
    fclose(f);
    unlink(path);
    text = buf_take(&b);
    return text;
}

/* SPEC §1: --help names every option and every variable with its default. */
static void test_help_lists_everything(void **state)
{
    /* SPEC §1 options and SPEC §2 "NAME=default" (– for the unset ones). */
    static const char *const want[] = {
        "--help",
        "--version",
        "--config FILE",
        "--role all|api|worker",
        "DIGEST_LISTEN=127.0.0.1:3978",
        "REDIS_URL=redis://127.0.0.1:6379/0",
        "REDIS_TLS_CA_FILE=(unset)",
        "REDIS_TLS_CERT_FILE=(unset)",
        "REDIS_TLS_KEY_FILE=(unset)",
        "DIGEST_PREFIX=digest",
        "USE_ASYNC_DIGEST=true",
        "ASYNC_DIGEST_ALLOW=(unset)",
        "DIGEST_UPSTREAM_URL=http://127.0.0.1:8000/api/talentwell/digest?audience={audience}",
        "DIGEST_AUDIENCES=advisors,c_suite,global",
        "MICROSOFT_APP_ID=(unset)",
        "MICROSOFT_APP_PASSWORD=(unset)",
        "MICROSOFT_APP_TENANT_ID=botframework.com",
        "BOT_TOKEN_URL=https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        "BOT_OPENID_URL=https://login.botframework.com/v1/.well-known/openidconfiguration",
        "BOT_AUTH=jwt",
        ("SERVICE_URL_ALLOW=smba.trafficmanager.net,smba.infra.gcc.teams.microsoft.com,"
         "smba.infra.gov.teams.microsoft.us"),
        "ADMIN_TOKEN=(unset)",
        "CONNECTOR_RETRY_AFTER_MAX_S=300",
        "WORKER_CONCURRENCY=256",
        "WORKER_MAX_ATTEMPTS=5",
        "WORKER_CLAIM_IDLE_MS=60000",
        "WORKER_CLAIM_INTERVAL_MS=5000",
        "RETRY_BASE_MS=1000",
        "RETRY_MAX_MS=60000",
        "JWKS_MIN_REFRESH_S=300",
        "UPSTREAM_TIMEOUT_MS=30000",
        "CONNECTOR_TIMEOUT_MS=15000",
        "MAX_BODY_BYTES=262144",
        "MAX_HEADER_BYTES=16384",
        "HEADER_TIMEOUT_MS=10000",
        "IDLE_TIMEOUT_MS=60000",
        "MAX_CONNECTIONS=10000",
        "DEDUP_TTL_S=86400",
        "REQUEST_TTL_S=604800",
        "STREAM_RETENTION=24h",
        "DEAD_MAX_LEN=10000",
        "DEAD_RETENTION=30d",
        "SHUTDOWN_GRACE_MS=10000",
        "LOG_LEVEL=info",
        "LOG_FORMAT=json",
    };
    char *text = capture(print_digestd_help);

    assert_non_null(strstr(text, "Usage: digestd"));
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        if (!strstr(text, want[i]))
            print_error("help lacks '%s'\n", want[i]);
        assert_non_null(strstr(text, want[i]));
    }
    xfree(text);
}

/* digestctl's help: the rows it names, in the same form, and no others. */
static void test_print_vars_lists_only_those(void **state)
{
    char *text = capture(print_some_vars);

    assert_non_null(strstr(text, "  REDIS_URL=redis://127.0.0.1:6379/0\n"));
    assert_non_null(strstr(text, "  STREAM_RETENTION=24h\n"));
    assert_non_null(strstr(text, "[1s..365d]"));
    assert_null(strstr(text, "DIGEST_PREFIX"));
    assert_null(strstr(text, "Usage"));
    xfree(text);
}

/* config_free leaves NULLs, so error paths may call it without tracking state. */
static void test_free_twice_is_safe(void **state)
{
    struct config c;

    config_defaults(&c);
    config_free(&c);
    config_free(&c);
    assert_null(c.listen_host);
    assert_int_equal(c.audiences.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_spec),
        cmocka_unit_test(test_every_variable_parsed),
        cmocka_unit_test(test_bool_spellings),
        cmocka_unit_test(test_bad_values_name_the_variable),
        cmocka_unit_test(test_every_variable_has_a_bad_case),
        cmocka_unit_test(test_empty_optional_means_unset),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_file_bad_value_overridden_by_env),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_redis_url_forms),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_tenant_substitution),
        cmocka_unit_test(test_service_url_allow),
        cmocka_unit_test(test_audiences),
        cmocka_unit_test(test_role),
        cmocka_unit_test(test_redis_tls_files),
        cmocka_unit_test(test_help_lists_everything),
        cmocka_unit_test(test_print_vars_lists_only_those),
        cmocka_unit_test(test_free_twice_is_safe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
