/*
 * jwt_verify.h: inbound Bot Framework token checks, pure (SPEC §3,
 * research/botframework.md §3.1). jwt_parse() takes the value of the
 * Authorization header apart into a struct jwt without trusting it;
 * jwt_verify() then decides against a key set and what the activity says.
 * No I/O and no clock: the caller passes now_s, so tests can move time.
 *
 * Base64url (RFC 4648 §5) is decoded strictly, by jwt_sign.c's decoder:
 * padding is NOT accepted (JWS compact form has none), nor any character
 * outside the alphabet, nor non-zero unused bits in the last character.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "teams/jwks.h"

#define JWT_MAX_AUTHORIZATION (16 * 1024) /* bytes of the header value */
#define JWT_MAX_DEPTH 16 /* objects and arrays nested in header or payload, the top one = 1 */

struct jwt {                                  /* a parsed, not yet trusted, compact JWS */
    char *alg, *kid, *iss, *aud, *serviceurl; /* owned; NULL when absent or not a string */
    /* aud must be a string (SPEC §3: exact); an array, even of the app id
     * alone, leaves aud NULL, which jwt_verify rejects. */
    double exp, nbf;       /* NumericDate seconds, the fraction kept */
    bool has_exp, has_nbf; /* present and a number within ±2^62 */
    bool bad_exp, bad_nbf; /* present but not that (null, a string, 1e400…): refused */
    /* Private to jwt_verify.c: */
    char *signing_input; /* owned "header.payload" as received */
    size_t signing_len;
    unsigned char *sig; /* owned decoded signature */
    size_t sig_len;
};

/*
 * Parses the value of the Authorization header (len bytes, no NUL needed):
 * scheme "Bearer" (case-insensitive), one space, exactly one token of three
 * non-empty base64url parts; header and payload must be JSON objects no
 * deeper than JWT_MAX_DEPTH with nothing after them. A string claim of the
 * wrong type is left NULL, and a malformed exp or nbf is marked bad, so
 * jwt_verify rejects either.
 * DG_ERR_INVALID on any shape problem, DG_ERR_TOO_LARGE when len is over
 * JWT_MAX_AUTHORIZATION; t is then empty. No signature check. On success t
 * owns memory: jwt_free().
 */
int jwt_parse(struct jwt *t, const char *authorization, size_t len) WARN_UNUSED;

/* Frees what t owns; t is zeroed. NULL-safe. */
void jwt_free(struct jwt *t);

enum jwt_verdict {
    JWT_OK = 0,
    JWT_UNAUTHORIZED, /* 401 */
    JWT_FORBIDDEN,    /* 403 */
    JWT_UNKNOWN_KID,  /* 401 unless a refetch of the keys finds it */
};

struct jwt_expect {
    const char *issuer;      /* "https://api.botframework.com" */
    const char *audience;    /* MICROSOFT_APP_ID (NULL → 401) */
    const char *service_url; /* the activity's serviceUrl (NULL → 401) */
    const char *channel_id;  /* the activity's channelId, for endorsements (see jwt_verify) */
    int64_t now_s;
    int64_t leeway_s; /* 300 */
};

/*
 * Decides, in this order, the first failure answering: alg RS256/RS384/RS512
 * (none, HS*, anything else → 401); iss == issuer (401); kid present (401)
 * and found in keys (else JWT_UNKNOWN_KID); the key is RSA (401); the RSA
 * PKCS#1 v1.5 signature over the signing input with the alg's digest (401);
 * exp present, well-formed and now < exp + leeway (401); nbf absent, or
 * well-formed and now >= nbf - leeway (401), as jsonwebtoken decides it for
 * the SDKs, fractions compared as they are; aud a string == audience
 * exactly (401); endorsements: a key that has
 * the property must list channel_id (403, an empty list included; stricter
 * than the SDKs, a NULL or "" channel_id is 403 too, since the activity body
 * is the attacker's to shape); claim
 * serviceurl == service_url exactly (401, a missing one included). *why
 * (may be NULL) gets a short static reason for logs and the JSON body.
 */
enum jwt_verdict jwt_verify(const struct jwt *t, const struct jwks *keys,
                            const struct jwt_expect *e, const char **why);

/*
 * jwt_verify for a token whose signature was found good before with the key
 * whose fingerprint is fp (jwt_cache.c): every check again, in the same
 * order and with the same answers, except the RSA operation. When the kid
 * now names a key with other numbers (a rotation kept the kid), *stale is
 * set and the answer means nothing: verify the token again.
 */
enum jwt_verdict jwt_reverify(const struct jwt *t, const unsigned char *fp, const struct jwks *keys,
                              const struct jwt_expect *e, bool *stale, const char **why);

/* The fingerprint of the key t's kid names in keys (borrowed), or NULL. */
const unsigned char *jwt_key_fingerprint(const struct jwt *t, const struct jwks *keys);

/* Issuer pre-check only (before any key or signature work). */
bool jwt_issuer_ok(const struct jwt *t, const struct jwt_expect *e);
