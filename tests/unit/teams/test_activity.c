/*
 * test_activity.c: the activity module against the three Teams fixtures,
 * every way a required field can be wrong, broken JSON (truncation,
 * trailing bytes, depth, NUL bytes), mention stripping and the
 * conversation reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "teams/activity.h"
#include "core/buf.h"
#include "core/json_strict.h"
#include "teams/command.h"
#include "config.h"

/* Writable like config's list (command_parse takes char *const *). */
static char aud_advisors[] = "advisors", aud_c_suite[] = "c_suite", aud_global[] = "global";
static char *const audiences[] = {aud_advisors, aud_c_suite, aud_global};

/* Reads a fixture into an owned, NUL-terminated buffer. */
static char *read_fixture(const char *name, size_t *len)
{
    char path[512];
    struct buf b;
    char chunk[4096];
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", FIXTURES_DIR, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    buf_init(&b, 1 << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(buf_append(&b, chunk, n), 0);
    fclose(f);
    *len = b.len;
    return buf_take(&b);
}

/* Step 1 alone: the verdict, with what a holds checked either way. */
static int parse_bytes_at(const char *body, size_t len, size_t *bad_at)
{
    struct activity a;
    int rc = activity_parse(&a, body, len, bad_at);

    if (rc == 0) {
        assert_non_null(a.buf);
        activity_free(&a);
    } else {
        assert_int_equal(rc, DG_ERR_BAD_JSON);
        assert_null(a.buf);
        assert_null(a.type);
        assert_true(*bad_at <= len);
    }
    return rc;
}

static int parse_bytes(const char *body, size_t len)
{
    size_t bad_at = SIZE_MAX;

    return parse_bytes_at(body, len, &bad_at);
}

static int parse_str(const char *body)
{
    return parse_bytes(body, strlen(body));
}

/* Where step 1 refuses body, or -1 when it does not. */
static long bad_at_str(const char *body)
{
    size_t bad_at = SIZE_MAX;

    return parse_bytes_at(body, strlen(body), &bad_at) ? (long)bad_at : -1;
}

/* A fixture as a json-c tree, for the tests that edit one before it is sent. */
static struct json_object *fixture_root(const char *name)
{
    struct json_object *root;
    size_t len;
    char *body = read_fixture(name, &len);

    root = json_tokener_parse(body);
    assert_non_null(root);
    xfree(body);
    return root;
}

/* Both steps on JSON text, which must pass them. */
static void load_json(struct activity *a, const char *json)
{
    char err[64];

    assert_int_equal(activity_parse(a, json, strlen(json), NULL), 0);
    assert_int_equal(activity_check_fields(a, err, sizeof(err)), 0);
    assert_string_equal(err, "");
}

/* Both steps on a fixture's own bytes. */
static void load_fixture(struct activity *a, const char *name)
{
    char err[64];
    size_t len;
    char *body = read_fixture(name, &len);

    assert_int_equal(activity_parse(a, body, len, NULL), 0);
    xfree(body); /* a holds its own copy */
    assert_int_equal(activity_check_fields(a, err, sizeof(err)), 0);
}

/* Both steps on an edited tree, as the bytes json-c writes for it (root is dropped). */
static void load_root(struct activity *a, struct json_object *root)
{
    load_json(a, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
}

struct fixture_expect {
    const char *file;
    const char *conv_key;
    const char *values[ACTIVITY_REF_FIELDS];
};

static const struct fixture_expect fixtures[] = {
    {"teams-personal-chat.json",
     "msteams:a:17I0kl9EkpE1O9PH5TWrzrLNwnWWcfrU7QZjKR0WSfOpzbfcAg2IaydGElSo10tVr4C7Fc6GtieTJX663"
     "WuJCc1uA83n4CSrHSgGBj5XNYLcVlJAs2ZX8DbYBPck201w-",
     {"https://smba.trafficmanager.net/amer/", "msteams",
      "a:17I0kl9EkpE1O9PH5TWrzrLNwnWWcfrU7QZjKR0WSfOpzbfcAg2IaydGElSo10tVr4C7Fc6GtieTJX663WuJCc1uA"
      "83n4CSrHSgGBj5XNYLcVlJAs2ZX8DbYBPck201w-",
      "personal", "72f988bf-86f1-41af-91ab-2d7cd011db47", "28:c9e8c047-2a74-40a2-b28a-b162d5f5327c",
      "Teams TestBot",
      "29:1XJKJMvc5GBtc2JwZq0oj8tHZmzrQgFmB39ATiQWA85gQtHieVkKilBZ9XHoq9j7Zaqt7CZ-NJWi7me2kHTL3Bw",
      "Megan Bowen", "7faf8ab2-3d56-4244-b585-20c8a42ed2b8", "1485983408511", "en-US",
      "1700000000123", "0"}},
    {"teams-channel-mention.json",
     "msteams:19:6848757105754c8981c67612732d9aa7@thread.tacv2;messageid=1759881511856",
     {"https://smba.trafficmanager.net/amer/50612dbb-0237-4969-b378-8d42590f9c00/", "msteams",
      "19:6848757105754c8981c67612732d9aa7@thread.tacv2;messageid=1759881511856", "channel",
      "50612dbb-0237-4969-b378-8d42590f9c00", "28:0b6fe6d1-fece-44f7-9a48-56465e2d5ab8", "ridotest",
      "29:17bUvCasIPKfQIXHvNzcPjD86fwm6GkWc1PvCGP2-NSkNb7AyGYpjQ7Xw-XgTwaHW5JxZ4KMNDxn1kcL8fwX1Nw",
      "rido", "b15a9416-0ad3-4172-9210-7beb711d3f70", "1759944781430", "en-US", "1700000000123",
      "0"}},
    {"teams-group-chat.json",
     "msteams:19:groupChatId@thread.v2",
     {"https://smba.trafficmanager.net/amer/", "msteams", "19:groupChatId@thread.v2", "groupChat",
      "tenantId-Guid", "28:teamsbot-Guid", "Teams Bot", "29:User-One-Id", "User One",
      "User-aadObjectId", "groupChatActivityId", "", "1700000000123", "0"}},
};

static const char *const ref_names[ACTIVITY_REF_FIELDS] = {
    "service_url", "channel_id", "conversation_id", "conversation_type", "tenant_id",   "bot_id",
    "bot_name",    "user_id",    "user_name",       "user_aad_id",       "activity_id", "locale",
    "updated_ms",  "stale",
};

static void test_fixtures_command(void **state)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(fixtures); i++) {
        struct activity a;
        struct command cmd;
        char *text;

        load_fixture(&a, fixtures[i].file);
        assert_string_equal(a.type, "message");
        text = activity_command_text(&a);
        assert_string_equal(text, "digest advisors");
        command_parse(&cmd, text, audiences, ARRAY_SIZE(audiences));
        assert_int_equal(cmd.kind, COMMAND_DIGEST);
        assert_int_equal(cmd.error, COMMAND_OK);
        assert_string_equal(cmd.audience, "advisors");
        assert_string_equal(cmd.test_email, "");
        xfree(text);
        activity_free(&a);
    }
}

static void test_fixtures_reference(void **state)
{
    size_t i, j;

    for (i = 0; i < ARRAY_SIZE(fixtures); i++) {
        struct activity a;
        struct activity_ref ref;
        char *key;

        load_fixture(&a, fixtures[i].file);
        key = activity_conv_key(&a);
        assert_string_equal(key, fixtures[i].conv_key);
        xfree(key);
        activity_reference(&a, 1700000000123ULL, false, &ref);
        for (j = 0; j < ACTIVITY_REF_FIELDS; j++) {
            assert_string_equal(ref.fields[j], ref_names[j]);
            assert_string_equal(ref.values[j], fixtures[i].values[j]);
        }
        activity_reference(&a, 0, true, &ref);
        assert_string_equal(ref.values[12], "0");
        assert_string_equal(ref.values[13], "1");
        activity_free(&a);
    }
}

static void test_fixture_mentions(void **state)
{
    struct activity a;

    load_fixture(&a, "teams-channel-mention.json");
    assert_int_equal(a.n_mentions, 1);
    assert_string_equal(a.mentions[0], "<at>ridotest</at>");
    assert_true(a.any_mention);
    assert_string_equal(a.text, "<at>ridotest</at> digest advisors");
    activity_free(&a);

    load_fixture(&a, "teams-personal-chat.json");
    assert_int_equal(a.n_mentions, 0);
    assert_false(a.any_mention);
    activity_free(&a);
}

/* Sets the member at a dotted path of root to val (NULL is JSON null), or deletes it. */
static void set_path_ex(struct json_object *root, const char *path, struct json_object *val,
                        bool del)
{
    const char *dot = strrchr(path, '.');
    struct json_object *parent = root;

    if (dot) {
        char head[64];

        assert_true((size_t)(dot - path) < sizeof(head));
        memcpy(head, path, (size_t)(dot - path));
        head[dot - path] = '\0';
        assert_true(json_object_object_get_ex(root, head, &parent));
        path = dot + 1;
    }
    if (del)
        json_object_object_del(parent, path);
    else
        assert_int_equal(json_object_object_add(parent, path, val), 0);
}

static void set_path(struct json_object *root, const char *path, struct json_object *val)
{
    set_path_ex(root, path, val, val == NULL);
}

static void expect_json_field_error(const char *json, const char *path)
{
    struct activity a;
    char err[64];

    assert_int_equal(activity_parse(&a, json, strlen(json), NULL), 0);
    assert_int_equal(activity_check_fields(&a, err, sizeof(err)), DG_ERR_FIELD);
    assert_string_equal(err, path);
    activity_free(&a);
}

static void expect_field_error(struct json_object *root, const char *path)
{
    expect_json_field_error(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN), path);
    json_object_put(root);
}

/* Each way of being wrong for one required field, on a fresh copy each time. */
enum variant { V_DELETE, V_NUMBER, V_EMPTY, V_NULL, V_ARRAY, V_OBJECT, V_BOOL, V_NUL, V_COUNT };

static struct json_object *variant_value(enum variant v)
{
    switch (v) {
    case V_DELETE:
        return NULL;
    case V_NUMBER:
        return json_object_new_int(42);
    case V_EMPTY:
        return json_object_new_string("");
    case V_NULL:
        return NULL; /* json-c's null */
    case V_ARRAY:
        return json_object_new_array();
    case V_OBJECT:
        return json_object_new_object();
    case V_BOOL:
        return json_object_new_boolean(1);
    case V_NUL:
        return json_object_new_string_len("ab\0cd", 5);
    case V_COUNT:
        break;
    }
    fail();
    return NULL;
}

static void test_required_fields(void **state)
{
    static const char *const paths[] = {"type",    "id",          "serviceUrl", "conversation.id",
                                        "from.id", "recipient.id"};
    struct json_object *orig = fixture_root("teams-channel-mention.json");
    size_t i;
    int v;

    for (i = 0; i < ARRAY_SIZE(paths); i++) {
        for (v = 0; v < V_COUNT; v++) {
            struct json_object *copy = NULL;
            struct json_object *val = variant_value((enum variant)v);

            assert_int_equal(json_object_deep_copy(orig, &copy, NULL), 0);
            set_path_ex(copy, paths[i], val, v == V_DELETE);
            expect_field_error(copy, paths[i]);
        }
    }
    json_object_put(orig);
}

/* The parent of a nested field being absent or not an object names the field. */
static void test_required_parents(void **state)
{
    static const char *const parents[] = {"conversation", "from", "recipient"};
    static const char *const paths[] = {"conversation.id", "from.id", "recipient.id"};
    struct json_object *orig = fixture_root("teams-group-chat.json");
    size_t i;

    for (i = 0; i < ARRAY_SIZE(parents); i++) {
        struct json_object *copy = NULL;

        assert_int_equal(json_object_deep_copy(orig, &copy, NULL), 0);
        json_object_object_del(copy, parents[i]);
        expect_field_error(copy, paths[i]);

        copy = NULL; /* deep_copy wants an empty destination */
        assert_int_equal(json_object_deep_copy(orig, &copy, NULL), 0);
        set_path(copy, parents[i], json_object_new_string("x"));
        expect_field_error(copy, paths[i]);

        copy = NULL; /* deep_copy wants an empty destination */
        assert_int_equal(json_object_deep_copy(orig, &copy, NULL), 0);
        set_path(copy, parents[i], json_object_new_array());
        expect_field_error(copy, paths[i]);
    }
    json_object_put(orig);
}

static void test_field_errors_from_text(void **state)
{
    struct activity a;
    char err[4];
    const char *body = "{\"type\":\"message\",\"id\":\"1\",\"serviceUrl\":\"https://x/\","
                       "\"conversation\":{\"id\":\"c\\u0000d\"},\"from\":{\"id\":\"u\"},"
                       "\"recipient\":{\"id\":\"b\"}}";

    /* An escaped NUL is valid JSON but would cut the id short: a field error. */
    assert_int_equal(parse_str(body), 0);
    expect_json_field_error(body, "conversation.id");

    /* A small error buffer is never overrun, and none at all is fine. */
    assert_int_equal(activity_parse(&a, "{}", 2, NULL), 0);
    assert_int_equal(activity_check_fields(&a, err, sizeof(err)), DG_ERR_FIELD);
    assert_string_equal(err, "typ");
    assert_int_equal(activity_check_fields(&a, NULL, 0), DG_ERR_FIELD);
    activity_free(&a);
}

static void test_optional_fields(void **state)
{
    struct json_object *root = fixture_root("teams-channel-mention.json");
    struct activity a;

    set_path(root, "locale", json_object_new_int(5));
    set_path(root, "channelId", json_object_new_array());
    set_path(root, "text", json_object_new_object());
    set_path(root, "from.name", json_object_new_string_len("a\0b", 3));
    set_path(root, "conversation.tenantId", json_object_new_string(""));
    load_root(&a, root);
    assert_string_equal(a.locale, "");
    assert_string_equal(a.channel_id, "");
    assert_string_equal(a.text, "");
    assert_string_equal(a.from_name, "");
    assert_string_equal(a.action, "");
    /* conversation.tenantId empty: channelData.tenant.id is used. */
    assert_string_equal(a.tenant_id, "50612dbb-0237-4969-b378-8d42590f9c00");
    activity_free(&a);

    root = fixture_root("teams-channel-mention.json");
    set_path(root, "conversation.tenantId", NULL);
    set_path(root, "channelData.tenant", json_object_new_string("t"));
    load_root(&a, root);
    assert_string_equal(a.tenant_id, "");
    activity_free(&a);
}

static void test_installation_update(void **state)
{
    struct activity a;
    struct activity_ref ref;

    load_json(&a, "{\"type\":\"installationUpdate\",\"action\":\"remove\",\"id\":\"f:1\","
                  "\"serviceUrl\":\"https://s/\",\"channelId\":\"msteams\","
                  "\"conversation\":{\"id\":\"a:1\",\"conversationType\":\"personal\"},"
                  "\"from\":{\"id\":\"29:u\"},\"recipient\":{\"id\":\"28:b\"},"
                  "\"channelData\":{\"tenant\":{\"id\":\"T\"}}}");
    assert_string_equal(a.type, "installationUpdate");
    assert_string_equal(a.action, "remove");
    assert_string_equal(a.tenant_id, "T");
    assert_string_equal(a.text, "");
    activity_reference(&a, 18446744073709551615ULL, true, &ref);
    assert_string_equal(ref.values[12], "18446744073709551615");
    assert_string_equal(ref.values[13], "1");
    assert_string_equal(ref.values[9], "");
    activity_free(&a);
}

static void test_broken_truncated(void **state)
{
    size_t len, end, i;
    char *body = read_fixture("teams-group-chat.json", &len);

    /* Every strict prefix that stops before the closing brace is broken. */
    end = len;
    while (end > 0 && body[end - 1] != '}')
        end--;
    assert_true(end > 0);
    for (i = 0; i < end; i++) {
        char *cut = xmalloc(i ? i : 1); /* exactly i bytes: a read past them is ASan's */
        size_t bad_at = SIZE_MAX;

        memcpy(cut, body, i);
        assert_int_equal(parse_bytes_at(cut, i, &bad_at), DG_ERR_BAD_JSON);
        assert_int_equal(bad_at, i); /* it broke off there, and nowhere before */
        xfree(cut);
    }
    for (i = end; i <= len; i++)
        assert_int_equal(parse_bytes(body, i), 0);
    xfree(body);
}

static void test_broken_trailing(void **state)
{
    assert_int_equal(parse_str("{\"a\":1}"), 0);
    assert_int_equal(parse_str("  \r\n{\"a\":1} \n\t\r "), 0);
    assert_int_equal(parse_str("{\"a\":1}x"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{\"a\":1} x"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{\"a\":1}}"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{\"a\":1}{}"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{\"a\":1},"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{\"a\":1}\n[]"), DG_ERR_BAD_JSON);
}

static void test_broken_not_object(void **state)
{
    assert_int_equal(parse_str("[{\"type\":\"message\"}]"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("\"message\""), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("42"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("null"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("true"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str(""), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("   "), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{}"), 0);
}

static void test_broken_lenient_syntax(void **state)
{
    /* json-c's lenient extensions are off: these are not JSON. */
    assert_int_equal(parse_str("{'a':'b'}"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("/*c*/{\"a\":1}"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{\"a\":[1,]}"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{\"a\":1,}"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{\"a\":True}"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{a:1}"), DG_ERR_BAD_JSON);
    /* Invalid UTF-8 inside a string. */
    assert_int_equal(parse_str("{\"a\":\"\xff\"}"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{\"a\":\"\xc3\"}"), DG_ERR_BAD_JSON);
    assert_int_equal(parse_str("{\"a\":\"\xc3\xa9\"}"), 0);
}

/*
 * Without arrays: depth objects chained as {"a":{"a":…}}, the innermost one
 * holding leaf. With arrays: one object holding depth - 2 nested arrays
 * around leaf, which is itself a container, so depth containers in all.
 */
static char *nested(int depth, bool arrays, const char *leaf)
{
    struct buf b;
    int i;

    buf_init(&b, 1 << 16);
    if (arrays) {
        assert_int_equal(buf_append_str(&b, "{\"a\":"), 0);
        for (i = 2; i < depth; i++)
            assert_int_equal(buf_append_str(&b, "["), 0);
        assert_int_equal(buf_append_str(&b, leaf), 0);
        for (i = 2; i < depth; i++)
            assert_int_equal(buf_append_str(&b, "]"), 0);
        assert_int_equal(buf_append_str(&b, "}"), 0);
        return buf_take(&b);
    }
    for (i = 1; i < depth; i++)
        assert_int_equal(buf_append_str(&b, "{\"a\":"), 0);
    assert_int_equal(buf_printf(&b, "{\"a\":%s}", leaf), 0);
    for (i = 1; i < depth; i++)
        assert_int_equal(buf_append_str(&b, "}"), 0);
    return buf_take(&b);
}

static void expect_depth(int depth, bool arrays, const char *leaf, int want)
{
    char *s = nested(depth, arrays, leaf);

    assert_int_equal(parse_str(s), want);
    xfree(s);
}

static void test_broken_depth(void **state)
{
    /* SPEC §3: the top-level object is depth 1; deeper than 64 is broken. */
    assert_int_equal(JSON_MAX_DEPTH, 64);
    expect_depth(64, false, "\"x\"", 0);
    expect_depth(64, false, "1", 0);
    expect_depth(64, false, "{}", DG_ERR_BAD_JSON); /* the {} is container 65 */
    expect_depth(63, false, "{}", 0);
    expect_depth(65, false, "\"x\"", DG_ERR_BAD_JSON);
    expect_depth(64, true, "[]", 0);
    expect_depth(64, true, "[1]", 0);
    expect_depth(64, true, "{\"k\":\"v\"}", 0);
    expect_depth(64, true, "[{}]", DG_ERR_BAD_JSON);
    expect_depth(65, true, "[]", DG_ERR_BAD_JSON);
    expect_depth(65, true, "[\"x\"]", DG_ERR_BAD_JSON);
    expect_depth(200, false, "1", DG_ERR_BAD_JSON);
}

static void test_broken_nul(void **state)
{
    static const char ok[] = "{\"type\":\"message\",\"text\":\"digest advisors\"}";
    char body[sizeof(ok) + 8];
    size_t n = sizeof(ok) - 1, i;

    assert_int_equal(parse_bytes(ok, n), 0);
    /* A raw NUL anywhere before the end, in a string or between tokens. */
    for (i = 0; i < n; i++) {
        memcpy(body, ok, n);
        body[i] = '\0';
        assert_int_equal(parse_bytes(body, n), DG_ERR_BAD_JSON);
    }
    /* A NUL after a complete object, and bytes hidden behind it. */
    memcpy(body, ok, n);
    body[n] = '\0';
    assert_int_equal(parse_bytes(body, n + 1), DG_ERR_BAD_JSON);
    memcpy(body + n + 1, "{}", 2);
    assert_int_equal(parse_bytes(body, n + 3), DG_ERR_BAD_JSON);
}

/* A minimal message from bot 28:bot ("Bot") with the given text and entities. */
static char *mention_text(const char *text_json, const char *entities_json, const char *bot_name)
{
    struct buf b;
    struct activity a;
    char *out;
    char *json;

    buf_init(&b, 1 << 16);
    assert_int_equal(buf_printf(&b,
                                "{\"type\":\"message\",\"id\":\"1\",\"serviceUrl\":\"https://s/\","
                                "\"conversation\":{\"id\":\"19:c\"},\"from\":{\"id\":\"29:u\"},"
                                "\"recipient\":{\"id\":\"28:bot\",\"name\":\"%s\"}",
                                bot_name),
                     0);
    if (text_json)
        assert_int_equal(buf_printf(&b, ",\"text\":%s", text_json), 0);
    if (entities_json)
        assert_int_equal(buf_printf(&b, ",\"entities\":%s", entities_json), 0);
    assert_int_equal(buf_append_str(&b, "}"), 0);
    json = buf_take(&b);
    load_json(&a, json);
    xfree(json);
    out = activity_command_text(&a);
    activity_free(&a);
    return out;
}

#define BOT_MENTION                                                                                \
    "{\"type\":\"mention\",\"mentioned\":{\"id\":\"28:bot\"},\"text\":\"<at>Bot</at>\"}"
#define ALICE_MENTION                                                                              \
    "{\"type\":\"mention\",\"mentioned\":{\"id\":\"29:alice\"},\"text\":\"<at>Alice</at>\"}"

static void expect_text(const char *text_json, const char *entities_json, const char *want)
{
    char *got = mention_text(text_json, entities_json, "Bot");

    assert_string_equal(got, want);
    xfree(got);
}

static void test_mentions(void **state)
{
    /* Another user's mention stays; only the bot's goes. */
    expect_text("\"<at>Alice</at> <at>Bot</at> digest advisors\"",
                "[" ALICE_MENTION "," BOT_MENTION "]", "<at>Alice</at> digest advisors");
    /* Every occurrence, anywhere, and it never glues two words. */
    expect_text("\"<at>Bot</at> digest <at>Bot</at> advisors <at>Bot</at>\"", "[" BOT_MENTION "]",
                "digest advisors");
    expect_text("\"digest<at>Bot</at>advisors\"", "[" BOT_MENTION "]", "digest advisors");
    expect_text("\"digest <at>Bot</at> advisors\"", "[" BOT_MENTION "]", "digest advisors");
    /* Two different mention texts for the bot, one a prefix of the other. */
    expect_text("\"<at>Bot</at> Jr digest <at>Bot</at> advisors\"",
                "[" BOT_MENTION ",{\"type\":\"mention\",\"mentioned\":{\"id\":\"28:bot\"},"
                "\"text\":\"<at>Bot</at> Jr\"}]",
                "digest advisors");
    /* type is case-insensitive; mentioned.id must match exactly. */
    expect_text(
        "\"<at>Bot</at> help\"",
        "[{\"type\":\"MENTION\",\"mentioned\":{\"id\":\"28:bot\"},\"text\":\"<at>Bot</at>\"}]",
        "help");
    expect_text(
        "\"<at>Bot</at> help\"",
        "[{\"type\":\"mention\",\"mentioned\":{\"id\":\"28:BOT\"},\"text\":\"<at>Bot</at>\"}]",
        "<at>Bot</at> help");
    /* Odd entities are skipped without harm. */
    expect_text("\"<at>Bot</at> help\"",
                "[1,null,\"x\",{\"type\":5},{\"type\":\"mention\"},{\"type\":\"mention\","
                "\"mentioned\":{\"id\":\"28:bot\"},\"text\":\"\"}," BOT_MENTION "]",
                "help");
    expect_text("\"<at>Bot</at> help\"", "{\"type\":\"mention\"}", "help");
}

static void test_mentions_space(void **state)
{
    expect_text("\"<at>Bot</at>&nbsp;digest&nbsp;&nbsp;advisors&nbsp;\"", "[" BOT_MENTION "]",
                "digest advisors");
    expect_text("\"\\u00a0<at>Bot</at>\\u00a0digest\\u00a0advisors\\u00a0\"", "[" BOT_MENTION "]",
                "digest advisors");
    expect_text("\"\\r\\n\\t <at>Bot</at>\\tdigest \\r\\n advisors\\n\"", "[" BOT_MENTION "]",
                "digest advisors");
    expect_text("\"&nbsp\"", NULL, "&nbsp");
    expect_text("\"caf\\u00e9\"", NULL, "caf\xc3\xa9");
    expect_text("\"  \\n&nbsp; \"", NULL, "");
    expect_text("\"<at>Bot</at>\"", "[" BOT_MENTION "]", "");
    expect_text(NULL, "[" BOT_MENTION "]", "");
    expect_text("42", NULL, "");
}

static void test_mentions_without_entities(void **state)
{
    char *got;

    expect_text("\"digest advisors\"", NULL, "digest advisors");
    expect_text("\"digest advisors\"", "[]", "digest advisors");
    /* Bare markup naming the bot, no mention entity at all: stripped. */
    expect_text("\" <at>Bot</at> digest advisors\"", NULL, "digest advisors");
    expect_text("\"<AT>Bot</AT>digest advisors\"", "[]", "digest advisors");
    /* Only at the start, only the exact name, only without mention entities. */
    expect_text("\"digest <at>Bot</at> advisors\"", NULL, "digest <at>Bot</at> advisors");
    expect_text("\"<at>bot</at> digest\"", NULL, "<at>bot</at> digest");
    expect_text("\"<at>Bot</at> digest\"", "[" ALICE_MENTION "]", "<at>Bot</at> digest");
    expect_text("\"<at>Bot\"", NULL, "<at>Bot");
    got = mention_text("\"<at></at> digest\"", NULL, "");
    assert_string_equal(got, "<at></at> digest");
    xfree(got);
}

static void test_mentions_cap(void **state)
{
    struct buf text, ents, json;
    struct activity a;
    char *got;
    int i;

    /* Ten distinct bot mention texts: eight are kept, the rest stay in the text. */
    buf_init(&text, 1 << 16);
    buf_init(&ents, 1 << 16);
    buf_init(&json, 1 << 16);
    for (i = 0; i < 10; i++) {
        assert_int_equal(buf_printf(&text, "<at>B%d</at> ", i), 0);
        assert_int_equal(buf_printf(&ents,
                                    "%s{\"type\":\"mention\",\"mentioned\":{\"id\":\"28:b\"},"
                                    "\"text\":\"<at>B%d</at>\"}",
                                    i ? "," : "", i),
                         0);
    }
    assert_int_equal(buf_printf(&json,
                                "{\"type\":\"message\",\"id\":\"1\",\"serviceUrl\":\"s\","
                                "\"conversation\":{\"id\":\"c\"},\"from\":{\"id\":\"u\"},"
                                "\"recipient\":{\"id\":\"28:b\"},\"text\":\"%shelp\","
                                "\"entities\":[%s]}",
                                buf_cstr(&text), buf_cstr(&ents)),
                     0);
    load_json(&a, buf_cstr(&json));
    assert_int_equal(a.n_mentions, ACTIVITY_MAX_MENTIONS);
    got = activity_command_text(&a);
    assert_string_equal(got, "<at>B8</at> <at>B9</at> help");
    xfree(got);
    activity_free(&a);
    buf_free(&text);
    buf_free(&ents);
    buf_free(&json);
}

/* The required members of a message, around the members a test adds (JSON text). */
#define MSG_HEAD                                                                                   \
    "{\"type\":\"message\",\"id\":\"1\",\"serviceUrl\":\"https://s/\",\"from\":{\"id\":\"29:u\"},"
#define MSG_TAIL ",\"conversation\":{\"id\":\"19:c\"},\"recipient\":{\"id\":\"28:bot\"}"

/* json-c's rule for duplicate members, kept: the last wins, and an object replaces one whole. */
static void test_duplicates(void **state)
{
    struct activity a;

    load_json(&a, "{\"type\":\"x\",\"type\":\"message\",\"id\":\"1\",\"serviceUrl\":\"https://s/\","
                  "\"conversation\":{\"id\":\"c1\",\"tenantId\":\"t1\",\"conversationType\":\"p\"},"
                  "\"from\":\"nobody\",\"from\":{\"id\":\"u\"},\"recipient\":{\"id\":\"b\"},"
                  "\"conversation\":{\"id\":\"c2\"},\"channelData\":{\"tenant\":{\"id\":\"d1\"}},"
                  "\"channelData\":{\"tenant\":5},\"locale\":\"en\",\"locale\":null}");
    assert_string_equal(a.type, "message");
    assert_string_equal(a.conversation_id, "c2");
    assert_string_equal(a.conversation_type, ""); /* the first conversation's, forgotten */
    assert_string_equal(a.tenant_id, "");         /* so is t1, and channelData's d1 */
    assert_string_equal(a.from_id, "u");
    assert_string_equal(a.locale, "");
    activity_free(&a);

    /* A later value of the wrong type makes the member absent. */
    expect_json_field_error(MSG_HEAD "\"type\":5" MSG_TAIL "}", "type");
    expect_json_field_error(MSG_HEAD "\"conversation\":{\"id\":\"c\"},\"conversation\":[]}",
                            "conversation.id");
    expect_json_field_error(MSG_HEAD "\"recipient\":{\"id\":\"b\"}" MSG_TAIL
                                     ",\"recipient\":{\"name\":\"b\"}}",
                            "recipient.id");
}

static void test_entities_duplicates_and_order(void **state)
{
    struct activity a;

    /* entities[] before recipient: the mention is the bot's all the same. */
    load_json(&a,
              "{\"type\":\"message\",\"id\":\"1\",\"serviceUrl\":\"s\",\"text\":\"<at>Bot</at> x\","
              "\"entities\":[" BOT_MENTION "],\"from\":{\"id\":\"u\"},"
              "\"conversation\":{\"id\":\"c\"},\"recipient\":{\"id\":\"28:bot\"}}");
    assert_int_equal(a.n_mentions, 1);
    assert_string_equal(a.mentions[0], "<at>Bot</at>");
    activity_free(&a);

    /* ... but only the last recipient counts. */
    load_json(&a, MSG_HEAD "\"entities\":[" BOT_MENTION "]" MSG_TAIL
                           ",\"recipient\":{\"id\":\"28:other\"}}");
    assert_int_equal(a.n_mentions, 0);
    assert_true(a.any_mention);
    activity_free(&a);

    /* A later entities replaces the earlier one: no mention left at all. */
    load_json(&a, MSG_HEAD "\"entities\":[" BOT_MENTION "],\"entities\":[{\"type\":\"x\"}]" MSG_TAIL
                           "}");
    assert_int_equal(a.n_mentions, 0);
    assert_false(a.any_mention);
    activity_free(&a);
    load_json(&a, MSG_HEAD "\"entities\":[" BOT_MENTION "],\"entities\":{}" MSG_TAIL "}");
    assert_false(a.any_mention);
    activity_free(&a);

    /* Inside one entity the same rules: the last "mentioned" and "type" win. */
    load_json(&a, MSG_HEAD "\"entities\":[{\"type\":\"mention\",\"mentioned\":{\"id\":\"28:bot\"},"
                           "\"text\":\"<at>Bot</at>\",\"mentioned\":{\"name\":\"x\"}},"
                           "{\"type\":\"mention\",\"mentioned\":{\"id\":\"28:bot\"},"
                           "\"text\":\"<at>B</at>\",\"type\":\"clientInfo\"},"
                           "{\"type\":\"mention\",\"mentioned\":{\"id\":\"28:bot\"},"
                           "\"text\":\"<at>C</at>\"}]" MSG_TAIL "}");
    assert_int_equal(a.n_mentions, 1);
    assert_string_equal(a.mentions[0], "<at>C</at>");
    assert_true(a.any_mention);
    activity_free(&a);
}

/* Names compare after decoding, and up to their first escaped NUL (json-c's C strings). */
static void test_member_names(void **state)
{
    struct activity a;

    load_json(&a, MSG_HEAD "\"t\\u0065xt\":\"a\",\"locale\\u0000junk\":\"fr\","
                           "\"action\\u0000\":\"add\",\"chan\\u0000nelId\":\"x\"" MSG_TAIL "}");
    assert_string_equal(a.text, "a");
    assert_string_equal(a.locale, "fr");
    assert_string_equal(a.action, "add");
    assert_string_equal(a.channel_id, ""); /* "chan" is nothing we read */
    activity_free(&a);
    expect_json_field_error(MSG_HEAD "\"type\\u0000\":7" MSG_TAIL "}", "type");
}

/* Captured strings decoded exactly as json-c decoded them. */
static void test_strings_decoded(void **state)
{
    struct activity a;

    load_json(&a,
              MSG_HEAD "\"text\":\"\\\"q\\\" \\\\ \\/ \\t \\u00e9 \\ud83d\\ude00 \\ud800 \\udc00\","
                       "\"locale\":\"x\\u0000y\",\"action\":\"\\ud800\\u0041\"" MSG_TAIL "}");
    assert_string_equal(a.text,
                        "\"q\" \\ / \t \xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbd \xef\xbf\xbd");
    assert_string_equal(a.locale, ""); /* held a NUL: not a string */
    assert_string_equal(a.action, "\xef\xbf\xbd"
                                  "A");
    activity_free(&a);
}

/*
 * Where the scanner is stricter than json-c (activity.h): not JSON by RFC
 * 8259, though json-c 0.16's strict mode took each of these. Refused at the
 * byte that breaks the grammar, in members digestd never reads as well.
 */
static void test_stricter_than_json_c(void **state)
{
    static const struct {
        const char *body;
        long at;
    } cases[] = {
        {"{'type':\"message\"}", 1},
        {"{\"a\":1,'b':2}", 7},
        {"{\"n\":00}", 6},
        {"{\"n\":-01}", 7},
        {"{\"n\":1.}", 7},
        {"{\"n\":-.5}", 6},
        {"{\"n\":1.e5}", 7},
        {"{\"n\":NaN}", 5},
        {"{\"n\":Infinity}", 5},
        {"{\"n\":-Infinity}", 6},
        {"{\"s\":\"a\tb\"}", 7},
        {"{\"s\":\"a\nb\"}", 7},
        {"{\"s\\u0041\x01\":1}", 9},
        {"{\"s\":\"\xc0\x80\"}", 6},
        {"{\"s\":\"\xe0\x80\x80\"}", 7},
        {"{\"s\":\"\xed\xa0\x80\"}", 7},
        {"{\"s\":\"\xf4\x90\x80\x80\"}", 7},
        {"{\"s\":\"\xf5\x80\x80\x80\"}", 6},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        struct json_object *o = NULL;

        /* json-c takes it, as activity_json_parse did ... */
        assert_int_equal(json_strict_object_nested(cases[i].body, strlen(cases[i].body),
                                                   JSON_MAX_DEPTH, true, &o),
                         0);
        json_object_put(o);
        /* ... the scanner does not. */
        if (bad_at_str(cases[i].body) != cases[i].at)
            fail_msg("case %zu: %ld, want %ld", i, bad_at_str(cases[i].body), cases[i].at);
    }
}

static void test_conv_key_empty_channel(void **state)
{
    struct activity a;
    char *key;

    load_json(&a, "{\"type\":\"message\",\"id\":\"1\",\"serviceUrl\":\"s\","
                  "\"conversation\":{\"id\":\"c:1\"},\"from\":{\"id\":\"u\"},"
                  "\"recipient\":{\"id\":\"b\"}}");
    key = activity_conv_key(&a);
    assert_string_equal(key, ":c:1");
    xfree(key);
    activity_free(&a);
    /* activity_free leaves a zeroed struct that can be freed again. */
    activity_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_command),
        cmocka_unit_test(test_fixtures_reference),
        cmocka_unit_test(test_fixture_mentions),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_required_parents),
        cmocka_unit_test(test_field_errors_from_text),
        cmocka_unit_test(test_optional_fields),
        cmocka_unit_test(test_installation_update),
        cmocka_unit_test(test_broken_truncated),
        cmocka_unit_test(test_broken_trailing),
        cmocka_unit_test(test_broken_not_object),
        cmocka_unit_test(test_broken_lenient_syntax),
        cmocka_unit_test(test_broken_depth),
        cmocka_unit_test(test_broken_nul),
        cmocka_unit_test(test_mentions),
        cmocka_unit_test(test_mentions_space),
        cmocka_unit_test(test_mentions_without_entities),
        cmocka_unit_test(test_mentions_cap),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_entities_duplicates_and_order),
        cmocka_unit_test(test_member_names),
        cmocka_unit_test(test_strings_decoded),
        cmocka_unit_test(test_stricter_than_json_c),
        cmocka_unit_test(test_conv_key_empty_channel),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
