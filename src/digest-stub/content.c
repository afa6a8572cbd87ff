/*
 * content.c: digest replies, Teams activities and card names for
 * digest-stub. JSON is built with json-c so every string is escaped once,
 * in one place.
 */
#include "content.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

/* --------------------------------------------------------------- digest */

static const char *const first_names[] = {
    "Amara",  "José",   "Priya",  "Liam",   "Zoë",   "Kenji",  "Fatima",
    "Søren",  "Chloé",  "Mateo",  "Aisha",  "Björn", "Mei",    "Oluwaseun",
    "Hannah", "Rafael", "Ingrid", "Tomasz", "Yara",  "Daniel",
};
static const char *const last_names[] = {
    "Okafor",    "García", "Raghunathan", "O'Brien",  "Lindqvist", "Watanabe", "Haddad",
    "Kowalczyk", "Dubois", "Fernández",   "Mensah",   "Nakamura",  "Schultz",  "Nguyễn",
    "Adeyemi",   "Rossi",  "Whitfield",   "Castillo", "Brennan",   "Al-Sayed",
};
static const char *const advisor_titles[] = {
    "Senior Financial Advisor",
    "Wealth Manager",
    "Private Banker",
    "Portfolio Manager",
    "Certified Financial Planner",
    "Relationship Manager, High Net Worth",
    "Retirement Specialist",
};
static const char *const csuite_titles[] = {
    "Chief Financial Officer", "Chief Operating Officer", "Chief Technology Officer",
    "Chief Executive Officer", "Chief Risk Officer",      "Chief People Officer",
};
static const char *const global_titles[] = {
    "Head of Operations, EMEA",    "Regional Director, APAC", "VP Global Partnerships",
    "Managing Director, Americas", "Head of Compliance",      "Director of Investor Relations",
};
static const char *const companies[] = {
    "Northwind Capital",      "Fabrikam Wealth",        "Contoso Partners",
    "Tailspin Advisory",      "Woodgrove Bank",         "Litware Holdings",
    "Adatum Securities",      "Proseware Group",        "Alpine Ridge Asset Management",
    "Blue Yonder Trust",      "Margie's Family Office", "Trey Research & Co",
    "Wide World Investments", "Coho Financial",         "Lucerne Capital",
};
static const char *const locations[] = {
    "New York, NY",      "London, UK",         "Singapore",         "Zürich, Switzerland",
    "Toronto, ON",       "Chicago, IL",        "São Paulo, Brazil", "Dubai, UAE",
    "Sydney, Australia", "Frankfurt, Germany", "San Francisco, CA", "Hong Kong",
    "Boston, MA",        "Paris, France",      "Remote (US)",
};
static const char *const specialties[] = {
    "retirement income planning",
    "multi-generational wealth transfer",
    "ESG portfolios",
    "equity compensation for tech founders",
    "cross-border tax planning",
    "M&A integration",
    "digital transformation of client service",
    "alternative investments",
};
uint64_t stub_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One element of a list, chosen by the generator. */
static const char *pick(uint64_t *state, const char *const *list, size_t n)
{
    return list[stub_rand_next(state) % n];
}

/* FNV-1a, so that each audience starts the generator somewhere else. */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void jadd_str(struct json_object *o, const char *key, const char *val)
{
    json_object_object_add(o, key, json_object_new_string(val));
}

/*
 * Titles that fit the audience, so a c_suite digest lists chief officers;
 * an audience the stub does not know gets the global ones.
 */
static const char *const *titles_for(const char *audience, size_t *n)
{
    if (strcasecmp(audience, "c_suite") == 0) {
        *n = ARRAY_SIZE(csuite_titles);
        return csuite_titles;
    }
    if (strcasecmp(audience, "advisors") == 0) {
        *n = ARRAY_SIZE(advisor_titles);
        return advisor_titles;
    }
    *n = ARRAY_SIZE(global_titles);
    return global_titles;
}

/* One candidate drawn from state. */
static struct json_object *digest_item(uint64_t *state, const char *audience)
{
    struct json_object *it = json_object_new_object();
    const char *first = pick(state, first_names, ARRAY_SIZE(first_names));
    const char *last = pick(state, last_names, ARRAY_SIZE(last_names));
    size_t n_titles;
    const char *const *titles = titles_for(audience, &n_titles);
    const char *spec = pick(state, specialties, ARRAY_SIZE(specialties));
    unsigned shape = (unsigned)(stub_rand_next(state) % 4);
    unsigned years = 4 + (unsigned)(stub_rand_next(state) % 25);
    unsigned other = 5 + (unsigned)(stub_rand_next(state) % 60);
    char text[256], name[96], url[128];

    snprintf(name, sizeof(name), "%s %s", first, last);
    jadd_str(it, "name", name);
    jadd_str(it, "title", pick(state, titles, n_titles));
    jadd_str(it, "company", pick(state, companies, ARRAY_SIZE(companies)));
    jadd_str(it, "location", pick(state, locations, ARRAY_SIZE(locations)));
    /* A few sentence shapes, so that cards do not look machine-made at a glance. */
    switch (shape) {
    case 0:
        snprintf(text, sizeof(text),
                 "%u years in %s; grew a book of business by %u%% over the "
                 "last three years.",
                 years, spec, other);
        break;
    case 1:
        snprintf(text, sizeof(text), "Known for %s after %u years in the field; led a team of %u.",
                 spec, years, other);
        break;
    case 2:
        snprintf(text, sizeof(text),
                 "Moved into %s %u years ago and now oversees about %u "
                 "client relationships.",
                 spec, years, other * 3);
        break;
    default:
        snprintf(text, sizeof(text),
                 "Recognised speaker on %s with %u years of experience; "
                 "open to relocation (%u%% travel).",
                 spec, years, other % 50);
        break;
    }
    jadd_str(it, "summary", text);
    snprintf(url, sizeof(url), "https://talentwell.example.com/candidates/%016llx",
             (unsigned long long)stub_rand_next(state));
    jadd_str(it, "url", url);
    return it;
}

/* Compact, and "/" unescaped as the real services send it. */
static int append_json(struct json_object *o, struct buf *out)
{
    size_t len;
    const char *text = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    return buf_append(out, text, len);
}

int stub_digest_json(const char *audience, uint64_t seed, unsigned n_items,
                     const char *generated_at, struct buf *out)
{
    struct json_object *d = json_object_new_object(), *items = json_object_new_array();
    uint64_t state = hash_str(audience) ^ (seed * 0x2545f4914f6cdd1dull);
    unsigned i;
    int err;

    if (n_items > STUB_ITEMS_MAX)
        n_items = STUB_ITEMS_MAX;
    jadd_str(d, "audience", audience);
    jadd_str(d, "generated_at", generated_at);
    for (i = 0; i < n_items; i++)
        json_object_array_add(items, digest_item(&state, audience));
    json_object_object_add(d, "items", items);
    err = append_json(d, out);
    json_object_put(d);
    return err;
}

/* ------------------------------------------------------------- decoding */

struct json_object *stub_json_parse(const char *text, size_t len)
{
    struct json_tokener *tok = json_tokener_new_ex(64);
    struct json_object *o;

    if (!tok)
        abort(); /* json-c's only failure here is out of memory */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, text, (int)len);
    /* Trailing bytes (a second value, a NUL and more) make it not JSON. */
    if (o && json_tokener_get_parse_end(tok) != len) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* The value of one hex digit, or -1. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX escapes, and '+' as a space when plus_is_space. */
static int decode(const char *s, size_t len, bool plus_is_space, struct buf *out)
{
    size_t i;
    int err = 0;

    for (i = 0; i < len && !err; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
            /* %00 would cut the C string the decoded value becomes. */
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return DG_ERR_INVALID;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        err = buf_append(out, &c, 1);
    }
    return err;
}

int stub_percent_decode(const char *s, size_t len, struct buf *out)
{
    return decode(s, len, false, out);
}

int stub_form_get(const char *form, size_t len, const char *key, struct buf *out)
{
    size_t klen = strlen(key), i = 0;

    while (i < len) {
        const char *pair = form + i, *amp = memchr(pair, '&', len - i);
        size_t plen = amp ? (size_t)(amp - pair) : len - i;
        if (plen > klen && memcmp(pair, key, klen) == 0 && pair[klen] == '=')
            return decode(pair + klen + 1, plen - klen - 1, true, out);
        if (plen == klen && memcmp(pair, key, klen) == 0)
            return 0; /* "key" alone: present and empty */
        i += plen + 1;
    }
    return DG_ERR_FIELD;
}
