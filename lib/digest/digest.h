/*
 * digest.h: the pure half of talking to the upstream digest service. It turns
 * the upstream reply {"audience","generated_at","items":[…]} into a struct
 * digest. No I/O: the fetch itself
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
