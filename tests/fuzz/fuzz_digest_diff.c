/*
 * fuzz_digest_diff.c: differential libFuzzer target for the upstream
 * digest's parse (lib/digest/digest.c on lib/core/json_scan.c) against what
 * it replaced, json-c through json_strict_object (JSON_MAX_DEPTH in json-c's
 * count, UTF-8 unchecked) and the tree walk that read the fields, kept below
 * as the reference and used nowhere else. It aborts unless:
 *
 * - the scanner never accepts what json-c refuses, and returns the same
 *   code whenever json-c refuses (DG_ERR_BAD_JSON, DG_ERR_TOO_LARGE);
 * - json-c parses what the scanner refuses only for the documented reasons
 *   (json_scan.h): the RFC 8259 checker (rfc8259.h, UTF-8 unchecked) finds a
 *   single-quoted member name, a number RFC 8259 does not allow (NaN and
 *   Infinity included) or a raw control character in a string first;
 * - otherwise the same code (0 or DG_ERR_FIELD) and, for 0, every field of
 *   struct digest equal byte for byte, n_items and n_total included.
 *
 * Depth is not checked by the checker on purpose: a depth verdict that
 * differs shows as a refusal with RFC_OK, which aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "digest/digest.h"
#include "core/buf.h"
#include "core/json_strict.h"
#include "config.h"
#include "rfc8259.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* --- the reference: digest.c's json-c parse before the scanner ------------ */

static char *ref_opt_text(struct json_object *obj, const char *key, size_t max_chars)
{
    struct json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return xstrdup("");
    return digest_text_cap(json_object_get_string(v), (size_t)json_object_get_string_len(v),
                           max_chars);
}

static bool ref_url_ok(const char *s, size_t len)
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

static char *ref_opt_url(struct json_object *obj)
{
    struct json_object *v;
    const char *s;
    size_t len;

    if (!json_object_object_get_ex(obj, "url", &v) || !json_object_is_type(v, json_type_string))
        return xstrdup("");
    s = json_object_get_string(v);
    len = (size_t)json_object_get_string_len(v);
    return ref_url_ok(s, len) ? xstrndup(s, len) : xstrdup("");
}

static void ref_item_fill(struct digest_item *it, struct json_object *obj)
{
    it->name = ref_opt_text(obj, "name", DIGEST_MAX_FIELD_CHARS);
    it->title = ref_opt_text(obj, "title", DIGEST_MAX_FIELD_CHARS);
    it->company = ref_opt_text(obj, "company", DIGEST_MAX_FIELD_CHARS);
    it->location = ref_opt_text(obj, "location", DIGEST_MAX_FIELD_CHARS);
    it->summary = ref_opt_text(obj, "summary", DIGEST_MAX_SUMMARY_CHARS);
    it->url = ref_opt_url(obj);
}

static int ref_fill(struct digest *d, struct json_object *root)
{
    struct json_object *items;
    size_t i, n;

    if (!json_object_object_get_ex(root, "items", &items) ||
        !json_object_is_type(items, json_type_array))
        return DG_ERR_FIELD;
    d->audience = ref_opt_text(root, "audience", DIGEST_MAX_FIELD_CHARS);
    d->generated_at = ref_opt_text(root, "generated_at", DIGEST_MAX_FIELD_CHARS);
    n = json_object_array_length(items);
    d->items = xcalloc(n < DIGEST_MAX_ITEMS ? n : DIGEST_MAX_ITEMS, sizeof(*d->items));
    for (i = 0; i < n; i++) {
        struct json_object *obj = json_object_array_get_idx(items, i);

        if (!json_object_is_type(obj, json_type_object))
            continue;
        d->n_total++;
        if (d->n_items < DIGEST_MAX_ITEMS)
            ref_item_fill(&d->items[d->n_items++], obj);
    }
    return 0;
}

static int ref_parse(struct digest *d, const char *body, size_t len)
{
    struct json_object *root = NULL;
    int rc;

    memset(d, 0, sizeof(*d));
    if (len > DIGEST_MAX_BODY_BYTES)
        return DG_ERR_TOO_LARGE;
    rc = json_strict_object(body, len, JSON_MAX_DEPTH, false, &root);
    if (rc != 0)
        return rc;
    rc = ref_fill(d, root);
    json_object_put(root);
    if (rc != 0)
        digest_free(d);
    return rc;
}

/* --- the comparison --------------------------------------------------------- */

static void same_item(const struct digest_item *a, const struct digest_item *b)
{
    check(strcmp(a->name, b->name) == 0);
    check(strcmp(a->title, b->title) == 0);
    check(strcmp(a->company, b->company) == 0);
    check(strcmp(a->location, b->location) == 0);
    check(strcmp(a->summary, b->summary) == 0);
    check(strcmp(a->url, b->url) == 0);
}

static void same_digest(const struct digest *a, const struct digest *b)
{
    size_t i;

    check(strcmp(a->audience, b->audience) == 0);
    check(strcmp(a->generated_at, b->generated_at) == 0);
    check(a->n_items == b->n_items);
    check(a->n_total == b->n_total);
    for (i = 0; i < a->n_items; i++)
        same_item(&a->items[i], &b->items[i]);
}

static bool documented(enum rfc_class cls)
{
    return cls == RFC_SQUOTE || cls == RFC_NUMBER || cls == RFC_CONTROL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct digest ref, got;
    int jc = ref_parse(&ref, (const char *)data, size);
    int sc = digest_parse(&got, (const char *)data, size);

    if (jc == DG_ERR_BAD_JSON || jc == DG_ERR_TOO_LARGE) {
        check(sc == jc);
    } else if (sc != jc) {
        /* json-c parsed it (0 or DG_ERR_FIELD): only a documented refusal may differ. */
        check(sc == DG_ERR_BAD_JSON);
        check(documented(rfc8259_check(data, size, false, 0).cls));
    } else if (sc == 0) {
        same_digest(&got, &ref);
    }
    if (jc == 0)
        digest_free(&ref);
    if (sc == 0)
        digest_free(&got);
    return 0;
}
