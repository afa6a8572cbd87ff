/*
 * http_client.c: libcurl's multi interface driven by the libuv loop, and the
 * only place in digestd where curl and libuv meet (STYLE rule 12).
 *
 * curl tells us which sockets to watch (on_curl_socket) and when to wake it
 * (on_curl_timer); libuv tells us when a socket is ready (on_poll) or the
 * timer fired (on_timeout), and we hand that back to curl with
 * curl_multi_socket_action. Finished transfers are collected after every
 * socket_action (drain), and each one's callback runs from there, never from
 * inside a curl callback, so user code may send, cancel or stop freely.
 *
 * Every structure is reached in O(1): a socket's context hangs on curl
 * (curl_multi_assign), a transfer's on its easy handle (CURLOPT_PRIVATE),
 * and the pending list is intrusive, so no event scans all requests.
 */
#include "http/http_client.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>

#include "core/clock.h"
#include "config.h"
#include "core/list.h"
#include "core/log.h"

/* At most one "out of descriptors" warning per this many ms. */
#define FD_WARN_INTERVAL_MS 1000
/* A Retry-After larger than this is clamped (about 68 years). */
#define RETRY_AFTER_MAX_S INT32_MAX

enum client_state {
    CLIENT_RUNNING = 0, /* sends accepted */
    CLIENT_STOPPING,    /* stop called; waiting for callbacks on the stack to return */
    CLIENT_CLOSING,     /* multi gone; uv handles closing */
    CLIENT_STOPPED,     /* every handle closed; only http_client_free remains */
};

struct shard;

/*
 * Finished easy handles kept for the next sends, with the options every
 * transfer shares still set (easy_shared): curl_easy_cleanup +
 * curl_easy_init cost 14k instructions, and curl_easy_reset with those set
 * again 2.9k more than clearing the call's four pointers (call_free). Neither
 * is needed: easy_call and easy_request set every option that differs
 * between transfers, each time (bench/RESULTS.md, "Outbound HTTP"). At most
 * 64 × 5.4 kB stay allocated.
 */
#define HTTP_CLIENT_SPARE_EASY 64

/* One socket curl asked us to watch. A new one per socket, never reused. */
struct sock_ctx {
    uv_poll_t poll;
    struct shard *shard;
    struct list_node node; /* client->socks: what stop must close */
    curl_socket_t fd;
};

struct http_client_call {
    struct http_client *client;
    struct shard *shard;   /* the multi this transfer runs in */
    struct list_node node; /* client->calls */
    CURL *easy;
    struct curl_slist *headers;
    http_client_done_cb cb;
    void *data;
    struct buf body; /* capped at the request's max_response_bytes */
    uint64_t start_ns;
    bool observe;   /* hist is meaningful */
    bool too_large; /* the write callback refused bytes past the cap */
    enum metrics_hist hist;
    char errbuf[CURL_ERROR_SIZE];
};

/*
 * One curl multi handle with its own timer and kick on the shared loop.
 * curl 7.88 walks a multi's connection cache (every connection to the
 * host) when a transfer starts and ends, so one multi holding 10,000
 * transfers costs O(n) per transfer; shards of HTTP_CLIENT_SHARD_TRANSFERS
 * bound that walk (docs/http_client.md, "Shards").
 */
struct shard {
    struct http_client *client;
    CURLM *multi;
    uv_timer_t timer; /* curl's single timeout for this multi */
    uv_idle_t kick;   /* curl's "timeout 0": run it on the next loop turn */
    size_t n_calls;   /* transfers in this multi */
};

struct http_client {
    uv_loop_t *loop;
    struct metrics *metrics;
    struct shard **shards; /* created on demand, at most max_shards, freed at free */
    size_t n_shards;
    size_t max_shards;
    enum client_state state;
    unsigned depth;        /* our frames on the stack that run user callbacks */
    unsigned open_handles; /* timer, kick and polls not yet through their close cb */
    size_t n_calls;
    size_t max_calls;       /* from RLIMIT_NOFILE: past it, send fails with UV_EMFILE */
    struct list_node calls; /* struct http_client_call, pending, any order */
    struct list_node socks; /* struct sock_ctx, polls not yet closing */
    uint64_t fd_warned_ms;  /* uv_now of the last descriptor warning */
    http_client_stopped_cb stopped_cb;
    void *stopped_data;
    /* The proxy environment, read once at create ("" = none): see proxy_env_read. */
    char *proxy_http;  /* http_proxy */
    char *proxy_https; /* https_proxy, HTTPS_PROXY */
    char *no_proxy;    /* no_proxy, NO_PROXY */
    /* Easy handles of finished transfers, reset, for the next sends (LIFO). */
    CURL *spare[HTTP_CLIENT_SPARE_EASY];
    size_t n_spare;
};

static void finish_stop(struct http_client *c);

/* ---- proxy environment ---------------------------------------------------- */

/* The first of the names that is set (even to ""), copied; "" when none is. */
static char *env_first(const char *const *names)
{
    const char *v;

    for (; *names; names++) {
        v = getenv(*names);
        if (v)
            return xstrdup(v);
    }
    return xstrdup("");
}

/*
 * libcurl 7.88 reads these variables on every transfer (3k instructions
 * and two strdups each time). We read them once, in curl's own order, and
 * hand curl the result as CURLOPT_PROXY / CURLOPT_NOPROXY, which makes it
 * skip its getenv: http uses http_proxy (never HTTP_PROXY: a CGI client can
 * set that one through a "Proxy:" header), https uses https_proxy, then
 * HTTPS_PROXY; both fall back to all_proxy, then ALL_PROXY. A variable set
 * to "" stops the search and means no proxy, as in curl. no_proxy (then
 * NO_PROXY) is applied by curl itself to the CURLOPT_NOPROXY we pass.
 * A change of the environment after create is not seen.
 */
static void proxy_env_read(struct http_client *c)
{
    static const char *const http[] = {"http_proxy", "all_proxy", "ALL_PROXY", NULL};
    static const char *const https[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                        NULL};
    static const char *const no[] = {"no_proxy", "NO_PROXY", NULL};

    c->proxy_http = env_first(http);
    c->proxy_https = env_first(https);
    c->no_proxy = env_first(no);
    /* Not the values: a proxy URL may carry a password. */
    if (*c->proxy_http || *c->proxy_https)
        log_info("http_client: proxy from the environment for%s%s (read once, at start)",
                 *c->proxy_http ? " http" : "", *c->proxy_https ? " https" : "");
}

static void proxy_env_free(struct http_client *c)
{
    xfree(c->proxy_http);
    xfree(c->proxy_https);
    xfree(c->no_proxy);
}

/* ---- intrusive lists ---------------------------------------------------- */

static void call_link(struct http_client *c, struct http_client_call *call)
{
    list_insert_head(&c->calls, &call->node);
    c->n_calls++;
    call->shard->n_calls++;
}

static void call_unlink(struct http_client *c, struct http_client_call *call)
{
    list_remove(&call->node);
    c->n_calls--;
    call->shard->n_calls--;
}

/* ---- re-entrancy ---------------------------------------------------------- */

/*
 * A user callback may call http_client_stop, which must not tear the multi
 * down while one of our frames is still iterating it (drain reads curl's
 * message queue after every callback). Frames that run callbacks bracket
 * them with enter/leave; the outermost leave finishes a pending stop.
 */
static void enter(struct http_client *c)
{
    c->depth++;
}

static void leave(struct http_client *c)
{
    assert(c->depth > 0);
    if (--c->depth == 0 && c->state == CLIENT_STOPPING)
        finish_stop(c);
}

/* One of our uv handles finished closing; the last one completes the stop. */
static void handle_closed(struct http_client *c)
{
    assert(c->open_handles > 0);
    if (--c->open_handles > 0 || c->state != CLIENT_CLOSING)
        return;
    c->state = CLIENT_STOPPED;
    if (c->stopped_cb)
        c->stopped_cb(c, c->stopped_data);
}

/* ---- error translation (the one place CURLcode becomes ours) ------------ */

static int curl_to_err(CURLcode rc, bool too_large)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_WRITE_ERROR:
        /* We only refuse bytes at the cap; anything else is curl's own. */
        return too_large ? DG_ERR_TOO_LARGE : DG_ERR_UNAVAILABLE;
    case CURLE_FILESIZE_EXCEEDED: /* Content-Length already over the cap */
        return DG_ERR_TOO_LARGE;
    case CURLE_OPERATION_TIMEDOUT:
        return DG_ERR_TIMEOUT;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return DG_ERR_INVALID;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_TOO_MANY_REDIRECTS:
        return DG_ERR_PROTOCOL;
    default:
        /* DNS, connect, TLS, send/recv, empty reply: the peer is not there. */
        return DG_ERR_UNAVAILABLE;
    }
}

/* ---- Retry-After ----------------------------------------------------------- */

static bool only_blanks(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0';
}

int http_client_parse_retry_after(const char *value, int64_t now_s, int64_t *out_s)
{
    int64_t n = 0;
    time_t t;

    while (*value == ' ' || *value == '\t')
        value++;
    if (isdigit((unsigned char)*value)) {
        for (; isdigit((unsigned char)*value); value++) {
            n = n * 10 + (*value - '0');
            if (n > RETRY_AFTER_MAX_S)
                n = RETRY_AFTER_MAX_S; /* keeps n*10 far from overflow */
        }
        if (!only_blanks(value))
            return DG_ERR_INVALID;
        *out_s = n;
        return 0;
    }
    /* Every HTTP-date form starts with a day name; curl_getdate reads all three. */
    if (!isalpha((unsigned char)*value))
        return DG_ERR_INVALID;
    t = curl_getdate(value, NULL);
    if (t == -1)
        return DG_ERR_INVALID;
    *out_s = (int64_t)t > now_s ? (int64_t)t - now_s : 0;
    if (*out_s > RETRY_AFTER_MAX_S)
        *out_s = RETRY_AFTER_MAX_S;
    return 0;
}

/* The final response's Retry-After (curl keeps every header), or -1. */
static int64_t retry_after_of(CURL *easy)
{
    struct curl_header *h;
    int64_t s;

    if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return -1;
    if (http_client_parse_retry_after(h->value, (int64_t)(clock_wall_ms() / 1000), &s))
        return -1;
    return s;
}

/* ---- completing a call ------------------------------------------------------ */

/* Not in any multi here: removed by call_complete, or never added. */
static void call_free(struct http_client_call *call)
{
    struct http_client *c = call->client;

    if (call->easy && c->state == CLIENT_RUNNING && c->n_spare < HTTP_CLIENT_SPARE_EASY) {
        /* Nothing of this call stays pointed at: the next send sets its own. */
        curl_easy_setopt(call->easy, CURLOPT_PRIVATE, NULL);
        curl_easy_setopt(call->easy, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(call->easy, CURLOPT_WRITEDATA, NULL);
        curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, NULL);
        c->spare[c->n_spare++] = call->easy;
    } else if (call->easy) {
        curl_easy_cleanup(call->easy);
    }
    curl_slist_free_all(call->headers);
    buf_free(&call->body);
    xfree(call);
}

/*
 * Running out of descriptors must never pass as a quiet "unavailable": say
 * so, with the limit, at most once a second.
 */
static void warn_if_out_of_fds(struct http_client *c, CURL *easy)
{
    long os_errno = 0;
    struct rlimit rl = {0};

    curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
    if (os_errno != EMFILE && os_errno != ENFILE)
        return;
    if (c->fd_warned_ms && uv_now(c->loop) - c->fd_warned_ms < FD_WARN_INTERVAL_MS)
        return;
    c->fd_warned_ms = uv_now(c->loop);
    getrlimit(RLIMIT_NOFILE, &rl);
    log_warn("http_client: out of file descriptors (RLIMIT_NOFILE soft limit %llu, %zu requests "
             "in flight); raise ulimit -n",
             (unsigned long long)rl.rlim_cur, c->n_calls);
}

/*
 * Removes call from the client and the multi, runs its callback once with
 * what curl reported (or err when nonzero: cancellation), and frees it.
 * The caller copies rc out of the CURLMsg first: the message dies with
 * curl_multi_remove_handle.
 */
static void call_complete(struct http_client_call *call, CURLcode rc, int err)
{
    struct http_client *c = call->client;
    struct http_client_response res = {0};

    call_unlink(c, call);
    if (call->shard->multi)
        curl_multi_remove_handle(call->shard->multi, call->easy);
    res.err = err ? err : curl_to_err(rc, call->too_large);
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &res.status);
    res.body = &call->body;
    /* A reused handle cancelled before it started still holds its last headers. */
    res.retry_after_s = res.err == DG_ERR_CLOSED ? -1 : retry_after_of(call->easy);
    res.elapsed_ns = clock_mono_ns() - call->start_ns;
    if (res.err == DG_ERR_CLOSED)
        res.error = "cancelled";
    else if (res.err == DG_ERR_TOO_LARGE)
        res.error = "response body over the cap";
    else if (res.err)
        res.error = call->errbuf[0] ? call->errbuf : curl_easy_strerror(rc);
    else
        res.error = "";
    if (res.err == DG_ERR_UNAVAILABLE)
        warn_if_out_of_fds(c, call->easy);
    /* Latency of requests that ran their course; a cancel measures nothing. */
    if (call->observe && res.err != DG_ERR_CLOSED) {
        metrics_observe(c->metrics, call->hist, res.elapsed_ns);
        metrics_outbound(c->metrics, call->hist, res.status);
    }
    call->cb(&res, call->data);
    call_free(call);
}

/* Collects every finished transfer of s. Called after each socket_action. */
static void drain(struct shard *s)
{
    struct http_client *c = s->client;
    CURLMsg *msg;
    CURLcode rc;
    char *priv;
    int left;

    enter(c);
    while (c->state == CLIENT_RUNNING && (msg = curl_multi_info_read(s->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        call_complete((struct http_client_call *)priv, rc, 0);
    }
    leave(c);
}

static void socket_action(struct shard *s, curl_socket_t fd, int flags)
{
    CURLMcode mc;
    int running;

    if (s->client->state != CLIENT_RUNNING)
        return;
    mc = curl_multi_socket_action(s->multi, fd, flags, &running);
    if (mc != CURLM_OK)
        log_warn("http_client: curl_multi_socket_action: %s", curl_multi_strerror(mc));
    drain(s);
}

/* ---- libuv → curl ------------------------------------------------------------ */

static void on_poll(uv_poll_t *poll, int status, int events)
{
    struct sock_ctx *sc = container_of(poll, struct sock_ctx, poll);
    int flags = 0;

    /* libuv stops the poll on an error; curl reads the socket error itself. */
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (status >= 0 && (events & UV_READABLE))
        flags |= CURL_CSELECT_IN;
    if (status >= 0 && (events & UV_WRITABLE))
        flags |= CURL_CSELECT_OUT;
    socket_action(sc->shard, sc->fd, flags);
}

static void on_timeout(uv_timer_t *timer)
{
    socket_action(container_of(timer, struct shard, timer), CURL_SOCKET_TIMEOUT, 0);
}

static void on_kick(uv_idle_t *idle)
{
    uv_idle_stop(idle);
    socket_action(container_of(idle, struct shard, kick), CURL_SOCKET_TIMEOUT, 0);
}

/* ---- curl → libuv ------------------------------------------------------------ */

static void on_sock_closed(uv_handle_t *handle)
{
    struct sock_ctx *sc = container_of((uv_poll_t *)handle, struct sock_ctx, poll);
    struct http_client *c = sc->shard->client;

    xfree(sc);
    handle_closed(c);
}

/*
 * Closes at once, while curl still has the fd open: libuv drops it from
 * epoll now, so a new socket that gets the same number right after is a
 * fresh sock_ctx with its own poll, never this closing one.
 */
static void sock_close(struct sock_ctx *sc)
{
    list_remove(&sc->node);
    uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
}

static struct sock_ctx *sock_open(struct shard *s, curl_socket_t fd)
{
    struct http_client *c = s->client;
    struct sock_ctx *sc = xcalloc(1, sizeof(*sc));
    int err;

    err = uv_poll_init_socket(c->loop, &sc->poll, fd);
    if (err) {
        log_error("http_client: uv_poll_init_socket(%d): %s", (int)fd, uv_strerror(err));
        xfree(sc);
        return NULL;
    }
    sc->shard = s;
    sc->fd = fd;
    list_insert_head(&c->socks, &sc->node);
    c->open_handles++;
    curl_multi_assign(s->multi, fd, sc);
    log_debug("http_client: watching fd %d", (int)fd);
    return sc;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct shard *s = userp;
    struct sock_ctx *sc = socketp;
    int events = 0;

    switch (what) {
    case CURL_POLL_REMOVE:
        /* curl forgets socketp itself after this; no curl_multi_assign needed. */
        if (sc)
            sock_close(sc);
        return 0;
    case CURL_POLL_IN:
        events = UV_READABLE;
        break;
    case CURL_POLL_OUT:
        events = UV_WRITABLE;
        break;
    case CURL_POLL_INOUT:
        events = UV_READABLE | UV_WRITABLE;
        break;
    default:
        return 0;
    }
    /*
     * Never return -1: curl 7.88 then marks the whole multi dead, not just
     * this transfer. A socket we cannot watch leaves its transfer to its
     * own timeout instead.
     */
    if (s->client->state != CLIENT_RUNNING)
        return 0;
    if (!sc)
        sc = sock_open(s, fd);
    if (sc)
        uv_poll_start(&sc->poll, events, on_poll);
    return 0;
}

/*
 * Only (re)arms: socket_action from here would re-enter curl. "0" means as
 * soon as possible, and a 1 ms timer (curl's multi-uv.c) costs every new
 * transfer a millisecond of idle wait; a 0 ms uv timer re-armed from its own
 * callback can spin inside one timers phase on libuv 1.44. An idle handle
 * runs once on the next loop turn and makes that turn's poll not block.
 */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct shard *s = userp;

    if (s->client->state >= CLIENT_CLOSING)
        return 0;
    if (timeout_ms < 0) {
        uv_timer_stop(&s->timer);
        uv_idle_stop(&s->kick);
    } else if (timeout_ms == 0) {
        uv_timer_stop(&s->timer);
        uv_idle_start(&s->kick, on_kick);
    } else {
        uv_idle_stop(&s->kick);
        uv_timer_start(&s->timer, on_timeout, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- lifecycle ----------------------------------------------------------------- */

/*
 * Half the descriptors for outbound connections (the other half serves
 * inbound clients, Redis, logs), within HTTP_CLIENT_MAX_CONNECTIONS. Logged
 * so that a low ulimit is never a silent ceiling.
 */
static size_t connection_budget(void)
{
    struct rlimit rl = {0};
    size_t n = HTTP_CLIENT_MAX_CONNECTIONS;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 2 < n)
        n = rl.rlim_cur / 2;
    if (n < 1)
        n = 1;
    if (n < 4096)
        log_warn("http_client: RLIMIT_NOFILE soft limit %llu allows only %zu concurrent outbound "
                 "requests; raise ulimit -n for more",
                 (unsigned long long)rl.rlim_cur, n);
    else
        log_info("http_client: up to %zu concurrent outbound requests (RLIMIT_NOFILE %llu)", n,
                 (unsigned long long)rl.rlim_cur);
    return n;
}

/*
 * No per-host or total connection cap inside curl: curl 7.88 does not time
 * out a transfer queued for a connection slot (it waits for a slot first),
 * which would break timeout_ms. Concurrency is capped in send instead, so
 * an excess request fails at once rather than waiting unseen.
 */
static int multi_setup(struct shard *s)
{
    CURLM *m = s->multi;
    CURLMcode mc;

    mc = curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    if (!mc)
        mc = curl_multi_setopt(m, CURLMOPT_SOCKETDATA, s);
    if (!mc)
        mc = curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    if (!mc)
        mc = curl_multi_setopt(m, CURLMOPT_TIMERDATA, s);
    if (!mc)
        mc = curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    if (!mc)
        mc = curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    /* Idle keep-alive connections kept for reuse: as many as may be busy here. */
    if (!mc)
        mc = curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)HTTP_CLIENT_SHARD_TRANSFERS);
    if (mc)
        log_error("http_client: curl_multi_setopt: %s", curl_multi_strerror(mc));
    return mc ? DG_ERR_CONFIG : 0;
}

static bool resolver_is_async(void)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

    if (v->features & CURL_VERSION_ASYNCHDNS)
        return true;
    log_error("http_client: libcurl %s has no asynchronous resolver; DNS would block the loop",
              v->version);
    return false;
}

/* A new shard in c (NULL, logged, when curl cannot make a multi handle). */
static struct shard *shard_new(struct http_client *c)
{
    struct shard *s;

    assert(c->n_shards < c->max_shards);
    s = xcalloc(1, sizeof(*s));
    s->client = c;
    s->multi = curl_multi_init();
    if (!s->multi || multi_setup(s)) {
        if (s->multi)
            curl_multi_cleanup(s->multi);
        else
            log_error("http_client: curl_multi_init failed");
        xfree(s);
        return NULL;
    }
    uv_timer_init(c->loop, &s->timer);
    uv_idle_init(c->loop, &s->kick);
    c->open_handles += 2;
    c->shards[c->n_shards++] = s;
    return s;
}

/*
 * The shard for a new transfer: the least loaded one, or a new one when
 * every shard is full (never more than max_shards: the budget bounds
 * n_calls). Low traffic therefore stays in shard 0 and reuses its
 * connections; a burst spreads over shards of at most
 * HTTP_CLIENT_SHARD_TRANSFERS each. At most max_shards (40 for 10,000)
 * comparisons per send.
 */
static struct shard *shard_pick(struct http_client *c)
{
    struct shard *best = c->shards[0], *s;
    size_t i;

    for (i = 1; i < c->n_shards && best->n_calls; i++)
        if (c->shards[i]->n_calls < best->n_calls)
            best = c->shards[i];
    if (best->n_calls < HTTP_CLIENT_SHARD_TRANSFERS || c->n_shards == c->max_shards)
        return best;
    s = shard_new(c);
    return s ? s : best;
}

struct http_client *http_client_create(uv_loop_t *loop, struct metrics *metrics)
{
    struct http_client *c;

    /* Reference counted inside curl; paired with curl_global_cleanup in free. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("http_client: curl_global_init failed");
        return NULL;
    }
    if (!resolver_is_async()) {
        curl_global_cleanup();
        return NULL;
    }
    c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->metrics = metrics;
    c->max_calls = connection_budget();
    c->max_shards = (c->max_calls + HTTP_CLIENT_SHARD_TRANSFERS - 1) / HTTP_CLIENT_SHARD_TRANSFERS;
    c->shards = xcalloc(c->max_shards, sizeof(*c->shards));
    list_init(&c->calls);
    list_init(&c->socks);
    proxy_env_read(c);
    /* The first shard now, so that a client that cannot get one fails at create. */
    if (!shard_new(c)) {
        proxy_env_free(c);
        xfree(c->shards);
        xfree(c);
        curl_global_cleanup();
        return NULL;
    }
    return c;
}

static void on_timer_closed(uv_handle_t *handle)
{
    handle_closed(container_of((uv_timer_t *)handle, struct shard, timer)->client);
}

static void on_kick_closed(uv_handle_t *handle)
{
    handle_closed(container_of((uv_idle_t *)handle, struct shard, kick)->client);
}

/* Runs once no frame of ours is on the stack: drop curl, close our handles. */
static void finish_stop(struct http_client *c)
{
    struct list_node *n;
    size_t i;

    assert(c->state == CLIENT_STOPPING && list_empty(&c->calls));
    c->state = CLIENT_CLOSING;
    /* Closing cached connections reports CURL_POLL_REMOVE for watched sockets. */
    for (i = 0; i < c->n_shards; i++) {
        curl_multi_cleanup(c->shards[i]->multi);
        c->shards[i]->multi = NULL;
    }
    while ((n = list_first(&c->socks)))
        sock_close(container_of(n, struct sock_ctx, node));
    for (i = 0; i < c->n_shards; i++) {
        uv_close((uv_handle_t *)&c->shards[i]->timer, on_timer_closed);
        uv_close((uv_handle_t *)&c->shards[i]->kick, on_kick_closed);
    }
}

void http_client_stop(struct http_client *c, http_client_stopped_cb cb, void *data)
{
    struct list_node *n;

    if (c->state != CLIENT_RUNNING)
        return;
    c->state = CLIENT_STOPPING;
    c->stopped_cb = cb;
    c->stopped_data = data;
    enter(c);
    /* A callback may cancel others; take the head each time. */
    while ((n = list_first(&c->calls)))
        call_complete(container_of(n, struct http_client_call, node), CURLE_OK, DG_ERR_CLOSED);
    leave(c);
}

void http_client_cancel(struct http_client_call *call)
{
    struct http_client *c = call->client;

    enter(c);
    call_complete(call, CURLE_OK, DG_ERR_CLOSED);
    leave(c);
}

void http_client_free(struct http_client *c)
{
    size_t i;

    if (!c)
        return;
    assert(c->state == CLIENT_STOPPED);
    for (i = 0; i < c->n_shards; i++)
        xfree(c->shards[i]);
    xfree(c->shards);
    proxy_env_free(c);
    while (c->n_spare)
        curl_easy_cleanup(c->spare[--c->n_spare]);
    xfree(c);
    curl_global_cleanup();
}

size_t http_client_pending(const struct http_client *c)
{
    return c->n_calls;
}

size_t http_client_shards(const struct http_client *c, size_t *max_shards)
{
    if (max_shards)
        *max_shards = c->max_shards;
    return c->n_shards;
}

/* ---- building a transfer --------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *userp)
{
    struct http_client_call *call = userp;

    /* size is 1 by contract. Returning short makes curl stop: CURLE_WRITE_ERROR. */
    if (buf_append(&call->body, p, n) != 0) {
        call->too_large = true;
        return 0;
    }
    return n;
}

static bool header_named(const char *h, const char *name)
{
    size_t n = strlen(name);

    return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

static bool has_header(const struct http_client_request *req, const char *name)
{
    size_t i;

    for (i = 0; i < req->n_headers; i++)
        if (header_named(req->headers[i], name))
            return true;
    return false;
}

/* "Name: value" with a non-empty token name and no CR/LF to smuggle lines. */
static bool header_ok(const char *h)
{
    const char *colon = strchr(h, ':');

    return colon && colon != h && !strpbrk(h, "\r\n") && !memchr(h, ' ', (size_t)(colon - h));
}

static int request_check(const struct http_client_request *req)
{
    size_t i;

    if (!req->method || !req->url || strlen(req->url) > HTTP_MAX_URL_BYTES)
        return DG_ERR_INVALID;
    if (strcmp(req->method, "GET") && strcmp(req->method, "POST") && strcmp(req->method, "PUT"))
        return DG_ERR_INVALID;
    if (!strcmp(req->method, "GET") && req->body_len)
        return DG_ERR_INVALID;
    if (req->body_len && !req->body)
        return DG_ERR_INVALID;
    if (!req->timeout_ms || req->timeout_ms > LONG_MAX || !req->max_response_bytes)
        return DG_ERR_INVALID;
    if (req->connect_timeout_ms > LONG_MAX || (req->n_headers && !req->headers))
        return DG_ERR_INVALID;
    for (i = 0; i < req->n_headers; i++)
        if (!req->headers[i] || !header_ok(req->headers[i]))
            return DG_ERR_INVALID;
    return 0;
}

/*
 * The caller's headers, plus two removals: no "Expect: 100-continue" (a
 * round trip of waiting for nothing) and no default form Content-Type on a
 * body whose type the caller did not state.
 */
static struct curl_slist *header_list(const struct http_client_request *req)
{
    struct curl_slist *list = NULL, *next;
    size_t i;
    const char *extra[2] = {NULL, NULL};

    if (!has_header(req, "Expect"))
        extra[0] = "Expect:";
    if (strcmp(req->method, "GET") && !has_header(req, "Content-Type"))
        extra[1] = "Content-Type:";
    for (i = 0; i < req->n_headers + 2; i++) {
        const char *h = i < req->n_headers ? req->headers[i] : extra[i - req->n_headers];
        if (!h)
            continue;
        next = curl_slist_append(list, h);
        if (!next) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
    }
    return list;
}

#define HTTP_CLIENT_RECV_BUFFER 1024L

/* What ties the handle to this call: set on every send. */
static CURLcode easy_call(struct http_client_call *call)
{
    CURL *e = call->easy;
    CURLcode rc;

    rc = curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)call);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    return rc;
}

/*
 * Options every transfer shares (safety and resource limits): set once on a
 * new handle, kept while it waits as a spare.
 */
static CURLcode easy_shared(CURL *e)
{
    CURLcode rc;

    rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    /*
     * Without this, ending a transfer that is still resolving (timeout,
     * cancel, stop) joins the resolver thread: the loop would block until
     * getaddrinfo returns. With it curl detaches the thread, which frees
     * itself when the lookup ends.
     */
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_USERAGENT, "digestd/" DIGESTD_VERSION);
    /*
     * Thousands of transfers wait seconds on a slow upstream, and curl's
     * 16 kB receive buffer is partly resident for each: 1 kB (curl's
     * minimum) saves 3 kB per held transfer (bench/RESULTS.md: 10,000 jobs
     * in flight 174 → 145 MB). Our replies are a few kB; a big digest just
     * takes more reads (50 kB: ~50 instead of ~4, microseconds each).
     */
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_BUFFERSIZE, HTTP_CLIENT_RECV_BUFFER);
    return rc;
}

/*
 * The bytes of a request target that go to the server as they are: RFC
 * 3986's pchar, '/' and '?' ('%' is checked with its two hex digits apart),
 * as bits of two masks: A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , ; = : @ / ?
 */
static bool target_byte_ok(unsigned char ch)
{
    static const uint64_t lo = 0xafffffd200000000ull, hi = 0x47fffffe87ffffffull;

    return ch < 64 ? (lo >> ch) & 1 : ch < 128 && (hi >> (ch - 64)) & 1;
}

/* seg..end is "." or "..", a segment curl would have resolved away. */
static bool dot_segment(const char *seg, const char *end)
{
    return (end - seg == 1 && seg[0] == '.') || (end - seg == 2 && seg[0] == '.' && seg[1] == '.');
}

/*
 * The length of url's origin ("scheme://authority") when the rest, its path
 * and query, can go to the server byte for byte; 0 when curl must read the
 * whole URL. curl 7.88 parses the path of CURLOPT_URL and writes the URL
 * back out through its own printf a byte at a time, on every transfer:
 * ≈ 60 instructions a byte, and a connector URL with a Teams conversation id
 * is ≈ 200 (bench/RESULTS.md, "the request target"). Given only the origin
 * and CURLOPT_REQUEST_TARGET, curl copies the target into the request line
 * as it is, so the target may hold only what the request line allows and
 * nothing curl would have rewritten: no dot segment, no fragment, every '%'
 * a %XX. A plain-http proxy needs the absolute form, so proxied http URLs
 * keep the whole URL (https goes through a CONNECT tunnel). One pass.
 */
static size_t url_origin_len(const char *url, bool proxied_http)
{
    const char *auth = strstr(url, "://"), *origin, *p, *seg;
    bool query = false;

    if (!auth || proxied_http)
        return 0;
    auth += 3;
    origin = auth + strcspn(auth, "/?#");
    if (*origin != '/' || origin == auth)
        return 0;
    for (seg = p = origin + 1;; p++) {
        unsigned char ch = (unsigned char)*p;

        if (!query && (ch == '/' || ch == '?' || !ch)) {
            if (dot_segment(seg, p))
                return 0;
            seg = p + 1;
            query = ch == '?';
        }
        if (!ch)
            return (size_t)(origin - url);
        if (ch == '%') {
            if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
                return 0;
            p += 2;
        } else if (!target_byte_ok(ch)) {
            return 0;
        }
    }
}

/* Options of this request: URL, method, body, headers, limits. */
static CURLcode easy_request(struct http_client_call *call, const struct http_client_request *req)
{
    CURL *e = call->easy;
    uint64_t connect_ms = req->connect_timeout_ms;
    /* curl's scheme names are case-insensitive; anything else is refused later. */
    bool https = !strncasecmp(req->url, "https:", 6);
    const char *proxy = https ? call->client->proxy_https : call->client->proxy_http;
    size_t origin = url_origin_len(req->url, !https && *proxy);
    char origin_url[HTTP_MAX_URL_BYTES + 1];
    CURLcode rc;

    if (!connect_ms)
        connect_ms = req->timeout_ms < HTTP_CLIENT_CONNECT_TIMEOUT_MS
                         ? req->timeout_ms
                         : HTTP_CLIENT_CONNECT_TIMEOUT_MS;
    if (origin) {
        memcpy(origin_url, req->url, origin);
        origin_url[origin] = '\0';
        rc = curl_easy_setopt(e, CURLOPT_URL, origin_url);
        if (!rc)
            rc = curl_easy_setopt(e, CURLOPT_REQUEST_TARGET, req->url + origin);
    } else {
        rc = curl_easy_setopt(e, CURLOPT_URL, req->url);
        if (!rc) /* a spare handle may still hold the last one's */
            rc = curl_easy_setopt(e, CURLOPT_REQUEST_TARGET, NULL);
    }
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_PROXY, proxy);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_NOPROXY, call->client->no_proxy);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_response_bytes);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
    /* PUT renames a POST; NULL clears what a spare handle's last transfer set. */
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(req->method, "PUT") ? NULL : "PUT");
    if (!rc && !strcmp(req->method, "GET"))
        return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    /* POST and PUT both send the body as POST data. */
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_POST, 1L);
    /* Size first, so COPYPOSTFIELDS copies exactly body_len bytes, NULs included. */
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    if (!rc)
        rc = curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body_len ? req->body : "");
    return rc;
}

static bool over_budget(struct http_client *c)
{
    if (c->n_calls < c->max_calls)
        return false;
    if (!c->fd_warned_ms || uv_now(c->loop) - c->fd_warned_ms >= FD_WARN_INTERVAL_MS) {
        c->fd_warned_ms = uv_now(c->loop);
        log_warn("http_client: %zu requests in flight, the budget set by RLIMIT_NOFILE; "
                 "refusing more (raise ulimit -n)",
                 c->n_calls);
    }
    return true;
}

int http_client_send(struct http_client *c, const struct http_client_request *req,
                     http_client_done_cb cb, void *data, struct http_client_call **out)
{
    struct http_client_call *call = NULL;
    int err;

    if (out)
        *out = NULL;
    if (c->state != CLIENT_RUNNING)
        return DG_ERR_CLOSED;
    if (!cb || request_check(req))
        return DG_ERR_INVALID;
    if (over_budget(c))
        return UV_EMFILE;
    call = xcalloc(1, sizeof(*call));
    call->client = c;
    call->shard = shard_pick(c);
    call->cb = cb;
    call->data = data;
    call->observe = req->hist != NULL;
    call->hist = req->hist ? *req->hist : METRICS_H_UPSTREAM;
    buf_init(&call->body, req->max_response_bytes);
    call->start_ns = clock_mono_ns();
    err = DG_ERR_UNAVAILABLE; /* curl out of memory */
    if (c->n_spare) {
        call->easy = c->spare[--c->n_spare];
    } else {
        call->easy = curl_easy_init();
        if (call->easy && easy_shared(call->easy) != CURLE_OK) {
            curl_easy_cleanup(call->easy);
            call->easy = NULL;
        }
    }
    if (!call->easy)
        goto fail;
    call->headers = header_list(req);
    if (!call->headers)
        goto fail;
    if (easy_call(call) != CURLE_OK || easy_request(call, req) != CURLE_OK)
        goto fail;
    /* Only arms the kick (next loop turn): the transfer starts from the loop. */
    if (curl_multi_add_handle(call->shard->multi, call->easy) != CURLM_OK)
        goto fail;
    call_link(c, call);
    if (out)
        *out = call;
    return 0;
fail:
    call_free(call);
    return err;
}
