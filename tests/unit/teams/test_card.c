/*
 * test_card.c: every card kind rendered from fixed input and compared byte
 * for byte with tests/golden/<name>.json (UPDATE_GOLDEN=1 rewrites them;
 * review the diff before checking it in), plus escaping, activity shape and
 * the 100 KB UTF-16 limit. tests/cards/validate.js checks the same goldens
 * with the adaptivecards SDK.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/buf.h"
#include "teams/card.h"
#include "digest/digest.h"

static const struct card_address TO = {
    .bot_id = "28:c9e8c047-2a74-40a2-b28a-b162d5f5327c",
    .bot_name = "Digest Bot",
    .user_id = "29:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB39ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt7CZ",
    .user_name = "Megan Bowen",
    .conversation_id = "a:17I0kl9EkpE1O9NdxrmUwJLQY3H8QyBUiy0GnKEJRC0A",
    .reply_to_id = "1481567603816",
};

static const char DIGEST_JSON[] =
    "{\"audience\":\"advisors\",\"generated_at\":\"2025-03-01T08:00:00Z\",\"items\":["
    "{\"name\":\"Ada Lovelace\",\"title\":\"Chief Technology Officer\","
    "\"company\":\"Analytical Engines Ltd\",\"location\":\"London, UK\","
    "\"summary\":\"Led the team that shipped the first general-purpose engine.\","
    "\"url\":\"https://example.com/candidates/ada?src=digest&id=1\"},"
    "{\"name\":\"Zo\xc3\xab \\\"Z\\\" O'Brien **bold** _it_ [x](https://evil.example) <b>\","
    "\"title\":\"VP \xf0\x9f\x9a\x80 Growth\",\"company\":\"Back\\\\slash & Co\","
    "\"summary\":\"Line one\\nLine two\\ttab \xe2\x80\x94 \xe4\xb8\xad\xe6\x96\x87\","
    "\"url\":\"javascript:alert(1)\"},"
    "{\"title\":\"Analyst\",\"location\":\"Remote\"}]}";

/* Compares text with tests/golden/<name>.json, or rewrites it under UPDATE_GOLDEN=1. */
static void check_golden(const char *name, const char *text, size_t len)
{
    char path[512];
    const char *update = getenv("UPDATE_GOLDEN");
    struct buf want;
    char chunk[4096];
    size_t n, i;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.json", GOLDEN_DIR, name);
    if (update && strcmp(update, "1") == 0) {
        f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, len, f), len);
        assert_int_equal(fputc('\n', f), '\n');
        assert_int_equal(fclose(f), 0);
        return;
    }
    f = fopen(path, "rb");
    if (!f)
        fail_msg("%s missing: run with UPDATE_GOLDEN=1 and review it", path);
    buf_init(&want, 1u << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(buf_append(&want, chunk, n), 0);
    fclose(f);
    /* The file is the wire bytes plus one newline for the benefit of editors. */
    for (i = 0; i < len && i < want.len && text[i] == want.data[i]; i++)
        ;
    if (want.len != len + 1 || i != len || want.data[len] != '\n')
        fail_msg("%s differs at byte %zu:\n got: %.80s\nwant: %.80s", path, i, text + i,
                 i < want.len ? want.data + i : "(end)");
    buf_free(&want);
}

/* Renders card to the activity, checks it against the golden file, returns the text. */
static char *render_golden(const char *name, const struct card_address *to,
                           struct json_object *card)
{
    char *out = NULL;
    size_t len = 0;

    assert_int_equal(card_render(to, card, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    check_golden(name, out, len);
    return out;
}

static void golden(const char *name, const struct card_address *to, struct json_object *card)
{
    xfree(render_golden(name, to, card));
}

static void parse_fixture(struct digest *d)
{
    assert_int_equal(digest_parse(d, DIGEST_JSON, strlen(DIGEST_JSON)), 0);
}

/* The golden file, through card_ack + card_render and through card_render_ack alike. */
static void golden_ack(const char *name, const struct card_address *to,
                       const struct card_ack_info *ack)
{
    char *out = NULL;
    size_t len = 0;

    golden(name, to, card_ack(ack));
    assert_int_equal(card_render_ack(to, ack, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    check_golden(name, out, len);
    xfree(out);
}

/*
 * card_render_result, checked against card_render_result_json: the same
 * answer, the same number shown and the same bytes. Returns the writer's.
 */
static int render_result(const struct card_address *to, const struct card_result_info *in,
                         char **out, size_t *len, size_t *shown)
{
    char *ref = NULL;
    size_t ref_len = 0, ref_shown = 77, got_shown = 88;
    int ref_rc = card_render_result_json(to, in, &ref, &ref_len, &ref_shown);
    int rc = card_render_result(to, in, out, len, &got_shown);

    assert_int_equal(rc, ref_rc);
    if (rc == 0) {
        assert_int_equal(*len, ref_len);
        assert_int_equal(strlen(*out), *len);
        assert_memory_equal(*out, ref, ref_len);
        assert_int_equal(got_shown, ref_shown);
        if (shown)
            *shown = got_shown;
    } else {
        assert_null(*out);
        assert_null(ref);
    }
    xfree(ref);
    return rc;
}

/* The golden file, through card_error + card_render and through card_render_error alike. */
static void golden_error(const char *name, const struct card_address *to,
                         const struct card_error_info *in)
{
    char *out = NULL;
    size_t len = 0;

    golden(name, to, card_error(in));
    assert_int_equal(card_render_error(to, in, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    check_golden(name, out, len);
    xfree(out);
}

static void test_ack_cards(void **state)
{
    struct card_ack_info ack = {"advisors", "0d9f1c2e-7b4a-4c1e-9a55-3f2b8c6d7e10", "", 0};
    struct card_address put = TO;

    ack.state = CARD_ACK_QUEUED;
    golden_ack("ack", &TO, &ack);
    ack.test_email = "qa.team@example.com";
    golden_ack("ack_test_mode", &TO, &ack);
    /* The update replaces the acknowledgment: a PUT body carries its id. */
    put.activity_id = "1:1fbnt7OM8JQ8eEWlDgvy1Wg";
    ack.test_email = NULL;
    ack.state = CARD_ACK_DELIVERED;
    golden_ack("ack_delivered", &put, &ack);
    ack.state = CARD_ACK_FAILED;
    golden_ack("ack_failed", &put, &ack);
}

/* The direct writer against json-c on the strings that need escaping, and the size cap. */
static void test_ack_writer_matches_json_c(void **state)
{
    static const char *const odd[] = {
        "",
        "plain",
        "quote \" back\\slash /slash/",
        "\b\f\n\r\t",
        "\x01\x1f\x7f",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
        "\xff\xfe stray \xc3",
        "</script>",
    };
    struct card_address to = TO;
    struct card_ack_info ack = {0};
    char *a, *b, *big;
    size_t la, lb, i, j;
    int ra, rb;

    for (i = 0; i < ARRAY_SIZE(odd); i++) {
        for (j = 0; j < 3; j++) {
            to.bot_name = odd[i];
            to.user_id = odd[(i + 1) % ARRAY_SIZE(odd)];
            to.conversation_id = j == 0 ? NULL : odd[(i + 2) % ARRAY_SIZE(odd)];
            to.reply_to_id = j == 1 ? NULL : odd[i];
            to.activity_id = j == 2 ? odd[i] : NULL;
            ack.audience = j == 0 ? NULL : odd[i];
            ack.request_id = odd[(i + 3) % ARRAY_SIZE(odd)];
            ack.test_email = odd[(i + j) % ARRAY_SIZE(odd)];
            ack.state = (enum card_ack_state)j;
            ra = card_render(&to, card_ack(&ack), &a, &la);
            rb = card_render_ack(&to, &ack, &b, &lb);
            assert_int_equal(ra, 0);
            assert_int_equal(rb, 0);
            assert_int_equal(la, lb);
            assert_memory_equal(a, b, la);
            xfree(a);
            xfree(b);
        }
    }
    /* Past the 100 KB UTF-16 limit both refuse. */
    big = xmalloc(60001);
    memset(big, 'x', 60000);
    big[60000] = '\0';
    to = TO;
    ack.audience = big;
    ack.state = CARD_ACK_QUEUED;
    assert_int_equal(card_render(&to, card_ack(&ack), &a, &la), DG_ERR_TOO_LARGE);
    assert_int_equal(card_render_ack(&to, &ack, &b, &lb), DG_ERR_TOO_LARGE);
    assert_null(b);
    xfree(big);
}

static void test_result_card(void **state)
{
    struct digest d;
    struct card_result_info in = {"advisors", "0d9f1c2e-7b4a-4c1e-9a55-3f2b8c6d7e10", NULL, &d};
    char *out;
    size_t len, shown = 99;

    parse_fixture(&d);
    assert_int_equal(render_result(&TO, &in, &out, &len, &shown), 0);
    assert_int_equal(shown, 3);
    check_golden("result", out, len);
    xfree(out);
    in.test_email = "qa.team@example.com";
    assert_int_equal(render_result(&TO, &in, &out, &len, &shown), 0);
    check_golden("result_test_mode", out, len);
    /* The banner names the address where a reader sees it first. */
    assert_non_null(strstr(out, "\"body\":[{\"type\":\"Container\",\"style\":\"attention\""));
    assert_non_null(strstr(out, "TEST MODE"));
    assert_non_null(strstr(out, "qa.team@example.com"));
    xfree(out);
    digest_free(&d);
}

static void test_result_empty(void **state)
{
    struct digest d;
    struct card_result_info in = {"c_suite", "5b0c9a51-0c0e-4a43-8d3c-1b9b8c0a4f21", NULL, &d};
    const char body[] = "{\"audience\":\"c_suite\",\"generated_at\":\"2025-03-01T08:00:00Z\","
                        "\"items\":[]}";
    char *out;
    size_t len, shown = 99;

    assert_int_equal(digest_parse(&d, body, strlen(body)), 0);
    assert_int_equal(render_result(&TO, &in, &out, &len, &shown), 0);
    assert_int_equal(shown, 0);
    check_golden("result_empty", out, len);
    assert_non_null(strstr(out, "No new candidates for c_suite"));
    xfree(out);
    digest_free(&d);
}

static void test_result_many(void **state)
{
    struct digest d;
    struct card_result_info in = {"global", "", NULL, &d};
    struct buf b;
    char *out;
    size_t i, len, shown = 0;

    buf_init(&b, 1u << 20);
    assert_int_equal(buf_append_str(&b, "{\"items\":["), 0);
    for (i = 1; i <= 14; i++)
        assert_int_equal(buf_printf(&b,
                                    "%s{\"name\":\"Candidate %zu\",\"url\":"
                                    "\"https://example.com/c/%zu\"}",
                                    i > 1 ? "," : "", i, i),
                         0);
    assert_int_equal(buf_append_str(&b, "]}"), 0);
    assert_int_equal(digest_parse(&d, b.data, b.len), 0);
    assert_int_equal(render_result(&TO, &in, &out, &len, &shown), 0);
    assert_int_equal(shown, CARD_MAX_ITEMS);
    check_golden("result_many", out, len);
    assert_non_null(strstr(out, "\"Candidate 10\""));
    assert_null(strstr(out, "\"Candidate 11\""));
    assert_non_null(strstr(out, "Showing 10 of 14 candidates.\""));
    xfree(out);
    digest_free(&d);
    buf_free(&b);
}

static void test_error_cards(void **state)
{
    struct card_error_info upstream = {
        "The digest could not be prepared",
        "The digest service did not answer within 30 s.",
        "0d9f1c2e-7b4a-4c1e-9a55-3f2b8c6d7e10",
        "Try again in a few minutes. If it keeps failing, tell the digest team the request id.",
    };
    struct card_error_info audience = {
        "Unknown audience \"partners\"",
        "Valid audiences: advisors, c_suite, global.",
        NULL,
        "Send \"digest <audience>\" with one of them, for example \"digest advisors\".",
    };

    golden_error("error", &TO, &upstream);
    golden_error("error_audience", &TO, &audience);
}

static void test_help_card(void **state)
{
    static char a1[] = "advisors", a2[] = "c_suite", a3[] = "global";
    char *audiences[] = {a1, a2, a3};

    golden("help", &TO, card_help(audiences, ARRAY_SIZE(audiences)));
}

static void test_status_cards(void **state)
{
    static const char *const fields[] = {
        "status",     "mode",       "audience",     "test_email", "conv",       "created_ms",
        "started_ms", "fetched_ms", "delivered_ms", "attempts",   "last_error",
    };
    static const char *const delivered[] = {
        "delivered",     "async",         "advisors",      "",  "msteams:a:1",   "1700000000000",
        "1700000000250", "1700000009750", "1700000010125", "2", "upstream: 503",
    };
    static const char *const queued[] = {
        "queued", "async", "global", "", "msteams:a:1", "1700000000000", "", "", "", "0", "",
    };
    struct card_status_info in = {"0d9f1c2e-7b4a-4c1e-9a55-3f2b8c6d7e10", fields, delivered,
                                  ARRAY_SIZE(fields)};
    char *out;

    out = render_golden("status_delivered", &TO, card_status(&in));
    assert_non_null(strstr(out, "2023-11-14 22:13:20 UTC\""));
    assert_non_null(strstr(out, "2023-11-14 22:13:30 UTC (+10.1 s)"));
    xfree(out);
    in.values = queued;
    out = render_golden("status_queued", &TO, card_status(&in));
    assert_null(strstr(out, "Started"));
    xfree(out);
    in.n = 0;
    golden("status_not_found", &TO, card_status(&in));
    in.request_id = "";
    golden("status_none", &TO, card_status(&in));
}

/* The activity around the card, as SPEC §4 and §6 want it. */
static void test_activity_shape(void **state)
{
    static char a1[] = "advisors";
    char *audiences[] = {a1};
    struct json_object *act, *att, *v;
    char *out;
    size_t len;

    assert_int_equal(card_render(&TO, card_help(audiences, 1), &out, &len), 0);
    act = json_tokener_parse(out);
    assert_non_null(act);
    assert_string_equal(json_object_get_string(json_object_object_get(act, "type")), "message");
    assert_false(json_object_object_get_ex(act, "text", &v));
    assert_false(json_object_object_get_ex(act, "id", &v));
    assert_string_equal(json_object_get_string(json_object_object_get(act, "replyToId")),
                        TO.reply_to_id);
    v = json_object_object_get(act, "from");
    assert_string_equal(json_object_get_string(json_object_object_get(v, "id")), TO.bot_id);
    v = json_object_object_get(act, "recipient");
    assert_string_equal(json_object_get_string(json_object_object_get(v, "id")), TO.user_id);
    v = json_object_object_get(act, "conversation");
    assert_string_equal(json_object_get_string(json_object_object_get(v, "id")),
                        TO.conversation_id);
    v = json_object_object_get(act, "attachments");
    assert_int_equal(json_object_array_length(v), 1);
    att = json_object_array_get_idx(v, 0);
    assert_string_equal(json_object_get_string(json_object_object_get(att, "contentType")),
                        CARD_CONTENT_TYPE);
    v = json_object_object_get(att, "content");
    assert_string_equal(json_object_get_string(json_object_object_get(v, "version")), "1.5");
    assert_string_equal(json_object_get_string(json_object_object_get(v, "type")), "AdaptiveCard");
    json_object_put(act);
    xfree(out);
}

/* The reply goes back the way the user's activity came: bot = its recipient, user = its from. */
static void test_reply_address(void **state)
{
    struct card_address to = {.activity_id = "stale", .bot_name = "stale"};

    card_address_reply(&to, TO.bot_id, TO.bot_name, TO.user_id, TO.user_name, TO.conversation_id,
                       TO.reply_to_id);
    assert_ptr_equal(to.bot_id, TO.bot_id);
    assert_ptr_equal(to.bot_name, TO.bot_name);
    assert_ptr_equal(to.user_id, TO.user_id);
    assert_ptr_equal(to.user_name, TO.user_name);
    assert_ptr_equal(to.conversation_id, TO.conversation_id);
    assert_ptr_equal(to.reply_to_id, TO.reply_to_id);
    assert_null(to.activity_id); /* only an update names the activity it replaces */
}

/* Names from the fixture survive the trip through JSON exactly. */
static void test_escaping_round_trip(void **state)
{
    struct digest d;
    struct card_result_info in = {"advisors\"}]", NULL, NULL, &d};
    struct json_object *act, *body, *item, *name;
    char *out;
    size_t len;

    parse_fixture(&d);
    assert_int_equal(render_result(&TO, &in, &out, &len, NULL), 0);
    act = json_tokener_parse(out);
    assert_non_null(act);
    body = json_object_object_get(
        json_object_object_get(
            json_object_array_get_idx(json_object_object_get(act, "attachments"), 0), "content"),
        "body");
    /* body: heading, facts, then one Container per candidate. */
    item = json_object_array_get_idx(body, 3);
    name = json_object_array_get_idx(json_object_object_get(item, "items"), 0);
    assert_string_equal(json_object_get_string(json_object_object_get(name, "text")),
                        d.items[1].name);
    assert_non_null(strstr(out, "Zo\xc3\xab \\\"Z\\\" O'Brien **bold**"));
    assert_non_null(strstr(out, "Line one\\nLine two\\ttab"));
    assert_non_null(strstr(out, "\"advisors\\\"}]\""));
    /* The javascript: URL was dropped, so that candidate has no button. */
    assert_null(strstr(out, "javascript"));
    json_object_put(act);
    xfree(out);
    digest_free(&d);
}

static void test_utf16_bytes(void **state)
{
    static const struct {
        const char *s;
        size_t len;
        size_t want;
    } cases[] = {
        {"", 0, 0},
        {"a", 1, 2},
        {"\xc3\xa9", 2, 2},         /* é: 2 UTF-8 bytes, 1 unit */
        {"\xe2\x82\xac", 3, 2},     /* €: 3 bytes, 1 unit */
        {"\xf0\x9f\x98\x80", 4, 4}, /* 😀: 4 bytes, a surrogate pair */
        {"a\xf0\x9f\x98\x80z", 6, 8},
        {"\x80", 1, 2},     /* stray continuation byte */
        {"\xe2\x82", 2, 2}, /* truncated sequence */
        {"\xe2\x61", 2, 4},
        {"\xff", 1, 2},     /* never a lead byte */
        {"\xf0\x9f", 2, 2}, /* truncated 4-byte sequence: no pair */
        {"\xf0\x9f\x61", 3, 4},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        size_t got = card_utf16_bytes(cases[i].s, cases[i].len);

        if (got != cases[i].want)
            fail_msg("case %zu: got %zu, want %zu", i, got, cases[i].want);
    }
}

/* An error card whose detail is n copies of the UTF-8 character c. */
static int render_error_of(const char *c, size_t n, char **out, size_t *len)
{
    struct card_error_info in = {"What failed", NULL, NULL, "Next"};
    struct buf b;
    size_t i;
    int rc;

    buf_init(&b, 1u << 22);
    for (i = 0; i < n; i++)
        assert_int_equal(buf_append_str(&b, c), 0);
    in.detail = buf_cstr(&b);
    rc = card_render(&TO, card_error(&in), out, len);
    {
        char *direct = NULL;
        size_t direct_len = 0;

        assert_int_equal(card_render_error(&TO, &in, &direct, &direct_len), rc);
        if (rc == 0) {
            assert_int_equal(direct_len, *len);
            assert_memory_equal(direct, *out, direct_len);
        }
        xfree(direct);
    }
    buf_free(&b);
    return rc;
}

/* The limit counts UTF-16, not UTF-8 bytes: ASCII doubles, CJK shrinks. */
static void test_size_limit_is_utf16(void **state)
{
    char *out = NULL;
    size_t len = 0;

    /* 60 000 ASCII bytes: under 100 KB as UTF-8, 120 KB as UTF-16. */
    assert_int_equal(render_error_of("a", 60000, &out, &len), DG_ERR_TOO_LARGE);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_int_equal(render_error_of("a", 45000, &out, &len), 0);
    assert_true(card_utf16_bytes(out, len) < CARD_MAX_UTF16_BYTES);
    xfree(out);
    /* 45 000 × 中: 135 KB of UTF-8 but 90 KB of UTF-16, so it goes. */
    assert_int_equal(render_error_of("\xe4\xb8\xad", 45000, &out, &len), 0);
    assert_true(len > CARD_MAX_UTF16_BYTES);
    xfree(out);
    /* 25 000 emoji: 100 KB of UTF-8 and of UTF-16 (surrogate pairs). */
    assert_int_equal(render_error_of("\xf0\x9f\x98\x80", 25000, &out, &len), DG_ERR_TOO_LARGE);
}

/* A digest built by hand, bypassing the parser's caps, with huge summaries. */
static void fill_huge(struct digest *d, struct digest_item *items, size_t n, char *summary)
{
    static char name[] = "Name", empty[] = "", url[] = "https://example.com/x";
    static char generated[] = "2025-03-01T08:00:00Z";
    size_t i;

    memset(d, 0, sizeof(*d));
    d->items = items;
    d->n_items = d->n_total = n;
    d->generated_at = generated;
    for (i = 0; i < n; i++)
        items[i] = (struct digest_item){name, empty, empty, empty, summary, url};
}

static void test_result_drops_items_to_fit(void **state)
{
    struct digest d;
    struct digest_item items[12];
    struct card_result_info in = {"advisors", "r-1", NULL, &d};
    char *summary = xmalloc(30001);
    char *out;
    size_t len, shown = 99;

    /* Each candidate is ~60 KB of UTF-16, so only one fits beside the frame. */
    memset(summary, 'x', 30000);
    summary[30000] = '\0';
    fill_huge(&d, items, 12, summary);
    assert_int_equal(render_result(&TO, &in, &out, &len, &shown), 0);
    assert_int_equal(shown, 1);
    assert_true(card_utf16_bytes(out, len) < CARD_MAX_UTF16_BYTES);
    assert_non_null(strstr(out, "Showing 1 of 12 candidates; 9 left out to keep the message "
                                "within the Teams size limit."));
    xfree(out);

    /* Over 100 KB alone: no candidate fits, the card still goes and says why. */
    xfree(summary);
    summary = xmalloc(60001);
    memset(summary, 'y', 60000);
    summary[60000] = '\0';
    fill_huge(&d, items, 3, summary);
    assert_int_equal(render_result(&TO, &in, &out, &len, &shown), 0);
    assert_int_equal(shown, 0);
    assert_null(strstr(out, "yyyy"));
    assert_non_null(strstr(out, "Showing 0 of 3 candidates; 3 left out"));
    xfree(out);

    /* Not even the frame fits: an error, not a broken message. */
    in.test_email = summary;
    out = summary; /* must be reset to NULL */
    assert_int_equal(render_result(&TO, &in, &out, &len, &shown), DG_ERR_TOO_LARGE);
    assert_null(out);
    xfree(summary);
}

/* Strings that need escaping in every field of the result and error activities. */
static char ODD[][32] = {
    "",
    "plain",
    "quote \" back\\slash /slash/",
    "\b\f\n\r\t",
    "\x01\x1f\x7f",
    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    "\xff\xfe stray \xc3",
    "</script>",
};

static char *odd(size_t i)
{
    return ODD[i % ARRAY_SIZE(ODD)];
}

static void test_result_writer_matches_json_c(void **state)
{
    struct digest_item items[14];
    struct digest d;
    struct card_result_info in;
    struct card_error_info e;
    struct card_address to = TO;
    char *out;
    size_t len, i, j, n;

    for (i = 0; i < ARRAY_SIZE(ODD); i++) {
        for (n = 0; n <= ARRAY_SIZE(items); n += (n < 3 ? 1 : 5)) {
            for (j = 0; j < n; j++)
                items[j] = (struct digest_item){odd(i + j),     odd(i + j + 1), odd(i + 2 * j),
                                                odd(i + j + 3), odd(i + j + 4), odd(j + 5)};
            memset(&d, 0, sizeof(d));
            d.items = items;
            d.n_items = n;
            d.n_total = n + i % 3; /* some more than kept, as past DIGEST_MAX_ITEMS */
            d.generated_at = odd(i + 6);
            in = (struct card_result_info){i % 2 ? NULL : odd(i + 1), odd(i + 2),
                                           i % 3 ? odd(i + 3) : NULL, &d};
            to.bot_name = odd(i);
            to.user_id = odd(i + 1);
            to.conversation_id = n == 1 ? NULL : odd(i + 2);
            to.reply_to_id = odd(i + 3);
            assert_int_equal(render_result(&to, &in, &out, &len, NULL), 0);
            xfree(out);
        }
        e = (struct card_error_info){i % 4 ? odd(i) : NULL, odd(i + 1), odd(i + 2),
                                     i % 3 ? odd(i + 3) : NULL};
        assert_int_equal(card_render(&to, card_error(&e), &out, &len), 0);
        {
            char *direct = NULL;
            size_t direct_len = 0;

            assert_int_equal(card_render_error(&to, &e, &direct, &direct_len), 0);
            assert_int_equal(direct_len, len);
            assert_memory_equal(direct, out, len);
            xfree(direct);
        }
        xfree(out);
    }
}

/* n copies of unit in b (emptied first); returns the text. */
static char *repeat(struct buf *b, const char *unit, size_t n)
{
    size_t i;

    buf_reset(b);
    for (i = 0; i < n; i++)
        assert_int_equal(buf_append_str(b, unit), 0);
    return b->data ? b->data : ODD[0];
}

/* How many candidates json-c's rendering shows with a summary of n units (-1: none fits). */
static long shown_by_json_c(struct digest *d, struct card_result_info *in, struct buf *b,
                            const char *unit, size_t n, bool banner)
{
    char *out = NULL;
    size_t len = 0, shown = 0;
    long rc;

    if (banner)
        in->test_email = repeat(b, unit, n);
    else
        d->items[0].summary = repeat(b, unit, n);
    rc = card_render_result_json(&TO, in, &out, &len, &shown) == 0 ? (long)shown : -1;
    xfree(out);
    return rc;
}

/*
 * Around the size limit the writer drops exactly the candidates json-c's
 * re-rendering drops. A coarse sweep of summary sizes (ASCII, 3- and 4-byte
 * UTF-8, a sixfold escape) moves the cut across the candidates; then, found
 * by bisection on the json-c side, the exact size where the first candidate
 * stops fitting and where the frame itself stops fitting (a long test
 * address), and a byte either side of each.
 */
static void test_result_writer_drops_like_json_c(void **state)
{
    static const char *const units[] = {"a", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\x01"};
    struct digest_item items[12];
    struct digest d;
    struct card_result_info in = {"advisors", "r-3", NULL, &d};
    static char small[] = "short";
    struct buf b;
    char *out;
    size_t len, shown, u, size, i, lo, hi, mid, seen_mask = 0;
    int banner;

    buf_init(&b, 1u << 22);
    for (u = 0; u < ARRAY_SIZE(units); u++) {
        for (size = 0; size < 56000; size += 4001) {
            fill_huge(&d, items, ARRAY_SIZE(items), repeat(&b, units[u], size));
            /* Every other candidate small, so the cut is not always at a big one. */
            for (i = 1; i < ARRAY_SIZE(items); i += 2)
                items[i].summary = small;
            if (render_result(&TO, &in, &out, &len, &shown) == 0) {
                assert_true(card_utf16_bytes(out, len) < CARD_MAX_UTF16_BYTES);
                seen_mask |= (size_t)1 << shown;
                xfree(out);
            }
        }
        for (banner = 0; banner < 2; banner++) {
            /* One candidate; at lo it fits (with the banner: the card does), at hi not. */
            fill_huge(&d, items, 1, small);
            in.test_email = NULL;
            lo = 0;
            hi = 200000;
            assert_true(shown_by_json_c(&d, &in, &b, units[u], hi, banner) == (banner ? -1 : 0));
            while (hi - lo > 1) {
                mid = lo + (hi - lo) / 2;
                if (shown_by_json_c(&d, &in, &b, units[u], mid, banner) >= (banner ? 0 : 1))
                    lo = mid;
                else
                    hi = mid;
            }
            for (size = lo - 1; size <= hi + 1; size++) {
                if (banner)
                    in.test_email = repeat(&b, units[u], size);
                else
                    items[0].summary = repeat(&b, units[u], size);
                if (render_result(&TO, &in, &out, &len, &shown) == 0) {
                    assert_true(banner ? size <= lo : shown == (size <= lo ? 1u : 0u));
                    xfree(out);
                } else {
                    assert_true(banner && size >= hi);
                }
            }
            in.test_email = NULL;
        }
    }
    buf_free(&b);
    /* The sweep saw cards with all ten candidates, with none, and in between. */
    assert_true(seen_mask & (1u << 10));
    assert_true(seen_mask & 1u);
    assert_true(seen_mask & ((1u << 10) - 2));
}

/* Through the parser, even 1 MB summaries are capped so all ten candidates fit. */
static void test_parsed_huge_summaries_fit(void **state)
{
    struct digest d;
    struct card_result_info in = {"advisors", "r-2", NULL, &d};
    struct buf b;
    char *out;
    size_t i, j, len, shown = 0;

    buf_init(&b, DIGEST_MAX_BODY_BYTES);
    assert_int_equal(buf_append_str(&b, "{\"items\":["), 0);
    for (i = 0; i < 10; i++) {
        assert_int_equal(buf_append_str(&b, i ? ",{\"name\":\"n\",\"summary\":\""
                                              : "{\"name\":\"n\",\"summary\":\""),
                         0);
        /* \u0001 escapes grow sixfold on the way out: the worst case per character. */
        for (j = 0; j < 60000; j++)
            assert_int_equal(buf_append_str(&b, "\\u0001"), 0);
        assert_int_equal(buf_append_str(&b, "\"}"), 0);
    }
    assert_int_equal(buf_append_str(&b, "]}"), 0);
    assert_int_equal(digest_parse(&d, b.data, b.len), 0);
    assert_int_equal(render_result(&TO, &in, &out, &len, &shown), 0);
    assert_int_equal(shown, 10);
    assert_true(card_utf16_bytes(out, len) < CARD_MAX_UTF16_BYTES);
    xfree(out);
    digest_free(&d);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_cards),
        cmocka_unit_test(test_ack_writer_matches_json_c),
        cmocka_unit_test(test_result_card),
        cmocka_unit_test(test_result_empty),
        cmocka_unit_test(test_result_many),
        cmocka_unit_test(test_error_cards),
        cmocka_unit_test(test_help_card),
        cmocka_unit_test(test_status_cards),
        cmocka_unit_test(test_activity_shape),
        cmocka_unit_test(test_escaping_round_trip),
        cmocka_unit_test(test_utf16_bytes),
        cmocka_unit_test(test_reply_address),
        cmocka_unit_test(test_size_limit_is_utf16),
        cmocka_unit_test(test_result_drops_items_to_fit),
        cmocka_unit_test(test_result_writer_matches_json_c),
        cmocka_unit_test(test_result_writer_drops_like_json_c),
        cmocka_unit_test(test_parsed_huge_summaries_fit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
