/*
 * digest.c: upstream digest JSON → struct digest, and the ok/retry/final
 * table shared by every outbound HTTP call. Pure: no I/O, no clock.
 */
#include "digest/digest.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "config.h"
#include "core/json_scan.h"

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
        size_t n, run = 0, fit = max_chars - chars; /* chars <= max_chars here */
        size_t lim = len - i < fit ? len - i : fit;

        /* A run of ASCII but NUL (most of a digest), copied whole as far as it fits. */
        while (run < lim && p[i + run] - 1u < 0x7fu)
            run++;
        if (run) {
            /* cut: where code point max_chars - 1 ends, when it is in this run. */
            if (chars + 1 < max_chars && max_chars - 1 - chars <= run)
                cut = o + (max_chars - 1 - chars);
            memcpy(out + o, p + i, run);
            o += run;
            i += run;
            chars += run;
            continue;
        }
        n = utf8_valid_len(p + i, len - i);
        if (++chars > max_chars) {
            /* Too long: back up to the end of code point max_chars - 1. */
            o = cut;
            if (max_chars > 0) {
                memcpy(out + o, ELLIPSIS, 3);
                o += 3;
            }
            break;
        }
        if (n == 0) {
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

/*
 * What the scan keeps of a reply until it has seen all of it: a later
 * duplicate member replaces an earlier one (json-c's rule), so nothing is
 * copied out before json_scan_end. Every ptr points into the scan's buffer;
 * NULL is absent or not a string.
 */
enum item_field {
    ITEM_NAME,
    ITEM_TITLE,
    ITEM_COMPANY,
    ITEM_LOCATION,
    ITEM_SUMMARY,
    ITEM_URL,
    ITEM_COUNT
};

static const char *const item_names[ITEM_COUNT] = {"name",     "title",   "company",
                                                   "location", "summary", "url"};

struct text {
    const char *ptr;
    size_t len;
};

struct scan_item {
    struct text f[ITEM_COUNT];
};

struct scan_reply {
    struct text audience, generated_at;
    bool have_items; /* the last "items" was an array */
    size_t n_items, n_total;
    struct scan_item items[DIGEST_MAX_ITEMS]; /* the first n_items objects of it; last, unzeroed */
};

/* A string value into *t (NULs and all, as json-c kept it); absent when anything else. */
static void read_text(struct json_scan *s, struct text *t)
{
    struct json_scan_str v;

    t->ptr = NULL;
    t->len = 0;
    if (json_scan_peek(s) != JSON_SCAN_STRING) {
        json_scan_skip(s);
        return;
    }
    if (json_scan_string(s, &v) == 0) {
        t->ptr = v.ptr;
        t->len = v.len;
    }
}

/* One element of items[]: an object is counted and its first DIGEST_MAX_ITEMS kept. */
static void read_item(struct json_scan *s, struct scan_reply *r)
{
    struct scan_item *it = NULL;
    struct json_scan_str key;
    int f;

    if (json_scan_peek(s) != JSON_SCAN_OBJECT) {
        json_scan_skip(s);
        return;
    }
    json_scan_object(s);
    r->n_total++;
    if (r->n_items < DIGEST_MAX_ITEMS) {
        it = &r->items[r->n_items++];
        memset(it, 0, sizeof(*it));
    }
    while (json_scan_member(s, &key) == 1) {
        for (f = 0; it && f < ITEM_COUNT; f++) {
            if (json_scan_name_is(&key, item_names[f]))
                break;
        }
        if (it && f < ITEM_COUNT)
            read_text(s, &it->f[f]);
        else
            json_scan_skip(s);
    }
}

/* "items": an array replaces whatever an earlier "items" gave; anything else voids it. */
static void read_items(struct json_scan *s, struct scan_reply *r)
{
    r->n_items = 0;
    r->n_total = 0;
    r->have_items = json_scan_peek(s) == JSON_SCAN_ARRAY;
    if (!r->have_items) {
        json_scan_skip(s);
        return;
    }
    json_scan_array(s);
    while (json_scan_element(s) == 1)
        read_item(s, r);
}

/* The top-level object's members: the three digestd reads, the rest skipped. */
static void read_reply(struct json_scan *s, struct scan_reply *r)
{
    struct json_scan_str key;

    json_scan_object(s);
    while (json_scan_member(s, &key) == 1) {
        if (json_scan_name_is(&key, "items"))
            read_items(s, r);
        else if (json_scan_name_is(&key, "audience"))
            read_text(s, &r->audience);
        else if (json_scan_name_is(&key, "generated_at"))
            read_text(s, &r->generated_at);
        else
            json_scan_skip(s);
    }
}

/* A capped copy of t, or "" when absent. */
static char *text_cap(const struct text *t, size_t max_chars)
{
    return t->ptr ? digest_text_cap(t->ptr, t->len, max_chars) : xstrdup("");
}

static char *url_copy(const struct text *t)
{
    return t->ptr && url_ok(t->ptr, t->len) ? xstrndup(t->ptr, t->len) : xstrdup("");
}

static void item_fill(struct digest_item *it, const struct scan_item *si)
{
    it->name = text_cap(&si->f[ITEM_NAME], DIGEST_MAX_FIELD_CHARS);
    it->title = text_cap(&si->f[ITEM_TITLE], DIGEST_MAX_FIELD_CHARS);
    it->company = text_cap(&si->f[ITEM_COMPANY], DIGEST_MAX_FIELD_CHARS);
    it->location = text_cap(&si->f[ITEM_LOCATION], DIGEST_MAX_FIELD_CHARS);
    it->summary = text_cap(&si->f[ITEM_SUMMARY], DIGEST_MAX_SUMMARY_CHARS);
    it->url = url_copy(&si->f[ITEM_URL]);
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

/* Fills d from a reply scanned whole. */
static int digest_fill(struct digest *d, const struct scan_reply *r)
{
    size_t i;

    if (!r->have_items)
        return DG_ERR_FIELD;
    d->audience = text_cap(&r->audience, DIGEST_MAX_FIELD_CHARS);
    d->generated_at = text_cap(&r->generated_at, DIGEST_MAX_FIELD_CHARS);
    d->items = xcalloc(r->n_items, sizeof(*d->items));
    for (i = 0; i < r->n_items; i++)
        item_fill(&d->items[i], &r->items[i]);
    d->n_items = r->n_items;
    d->n_total = r->n_total;
    return 0;
}

/*
 * One pass of json_scan over a copy of the body, held to what json-c
 * (json_strict_object at JSON_MAX_DEPTH, UTF-8 unchecked) accepted and read
 * before, by tests/fuzz/fuzz_digest_diff.c: the depth counted json-c's way
 * and bytes from 0x80 up passed through strings unchecked (digest_text_cap
 * repairs them), so the only bodies it refuses that json-c took are the
 * RFC 8259 ones of json_scan.h (single-quoted names, numbers outside the
 * RFC's grammar, raw control bytes in strings).
 */
int digest_parse(struct digest *d, const char *body, size_t len)
{
    struct scan_reply *r = NULL;
    struct json_scan s;
    char *buf = NULL;
    int rc = DG_ERR_BAD_JSON;

    memset(d, 0, sizeof(*d));
    if (len > DIGEST_MAX_BODY_BYTES)
        return DG_ERR_TOO_LARGE;
    if (len == 0) /* body may be NULL then */
        return DG_ERR_BAD_JSON;
    buf = xmalloc(len);
    memcpy(buf, body, len);
    r = xmalloc(sizeof(*r));
    memset(r, 0, offsetof(struct scan_reply, items));
    json_scan_init_flags(&s, buf, len, JSON_MAX_DEPTH, JSON_SCAN_RAW_UTF8 | JSON_SCAN_DEPTH_VALUES);
    read_reply(&s, r);
    if (json_scan_end(&s) != 0)
        goto out;
    rc = digest_fill(d, r);
    if (rc != 0)
        digest_free(d);
out:
    xfree(r);
    xfree(buf);
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
