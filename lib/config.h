/*
 * config.h: the immutable configuration of one digestd process (SPEC §2),
 * and the named limits that are not configurable. config_load() fills a
 * struct config from the defaults, then an optional KEY=VALUE file
 * (--config), then the environment (the environment wins, so a container can
 * override one value of a mounted file). Every value is validated at load;
 * an error names the variable. The struct owns its strings: config_free().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "core/log.h"

/* Limits that are constants, not configuration (STYLE rule 7). */
#define REDIS_COMMAND_TIMEOUT_MS 2000 /* Redis silent this long with commands pending: drop */
#define REDIS_CONNECT_TIMEOUT_MS 2000 /* bound on one connection attempt */
#define REDIS_BACKOFF_MIN_MS 100      /* first reconnect delay */
#define REDIS_BACKOFF_MAX_MS 5000     /* reconnect delay cap */
#define JSON_MAX_DEPTH 64             /* SPEC §3: deeper nesting is broken JSON */
#define HTTP_MAX_URL_BYTES 8192       /* part of the header budget as well */
#define RETRY_AFTER_S 1               /* Retry-After on 503 while Redis is away */

enum config_role {
    ROLE_ALL = 0,
    ROLE_API,
    ROLE_WORKER,
};

enum config_bot_auth {
    BOT_AUTH_JWT = 0,
    BOT_AUTH_OFF,
};

enum config_redis_kind {
    REDIS_TCP = 0,
    REDIS_UNIX,
};

struct config_list {
    char **items;
    size_t len;
};

struct config {
    enum config_role role; /* --role */

    char *listen_host; /* DIGEST_LISTEN host part (IPv4, name, IPv6 without []) */
    int listen_port;   /* DIGEST_LISTEN port, 0..65535 (0 = any free port) */

    char *redis_url; /* REDIS_URL as given: may hold the password, never log it */
    enum config_redis_kind redis_kind;
    char *redis_host;     /* tcp: host; unix: NULL */
    int redis_port;       /* tcp: 1..65535, 6379 when not given; unix: 0 */
    char *redis_path;     /* unix: socket path; tcp: NULL */
    char *redis_user;     /* %XX-decoded ACL user; NULL when none */
    char *redis_password; /* %XX-decoded; NULL when none; never log it */
    int redis_db;
    bool redis_tls;            /* rediss:// */
    char *redis_tls_ca_file;   /* REDIS_TLS_CA_FILE, NULL = the system store */
    char *redis_tls_cert_file; /* REDIS_TLS_CERT_FILE, NULL = no client certificate */
    char *redis_tls_key_file;  /* REDIS_TLS_KEY_FILE, NULL = the key is in the cert file */

    char *prefix;                   /* DIGEST_PREFIX */
    bool use_async_digest;          /* USE_ASYNC_DIGEST is not false: the async path may serve */
    unsigned async_percent;         /* share of users served async: true 100, false 0, N% N */
    char async_mode[8];             /* USE_ASYNC_DIGEST as "true", "false" or "N%" (heartbeat) */
    struct config_list async_allow; /* ASYNC_DIGEST_ALLOW: user ids, conversation keys */
    char *upstream_url;             /* DIGEST_UPSTREAM_URL, still holding {audience} */
    struct config_list audiences;   /* DIGEST_AUDIENCES */

    char *app_id;       /* MICROSOFT_APP_ID, NULL when unset */
    char *app_password; /* MICROSOFT_APP_PASSWORD, NULL when unset */
    char *tenant_id;    /* MICROSOFT_APP_TENANT_ID */
    char *token_url;    /* BOT_TOKEN_URL with {tenant} already replaced */
    char *openid_url;   /* BOT_OPENID_URL */
    enum config_bot_auth bot_auth;
    struct config_list service_url_allow; /* SERVICE_URL_ALLOW, lowercased, IPv6 without [] */
    char *admin_token;                    /* ADMIN_TOKEN, NULL = admin routes answer 404 */
    uint64_t connector_retry_after_max_s; /* CONNECTOR_RETRY_AFTER_MAX_S, 1..3600 */

    /* Ranges of the numbers below: see the table in config.c or --help. */
    unsigned worker_concurrency;  /* WORKER_CONCURRENCY, 1..100000 */
    unsigned worker_max_attempts; /* WORKER_MAX_ATTEMPTS, 1..100 */
    uint64_t worker_claim_idle_ms;
    uint64_t worker_claim_interval_ms;
    uint64_t retry_base_ms;
    uint64_t retry_max_ms; /* >= retry_base_ms */
    uint64_t jwks_min_refresh_s;
    uint64_t upstream_timeout_ms;
    uint64_t connector_timeout_ms;

    size_t max_body_bytes;
    size_t max_header_bytes;
    uint64_t header_timeout_ms;
    uint64_t idle_timeout_ms;
    unsigned max_connections;

    uint64_t dedup_ttl_s;
    uint64_t request_ttl_s;
    uint64_t stream_retention_ms; /* STREAM_RETENTION: acknowledged entries older go */
    unsigned dead_max_len;        /* DEAD_MAX_LEN: entries {P}:dead keeps at most */
    uint64_t dead_retention_ms;   /* DEAD_RETENTION: none older than this */
    uint64_t shutdown_grace_ms;

    enum log_level log_level; /* LOG_LEVEL: debug|info|warn|error */
    bool log_json;            /* LOG_FORMAT: json|text */
};

/*
 * Sets every field to its SPEC default (owned strings; config_free later).
 * cfg is overwritten without being freed first.
 */
void config_defaults(struct config *cfg);

/*
 * Loads the configuration: defaults, then the KEY=VALUE lines of file (when
 * not NULL; blank lines and lines starting with # are skipped; white space
 * around key and value is trimmed; "..." or '...' quotes are stripped, no
 * escapes; an unknown key is an error naming the file and line), then envp
 * ("KEY=VALUE" strings, NULL-terminated, may be NULL; taken verbatim;
 * unknown names ignored). An empty value is an error except for
 * MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD, ADMIN_TOKEN and ASYNC_DIGEST_ALLOW,
 * where it means unset. *_MS variables take milliseconds or a duration (30s); *_S ones take
 * seconds or a whole-second duration (1d). cfg is overwritten without being
 * freed first. On error returns DG_ERR_CONFIG and writes one line such as
 * "DIGEST_LISTEN: expected host:port (...), got 'x'" into err (a value from
 * the file adds " (FILE:LINE)"; secrets are never echoed). cfg must be freed
 * with config_free() whatever the result; after an error it is only partly
 * filled.
 */
int config_load(struct config *cfg, const char *file, char *const *envp, char *err,
                size_t errlen) WARN_UNUSED;

void config_free(struct config *cfg);

/*
 * Parses a duration like 500ms, 10s, 5m, 2h, 7d (bare number = seconds):
 * digits then an optional lowercase unit, nothing else. DG_ERR_INVALID for
 * garbage (signs, spaces, fractions, unknown units), DG_ERR_TOO_LARGE on
 * overflow; *out_ms is untouched on error.
 */
int config_parse_duration_ms(const char *s, uint64_t *out_ms) WARN_UNUSED;

/* Parses --role: all, api or worker (case-insensitive); DG_ERR_CONFIG otherwise. */
int config_parse_role(const char *s, enum config_role *out) WARN_UNUSED;

/*
 * True when name is in cfg->audiences. The list is stored lowercased and the
 * comparison is exact, so the caller lowercases what the user typed.
 */
bool config_audience_ok(const struct config *cfg, const char *name);

/*
 * Writes the help text to stdout: every option and every variable with its
 * default and meaning (SPEC §1), generated from the same table that parses.
 */
void config_print_help(const char *program);

/*
 * Writes the help lines of the named variables only (NULL-terminated), in
 * the same form: for a program that reads a few of digestd's settings
 * (digestctl). A name that is not a setting is a bug (abort).
 */
void config_print_vars(const char *const *names);
