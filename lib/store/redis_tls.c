/* redis_tls.c: see redis_tls.h. */
#include "store/redis_tls.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "config.h"

/* The oldest error on the queue as text, and the queue emptied. */
static void take_error(char *out, size_t n, const char *fallback)
{
    unsigned long e = ERR_get_error();

    if (e == 0) {
        snprintf(out, n, "%s", fallback);
        return;
    }
    ERR_error_string_n(e, out, n);
    ERR_clear_error();
}

static SSL_CTX *ctx_fail(SSL_CTX *ctx, const char *what, char *err, size_t errlen)
{
    char why[256];

    take_error(why, sizeof(why), "unknown error");
    snprintf(err, errlen, "%s: %s", what, why);
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *redis_tls_ctx_create(const struct config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    const char *key;

    if (!ctx)
        return ctx_fail(NULL, "REDIS_URL (TLS context)", err, errlen);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* Partial writes let us hand OpenSSL a whole buffer and keep what is left. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (cfg->redis_tls_ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->redis_tls_ca_file, NULL) != 1)
            return ctx_fail(ctx, "REDIS_TLS_CA_FILE: no usable CA certificate", err, errlen);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return ctx_fail(ctx, "REDIS_TLS_CA_FILE unset and the system CA store unusable", err,
                        errlen);
    }
    if (!cfg->redis_tls_cert_file)
        return ctx;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->redis_tls_cert_file) != 1)
        return ctx_fail(ctx, "REDIS_TLS_CERT_FILE: no usable certificate", err, errlen);
    key = cfg->redis_tls_key_file ? cfg->redis_tls_key_file : cfg->redis_tls_cert_file;
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return ctx_fail(ctx, "REDIS_TLS_KEY_FILE: no usable private key", err, errlen);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return ctx_fail(ctx, "REDIS_TLS_KEY_FILE: does not match REDIS_TLS_CERT_FILE", err, errlen);
    return ctx;
}

static bool is_ip(const char *host)
{
    unsigned char a[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

SSL *redis_tls_new(SSL_CTX *ctx, const char *host, char *err, size_t errlen)
{
    SSL *ssl = SSL_new(ctx);
    X509_VERIFY_PARAM *param;
    int ok;

    if (!ssl) {
        take_error(err, errlen, "SSL_new failed");
        return NULL;
    }
    param = SSL_get0_param(ssl);
    if (is_ip(host)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(param, host);
    } else {
        /* The SNI macro casts away const: hand it a copy (a DNS name is at most 253 bytes). */
        char sni[256];

        snprintf(sni, sizeof(sni), "%s", host);
        /* No partial wildcards ("w*.example.com"): what browsers accept. */
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(ssl, host) == 1 && SSL_set_tlsext_host_name(ssl, sni) == 1;
    }
    if (ok != 1) {
        take_error(err, errlen, "cannot set the host to check");
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

void redis_tls_reason(SSL *ssl, const char *fallback, char *out, size_t n)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    char queue[200];

    if (v != X509_V_OK) {
        ERR_clear_error();
        snprintf(out, n, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        return;
    }
    take_error(queue, sizeof(queue), fallback);
    snprintf(out, n, "%s", queue);
}
