/*
 * digest.c: upstream digest JSON → struct digest, and the ok/retry/final
 * table shared by every outbound HTTP call. Pure: no I/O, no clock.
 */
#include "digest/digest.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "config.h"
#include "core/json_strict.h"

/* The 3 bytes of U+2026 and U+FFFD in UTF-8. */
static const char ELLIPSIS[] = "\xe2\x80\xa6";
static const char REPLACEMENT[] = "\xef\xbf\xbd";

/*
 * Length of the valid UTF-8 sequence at p (n bytes available), or 0 when the
 * byte at p does not start one. Overlong forms, surrogates, code points past
 * U+10FFFF and NUL are all invalid: NUL because our strings are C strings.
 */
static size_t utf8_valid_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t need, i;

    if (c < 0x80)
        return c ? 1 : 0;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4;
    else
        return 0;
    /* The second byte's range is what rules out overlongs and surrogates. */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (n < need || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < need; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    }
    return need;
}

char *digest_text_cap(const char *s, size_t len, size_t max_chars)
{
    const unsigned char *p = (const unsigned char *)s;
    /* Output is at most 4 bytes per kept code point (3 for U+FFFD). */
    size_t room = (len < max_chars ? len : max_chars) * 4 + sizeof(ELLIPSIS);
    char *out = xmalloc(room);
    size_t o = 0, i = 0, chars = 0, cut = 0;

    while (i < len) {
        /* ASCII but NUL, most of a digest, without the decoder's call. */
        size_t n = p[i] - 1u < 0x7fu ? 1 : utf8_valid_len(p + i, len - i);

        if (++chars > max_chars) {
            /* Too long: back up to the end of code point max_chars - 1. */
            o = cut;
            if (max_chars > 0) {
                memcpy(out + o, ELLIPSIS, 3);
                o += 3;
            }
            break;
        }
        if (n == 1) {
            out[o++] = (char)p[i++];
        } else if (n == 0) {
            memcpy(out + o, REPLACEMENT, 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
        if (chars + 1 == max_chars)
            cut = o;
    }
    out[o] = '\0';
    return out;
}

/* A capped copy of obj[key] when it is a string, else "". */
static char *opt_text(struct json_object *obj, const char *key, size_t max_chars)
{
    struct json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return xstrdup("");
    return digest_text_cap(json_object_get_string(v), (size_t)json_object_get_string_len(v),
                           max_chars);
}

/*
 * An absolute http(s) URL with a host, printable ASCII only, not too long.
 * Anything else would either be refused by Teams for the whole card or open
 * something other than a web page (javascript:, file:, a relative path).
 */
static bool url_ok(const char *s, size_t len)
{
    size_t i, host;

    if (len > DIGEST_MAX_URL_BYTES)
        return false;
    if (len > 7 && strncasecmp(s, "http://", 7) == 0)
        host = 7;
    else if (len > 8 && strncasecmp(s, "https://", 8) == 0)
        host = 8;
    else
        return false;
    if (s[host] == '/' || s[host] == '?' || s[host] == '#')
        return false;
    for (i = 0; i < len; i++) {
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return false;
    }
    return true;
}

static char *opt_url(struct json_object *obj)
{
    struct json_object *v;
    const char *s;
    size_t len;

    if (!json_object_object_get_ex(obj, "url", &v) || !json_object_is_type(v, json_type_string))
        return xstrdup("");
    s = json_object_get_string(v);
    len = (size_t)json_object_get_string_len(v);
    return url_ok(s, len) ? xstrndup(s, len) : xstrdup("");
}

static void item_fill(struct digest_item *it, struct json_object *obj)
{
    it->name = opt_text(obj, "name", DIGEST_MAX_FIELD_CHARS);
    it->title = opt_text(obj, "title", DIGEST_MAX_FIELD_CHARS);
    it->company = opt_text(obj, "company", DIGEST_MAX_FIELD_CHARS);
    it->location = opt_text(obj, "location", DIGEST_MAX_FIELD_CHARS);
    it->summary = opt_text(obj, "summary", DIGEST_MAX_SUMMARY_CHARS);
    it->url = opt_url(obj);
}

static void item_free(struct digest_item *it)
{
    xfree(it->name);
    xfree(it->title);
    xfree(it->company);
    xfree(it->location);
    xfree(it->summary);
    xfree(it->url);
}

/* Fills d from the parsed reply; d is zeroed and may be half-filled on error. */
static int digest_fill(struct digest *d, struct json_object *root)
{
    struct json_object *items;
    size_t i, n;

    if (!json_object_object_get_ex(root, "items", &items) ||
        !json_object_is_type(items, json_type_array))
        return DG_ERR_FIELD;
    d->audience = opt_text(root, "audience", DIGEST_MAX_FIELD_CHARS);
    d->generated_at = opt_text(root, "generated_at", DIGEST_MAX_FIELD_CHARS);
    n = json_object_array_length(items);
    d->items = xcalloc(n < DIGEST_MAX_ITEMS ? n : DIGEST_MAX_ITEMS, sizeof(*d->items));
    for (i = 0; i < n; i++) {
        struct json_object *obj = json_object_array_get_idx(items, i);

        if (!json_object_is_type(obj, json_type_object))
            continue;
        d->n_total++;
        if (d->n_items < DIGEST_MAX_ITEMS)
            item_fill(&d->items[d->n_items++], obj);
    }
    return 0;
}

int digest_parse(struct digest *d, const char *body, size_t len)
{
    struct json_object *root = NULL;
    int rc;

    memset(d, 0, sizeof(*d));
    if (len > DIGEST_MAX_BODY_BYTES)
        return DG_ERR_TOO_LARGE;
    /* Invalid UTF-8 is repaired field by field (digest_text_cap), not refused. */
    rc = json_strict_object(body, len, JSON_MAX_DEPTH, false, &root);
    if (rc != 0)
        return rc;
    rc = digest_fill(d, root);
    json_object_put(root);
    if (rc != 0)
        digest_free(d);
    return rc;
}

void digest_free(struct digest *d)
{
    size_t i;

    for (i = 0; i < d->n_items; i++)
        item_free(&d->items[i]);
    xfree(d->items);
    xfree(d->audience);
    xfree(d->generated_at);
    memset(d, 0, sizeof(*d));
}
