/*
 * config.c: SPEC §2 as one table. Each row names a variable, its default,
 * its meaning, a parser and the field it fills, so parsing, defaults and
 * --help can never disagree. Loading collects one raw string per row (the
 * default, then the --config file, then the environment), parses every row,
 * then runs the checks that span rows ({tenant}, RETRY_MAX_MS >= RETRY_BASE_MS).
 *
 * Choices the SPEC leaves open (also stated in --help):
 * - An empty value is an error, except for the optional ones (MICROSOFT_APP_ID,
 *   MICROSOFT_APP_PASSWORD, ADMIN_TOKEN, ASYNC_DIGEST_ALLOW) where it means unset.
 * - *_MS variables take a plain integer of milliseconds or a duration with a
 *   unit (UPSTREAM_TIMEOUT_MS=30s); *_S variables take a plain integer of
 *   seconds or a duration that is a whole number of seconds (DEDUP_TTL_S=1d).
 * - No value may hold a control character: values end up in HTTP headers,
 *   Redis commands and log lines, where one would break the framing.
 * - File lines are KEY=VALUE; "..." and '...' are taken literally (no escapes),
 *   and there are no inline comments (a # inside a value is part of it).
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/url.h"

#define FILE_MAX_BYTES (1024 * 1024) /* a config file bigger than this is a mistake */
#define SHOW_MAX 64                  /* bytes of a bad value echoed in an error */
#define WHY_MAX 256                  /* one error explanation */

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define MS_PER_S 1000ULL
#define S_PER_DAY 86400ULL
#define MS_PER_HOUR (3600ULL * MS_PER_S)
#define MS_PER_DAY (S_PER_DAY * MS_PER_S)

struct setting;

/* A parser checks v and stores it in its field; on error it explains in why. */
typedef int (*config_parse_cb)(struct config *cfg, const struct setting *s, const char *v,
                               char *why, size_t n);

struct setting {
    const char *name;
    const char *def; /* NULL: optional and unset unless given */
    const char *help;
    config_parse_cb parse;
    size_t off;        /* the field in struct config */
    uint64_t min, max; /* numeric rows only, in the field's unit */
};

/* One accepted spelling of an enumerated value. */
struct word {
    const char *word;
    int value;
};

static int parse_listen(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_redis(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_file(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_prefix(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_async(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_async_allow(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_upstream(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_audiences(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_opt_str(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_tenant(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_url(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_bot_auth(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_allow(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_admin(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_unsigned(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_size(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_ms(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_s(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_span(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_log_level(struct config *, const struct setting *, const char *, char *, size_t);
static int parse_log_format(struct config *, const struct setting *, const char *, char *, size_t);

#define F(field) offsetof(struct config, field)

/*
 * SPEC §2, one row per variable, in the SPEC's order (help prints them so).
 * Upper bounds are what an operator could mean, not protocol limits: request
 * timeouts up to 1 h, intervals up to 1 day, TTLs up to a year. They also keep
 * every later ms computation (backoff doubling, deadline = now + timeout) far
 * from overflow. The lower bound of every duration is 1: a zero timeout or
 * interval would either disable a safety net or spin the loop.
 */
/* clang-format off */
static const struct setting settings[] = {
    {"DIGEST_LISTEN", "127.0.0.1:3978",
     "HTTP listen address host:port ([::1]:3978 for IPv6; port 0 = any free port)",
     parse_listen, F(listen_host), 0, 0},
    {"REDIS_URL", "redis://127.0.0.1:6379/0",
     "redis://[[user][:password]@]host[:port][/db] (port 6379, db 0 by default; %XX escapes in "
     "user and password; with a user AUTH user password, a Redis 6 ACL user, with a password "
     "alone AUTH password), rediss://... the same over TLS, or unix:///path[?db=N]",
     parse_redis, F(redis_url), 0, 0},
    {"REDIS_TLS_CA_FILE", NULL,
     "rediss:// only: PEM bundle of the CA(s) that sign the server's certificate; unset = the "
     "system CA store. The server's host name (or IP) is checked against it and SNI is sent",
     parse_file, F(redis_tls_ca_file), 0, 0},
    {"REDIS_TLS_CERT_FILE", NULL,
     "rediss:// only: PEM client certificate for mutual TLS (the key may be in the same file)",
     parse_file, F(redis_tls_cert_file), 0, 0},
    {"REDIS_TLS_KEY_FILE", NULL,
     "rediss:// only: PEM private key of REDIS_TLS_CERT_FILE (needs REDIS_TLS_CERT_FILE)",
     parse_file, F(redis_tls_key_file), 0, 0},
    {"DIGEST_PREFIX", "digest",
     "prefix of every Redis key, used as the hash tag {P} (no braces, no white space)",
     parse_prefix, F(prefix), 0, 0},
    {"USE_ASYNC_DIGEST", "true",
     "true: queue digests for the worker; false: synchronous digest inside the webhook "
     "(instant rollback; also 1/0, yes/no); N% (an integer 0-100): that share of users async, "
     "by FNV-1a 64 of from.aadObjectId (else from.id) mod 100 < N, so a user keeps one path",
     parse_async, F(use_async_digest), 0, 0},
    {"ASYNC_DIGEST_ALLOW", NULL,
     "comma list of user ids (from.aadObjectId or from.id) and conversation keys "
     "(channelId:conversation.id), exact and case-sensitive, always served async unless "
     "USE_ASYNC_DIGEST=false (false always wins)",
     parse_async_allow, F(async_allow), 0, 0},
    {"DIGEST_UPSTREAM_URL", "http://127.0.0.1:8000/api/talentwell/digest?audience={audience}",
     "digest service, an http(s) URL; {audience} is replaced, URL-encoded",
     parse_upstream, F(upstream_url), 0, 0},
    {"DIGEST_AUDIENCES", "advisors,c_suite,global",
     "accepted audiences, a comma list of [a-z0-9_-]+ (lowercased, no duplicates)",
     parse_audiences, F(audiences), 0, 0},
    {"MICROSOFT_APP_ID", NULL, "the bot's app id, the audience its JWTs must name",
     parse_opt_str, F(app_id), 0, 0},
    {"MICROSOFT_APP_PASSWORD", NULL, "the bot's client secret for the token endpoint",
     parse_opt_str, F(app_password), 0, 0},
    {"MICROSOFT_APP_TENANT_ID", "botframework.com", "the bot's tenant (id or domain)",
     parse_tenant, F(tenant_id), 0, 0},
    {"BOT_TOKEN_URL", "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
     "client-credentials token endpoint; {tenant} is replaced by MICROSOFT_APP_TENANT_ID",
     parse_url, F(token_url), 0, 0},
    {"BOT_OPENID_URL", "https://login.botframework.com/v1/.well-known/openidconfiguration",
     "OpenID metadata naming the signing keys (jwks_uri)",
     parse_url, F(openid_url), 0, 0},
    {"BOT_AUTH", "jwt",
     "jwt, or off (local development only: a warning at start and on /readyz)",
     parse_bot_auth, F(bot_auth), 0, 0},
    {"SERVICE_URL_ALLOW",
     "smba.trafficmanager.net,smba.infra.gcc.teams.microsoft.com,"
     "smba.infra.gov.teams.microsoft.us",
     "hosts a serviceUrl may name: comma list of host names or IPs, no scheme or port; "
     "lowercased; an entry starting with '.' admits subdomains only",
     parse_allow, F(service_url_allow), 0, 0},
    {"ADMIN_TOKEN", NULL,
     "bearer token for /admin/* (at least 16 characters); unset = admin routes answer 404",
     parse_admin, F(admin_token), 0, 0},
    {"CONNECTOR_RETRY_AFTER_MAX_S", "300",
     "the longest connector Retry-After waited for on any send (a longer one fails the send as "
     "throttled); RETRY_MAX_MS bounds only our own backoff",
     parse_s, F(connector_retry_after_max_s), 1, 3600},
    {"WORKER_CONCURRENCY", "256", "jobs in flight per worker process",
     parse_unsigned, F(worker_concurrency), 1, 100000},
    {"WORKER_MAX_ATTEMPTS", "5", "deliveries before a job is dead-lettered",
     parse_unsigned, F(worker_max_attempts), 1, 100},
    {"WORKER_CLAIM_IDLE_MS", "60000",
     "a pending job idle this long is reclaimed from a dead consumer",
     parse_ms, F(worker_claim_idle_ms), 1, 7 * MS_PER_DAY},
    {"WORKER_CLAIM_INTERVAL_MS", "5000", "how often to look for such jobs",
     parse_ms, F(worker_claim_interval_ms), 1, MS_PER_DAY},
    {"RETRY_BASE_MS", "1000",
     "backoff base: a random wait up to min(max, base*2^(attempt-1)), or Retry-After",
     parse_ms, F(retry_base_ms), 1, MS_PER_DAY},
    {"RETRY_MAX_MS", "60000", "cap of our own backoff (>= RETRY_BASE_MS)",
     parse_ms, F(retry_max_ms), 1, 7 * MS_PER_DAY},
    {"JWKS_MIN_REFRESH_S", "300", "an unknown kid refetches the keys at most this often",
     parse_s, F(jwks_min_refresh_s), 1, S_PER_DAY},
    {"UPSTREAM_TIMEOUT_MS", "30000", "timeout of one digest service request",
     parse_ms, F(upstream_timeout_ms), 1, MS_PER_HOUR},
    {"CONNECTOR_TIMEOUT_MS", "15000", "timeout of one Bot connector or token request",
     parse_ms, F(connector_timeout_ms), 1, MS_PER_HOUR},
    {"MAX_BODY_BYTES", "262144", "request body limit (413 past it)",
     parse_size, F(max_body_bytes), KIB, 64 * MIB},
    {"MAX_HEADER_BYTES", "16384", "request header limit (431 past it)",
     parse_size, F(max_header_bytes), KIB, MIB},
    {"HEADER_TIMEOUT_MS", "10000", "a client must send its headers within this time",
     parse_ms, F(header_timeout_ms), 1, MS_PER_HOUR},
    {"IDLE_TIMEOUT_MS", "60000", "an idle keep-alive connection is closed after this time",
     parse_ms, F(idle_timeout_ms), 1, MS_PER_DAY},
    {"MAX_CONNECTIONS", "10000", "open connections; past the cap new ones get 503",
     parse_unsigned, F(max_connections), 1, 1000000},
    {"DEDUP_TTL_S", "86400", "how long an activity id is remembered",
     parse_s, F(dedup_ttl_s), 1, 365 * S_PER_DAY},
    {"REQUEST_TTL_S", "604800", "how long an audit record is kept",
     parse_s, F(request_ttl_s), 1, 365 * S_PER_DAY},
    {"STREAM_RETENTION", "24h",
     "acknowledged entries of {P}:requests older than this are trimmed by the workers, never "
     "past what is unread or pending (a duration; a bare number is seconds)",
     parse_span, F(stream_retention_ms), MS_PER_S, 365 * MS_PER_DAY},
    {"DEAD_MAX_LEN", "10000", "{P}:dead keeps at most this many entries",
     parse_unsigned, F(dead_max_len), 1, 10000000},
    {"DEAD_RETENTION", "30d", "{P}:dead keeps no entry older than this (a duration)",
     parse_span, F(dead_retention_ms), MS_PER_S, 3650 * MS_PER_DAY},
    {"SHUTDOWN_GRACE_MS", "10000", "drain time on SIGTERM/SIGINT",
     parse_ms, F(shutdown_grace_ms), 1, MS_PER_HOUR},
    {"LOG_LEVEL", "info", "debug, info, warn or error",
     parse_log_level, F(log_level), 0, 0},
    {"LOG_FORMAT", "json", "json or text (logs go to stderr, one line each)",
     parse_log_format, F(log_json), 0, 0},
};
/* clang-format on */

#define NSETTINGS ARRAY_SIZE(settings)

/* Where each row's value came from while loading. */
struct raw {
    const char *val[NSETTINGS]; /* borrowed: a default, owned[i] or an envp entry */
    char *owned[NSETTINGS];     /* copies of file values */
    unsigned line[NSETTINGS];   /* file line of val[i], 0 when not from the file */
    const char *file;
};

/* ---- small helpers ---------------------------------------------------- */

/* The field a row fills; its type is known to the row's parser only. */
static void *field(struct config *cfg, const struct setting *s)
{
    return (char *)cfg + s->off;
}

/* Replaces an owned string field, freeing what it held. */
static void set_str(char **dst, char *value)
{
    xfree(*dst);
    *dst = value;
}

static int explain(char *why, size_t n, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Writes the explanation of a parse error; returns DG_ERR_CONFIG for a tail call. */
static int explain(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return DG_ERR_CONFIG;
}

/* "expected X, got 'v'", with v cut at SHOW_MAX bytes. Never used for secrets. */
static int bad_value(char *why, size_t n, const char *expected, const char *v)
{
    return explain(why, n, "%s, got '%.*s%s'", expected, SHOW_MAX, v,
                   strlen(v) > SHOW_MAX ? "..." : "");
}

/*
 * Index of the row named exactly name[0..len), or -1. Names are compared
 * case-sensitively, as the environment does: digest_prefix is not ours.
 */
static int find_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strlen(settings[i].name) == len && memcmp(settings[i].name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

/* Parses exactly len decimal digits (no sign, no space). */
static int parse_u64n(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0)
        return DG_ERR_INVALID;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9)
            return DG_ERR_INVALID;
        if (v > (UINT64_MAX - d) / 10)
            return DG_ERR_TOO_LARGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* A port number in min..65535; min is 0 where "any free port" makes sense. */
static int parse_port(const char *s, uint64_t min, int *out)
{
    uint64_t v;

    if (parse_u64n(s, strlen(s), &v) < 0 || v < min || v > 65535)
        return DG_ERR_INVALID;
    *out = (int)v;
    return 0;
}

/* Case-insensitive lookup of v in a word table; DG_ERR_INVALID when absent. */
static int match_word(const char *v, const struct word *words, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(v, words[i].word) == 0) {
            *out = words[i].value;
            return 0;
        }
    }
    return DG_ERR_INVALID;
}

/* True when every byte of s is in allowed (and for the empty string). */
static bool only_chars(const char *s, const char *allowed)
{
    return s[strspn(s, allowed)] == '\0';
}

#define HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"

/* A host name, an IPv4 address or (unbracketed here) an IPv6 address. */
static bool host_ok(const char *h)
{
    struct in6_addr a6;

    if (!*h)
        return false;
    if (strchr(h, ':'))
        return inet_pton(AF_INET6, h, &a6) == 1;
    return only_chars(h, HOST_CHARS);
}

/*
 * Splits "host", "host:port", "[v6]" or "[v6]:port". Returns the host
 * (owned, brackets removed) in *host and the port text (borrowed from v,
 * NULL when absent). An IPv6 address needs brackets, so "::1" alone and
 * "a:b:c" are errors rather than guesses.
 */
static int split_host_port(const char *v, char **host, const char **port)
{
    const char *end, *colon;

    *port = NULL;
    if (v[0] == '[') {
        end = strchr(v, ']');
        if (!end || !(end[1] == '\0' || end[1] == ':') || !memchr(v, ':', (size_t)(end - v)))
            return DG_ERR_INVALID;
        if (end[1] == ':')
            *port = end + 2;
        *host = xstrndup(v + 1, (size_t)(end - v - 1));
    } else {
        colon = strchr(v, ':');
        if (colon && strchr(colon + 1, ':'))
            return DG_ERR_INVALID;
        if (colon)
            *port = colon + 1;
        *host = xstrndup(v, colon ? (size_t)(colon - v) : strlen(v));
    }
    if (!host_ok(*host)) {
        set_str(host, NULL);
        return DG_ERR_INVALID;
    }
    return 0;
}

/* An http:// or https:// URL with a host (and a valid port when one is given). */
static bool http_url_ok(const char *v)
{
    size_t skip = 0, len;
    char *authority, *host = NULL;
    const char *port;
    int p, rc;

    if (strncasecmp(v, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(v, "https://", 8) == 0)
        skip = 8;
    if (!skip || strlen(v) > HTTP_MAX_URL_BYTES || strchr(v, ' '))
        return false;
    len = strcspn(v + skip, "/?#");
    authority = xstrndup(v + skip, len);
    /* User info in the URL would put a secret where logs print URLs. */
    rc = strchr(authority, '@') ? DG_ERR_INVALID : split_host_port(authority, &host, &port);
    if (rc == 0 && port)
        rc = parse_port(port, 1, &p);
    xfree(host);
    xfree(authority);
    return rc == 0;
}

/* Returns s with every "{name}" replaced by value (owned), or NULL when too long. */
static char *replace_all(const char *s, const char *pattern, const char *value)
{
    struct buf b;
    const char *hit;
    size_t plen = strlen(pattern);
    int rc = 0;

    buf_init(&b, HTTP_MAX_URL_BYTES);
    while (rc == 0 && (hit = strstr(s, pattern)) != NULL) {
        rc = buf_append(&b, s, (size_t)(hit - s));
        if (rc == 0)
            rc = buf_append_str(&b, value);
        s = hit + plen;
    }
    if (rc == 0)
        rc = buf_append_str(&b, s);
    if (rc < 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b);
}

/* ---- lists -------------------------------------------------------------- */

/* Frees the items and leaves an empty list, so a second call is harmless. */
static void list_free(struct config_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        xfree(l->items[i]);
    xfree(l->items);
    l->items = NULL;
    l->len = 0;
}

/* Exact comparison: lists are lowercased when parsed, not when searched. */
static bool list_has(const struct config_list *l, const char *item)
{
    for (size_t i = 0; i < l->len; i++) {
        if (strcmp(l->items[i], item) == 0)
            return true;
    }
    return false;
}

/* Takes item. */
static void list_push(struct config_list *l, char *item)
{
    l->items = xrealloc(l->items, (l->len + 1) * sizeof(*l->items));
    l->items[l->len++] = item;
}

/* Splits a comma list into trimmed items; an empty item is an error. */
static int split_items(const char *v, bool lower, struct config_list *out, char *why, size_t n)
{
    const char *p = v;

    for (;;) {
        size_t len = strcspn(p, ",");
        const char *a = p, *b = p + len;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a == b)
            return bad_value(why, n, "expected a comma list without empty entries", v);
        list_push(out, xstrndup(a, (size_t)(b - a)));
        for (char *c = out->items[out->len - 1]; lower && *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

/* A comma list of names we compare without case: trimmed and lowercased. */
static int split_list(const char *v, struct config_list *out, char *why, size_t n)
{
    return split_items(v, true, out, why, n);
}

/* ---- parsers, one per kind of row ---------------------------------------- */

/*
 * DIGEST_LISTEN: host:port with the port required. The host is kept as text
 * (a name, IPv4 or IPv6 without brackets); resolving it is the listener's job.
 */
static int parse_listen(struct config *cfg, const struct setting *s, const char *v, char *why,
                        size_t n)
{
    char *host = NULL;
    const char *port;
    int p;

    if (split_host_port(v, &host, &port) < 0 || !port)
        goto fail;
    if (parse_port(port, 0, &p) < 0)
        goto fail;
    set_str(&cfg->listen_host, host);
    cfg->listen_port = p;
    return 0;
fail:
    xfree(host);
    return bad_value(why, n, "expected host:port (port 0-65535, IPv6 as [::1]:3978)", v);
}

/* What one REDIS_URL names, before it is committed to the config. */
struct redis_target {
    enum config_redis_kind kind;
    bool tls;
    char *host;
    char *path;
    char *user;
    char *password;
    int port;
    int db;
};

/* Frees what a failed parse left behind; a committed target is owned by cfg. */
static void redis_target_free(struct redis_target *t)
{
    xfree(t->host);
    xfree(t->path);
    xfree(t->user);
    xfree(t->password);
}

/* Decodes %XX escapes of URL user info ('+' kept); NULL on a bad escape or %00. */
static char *percent_decode(const char *s, size_t len)
{
    struct buf b;

    buf_init(&b, len); /* decoding never lengthens */
    if (url_percent_decode(s, len, false, &b) != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b);
}

/*
 * User info of a redis:// URL, SPEC's [[user][:password]@]: "user:password"
 * (AUTH user password, a Redis 6 ACL user), ":password" (AUTH password),
 * "user" (AUTH user "", for a nopass ACL user) or nothing. Neither part is
 * ever echoed: a password pasted where the user goes must not reach a log.
 */
static int parse_redis_userinfo(const char *s, size_t len, struct redis_target *t, char *why,
                                size_t n)
{
    const char *colon = memchr(s, ':', len);
    size_t ulen = colon ? (size_t)(colon - s) : len;

    if (colon && colon == s + len - 1)
        return explain(why, n, "the password after ':' is empty");
    if (colon) {
        t->password = percent_decode(colon + 1, len - ulen - 1);
        if (!t->password)
            return explain(why, n, "bad %%XX escape in the password");
    }
    if (ulen > 0) {
        t->user = percent_decode(s, ulen);
        if (!t->user)
            return explain(why, n, "bad %%XX escape in the user name");
        if (strpbrk(t->user, " \t\r\n"))
            return explain(why, n, "the user name holds white space");
    }
    return 0;
}

/* redis://[userinfo@]host[:port][/db], rest being what follows "redis://". */
static int parse_redis_tcp(const char *rest, struct redis_target *t, char *why, size_t n)
{
    const char *at = strrchr(rest, '@'), *hostpart, *slash, *port;
    char *hp;
    uint64_t db = 0;
    int rc;

    /* The last '@' ends the user info: a password may hold '@' or '/'. */
    hostpart = at ? at + 1 : rest;
    if (at) {
        rc = parse_redis_userinfo(rest, (size_t)(at - rest), t, why, n);
        if (rc < 0)
            return rc;
    }
    slash = strchr(hostpart, '/');
    hp = xstrndup(hostpart, slash ? (size_t)(slash - hostpart) : strlen(hostpart));
    rc = split_host_port(hp, &t->host, &port);
    if (rc < 0)
        rc = explain(why, n, "expected a host name, an IPv4 address or [IPv6] after the scheme");
    t->port = 6379;
    if (rc == 0 && port && parse_port(port, 1, &t->port) < 0)
        rc = explain(why, n, "the port must be 1-65535, got '%.*s'", SHOW_MAX, port);
    xfree(hp); /* port pointed into it */
    if (rc < 0)
        return rc;
    if (slash && slash[1] && (parse_u64n(slash + 1, strlen(slash + 1), &db) < 0 || db > INT32_MAX))
        return explain(why, n, "the database must be a number, got '%.*s'", SHOW_MAX, slash + 1);
    t->db = (int)db;
    return 0;
}

/* unix:///path[?db=N], rest being what follows "unix://". */
static int parse_redis_unix(const char *rest, struct redis_target *t, char *why, size_t n)
{
    const char *q = strchr(rest, '?');
    size_t len = q ? (size_t)(q - rest) : strlen(rest);
    uint64_t db = 0;

    if (rest[0] != '/' || len < 2)
        return explain(why, n, "expected unix:///path/to/socket[?db=N]");
    if (q &&
        (strncmp(q, "?db=", 4) != 0 || parse_u64n(q + 4, strlen(q + 4), &db) < 0 || db > INT32_MAX))
        return explain(why, n, "expected ?db=N after the socket path, got '%.*s'", SHOW_MAX, q);
    t->kind = REDIS_UNIX;
    t->path = xstrndup(rest, len);
    t->db = (int)db;
    return 0;
}

/*
 * REDIS_URL: parsed into a redis_target first and committed only when the
 * whole value is good, so a bad URL never leaves half-updated redis_* fields.
 */
static int parse_redis(struct config *cfg, const struct setting *s, const char *v, char *why,
                       size_t n)
{
    struct redis_target t = {0};
    int rc;

    /* The value may hold a password, so errors describe it instead of echoing it. */
    if (strncmp(v, "redis://", 8) == 0) {
        rc = parse_redis_tcp(v + 8, &t, why, n);
    } else if (strncmp(v, "rediss://", 9) == 0) {
        t.tls = true;
        rc = parse_redis_tcp(v + 9, &t, why, n);
    } else if (strncmp(v, "unix://", 7) == 0) {
        rc = parse_redis_unix(v + 7, &t, why, n);
    } else {
        rc = explain(why, n,
                     "expected redis://[[user][:password]@]host[:port][/db], rediss://... "
                     "or unix:///path");
    }
    if (rc < 0) {
        redis_target_free(&t);
        return rc;
    }
    set_str(&cfg->redis_url, xstrdup(v));
    set_str(&cfg->redis_host, t.host);
    set_str(&cfg->redis_path, t.path);
    set_str(&cfg->redis_user, t.user);
    set_str(&cfg->redis_password, t.password);
    cfg->redis_tls = t.tls;
    cfg->redis_kind = t.kind;
    cfg->redis_port = t.kind == REDIS_TCP ? t.port : 0;
    cfg->redis_db = t.db;
    return 0;
}

/* DIGEST_PREFIX: non-empty (checked before), no braces, no white space. */
static int parse_prefix(struct config *cfg, const struct setting *s, const char *v, char *why,
                        size_t n)
{
    /* Braces would break the {P} hash tag that keeps every key on one slot. */
    if (strpbrk(v, "{} "))
        return bad_value(why, n, "expected no braces or white space", v);
    set_str(&cfg->prefix, xstrdup(v));
    return 0;
}

/*
 * USE_ASYNC_DIGEST: the boolean spellings operators actually type in compose
 * files and Helm values, or "N%" with N an integer 0..100 (no sign, no space,
 * no fraction: a share of users, not of requests). A bare number other than
 * 1 or 0 is an error rather than a guess at whether a % was meant.
 */
static int parse_async(struct config *cfg, const struct setting *s, const char *v, char *why,
                       size_t n)
{
    static const struct word words[] = {
        {"true", 1}, {"1", 1}, {"yes", 1}, {"false", 0}, {"0", 0}, {"no", 0},
    };
    size_t len = strlen(v);
    uint64_t pct;
    int b;

    if (match_word(v, words, ARRAY_SIZE(words), &b) == 0) {
        cfg->use_async_digest = b;
        cfg->async_percent = b ? 100 : 0;
        snprintf(cfg->async_mode, sizeof(cfg->async_mode), "%s", b ? "true" : "false");
        return 0;
    }
    if (len < 2 || len > 4 || v[len - 1] != '%' || parse_u64n(v, len - 1, &pct) < 0 || pct > 100)
        return bad_value(why, n, "expected true, false or a percentage of users 0%-100% like 10%",
                         v);
    cfg->use_async_digest = true;
    cfg->async_percent = (unsigned)pct;
    snprintf(cfg->async_mode, sizeof(cfg->async_mode), "%u%%", (unsigned)pct);
    return 0;
}

/*
 * ASYNC_DIGEST_ALLOW: ids exactly as Teams sends them (they are
 * case-sensitive, so not lowercased). Commas separate and white space around
 * an entry is trimmed; white space inside one (a forgotten comma) and an
 * empty entry (a stray comma) are errors. An empty value means unset.
 */
static int parse_async_allow(struct config *cfg, const struct setting *s, const char *v, char *why,
                             size_t n)
{
    struct config_list l = {0};
    int rc = *v ? split_items(v, false, &l, why, n) : 0; /* empty: unset, like a missing one */

    for (size_t i = 0; rc == 0 && i < l.len; i++) {
        if (strpbrk(l.items[i], " \t"))
            rc = explain(why, n, "'%.*s' holds white space: entries are separated by commas",
                         SHOW_MAX, l.items[i]);
    }
    if (rc < 0) {
        list_free(&l);
        return rc;
    }
    list_free(&cfg->async_allow);
    cfg->async_allow = l;
    return 0;
}

/*
 * DIGEST_UPSTREAM_URL keeps {audience} in place: the digest module
 * substitutes the URL-encoded audience per request.
 */
static int parse_upstream(struct config *cfg, const struct setting *s, const char *v, char *why,
                          size_t n)
{
    if (!http_url_ok(v))
        return bad_value(why, n, "expected an http:// or https:// URL", v);
    if (!strstr(v, "{audience}"))
        return bad_value(why, n, "expected a URL containing {audience}", v);
    set_str(field(cfg, s), xstrdup(v));
    return 0;
}

/*
 * DIGEST_AUDIENCES: the list the chat command is checked against. A
 * duplicate is an error because it usually means a typo in a longer list.
 */
static int parse_audiences(struct config *cfg, const struct setting *s, const char *v, char *why,
                           size_t n)
{
    struct config_list l = {0};
    int rc = split_list(v, &l, why, n);

    for (size_t i = 0; rc == 0 && i < l.len; i++) {
        const char *a = l.items[i];
        if (!only_chars(a, "abcdefghijklmnopqrstuvwxyz0123456789_-"))
            rc = explain(why, n, "'%.*s' is not an audience: only a-z, 0-9, '_' and '-'", SHOW_MAX,
                         a);
        for (size_t j = 0; rc == 0 && j < i; j++) {
            if (strcmp(l.items[j], a) == 0)
                rc = explain(why, n, "'%.*s' is listed twice", SHOW_MAX, a);
        }
    }
    if (rc < 0) {
        list_free(&l);
        return rc;
    }
    list_free(field(cfg, s));
    *(struct config_list *)field(cfg, s) = l;
    return 0;
}

/* Optional strings: an empty value means unset, like a missing one. */
static int parse_opt_str(struct config *cfg, const struct setting *s, const char *v, char *why,
                         size_t n)
{
    set_str(field(cfg, s), *v ? xstrdup(v) : NULL);
    return 0;
}

/*
 * A file digestd reads later (the TLS material): checked readable now, so a
 * wrong path stops the start with the variable's name instead of failing
 * every connection attempt later. Empty means unset.
 */
static int parse_file(struct config *cfg, const struct setting *s, const char *v, char *why,
                      size_t n)
{
    FILE *f;

    if (!*v) {
        set_str(field(cfg, s), NULL);
        return 0;
    }
    f = fopen(v, "r");
    if (!f)
        return explain(why, n, "cannot read '%.*s': %s", SHOW_MAX, v, strerror(errno));
    fclose(f);
    set_str(field(cfg, s), xstrdup(v));
    return 0;
}

static int parse_tenant(struct config *cfg, const struct setting *s, const char *v, char *why,
                        size_t n)
{
    /* It is pasted into BOT_TOKEN_URL's path, so only URL-safe characters. */
    if (!only_chars(v, HOST_CHARS))
        return bad_value(why, n, "expected a tenant id or domain (letters, digits, . - _)", v);
    set_str(&cfg->tenant_id, xstrdup(v));
    return 0;
}

/* True for http:// on a host that is not loopback. */
static bool plain_http_off_host(const char *v)
{
    size_t len;
    char *authority, *host = NULL;
    const char *port;
    bool off;

    if (strncasecmp(v, "http://", 7) != 0)
        return false;
    len = strcspn(v + 7, "/?#");
    authority = xstrndup(v + 7, len);
    off = split_host_port(authority, &host, &port) != 0 || !url_host_is_loopback(host);
    xfree(host);
    xfree(authority);
    return off;
}

/*
 * BOT_TOKEN_URL (a template until finish() replaces {tenant}) and
 * BOT_OPENID_URL: https, or plain http to this machine only (tests, the
 * stub). Over plain http to anywhere else the app secret would travel in
 * the clear, and anyone on the path could hand us signing keys of theirs.
 */
static int parse_url(struct config *cfg, const struct setting *s, const char *v, char *why,
                     size_t n)
{
    if (!http_url_ok(v))
        return bad_value(why, n, "expected an http:// or https:// URL", v);
    if (plain_http_off_host(v))
        return bad_value(why, n, "expected https:// (plain http only to a loopback host)", v);
    set_str(field(cfg, s), xstrdup(v));
    return 0;
}

/* BOT_AUTH: the warning for "off" is the caller's (at start and on /readyz). */
static int parse_bot_auth(struct config *cfg, const struct setting *s, const char *v, char *why,
                          size_t n)
{
    static const struct word words[] = {{"jwt", BOT_AUTH_JWT}, {"off", BOT_AUTH_OFF}};
    int a;

    if (match_word(v, words, ARRAY_SIZE(words), &a) < 0)
        return bad_value(why, n, "expected jwt or off", v);
    cfg->bot_auth = (enum config_bot_auth)a;
    return 0;
}

/*
 * Checks one SERVICE_URL_ALLOW entry (already lowercased) and strips the
 * brackets of an IPv6 address, so the entry compares equal to a parsed host.
 */
static int check_allow_entry(char *e, char *why, size_t n)
{
    char *h = e[0] == '.' ? e + 1 : e;
    size_t len = strlen(h);
    struct in6_addr a6;

    if (strstr(e, "://") || strchr(e, '/'))
        return explain(why, n, "'%.*s': a host name only, no scheme or path", SHOW_MAX, e);
    if (h[0] == '[' && len > 2 && h[len - 1] == ']' && h == e) {
        memmove(h, h + 1, len - 2);
        h[len - 2] = '\0';
    }
    if (strchr(h, ':') && inet_pton(AF_INET6, h, &a6) == 1 && h == e)
        return 0;
    if (strchr(h, ':'))
        return explain(why, n, "'%.*s': no port allowed", SHOW_MAX, e);
    if (strchr(h, '*'))
        return explain(why, n, "'%.*s': no wildcards; '.example.com' admits subdomains", SHOW_MAX,
                       e);
    if (!*h || !only_chars(h, HOST_CHARS) || strstr(h, "..") || h[0] == '.')
        return explain(why, n, "'%.*s' is not a host name or IP address", SHOW_MAX, e);
    return 0;
}

/*
 * SERVICE_URL_ALLOW: the hosts a serviceUrl may name (service_url.c matches
 * them). Duplicates are harmless here, so they are allowed.
 */
static int parse_allow(struct config *cfg, const struct setting *s, const char *v, char *why,
                       size_t n)
{
    struct config_list l = {0};
    int rc = split_list(v, &l, why, n);

    for (size_t i = 0; rc == 0 && i < l.len; i++)
        rc = check_allow_entry(l.items[i], why, n);
    if (rc < 0) {
        list_free(&l);
        return rc;
    }
    list_free(&cfg->service_url_allow);
    cfg->service_url_allow = l;
    return 0;
}

/*
 * ADMIN_TOKEN: optional, but a short token guards the admin routes badly, so a set
 * one must have at least 16 characters.
 */
static int parse_admin(struct config *cfg, const struct setting *s, const char *v, char *why,
                       size_t n)
{
    /* A secret: describe what is wrong, never echo it. */
    if (*v && strlen(v) < 16)
        return explain(why, n, "must be at least 16 characters (got %zu)", strlen(v));
    if (strchr(v, ' '))
        return explain(why, n, "must not contain white space");
    set_str(&cfg->admin_token, *v ? xstrdup(v) : NULL);
    return 0;
}

/* Explains a numeric value outside [s->min, s->max] in the unit of the name. */
static int out_of_range(const struct setting *s, const char *unit, const char *v, char *why,
                        size_t n)
{
    return explain(why, n, "must be %" PRIu64 "..%" PRIu64 "%s, got '%.*s'", s->min, s->max, unit,
                   SHOW_MAX, v);
}

/* A plain count within the row's range: no units, no sign, no trailing bytes. */
static int parse_count(const struct setting *s, const char *v, uint64_t *out, char *why, size_t n)
{
    int rc = parse_u64n(v, strlen(v), out);

    if (rc == DG_ERR_INVALID)
        return bad_value(why, n, "expected a whole number", v);
    if (rc < 0 || *out < s->min || *out > s->max)
        return out_of_range(s, "", v, why, n);
    return 0;
}

/* Counts stored as unsigned; every row's max fits (the largest is 1000000). */
static int parse_unsigned(struct config *cfg, const struct setting *s, const char *v, char *why,
                          size_t n)
{
    uint64_t x = 0;
    int rc = parse_count(s, v, &x, why, n);

    if (rc == 0)
        *(unsigned *)field(cfg, s) = (unsigned)x;
    return rc;
}

/* Byte limits stored as size_t, the type the capped buffers take. */
static int parse_size(struct config *cfg, const struct setting *s, const char *v, char *why,
                      size_t n)
{
    uint64_t x = 0;
    int rc = parse_count(s, v, &x, why, n);

    if (rc == 0)
        *(size_t *)field(cfg, s) = (size_t)x;
    return rc;
}

/* Duration units of SPEC §1; lowercase only, so "10S" or "1w" is garbage. */
static const struct {
    const char *suffix;
    uint64_t ms;
} units[] = {
    {"ms", 1}, {"s", MS_PER_S}, {"m", 60 * MS_PER_S}, {"h", MS_PER_HOUR}, {"d", MS_PER_DAY},
};

/* Digits and an optional unit; a bare number counts bare_ms milliseconds each. */
static int parse_duration(const char *s, uint64_t bare_ms, uint64_t *out_ms)
{
    size_t digits = strspn(s, "0123456789");
    uint64_t count, unit = 0;
    int rc;

    if (s[digits] == '\0')
        unit = bare_ms;
    for (size_t i = 0; !unit && i < ARRAY_SIZE(units); i++) {
        if (strcmp(s + digits, units[i].suffix) == 0)
            unit = units[i].ms;
    }
    if (!unit)
        return DG_ERR_INVALID;
    rc = parse_u64n(s, digits, &count);
    if (rc < 0)
        return rc;
    if (count > UINT64_MAX / unit)
        return DG_ERR_TOO_LARGE;
    *out_ms = count * unit;
    return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    return parse_duration(s, MS_PER_S, out_ms);
}

/*
 * *_MS rows: a bare number is milliseconds, as the name says, unlike
 * config_parse_duration_ms where a bare number is seconds (SPEC §1).
 */
static int parse_ms(struct config *cfg, const struct setting *s, const char *v, char *why, size_t n)
{
    uint64_t ms;
    int rc = parse_duration(v, 1, &ms);

    if (rc == DG_ERR_INVALID)
        return bad_value(why, n, "expected milliseconds or a duration like 500ms, 10s, 5m", v);
    if (rc < 0 || ms < s->min || ms > s->max)
        return out_of_range(s, " ms", v, why, n);
    *(uint64_t *)field(cfg, s) = ms;
    return 0;
}

/*
 * *_S rows: a bare number is seconds; a duration must come to whole seconds
 * (1500ms would be silently cut otherwise, and Redis TTLs are in seconds).
 */
static int parse_s(struct config *cfg, const struct setting *s, const char *v, char *why, size_t n)
{
    uint64_t ms;
    int rc = parse_duration(v, MS_PER_S, &ms);

    if (rc == DG_ERR_INVALID || (rc == 0 && ms % MS_PER_S != 0))
        return bad_value(why, n, "expected whole seconds or a duration like 10s, 5m, 1d", v);
    if (rc < 0 || ms / MS_PER_S < s->min || ms / MS_PER_S > s->max)
        return out_of_range(s, " s", v, why, n);
    *(uint64_t *)field(cfg, s) = ms / MS_PER_S;
    return 0;
}

/*
 * Rows named for what they are rather than a unit (STREAM_RETENTION): a
 * duration as on a command line (SPEC §1), where a bare number is seconds.
 * Stored in ms; the range is in ms too but explained in the unit typed.
 */
static int parse_span(struct config *cfg, const struct setting *s, const char *v, char *why,
                      size_t n)
{
    uint64_t ms;
    int rc = config_parse_duration_ms(v, &ms);

    if (rc == DG_ERR_INVALID)
        return bad_value(why, n, "expected a duration like 90s, 30m, 24h, 7d", v);
    if (rc < 0 || ms < s->min || ms > s->max)
        return explain(why, n, "must be %" PRIu64 "s..%" PRIu64 "d, got '%.*s'",
                       (uint64_t)(s->min / MS_PER_S), (uint64_t)(s->max / MS_PER_DAY), SHOW_MAX, v);
    *(uint64_t *)field(cfg, s) = ms;
    return 0;
}

/* LOG_LEVEL: the words log.h prints, case-insensitive. */
static int parse_log_level(struct config *cfg, const struct setting *s, const char *v, char *why,
                           size_t n)
{
    static const struct word words[] = {
        {"debug", LOG_LEVEL_DEBUG},
        {"info", LOG_LEVEL_INFO},
        {"warn", LOG_LEVEL_WARN},
        {"error", LOG_LEVEL_ERROR},
    };
    int level;

    if (match_word(v, words, ARRAY_SIZE(words), &level) < 0)
        return bad_value(why, n, "expected debug, info, warn or error", v);
    cfg->log_level = (enum log_level)level;
    return 0;
}

/* LOG_FORMAT: json (for collectors) or text (for people at a terminal). */
static int parse_log_format(struct config *cfg, const struct setting *s, const char *v, char *why,
                            size_t n)
{
    static const struct word words[] = {{"json", 1}, {"text", 0}};
    int json;

    if (match_word(v, words, ARRAY_SIZE(words), &json) < 0)
        return bad_value(why, n, "expected json or text", v);
    cfg->log_json = json;
    return 0;
}

/* --role is an option, not a variable, so it has no row; main() calls this. */
int config_parse_role(const char *s, enum config_role *out)
{
    static const struct word words[] = {
        {"all", ROLE_ALL},
        {"api", ROLE_API},
        {"worker", ROLE_WORKER},
    };
    int role;

    if (match_word(s, words, ARRAY_SIZE(words), &role) < 0)
        return DG_ERR_CONFIG;
    *out = (enum config_role)role;
    return 0;
}

/* ---- sources: defaults, file, environment -------------------------------- */

/* Starts every row at its default; NULL for the optional ones. */
static void raw_init(struct raw *raw, const char *file)
{
    memset(raw, 0, sizeof(*raw));
    raw->file = file;
    for (size_t i = 0; i < NSETTINGS; i++)
        raw->val[i] = settings[i].def;
}

/* Frees the file copies; borrowed defaults and envp entries stay. */
static void raw_free(struct raw *raw)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        xfree(raw->owned[i]);
}

/* Trims white space in place (CR included, so CRLF files read the same). */
static char *trim(char *s)
{
    char *end = s + strlen(s);

    while (isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

/* Strips one pair of matching quotes; NULL when a quote is opened but not closed. */
static char *unquote(char *v)
{
    size_t len = strlen(v);

    if (v[0] != '"' && v[0] != '\'')
        return v;
    if (len < 2 || v[len - 1] != v[0])
        return NULL;
    v[len - 1] = '\0';
    return v + 1;
}

/* One line of the --config file: blank, # comment, or KEY=VALUE. */
static int read_line(struct raw *raw, char *line, unsigned lineno, char *err, size_t errlen)
{
    char *eq, *key, *val;
    int i;

    line = trim(line);
    if (!*line || *line == '#')
        return 0;
    eq = strchr(line, '=');
    if (!eq) {
        snprintf(err, errlen, "%s:%u: expected KEY=VALUE", raw->file, lineno);
        return DG_ERR_CONFIG;
    }
    *eq = '\0';
    key = trim(line);
    i = find_setting(key, strlen(key));
    if (i < 0) {
        snprintf(err, errlen, "%s:%u: unknown key '%.*s'", raw->file, lineno, SHOW_MAX, key);
        return DG_ERR_CONFIG;
    }
    val = unquote(trim(eq + 1));
    if (!val) {
        snprintf(err, errlen, "%s:%u: %s: unterminated quote", raw->file, lineno, key);
        return DG_ERR_CONFIG;
    }
    /* A key given twice: the later line wins, as in a shell. */
    set_str(&raw->owned[i], xstrdup(val));
    raw->val[i] = raw->owned[i];
    raw->line[i] = lineno;
    return 0;
}

/* Reads the whole file (capped) into *text (owned). */
static int slurp(const char *path, char **text, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    struct buf b;
    char chunk[4096];
    size_t got;
    int rc = 0;

    if (!f) {
        snprintf(err, errlen, "--config %s: %s", path, strerror(errno));
        return DG_ERR_CONFIG;
    }
    buf_init(&b, FILE_MAX_BYTES);
    while (rc == 0 && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = buf_append(&b, chunk, got);
    if (rc < 0)
        snprintf(err, errlen, "--config %s: larger than %d bytes", path, FILE_MAX_BYTES);
    else if (ferror(f))
        snprintf(err, errlen, "--config %s: %s", path, strerror(errno));
    else if (memchr(buf_cstr(&b), '\0', b.len))
        snprintf(err, errlen, "--config %s: contains a NUL byte", path);
    else
        *text = buf_take(&b);
    rc = *text ? 0 : DG_ERR_CONFIG;
    buf_free(&b);
    fclose(f);
    return rc;
}

static int read_file(struct raw *raw, char *err, size_t errlen)
{
    char *text = NULL, *line, *next;
    unsigned lineno = 0;
    int rc;

    rc = slurp(raw->file, &text, err, errlen);
    for (line = text; rc == 0 && line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        rc = read_line(raw, line, ++lineno, err, errlen);
    }
    xfree(text);
    return rc;
}

/* Environment entries borrow from envp; names we do not know are not ours. */
static void read_env(struct raw *raw, char *const *envp)
{
    for (; envp && *envp; envp++) {
        const char *eq = strchr(*envp, '=');
        int i = eq ? find_setting(*envp, (size_t)(eq - *envp)) : -1;
        if (i >= 0) {
            raw->val[i] = eq + 1;
            raw->line[i] = 0;
        }
    }
}

/* ---- loading --------------------------------------------------------------- */

/* Rules for every row, checked before its own parser runs. */
static int check_common(const struct setting *s, const char *v, char *why, size_t n)
{
    if (s->def && !*v)
        return explain(why, n, "must not be empty (unset it for the default %s)", s->def);
    for (const char *c = v; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return explain(why, n, "contains a control character");
    }
    return 0;
}

/* Formats "NAME: why" plus the file line the value came from, if any. */
static int report(const struct raw *raw, size_t i, const char *why, char *err, size_t errlen)
{
    if (raw->line[i])
        snprintf(err, errlen, "%s: %s (%s:%u)", settings[i].name, why, raw->file, raw->line[i]);
    else
        snprintf(err, errlen, "%s: %s", settings[i].name, why);
    return DG_ERR_CONFIG;
}

/* The checks that involve more than one row, run after every row parsed. */
static int finish(struct config *cfg, const struct raw *raw, char *err, size_t errlen)
{
    char why[WHY_MAX];
    char *url;
    int i;

    if (cfg->retry_max_ms < cfg->retry_base_ms) {
        i = find_setting("RETRY_MAX_MS", strlen("RETRY_MAX_MS"));
        snprintf(why, sizeof(why), "must be >= RETRY_BASE_MS (%" PRIu64 "), got %" PRIu64,
                 cfg->retry_base_ms, cfg->retry_max_ms);
        return report(raw, (size_t)i, why, err, errlen);
    }
    url = replace_all(cfg->token_url, "{tenant}", cfg->tenant_id);
    if (!url) {
        i = find_setting("BOT_TOKEN_URL", strlen("BOT_TOKEN_URL"));
        snprintf(why, sizeof(why), "longer than %d bytes once {tenant} is replaced",
                 HTTP_MAX_URL_BYTES);
        return report(raw, (size_t)i, why, err, errlen);
    }
    set_str(&cfg->token_url, url);
    if (cfg->redis_tls_key_file && !cfg->redis_tls_cert_file) {
        i = find_setting("REDIS_TLS_KEY_FILE", strlen("REDIS_TLS_KEY_FILE"));
        return report(raw, (size_t)i, "needs REDIS_TLS_CERT_FILE (the certificate of that key)",
                      err, errlen);
    }
    if (!cfg->redis_tls && (cfg->redis_tls_ca_file || cfg->redis_tls_cert_file))
        log_warn("REDIS_TLS_*: ignored, REDIS_URL is not rediss://");
    return 0;
}

/*
 * Parses every row in table order, stopping at the first error: the SPEC
 * wants one line naming one variable, and the operator fixes one at a time.
 */
static int apply(struct config *cfg, const struct raw *raw, char *err, size_t errlen)
{
    char why[WHY_MAX];

    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        int rc;

        if (!raw->val[i])
            continue;
        rc = check_common(s, raw->val[i], why, sizeof(why));
        if (rc == 0)
            rc = s->parse(cfg, s, raw->val[i], why, sizeof(why));
        if (rc < 0)
            return report(raw, i, why, err, errlen);
    }
    return finish(cfg, raw, err, errlen);
}

void config_defaults(struct config *cfg)
{
    struct raw raw;
    char err[WHY_MAX * 2];

    memset(cfg, 0, sizeof(*cfg));
    raw_init(&raw, NULL);
    /* The defaults are ours: failing here is a bug in the table, not user input. */
    if (apply(cfg, &raw, err, sizeof(err)) < 0) {
        log_error("config: bad built-in default: %s", err);
        abort();
    }
}

/*
 * Every source only sets raw strings; parsing happens once at the end, so a
 * bad file value that the environment replaces is never looked at.
 */
int config_load(struct config *cfg, const char *file, char *const *envp, char *err, size_t errlen)
{
    struct raw raw;
    char scratch[1];
    int rc = 0;

    if (!err || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    memset(cfg, 0, sizeof(*cfg));
    raw_init(&raw, file);
    if (file)
        rc = read_file(&raw, err, errlen);
    if (rc == 0) {
        read_env(&raw, envp);
        rc = apply(cfg, &raw, err, errlen);
    }
    raw_free(&raw);
    return rc;
}

/* Frees everything and leaves NULLs behind, so a second call is harmless. */
void config_free(struct config *cfg)
{
    char **strings[] = {
        &cfg->listen_host,        &cfg->redis_url,
        &cfg->redis_host,         &cfg->redis_path,
        &cfg->redis_password,     &cfg->redis_user,
        &cfg->redis_tls_ca_file,  &cfg->redis_tls_cert_file,
        &cfg->redis_tls_key_file, &cfg->prefix,
        &cfg->upstream_url,       &cfg->app_id,
        &cfg->app_password,       &cfg->tenant_id,
        &cfg->token_url,          &cfg->openid_url,
        &cfg->admin_token,
    };

    for (size_t i = 0; i < ARRAY_SIZE(strings); i++)
        set_str(strings[i], NULL);
    list_free(&cfg->audiences);
    list_free(&cfg->service_url_allow);
    list_free(&cfg->async_allow);
}

bool config_audience_ok(const struct config *cfg, const char *name)
{
    return name && list_has(&cfg->audiences, name);
}

/* ---- help ------------------------------------------------------------------ */

#define HELP_INDENT 6
#define HELP_WIDTH 79

/* Prints text indented and wrapped at word boundaries for an 80-column terminal. */
static void print_wrapped(const char *text)
{
    int col = printf("%*s", HELP_INDENT, "");

    for (const char *w = text; *w;) {
        int len = (int)strcspn(w, " ");
        if (col > HELP_INDENT && col + 1 + len > HELP_WIDTH)
            col = printf("\n%*s", HELP_INDENT, "") - 1;
        else if (col > HELP_INDENT)
            col += printf(" ");
        col += printf("%.*s", len, w);
        w += len + strspn(w + len, " ");
    }
    printf("\n");
}

/* "  NAME=default" and the wrapped explanation, with the range of numeric rows. */
static void print_setting(const struct setting *s)
{
    char text[512];

    printf("  %s=%s\n", s->name, s->def ? s->def : "(unset)");
    if (s->parse == parse_span)
        snprintf(text, sizeof(text), "%s [%" PRIu64 "s..%" PRIu64 "d]", s->help,
                 (uint64_t)(s->min / MS_PER_S), (uint64_t)(s->max / MS_PER_DAY));
    else if (s->max)
        snprintf(text, sizeof(text), "%s [%" PRIu64 "..%" PRIu64 "]", s->help, s->min, s->max);
    else
        snprintf(text, sizeof(text), "%s", s->help);
    print_wrapped(text);
}

/* Generated from the table, so help can never list a default we do not use. */
void config_print_help(const char *program)
{
    printf("Usage: %s [--config FILE] [--role all|api|worker]\n"
           "       %s --help | --version\n\n"
           "Options:\n"
           "  --help                 print this help and exit\n"
           "  --version              print the version and exit\n"
           "  --config FILE          read KEY=VALUE lines naming the variables below (blank\n"
           "                         lines and # comments skipped, values may be quoted);\n"
           "                         the environment wins over the file\n"
           "  --role all|api|worker  all (default): webhooks and worker; api: webhooks only;\n"
           "                         worker: stream consumer only (still serves /healthz,\n"
           "                         /readyz and /metrics)\n\n"
           "Environment (default after '='; an empty value is an error except for the\n"
           "optional strings; *_MS take milliseconds or a duration like 500ms, 10s, 5m, 2h,\n"
           "7d; *_S take seconds or such a duration):\n",
           program, program);
    for (size_t i = 0; i < NSETTINGS; i++)
        print_setting(&settings[i]);
}

void config_print_vars(const char *const *names)
{
    for (; *names; names++) {
        int i = find_setting(*names, strlen(*names));

        if (i < 0)
            abort(); /* a caller's typo, not user input */
        print_setting(&settings[i]);
    }
}
