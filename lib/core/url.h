/*
 * url.h: percent-encoding for URL path segments and query values (RFC 3986:
 * everything but unreserved A-Z a-z 0-9 - . _ ~ becomes %XX) and its
 * decoding, and the one loopback test that decides where plain http is
 * tolerated. Pure.
 */
#pragma once

#include <stdbool.h>

#include "core/buf.h"

/* Appends s percent-encoded to out; DG_ERR_TOO_LARGE past out's cap. */
int url_encode_component(struct buf *out, const char *s) WARN_UNUSED;

/*
 * Appends len bytes of s to out with every %XX decoded (either case of hex
 * digit), and '+' as a space when plus_is_space (form and query values;
 * paths and user info keep it). DG_ERR_INVALID for a '%' without two hex
 * digits, or for %00, which would cut the C string the value becomes;
 * DG_ERR_TOO_LARGE past out's cap. On error out may hold a part.
 */
int url_percent_decode(const char *s, size_t len, bool plus_is_space, struct buf *out) WARN_UNUSED;

/*
 * The number of name=N in a query string ("a=1&limit=20"), for a request's
 * small options: *out is dflt when name is absent, the number when every
 * name=N present is digits only and within [min, max] (the last one wins);
 * DG_ERR_INVALID otherwise (*out then dflt). No percent-decoding: a number
 * needs none.
 */
int url_query_uint(const char *query, const char *name, unsigned min, unsigned max, unsigned dflt,
                   unsigned *out) WARN_UNUSED;

/* localhost, 127.0.0.0/8 or ::1 (host without brackets or port). */
bool url_host_is_loopback(const char *host);
