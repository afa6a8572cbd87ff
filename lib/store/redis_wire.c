/*
 * redis_wire.c: see redis_wire.h.
 *
 * TLS without blocking: the SSL reads from rbio and writes to wbio, two
 * memory BIOs. What the socket delivers is written into rbio and the SSL
 * is stepped (handshake, then SSL_read); whatever it produced in wbio —
 * handshake records, alerts, encrypted commands — is moved into the one
 * uv_write in flight. OpenSSL never touches the socket, so WANT_READ
 * simply means "wait for the next read callback".
 *
 * Buffers: out holds what the owner queued and has not gone to the socket
 * (plaintext; with TLS it is encrypted at flush); inflight is the bytes of
 * the one uv_write in progress, which libuv borrows until write_cb.
 */
#include "store/redis_wire.h"

#include <string.h>

#include <openssl/err.h>

#include "core/buf.h"
#include "store/redis_tls.h"

#define READ_CHUNK (64 * 1024) /* one read; hiredis reads 16 KiB */
#define WHY_MAX 256

enum wire_handle {
    WH_STREAM = 1,
    WH_CHECK = 2,
    WH_IDLE = 4,
};

struct redis_wire {
    uv_loop_t *loop;
    const struct redis_wire_cbs *cbs;
    void *data;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } s;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_check_t check; /* flushes after the poll */
    uv_idle_t idle;   /* keeps that poll from blocking while output waits */
    unsigned handles; /* WH_* not yet closed */
    bool stream_init;
    bool opened; /* open cb ran */
    bool closing;
    bool writing;     /* write_req in flight */
    bool flush_armed; /* check and idle started */
    SSL *ssl;         /* NULL for plain */
    BIO *rbio, *wbio; /* owned by ssl */
    struct buf out;
    struct buf inflight;
    char rd[READ_CHUNK];
};

static void flush(struct redis_wire *w);

/* ---- closing ------------------------------------------------------------ */

static void handle_closed(struct redis_wire *w, unsigned which)
{
    w->handles &= ~which;
    if (w->handles != 0)
        return;
    w->cbs->closed(w, w->data);
    SSL_free(w->ssl);
    buf_free(&w->out);
    buf_free(&w->inflight);
    xfree(w);
}

static void on_stream_closed(uv_handle_t *h)
{
    handle_closed(container_of(h, struct redis_wire, s.handle), WH_STREAM);
}

static void on_check_closed(uv_handle_t *h)
{
    handle_closed(container_of((uv_check_t *)h, struct redis_wire, check), WH_CHECK);
}

static void on_idle_closed(uv_handle_t *h)
{
    handle_closed(container_of((uv_idle_t *)h, struct redis_wire, idle), WH_IDLE);
}

void redis_wire_close(struct redis_wire *w)
{
    if (w->closing)
        return;
    w->closing = true;
    /* A connect or write in flight finishes with UV_ECANCELED before the close callback. */
    if (w->stream_init)
        uv_close(&w->s.handle, on_stream_closed);
    uv_close((uv_handle_t *)&w->check, on_check_closed);
    uv_close((uv_handle_t *)&w->idle, on_idle_closed);
}

/* Closes, then tells the owner why: the fail callback may drop its pointer to w. */
static void fail(struct redis_wire *w, const char *why)
{
    if (w->closing)
        return;
    redis_wire_close(w);
    w->cbs->fail(w, why, w->data);
}

static void fail_uv(struct redis_wire *w, const char *what, int status)
{
    char why[WHY_MAX];

    snprintf(why, sizeof(why), "%s: %s", what, uv_strerror(status));
    fail(w, why);
}

static void fail_tls(struct redis_wire *w, const char *what)
{
    char reason[WHY_MAX - 40], why[WHY_MAX];

    redis_tls_reason(w->ssl, "unknown TLS error", reason, sizeof(reason));
    snprintf(why, sizeof(why), "%s: %s", what, reason);
    fail(w, why);
}

/* ---- writing ------------------------------------------------------------ */

static void write_cb(uv_write_t *req, int status)
{
    struct redis_wire *w = container_of(req, struct redis_wire, write_req);

    w->writing = false;
    buf_reset(&w->inflight);
    if (status != 0) {
        if (status != UV_ECANCELED)
            fail_uv(w, "write", status);
        return;
    }
    if (!w->closing)
        flush(w);
}

/* Moves every TLS record OpenSSL has produced into inflight. */
static int drain_wbio(struct redis_wire *w)
{
    char chunk[16 * 1024];
    int n;

    while ((n = BIO_read(w->wbio, chunk, sizeof(chunk))) > 0) {
        if (buf_append(&w->inflight, chunk, (size_t)n) != 0)
            return DG_ERR_TOO_LARGE;
    }
    return 0;
}

/* Encrypts out into wbio as far as the handshake allows, then drains wbio. */
static int encrypt_out(struct redis_wire *w)
{
    size_t done = 0;

    /* Partial writes are on: each call takes at least one record's worth. */
    ERR_clear_error();
    while (w->opened && done < w->out.len) {
        size_t left = w->out.len - done;
        int n = SSL_write(w->ssl, w->out.data + done, (int)(left > INT32_MAX ? INT32_MAX : left));

        if (n <= 0) {
            fail_tls(w, "TLS write");
            return DG_ERR_CLOSED;
        }
        done += (size_t)n;
    }
    buf_reset(&w->out);
    return drain_wbio(w);
}

/* Starts the one write: plain output is swapped in whole, TLS records drained. */
static void flush(struct redis_wire *w)
{
    uv_buf_t b;
    int rc;

    if (w->writing || w->closing)
        return;
    if (w->ssl) {
        rc = encrypt_out(w);
        if (rc == DG_ERR_TOO_LARGE)
            fail(w, "TLS output larger than the cap");
        if (rc != 0)
            return;
    } else if (w->opened && w->out.len > 0) {
        struct buf t = w->inflight; /* empty */

        w->inflight = w->out;
        w->out = t;
    }
    if (w->inflight.len == 0)
        return;
    b = uv_buf_init(w->inflight.data, (unsigned)w->inflight.len);
    rc = uv_write(&w->write_req, &w->s.stream, &b, 1, write_cb);
    if (rc != 0) {
        buf_reset(&w->inflight);
        fail_uv(w, "write", rc);
        return;
    }
    w->writing = true;
    if (w->cbs->sent != NULL)
        w->cbs->sent(w, w->data);
}

static void on_check(uv_check_t *h)
{
    struct redis_wire *w = container_of(h, struct redis_wire, check);

    w->flush_armed = false;
    uv_check_stop(&w->check);
    uv_idle_stop(&w->idle);
    flush(w);
}

/* Nothing to do: being active is what keeps the poll phase from blocking. */
static void on_idle(uv_idle_t *h)
{
}

static void arm_flush(struct redis_wire *w)
{
    if (w->flush_armed)
        return;
    w->flush_armed = true;
    uv_check_start(&w->check, on_check);
    uv_idle_start(&w->idle, on_idle);
}

int redis_wire_write(struct redis_wire *w, const char *p, size_t n)
{
    if (w->closing)
        return DG_ERR_CLOSED;
    if (buf_append(&w->out, p, n) != 0)
        return DG_ERR_TOO_LARGE;
    arm_flush(w);
    return 0;
}

size_t redis_wire_pending(const struct redis_wire *w)
{
    return w->out.len + w->inflight.len;
}

/* ---- reading ------------------------------------------------------------ */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct redis_wire *w = container_of(h, struct redis_wire, s.handle);

    *b = uv_buf_init(w->rd, sizeof(w->rd));
}

static void opened(struct redis_wire *w)
{
    w->opened = true;
    w->cbs->open(w, w->data);
    /* The owner's first commands, and with TLS the handshake's last record. */
    if (!w->closing && (w->out.len > 0 || (w->wbio && BIO_ctrl_pending(w->wbio) > 0)))
        arm_flush(w);
}

/* One handshake step; true once it is done and the owner was told. */
static bool tls_handshake(struct redis_wire *w)
{
    int rc;

    /* libcurl shares this thread's error queue: start clean, so a reason is ours. */
    ERR_clear_error();
    rc = SSL_do_handshake(w->ssl);

    if (rc == 1) {
        opened(w);
        return !w->closing;
    }
    switch (SSL_get_error(w->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* a memory wbio never refuses: treat as read */
        arm_flush(w);          /* the records it produced */
        return false;
    default:
        fail_tls(w, "TLS handshake");
        return false;
    }
}

/* Feeds ciphertext to the SSL and hands the owner what it decrypts. */
static void tls_input(struct redis_wire *w, const char *p, size_t n)
{
    char plain[16 * 1024];
    int got = 0;

    if (BIO_write(w->rbio, p, (int)n) != (int)n) {
        fail(w, "TLS input buffer");
        return;
    }
    if (!w->opened && !tls_handshake(w))
        return;
    while (!w->closing) {
        /* Clean before each step, not once: the read callback runs code that shares the
         * queue (libcurl closing a connection), and SSL_get_error reads the queue first. */
        ERR_clear_error();
        got = SSL_read(w->ssl, plain, sizeof(plain));
        if (got <= 0)
            break;
        w->cbs->read(w, plain, (size_t)got, w->data);
    }
    if (w->closing)
        return;
    switch (SSL_get_error(w->ssl, got)) {
    case SSL_ERROR_WANT_READ:
        break;
    case SSL_ERROR_ZERO_RETURN:
        fail(w, "closed by server (TLS close_notify)");
        return;
    default:
        fail_tls(w, "TLS read");
        return;
    }
    /* Reading may produce records too (a key update's answer). */
    if (BIO_ctrl_pending(w->wbio) > 0)
        arm_flush(w);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct redis_wire *w = container_of(s, struct redis_wire, s.stream);

    if (nread == UV_EOF) {
        fail(w, "closed by server");
        return;
    }
    if (nread < 0) {
        fail_uv(w, "read", (int)nread);
        return;
    }
    if (nread == 0 || w->closing)
        return;
    if (w->ssl)
        tls_input(w, b->base, (size_t)nread);
    else
        w->cbs->read(w, b->base, (size_t)nread, w->data);
}

/* ---- connecting --------------------------------------------------------- */

static void connect_cb(uv_connect_t *req, int status)
{
    struct redis_wire *w = container_of(req, struct redis_wire, connect_req);
    int rc;

    if (status == UV_ECANCELED || w->closing)
        return;
    if (status != 0) {
        fail_uv(w, "connect", status);
        return;
    }
    rc = uv_read_start(&w->s.stream, alloc_cb, read_cb);
    if (rc != 0) {
        fail_uv(w, "read", rc);
        return;
    }
    if (w->ssl)
        tls_handshake(w); /* sends the ClientHello */
    else
        opened(w);
}

struct redis_wire *redis_wire_create(uv_loop_t *loop, const struct redis_wire_cbs *cbs, void *data)
{
    struct redis_wire *w = xcalloc(1, sizeof(*w));

    w->loop = loop;
    w->cbs = cbs;
    w->data = data;
    buf_init(&w->out, REDIS_WIRE_MAX_PENDING);
    /* The same cap for both: a plain flush swaps them. TLS adds ~1/700 to it. */
    buf_init(&w->inflight, REDIS_WIRE_MAX_PENDING);
    uv_check_init(loop, &w->check);
    uv_idle_init(loop, &w->idle);
    w->handles = WH_CHECK | WH_IDLE;
    return w;
}

/* Gives the SSL its two memory BIOs; false (nothing taken) when out of memory. */
static bool attach_ssl(struct redis_wire *w, SSL *ssl)
{
    BIO *r = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());

    if (!r || !wb) {
        BIO_free(r);
        BIO_free(wb);
        return false;
    }
    /* An empty memory BIO means "retry later", not end of file. */
    BIO_set_mem_eof_return(r, -1);
    SSL_set_bio(ssl, r, wb);
    w->ssl = ssl;
    w->rbio = r;
    w->wbio = wb;
    return true;
}

int redis_wire_connect_tcp(struct redis_wire *w, const struct sockaddr *addr, SSL *ssl)
{
    int rc;

    if (ssl && !attach_ssl(w, ssl)) {
        SSL_free(ssl);
        redis_wire_close(w);
        return UV_ENOMEM;
    }
    rc = uv_tcp_init(w->loop, &w->s.tcp);
    if (rc == 0) {
        w->stream_init = true;
        w->handles |= WH_STREAM;
        /* Commands are small and answered one by one: never wait for Nagle. */
        uv_tcp_nodelay(&w->s.tcp, 1);
        /* Managed Redis (Azure: 10 min) drops idle connections silently. */
        uv_tcp_keepalive(&w->s.tcp, 1, 60);
        rc = uv_tcp_connect(&w->connect_req, &w->s.tcp, addr, connect_cb);
    }
    if (rc != 0)
        redis_wire_close(w);
    return rc;
}

int redis_wire_connect_unix(struct redis_wire *w, const char *path)
{
    int rc = uv_pipe_init(w->loop, &w->s.pipe, 0);

    if (rc != 0) {
        redis_wire_close(w);
        return rc;
    }
    w->stream_init = true;
    w->handles |= WH_STREAM;
    /* Errors (a missing socket) come back in connect_cb. */
    uv_pipe_connect(&w->connect_req, &w->s.pipe, path, connect_cb);
    return 0;
}
