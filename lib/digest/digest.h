/*
 * digest.h: the pure half of talking to the upstream digest service. It turns
 * the upstream reply {"audience","generated_at","items":[…]} into a struct
 * digest, and classifies the outcome of any outbound HTTP call (upstream or
 * Bot connector) as ok / retry / give up (SPEC §6). No I/O: the fetch itself
 * lives with the HTTP client. A struct digest owns copies of every string
 * (already capped and made valid UTF-8 for a card), so it outlives the body
 * and the JSON it came from; digest_free() releases it.
 */
#pragma once

#include <stddef.h>

#include "core/common.h"

/* Limits on what the upstream can make us hold or show (STYLE rule 7). */
#define DIGEST_MAX_BODY_BYTES (8u << 20) /* a bigger reply is DG_ERR_TOO_LARGE */
#define DIGEST_MAX_ITEMS 100             /* items kept; the rest are only counted */
#define DIGEST_MAX_FIELD_CHARS 200       /* name, title, company, location, audience */
#define DIGEST_MAX_SUMMARY_CHARS 500
#define DIGEST_MAX_URL_BYTES 2048 /* a longer URL is dropped, never cut */

/* One candidate. Every pointer is owned and non-NULL; "" when not given. */
struct digest_item {
    char *name;
    char *title;
    char *company;
    char *location;
    char *summary;
    char *url; /* "" unless an absolute http:// or https:// URL */
};

struct digest {
    char *audience;     /* as the upstream named it; "" when absent */
    char *generated_at; /* as the upstream wrote it (shown verbatim); "" when absent */
    struct digest_item *items;
    size_t n_items; /* items kept, at most DIGEST_MAX_ITEMS */
    size_t n_total; /* usable items in the reply, kept or not */
};

/*
 * Parses an upstream reply (body borrowed, len bytes, need not be
 * NUL-terminated). Strict about shape: the body must be one JSON object
 * (depth <= JSON_MAX_DEPTH, only white space after it) or DG_ERR_BAD_JSON;
 * "items" must be an array or DG_ERR_FIELD; over DIGEST_MAX_BODY_BYTES is
 * DG_ERR_TOO_LARGE. Tolerant about content, so the user still gets what is
 * usable: an item that is not an object is skipped, a missing or non-string
 * field becomes "", text is capped at a UTF-8 boundary with "…" and invalid
 * UTF-8 becomes U+FFFD, a URL that is not http(s) is dropped.
 * On success d is owned by the caller (digest_free); on error it holds
 * nothing to free.
 */
int digest_parse(struct digest *d, const char *body, size_t len) WARN_UNUSED;

void digest_free(struct digest *d);

/*
 * Returns an owned copy (xfree) of s (len bytes) that is valid UTF-8 with no
 * NUL: each invalid byte becomes U+FFFD. When s has more than max_chars code
 * points it is cut to max_chars - 1 of them followed by "…" (U+2026).
 */
char *digest_text_cap(const char *s, size_t len, size_t max_chars);

/*
 * What to do after an outbound HTTP call (SPEC §6, research/botframework.md
 * §4.5). One table for the upstream and the Bot connector.
 */
enum digest_outcome {
    DIGEST_OK = 0,    /* 2xx */
    DIGEST_RETRYABLE, /* back off and try again (attempts permitting) */
    DIGEST_FINAL,     /* retrying cannot help: fail the job */
};

/*
 * err is the transport result (0 when an HTTP status arrived), status the
 * HTTP status (ignored when err != 0).
 * - err != 0: DG_ERR_TIMEOUT, DG_ERR_UNAVAILABLE, DG_ERR_CLOSED and every
 *   libuv code (connection refused/reset, DNS, timeouts) are retryable; our
 *   other codes (DG_ERR_TOO_LARGE for an oversized reply, DG_ERR_PROTOCOL,
 *   DG_ERR_BAD_JSON, …) are final, since the same request gets the same answer.
 * - err == 0: 2xx ok; 412, 429, 502, 503, 504 retryable; anything else final
 *   (403 included, whatever its code, and 500: Teams says not to retry it).
 * The HTTP client is expected to map curl's connect/DNS/send/recv failures to
 * DG_ERR_UNAVAILABLE and its timeouts to DG_ERR_TIMEOUT.
 */
enum digest_outcome digest_outcome_classify(int err, long status);

/* "ok", "retryable", "final": for logs and metrics labels. */
const char *digest_outcome_name(enum digest_outcome outcome);
