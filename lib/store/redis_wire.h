/*
 * redis_wire.h: one byte stream to Redis on the libuv loop — TCP
 * (uv_tcp_t) or a unix socket (uv_pipe_t), optionally TLS through OpenSSL
 * over two memory BIOs, so the handshake and every record are driven by
 * the loop's reads and writes: no thread, no blocking call. It knows
 * nothing of RESP: its owner (redis.c) formats commands and parses replies.
 *
 * Owns: the socket handle, the SSL (taken at connect), the pending output
 * and the write in flight, and its flush watchers. Writes are coalesced:
 * every redis_wire_write of one loop iteration leaves in one write, made in
 * the check phase (an idle watcher keeps the poll from blocking meanwhile),
 * as hiredis's "write when writable" did.
 *
 * Lifecycle: create → connect → open cb → read cbs … → either fail cb (the
 * wire has already begun closing) or redis_wire_close by the owner → closed
 * cb, after which the wire frees itself. No callback but closed runs after
 * fail or redis_wire_close. redis_wire_close is safe inside any callback,
 * and a no-op once closing; after the fail or closed callback returned, w
 * may be freed at any loop iteration: drop every pointer to it there.
 */
#pragma once

#include <stddef.h>
#include <uv.h>

#include <openssl/ssl.h>

#include "core/common.h"

struct redis_wire;

struct redis_wire_cbs {
    /* Connected (and, with TLS, the handshake and certificate check passed). */
    void (*open)(struct redis_wire *w, void *data);
    /* Plaintext from the server; p is borrowed for the call. */
    void (*read)(struct redis_wire *w, const char *p, size_t n, void *data);
    /* The stream failed or the server closed it; why is one line for a log. */
    void (*fail)(struct redis_wire *w, const char *why, void *data);
    /* Every handle is closed; w is freed when this returns. */
    void (*closed)(struct redis_wire *w, void *data);
    /* Optional: everything written so far was handed to the socket (a write began). */
    void (*sent)(struct redis_wire *w, void *data);
};

/* cbs is borrowed for the wire's life (a static table). */
struct redis_wire *redis_wire_create(uv_loop_t *loop, const struct redis_wire_cbs *cbs, void *data);

/*
 * Starts connecting to a numeric address (ssl: NULL for plain TCP, else a
 * client SSL from redis_tls_new, taken whatever the result). Returns 0, or
 * a negative libuv code after which the wire is closing (closed cb only).
 */
int redis_wire_connect_tcp(struct redis_wire *w, const struct sockaddr *addr, SSL *ssl);
/* The same for a unix socket path (no TLS). */
int redis_wire_connect_unix(struct redis_wire *w, const char *path);

/*
 * Queues n bytes (copied) for the next flush. Allowed from the open
 * callback on; DG_ERR_CLOSED when closing, DG_ERR_TOO_LARGE past
 * REDIS_WIRE_MAX_PENDING unsent bytes (the connection is then unfit).
 */
int redis_wire_write(struct redis_wire *w, const char *p, size_t n) WARN_UNUSED;

/* Unsent output in bytes (what the owner's queue still has to go out). */
size_t redis_wire_pending(const struct redis_wire *w);

void redis_wire_close(struct redis_wire *w);

#define REDIS_WIRE_MAX_PENDING (512u * 1024 * 1024) /* Redis's own query buffer limit is 1 GiB */
