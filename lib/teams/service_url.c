/* service_url.c: serviceUrl trust decisions. */
#include "teams/service_url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "core/url.h"

bool service_url_host(const char *url, char *out, size_t outlen, bool *is_https)
{
    const char *p, *end;
    size_t n, i;

    if (strncasecmp(url, "https://", 8) == 0) {
        *is_https = true;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        *is_https = false;
        p = url + 7;
    } else {
        return false;
    }
    end = p + strcspn(p, "/?#");
    if (memchr(p, '@', (size_t)(end - p)))
        return false; /* userinfo: a classic way to disguise the real host */
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close)
            return false;
        p++;
        n = (size_t)(close - p);
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        n = (size_t)((colon ? colon : end) - p);
    }
    if (n == 0 || n >= outlen)
        return false;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != ':' && c != '_')
            return false;
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return true;
}

static bool host_allowed(const char *host, const struct config_list *allow)
{
    size_t i, hl = strlen(host);

    for (i = 0; i < allow->len; i++) {
        const char *e = allow->items[i];
        size_t el = strlen(e);
        if (e[0] == '.') {
            /* ".example.com" admits a.example.com, not example.com itself. */
            if (hl > el && strcmp(host + hl - el, e) == 0)
                return true;
        } else if (strcmp(host, e) == 0) {
            return true;
        }
    }
    return false;
}

int service_url_check(const char *url, const struct config_list *allow)
{
    char host[256];
    bool https;

    if (!service_url_host(url, host, sizeof(host), &https))
        return DG_ERR_INVALID;
    if (!host_allowed(host, allow))
        return DG_ERR_INVALID;
    if (!https && !url_host_is_loopback(host))
        return DG_ERR_INVALID;
    return 0;
}
