/*
 * admin_page.h: the operators' page of SPEC §3, GET /admin/ and its
 * assets (web/, embedded at build time: web_assets.h), and GET /admin,
 * which sends the browser to /admin/. They carry no data, so they need no
 * token: the page asks the operator for ADMIN_TOKEN and sends it to the
 * JSON routes of admin.c as a Bearer header. admin_register calls this
 * only while ADMIN_TOKEN is set, so without it these paths are a plain
 * 404 like every other /admin/ path. Nothing to free: the routes point at
 * static data.
 */
#pragma once

struct http_server;

/* The page's security headers, for admin_page_register's responses and the tests' reading. */
#define ADMIN_PAGE_CSP                                                                             \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "                 \
    "frame-ancestors 'none'; require-trusted-types-for 'script'"

void admin_page_register(struct http_server *srv);
