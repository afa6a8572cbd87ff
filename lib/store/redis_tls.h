/*
 * redis_tls.h: the OpenSSL client side of rediss:// (SPEC §2), shared by
 * digestd's connection on the loop (redis_wire) and digestctl's blocking
 * one (redis_sync). It owns nothing between calls: the caller owns the
 * SSL_CTX returned (SSL_CTX_free) and each SSL (SSL_free).
 *
 * The context verifies the server's chain against REDIS_TLS_CA_FILE, else
 * the system store, and offers REDIS_TLS_CERT_FILE/KEY_FILE for mutual TLS.
 * Each SSL checks the certificate names the host of REDIS_URL (a DNS name,
 * or an IP address against the certificate's IP SANs) and sends it as SNI
 * when it is a name (RFC 6066 allows no address there).
 */
#pragma once

#include <stddef.h>

#include <openssl/ssl.h>

struct config;

/* NULL with one line in err (naming the variable whose file is bad) on failure. */
SSL_CTX *redis_tls_ctx_create(const struct config *cfg, char *err, size_t errlen);

/* A client SSL for host (SNI, host check); NULL with err on failure. */
SSL *redis_tls_new(SSL_CTX *ctx, const char *host, char *err, size_t errlen);

/*
 * Why the handshake or a record failed, for a log line: the verification
 * result when the peer's certificate was refused ("certificate verify
 * failed: unable to get local issuer certificate"), else OpenSSL's error
 * queue (emptied), else fallback.
 */
void redis_tls_reason(SSL *ssl, const char *fallback, char *out, size_t n);
