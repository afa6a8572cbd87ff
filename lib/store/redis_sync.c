/* redis_sync.c: see redis_sync.h. */
#include "store/redis_sync.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config.h"
#include "core/buf.h"
#include "store/redis_tls.h"
#include "store/resp.h"

struct redis_sync {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    redisReader *reader;
    unsigned timeout_ms;
};

/* Waits for fd to become ready for events; 0, or ETIMEDOUT / errno. */
static int wait_fd(int fd, short events, unsigned timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;

    do
        n = poll(&p, 1, (int)timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return ETIMEDOUT;
    return n < 0 ? errno : 0;
}

/* A connect bounded by the timeout, then a blocking socket with I/O timeouts. */
static int connect_fd(int family, const struct sockaddr *sa, socklen_t len, unsigned timeout_ms,
                      int *out)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), rc = 0, one = 1;
    socklen_t elen = sizeof(rc);

    if (fd < 0)
        return errno;
    if (connect(fd, sa, len) != 0) {
        rc = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, timeout_ms) : errno;
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &elen) != 0)
            rc = errno;
    }
    if (rc != 0) {
        close(fd);
        return rc;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *out = fd;
    return 0;
}

static int open_socket(const struct config *cfg, unsigned timeout_ms, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    char port[8];
    int fd = -1, rc;

    if (cfg->redis_kind == REDIS_UNIX) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};

        if (strlen(cfg->redis_path) >= sizeof(un.sun_path)) {
            snprintf(err, errlen, "connect: socket path too long");
            return -1;
        }
        memcpy(un.sun_path, cfg->redis_path, strlen(cfg->redis_path) + 1); /* fits: checked above */
        rc = connect_fd(AF_UNIX, (struct sockaddr *)&un, sizeof(un), timeout_ms, &fd);
        if (rc != 0)
            snprintf(err, errlen, "connect: %s", strerror(rc));
        return rc == 0 ? fd : -1;
    }
    snprintf(port, sizeof(port), "%d", cfg->redis_port);
    rc = getaddrinfo(cfg->redis_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", cfg->redis_host, gai_strerror(rc));
        return -1;
    }
    /* Every address in turn: "localhost" may name ::1 first while Redis listens on 127.0.0.1. */
    rc = ENOENT;
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
        rc = connect_fd(ai->ai_family, ai->ai_addr, ai->ai_addrlen, timeout_ms, &fd);
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "connect: %s", strerror(rc));
    return fd;
}

static int tls_start(struct redis_sync *s, const struct config *cfg, char *err, size_t errlen)
{
    char why[256];

    s->ctx = redis_tls_ctx_create(cfg, err, errlen);
    if (!s->ctx)
        return -1;
    s->ssl = redis_tls_new(s->ctx, cfg->redis_host, err, errlen);
    if (!s->ssl)
        return -1;
    SSL_set_fd(s->ssl, s->fd);
    ERR_clear_error();
    if (SSL_connect(s->ssl) != 1) {
        redis_tls_reason(s->ssl, errno == EAGAIN ? "timed out" : "closed by server", why,
                         sizeof(why));
        snprintf(err, errlen, "TLS handshake: %s", why);
        return -1;
    }
    return 0;
}

static int send_all(struct redis_sync *s, const char *p, size_t n, char *err, size_t errlen)
{
    while (n > 0) {
        ssize_t got = s->ssl ? SSL_write(s->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n))
                             : send(s->fd, p, n, MSG_NOSIGNAL);

        if (got <= 0) {
            if (!s->ssl && got < 0 && errno == EINTR)
                continue;
            snprintf(err, errlen, "write: %s",
                     errno == EAGAIN ? "timed out"
                     : got < 0       ? strerror(errno)
                                     : "closed");
            return -1;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Reads until the reader holds one whole reply. */
static redisReply *read_reply(struct redis_sync *s, char *err, size_t errlen)
{
    char chunk[16 * 1024];
    void *reply = NULL;

    for (;;) {
        ssize_t got;

        if (redisReaderGetReply(s->reader, &reply) != REDIS_OK) {
            snprintf(err, errlen, "protocol error: %s", resp_reader_error(s->reader));
            return NULL;
        }
        if (reply)
            return reply;
        got =
            s->ssl ? SSL_read(s->ssl, chunk, sizeof(chunk)) : recv(s->fd, chunk, sizeof(chunk), 0);
        if (got < 0 && !s->ssl && errno == EINTR)
            continue;
        if (got <= 0) {
            snprintf(err, errlen, "read: %s",
                     got == 0          ? "closed by server"
                     : errno == EAGAIN ? "timed out"
                                       : strerror(errno));
            return NULL;
        }
        if (redisReaderFeed(s->reader, chunk, (size_t)got) != REDIS_OK) {
            snprintf(err, errlen, "protocol error: %s", resp_reader_error(s->reader));
            return NULL;
        }
    }
}

redisReply *redis_sync_command(struct redis_sync *s, int argc, const char **argv,
                               const size_t *argvlen, char *err, size_t errlen)
{
    struct buf cmd;
    int rc;

    buf_init(&cmd, RESP_MAX_COMMAND_BYTES);
    if (resp_put_command(&cmd, argc, argv, argvlen) != 0) {
        buf_free(&cmd);
        snprintf(err, errlen, "the command is too large");
        return NULL;
    }
    rc = send_all(s, cmd.data, cmd.len, err, errlen);
    buf_free(&cmd);
    return rc == 0 ? read_reply(s, err, errlen) : NULL;
}

/* One handshake command; what Redis said when it refused. */
static int handshake_cmd(struct redis_sync *s, const char *what, int argc, const char **argv,
                         char *err, size_t errlen)
{
    redisReply *r = redis_sync_command(s, argc, argv, NULL, err, errlen);
    int rc = 0;

    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "refused %s: %s", what, r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

static int authenticate(struct redis_sync *s, const struct config *cfg, char *err, size_t errlen)
{
    const char *argv[3] = {"AUTH"};
    char db[16];

    if (cfg->redis_user) {
        argv[1] = cfg->redis_user;
        argv[2] = cfg->redis_password ? cfg->redis_password : "";
        if (handshake_cmd(s, "AUTH", 3, argv, err, errlen) != 0)
            return -1;
    } else if (cfg->redis_password) {
        argv[1] = cfg->redis_password;
        if (handshake_cmd(s, "AUTH", 2, argv, err, errlen) != 0)
            return -1;
    }
    if (cfg->redis_db == 0)
        return 0;
    snprintf(db, sizeof(db), "%d", cfg->redis_db);
    argv[0] = "SELECT";
    argv[1] = db;
    return handshake_cmd(s, "SELECT", 2, argv, err, errlen);
}

struct redis_sync *redis_sync_connect(const struct config *cfg, unsigned timeout_ms, char *err,
                                      size_t errlen)
{
    struct redis_sync *s = xcalloc(1, sizeof(*s));

    s->timeout_ms = timeout_ms;
    s->reader = resp_reader_create();
    s->fd = open_socket(cfg, timeout_ms, err, errlen);
    if (s->fd < 0 || (cfg->redis_tls && tls_start(s, cfg, err, errlen) != 0) ||
        authenticate(s, cfg, err, errlen) != 0) {
        redis_sync_free(s);
        return NULL;
    }
    return s;
}

void redis_sync_free(struct redis_sync *s)
{
    if (!s)
        return;
    SSL_free(s->ssl);
    SSL_CTX_free(s->ctx);
    if (s->fd >= 0)
        close(s->fd);
    redisReaderFree(s->reader);
    xfree(s);
}
