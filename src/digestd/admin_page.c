/*
 * admin_page.c: serves the embedded files of the operators' page (see
 * admin_page.h). Every answer carries the same headers: a Content-Security-
 * Policy that lets the page load only its own files and talk only to its
 * own origin (no inline script or style, no frames around it, no form
 * that could carry the token away in a URL; Trusted Types, so no string
 * ever becomes markup), nosniff, no Referer, and Cache-Control: no-cache,
 * so a browser asks again on every load and a page from an older digestd
 * never meets a newer one's JSON. Without validators (our server sends no
 * ETag) "asking again" is a full transfer: some 40 KB, once per page load.
 */
#include "admin_page.h"

#include <string.h>

#include "core/common.h"
#include "http/http_server.h"
#include "web_assets.h"

static const struct http_header page_headers[] = {
    {"Content-Security-Policy", ADMIN_PAGE_CSP},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
    {"Cache-Control", "no-cache"},
};

static const struct http_header to_page[] = {{"Location", "/admin/"}};

/* The route of each asset is its exact path, so a lookup cannot miss; a 404 keeps it honest. */
static void handle_asset(struct http_request *req, void *data)
{
    const char *path = http_request_path(req);

    for (size_t i = 0; i < web_assets_count; i++) {
        const struct web_asset *a = &web_assets[i];

        if (strcmp(a->path, path) == 0) {
            http_request_respond(req, 200, a->content_type, a->data, a->len, page_headers,
                                 ARRAY_SIZE(page_headers));
            return;
        }
    }
    http_request_respond_error(req, 404, "not_found", "no such file", NULL, 0);
}

/* /admin without the slash: the page's relative URLs (app.js) need the directory. */
static void handle_redirect(struct http_request *req, void *data)
{
    http_request_respond(req, 308, NULL, NULL, 0, to_page, ARRAY_SIZE(to_page));
}

void admin_page_register(struct http_server *srv)
{
    http_server_route(srv, "GET", "/admin", "admin_page", handle_redirect, NULL);
    for (size_t i = 0; i < web_assets_count; i++)
        http_server_route(srv, "GET", web_assets[i].path, "admin_page", handle_asset, NULL);
}
