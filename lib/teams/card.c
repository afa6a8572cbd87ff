/*
 * card.c: Adaptive Card 1.5 builders and the reply activity around them.
 * Only elements Teams renders for bot cards are used: TextBlock, FactSet,
 * Container (styles default/attention/emphasis) and ActionSet with
 * Action.OpenUrl (research/botframework.md §4.4). The builders put every
 * user-visible string in as a json-c string, so json-c does all escaping;
 * the writers at the end (acknowledgment, result, error) escape exactly as
 * json-c does and are held to the builders' bytes by tests and fuzz_card.c.
 */
#include "teams/card.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "core/json_build.h"
#include "core/json_write.h"

/* The separator between title, company and location: " · ". */
#define DOT " \xc2\xb7 "

/* s unless it is NULL or empty: every input string is optional to the builders. */
static const char *str_or(const char *s, const char *dflt)
{
    return s && *s ? s : dflt;
}

/* {"type":"AdaptiveCard","$schema":…,"version":"1.5","body":[]}; *body borrows the array. */
static struct json_object *card_new(struct json_object **body)
{
    struct json_object *card = jobj();

    jset_str(card, "type", "AdaptiveCard");
    jset_str(card, "$schema", CARD_SCHEMA);
    jset_str(card, "version", CARD_VERSION);
    *body = jarr();
    jset(card, "body", *body);
    return card;
}

/* A wrapping TextBlock; the caller adds weight/size/colour as needed. */
static struct json_object *text_block(const char *text)
{
    struct json_object *t = jobj();

    jset_str(t, "type", "TextBlock");
    jset_str(t, "text", text);
    jset(t, "wrap", json_object_new_boolean(1));
    return t;
}

static void push_text(struct json_object *body, const char *text)
{
    jpush(body, text_block(text));
}

/* Medium and bold: plain 1.0 properties, rendered by every Teams client. */
static void push_heading(struct json_object *body, const char *text)
{
    struct json_object *t = text_block(text);

    jset_str(t, "size", "Medium");
    jset_str(t, "weight", "Bolder");
    jpush(body, t);
}

/* A grey line tucked under the previous one (the title line under a name). */
static void push_subtle(struct json_object *body, const char *text)
{
    struct json_object *t = text_block(text);

    jset(t, "isSubtle", json_object_new_boolean(1));
    jset_str(t, "spacing", "None");
    jpush(body, t);
}

/* A FactSet; facts are added with fact_add and an empty value is skipped. */
static struct json_object *fact_set(struct json_object *body)
{
    struct json_object *fs = jobj();
    struct json_object *facts = jarr();

    jset_str(fs, "type", "FactSet");
    jset(fs, "facts", facts);
    jpush(body, fs);
    return facts;
}

static void fact_add(struct json_object *facts, const char *title, const char *value)
{
    struct json_object *f;

    if (!value || !*value)
        return;
    f = jobj();
    jset_str(f, "title", title);
    jset_str(f, "value", value);
    jpush(facts, f);
}

/* A Container with a style ("attention", "emphasis"); returns its items array. */
static struct json_object *container(struct json_object *body, const char *style, bool separator)
{
    struct json_object *c = jobj();
    struct json_object *items = jarr();

    jset_str(c, "type", "Container");
    if (style)
        jset_str(c, "style", style);
    if (separator) {
        jset(c, "separator", json_object_new_boolean(1));
        jset_str(c, "spacing", "Medium");
    }
    jset(c, "items", items);
    jpush(body, c);
    return items;
}

static void push_open_url(struct json_object *body, const char *title, const char *url)
{
    struct json_object *set = jobj();
    struct json_object *actions = jarr();
    struct json_object *a = jobj();

    jset_str(a, "type", "Action.OpenUrl");
    jset_str(a, "title", title);
    jset_str(a, "url", url);
    jpush(actions, a);
    jset_str(set, "type", "ActionSet");
    jset(set, "actions", actions);
    jpush(body, set);
}

/* Formats into a capped struct buf; texts here are ours and short. Owned. */
static char *text_vprintf(const char *fmt, va_list ap) PRINTF_LIKE(1, 0);
static char *text_vprintf(const char *fmt, va_list ap)
{
    struct buf b;

    buf_init(&b, 1u << 20);
    if (buf_vprintf(&b, fmt, ap) != 0)
        buf_reset(&b); /* only past 1 MiB, which the size check refuses anyway */
    return buf_take(&b);
}

static char *text_printf(const char *fmt, ...) PRINTF_LIKE(1, 2);
static char *text_printf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = text_vprintf(fmt, ap);
    va_end(ap);
    return s;
}

static void push_textf(struct json_object *body, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void push_textf(struct json_object *body, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = text_vprintf(fmt, ap);
    va_end(ap);
    push_text(body, s);
    xfree(s);
}

static void push_test_banner(struct json_object *body, const char *test_email)
{
    struct json_object *items;
    struct json_object *t;

    if (!test_email || !*test_email)
        return;
    items = container(body, "attention", false);
    t = text_block("TEST MODE");
    jset_str(t, "weight", "Bolder");
    jset_str(t, "color", "Attention");
    jpush(items, t);
    push_textf(items, "Test address: %s", test_email);
}

/*
 * The same card serves the post and the later update (PUT), so the layout
 * stays put and only the heading and the closing sentence change: Teams
 * swaps the card in place and the user sees its state flip.
 */
struct json_object *card_ack(const struct card_ack_info *in)
{
    struct json_object *body;
    struct json_object *card = card_new(&body);
    struct json_object *facts;
    const char *id = str_or(in->request_id, "");

    switch (in->state) {
    case CARD_ACK_QUEUED:
        push_heading(body, "Digest requested");
        break;
    case CARD_ACK_DELIVERED:
        push_heading(body, "Digest delivered");
        break;
    case CARD_ACK_FAILED:
        push_heading(body, "Digest failed");
        break;
    }
    facts = fact_set(body);
    fact_add(facts, "Audience", in->audience);
    fact_add(facts, "Request", id);
    fact_add(facts, "Test address", in->test_email);
    switch (in->state) {
    case CARD_ACK_QUEUED:
        push_textf(body,
                   "I'm preparing the digest and will post it in this conversation when "
                   "it is ready, usually within a minute. Send \"status %s\" to check on it.",
                   id);
        break;
    case CARD_ACK_DELIVERED:
        push_text(body, "The digest has been posted in this conversation.");
        break;
    case CARD_ACK_FAILED:
        push_text(body, "The digest could not be prepared; the error message in this "
                        "conversation says why. Send the same command again to retry.");
        break;
    }
    return card;
}

/* "title · company · location", skipping empty parts; owned. */
static char *item_line(const struct digest_item *it)
{
    const char *parts[] = {it->title, it->company, it->location};
    struct buf b;
    size_t i;
    int rc = 0;

    buf_init(&b, 1u << 20);
    for (i = 0; i < ARRAY_SIZE(parts) && rc == 0; i++) {
        if (!parts[i] || !*parts[i])
            continue;
        if (b.len > 0)
            rc = buf_append_str(&b, DOT);
        if (rc == 0)
            rc = buf_append_str(&b, parts[i]);
    }
    return buf_take(&b);
}

/*
 * One Container per candidate, separated by a rule. The button sits in an
 * ActionSet inside the container, next to the person it opens, instead of in
 * the card's own actions row, where ten look-alike buttons would not say
 * which is whose (and hosts may cap how many they show).
 */
static void push_item(struct json_object *body, const struct digest_item *it)
{
    struct json_object *items = container(body, NULL, true);
    struct json_object *name = text_block(str_or(it->name, "(name not given)"));
    char *line = item_line(it);

    jset_str(name, "weight", "Bolder");
    jpush(items, name);
    if (*line)
        push_subtle(items, line);
    xfree(line);
    if (it->summary && *it->summary)
        push_text(items, it->summary);
    if (it->url && *it->url)
        push_open_url(items, "Open profile", it->url);
}

/* The "Showing 7 of 14" line, and why, when not every candidate is on the card. */
static void push_omitted(struct json_object *body, size_t shown, size_t total, size_t size_cut)
{
    if (shown >= total)
        return;
    if (size_cut > 0)
        push_textf(body,
                   "Showing %zu of %zu candidates; %zu left out to keep the message "
                   "within the Teams size limit.",
                   shown, total, size_cut);
    else
        push_textf(body, "Showing %zu of %zu candidates.", shown, total);
}

/*
 * The TEST MODE banner comes first so that a forwarded screenshot cannot
 * lose it; "no new candidates" is a sentence, not an empty card, so the user
 * can tell "nothing new" from "something broke".
 */
struct json_object *card_result(const struct card_result_info *in, size_t max_items)
{
    const struct digest *d = in->digest;
    struct json_object *body;
    struct json_object *card = card_new(&body);
    struct json_object *facts;
    size_t fit = d->n_items < CARD_MAX_ITEMS ? d->n_items : CARD_MAX_ITEMS;
    size_t shown = fit < max_items ? fit : max_items;
    size_t i;

    push_test_banner(body, in->test_email);
    push_heading(body, "Candidate digest");
    facts = fact_set(body);
    fact_add(facts, "Audience", in->audience);
    fact_add(facts, "Generated", str_or(d->generated_at, "not given"));
    fact_add(facts, "Request", in->request_id);
    if (d->n_total == 0) {
        push_textf(body, "No new candidates for %s this time.",
                   str_or(in->audience, "this audience"));
        return card;
    }
    for (i = 0; i < shown; i++)
        push_item(body, &d->items[i]);
    push_omitted(body, shown, d->n_total, fit - shown);
    return card;
}

/*
 * Heading in the attention colour, the detail, then the request id and the
 * next step as facts: the id is what the user quotes when asking for help.
 */
struct json_object *card_error(const struct card_error_info *in)
{
    struct json_object *body;
    struct json_object *card = card_new(&body);
    struct json_object *t = text_block(str_or(in->what, "Something went wrong"));
    struct json_object *facts;

    jset_str(t, "size", "Medium");
    jset_str(t, "weight", "Bolder");
    jset_str(t, "color", "Attention");
    jpush(body, t);
    if (in->detail && *in->detail)
        push_text(body, in->detail);
    facts = fact_set(body);
    fact_add(facts, "Request", in->request_id);
    fact_add(facts, "What to do", str_or(in->next, "Try again in a few minutes."));
    return card;
}

/*
 * The audiences come from the configuration, so the card never lists one the
 * server would then refuse.
 */
struct json_object *card_help(char *const *audiences, size_t n)
{
    struct json_object *body;
    struct json_object *card = card_new(&body);
    struct json_object *facts;
    struct buf b;
    size_t i;
    int rc = 0;

    push_heading(body, "Candidate digest: commands");
    facts = fact_set(body);
    fact_add(facts, "digest <audience> [test-email]",
             "Prepare a digest of new candidates; with a test email the result is marked "
             "TEST MODE.");
    fact_add(facts, "status [request-id]",
             "Show how a request is going, or the latest one in this conversation.");
    fact_add(facts, "help", "Show this card.");
    buf_init(&b, 1u << 16);
    for (i = 0; i < n && rc == 0; i++)
        rc = buf_printf(&b, "%s%s", i ? ", " : "", audiences[i]);
    push_textf(body, "Audiences: %s", b.len ? buf_cstr(&b) : "none configured");
    buf_free(&b);
    return card;
}

/* The value of field in the record, or NULL. */
static const char *rec_get(const struct card_status_info *in, const char *field)
{
    size_t i;

    for (i = 0; i < in->n; i++) {
        if (in->fields[i] && strcmp(in->fields[i], field) == 0)
            return in->values[i];
    }
    return NULL;
}

/* A decimal millisecond stamp; false for anything else (atoi is banned and lax). */
static bool parse_ms(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

/* "2025-03-01 14:05:09 UTC", plus " (+12.3 s)" after the request was made. */
static char *format_stamp(uint64_t ms, bool have_base, uint64_t base_ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char day[32];

    if (!gmtime_r(&secs, &tm) || strftime(day, sizeof(day), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        return xstrdup("invalid time");
    if (!have_base || ms <= base_ms)
        return xstrdup(day);
    return text_printf("%s (+%" PRIu64 ".%" PRIu64 " s)", day, (ms - base_ms) / 1000,
                       (ms - base_ms) % 1000 / 100);
}

static void fact_stamp(struct json_object *facts, const struct card_status_info *in,
                       const char *title, const char *field)
{
    uint64_t ms, base = 0;
    bool have_base = parse_ms(rec_get(in, "created_ms"), &base);
    char *text;

    if (!parse_ms(rec_get(in, field), &ms) || ms == 0)
        return;
    text = format_stamp(ms, have_base, base);
    fact_add(facts, title, text);
    xfree(text);
}

/* One sentence on what a status means for the user. */
static const char *status_meaning(const char *status)
{
    static const char *const table[][2] = {
        {"queued", "Waiting for a worker to pick it up."},
        {"processing", "Being prepared now."},
        {"delivered", "Done: the digest was posted in this conversation."},
        {"failed", "It could not be prepared; the error message says why."},
        {"dead", "Given up after repeated failures; the error message says why."},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(table); i++) {
        if (strcmp(status, table[i][0]) == 0)
            return table[i][1];
    }
    return "";
}

/*
 * What the record says, in two FactSets: the state (with one sentence on what
 * it means) and the timeline. Empty fields are left out rather than shown as
 * blanks, so a queued request simply has a shorter timeline.
 */
struct json_object *card_status(const struct card_status_info *in)
{
    struct json_object *body;
    struct json_object *card = card_new(&body);
    struct json_object *facts;
    const char *status = rec_get(in, "status");

    push_heading(body, "Digest request status");
    if (!status || !*status) {
        if (in->request_id && *in->request_id)
            push_textf(body,
                       "I found no request %s. Requests are forgotten after a while; "
                       "send \"digest <audience>\" to start a new one.",
                       in->request_id);
        else
            push_text(body, "No digest has been requested in this conversation yet. Send "
                            "\"digest <audience>\" to start one.");
        return card;
    }
    facts = fact_set(body);
    fact_add(facts, "Request", in->request_id);
    fact_add(facts, "State", status);
    fact_add(facts, "Mode", rec_get(in, "mode"));
    fact_add(facts, "Audience", rec_get(in, "audience"));
    fact_add(facts, "Attempts", rec_get(in, "attempts"));
    fact_add(facts, "Last error", rec_get(in, "last_error"));
    if (*status_meaning(status))
        push_text(body, status_meaning(status));
    facts = fact_set(body);
    fact_stamp(facts, in, "Requested", "created_ms");
    fact_stamp(facts, in, "Started", "started_ms");
    fact_stamp(facts, in, "Fetched", "fetched_ms");
    fact_stamp(facts, in, "Delivered", "delivered_ms");
    return card;
}

/* {"id":…,"name":…} with the name left out when there is none. */
static struct json_object *party(const char *id, const char *name)
{
    struct json_object *p = jobj();

    jset_str(p, "id", id);
    if (name && *name)
        jset_str(p, "name", name);
    return p;
}

void card_address_reply(struct card_address *to, const char *bot_id, const char *bot_name,
                        const char *user_id, const char *user_name, const char *conversation_id,
                        const char *reply_to_id)
{
    memset(to, 0, sizeof(*to));
    to->bot_id = bot_id;
    to->bot_name = bot_name;
    to->user_id = user_id;
    to->user_name = user_name;
    to->conversation_id = conversation_id;
    to->reply_to_id = reply_to_id;
}

/*
 * The reply activity of research/botframework.md §4.1: from/recipient the
 * reverse of the user's activity (card_address_reply), replyToId so Teams
 * threads it under the user's message, and "id" only for the update, where
 * the connector wants the replaced activity.
 */
static struct json_object *activity_new(const struct card_address *to, struct json_object *card)
{
    struct json_object *act = jobj();
    struct json_object *conv = jobj();
    struct json_object *atts = jarr();
    struct json_object *att = jobj();

    jset_str(act, "type", "message");
    if (to->activity_id && *to->activity_id)
        jset_str(act, "id", to->activity_id);
    jset(act, "from", party(to->bot_id, to->bot_name));
    jset(act, "recipient", party(to->user_id, to->user_name));
    jset_str(conv, "id", to->conversation_id);
    jset(act, "conversation", conv);
    if (to->reply_to_id && *to->reply_to_id)
        jset_str(act, "replyToId", to->reply_to_id);
    jset_str(att, "contentType", CARD_CONTENT_TYPE);
    jset(att, "content", card);
    jpush(atts, att);
    jset(act, "attachments", atts);
    return act;
}

size_t card_utf16_bytes(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t units = 0, i;
    unsigned pending = 0; /* continuation bytes the current sequence still expects */
    bool four = false;    /* the current sequence is outside the BMP */

    for (i = 0; i < len; i++) {
        unsigned char c = p[i];

        if (c >= 0x80 && c < 0xc0 && pending > 0) {
            /* A complete 4-byte sequence is a surrogate pair: one more unit. */
            if (--pending == 0 && four)
                units++;
            continue;
        }
        /* ASCII, a lead byte, or a stray byte (U+FFFD): one unit each. */
        units++;
        four = c >= 0xf0 && c <= 0xf4;
        pending = four ? 3 : (c >= 0xe0 && c <= 0xef) ? 2 : (c >= 0xc2 && c <= 0xdf) ? 1 : 0;
    }
    return units * 2;
}

int card_render(const struct card_address *to, struct json_object *card, char **out, size_t *len)
{
    struct json_object *act = activity_new(to, card);
    size_t n = 0;
    const char *text = json_write_compact(act, &n);
    int rc = 0;

    *out = NULL;
    *len = 0;
    if (card_utf16_bytes(text, n) >= CARD_MAX_UTF16_BYTES) {
        rc = DG_ERR_TOO_LARGE;
        goto out;
    }
    *out = xstrndup(text, n);
    *len = n;
out:
    json_object_put(act);
    return rc;
}

/* ---- The acknowledgment activity written straight to text -------------- */

/*
 * The webhook posts one acknowledgment per job, so its activity is written
 * into a buffer as it goes, without a json-c tree: the same bytes as
 * card_render(to, card_ack(in)) (tests/golden/ack*.json, and the differential
 * fuzz target fuzz_card.c holds the two to that). The escaping is json-c's
 * with JSON_C_TO_STRING_NOSLASHESCAPE: \b \n \r \t \f \" \\ as two
 * characters, other bytes below 0x20 as \u00xx (lower-case hex), every other
 * byte (DEL, bytes that are not UTF-8) as it is.
 */

/* Room for the escaped text of any activity under the size limit, with margin. */
#define CARD_TEXT_MAX (1u << 20)

static void put(struct buf *b, const char *s, size_t n, int *rc)
{
    if (*rc == 0)
        *rc = buf_append(b, s, n);
}

#define PUT_LIT(b, lit, rc) put((b), (lit), sizeof(lit) - 1, (rc))

/* The bytes json-c escapes: \b \t \n \f \r as letters, '"' and '\', other controls as \u00xx. */
static const unsigned char needs_escape[256] = {
    [0x00 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
};

/* s (NULL as ""), escaped as json-c does, without the quotes. */
static void put_esc(struct buf *b, const char *s, int *rc)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    const unsigned char *run;

    for (;;) {
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;

        /* The NUL is in the table too: the scan stops at the end or an escape. */
        for (run = p; !needs_escape[*p]; p++)
            ;
        put(b, (const char *)run, (size_t)(p - run), rc);
        if (*p == '\0')
            break;
        switch (*p) {
        case '\b':
            esc[1] = 'b';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            n = 6;
        }
        put(b, esc, n, rc);
        p++;
    }
}

/* "s" (NULL as ""), escaped as json-c does. */
static void put_str(struct buf *b, const char *s, int *rc)
{
    PUT_LIT(b, "\"", rc);
    put_esc(b, s, rc);
    PUT_LIT(b, "\"", rc);
}

/* ,"key":"value" — key is ours and needs no escaping. */
static void put_member(struct buf *b, const char *key, const char *value, int *rc)
{
    PUT_LIT(b, ",\"", rc);
    put(b, key, strlen(key), rc);
    PUT_LIT(b, "\":", rc);
    put_str(b, value, rc);
}

/* "key":{"id":…[,"name":…]}, as party() builds it. */
static void put_party(struct buf *b, const char *key, const char *id, const char *name, int *rc)
{
    PUT_LIT(b, ",\"", rc);
    put(b, key, strlen(key), rc);
    PUT_LIT(b, "\":{\"id\":", rc);
    put_str(b, id, rc);
    if (name && *name)
        put_member(b, "name", name, rc);
    PUT_LIT(b, "}", rc);
}

/* {"title":…,"value":…} after a comma unless first; an empty value is skipped (fact_add). */
static void put_fact(struct buf *b, bool *first, const char *title, const char *value, int *rc)
{
    if (!value || !*value)
        return;
    if (!*first)
        PUT_LIT(b, ",", rc);
    *first = false;
    PUT_LIT(b, "{\"title\":", rc);
    put_str(b, title, rc);
    PUT_LIT(b, ",\"value\":", rc);
    put_str(b, value, rc);
    PUT_LIT(b, "}", rc);
}

/*
 * b initialised and reserve bytes reserved, then the activity of
 * activity_new() up to the card's body array, open: {"type":"message",…,
 * "body":[ — what every card written here starts with.
 */
static void put_head(struct buf *b, const struct card_address *to, size_t reserve, int *rc)
{
    buf_init(b, CARD_TEXT_MAX);
    *rc = buf_reserve(b, reserve);
    PUT_LIT(b, "{\"type\":\"message\"", rc);
    if (to->activity_id && *to->activity_id)
        put_member(b, "id", to->activity_id, rc);
    put_party(b, "from", to->bot_id, to->bot_name, rc);
    put_party(b, "recipient", to->user_id, to->user_name, rc);
    PUT_LIT(b, ",\"conversation\":{\"id\":", rc);
    put_str(b, to->conversation_id, rc);
    PUT_LIT(b, "}", rc);
    if (to->reply_to_id && *to->reply_to_id)
        put_member(b, "replyToId", to->reply_to_id, rc);
    PUT_LIT(b,
            ",\"attachments\":[{\"contentType\":\"" CARD_CONTENT_TYPE "\",\"content\":{\"type\":"
            "\"AdaptiveCard\",\"$schema\":\"" CARD_SCHEMA "\",\"version\":\"" CARD_VERSION
            "\",\"body\":[",
            rc);
}

/* The closing brackets of body, content, the attachment, attachments and the activity. */
#define CARD_TAIL "]}}]}"

/* b's text if it is under the size limit (*out owned, b emptied), else DG_ERR_TOO_LARGE. */
static int take_text(struct buf *b, int rc, char **out, size_t *len)
{
    /* A byte is never more than 2 bytes of UTF-16: most cards need no count. */
    if (rc != 0 || (b->len * 2 >= CARD_MAX_UTF16_BYTES &&
                    card_utf16_bytes(b->data, b->len) >= CARD_MAX_UTF16_BYTES)) {
        buf_free(b);
        return DG_ERR_TOO_LARGE;
    }
    *len = b->len;
    *out = buf_take(b);
    return 0;
}

#define ACK_QUEUED_TEXT_1                                                                          \
    "I'm preparing the digest and will post it in this conversation when it is ready, usually "    \
    "within a minute. Send \"status "
#define ACK_QUEUED_TEXT_2 "\" to check on it."

int card_render_ack(const struct card_address *to, const struct card_ack_info *in, char **out,
                    size_t *len)
{
    const char *id = str_or(in->request_id, "");
    bool first = true;
    struct buf b;
    int rc = 0;

    *out = NULL;
    *len = 0;
    /* One allocation for the usual card (~1.3 kB), however it grows past. */
    put_head(&b, to, 2048, &rc);
    PUT_LIT(&b, "{\"type\":\"TextBlock\",\"text\":\"", &rc);
    switch (in->state) {
    case CARD_ACK_QUEUED:
        PUT_LIT(&b, "Digest requested", &rc);
        break;
    case CARD_ACK_DELIVERED:
        PUT_LIT(&b, "Digest delivered", &rc);
        break;
    case CARD_ACK_FAILED:
        PUT_LIT(&b, "Digest failed", &rc);
        break;
    }
    PUT_LIT(&b,
            "\",\"wrap\":true,\"size\":\"Medium\",\"weight\":\"Bolder\"},"
            "{\"type\":\"FactSet\",\"facts\":[",
            &rc);
    put_fact(&b, &first, "Audience", in->audience, &rc);
    put_fact(&b, &first, "Request", id, &rc);
    put_fact(&b, &first, "Test address", in->test_email, &rc);
    PUT_LIT(&b, "]}", &rc);
    switch (in->state) {
    case CARD_ACK_QUEUED: {
        /* The sentence is one json-c string: its escaping covers the id too. */
        size_t n = strlen(id);
        char *text = xmalloc(sizeof(ACK_QUEUED_TEXT_1) + n + sizeof(ACK_QUEUED_TEXT_2));

        memcpy(text, ACK_QUEUED_TEXT_1, sizeof(ACK_QUEUED_TEXT_1) - 1);
        memcpy(text + sizeof(ACK_QUEUED_TEXT_1) - 1, id, n);
        memcpy(text + sizeof(ACK_QUEUED_TEXT_1) - 1 + n, ACK_QUEUED_TEXT_2,
               sizeof(ACK_QUEUED_TEXT_2));
        PUT_LIT(&b, ",{\"type\":\"TextBlock\",\"text\":", &rc);
        put_str(&b, text, &rc);
        xfree(text);
        break;
    }
    case CARD_ACK_DELIVERED:
        PUT_LIT(&b,
                ",{\"type\":\"TextBlock\",\"text\":"
                "\"The digest has been posted in this conversation.\"",
                &rc);
        break;
    case CARD_ACK_FAILED:
        PUT_LIT(&b,
                ",{\"type\":\"TextBlock\",\"text\":\"The digest could not be prepared; the "
                "error message in this conversation says why. Send the same command again "
                "to retry.\"",
                &rc);
        break;
    }
    PUT_LIT(&b, ",\"wrap\":true}" CARD_TAIL, &rc);
    return take_text(&b, rc, out, len);
}

/*
 * The reference for card_render_result: dropping from the end keeps the order
 * the upstream chose, re-rendering the whole tree each time (at most
 * CARD_MAX_ITEMS + 1 renders).
 */
int card_render_result_json(const struct card_address *to, const struct card_result_info *in,
                            char **out, size_t *len, size_t *shown)
{
    size_t k = in->digest->n_items < CARD_MAX_ITEMS ? in->digest->n_items : CARD_MAX_ITEMS;
    int rc;

    for (;;) {
        rc = card_render(to, card_result(in, k), out, len);
        if (rc != DG_ERR_TOO_LARGE || k == 0)
            break;
        k--;
    }
    if (rc == 0 && shown)
        *shown = k;
    return rc;
}

/* ---- The result and error activities written straight to text ---------- */

/* ,{"type":"TextBlock","text":"<text>","wrap":true}: push_text(); text is ours, needs no escaping.
 */
#define PLAIN_TEXT_1 ",{\"type\":\"TextBlock\",\"text\":\""
#define PLAIN_TEXT_2 "\",\"wrap\":true}"

/* push_item(): one Container per candidate, starting with its comma. */
static void put_item(struct buf *b, const struct digest_item *it, int *rc)
{
    const char *parts[] = {it->title, it->company, it->location};
    bool line = false;
    size_t i;

    PUT_LIT(b,
            ",{\"type\":\"Container\",\"separator\":true,\"spacing\":\"Medium\",\"items\":["
            "{\"type\":\"TextBlock\",\"text\":",
            rc);
    put_str(b, str_or(it->name, "(name not given)"), rc);
    PUT_LIT(b, ",\"wrap\":true,\"weight\":\"Bolder\"}", rc);
    /* item_line() escaped part by part: escaping works byte by byte, so it is the same text. */
    for (i = 0; i < ARRAY_SIZE(parts); i++) {
        if (!parts[i] || !*parts[i])
            continue;
        if (line)
            PUT_LIT(b, DOT, rc);
        else
            PUT_LIT(b, ",{\"type\":\"TextBlock\",\"text\":\"", rc);
        line = true;
        put_esc(b, parts[i], rc);
    }
    if (line)
        PUT_LIT(b, "\",\"wrap\":true,\"isSubtle\":true,\"spacing\":\"None\"}", rc);
    if (it->summary && *it->summary) {
        PUT_LIT(b, ",{\"type\":\"TextBlock\",\"text\":", rc);
        put_str(b, it->summary, rc);
        PUT_LIT(b, ",\"wrap\":true}", rc);
    }
    if (it->url && *it->url) {
        PUT_LIT(b,
                ",{\"type\":\"ActionSet\",\"actions\":[{\"type\":\"Action.OpenUrl\","
                "\"title\":\"Open profile\",\"url\":",
                rc);
        put_str(b, it->url, rc);
        PUT_LIT(b, "}]}", rc);
    }
    PUT_LIT(b, "]}", rc);
}

/* push_omitted() and the activity's closing brackets, after the shown candidates. */
static void put_result_tail(struct buf *b, size_t shown, size_t total, size_t size_cut, int *rc)
{
    if (shown < total && *rc == 0) {
        if (size_cut > 0)
            *rc = buf_printf(b,
                             PLAIN_TEXT_1 "Showing %zu of %zu candidates; %zu left out to keep "
                                          "the message within the Teams size limit." PLAIN_TEXT_2,
                             shown, total, size_cut);
        else
            *rc = buf_printf(b, PLAIN_TEXT_1 "Showing %zu of %zu candidates." PLAIN_TEXT_2, shown,
                             total);
    }
    PUT_LIT(b, CARD_TAIL, rc);
}

/*
 * card_result() + card_render() in one pass: the frame and every candidate
 * that may be shown are written once, their ends noted, and candidates are
 * dropped from the end by cutting the text back, never re-rendering. The
 * cuts fall after ASCII brackets, so the UTF-16 size of the text is the sum
 * of its pieces' and each piece is counted once, only when the text could be
 * over the limit at all. A candidate the 1 MiB buffer cannot take could not
 * fit 100 KB of UTF-16 either (2/3 byte of UTF-16 per byte at least), so it
 * and those after it are dropped unwritten. Differences from the json-c
 * rendering would need a field over 1 MiB (the json-c side formats the
 * title line in a 1 MiB buffer); digest_parse caps fields at 200 characters.
 */
int card_render_result(const struct card_address *to, const struct card_result_info *in, char **out,
                       size_t *len, size_t *shown)
{
    const struct digest *d = in->digest;
    size_t fit = d->n_items < CARD_MAX_ITEMS ? d->n_items : CARD_MAX_ITEMS;
    size_t end[CARD_MAX_ITEMS + 1]; /* end[i]: text length with i candidates */
    size_t u16[CARD_MAX_ITEMS + 1]; /* u16[i]: UTF-16 bytes of the text up to end[i] */
    size_t written, k, i;
    struct buf b;
    int rc;

    *out = NULL;
    *len = 0;
    /* The frame is ~1.3 kB and a candidate ~0.6 kB: one allocation as a rule. */
    put_head(&b, to, 1536 + 640 * fit, &rc);
    if (in->test_email && *in->test_email) {
        /* Formatted as push_test_banner() does, so even its limits are the same. */
        char *text = text_printf("Test address: %s", in->test_email);

        PUT_LIT(&b,
                "{\"type\":\"Container\",\"style\":\"attention\",\"items\":[{\"type\":"
                "\"TextBlock\",\"text\":\"TEST MODE\",\"wrap\":true,\"weight\":\"Bolder\","
                "\"color\":\"Attention\"},{\"type\":\"TextBlock\",\"text\":",
                &rc);
        put_str(&b, text, &rc);
        PUT_LIT(&b, ",\"wrap\":true}]},", &rc);
        xfree(text);
    }
    PUT_LIT(&b,
            "{\"type\":\"TextBlock\",\"text\":\"Candidate digest\",\"wrap\":true,\"size\":"
            "\"Medium\",\"weight\":\"Bolder\"},{\"type\":\"FactSet\",\"facts\":[",
            &rc);
    {
        bool first = true;

        put_fact(&b, &first, "Audience", in->audience, &rc);
        put_fact(&b, &first, "Generated", str_or(d->generated_at, "not given"), &rc);
        put_fact(&b, &first, "Request", in->request_id, &rc);
    }
    PUT_LIT(&b, "]}", &rc);
    if (d->n_total == 0) {
        PUT_LIT(&b, ",{\"type\":\"TextBlock\",\"text\":\"No new candidates for ", &rc);
        put_esc(&b, str_or(in->audience, "this audience"), &rc);
        PUT_LIT(&b, " this time.\",\"wrap\":true}" CARD_TAIL, &rc);
        rc = take_text(&b, rc, out, len);
        if (rc == 0 && shown)
            *shown = fit; /* what card_render_result_json reports, candidates or not */
        return rc;
    }
    if (rc != 0) {
        buf_free(&b);
        return DG_ERR_TOO_LARGE;
    }
    end[0] = b.len;
    for (written = 0; written < fit; written++) {
        put_item(&b, &d->items[written], &rc);
        if (rc != 0)
            break;
        end[written + 1] = b.len;
    }
    rc = 0;
    b.len = end[written];
    b.data[b.len] = '\0';
    /* The usual case: every candidate written fits, by the 2-bytes-a-byte bound alone. */
    put_result_tail(&b, written, d->n_total, fit - written, &rc);
    if (rc == 0 && b.len * 2 < CARD_MAX_UTF16_BYTES) {
        k = written;
        goto done;
    }
    u16[0] = card_utf16_bytes(b.data, end[0]);
    for (i = 0; i < written; i++)
        u16[i + 1] = u16[i] + card_utf16_bytes(b.data + end[i], end[i + 1] - end[i]);
    for (k = written + 1; k-- > 0;) {
        size_t tail_start;

        rc = 0;
        b.len = end[k];
        b.data[b.len] = '\0';
        put_result_tail(&b, k, d->n_total, fit - k, &rc);
        tail_start = end[k];
        /* The tail is ASCII: 2 bytes of UTF-16 per byte. */
        if (rc == 0 && u16[k] + (b.len - tail_start) * 2 < CARD_MAX_UTF16_BYTES)
            goto done;
    }
    buf_free(&b);
    return DG_ERR_TOO_LARGE;
done:
    *len = b.len;
    *out = buf_take(&b);
    if (shown)
        *shown = k;
    return 0;
}

int card_render_error(const struct card_address *to, const struct card_error_info *in, char **out,
                      size_t *len)
{
    bool first = true;
    struct buf b;
    int rc;

    *out = NULL;
    *len = 0;
    put_head(&b, to, 1536, &rc);
    PUT_LIT(&b, "{\"type\":\"TextBlock\",\"text\":", &rc);
    put_str(&b, str_or(in->what, "Something went wrong"), &rc);
    PUT_LIT(&b, ",\"wrap\":true,\"size\":\"Medium\",\"weight\":\"Bolder\",\"color\":\"Attention\"}",
            &rc);
    if (in->detail && *in->detail) {
        PUT_LIT(&b, ",{\"type\":\"TextBlock\",\"text\":", &rc);
        put_str(&b, in->detail, &rc);
        PUT_LIT(&b, ",\"wrap\":true}", &rc);
    }
    PUT_LIT(&b, ",{\"type\":\"FactSet\",\"facts\":[", &rc);
    put_fact(&b, &first, "Request", in->request_id, &rc);
    put_fact(&b, &first, "What to do", str_or(in->next, "Try again in a few minutes."), &rc);
    PUT_LIT(&b, "]}" CARD_TAIL, &rc);
    return take_text(&b, rc, out, len);
}
