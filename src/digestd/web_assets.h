/*
 * web_assets.h: the files of the operators' page (web/), compiled into
 * digestd by cmake/embed_web.cmake, which writes web_assets.c in the build
 * directory. Each is served as it is, under its URL path: web/index.html
 * as /admin/, web/<name> as /admin/<name>. Static data: nothing to free.
 */
#pragma once

#include <stddef.h>

struct web_asset {
    const char *path;          /* "/admin/", "/admin/app.js", ... */
    const char *content_type;  /* from the file's extension */
    const unsigned char *data; /* len bytes (and a NUL past them, which is not served) */
    size_t len;
};

extern const struct web_asset web_assets[];
extern const size_t web_assets_count;
