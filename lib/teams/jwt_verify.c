/*
 * jwt_verify.c: the Authorization header into a struct jwt, and the Bot
 * Framework checks on it (SPEC §3). Parsing trusts nothing and bounds
 * everything; verification is ordered cheap-first, so that a token with a
 * foreign issuer or an unknown kid never costs an RSA operation.
 */
#include "teams/jwt_verify.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/json_strict.h"
#include "teams/jwt_sign.h"

#define SCHEME "Bearer"
#define SCHEME_LEN (sizeof(SCHEME) - 1)

struct alg_entry {
    const char *name;
    const EVP_MD *(*md)(void);
};

/* The only algorithms Bot Framework uses (AllowedSigningAlgorithms in the SDKs). */
static const struct alg_entry algs[] = {
    {"RS256", EVP_sha256},
    {"RS384", EVP_sha384},
    {"RS512", EVP_sha512},
};

/* True for the characters of a base64url part and the dots between parts. */
static bool token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

/*
 * Finds the token in "Bearer <token>": the scheme case-insensitively, one
 * space, then only base64url characters and dots. A second space, a tab,
 * or anything after the token is a shape error: the SDKs split the header
 * on one space and want exactly two parts.
 */
static int split_scheme(const char *s, size_t len, const char **tok, size_t *tok_len)
{
    size_t i;

    if (len < SCHEME_LEN + 2 || strncasecmp(s, SCHEME, SCHEME_LEN) != 0 || s[SCHEME_LEN] != ' ')
        return DG_ERR_INVALID;
    *tok = s + SCHEME_LEN + 1;
    *tok_len = len - SCHEME_LEN - 1;
    for (i = 0; i < *tok_len; i++) {
        if (!token_char((*tok)[i]))
            return DG_ERR_INVALID;
    }
    return 0;
}

/* Decodes one base64url part (len characters) into a new JSON object. */
static int part_json(const char *s, size_t len, struct json_object **out)
{
    struct buf raw;
    int err;

    *out = NULL;
    buf_init(&raw, len);
    err = jwt_b64url_decode(s, len, &raw);
    if (!err && json_strict_object_nested(raw.data, raw.len, JWT_MAX_DEPTH, true, out) != 0)
        err = DG_ERR_INVALID;
    buf_free(&raw);
    return err;
}

/* A copy of the string member key, or NULL when absent or not a plain string. */
static char *dup_string(struct json_object *obj, const char *key)
{
    const char *s = json_strict_string(obj, key);

    return s ? xstrdup(s) : NULL;
}

/* The NumericDate range taken: ±2^62 s is ~1.5e11 years, beyond any real date. */
#define NUMERIC_DATE_MAX 4.6e18

enum claim_date { DATE_ABSENT, DATE_OK, DATE_BAD };

/*
 * A NumericDate claim (RFC 7519 §2: seconds, fractions allowed and kept).
 * Anything present but not a finite number in range (null, true, "1700000000",
 * [], {}, 1e20, 1e400) is DATE_BAD: a wrong type must neither turn into 0 nor
 * pass as absent. json-c saturates integers past int64, which lands outside
 * the range too.
 */
static enum claim_date numeric_date(struct json_object *payload, const char *key, double *out)
{
    struct json_object *v;
    double d;

    if (!json_object_object_get_ex(payload, key, &v))
        return DATE_ABSENT;
    if (json_object_is_type(v, json_type_int))
        d = (double)json_object_get_int64(v);
    else if (json_object_is_type(v, json_type_double))
        d = json_object_get_double(v);
    else
        return DATE_BAD;
    if (!isfinite(d) || d > NUMERIC_DATE_MAX || d < -NUMERIC_DATE_MAX)
        return DATE_BAD;
    *out = d;
    return DATE_OK;
}

/* Copies the claims jwt_verify needs out of the two JSON objects. */
static void take_claims(struct jwt *t, struct json_object *header, struct json_object *payload)
{
    enum claim_date exp, nbf;

    t->alg = dup_string(header, "alg");
    t->kid = dup_string(header, "kid");
    t->iss = dup_string(payload, "iss");
    /* A string, exactly: an array of audiences is a token meant for several parties. */
    t->aud = dup_string(payload, "aud");
    t->serviceurl = dup_string(payload, "serviceurl");
    exp = numeric_date(payload, "exp", &t->exp);
    nbf = numeric_date(payload, "nbf", &t->nbf);
    t->has_exp = exp == DATE_OK;
    t->bad_exp = exp == DATE_BAD;
    t->has_nbf = nbf == DATE_OK;
    t->bad_nbf = nbf == DATE_BAD;
}

/* The three parts of tok; DG_ERR_INVALID unless there are exactly three, none empty. */
static int split_parts(const char *tok, size_t len, size_t dot[2])
{
    const char *p = memchr(tok, '.', len);
    const char *q;

    if (!p)
        return DG_ERR_INVALID;
    q = memchr(p + 1, '.', len - (size_t)(p + 1 - tok));
    if (!q || memchr(q + 1, '.', len - (size_t)(q + 1 - tok)))
        return DG_ERR_INVALID;
    dot[0] = (size_t)(p - tok);
    dot[1] = (size_t)(q - tok);
    /* An empty part is never valid: not even alg "none"'s empty signature is accepted. */
    if (dot[0] == 0 || dot[1] == dot[0] + 1 || dot[1] + 1 == len)
        return DG_ERR_INVALID;
    return 0;
}

/* Decodes the signature part into t->sig. */
static int take_signature(struct jwt *t, const char *s, size_t len)
{
    struct buf raw;
    int err;

    /* Any length is kept here; EVP_DigestVerify refuses one that is not the modulus size. */
    buf_init(&raw, len);
    err = jwt_b64url_decode(s, len, &raw);
    if (!err) {
        t->sig_len = raw.len;
        t->sig = (unsigned char *)buf_take(&raw);
    }
    buf_free(&raw);
    return err;
}

int jwt_parse(struct jwt *t, const char *authorization, size_t len)
{
    struct json_object *header = NULL, *payload = NULL;
    const char *tok;
    size_t tok_len, dot[2];
    int err;

    memset(t, 0, sizeof(*t));
    if (len > JWT_MAX_AUTHORIZATION)
        return DG_ERR_TOO_LARGE;
    err = split_scheme(authorization, len, &tok, &tok_len);
    if (!err)
        err = split_parts(tok, tok_len, dot);
    if (!err)
        err = part_json(tok, dot[0], &header);
    if (!err)
        err = part_json(tok + dot[0] + 1, dot[1] - dot[0] - 1, &payload);
    if (!err)
        err = take_signature(t, tok + dot[1] + 1, tok_len - dot[1] - 1);
    if (err) {
        /* Every shape problem is one answer (401): the caller needs no finer code. */
        err = DG_ERR_INVALID;
        jwt_free(t);
        goto out;
    }
    take_claims(t, header, payload);
    /* The signature covers the parts as received, not a re-encoding of them. */
    t->signing_input = xstrndup(tok, dot[1]);
    t->signing_len = dot[1];
out:
    json_object_put(header);
    json_object_put(payload);
    return err;
}

void jwt_free(struct jwt *t)
{
    if (!t)
        return;
    xfree(t->alg);
    xfree(t->kid);
    xfree(t->iss);
    xfree(t->aud);
    xfree(t->serviceurl);
    xfree(t->signing_input);
    xfree(t->sig);
    memset(t, 0, sizeof(*t));
}

bool jwt_issuer_ok(const struct jwt *t, const struct jwt_expect *e)
{
    return t->iss && e->issuer && strcmp(t->iss, e->issuer) == 0;
}

static const struct alg_entry *alg_find(const char *name)
{
    size_t i;

    /* Exact, case-sensitive names (RFC 7518 §3.1): "rs256" and "None" are not allowed. */
    for (i = 0; name && i < ARRAY_SIZE(algs); i++) {
        if (strcmp(name, algs[i].name) == 0)
            return &algs[i];
    }
    return NULL;
}

/* RSA PKCS#1 v1.5 with the alg's digest over the signing input. */
static bool signature_ok(const struct jwt *t, const struct alg_entry *alg, EVP_PKEY *pkey)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok;

    /* PKCS#1 v1.5 is the default padding of an RSA key, which RS* requires. */
    ok = ctx && EVP_DigestVerifyInit(ctx, NULL, alg->md(), NULL, pkey) == 1 &&
         EVP_DigestVerify(ctx, t->sig, t->sig_len, (const unsigned char *)t->signing_input,
                          t->signing_len) == 1;
    /* A bad signature is an expected outcome, not an error to leave queued. */
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    return ok;
}

/*
 * The time window: exp required, both with leeway, as jsonwebtoken (the
 * SDKs') decides it: expired once now >= exp + leeway, not yet valid while
 * nbf > now + leeway. The claims keep their fractions and the bounds are
 * exact in a double, so an exp of now - 300 is expired and an nbf of
 * now + 300.5 not yet valid.
 */
static bool times_ok(const struct jwt *t, const struct jwt_expect *e, const char **why)
{
    if (t->bad_exp || t->bad_nbf) {
        *why = t->bad_exp ? "token exp is not a NumericDate" : "token nbf is not a NumericDate";
        return false;
    }
    if (!t->has_exp) {
        *why = "token has no exp";
        return false;
    }
    if (t->exp <= (double)(e->now_s - e->leeway_s)) {
        *why = "token expired";
        return false;
    }
    if (t->has_nbf && t->nbf > (double)(e->now_s + e->leeway_s)) {
        *why = "token not yet valid";
        return false;
    }
    return true;
}

/* A key that lists endorsements must list the channel; no channel matches nothing. */
static bool endorsed(const struct jwks_key *key, const char *channel_id)
{
    size_t i;

    if (!key->has_endorsements)
        return true;
    for (i = 0; channel_id && *channel_id && i < key->n_endorsements; i++) {
        if (strcmp(key->endorsements[i], channel_id) == 0)
            return true;
    }
    return false;
}

/* Everything before the signature: algorithm, issuer, key. */
static enum jwt_verdict precheck(const struct jwt *t, const struct jwks *keys,
                                 const struct jwt_expect *e, const struct jwks_key **key,
                                 const char **why)
{
    if (!alg_find(t->alg)) {
        *why = "token algorithm not allowed";
        return JWT_UNAUTHORIZED;
    }
    if (!jwt_issuer_ok(t, e)) {
        *why = "token issuer not trusted";
        return JWT_UNAUTHORIZED;
    }
    if (!t->kid) {
        *why = "token has no kid";
        return JWT_UNAUTHORIZED;
    }
    *key = jwks_find(keys, t->kid);
    if (!*key) {
        *why = "token signing key unknown";
        return JWT_UNKNOWN_KID;
    }
    /* The key set only keeps RSA keys; this guards against alg/key-type confusion anyway. */
    if (!(*key)->pkey || !EVP_PKEY_is_a((*key)->pkey, "RSA")) {
        *why = "token signing key is not RSA";
        return JWT_UNAUTHORIZED;
    }
    return JWT_OK;
}

/*
 * jwt_verify, and jwt_reverify when fp is given: then the signature is not
 * checked again but the key the kid names must be the one it was checked
 * with (*stale, and JWT_UNAUTHORIZED, when it is not).
 */
static enum jwt_verdict verify_with(const struct jwt *t, const struct jwks *keys,
                                    const struct jwt_expect *e, const unsigned char *fp,
                                    bool *stale, const char **why)
{
    const struct jwks_key *key = NULL;
    const char *reason = NULL;
    enum jwt_verdict v;

    v = precheck(t, keys, e, &key, &reason);
    if (v != JWT_OK)
        goto out;
    /* From here on every failure is 401 except a missing endorsement (403). */
    v = JWT_UNAUTHORIZED;
    if (fp) {
        if (memcmp(key->fingerprint, fp, JWKS_FINGERPRINT_LEN) != 0) {
            *stale = true;
            reason = "token signing key changed";
            goto out;
        }
    } else if (!t->signing_input || !t->sig || !signature_ok(t, alg_find(t->alg), key->pkey)) {
        reason = "token signature invalid";
        goto out;
    }
    if (!times_ok(t, e, &reason))
        goto out;
    if (!t->aud || !e->audience || strcmp(t->aud, e->audience) != 0) {
        reason = "token audience mismatch";
        goto out;
    }
    if (!endorsed(key, e->channel_id)) {
        reason = "signing key does not endorse the channel";
        v = JWT_FORBIDDEN;
        goto out;
    }
    if (!t->serviceurl || !e->service_url || strcmp(t->serviceurl, e->service_url) != 0) {
        reason = "token serviceurl does not match the activity";
        goto out;
    }
    v = JWT_OK;
    reason = "ok";
out:
    if (why)
        *why = reason;
    return v;
}

enum jwt_verdict jwt_verify(const struct jwt *t, const struct jwks *keys,
                            const struct jwt_expect *e, const char **why)
{
    return verify_with(t, keys, e, NULL, NULL, why);
}

enum jwt_verdict jwt_reverify(const struct jwt *t, const unsigned char *fp, const struct jwks *keys,
                              const struct jwt_expect *e, bool *stale, const char **why)
{
    *stale = false;
    return verify_with(t, keys, e, fp, stale, why);
}

const unsigned char *jwt_key_fingerprint(const struct jwt *t, const struct jwks *keys)
{
    const struct jwks_key *key = t->kid ? jwks_find(keys, t->kid) : NULL;

    return key ? key->fingerprint : NULL;
}
