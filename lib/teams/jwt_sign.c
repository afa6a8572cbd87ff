/*
 * jwt_sign.c: base64url, RS256 signing (and the forged shapes tests need)
 * and the public JWK. OpenSSL 3 only (EVP_PKEY parameters, no deprecated
 * RSA_* calls).
 */
#include "teams/jwt_sign.h"

#include <limits.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "core/json_write.h"
#include "core/log.h"

/* Bounds a header built here: a kid of any sane length fits well within. */
#define HEADER_MAX_BYTES 1024
/* RSA-16384 is the largest modulus OpenSSL accepts; its base64url is 2731 bytes. */
#define NUMBER_MAX_BYTES 4096

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int jwt_b64url_encode(const void *data, size_t len, struct buf *out)
{
    const unsigned char *p = data;
    char quad[4];
    size_t i, size = out->len;
    int err = 0;

    for (i = 0; i + 3 <= len && !err; i += 3) {
        quad[0] = b64url_alphabet[p[i] >> 2];
        quad[1] = b64url_alphabet[((p[i] & 0x03) << 4) | (p[i + 1] >> 4)];
        quad[2] = b64url_alphabet[((p[i + 1] & 0x0f) << 2) | (p[i + 2] >> 6)];
        quad[3] = b64url_alphabet[p[i + 2] & 0x3f];
        err = buf_append(out, quad, 4);
    }
    if (!err && len - i == 1) {
        quad[0] = b64url_alphabet[p[i] >> 2];
        quad[1] = b64url_alphabet[(p[i] & 0x03) << 4];
        err = buf_append(out, quad, 2);
    } else if (!err && len - i == 2) {
        quad[0] = b64url_alphabet[p[i] >> 2];
        quad[1] = b64url_alphabet[((p[i] & 0x03) << 4) | (p[i + 1] >> 4)];
        quad[2] = b64url_alphabet[(p[i + 1] & 0x0f) << 2];
        err = buf_append(out, quad, 3);
    }
    if (err && out->data) {
        /* Leave out as the caller gave it. */
        out->len = size;
        out->data[size] = '\0';
    }
    return err;
}

/* The 6-bit value of a base64url character, or -1. */
static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int jwt_b64url_decode(const char *s, size_t len, struct buf *out)
{
    struct buf tmp;
    unsigned acc = 0;
    int bits = 0, err = 0;
    size_t i;

    if (len % 4 == 1)
        return DG_ERR_INVALID;
    /* Decode aside first so that a bad character late in s leaves out untouched. */
    buf_init(&tmp, len);
    for (i = 0; i < len && !err; i++) {
        int v = b64url_value(s[i]);
        if (v < 0) {
            err = DG_ERR_INVALID;
            break;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            unsigned char byte = (unsigned char)(acc >> (bits - 8));
            bits -= 8;
            acc &= (1u << bits) - 1;
            err = buf_append(&tmp, &byte, 1);
        }
    }
    /* Leftover bits must be zero, or two strings would decode to the same bytes. */
    if (!err && acc != 0)
        err = DG_ERR_INVALID;
    if (!err && tmp.len)
        err = buf_append(out, tmp.data, tmp.len);
    buf_free(&tmp);
    return err;
}

/* Appends the base64url of one of the key's big-number parameters (n or e). */
static int append_key_number(const EVP_PKEY *key, const char *param, struct buf *out)
{
    BIGNUM *bn = NULL;
    unsigned char *bytes = NULL;
    int n, err = DG_ERR_INVALID;

    if (!EVP_PKEY_is_a(key, "RSA") || !EVP_PKEY_get_bn_param(key, param, &bn))
        goto out;
    n = BN_num_bytes(bn);
    if (n <= 0 || n > NUMBER_MAX_BYTES)
        goto out;
    bytes = xmalloc((size_t)n);
    /* Big-endian without leading zeros: exactly JWA §6.3.1's encoding. */
    BN_bn2bin(bn, bytes);
    err = jwt_b64url_encode(bytes, (size_t)n, out);
out:
    xfree(bytes);
    BN_free(bn);
    return err;
}

int jwt_key_thumbprint(const EVP_PKEY *key, char kid[JWT_KID_LEN + 1])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    struct buf canon, enc;
    int err;

    /* RFC 7638 §3.2: required members only, sorted, no white space. */
    buf_init(&canon, 2 * NUMBER_MAX_BYTES + 64);
    buf_init(&enc, JWT_KID_LEN);
    err = buf_append_str(&canon, "{\"e\":\"");
    if (!err)
        err = append_key_number(key, OSSL_PKEY_PARAM_RSA_E, &canon);
    if (!err)
        err = buf_append_str(&canon, "\",\"kty\":\"RSA\",\"n\":\"");
    if (!err)
        err = append_key_number(key, OSSL_PKEY_PARAM_RSA_N, &canon);
    if (!err)
        err = buf_append_str(&canon, "\"}");
    if (!err) {
        SHA256((const unsigned char *)canon.data, canon.len, digest);
        err = jwt_b64url_encode(digest, sizeof(digest), &enc);
    }
    if (!err)
        memcpy(kid, enc.data, JWT_KID_LEN + 1);
    buf_free(&canon);
    buf_free(&enc);
    return err;
}

/* The header {"alg":"RS256","typ":"JWT","kid":kid} as JSON text (owned, xfree). */
static char *rs256_header(const char *kid)
{
    struct json_object *h = json_object_new_object();
    char *text;

    json_object_object_add(h, "alg", json_object_new_string("RS256"));
    json_object_object_add(h, "typ", json_object_new_string("JWT"));
    json_object_object_add(h, "kid", json_object_new_string(kid));
    text = xstrdup(json_write_compact(h, NULL));
    json_object_put(h);
    return text;
}

/* Signs in with PKCS#1 v1.5 and digest md (RS256/384/512); base64url appended to sig_b64. */
static int sign_pkcs1(EVP_PKEY *key, const EVP_MD *md, const char *in, size_t len,
                      struct buf *sig_b64)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    int err = DG_ERR_INVALID;

    if (!ctx || !key || !EVP_PKEY_is_a(key, "RSA"))
        goto out;
    /* PKCS#1 v1.5 is the default padding of an RSA key, which RS* requires. */
    if (EVP_DigestSignInit(ctx, NULL, md, NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &sig_len, (const unsigned char *)in, len) != 1)
        goto out;
    sig = xmalloc(sig_len);
    if (EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)in, len) != 1)
        goto out;
    err = jwt_b64url_encode(sig, sig_len, sig_b64);
out:
    if (err == DG_ERR_INVALID) {
        const char *why = ERR_reason_error_string(ERR_get_error());
        log_error("jwt: RSA signing failed: %s", why ? why : "no OpenSSL reason");
    }
    ERR_clear_error();
    xfree(sig);
    EVP_MD_CTX_free(ctx);
    return err;
}

/* HMAC-SHA-256 of in keyed with secret; base64url appended to sig_b64. */
static int sign_hs256(const void *secret, size_t secret_len, const char *in, size_t len,
                      struct buf *sig_b64)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (!secret || secret_len > INT_MAX ||
        !HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)in, len, mac, &mac_len))
        return DG_ERR_INVALID;
    return jwt_b64url_encode(mac, mac_len, sig_b64);
}

/* Appends the signature part of the signing input in[0..len) made the way how says. */
static int append_signature(enum jwt_sig how, EVP_PKEY *key, const void *secret, size_t secret_len,
                            const char *in, size_t len, struct buf *out)
{
    switch (how) {
    case JWT_SIG_RS256:
        return sign_pkcs1(key, EVP_sha256(), in, len, out);
    case JWT_SIG_RS384:
        return sign_pkcs1(key, EVP_sha384(), in, len, out);
    case JWT_SIG_RS512:
        return sign_pkcs1(key, EVP_sha512(), in, len, out);
    case JWT_SIG_HS256:
        return sign_hs256(secret, secret_len, in, len, out);
    case JWT_SIG_NONE:
        return 0;
    }
    return DG_ERR_INVALID;
}

int jwt_sign_compact(enum jwt_sig how, EVP_PKEY *key, const void *secret, size_t secret_len,
                     const char *header_json, const char *claims_json, size_t claims_len,
                     struct buf *out)
{
    struct buf token;
    size_t signed_len;
    int err;

    if (strlen(header_json) > HEADER_MAX_BYTES)
        return DG_ERR_TOO_LARGE;
    /* Built aside so that out is untouched on any failure. */
    buf_init(&token, out->max);
    err = jwt_b64url_encode(header_json, strlen(header_json), &token);
    if (!err)
        err = buf_append(&token, ".", 1);
    if (!err)
        err = jwt_b64url_encode(claims_json, claims_len, &token);
    /* The signing input is everything so far: header "." payload. */
    signed_len = token.len;
    if (!err)
        err = buf_append(&token, ".", 1);
    if (!err)
        err = append_signature(how, key, secret, secret_len, token.data, signed_len, &token);
    if (!err)
        err = buf_append(out, token.data, token.len);
    buf_free(&token);
    return err;
}

int jwt_sign_rs256(EVP_PKEY *key, const char *kid, const char *claims_json, size_t len,
                   struct buf *out)
{
    char *header;
    int err;

    if (!EVP_PKEY_is_a(key, "RSA"))
        return DG_ERR_INVALID;
    header = rs256_header(kid);
    err = jwt_sign_compact(JWT_SIG_RS256, key, NULL, 0, header, claims_json, len, out);
    xfree(header);
    return err;
}

/* The base64url of one key number as a new json string, or NULL. */
static struct json_object *key_number_json(const EVP_PKEY *key, const char *param)
{
    struct json_object *s = NULL;
    struct buf b;

    buf_init(&b, NUMBER_MAX_BYTES);
    if (append_key_number(key, param, &b) == 0)
        s = json_object_new_string_len(b.data, (int)b.len);
    buf_free(&b);
    return s;
}

int jwt_jwk_from_key(const EVP_PKEY *key, const char *kid, const char *const *endorsements,
                     size_t n_endorsements, struct json_object **out)
{
    struct json_object *n = key_number_json(key, OSSL_PKEY_PARAM_RSA_N);
    struct json_object *e = key_number_json(key, OSSL_PKEY_PARAM_RSA_E);
    struct json_object *jwk, *list;
    size_t i;

    if (!n || !e) {
        json_object_put(n);
        json_object_put(e);
        return DG_ERR_INVALID;
    }
    jwk = json_object_new_object();
    json_object_object_add(jwk, "kty", json_object_new_string("RSA"));
    json_object_object_add(jwk, "use", json_object_new_string("sig"));
    json_object_object_add(jwk, "kid", json_object_new_string(kid));
    json_object_object_add(jwk, "n", n);
    json_object_object_add(jwk, "e", e);
    if (endorsements) {
        list = json_object_new_array();
        for (i = 0; i < n_endorsements; i++)
            json_object_array_add(list, json_object_new_string(endorsements[i]));
        json_object_object_add(jwk, "endorsements", list);
    }
    *out = jwk;
    return 0;
}
