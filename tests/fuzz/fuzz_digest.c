/*
 * fuzz_digest.c: libFuzzer target for the upstream digest reply, the one
 * body the worker takes from a service it does not control. Each input goes
 * through digest_parse, and on success through the result card and its size
 * check, as the worker does; the raw bytes also go through the text cap and
 * the UTF-16 counter. Besides the sanitizers it checks the promises the
 * modules make, aborting when one is broken.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "teams/card.h"
#include "digest/digest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct card_address TO = {
    .bot_id = "28:bot",
    .user_id = "29:user",
    .conversation_id = "a:conv",
    .reply_to_id = "1",
};

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Code points in s when it is valid UTF-8 without overlongs or surrogates; else SIZE_MAX. */
static size_t utf8_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;

    while (*p) {
        size_t len = *p < 0x80                  ? 1
                     : *p >= 0xc2 && *p <= 0xdf ? 2
                     : *p >= 0xe0 && *p <= 0xef ? 3
                     : *p >= 0xf0 && *p <= 0xf4 ? 4
                                                : 0;
        uint32_t cp;
        size_t i;

        if (len == 0)
            return SIZE_MAX;
        cp = len == 1 ? *p : *p & (0x7f >> len);
        for (i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return SIZE_MAX;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return SIZE_MAX;
        p += len;
        n++;
    }
    return n;
}

static void check_text(const char *s, size_t max_chars)
{
    check(s != NULL);
    check(utf8_chars(s) <= max_chars);
}

static void check_item(const struct digest_item *it)
{
    check_text(it->name, DIGEST_MAX_FIELD_CHARS);
    check_text(it->title, DIGEST_MAX_FIELD_CHARS);
    check_text(it->company, DIGEST_MAX_FIELD_CHARS);
    check_text(it->location, DIGEST_MAX_FIELD_CHARS);
    check_text(it->summary, DIGEST_MAX_SUMMARY_CHARS);
    check(it->url != NULL);
    check(*it->url == '\0' || strncasecmp(it->url, "http://", 7) == 0 ||
          strncasecmp(it->url, "https://", 8) == 0);
    check(strlen(it->url) <= DIGEST_MAX_URL_BYTES);
}

/* The rendered activity parses back as JSON and fits the Teams limit. */
static void check_render(const struct digest *d)
{
    struct card_result_info in = {"advisors", "req-1", "qa@example.com", d};
    struct json_object *obj;
    char *out = NULL;
    size_t len = 0, shown = SIZE_MAX;

    /* Capped fields always leave room for the frame, so this cannot fail. */
    check(card_render_result(&TO, &in, &out, &len, &shown) == 0);
    check(shown <= CARD_MAX_ITEMS && shown <= d->n_items);
    check(strlen(out) == len);
    check(card_utf16_bytes(out, len) < CARD_MAX_UTF16_BYTES);
    obj = json_tokener_parse(out);
    check(obj != NULL);
    json_object_put(obj);
    xfree(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    struct digest d;
    char *capped;
    size_t i;

    capped = digest_text_cap(body, size, 64);
    check_text(capped, 64);
    xfree(capped);
    check(card_utf16_bytes(body, size) <= size * 2);

    if (digest_parse(&d, body, size) != 0)
        return 0;
    check_text(d.audience, DIGEST_MAX_FIELD_CHARS);
    check_text(d.generated_at, DIGEST_MAX_FIELD_CHARS);
    check(d.n_items <= DIGEST_MAX_ITEMS && d.n_items <= d.n_total);
    check(d.n_items == (d.n_total < DIGEST_MAX_ITEMS ? d.n_total : DIGEST_MAX_ITEMS));
    for (i = 0; i < d.n_items; i++)
        check_item(&d.items[i]);
    check_render(&d);
    digest_free(&d);
    return 0;
}
