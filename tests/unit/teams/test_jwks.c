/*
 * test_jwks.c: JWKS and OpenID metadata parsing with real keys. A key made
 * here (EVP_RSA_gen) is published the way Bot Framework publishes it, parsed
 * back, and must verify a signature its private half made; every way a
 * document or a key can be wrong must be refused or skipped, within the caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "core/buf.h"
#include "teams/jwks.h"
#include "teams/jwt_sign.h"

static EVP_PKEY *rsa2048; /* one key for the run: generation is slow */
static char n_b64[1400];  /* its modulus and exponent as a JWK carries them */
static char e_b64[16];

/* Base64url of one key number into out (size bytes). */
static void key_number(EVP_PKEY *key, const char *param, char *out, size_t size)
{
    BIGNUM *bn = NULL;
    unsigned char raw[1100];
    struct buf b;
    int n;

    assert_true(EVP_PKEY_get_bn_param(key, param, &bn));
    n = BN_bn2bin(bn, raw);
    buf_init(&b, size - 1);
    assert_int_equal(jwt_b64url_encode(raw, (size_t)n, &b), 0);
    memcpy(out, b.data, b.len + 1);
    buf_free(&b);
    BN_free(bn);
}

static int setup(void **state)
{
    rsa2048 = EVP_RSA_gen(2048);
    if (!rsa2048)
        return -1;
    key_number(rsa2048, OSSL_PKEY_PARAM_RSA_N, n_b64, sizeof(n_b64));
    key_number(rsa2048, OSSL_PKEY_PARAM_RSA_E, e_b64, sizeof(e_b64));
    return 0;
}

static int teardown(void **state)
{
    EVP_PKEY_free(rsa2048);
    return 0;
}

/* Parses a document built with printf-style %s substitutions; returns the status. */
static int parse_fmt(struct jwks *set, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int parse_fmt(struct jwks *set, const char *fmt, ...)
{
    struct buf b;
    va_list ap;
    int err;

    buf_init(&b, 1 << 20);
    va_start(ap, fmt);
    assert_int_equal(buf_vprintf(&b, fmt, ap), 0);
    va_end(ap);
    err = jwks_parse(set, b.data, b.len);
    buf_free(&b);
    return err;
}

/* Parses tmpl with every $N and $E replaced by our key's n and e; returns the status. */
static int parse_subst(struct jwks *set, const char *tmpl)
{
    struct buf b;
    const char *p;
    int err;

    buf_init(&b, 1 << 20);
    for (p = tmpl; *p; p++) {
        if (p[0] == '$' && (p[1] == 'N' || p[1] == 'E')) {
            assert_int_equal(buf_append_str(&b, p[1] == 'N' ? n_b64 : e_b64), 0);
            p++;
        } else {
            assert_int_equal(buf_append(&b, p, 1), 0);
        }
    }
    err = jwks_parse(set, b.data, b.len);
    buf_free(&b);
    return err;
}

/* The shape of login.botframework.com/v1/.well-known/keys, with our key's numbers. */
static const char MS_FMT[] =
    "{\"keys\":["
    "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"KyQEK3u9ZcTLa8cx2pVE5DVMX_k\","
    "\"x5t\":\"KyQEK3u9ZcTLa8cx2pVE5DVMX_k\",\"n\":\"%s\",\"e\":\"%s\","
    "\"x5c\":[\"MIIDAzCCAeugAwIBAgIJAKBVWIuLUn0pMA0GCSqGSIb3DQEBCwUAMC0x\"],"
    "\"endorsements\":[\"msteams\",\"skype\",\"webchat\"]},"
    "{\"kty\":\"EC\",\"use\":\"sig\",\"kid\":\"ec\",\"crv\":\"P-256\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
    "{\"kty\":\"oct\",\"kid\":\"oct\",\"k\":\"GawgguFyGrWKav7AX4VKUg\"},"
    "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"plain\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%"
    "s\"},"
    "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"empty\",\"n\":\"%s\",\"e\":\"%s\","
    "\"endorsements\":[]}]}";

static void test_microsoft_shaped(void **state)
{
    const struct jwks_key *k;
    struct jwks set;

    assert_int_equal(parse_fmt(&set, MS_FMT, n_b64, e_b64, n_b64, e_b64, n_b64, e_b64), 0);
    /* EC and oct keys are skipped, as the SDKs ignore non-RSA keys. */
    assert_int_equal(set.n, 3);
    k = jwks_find(&set, "KyQEK3u9ZcTLa8cx2pVE5DVMX_k");
    assert_non_null(k);
    assert_true(k->has_endorsements);
    assert_int_equal(k->n_endorsements, 3);
    assert_string_equal(k->endorsements[0], "msteams");
    assert_string_equal(k->endorsements[2], "webchat");
    /* The key rebuilt from n/e is the key we published. */
    assert_int_equal(EVP_PKEY_eq(k->pkey, rsa2048), 1);

    k = jwks_find(&set, "plain");
    assert_non_null(k);
    assert_false(k->has_endorsements);
    assert_null(k->endorsements);
    k = jwks_find(&set, "empty");
    assert_non_null(k);
    assert_true(k->has_endorsements);
    assert_int_equal(k->n_endorsements, 0);

    assert_null(jwks_find(&set, "ec"));
    assert_null(jwks_find(&set, "oct"));
    assert_null(jwks_find(&set, "plai"));
    assert_null(jwks_find(&set, NULL));
    jwks_free(&set);
    assert_int_equal(set.n, 0);
    assert_null(set.keys);
    jwks_free(&set); /* twice, and NULL: both harmless */
    jwks_free(NULL);
}

/* A signature made with the private key verifies with the parsed public key. */
static void test_parsed_key_verifies(void **state)
{
    static const char msg[] = "header.payload";
    unsigned char sig[512];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    struct jwks set;

    assert_int_equal(
        parse_fmt(&set, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"%s\",\"e\":\"%s\"}]}",
                  n_b64, e_b64),
        0);
    assert_int_equal(set.n, 1);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, rsa2048), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)msg, 14), 1);
    EVP_MD_CTX_reset(ctx);
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, set.keys[0].pkey), 1);
    assert_int_equal(EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)msg, 14), 1);
    EVP_MD_CTX_free(ctx);
    jwks_free(&set);
}

static void test_document_shape(void **state)
{
    static const char *const bad_json[] = {
        "",
        "not json",
        "[]",
        "\"keys\"",
        "{\"keys\":[]} trailing",
        "{\"keys\":[]}{}",
        "{\"keys\":[],}",
        "{\"keys\":[01]}",
    };
    static const char *const bad_field[] = {
        "{}", "{\"keys\":{}}", "{\"keys\":null}", "{\"keys\":\"[]\"}", "{\"Keys\":[]}",
    };
    struct jwks set;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(bad_json); i++) {
        assert_int_equal(jwks_parse(&set, bad_json[i], strlen(bad_json[i])), DG_ERR_BAD_JSON);
        assert_int_equal(set.n, 0);
        assert_null(set.keys);
    }
    for (i = 0; i < ARRAY_SIZE(bad_field); i++)
        assert_int_equal(jwks_parse(&set, bad_field[i], strlen(bad_field[i])), DG_ERR_FIELD);
    /* No usable key is not an error here: the caller decides. */
    assert_int_equal(jwks_parse(&set, "{\"keys\":[1,\"x\",null,{}]}", 24), 0);
    assert_int_equal(set.n, 0);
    jwks_free(&set);
}

/* Each entry must be skipped while the good key beside it is kept. */
static void test_wrong_types_skipped(void **state)
{
    static const char *const bad[] = {
        "{\"kty\":\"RSA\",\"kid\":5,\"n\":\"$N\",\"e\":\"$E\"}",
        "{\"kty\":\"RSA\",\"kid\":\"\",\"n\":\"$N\",\"e\":\"$E\"}",
        "{\"kty\":\"RSA\",\"kid\":\"a\\u0000b\",\"n\":\"$N\",\"e\":\"$E\"}",
        "{\"kty\":\"rsa\",\"kid\":\"x\",\"n\":\"$N\",\"e\":\"$E\"}",
        "{\"kid\":\"x\",\"n\":\"$N\",\"e\":\"$E\"}",
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"$N=\",\"e\":\"$E\"}",
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"$N\",\"e\":\"$E==\"}",
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"+$N\",\"e\":\"$E\"}",
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"$N\"}",
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"use\":\"enc\",\"n\":\"$N\",\"e\":\"$E\"}",
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"use\":1,\"n\":\"$N\",\"e\":\"$E\"}",
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"alg\":\"ES256\",\"n\":\"$N\",\"e\":\"$E\"}",
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"alg\":\"HS256\",\"n\":\"$N\",\"e\":\"$E\"}",
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"$N\",\"e\":\"$E\",\"endorsements\":\"msteams\"}",
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"$N\",\"e\":\"$E\",\"endorsements\":[1]}",
        /* would read as "msteams" and endorse it */
        ("{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"$N\",\"e\":\"$E\","
         "\"endorsements\":[\"msteams\\u0000x\"]}"),
        "{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"$N\",\"e\":\"$E\",\"endorsements\":null}",
    };
    struct jwks set;
    struct buf doc;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        buf_init(&doc, 1024);
        assert_int_equal(buf_printf(&doc,
                                    "{\"keys\":[%s,{\"kty\":\"RSA\",\"kid\":\"good\","
                                    "\"n\":\"$N\",\"e\":\"$E\"}]}",
                                    bad[i]),
                         0);
        assert_int_equal(parse_subst(&set, doc.data), 0);
        buf_free(&doc);
        if (set.n != 1)
            fail_msg("entry %zu kept: %s", i, bad[i]);
        assert_string_equal(set.keys[0].kid, "good");
        jwks_free(&set);
    }
    /* n and e as numbers, not strings. */
    assert_int_equal(
        parse_fmt(&set, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":1,\"e\":3}]}"), 0);
    assert_int_equal(set.n, 0);
    jwks_free(&set);
}

/* Modulus sizes outside 2048..8192 bits and weak exponents are skipped. */
static void test_key_bounds(void **state)
{
    EVP_PKEY *small = EVP_RSA_gen(1024);
    char small_n[400];
    struct jwks set;
    static const char fmt[] =
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"%s\",\"e\":\"%s\"}]}";

    assert_non_null(small);
    key_number(small, OSSL_PKEY_PARAM_RSA_N, small_n, sizeof(small_n));
    assert_int_equal(parse_fmt(&set, fmt, small_n, e_b64), 0);
    assert_int_equal(set.n, 0);
    EVP_PKEY_free(small);
    /* e = 1 would make a signature its own padded digest; e even is no RSA key. */
    assert_int_equal(parse_fmt(&set, fmt, n_b64, "AQ"), 0);
    assert_int_equal(set.n, 0);
    assert_int_equal(parse_fmt(&set, fmt, n_b64, "Ag"), 0);
    assert_int_equal(set.n, 0);
    assert_int_equal(parse_fmt(&set, fmt, n_b64, "AAAAAAAAAAAAAQAB"), 0); /* 12 bytes */
    assert_int_equal(set.n, 0);
    /* e = 3 is weak but valid RSA; kept. */
    assert_int_equal(parse_fmt(&set, fmt, n_b64, "Aw"), 0);
    assert_int_equal(set.n, 1);
    jwks_free(&set);
    /* A leading zero byte on n is tolerated (some encoders add one). */
    {
        char padded[1400] = "AA";
        struct buf raw;
        struct buf enc;

        buf_init(&raw, 600);
        buf_init(&enc, sizeof(padded));
        assert_int_equal(jwt_b64url_decode(n_b64, strlen(n_b64), &raw), 0);
        assert_int_equal(buf_append(&enc, "\0", 1), 0);
        assert_int_equal(buf_append(&enc, raw.data, raw.len), 0);
        buf_reset(&raw);
        assert_int_equal(jwt_b64url_encode(enc.data, enc.len, &raw), 0);
        snprintf(padded, sizeof(padded), "%s", raw.data);
        buf_free(&raw);
        buf_free(&enc);
        assert_int_equal(parse_fmt(&set, fmt, padded, e_b64), 0);
        assert_int_equal(set.n, 1);
        jwks_free(&set);
    }
}

static void test_caps(void **state)
{
    struct jwks set;
    struct buf b;
    size_t i;

    /* More than JWKS_MAX_KEYS usable keys: the first 100 are kept. */
    buf_init(&b, JWKS_MAX_BODY);
    assert_int_equal(buf_append_str(&b, "{\"keys\":["), 0);
    for (i = 0; i < JWKS_MAX_KEYS + 5; i++)
        assert_int_equal(
            buf_printf(&b, "%s{\"kty\":\"RSA\",\"kid\":\"k%zu\",\"n\":\"%s\",\"e\":\"%s\"}",
                       i ? "," : "", i, n_b64, e_b64),
            0);
    assert_int_equal(buf_append_str(&b, "]}"), 0);
    assert_int_equal(jwks_parse(&set, b.data, b.len), 0);
    assert_int_equal(set.n, JWKS_MAX_KEYS);
    assert_non_null(jwks_find(&set, "k99"));
    assert_null(jwks_find(&set, "k100"));
    jwks_free(&set);
    buf_free(&b);

    /* Huge: one byte over the body cap is refused before parsing. */
    buf_init(&b, JWKS_MAX_BODY + 1);
    assert_int_equal(buf_append_str(&b, "{\"keys\":[],\"pad\":\""), 0);
    while (b.len < JWKS_MAX_BODY - 1)
        assert_int_equal(buf_append(&b, "x", 1), 0);
    assert_int_equal(buf_append_str(&b, "\"}"), 0);
    assert_int_equal(b.len, JWKS_MAX_BODY + 1);
    assert_int_equal(jwks_parse(&set, b.data, b.len), DG_ERR_TOO_LARGE);
    assert_int_equal(jwks_parse(&set, b.data, b.len - 2), DG_ERR_BAD_JSON); /* cut short */
    b.data[b.len - 3] = '"';
    b.data[b.len - 2] = '}';
    assert_int_equal(jwks_parse(&set, b.data, b.len - 1), 0); /* exactly at the cap */
    jwks_free(&set);
    buf_free(&b);

    /* Too many endorsements, or one too long: the key is skipped. */
    buf_init(&b, JWKS_MAX_BODY);
    assert_int_equal(buf_printf(&b,
                                "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"%s\","
                                "\"e\":\"%s\",\"endorsements\":[",
                                n_b64, e_b64),
                     0);
    for (i = 0; i <= JWKS_MAX_ENDORSEMENTS; i++)
        assert_int_equal(buf_printf(&b, "%s\"c%zu\"", i ? "," : "", i), 0);
    assert_int_equal(buf_append_str(&b, "]}]}"), 0);
    assert_int_equal(jwks_parse(&set, b.data, b.len), 0);
    assert_int_equal(set.n, 0);
    assert_null(set.keys);
    buf_free(&b);
}

static void test_depth(void **state)
{
    struct jwks set;
    struct buf b;
    int i;

    /* 16 levels as json-c counts them (the innermost scalar is one): fine; 17: broken. */
    for (int levels = JWKS_MAX_DEPTH; levels <= JWKS_MAX_DEPTH + 1; levels++) {
        buf_init(&b, 4096);
        assert_int_equal(buf_append_str(&b, "{\"keys\":[],\"x\":"), 0);
        for (i = 0; i < levels - 2; i++)
            assert_int_equal(buf_append_str(&b, "["), 0);
        assert_int_equal(buf_append_str(&b, "1"), 0);
        for (i = 0; i < levels - 2; i++)
            assert_int_equal(buf_append_str(&b, "]"), 0);
        assert_int_equal(buf_append_str(&b, "}"), 0);
        assert_int_equal(jwks_parse(&set, b.data, b.len),
                         levels == JWKS_MAX_DEPTH ? 0 : DG_ERR_BAD_JSON);
        jwks_free(&set);
        buf_free(&b);
    }
}

static void test_openid_uri(void **state)
{
    static const char good[] = "{\"issuer\":\"https://api.botframework.com\",\"jwks_uri\":"
                               "\"https://login.botframework.com/v1/.well-known/keys\","
                               "\"id_token_signing_alg_values_supported\":[\"RS256\"]}";
    static const char *const bad[] = {
        "{}",
        "{\"jwks_uri\":5}",
        "{\"jwks_uri\":\"ftp://x/keys\"}",
        "{\"jwks_uri\":\"https://\"}",
        "{\"jwks_uri\":\"https:///keys\"}",
        "{\"jwks_uri\":\"/keys\"}",
        "{\"jwks_uri\":\"https://a\\u0000b\"}",
    };
    static char sentinel[] = "sentinel";
    char *uri = NULL;
    size_t i;

    assert_int_equal(jwks_openid_uri(good, strlen(good), &uri), 0);
    assert_string_equal(uri, "https://login.botframework.com/v1/.well-known/keys");
    xfree(uri);
    assert_int_equal(jwks_openid_uri("{\"jwks_uri\":\"http://127.0.0.1:8000/keys\"}", 41, &uri), 0);
    assert_string_equal(uri, "http://127.0.0.1:8000/keys");
    xfree(uri);
    for (i = 0; i < ARRAY_SIZE(bad); i++) {
        uri = sentinel;
        assert_int_equal(jwks_openid_uri(bad[i], strlen(bad[i]), &uri), DG_ERR_FIELD);
        assert_null(uri);
    }
    assert_int_equal(jwks_openid_uri("nope", 4, &uri), DG_ERR_BAD_JSON);
    assert_int_equal(jwks_openid_uri("{}", JWKS_MAX_BODY + 1, &uri), DG_ERR_TOO_LARGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_microsoft_shaped),
        cmocka_unit_test(test_parsed_key_verifies),
        cmocka_unit_test(test_document_shape),
        cmocka_unit_test(test_wrong_types_skipped),
        cmocka_unit_test(test_key_bounds),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_openid_uri),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
