/*
 * test_jwt_sign.c: base64url against RFC 4648 / RFC 7515 vectors and strict
 * decoding; the RFC 7638 thumbprint example; RS256 tokens checked with
 * OpenSSL's own EVP_DigestVerify (not with code from jwt_sign.c); and the JWK
 * rebuilt from its n/e into a key that OpenSSL finds equal to the original.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "core/buf.h"
#include "teams/jwt_sign.h"

/* RFC 7638 §3.1: the example key and its SHA-256 thumbprint. */
static const char RFC7638_N[] =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
    "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
    "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
    "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
static const char RFC7638_THUMBPRINT[] = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

static EVP_PKEY *test_key; /* one 2048-bit key for the whole run: generation is slow */

static char *encode(const void *data, size_t len)
{
    struct buf b;

    buf_init(&b, 1 << 16);
    assert_int_equal(jwt_b64url_encode(data, len, &b), 0);
    return buf_take(&b);
}

/* Decodes s; returns the status and leaves the bytes in *out (caller frees). */
static int decode(const char *s, struct buf *out)
{
    buf_init(out, 1 << 16);
    return jwt_b64url_decode(s, strlen(s), out);
}

static void test_b64url_rfc4648_vectors(void **state)
{
    /* RFC 4648 §10, with the padding removed as base64url in JWS requires. */
    static const struct {
        const char *plain, *enc;
    } v[] = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    size_t i;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct buf back;
        char *e = encode(v[i].plain, strlen(v[i].plain));
        assert_string_equal(e, v[i].enc);
        assert_int_equal(decode(e, &back), 0);
        assert_int_equal(back.len, strlen(v[i].plain));
        assert_string_equal(buf_cstr(&back), v[i].plain);
        buf_free(&back);
        xfree(e);
    }
}

static void test_b64url_url_alphabet(void **state)
{
    /* The two characters that differ from plain base64 ('+' and '/'). */
    static const unsigned char bytes[] = {0xfb, 0xff, 0xbf};
    /* RFC 7515 §3.3: the JWS header {"typ":"JWT",\r\n "alg":"HS256"}. */
    static const char hdr[] = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
    struct buf back;
    char *e = encode(bytes, sizeof(bytes));

    assert_string_equal(e, "-_-_");
    assert_int_equal(decode(e, &back), 0);
    assert_int_equal(back.len, 3);
    assert_memory_equal(back.data, bytes, 3);
    buf_free(&back);
    xfree(e);

    e = encode(hdr, strlen(hdr));
    assert_string_equal(e, "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9");
    xfree(e);
}

static void test_b64url_decode_rejects(void **state)
{
    static const char *const bad[] = {
        "Zg==",  /* padding */
        "Z",     /* 4k+1 characters cannot encode whole bytes */
        "Zm9vY", /* likewise */
        "Zm+v",  /* plain base64 alphabet */
        "Zm/v",  /* likewise */
        "Zm 9v", /* white space */
        "Zh",    /* 'h' leaves non-zero unused bits: not the canonical form of "f" */
        "Zm9",   /* likewise for "fo" */
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf out;
        int err;

        buf_init(&out, 64);
        assert_int_equal(buf_append_str(&out, "kept"), 0);
        err = jwt_b64url_decode(bad[i], strlen(bad[i]), &out);
        if (err != DG_ERR_INVALID)
            fail_msg("'%s' decoded (%d)", bad[i], err);
        /* A failed decode leaves what the buffer held. */
        assert_string_equal(buf_cstr(&out), "kept");
        buf_free(&out);
    }
}

static void test_b64url_caps(void **state)
{
    struct buf out;

    /* 6 bytes need 8 characters; a cap of 7 must fail and leave out as it was. */
    buf_init(&out, 7);
    assert_int_equal(buf_append_str(&out, "ab"), 0);
    assert_int_equal(jwt_b64url_encode("foobar", 6, &out), DG_ERR_TOO_LARGE);
    assert_string_equal(buf_cstr(&out), "ab");
    /* Decoding "foobar" after "ab" would need 8 bytes: refused, nothing appended. */
    assert_int_equal(jwt_b64url_decode("Zm9vYmFy", 8, &out), DG_ERR_TOO_LARGE);
    assert_string_equal(buf_cstr(&out), "ab");
    assert_int_equal(jwt_b64url_decode("Zm9vYg", 6, &out), 0);
    assert_string_equal(buf_cstr(&out), "abfoob");
    buf_free(&out);
}

/* Builds an RSA public key from base64url n and e with OpenSSL alone. */
static EVP_PKEY *key_from_ne(const char *n_b64, const char *e_b64)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    OSSL_PARAM *params;
    EVP_PKEY *key = NULL;
    struct buf n, e;
    BIGNUM *bn_n, *bn_e;

    assert_int_equal(decode(n_b64, &n), 0);
    assert_int_equal(decode(e_b64, &e), 0);
    bn_n = BN_bin2bn((const unsigned char *)n.data, (int)n.len, NULL);
    bn_e = BN_bin2bn((const unsigned char *)e.data, (int)e.len, NULL);
    assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n));
    assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e));
    params = OSSL_PARAM_BLD_to_param(bld);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(bn_n);
    BN_free(bn_e);
    buf_free(&n);
    buf_free(&e);
    return key;
}

static void test_thumbprint_rfc7638(void **state)
{
    EVP_PKEY *key = key_from_ne(RFC7638_N, "AQAB");
    char kid[JWT_KID_LEN + 1];

    assert_int_equal(jwt_key_thumbprint(key, kid), 0);
    assert_string_equal(kid, RFC7638_THUMBPRINT);
    EVP_PKEY_free(key);
}

static void test_non_rsa_key_refused(void **state)
{
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    struct json_object *jwk = NULL;
    char kid[JWT_KID_LEN + 1];
    struct buf out;

    assert_non_null(ec);
    buf_init(&out, 4096);
    assert_int_equal(jwt_key_thumbprint(ec, kid), DG_ERR_INVALID);
    assert_int_equal(jwt_sign_rs256(ec, "k", "{}", 2, &out), DG_ERR_INVALID);
    assert_int_equal(out.len, 0);
    assert_int_equal(jwt_jwk_from_key(ec, "k", NULL, 0, &jwk), DG_ERR_INVALID);
    assert_null(jwk);
    buf_free(&out);
    EVP_PKEY_free(ec);
}

/* Splits a token at its two dots; returns the signing-input length. */
static size_t split_token(const char *tok, const char **payload, const char **sig)
{
    const char *d1 = strchr(tok, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;

    assert_non_null(d1);
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    *payload = d1 + 1;
    *sig = d2 + 1;
    return (size_t)(d2 - tok);
}

/* EVP_DigestVerify of an RS256 signature: 1 good, 0 bad. */
static int verify_rs256(EVP_PKEY *key, const char *input, size_t len, const char *sig_b64)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    struct buf sig;
    int ok;

    assert_int_equal(decode(sig_b64, &sig), 0);
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    ok = EVP_DigestVerify(ctx, (const unsigned char *)sig.data, sig.len,
                          (const unsigned char *)input, len);
    EVP_MD_CTX_free(ctx);
    buf_free(&sig);
    return ok == 1;
}

/* Decodes one base64url JSON part of a token into a json object (owned). */
static struct json_object *decode_part(const char *part, size_t len)
{
    struct buf text;
    struct json_object *o;

    buf_init(&text, 1 << 16);
    assert_int_equal(jwt_b64url_decode(part, len, &text), 0);
    o = json_tokener_parse(buf_cstr(&text));
    assert_non_null(o);
    buf_free(&text);
    return o;
}

static void test_sign_verifies_with_openssl(void **state)
{
    static const char claims[] =
        "{\"iss\":\"https://api.botframework.com\",\"aud\":\"app\",\"nbf\":1,\"exp\":2,"
        "\"serviceurl\":\"http://127.0.0.1:8000/\"}";
    const char *payload, *sig;
    struct json_object *h, *p, *v;
    char kid[JWT_KID_LEN + 1];
    struct buf tok;
    size_t input_len;
    char *tampered;

    assert_int_equal(jwt_key_thumbprint(test_key, kid), 0);
    buf_init(&tok, 8192);
    assert_int_equal(buf_append_str(&tok, "x"), 0); /* appends after what is there */
    assert_int_equal(jwt_sign_rs256(test_key, kid, claims, strlen(claims), &tok), 0);
    input_len = split_token(tok.data + 1, &payload, &sig);
    assert_true(verify_rs256(test_key, tok.data + 1, input_len, sig));

    h = decode_part(tok.data + 1, (size_t)(payload - 1 - (tok.data + 1)));
    assert_true(json_object_object_get_ex(h, "alg", &v));
    assert_string_equal(json_object_get_string(v), "RS256");
    assert_true(json_object_object_get_ex(h, "typ", &v));
    assert_string_equal(json_object_get_string(v), "JWT");
    assert_true(json_object_object_get_ex(h, "kid", &v));
    assert_string_equal(json_object_get_string(v), kid);
    p = decode_part(payload, (size_t)(sig - 1 - payload));
    assert_true(json_object_object_get_ex(p, "serviceurl", &v));
    assert_string_equal(json_object_get_string(v), "http://127.0.0.1:8000/");

    /* One changed payload character must break the signature. */
    tampered = xstrdup(tok.data + 1);
    tampered[payload - (tok.data + 1) + 5] ^= 0x01;
    assert_false(verify_rs256(test_key, tampered, input_len, sig));
    xfree(tampered);
    json_object_put(h);
    json_object_put(p);
    buf_free(&tok);
}

static void test_sign_respects_cap(void **state)
{
    struct buf tok;

    /* A 2048-bit signature alone is 342 characters. */
    buf_init(&tok, 300);
    assert_int_equal(jwt_sign_rs256(test_key, "kid", "{}", 2, &tok), DG_ERR_TOO_LARGE);
    assert_int_equal(tok.len, 0);
    buf_free(&tok);
}

static void test_jwk_round_trip(void **state)
{
    static const char *const endorse[] = {"msteams"};
    struct json_object *jwk = NULL, *v, *n, *e;
    char kid[JWT_KID_LEN + 1];
    EVP_PKEY *rebuilt;

    assert_int_equal(jwt_key_thumbprint(test_key, kid), 0);
    assert_int_equal(jwt_jwk_from_key(test_key, kid, endorse, 1, &jwk), 0);
    assert_true(json_object_object_get_ex(jwk, "kty", &v));
    assert_string_equal(json_object_get_string(v), "RSA");
    assert_true(json_object_object_get_ex(jwk, "use", &v));
    assert_string_equal(json_object_get_string(v), "sig");
    assert_true(json_object_object_get_ex(jwk, "kid", &v));
    assert_string_equal(json_object_get_string(v), kid);
    assert_true(json_object_object_get_ex(jwk, "endorsements", &v));
    assert_int_equal(json_object_array_length(v), 1);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)), "msteams");
    assert_true(json_object_object_get_ex(jwk, "n", &n));
    assert_true(json_object_object_get_ex(jwk, "e", &e));
    assert_string_equal(json_object_get_string(e), "AQAB");

    rebuilt = key_from_ne(json_object_get_string(n), json_object_get_string(e));
    assert_int_equal(EVP_PKEY_get_bits(rebuilt), 2048);
    assert_int_equal(EVP_PKEY_eq(rebuilt, test_key), 1);
    EVP_PKEY_free(rebuilt);
    json_object_put(jwk);

    /* Without endorsements the member is absent (a key endorsing every channel). */
    assert_int_equal(jwt_jwk_from_key(test_key, kid, NULL, 0, &jwk), 0);
    assert_false(json_object_object_get_ex(jwk, "endorsements", NULL));
    json_object_put(jwk);
}

static int setup(void **state)
{
    test_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    return test_key ? 0 : -1;
}

static int teardown(void **state)
{
    EVP_PKEY_free(test_key);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_rfc4648_vectors),
        cmocka_unit_test(test_b64url_url_alphabet),
        cmocka_unit_test(test_b64url_decode_rejects),
        cmocka_unit_test(test_b64url_caps),
        cmocka_unit_test(test_thumbprint_rfc7638),
        cmocka_unit_test(test_non_rsa_key_refused),
        cmocka_unit_test(test_sign_verifies_with_openssl),
        cmocka_unit_test(test_sign_respects_cap),
        cmocka_unit_test(test_jwk_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
