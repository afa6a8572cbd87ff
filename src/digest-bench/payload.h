/*
 * payload.h: the requests digest-bench sends. Teams message activities in
 * the three shapes of the fixtures (teams/activity_build.h), each with a
 * unique numeric activity id (Teams ids are numbers) and one of
 * `conversations` conversations, each conversation its own user; signed
 * like Bot Framework's channel: one RS256 token for the serviceUrl, made
 * once and reused for its lifetime (SPEC §8). The JSON is built once per
 * shape with markers and filled in per request, so a request costs a few
 * copies, not a JSON render. Owns its templates and token; pure after
 * payload_create (no I/O, no clock).
 */
#pragma once

#include <stdint.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "core/common.h"

#define PAYLOAD_SHAPES 3
#define PAYLOAD_REQUEST_MAX (64u * 1024)

struct payload_opts {
    const char *host_header; /* Host: of the target, host[:port] */
    const char *path;        /* request target, e.g. /api/messages */
    const char *service_url; /* the activities' serviceUrl and the token's serviceurl claim */
    const char *app_id;      /* aud, and recipient 28:<app id> */
    const char *text;        /* what the user typed */
    unsigned shapes;         /* bit per enum conv_kind */
    unsigned conversations;  /* >= 1 */
    EVP_PKEY *key;           /* borrowed, only during payload_create */
    const char *kid;
    uint64_t now_s; /* wall clock, for the token's nbf/iat/exp */
    uint64_t token_ttl_s;
};

struct payload;

/* Builds the templates and signs the token. DG_ERR_INVALID when signing fails (logged). */
int payload_create(const struct payload_opts *o, struct payload **out) WARN_UNUSED;
void payload_free(struct payload *p);

/*
 * Writes the whole HTTP request for request number n, whose activity id is
 * activity_id, into out (reset first): POST, Host, Content-Type,
 * Authorization: Bearer, Content-Length, the activity.
 */
int payload_request(const struct payload *p, uint64_t n, uint64_t activity_id,
                    struct buf *out) WARN_UNUSED;

/* The token every request carries (borrowed). */
const char *payload_token(const struct payload *p);
