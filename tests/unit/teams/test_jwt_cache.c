/*
 * test_jwt_cache.c: the verdict cache with real crypto. Tokens are signed
 * with a key made here and published through jwks_parse, as in
 * test_jwt_verify.c. Each test drives the cache the way auth.c does: a
 * lookup, on a miss jwt_parse + jwt_verify and a put when it was good.
 * Also measures, and prints, token checks per second without and with the
 * cache (the figure bench/RESULTS.md quotes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "core/buf.h"
#include "teams/jwks.h"
#include "teams/jwt_cache.h"
#include "teams/jwt_sign.h"
#include "teams/jwt_verify.h"

#define NOW 1700000000
#define EXP (NOW + 3600)
#define ISS "https://api.botframework.com"
#define APP "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
#define SURL "https://smba.trafficmanager.net/amer/"

static EVP_PKEY *key, *other;
static struct jwks set;       /* "good" (msteams), "skype" (skype), both key */
static struct jwks set_other; /* "good" holding other's numbers */
static struct jwks set_none;  /* only "skype" */
static struct jwks set_again; /* the same numbers under "good", parsed anew */

static struct jwt_expect expect_at(int64_t now)
{
    struct jwt_expect e = {
        .issuer = ISS,
        .audience = APP,
        .service_url = SURL,
        .channel_id = "msteams",
        .now_s = now,
        .leeway_s = 300,
    };
    return e;
}

static void add_jwk(struct json_object *list, EVP_PKEY *k, const char *kid, const char *endorse)
{
    struct json_object *jwk;
    const char *const e[] = {endorse};

    assert_int_equal(jwt_jwk_from_key(k, kid, e, 1, &jwk), 0);
    json_object_array_add(list, jwk);
}

/* A set of (key, kid, endorsement) triples, through jwks_parse as digestd's keys go. */
static void make_set(struct jwks *out, EVP_PKEY *k1, const char *kid1, const char *end1,
                     EVP_PKEY *k2, const char *kid2, const char *end2)
{
    struct json_object *doc = json_object_new_object(), *list = json_object_new_array();
    const char *text;

    if (k1)
        add_jwk(list, k1, kid1, end1);
    if (k2)
        add_jwk(list, k2, kid2, end2);
    json_object_object_add(doc, "keys", list);
    text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
    assert_int_equal(jwks_parse(out, text, strlen(text)), 0);
    json_object_put(doc);
}

static int setup(void **state)
{
    key = EVP_RSA_gen(2048);
    other = EVP_RSA_gen(2048);
    if (!key || !other)
        return -1;
    make_set(&set, key, "good", "msteams", key, "skype", "skype");
    make_set(&set_other, other, "good", "msteams", key, "skype", "skype");
    make_set(&set_none, key, "skype", "skype", NULL, NULL, NULL);
    make_set(&set_again, key, "good", "msteams", NULL, NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    jwks_free(&set);
    jwks_free(&set_other);
    jwks_free(&set_none);
    jwks_free(&set_again);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    return 0;
}

/* "Bearer " + an RS256 token under kid for serviceurl, exp EXP; owned. */
static char *forge(const char *kid, const char *serviceurl, int64_t exp)
{
    struct json_object *c = json_object_new_object();
    char header[128];
    const char *text;
    struct buf b;

    json_object_object_add(c, "iss", json_object_new_string(ISS));
    json_object_object_add(c, "aud", json_object_new_string(APP));
    json_object_object_add(c, "serviceurl", json_object_new_string(serviceurl));
    json_object_object_add(c, "nbf", json_object_new_int64(NOW - 5));
    json_object_object_add(c, "exp", json_object_new_int64(exp));
    snprintf(header, sizeof(header), "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    text = json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN);
    buf_init(&b, 64 * 1024);
    assert_int_equal(buf_append_str(&b, "Bearer "), 0);
    assert_int_equal(jwt_sign_compact(JWT_SIG_RS256, key, NULL, 0, header, text, strlen(text), &b),
                     0);
    json_object_put(c);
    return buf_take(&b);
}

/*
 * auth.c's path: the cache, else parse + verify (+ put when good). *hit says
 * which answered.
 */
static enum jwt_verdict check(struct jwt_cache *c, const char *auth, const struct jwks *keys,
                              const struct jwt_expect *e, bool *hit, const char **why)
{
    enum jwt_verdict v;
    struct jwt t;

    *hit = jwt_cache_check(c, auth, strlen(auth), keys, e, &v, why);
    if (*hit)
        return v;
    if (jwt_parse(&t, auth, strlen(auth)) != 0) {
        *why = "malformed";
        return JWT_UNAUTHORIZED;
    }
    v = jwt_verify(&t, keys, e, why);
    if (v == JWT_OK)
        jwt_cache_put(c, auth, strlen(auth), &t, keys);
    jwt_free(&t);
    return v;
}

static void want_check(struct jwt_cache *c, const char *auth, const struct jwks *keys,
                       const struct jwt_expect *e, bool want_hit, enum jwt_verdict want,
                       const char *reason_part)
{
    const char *why = "";
    bool hit;
    enum jwt_verdict v = check(c, auth, keys, e, &hit, &why);

    if (hit != want_hit || v != want || !strstr(why, reason_part))
        fail_msg("%s, verdict %d (%s); wanted %s, %d (%s)", hit ? "hit" : "miss", v, why,
                 want_hit ? "hit" : "miss", want, reason_part);
}

static void test_hit_for_the_same_token(void **state)
{
    struct jwt_cache *c = jwt_cache_new(16);
    struct jwt_expect e = expect_at(NOW);
    struct jwt_cache_stats st;
    char *auth = forge("good", SURL, EXP);
    char *copy = xstrdup(auth); /* the same bytes at another address */

    want_check(c, auth, &set, &e, false, JWT_OK, "ok");
    want_check(c, auth, &set, &e, true, JWT_OK, "ok");
    want_check(c, copy, &set, &e, true, JWT_OK, "ok");
    /* The same numbers in a set parsed anew (the 24 h refresh) still hit. */
    want_check(c, auth, &set_again, &e, true, JWT_OK, "ok");
    jwt_cache_get_stats(c, &st);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.stored, 1);
    assert_int_equal(st.entries, 1);
    xfree(auth);
    xfree(copy);
    jwt_cache_free(c);
}

/* Changes one base64url character of part (0 header, 1 payload, 2 signature) of auth. */
static char *one_byte_changed(const char *auth, int part, size_t at)
{
    char *s = xstrdup(auth), *p = s + strlen("Bearer ");
    int i;

    for (i = 0; i < part; i++)
        p = strchr(p, '.') + 1;
    p += at;
    *p = *p == 'A' ? 'B' : 'A';
    return s;
}

static void test_miss_for_any_other_token(void **state)
{
    struct jwt_cache *c = jwt_cache_new(16);
    struct jwt_expect e = expect_at(NOW);
    char *auth = forge("good", SURL, EXP);
    char *twin = forge("good", SURL, EXP); /* same claims: RSA PKCS#1 v1.5 is deterministic */
    char *later = forge("good", SURL, EXP + 1);
    size_t len = strlen(auth);
    int part;

    assert_string_equal(auth, twin);
    want_check(c, auth, &set, &e, false, JWT_OK, "ok");
    for (part = 0; part < 3; part++) {
        /* Early, middle and last characters of each part. */
        size_t at[] = {0, 5, 20};

        for (size_t k = 0; k < ARRAY_SIZE(at); k++) {
            char *bad = one_byte_changed(auth, part, at[k]);
            const char *why = "";
            enum jwt_verdict v;
            bool hit;

            assert_int_equal(strlen(bad), len);
            v = check(c, bad, &set, &e, &hit, &why);
            assert_false(hit);
            assert_int_not_equal(v, JWT_OK);
            xfree(bad);
        }
    }
    /* The last byte of the signature, and one byte more or less. */
    {
        char *bad = xstrdup(auth);
        bool hit;
        const char *why;

        bad[len - 1] = bad[len - 1] == 'A' ? 'Q' : 'A';
        assert_int_not_equal(check(c, bad, &set, &e, &hit, &why), JWT_OK);
        assert_false(hit);
        bad[len - 1] = '\0';
        assert_int_not_equal(check(c, bad, &set, &e, &hit, &why), JWT_OK);
        assert_false(hit);
        xfree(bad);
    }
    /* A good token of its own is a miss first, then a hit of its own. */
    want_check(c, later, &set, &e, false, JWT_OK, "ok");
    want_check(c, later, &set, &e, true, JWT_OK, "ok");
    want_check(c, auth, &set, &e, true, JWT_OK, "ok");
    xfree(auth);
    xfree(twin);
    xfree(later);
    jwt_cache_free(c);
}

static void test_expiry_to_the_second(void **state)
{
    struct jwt_cache *c = jwt_cache_new(16);
    struct jwt_expect e = expect_at(NOW);
    struct jwt_cache_stats st;
    char *auth = forge("good", SURL, EXP);

    want_check(c, auth, &set, &e, false, JWT_OK, "ok");
    /* Good while now < exp + leeway: the last second still hits. */
    e.now_s = EXP + 299;
    want_check(c, auth, &set, &e, true, JWT_OK, "ok");
    /* From exp + leeway on it is expired, and verified from scratch it says so. */
    e.now_s = EXP + 300;
    want_check(c, auth, &set, &e, false, JWT_UNAUTHORIZED, "expired");
    jwt_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.dropped, 1);
    want_check(c, auth, &set, &e, false, JWT_UNAUTHORIZED, "expired");
    xfree(auth);
    jwt_cache_free(c);
}

static void test_key_drop_invalidates(void **state)
{
    struct jwt_cache *c = jwt_cache_new(16);
    struct jwt_expect e = expect_at(NOW);
    struct jwt_cache_stats st;
    char *auth = forge("good", SURL, EXP);

    /* The refreshed set no longer has the kid: a miss, and the full check's answer. */
    want_check(c, auth, &set, &e, false, JWT_OK, "ok");
    want_check(c, auth, &set_none, &e, false, JWT_UNKNOWN_KID, "unknown");
    jwt_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    /* The kid stays but names other numbers (a rotation kept the kid): not trusted. */
    want_check(c, auth, &set, &e, false, JWT_OK, "ok");
    want_check(c, auth, &set_other, &e, false, JWT_UNAUTHORIZED, "signature");
    jwt_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    /* Back to the old set, it verifies from scratch again. */
    want_check(c, auth, &set, &e, false, JWT_OK, "ok");
    want_check(c, auth, &set, &e, true, JWT_OK, "ok");
    xfree(auth);
    jwt_cache_free(c);
}

static void test_per_activity_checks_on_a_hit(void **state)
{
    struct jwt_cache *c = jwt_cache_new(16);
    struct jwt_expect e = expect_at(NOW);
    char *auth = forge("good", SURL, EXP);
    char *skype = forge("skype", SURL, EXP);

    want_check(c, auth, &set, &e, false, JWT_OK, "ok");
    /* Another serviceUrl in the activity: 401 from the cache, as without it. */
    e.service_url = "https://evil.example/";
    want_check(c, auth, &set, &e, true, JWT_UNAUTHORIZED, "serviceurl");
    e.service_url = NULL;
    want_check(c, auth, &set, &e, true, JWT_UNAUTHORIZED, "serviceurl");
    e.service_url = SURL;
    /* A channel the key does not endorse: 403; none at all: 403 too. */
    e.channel_id = "skype";
    want_check(c, auth, &set, &e, true, JWT_FORBIDDEN, "endorse");
    e.channel_id = NULL;
    want_check(c, auth, &set, &e, true, JWT_FORBIDDEN, "endorse");
    e.channel_id = "msteams";
    want_check(c, auth, &set, &e, true, JWT_OK, "ok");
    /* The endorsements read are the key's in the set in use. */
    want_check(c, skype, &set, &e, false, JWT_FORBIDDEN, "endorse");
    e.channel_id = "skype";
    want_check(c, skype, &set, &e, false, JWT_OK, "ok");
    e.channel_id = "msteams";
    want_check(c, skype, &set, &e, true, JWT_FORBIDDEN, "endorse");
    /* Another app id expected (not digestd's case, but the check is kept). */
    e.audience = "someone-else";
    want_check(c, auth, &set, &e, true, JWT_UNAUTHORIZED, "audience");
    xfree(auth);
    xfree(skype);
    jwt_cache_free(c);
}

static void test_bounded(void **state)
{
    struct jwt_cache *c = jwt_cache_new(2);
    struct jwt_expect e = expect_at(NOW);
    struct jwt_cache_stats st;
    char *t[3];
    int i;

    for (i = 0; i < 3; i++) {
        t[i] = forge("good", SURL, EXP + i);
        want_check(c, t[i], &set, &e, false, JWT_OK, "ok");
    }
    jwt_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 2);
    /* The oldest went first. */
    want_check(c, t[2], &set, &e, true, JWT_OK, "ok");
    want_check(c, t[1], &set, &e, true, JWT_OK, "ok");
    want_check(c, t[0], &set, &e, false, JWT_OK, "ok");
    jwt_cache_clear(c);
    jwt_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    for (i = 0; i < 3; i++)
        xfree(t[i]);
    jwt_cache_free(c);
}

static double seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Token checks per second, parse + RSA against the cache's hit. Prints, asserts only the gap. */
static void test_measure(void **state)
{
    struct jwt_cache *c = jwt_cache_new(16);
    struct jwt_expect e = expect_at(NOW);
    char *auth = forge("good", SURL, EXP);
    size_t len = strlen(auth);
    enum jwt_verdict v;
    const char *why;
    double t0, full, cached;
    int i, n = 2000;

    t0 = seconds();
    for (i = 0; i < n; i++) {
        struct jwt t;

        assert_int_equal(jwt_parse(&t, auth, len), 0);
        assert_int_equal(jwt_verify(&t, &set, &e, &why), JWT_OK);
        jwt_free(&t);
    }
    full = n / (seconds() - t0);
    want_check(c, auth, &set, &e, false, JWT_OK, "ok");
    t0 = seconds();
    for (i = 0; i < n * 50; i++) {
        assert_true(jwt_cache_check(c, auth, len, &set, &e, &v, &why));
        assert_int_equal(v, JWT_OK);
    }
    cached = n * 50 / (seconds() - t0);
    printf("token checks: parse + RS256 verify %.0f/s (%.1f us), cached %.0f/s (%.2f us); "
           "token %zu bytes\n",
           full, 1e6 / full, cached, 1e6 / cached, len);
    assert_true(cached > full * 5);
    xfree(auth);
    jwt_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_for_the_same_token),
        cmocka_unit_test(test_miss_for_any_other_token),
        cmocka_unit_test(test_expiry_to_the_second),
        cmocka_unit_test(test_key_drop_invalidates),
        cmocka_unit_test(test_per_activity_checks_on_a_hit),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_measure),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
