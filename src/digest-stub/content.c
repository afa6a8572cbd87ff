/*
 * stub_content.c: digest replies, Teams activities and card names for
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

/* ------------------------------------------------------------- activity */

int stub_conv_kind_parse(const char *s, enum stub_conv_kind *out)
{
    static const char *const names[] = {"personal", "channel", "group"};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum stub_conv_kind)i;
            return 0;
        }
    }
    return DG_ERR_INVALID;
}

/* Who talks, where: the identities of the research fixtures (§1.2). */
struct conv_profile {
    const char *user_id, *user_name, *aad_id;
    const char *conv_type, *conv_id, *tenant_id;
    const char *team_id; /* channel only */
    bool mention;
};

static const struct conv_profile profiles[] = {
    [STUB_CONV_PERSONAL] =
        {"29:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB39ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt7CZ-"
         "NJWi7me2kHTL3Bw",
         "Megan Bowen", "7faf8ab2-3d56-4244-b585-20c8a42ed2b8", "personal",
         "a:17I0kl9EkpE1O9PH5TWrzrLNwnWWcfrU7QZjKR0WSfOpzbfcAg2IaydGElSo10tVr4C7Fc6GtieTJX663WuJCc"
         "1uA83n4CSrHSgGBj5XNYLcVlJAs2ZX8DbYBPck201w-",
         "72f988bf-86f1-41af-91ab-2d7cd011db47", NULL, false},
    [STUB_CONV_CHANNEL] =
        {"29:17bUvCasIPKfQIXHvNzcPjD86fwm6GkWc1PvCGP2-NSkNb7AyGYpjQ7Xw-"
         "XgTwaHW5JxZ4KMNDxn1kcL8fwX1Nw",
         "rido", "b15a9416-0ad3-4172-9210-7beb711d3f70", "channel",
         "19:6848757105754c8981c67612732d9aa7@thread.tacv2;messageid=1759881511856",
         "50612dbb-0237-4969-b378-8d42590f9c00",
         "19:66P469zibfbsGI-_a0aN_toLTZpyzS6u7CT3TsXdgPw1@thread.tacv2", true},
    [STUB_CONV_GROUP] =
        {"29:1GcS4EyB_oSI8A88XmWBN7NJFyMqe3QGnJdgLfFGkJnVelzRGos0bfOlb6yOHNGtuQUT1Bg", "User One",
         "4a7e2c1b-93d5-4f0e-8b6a-2d9c5e1f7a30", "groupChat",
         "19:9d2f6a0c4b7e41d8a3c5e7f9b1d2c4e6@thread.v2", "8c0f3a1e-5b2d-4e6f-9a7c-1d3b5e7f9a2c",
         NULL, true},
};

/* Escapes text for the text/html attachment Teams adds beside the message. */
static int append_html_escaped(struct buf *b, const char *s)
{
    int err = 0;

    for (; *s && !err; s++) {
        if (*s == '<')
            err = buf_append_str(b, "&lt;");
        else if (*s == '>')
            err = buf_append_str(b, "&gt;");
        else if (*s == '&')
            err = buf_append_str(b, "&amp;");
        else
            err = buf_append(b, s, 1);
    }
    return err;
}

/* A ChannelAccount {"id","name"[,"aadObjectId"]}. */
static struct json_object *account(const char *id, const char *name, const char *aad)
{
    struct json_object *a = json_object_new_object();

    jadd_str(a, "id", id);
    jadd_str(a, "name", name);
    if (aad)
        jadd_str(a, "aadObjectId", aad);
    return a;
}

/* isGroup only where Teams sends it: group chats and channels. */
static struct json_object *conversation(const struct conv_profile *p, const char *conv_id)
{
    struct json_object *c = json_object_new_object();

    if (p->mention)
        json_object_object_add(c, "isGroup", json_object_new_boolean(1));
    jadd_str(c, "conversationType", p->conv_type);
    jadd_str(c, "tenantId", p->tenant_id);
    jadd_str(c, "id", conv_id);
    return c;
}

/*
 * The bot's mention (channel and group chats: digestd strips it from the
 * text by this entity) and the clientInfo entity Teams always adds.
 */
static struct json_object *entities(const struct conv_profile *p, const char *bot_id)
{
    struct json_object *list = json_object_new_array(), *m, *who, *ci;

    if (p->mention) {
        m = json_object_new_object();
        who = json_object_new_object();
        jadd_str(who, "id", bot_id);
        jadd_str(who, "name", STUB_BOT_NAME);
        json_object_object_add(m, "mentioned", who);
        jadd_str(m, "text", "<at>" STUB_BOT_NAME "</at>");
        jadd_str(m, "type", "mention");
        json_object_array_add(list, m);
    }
    ci = json_object_new_object();
    jadd_str(ci, "locale", "en-US");
    jadd_str(ci, "country", "US");
    jadd_str(ci, "platform", "Web");
    jadd_str(ci, "timezone", "America/Los_Angeles");
    jadd_str(ci, "type", "clientInfo");
    json_object_array_add(list, ci);
    return list;
}

/* tenant everywhere; team and channel only in channel conversations (T-CONV). */
static struct json_object *channel_data(const struct conv_profile *p)
{
    struct json_object *cd = json_object_new_object(), *t = json_object_new_object();

    if (p->team_id) {
        /* The channel is the conversation id without its ;messageid= suffix. */
        const char *semi = strchr(p->conv_id, ';');
        struct json_object *ch = json_object_new_object(), *team = json_object_new_object();
        json_object_object_add(ch, "id",
                               json_object_new_string_len(p->conv_id, (int)(semi - p->conv_id)));
        json_object_object_add(cd, "channel", ch);
        jadd_str(team, "id", p->team_id);
        json_object_object_add(cd, "team", team);
    }
    jadd_str(t, "id", p->tenant_id);
    json_object_object_add(cd, "tenant", t);
    return cd;
}

/* The text/html rendering of a message with a mention, as Teams attaches it. */
static int html_attachment(const char *text, struct json_object **out)
{
    struct json_object *list, *a;
    struct buf html;
    int err;

    buf_init(&html, 64 * 1024);
    err = buf_append_str(&html, "<p><span itemtype=\"http://schema.skype.com/Mention\" "
                                "itemscope=\"\" itemid=\"0\">" STUB_BOT_NAME "</span>&nbsp;");
    if (!err)
        err = append_html_escaped(&html, text);
    if (!err)
        err = buf_append_str(&html, "</p>");
    if (!err) {
        list = json_object_new_array();
        a = json_object_new_object();
        jadd_str(a, "contentType", "text/html");
        jadd_str(a, "content", buf_cstr(&html));
        json_object_array_add(list, a);
        *out = list;
    }
    buf_free(&html);
    return err;
}

int stub_activity_json(const struct stub_activity_spec *spec, struct buf *out)
{
    const struct conv_profile *p = &profiles[spec->kind];
    const char *conv_id =
        spec->conversation_id && *spec->conversation_id ? spec->conversation_id : p->conv_id;
    struct json_object *a = json_object_new_object(), *att = NULL;
    struct buf s;
    char bot_id[256];
    int err = 0;

    buf_init(&s, 64 * 1024);
    snprintf(bot_id, sizeof(bot_id), "28:%s", spec->app_id);
    jadd_str(a, "type", "message");
    jadd_str(a, "id", spec->id);
    jadd_str(a, "timestamp", spec->timestamp);
    jadd_str(a, "serviceUrl", spec->service_url);
    jadd_str(a, "channelId", "msteams");
    json_object_object_add(a, "from", account(p->user_id, p->user_name, p->aad_id));
    json_object_object_add(a, "conversation", conversation(p, conv_id));
    json_object_object_add(a, "recipient", account(bot_id, STUB_BOT_NAME, NULL));
    jadd_str(a, "textFormat", "plain");
    if (p->mention) {
        /* Group chats end the text with a newline, as fixture (c) shows. */
        err = buf_printf(&s, "<at>%s</at> %s%s", STUB_BOT_NAME, spec->text,
                         spec->kind == STUB_CONV_GROUP ? "\n" : "");
        if (!err)
            err = html_attachment(spec->text, &att);
        if (!err)
            json_object_object_add(a, "attachments", att);
    }
    jadd_str(a, "text", p->mention ? buf_cstr(&s) : spec->text);
    json_object_object_add(a, "entities", entities(p, bot_id));
    json_object_object_add(a, "channelData", channel_data(p));
    jadd_str(a, "locale", "en-US");
    if (!err)
        err = append_json(a, out);
    json_object_put(a);
    buf_free(&s);
    return err;
}

/* ----------------------------------------------------------------- cards */

/* A string member of o, or NULL when absent or not a string. */
static const char *str_member(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static void set_field(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* Kind from the card's first top-level TextBlock (src/card.c's headings). */
static const char *kind_from_heading(struct json_object *block)
{
    static const struct {
        const char *heading, *kind;
    } map[] = {
        {"Digest requested", "ack"},     {"Digest delivered", "ack-delivered"},
        {"Digest failed", "ack-failed"}, {"Candidate digest: commands", "help"},
        {"Candidate digest", "result"},  {"Digest request status", "status"},
    };
    const char *text = str_member(block, "text"), *color = str_member(block, "color");
    size_t i;

    for (i = 0; text && i < ARRAY_SIZE(map); i++) {
        if (strcmp(text, map[i].heading) == 0)
            return map[i].kind;
    }
    /* Error cards open with a heading in the Attention colour. */
    if (color && strcmp(color, "Attention") == 0)
        return "error";
    return "card";
}

/* The value of the "Request" fact in any top-level FactSet, or NULL. */
static const char *request_fact(struct json_object *body)
{
    size_t i, j, n = json_object_array_length(body);

    for (i = 0; i < n; i++) {
        struct json_object *el = json_object_array_get_idx(body, i), *facts;
        const char *type = str_member(el, "type");
        if (!type || strcmp(type, "FactSet") != 0 ||
            !json_object_object_get_ex(el, "facts", &facts) ||
            !json_object_is_type(facts, json_type_array))
            continue;
        for (j = 0; j < json_object_array_length(facts); j++) {
            struct json_object *f = json_object_array_get_idx(facts, j);
            const char *title = str_member(f, "title");
            if (title && strcmp(title, "Request") == 0)
                return str_member(f, "value");
        }
    }
    return NULL;
}

static void describe_card(struct json_object *card, struct stub_card *out)
{
    struct json_object *body;
    size_t i, n;

    set_field(out->kind, sizeof(out->kind), "card");
    if (!json_object_object_get_ex(card, "body", &body) ||
        !json_object_is_type(body, json_type_array))
        return;
    n = json_object_array_length(body);
    for (i = 0; i < n; i++) {
        struct json_object *el = json_object_array_get_idx(body, i);
        const char *type = str_member(el, "type");
        /* A test-mode banner is a Container before the heading: skip it. */
        if (type && strcmp(type, "TextBlock") == 0) {
            set_field(out->kind, sizeof(out->kind), kind_from_heading(el));
            break;
        }
    }
    set_field(out->request_id, sizeof(out->request_id), request_fact(body));
}

void stub_card_describe(struct json_object *activity, struct stub_card *out)
{
    struct json_object *atts, *card;

    set_field(out->kind, sizeof(out->kind), "none");
    out->request_id[0] = '\0';
    if (!activity || !json_object_is_type(activity, json_type_object))
        return;
    if (json_object_object_get_ex(activity, "attachments", &atts) &&
        json_object_is_type(atts, json_type_array) && json_object_array_length(atts) > 0 &&
        json_object_object_get_ex(json_object_array_get_idx(atts, 0), "content", &card) &&
        json_object_is_type(card, json_type_object)) {
        describe_card(card, out);
        return;
    }
    if (str_member(activity, "text"))
        set_field(out->kind, sizeof(out->kind), "text");
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
