/*
 * jwks.c: JSON Web Key Sets and OpenID metadata into RSA public keys.
 * OpenSSL 3 only: keys are built from n and e with EVP_PKEY_fromdata, no
 * deprecated RSA_* calls. Base64url goes through jwt_sign.c's strict
 * decoder, the one place the alphabet lives.
 */
#include "teams/jwks.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "core/buf.h"
#include "core/json_strict.h"
#include "teams/jwt_sign.h"
#include "core/log.h"

/* Decoded size bounds of n and e (bytes); n may carry one leading zero. */
#define MODULUS_MAX_BYTES (JWKS_MAX_BITS / 8 + 1)
#define EXPONENT_MAX_BYTES 8
/* OpenID metadata: Microsoft's is ~1 KiB; a URL longer than this is not one we fetch. */
#define OPENID_URI_MAX 2048

/* Decodes the base64url member key of jwk into a BIGNUM of at most max bytes. */
static BIGNUM *jwk_number(struct json_object *jwk, const char *key, size_t max)
{
    const char *s = json_strict_string(jwk, key);
    BIGNUM *bn = NULL;
    struct buf raw;

    if (!s)
        return NULL;
    /* The cap makes an oversized number a decode error, not a big allocation. */
    buf_init(&raw, max);
    /*
     * A string longer than max bytes could encode cannot fit: skip decoding
     * it. Big-endian, and leading zero bytes are harmless: BN_num_bits
     * ignores them.
     */
    if (strlen(s) <= (max * 4 + 2) / 3 && jwt_b64url_decode(s, strlen(s), &raw) == 0 && raw.len > 0)
        bn = BN_bin2bn((const unsigned char *)raw.data, (int)raw.len, NULL);
    buf_free(&raw);
    return bn;
}

/*
 * SHA-256 over len(n) (4 bytes, big-endian), n and e, both minimal
 * big-endian: two keys with one fingerprint have the same numbers, so a
 * verdict cached under one (jwt_cache.c) holds for the other.
 */
static bool fingerprint(const BIGNUM *n, const BIGNUM *e, unsigned char fp[JWKS_FINGERPRINT_LEN])
{
    unsigned char raw[4 + MODULUS_MAX_BYTES + EXPONENT_MAX_BYTES];
    int nl = BN_num_bytes(n), el = BN_num_bytes(e);
    unsigned int out_len = 0;

    if (nl > MODULUS_MAX_BYTES || el > EXPONENT_MAX_BYTES)
        return false;
    raw[0] = (unsigned char)(nl >> 24);
    raw[1] = (unsigned char)(nl >> 16);
    raw[2] = (unsigned char)(nl >> 8);
    raw[3] = (unsigned char)nl;
    BN_bn2bin(n, raw + 4);
    BN_bn2bin(e, raw + 4 + nl);
    return EVP_Digest(raw, (size_t)(4 + nl + el), fp, &out_len, EVP_sha256(), NULL) == 1 &&
           out_len == JWKS_FINGERPRINT_LEN;
}

/*
 * An RSA public key from n and e, or NULL. The bounds are ours, not
 * OpenSSL's: fromdata accepts any numbers, and e = 1 would make every
 * "signature" equal its own padded digest, so e must be odd and at least 3.
 */
static EVP_PKEY *rsa_from_jwk(struct json_object *jwk, unsigned char fp[JWKS_FINGERPRINT_LEN])
{
    BIGNUM *n = jwk_number(jwk, "n", MODULUS_MAX_BYTES);
    BIGNUM *e = jwk_number(jwk, "e", EXPONENT_MAX_BYTES);
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (!n || !e || BN_num_bits(n) < JWKS_MIN_BITS || BN_num_bits(n) > JWKS_MAX_BITS)
        goto out;
    if (!BN_is_odd(e) || BN_is_one(e))
        goto out;
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    if (pkey && !fingerprint(n, e, fp)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    ERR_clear_error(); /* a skipped key leaves nothing on OpenSSL's error queue */
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

/*
 * Copies "endorsements" into key. 0 when absent (has_endorsements false) or
 * a bounded array of strings; DG_ERR_FIELD otherwise, and the key is then
 * skipped: a malformed list must not read as "no list", which endorses all.
 */
static int jwk_endorsements(struct json_object *jwk, struct jwks_key *key)
{
    struct json_object *list, *item;
    size_t i, n;

    if (!json_object_object_get_ex(jwk, "endorsements", &list))
        return 0;
    if (!json_object_is_type(list, json_type_array))
        return DG_ERR_FIELD;
    n = json_object_array_length(list);
    if (n > JWKS_MAX_ENDORSEMENTS)
        return DG_ERR_FIELD;
    for (i = 0; i < n; i++) {
        item = json_object_array_get_idx(list, i);
        /* An escaped NUL would cut "msteams\u0000x" to "msteams": refused. */
        if (!json_strict_string_value(item) ||
            (size_t)json_object_get_string_len(item) > JWKS_MAX_ENDORSEMENT)
            return DG_ERR_FIELD;
    }
    key->has_endorsements = true;
    key->endorsements = n ? xcalloc(n, sizeof(char *)) : NULL;
    for (i = 0; i < n; i++) {
        item = json_object_array_get_idx(list, i);
        key->endorsements[i] = xstrdup(json_object_get_string(item));
    }
    key->n_endorsements = n;
    return 0;
}

static void key_free(struct jwks_key *key)
{
    size_t i;

    for (i = 0; i < key->n_endorsements; i++)
        xfree(key->endorsements[i]);
    xfree(key->endorsements);
    xfree(key->kid);
    EVP_PKEY_free(key->pkey);
    memset(key, 0, sizeof(*key));
}

/* True when the optional member key is absent or equals one of the allowed strings. */
static bool optional_one_of(struct json_object *jwk, const char *key, const char *const *allowed,
                            size_t n)
{
    const char *s;
    size_t i;

    if (!json_object_object_get_ex(jwk, key, NULL))
        return true;
    s = json_strict_string(jwk, key);
    for (i = 0; s && i < n; i++) {
        if (strcmp(s, allowed[i]) == 0)
            return true;
    }
    return false;
}

/* Fills key from one JWK; DG_ERR_FIELD (key empty) when it is not one we keep. */
static int key_from_jwk(struct json_object *jwk, struct jwks_key *key)
{
    static const char *const uses[] = {"sig"};
    static const char *const algs[] = {"RS256", "RS384", "RS512"};
    const char *kty, *kid;

    memset(key, 0, sizeof(*key));
    /*
     * "use":"enc" marks an encryption key and an "alg" outside RS* a key
     * meant for another scheme: neither may verify our tokens, even if its
     * numbers would. Both members are optional, as in Microsoft's set.
     */
    if (!json_object_is_type(jwk, json_type_object))
        return DG_ERR_FIELD;
    kty = json_strict_string(jwk, "kty");
    kid = json_strict_string(jwk, "kid");
    if (!kty || strcmp(kty, "RSA") != 0 || !kid || !*kid || strlen(kid) > JWKS_MAX_KID)
        return DG_ERR_FIELD;
    if (!optional_one_of(jwk, "use", uses, ARRAY_SIZE(uses)) ||
        !optional_one_of(jwk, "alg", algs, ARRAY_SIZE(algs)))
        return DG_ERR_FIELD;
    if (jwk_endorsements(jwk, key) != 0)
        goto fail;
    key->pkey = rsa_from_jwk(jwk, key->fingerprint);
    if (!key->pkey)
        goto fail;
    key->kid = xstrdup(kid);
    return 0;
fail:
    key_free(key);
    return DG_ERR_FIELD;
}

int jwks_parse(struct jwks *set, const char *body, size_t len)
{
    struct json_object *root = NULL, *list;
    size_t i, n, skipped = 0;
    int err;

    memset(set, 0, sizeof(*set));
    if (len > JWKS_MAX_BODY)
        return DG_ERR_TOO_LARGE;
    err = json_strict_object(body, len, JWKS_MAX_DEPTH, true, &root);
    if (err)
        return err;
    if (!json_object_object_get_ex(root, "keys", &list) ||
        !json_object_is_type(list, json_type_array)) {
        err = DG_ERR_FIELD;
        goto out;
    }
    n = json_object_array_length(list);
    /*
     * Sized for the keys that may be kept, never for the array as sent.
     * Keys keep their order, so with a duplicate kid jwks_find returns the
     * first, as a linear search in the SDKs would.
     */
    set->keys = n ? xcalloc(n < JWKS_MAX_KEYS ? n : JWKS_MAX_KEYS, sizeof(*set->keys)) : NULL;
    for (i = 0; i < n && set->n < JWKS_MAX_KEYS; i++) {
        if (key_from_jwk(json_object_array_get_idx(list, i), &set->keys[set->n]) == 0)
            set->n++;
        else
            skipped++;
    }
    if (set->n == 0) {
        /* An empty set holds no memory, so that dropping it needs no jwks_free. */
        xfree(set->keys);
        set->keys = NULL;
    }
    if (skipped || i < n)
        log_debug("jwks: kept %zu keys, skipped %zu, ignored %zu past the cap", set->n, skipped,
                  n - i);
out:
    json_object_put(root);
    return err;
}

void jwks_free(struct jwks *set)
{
    size_t i;

    if (!set)
        return;
    for (i = 0; i < set->n; i++)
        key_free(&set->keys[i]);
    xfree(set->keys);
    set->keys = NULL;
    set->n = 0;
}

const struct jwks_key *jwks_find(const struct jwks *set, const char *kid)
{
    size_t i;

    if (!set || !kid)
        return NULL;
    /* Linear: at most JWKS_MAX_KEYS, and Microsoft publishes a handful. */
    for (i = 0; i < set->n; i++) {
        if (strcmp(set->keys[i].kid, kid) == 0)
            return &set->keys[i];
    }
    return NULL;
}

/* True for "http://h…" or "https://h…" (scheme case-insensitive) with a non-empty host. */
static bool http_url_with_host(const char *uri)
{
    size_t skip;

    if (strncasecmp(uri, "https://", 8) == 0)
        skip = 8;
    else if (strncasecmp(uri, "http://", 7) == 0)
        skip = 7;
    else
        return false;
    return uri[skip] != '\0' && uri[skip] != '/';
}

int jwks_openid_uri(const char *body, size_t len, char **jwks_uri)
{
    struct json_object *root = NULL;
    const char *uri;
    int err;

    *jwks_uri = NULL;
    /* Same bounds as a key set: the metadata comes from the same kind of peer. */
    if (len > JWKS_MAX_BODY)
        return DG_ERR_TOO_LARGE;
    err = json_strict_object(body, len, JWKS_MAX_DEPTH, true, &root);
    if (err)
        return err;
    uri = json_strict_string(root, "jwks_uri");
    if (!uri || strlen(uri) > OPENID_URI_MAX || !http_url_with_host(uri)) {
        err = DG_ERR_FIELD;
        goto out;
    }
    *jwks_uri = xstrdup(uri);
out:
    json_object_put(root);
    return err;
}
