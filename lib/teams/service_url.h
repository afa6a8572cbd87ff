/*
 * service_url.h: the one place that decides whether a serviceUrl may be
 * trusted (SPEC §2 SERVICE_URL_ALLOW, §3 403). Pure. The webhook checks every
 * inbound activity with it, and the connector checks again before sending,
 * so nothing is ever sent to a host outside the list.
 */
#pragma once

#include <stdbool.h>

#include "core/common.h"

struct config_list;

/*
 * 0 when url is https:// on an allowed host, or http:// on a listed loopback
 * host (localhost, 127.0.0.0/8, ::1); otherwise DG_ERR_INVALID. Allow-list
 * entries are host names or IPs, lowercase; one starting with '.' admits
 * subdomains only. Userinfo in the URL is refused.
 */
int service_url_check(const char *url, const struct config_list *allow) WARN_UNUSED;

/* The host part of an http(s) URL, lowercased, into out; false if malformed. */
bool service_url_host(const char *url, char *out, size_t outlen, bool *is_https);
