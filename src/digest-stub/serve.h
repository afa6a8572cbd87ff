/*
 * serve.h: `digest-stub serve`, everything digestd talks to, in one
 * process on digestd's own HTTP server (src/http_server.c). The routes and
 * output formats are described at the top of stub_serve.c.
 */
#pragma once

#include "options.h"

/*
 * Loads the key, listens, prints "digest-stub listening on http://H:P" as
 * the first stdout line, serves until SIGTERM or SIGINT, then closes
 * everything. Returns the process exit code: 0 after a clean stop, 1 when
 * the key or the listener could not be set up or the loop did not close.
 */
int stub_serve_run(const struct stub_opts *o);
