/*
 * upstream.h: fetching one digest from DIGEST_UPSTREAM_URL through the
 * shared http_client (curl multi on the loop). The URL's {audience} is
 * replaced by the percent-encoded audience; the reply is parsed by digest.c
 * and the outcome classified ok / retryable / final (SPEC §6). Stateless:
 * every fetch is one http_client call, finished exactly once.
 */
#pragma once

#include <stdint.h>

#include "core/common.h"
#include "digest/digest.h"
#include "http/outcome.h"

struct http_client;
struct http_client_call;
struct config;

struct upstream_result {
    int err;                   /* 0, a transport error, or a parse error of the body */
    long status;               /* HTTP status, 0 when none arrived */
    enum http_outcome outcome; /* what to do about it */
    struct digest *digest;     /* parsed digest when outcome is HTTP_OUTCOME_OK; borrowed */
    int64_t retry_after_s;     /* -1 when absent */
    const char *detail;        /* short text for logs and the error card */
};

typedef void (*upstream_cb)(const struct upstream_result *res, void *data);

/*
 * Starts the fetch. Returns 0 and later calls cb exactly once, or an error
 * and never calls cb. call (may be NULL) receives a handle for
 * http_client_cancel(), valid until cb starts.
 */
int upstream_fetch(struct http_client *hc, const struct config *cfg, const char *audience,
                   upstream_cb cb, void *data, struct http_client_call **call) WARN_UNUSED;

/* DIGEST_UPSTREAM_URL with {audience} replaced (percent-encoded). Owned. */
char *upstream_url(const struct config *cfg, const char *audience);
