/*
 * jwt_sign.h: the signing half of Bot Framework tokens (research/botframework.md
 * §3.1), pure: base64url (RFC 4648 §5, no padding), RS256 JWS compact tokens
 * (RFC 7515/7519) made with OpenSSL 3's EVP_DigestSign (and, for tests and
 * digest-stub, the forged RS384/RS512/HS256/none shapes), the RFC 7638 key
 * thumbprint used as a key id, and the public JWK as Bot Framework publishes
 * it. No I/O and no clock: claims are passed in. Keys are borrowed; every
 * output goes into a caller's struct buf or is returned owned.
 */
#pragma once

#include <stddef.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "core/common.h"

struct json_object;

/* 43 characters: base64url of a SHA-256 digest, without padding. */
#define JWT_KID_LEN 43

/* Appends the base64url form of len bytes to out (DG_ERR_TOO_LARGE past its cap). */
int jwt_b64url_encode(const void *data, size_t len, struct buf *out) WARN_UNUSED;

/*
 * Appends the bytes that s (len characters, no padding) encodes to out.
 * Strict, as a verifier must be: DG_ERR_INVALID for a character outside
 * the base64url alphabet, '=' padding, a length of 4k+1, or non-zero unused
 * bits in the last character (so each byte string has exactly one form).
 * out is unchanged on error.
 */
int jwt_b64url_decode(const char *s, size_t len, struct buf *out) WARN_UNUSED;

/*
 * Writes the RFC 7638 thumbprint of an RSA public key (base64url of the
 * SHA-256 of {"e":…,"kty":"RSA","n":…}) and a NUL into kid. DG_ERR_INVALID
 * when key is not RSA.
 */
int jwt_key_thumbprint(const EVP_PKEY *key, char kid[JWT_KID_LEN + 1]) WARN_UNUSED;

/*
 * Appends a signed token header.payload.signature to out. The header is
 * {"alg":"RS256","typ":"JWT","kid":kid}; claims_json (len bytes) is taken
 * verbatim as the payload, so the caller decides its content. key must be
 * an RSA private key. DG_ERR_INVALID for a non-RSA key or a signing
 * failure (logged); out is unchanged on error.
 */
int jwt_sign_rs256(EVP_PKEY *key, const char *kid, const char *claims_json, size_t len,
                   struct buf *out) WARN_UNUSED;

/* How jwt_sign_compact makes the signature part (the header says what it likes). */
enum jwt_sig {
    JWT_SIG_RS256 = 0, /* RSA PKCS#1 v1.5 with SHA-256, key: RSA private key */
    JWT_SIG_RS384,
    JWT_SIG_RS512,
    JWT_SIG_HS256, /* HMAC-SHA-256 keyed with the secret bytes (no key needed) */
    JWT_SIG_NONE,  /* an empty signature part: "header.payload." */
};

/*
 * Appends base64url(header_json).base64url(claims_json).signature to out,
 * both JSON texts taken verbatim, so a caller (digest-stub's token command,
 * tests, fuzzers) can forge every shape a verifier must refuse: a header
 * whose alg disagrees with how, HS256 keyed with a public key's bytes, alg
 * none. key is needed for the RS* ways, secret/secret_len for HS256.
 * DG_ERR_INVALID for a missing or unsuitable key or a signing failure;
 * out is unchanged on error.
 */
int jwt_sign_compact(enum jwt_sig how, EVP_PKEY *key, const void *secret, size_t secret_len,
                     const char *header_json, const char *claims_json, size_t claims_len,
                     struct buf *out) WARN_UNUSED;

/*
 * Builds the public JWK of an RSA key as Bot Framework's key set lists it:
 * {"kty":"RSA","use":"sig","kid":…,"n":…,"e":…,"endorsements":[…]}. The
 * endorsements member is left out when endorsements is NULL (a key without
 * the property endorses every channel). On success *out is owned
 * (json_object_put); DG_ERR_INVALID when key is not RSA.
 */
int jwt_jwk_from_key(const EVP_PKEY *key, const char *kid, const char *const *endorsements,
                     size_t n_endorsements, struct json_object **out) WARN_UNUSED;
