/*
 * redis_sync.h: one blocking Redis connection, for command-line programs
 * (digestctl) where blocking is fine and digestd's loop is not involved.
 * It speaks every REDIS_URL form digestd does — redis://, rediss:// (TLS
 * with the same CA, client certificate, SNI and host check, redis_tls.h),
 * unix:// — and sends AUTH ([user] password) and SELECT on connect.
 *
 * hiredis 0.14's blocking context reads its socket itself, so it cannot
 * carry TLS: this is a socket of our own (SSL_set_fd for TLS), with
 * resp.h (our command writer, hiredis's reader) for the protocol.
 * Every connect, read and write is bounded by the timeout given.
 *
 * Owns the socket, the SSL and its SSL_CTX, and the reader (redis_sync_free
 * frees them); cfg is borrowed for the connect only; replies returned are
 * the caller's (freeReplyObject).
 */
#pragma once

#include <stddef.h>

struct config;
struct redisReply;
struct redis_sync;

/*
 * Connects to cfg's REDIS_URL and authenticates. NULL on failure with one
 * line in err ("connect: Connection refused", "TLS handshake: certificate
 * verify failed: ...", "refused AUTH: WRONGPASS ..."); never the password.
 */
struct redis_sync *redis_sync_connect(const struct config *cfg, unsigned timeout_ms, char *err,
                                      size_t errlen);

/*
 * Sends one command and waits for its reply (owned by the caller; it may
 * be an error reply). NULL on a lost connection or timeout, with err; the
 * connection is then unusable (free it).
 */
struct redisReply *redis_sync_command(struct redis_sync *s, int argc, const char **argv,
                                      const size_t *argvlen, char *err, size_t errlen);

void redis_sync_free(struct redis_sync *s);
