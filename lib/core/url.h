/*
 * url.h: percent-encoding for URL path segments and query values (RFC 3986:
 * everything but unreserved A-Z a-z 0-9 - . _ ~ becomes %XX), and the one
 * loopback test that decides where plain http is tolerated. Pure.
 */
#pragma once

#include <stdbool.h>

#include "core/buf.h"

/* Appends s percent-encoded to out; DG_ERR_TOO_LARGE past out's cap. */
int url_encode_component(struct buf *out, const char *s) WARN_UNUSED;

/* localhost, 127.0.0.0/8 or ::1 (host without brackets or port). */
bool url_host_is_loopback(const char *host);
