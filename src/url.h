/*
 * url.h: percent-encoding for URL path segments and query values (RFC 3986:
 * everything but unreserved A-Z a-z 0-9 - . _ ~ becomes %XX). Pure.
 */
#pragma once

#include "buf.h"

/* Appends s percent-encoded to out; DG_ERR_TOO_LARGE past out's cap. */
int url_encode_component(struct buf *out, const char *s) WARN_UNUSED;
