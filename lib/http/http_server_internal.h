/*
 * http_server_internal.h: entry points for tests and the fuzzer only, never
 * for the daemon. They let a harness drive the real connection code with
 * bytes of its choosing, without a listening socket.
 */
#pragma once

#include <uv.h>

#include "http/http_server.h"

/*
 * Takes a connected stream socket (a socketpair end is fine) and serves it
 * exactly like an accepted connection: limits, routing, timeouts, responses.
 * The server owns sock from then on, also on failure. 0 or a UV_E* code.
 */
int http_server_adopt(struct http_server *srv, uv_os_sock_t sock) WARN_UNUSED;
