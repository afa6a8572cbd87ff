/*
 * test_jwt_verify.c: the inbound token checks with real crypto. A key made
 * here (EVP_RSA_gen) is published through jwt_jwk_from_key and jwks_parse,
 * the path digestd's keys take; tokens are forged with jwt_sign_compact in
 * every shape issue 5 lists, and each must get its verdict from the check
 * SPEC §3 puts first. Time is fixed (NOW), so the leeway edges are exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "core/buf.h"
#include "teams/jwks.h"
#include "teams/jwt_sign.h"
#include "teams/jwt_verify.h"

#define NOW 1700000000
#define ISS "https://api.botframework.com"
#define APP "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
#define SURL "https://smba.trafficmanager.net/amer/"
#define TOKEN_MAX (JWT_MAX_AUTHORIZATION * 2)

static EVP_PKEY *key;   /* the channel's signing key, published in set */
static EVP_PKEY *other; /* a key nobody published */
static struct jwks set;
static char *jwks_text; /* set as JSON, for the HS256 confusion attack */

static const struct jwt_expect expect = {
    .issuer = ISS,
    .audience = APP,
    .service_url = SURL,
    .channel_id = "msteams",
    .now_s = NOW,
    .leeway_s = 300,
};

/* Adds key as a JWK with kid and endorsements (NULL = no property) to list. */
static void add_jwk(struct json_object *list, const char *kid, const char *const *endorse, size_t n)
{
    struct json_object *jwk;

    assert_int_equal(jwt_jwk_from_key(key, kid, endorse, n, &jwk), 0);
    json_object_array_add(list, jwk);
}

static int setup(void **state)
{
    static const char *const msteams[] = {"msteams"}, *const skype[] = {"skype"};
    struct json_object *doc = json_object_new_object(), *list = json_object_new_array();
    const char *text;

    key = EVP_RSA_gen(2048);
    other = EVP_RSA_gen(2048);
    if (!key || !other)
        return -1;
    add_jwk(list, "good", msteams, 1);
    add_jwk(list, "skype", skype, 1);
    add_jwk(list, "empty", msteams, 0); /* "endorsements":[] */
    add_jwk(list, "noprop", NULL, 0);
    /* An EC and an oct key under kids a token may name: jwks_parse must drop both. */
    json_object_array_add(
        list, json_tokener_parse("{\"kty\":\"EC\",\"kid\":\"ec\",\"crv\":\"P-256\",\"x\":"
                                 "\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\":"
                                 "\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}"));
    json_object_array_add(
        list, json_tokener_parse("{\"kty\":\"oct\",\"kid\":\"oct\",\"k\":\"c2VjcmV0\"}"));
    json_object_object_add(doc, "keys", list);
    text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
    jwks_text = xstrdup(text);
    json_object_put(doc);
    if (jwks_parse(&set, jwks_text, strlen(jwks_text)) != 0 || set.n != 4)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    jwks_free(&set);
    xfree(jwks_text);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    return 0;
}

/* The claims of a good token; callers edit the object before signing. */
static struct json_object *good_claims(void)
{
    struct json_object *c = json_object_new_object();

    json_object_object_add(c, "iss", json_object_new_string(ISS));
    json_object_object_add(c, "aud", json_object_new_string(APP));
    json_object_object_add(c, "serviceurl", json_object_new_string(SURL));
    json_object_object_add(c, "nbf", json_object_new_int64(NOW - 5));
    json_object_object_add(c, "exp", json_object_new_int64(NOW + 3600));
    return c;
}

/* "Bearer " + a token of header and claims (taken), signed the way how says. */
static char *forge(enum jwt_sig how, EVP_PKEY *with, const char *header, struct json_object *c)
{
    const char *text = json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN);
    struct buf b;

    buf_init(&b, TOKEN_MAX);
    assert_int_equal(buf_append_str(&b, "Bearer "), 0);
    assert_int_equal(
        jwt_sign_compact(how, with, jwks_text, strlen(jwks_text), header, text, strlen(text), &b),
        0);
    json_object_put(c);
    return buf_take(&b);
}

static char *forge_rs256(const char *kid, struct json_object *c)
{
    char header[128];

    snprintf(header, sizeof(header), "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    return forge(JWT_SIG_RS256, key, header, c);
}

/* Parses and verifies auth against set with e; the verdict, *why filled. */
static enum jwt_verdict check_with(const char *auth, const struct jwt_expect *e, const char **why)
{
    struct jwt t;
    enum jwt_verdict v;

    assert_int_equal(jwt_parse(&t, auth, strlen(auth)), 0);
    v = jwt_verify(&t, &set, e, why);
    jwt_free(&t);
    return v;
}

/* Takes auth; asserts the verdict and that the reason contains reason_part. */
static void expect_verdict(char *auth, enum jwt_verdict want, const char *reason_part)
{
    const char *why = NULL;
    enum jwt_verdict v = check_with(auth, &expect, &why);

    assert_non_null(why);
    if (v != want || !strstr(why, reason_part))
        fail_msg("verdict %d (%s), wanted %d (%s)", v, why, want, reason_part);
    xfree(auth);
}

static void test_valid_token(void **state)
{
    expect_verdict(forge_rs256("good", good_claims()), JWT_OK, "ok");
    /* The scheme is case-insensitive. */
    {
        char *auth = forge_rs256("good", good_claims());

        memcpy(auth, "bEARER", 6);
        expect_verdict(auth, JWT_OK, "ok");
    }
}

static void test_rs384_rs512(void **state)
{
    expect_verdict(forge(JWT_SIG_RS384, key, "{\"alg\":\"RS384\",\"kid\":\"good\"}", good_claims()),
                   JWT_OK, "ok");
    expect_verdict(forge(JWT_SIG_RS512, key, "{\"alg\":\"RS512\",\"kid\":\"good\"}", good_claims()),
                   JWT_OK, "ok");
    /* The header's alg picks the digest: an RS256 signature under "RS512" fails. */
    expect_verdict(forge(JWT_SIG_RS256, key, "{\"alg\":\"RS512\",\"kid\":\"good\"}", good_claims()),
                   JWT_UNAUTHORIZED, "signature");
}

static void test_wrong_audience(void **state)
{
    struct json_object *c = good_claims(), *arr;

    json_object_object_add(c, "aud", json_object_new_string("someone-else"));
    expect_verdict(forge_rs256("good", c), JWT_UNAUTHORIZED, "audience");
    c = good_claims();
    json_object_object_del(c, "aud");
    expect_verdict(forge_rs256("good", c), JWT_UNAUTHORIZED, "audience");
    /* SPEC §3 says exact: an array is refused, even one holding the app id alone. */
    c = good_claims();
    arr = json_object_new_array();
    json_object_array_add(arr, json_object_new_string(APP));
    json_object_object_add(c, "aud", arr);
    expect_verdict(forge_rs256("good", c), JWT_UNAUTHORIZED, "audience");
    c = good_claims();
    arr = json_object_new_array();
    json_object_array_add(arr, json_object_new_string(APP));
    json_object_array_add(arr, json_object_new_string("x"));
    json_object_object_add(c, "aud", arr);
    expect_verdict(forge_rs256("good", c), JWT_UNAUTHORIZED, "audience");
    /* A prefix is not the audience. */
    c = good_claims();
    json_object_object_add(c, "aud", json_object_new_string(APP "x"));
    expect_verdict(forge_rs256("good", c), JWT_UNAUTHORIZED, "audience");
}

static void test_wrong_issuer(void **state)
{
    struct json_object *c = good_claims();
    struct jwt t;
    char *auth;

    json_object_object_add(c, "iss", json_object_new_string("https://api.botframework.com.evil"));
    auth = forge_rs256("good", c);
    assert_int_equal(jwt_parse(&t, auth, strlen(auth)), 0);
    assert_false(jwt_issuer_ok(&t, &expect));
    jwt_free(&t);
    expect_verdict(auth, JWT_UNAUTHORIZED, "issuer");

    /* The pre-check comes before the key: a foreign issuer with an unknown kid is 401. */
    c = good_claims();
    json_object_object_add(c, "iss", json_object_new_string("https://sts.windows.net/x/"));
    expect_verdict(forge_rs256("nobody", c), JWT_UNAUTHORIZED, "issuer");

    auth = forge_rs256("good", good_claims());
    assert_int_equal(jwt_parse(&t, auth, strlen(auth)), 0);
    assert_true(jwt_issuer_ok(&t, &expect));
    jwt_free(&t);
    xfree(auth);
}

/* Claims c with key set to the JSON value text (parsed, so 1e400 keeps its spelling). */
static struct json_object *with_raw(struct json_object *c, const char *name, const char *text)
{
    struct json_object *v = json_tokener_parse(text);

    assert_true(v || strcmp(text, "null") == 0);
    json_object_object_add(c, name, v);
    return c;
}

static void expect_time(const char *name, struct json_object *v, enum jwt_verdict want,
                        const char *reason)
{
    struct json_object *c = good_claims();

    json_object_object_add(c, name, v);
    expect_verdict(forge_rs256("good", c), want, reason);
}

static void test_time_window(void **state)
{
    /* Expired once now >= exp + 300, as jsonwebtoken says: the edge itself is expired. */
    expect_time("exp", json_object_new_int64(NOW - 301), JWT_UNAUTHORIZED, "expired");
    expect_time("exp", json_object_new_int64(NOW - 300), JWT_UNAUTHORIZED, "expired");
    expect_time("exp", json_object_new_int64(NOW - 299), JWT_OK, "ok");
    expect_time("exp", json_object_new_int64(NOW - 200), JWT_OK, "ok");
    /* Fractions are kept: half a second past the edge is still good, half before is not. */
    expect_time("exp", json_object_new_double(NOW - 299.5), JWT_OK, "ok");
    expect_time("exp", json_object_new_double(NOW - 300.5), JWT_UNAUTHORIZED, "expired");
    expect_time("exp", json_object_new_double(NOW + 10.5), JWT_OK, "ok");

    /* Not yet valid while nbf > now + 300; the edge passes, a fraction past it does not. */
    expect_time("nbf", json_object_new_int64(NOW + 301), JWT_UNAUTHORIZED, "not yet valid");
    expect_time("nbf", json_object_new_int64(NOW + 300), JWT_OK, "ok");
    expect_time("nbf", json_object_new_double(NOW + 300.5), JWT_UNAUTHORIZED, "not yet valid");
    expect_time("nbf", json_object_new_double(NOW + 299.5), JWT_OK, "ok");
    expect_time("nbf", json_object_new_int64(NOW + 200), JWT_OK, "ok");
    {
        struct json_object *c = good_claims();

        json_object_object_del(c, "nbf"); /* nbf is optional */
        expect_verdict(forge_rs256("good", c), JWT_OK, "ok");
    }

    /* exp is required, and must be a number. */
    {
        struct json_object *c = good_claims();

        json_object_object_del(c, "exp");
        expect_verdict(forge_rs256("good", c), JWT_UNAUTHORIZED, "no exp");
    }
    expect_time("exp", json_object_new_string("9999999999"), JWT_UNAUTHORIZED,
                "exp is not a NumericDate");
    expect_time("exp", json_object_new_double(1e300), JWT_UNAUTHORIZED, "exp is not a NumericDate");
}

/* An nbf that is there but is not a number in range is refused, never taken as absent. */
static void test_malformed_nbf(void **state)
{
    static const char *const bad[] = {
        "null", "true",  "false",  "\"1700000000\"",      "[1700000000]",          "{\"t\":1}",
        "1e20", "1e400", "-1e400", "9223372036854775807", "100000000000000000000",
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        struct json_object *c = with_raw(good_claims(), "nbf", bad[i]);
        char *auth = forge_rs256("good", c);
        const char *why = NULL;
        struct jwt t;

        assert_int_equal(jwt_parse(&t, auth, strlen(auth)), 0);
        if (!t.bad_nbf || t.has_nbf)
            fail_msg("nbf %s not marked malformed", bad[i]);
        jwt_free(&t);
        if (check_with(auth, &expect, &why) != JWT_UNAUTHORIZED ||
            !strstr(why, "nbf is not a NumericDate"))
            fail_msg("nbf %s: %s", bad[i], why);
        xfree(auth);
    }
    /* The same shapes in exp are refused too (they always were, as "no exp"). */
    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        char *auth = forge_rs256("good", with_raw(good_claims(), "exp", bad[i]));
        const char *why = NULL;

        if (check_with(auth, &expect, &why) != JWT_UNAUTHORIZED ||
            !strstr(why, "exp is not a NumericDate"))
            fail_msg("exp %s: %s", bad[i], why);
        xfree(auth);
    }
}

static void test_bad_signature(void **state)
{
    char *auth = forge_rs256("good", good_claims());
    size_t n = strlen(auth);

    /* Flip one character inside the signature (not the last, which carries padding bits). */
    auth[n - 10] = auth[n - 10] == 'A' ? 'B' : 'A';
    expect_verdict(auth, JWT_UNAUTHORIZED, "signature");
    /* Signed by a key nobody published, under a published kid. */
    expect_verdict(
        forge(JWT_SIG_RS256, other, "{\"alg\":\"RS256\",\"kid\":\"good\"}", good_claims()),
        JWT_UNAUTHORIZED, "signature");
    /* A payload changed after signing: the signature covers the bytes received. */
    {
        char *a = forge_rs256("good", good_claims());
        char *b = forge_rs256("noprop", good_claims());
        char *dot_a = strchr(a, '.'), *dot_b = strchr(b, '.');
        struct buf mix;

        buf_init(&mix, TOKEN_MAX);
        assert_int_equal(buf_append(&mix, b, (size_t)(dot_b - b)), 0);
        assert_int_equal(buf_append_str(&mix, dot_a), 0);
        xfree(a);
        xfree(b);
        expect_verdict(buf_take(&mix), JWT_UNAUTHORIZED, "signature");
    }
}

static void test_unknown_kid(void **state)
{
    expect_verdict(forge_rs256("nobody", good_claims()), JWT_UNKNOWN_KID, "unknown");
    expect_verdict(forge(JWT_SIG_RS256, key, "{\"alg\":\"RS256\"}", good_claims()),
                   JWT_UNAUTHORIZED, "no kid");
    /* RS256 naming a kid whose JWK is EC or oct: those never enter the set. */
    expect_verdict(forge_rs256("ec", good_claims()), JWT_UNKNOWN_KID, "unknown");
    expect_verdict(forge_rs256("oct", good_claims()), JWT_UNKNOWN_KID, "unknown");
}

/* A set that somehow holds an EC key under a kid: still refused, before any verify. */
static void test_non_rsa_key_in_set(void **state)
{
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    struct jwks_key k = {.kid = (char[]){"ec"}, .pkey = ec};
    struct jwks one = {.keys = &k, .n = 1};
    char *auth = forge_rs256("ec", good_claims());
    const char *why = NULL;
    struct jwt t;

    assert_non_null(ec);
    assert_int_equal(jwt_parse(&t, auth, strlen(auth)), 0);
    assert_int_equal(jwt_verify(&t, &one, &expect, &why), JWT_UNAUTHORIZED);
    assert_non_null(strstr(why, "not RSA"));
    jwt_free(&t);
    xfree(auth);
    EVP_PKEY_free(ec);
}

static void test_algorithm_confusion(void **state)
{
    char *auth;
    struct jwt t;
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    long pem_len;

    /* alg none with the classic empty signature: not even three parts' worth. */
    auth = forge(JWT_SIG_NONE, NULL, "{\"alg\":\"none\",\"kid\":\"good\"}", good_claims());
    assert_int_equal(jwt_parse(&t, auth, strlen(auth)), DG_ERR_INVALID);
    xfree(auth);
    /* alg none (any case) even with a valid RSA signature attached. */
    expect_verdict(forge(JWT_SIG_RS256, key, "{\"alg\":\"none\",\"kid\":\"good\"}", good_claims()),
                   JWT_UNAUTHORIZED, "algorithm");
    expect_verdict(forge(JWT_SIG_RS256, key, "{\"alg\":\"None\",\"kid\":\"good\"}", good_claims()),
                   JWT_UNAUTHORIZED, "algorithm");
    expect_verdict(forge(JWT_SIG_RS256, key, "{\"alg\":\"rs256\",\"kid\":\"good\"}", good_claims()),
                   JWT_UNAUTHORIZED, "algorithm");
    expect_verdict(forge(JWT_SIG_RS256, key, "{\"kid\":\"good\"}", good_claims()), JWT_UNAUTHORIZED,
                   "algorithm");
    expect_verdict(forge(JWT_SIG_RS256, key, "{\"alg\":\"PS256\",\"kid\":\"good\"}", good_claims()),
                   JWT_UNAUTHORIZED, "algorithm");
    /* HS256 keyed with the published JWKS text (forge uses it as the secret). */
    expect_verdict(
        forge(JWT_SIG_HS256, NULL, "{\"alg\":\"HS256\",\"kid\":\"good\"}", good_claims()),
        JWT_UNAUTHORIZED, "algorithm");
    /* HS256 keyed with the public key's PEM, the textbook form of the attack. */
    assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
    pem_len = BIO_get_mem_data(bio, &pem);
    {
        struct json_object *c = good_claims();
        const char *text = json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN);
        struct buf b;

        buf_init(&b, TOKEN_MAX);
        assert_int_equal(buf_append_str(&b, "Bearer "), 0);
        assert_int_equal(jwt_sign_compact(JWT_SIG_HS256, NULL, pem, (size_t)pem_len,
                                          "{\"alg\":\"HS256\",\"kid\":\"good\"}", text,
                                          strlen(text), &b),
                         0);
        json_object_put(c);
        expect_verdict(buf_take(&b), JWT_UNAUTHORIZED, "algorithm");
    }
    BIO_free(bio);
}

static void test_service_url(void **state)
{
    struct json_object *c = good_claims();
    struct jwt_expect e = expect;
    const char *why;
    char *auth;

    json_object_object_add(c, "serviceurl", json_object_new_string("https://evil.example/"));
    expect_verdict(forge_rs256("good", c), JWT_UNAUTHORIZED, "serviceurl");
    c = good_claims();
    json_object_object_del(c, "serviceurl");
    expect_verdict(forge_rs256("good", c), JWT_UNAUTHORIZED, "serviceurl");
    /* Exact compare: no trailing-slash or case folding. */
    c = good_claims();
    json_object_object_add(c, "serviceurl",
                           json_object_new_string("https://smba.trafficmanager.net/amer"));
    expect_verdict(forge_rs256("good", c), JWT_UNAUTHORIZED, "serviceurl");
    /* The activity has no serviceUrl. */
    e.service_url = NULL;
    auth = forge_rs256("good", good_claims());
    assert_int_equal(check_with(auth, &e, &why), JWT_UNAUTHORIZED);
    xfree(auth);
}

static void test_endorsements(void **state)
{
    struct jwt_expect e = expect;
    const char *why;
    char *auth;

    expect_verdict(forge_rs256("skype", good_claims()), JWT_FORBIDDEN, "endorse");
    expect_verdict(forge_rs256("empty", good_claims()), JWT_FORBIDDEN, "endorse");
    expect_verdict(forge_rs256("noprop", good_claims()), JWT_OK, "ok");
    /* An activity without channelId matches no list (stricter than the SDKs). */
    auth = forge_rs256("good", good_claims());
    e.channel_id = NULL;
    assert_int_equal(check_with(auth, &e, &why), JWT_FORBIDDEN);
    e.channel_id = "";
    assert_int_equal(check_with(auth, &e, &why), JWT_FORBIDDEN);
    e.channel_id = "msteams";
    assert_int_equal(check_with(auth, &e, &why), JWT_OK);
    xfree(auth);
    auth = forge_rs256("noprop", good_claims());
    e.channel_id = NULL;
    assert_int_equal(check_with(auth, &e, &why), JWT_OK);
    xfree(auth);
}

/* The first failing check answers, in SPEC §3's order. */
static void test_order(void **state)
{
    struct json_object *c = good_claims();

    /* Expired and for another audience: the time check comes first. */
    json_object_object_add(c, "exp", json_object_new_int64(NOW - 1000));
    json_object_object_add(c, "aud", json_object_new_string("x"));
    expect_verdict(forge_rs256("good", c), JWT_UNAUTHORIZED, "expired");
    /* Bad signature and expired: the signature is checked before the claims. */
    c = good_claims();
    json_object_object_add(c, "exp", json_object_new_int64(NOW - 1000));
    expect_verdict(forge(JWT_SIG_RS256, other, "{\"alg\":\"RS256\",\"kid\":\"good\"}", c),
                   JWT_UNAUTHORIZED, "signature");
    /* Unendorsed and wrong serviceurl: endorsement (403) comes first. */
    c = good_claims();
    json_object_object_add(c, "serviceurl", json_object_new_string("https://evil.example/"));
    expect_verdict(forge_rs256("skype", c), JWT_FORBIDDEN, "endorse");
    /* Wrong audience on an unendorsed key: the 401 comes before the 403. */
    c = good_claims();
    json_object_object_add(c, "aud", json_object_new_string("x"));
    expect_verdict(forge_rs256("skype", c), JWT_UNAUTHORIZED, "audience");
}

/* Header values that must not parse. */
static void test_shapes(void **state)
{
    char *good = forge_rs256("good", good_claims());
    const char *tok = good + 7, *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
    struct buf b;
    struct jwt t;
    size_t i;
    const char *bad[] = {
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearerx a.b.c",
        "Token a.b.c",
        "Bearer garbage",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer ..",
        "Bearer a..c",
        "Bearer .b.c",
        "Bearer a.b.",
        "Bearer !!!.???.***",
        "Bearer a+b.c/d.e==",
        "Bearer eyJhbGciOiJSUzI1NiJ9.e30.AAAA", /* last: well-formed, see below */
    };

    for (i = 0; i + 1 < ARRAY_SIZE(bad); i++) {
        if (jwt_parse(&t, bad[i], strlen(bad[i])) != DG_ERR_INVALID)
            fail_msg("parsed: \"%s\"", bad[i]);
        assert_null(t.alg);
        assert_null(t.sig);
    }
    /* The last one is well-formed: a header and an empty claims object. */
    assert_int_equal(jwt_parse(&t, bad[i], strlen(bad[i])), 0);
    assert_string_equal(t.alg, "RS256");
    assert_null(t.kid);
    assert_false(t.has_exp);
    jwt_free(&t);

    /* "Bearer" with two tokens, a double space, a tab, trailing white space. */
    buf_init(&b, TOKEN_MAX);
    assert_int_equal(buf_printf(&b, "%s %s", good, tok), 0);
    assert_int_equal(jwt_parse(&t, b.data, b.len), DG_ERR_INVALID);
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "Bearer  %s", tok), 0);
    assert_int_equal(jwt_parse(&t, b.data, b.len), DG_ERR_INVALID);
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "Bearer\t%s", tok), 0);
    assert_int_equal(jwt_parse(&t, b.data, b.len), DG_ERR_INVALID);
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "%s ", good), 0);
    assert_int_equal(jwt_parse(&t, b.data, b.len), DG_ERR_INVALID);
    /* A NUL inside the value (len counts past it). */
    buf_reset(&b);
    assert_int_equal(buf_append_str(&b, good), 0);
    b.data[20] = '\0';
    assert_int_equal(jwt_parse(&t, b.data, b.len), DG_ERR_INVALID);

    /* Malformed base64: padding, a character outside the alphabet, a 4k+1 length. */
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "Bearer %.*s==%s", (int)(dot1 - tok), tok, dot1), 0);
    assert_int_equal(jwt_parse(&t, b.data, b.len), DG_ERR_INVALID);
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "Bearer %.*sA%s", (int)(dot2 - tok), tok, dot2), 0);
    assert_int_equal(jwt_parse(&t, b.data, b.len), DG_ERR_INVALID);
    buf_reset(&b);
    assert_int_equal(buf_printf(&b, "Bearer %.*s+%s", (int)(dot1 - tok - 1), tok, dot1), 0);
    assert_int_equal(jwt_parse(&t, b.data, b.len), DG_ERR_INVALID);
    buf_free(&b);
    xfree(good);
}

/*
 * depth containers in all, the top-level object counted: objects chained as
 * {"x":{"x":…leaf}}, or (arrays) one object around depth - 1 nested arrays.
 */
static void nested(struct buf *b, const char *prefix, int depth, bool arrays, const char *leaf)
{
    int i;

    assert_int_equal(buf_append_str(b, prefix), 0);
    for (i = 1; i < depth; i++)
        assert_int_equal(buf_append_str(b, arrays ? "[" : "{\"x\":"), 0);
    assert_int_equal(buf_append_str(b, leaf), 0);
    for (i = 1; i < depth; i++)
        assert_int_equal(buf_append_str(b, arrays ? "]" : "}"), 0);
    assert_int_equal(buf_append_str(b, "}"), 0);
}

/* Signs header and claims (texts) with the published key; "Bearer …" (owned). */
static char *sign_texts(const char *header, const char *claims)
{
    struct buf auth;

    buf_init(&auth, TOKEN_MAX);
    assert_int_equal(buf_append_str(&auth, "Bearer "), 0);
    assert_int_equal(
        jwt_sign_compact(JWT_SIG_RS256, key, NULL, 0, header, claims, strlen(claims), &auth), 0);
    return buf_take(&auth);
}

/* The same nesting in the header, then in the claims: a valid token, or a shape error (401). */
static void expect_nested(int depth, bool arrays, const char *leaf, bool ok)
{
    static const char plain[] = "{\"alg\":\"RS256\",\"kid\":\"good\"}";
    struct json_object *c = good_claims();
    const char *claims = json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN);
    struct buf h, p;
    struct jwt t;
    char *auth[2];

    buf_init(&h, 1024);
    buf_init(&p, 4096);
    nested(&h, "{\"alg\":\"RS256\",\"kid\":\"good\",\"deep\":", depth, arrays, leaf);
    assert_int_equal(buf_append(&p, claims, strlen(claims) - 1), 0); /* without its } */
    nested(&p, ",\"deep\":", depth, arrays, leaf);
    auth[0] = sign_texts(buf_cstr(&h), claims);
    auth[1] = sign_texts(plain, buf_cstr(&p));
    for (int i = 0; i < 2; i++) {
        if (ok) {
            expect_verdict(auth[i], JWT_OK, "ok");
            continue;
        }
        if (jwt_parse(&t, auth[i], strlen(auth[i])) != DG_ERR_INVALID)
            fail_msg("%d deep (%s around %s) parsed in the %s", depth,
                     arrays ? "arrays" : "objects", leaf, i ? "claims" : "header");
        xfree(auth[i]);
    }
    json_object_put(c);
    buf_free(&h);
    buf_free(&p);
}

/* Header and payload must be JSON objects, bounded, with nothing after them. */
static void test_json_parts(void **state)
{
    static const char *const bad_headers[] = {
        "[]",
        "\"RS256\"",
        "{\"alg\":\"RS256\"} x",
        "{\"alg\":\"RS256\",}",
        "not json",
        "{\"alg\":\"\\u00e9\xff\"}",
    };
    struct json_object *c;
    const char *text;
    struct buf b;
    struct jwt t;
    size_t i;
    int d;

    for (i = 0; i < ARRAY_SIZE(bad_headers); i++) {
        c = good_claims();
        text = json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN);
        buf_init(&b, TOKEN_MAX);
        assert_int_equal(buf_append_str(&b, "Bearer "), 0);
        assert_int_equal(
            jwt_sign_compact(JWT_SIG_RS256, key, NULL, 0, bad_headers[i], text, strlen(text), &b),
            0);
        json_object_put(c);
        if (jwt_parse(&t, b.data, b.len) != DG_ERR_INVALID)
            fail_msg("parsed header %zu", i);
        buf_free(&b);
    }

    /* A payload with a NUL after the object: trailing bytes. */
    buf_init(&b, TOKEN_MAX);
    assert_int_equal(buf_append_str(&b, "Bearer "), 0);
    assert_int_equal(
        jwt_sign_compact(JWT_SIG_RS256, key, NULL, 0, "{\"alg\":\"RS256\"}", "{}\0", 3, &b), 0);
    assert_int_equal(jwt_parse(&t, b.data, b.len), DG_ERR_INVALID);
    buf_free(&b);

    /* Nesting: JWT_MAX_DEPTH objects and arrays (the top one counted) pass, one more does not. */
    for (d = JWT_MAX_DEPTH; d <= JWT_MAX_DEPTH + 1; d++) {
        expect_nested(d, false, "1", d == JWT_MAX_DEPTH);
        expect_nested(d, true, "1", d == JWT_MAX_DEPTH);
        expect_nested(d, false, "{}", d + 1 == JWT_MAX_DEPTH); /* {} is one more level */
        expect_nested(d - 1, false, "{}", d == JWT_MAX_DEPTH);
    }

    /* A payload of claims with an escaped NUL: iss reads as absent, not as a prefix. */
    c = good_claims();
    json_object_object_add(c, "iss", json_object_new_string_len(ISS "\0x", (int)strlen(ISS) + 2));
    {
        char *auth = forge_rs256("good", c);

        assert_int_equal(jwt_parse(&t, auth, strlen(auth)), 0);
        assert_null(t.iss);
        jwt_free(&t);
        expect_verdict(auth, JWT_UNAUTHORIZED, "issuer");
    }
}

static void test_size_cap(void **state)
{
    struct json_object *c = good_claims();
    struct buf pad;
    struct jwt t;
    char *auth;

    /* Grow the payload until the header value passes 16 KiB. */
    buf_init(&pad, JWT_MAX_AUTHORIZATION);
    while (pad.len < JWT_MAX_AUTHORIZATION * 3 / 4)
        assert_int_equal(buf_append(&pad, "x", 1), 0);
    json_object_object_add(c, "pad", json_object_new_string(pad.data));
    buf_free(&pad);
    auth = forge_rs256("good", c);
    assert_true(strlen(auth) > JWT_MAX_AUTHORIZATION);
    assert_int_equal(jwt_parse(&t, auth, strlen(auth)), DG_ERR_TOO_LARGE);
    assert_null(t.sig);
    xfree(auth);

    /* Just under the cap parses. */
    c = good_claims();
    buf_init(&pad, JWT_MAX_AUTHORIZATION);
    while (pad.len < JWT_MAX_AUTHORIZATION * 3 / 4 - 800)
        assert_int_equal(buf_append(&pad, "x", 1), 0);
    json_object_object_add(c, "pad", json_object_new_string(pad.data));
    buf_free(&pad);
    auth = forge_rs256("good", c);
    assert_true(strlen(auth) <= JWT_MAX_AUTHORIZATION);
    expect_verdict(auth, JWT_OK, "ok");
    jwt_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_token),
        cmocka_unit_test(test_rs384_rs512),
        cmocka_unit_test(test_wrong_audience),
        cmocka_unit_test(test_wrong_issuer),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_malformed_nbf),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_non_rsa_key_in_set),
        cmocka_unit_test(test_algorithm_confusion),
        cmocka_unit_test(test_service_url),
        cmocka_unit_test(test_endorsements),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_json_parts),
        cmocka_unit_test(test_size_cap),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
