/*
 * jwks.h: Bot Framework signing keys, pure (research/botframework.md §3.1).
 * jwks_parse() turns a JSON Web Key Set (RFC 7517) into RSA public keys
 * built from each JWK's "n" and "e" with OpenSSL 3's EVP_PKEY_fromdata,
 * together with the Bot Framework "endorsements" list (the channels a key
 * may sign for). jwks_openid_uri() reads "jwks_uri" out of the OpenID
 * metadata document. No I/O: fetching and caching live in auth.c.
 *
 * Input is untrusted network bytes, so everything is bounded: the body
 * (JWKS_MAX_BODY), the number of keys kept (JWKS_MAX_KEYS), the modulus size
 * (JWKS_MIN_BITS..JWKS_MAX_BITS), the JSON depth (JWKS_MAX_DEPTH), and the
 * length of a kid or an endorsement.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/common.h"

#define JWKS_MAX_BODY (256 * 1024) /* Microsoft's set is ~10 KiB */
#define JWKS_MAX_KEYS 100          /* keys kept; further usable keys are ignored */
#define JWKS_MIN_BITS 2048         /* RSA modulus size bounds */
#define JWKS_MAX_BITS 8192
#define JWKS_MAX_DEPTH 16        /* JSON nesting, top-level object = 1 */
#define JWKS_MAX_KID 256         /* bytes in a kid (Microsoft's are ~30) */
#define JWKS_MAX_ENDORSEMENTS 64 /* entries in one key's endorsements list */
#define JWKS_MAX_ENDORSEMENT 128 /* bytes in one endorsement */

#define JWKS_FINGERPRINT_LEN 32

struct evp_pkey_st; /* OpenSSL EVP_PKEY */

struct jwks_key {
    char *kid;                /* owned */
    struct evp_pkey_st *pkey; /* owned RSA public key built from n/e */
    char **endorsements;      /* owned strings; NULL when the key has no "endorsements" */
    size_t n_endorsements;
    bool has_endorsements; /* property present (an empty list is present and endorses nothing) */
    /* SHA-256 of the key's numbers (n, e): what a cached verdict was verified with. */
    unsigned char fingerprint[JWKS_FINGERPRINT_LEN];
};

struct jwks {
    struct jwks_key *keys; /* owned array of n keys */
    size_t n;
};

/*
 * Parses a JWKS document {"keys":[…]} into set (which the caller zeroes or
 * has freed before). Keeps the keys with "kty":"RSA", a string "kid", and
 * base64url "n" and "e" whose modulus is 2048..8192 bits, and whose optional
 * "use" is "sig" and optional "alg" is RS256/RS384/RS512; other keys (EC,
 * oct, encryption keys, odd sizes, undecodable n/e) are skipped, as the SDKs
 * ignore non-RSA keys. A kept key whose "endorsements" is present but not an
 * array of strings is skipped too: it would otherwise endorse everything.
 * DG_ERR_TOO_LARGE for a body over JWKS_MAX_BODY, DG_ERR_BAD_JSON for
 * anything that is not one JSON object (trailing bytes, too deep), and
 * DG_ERR_FIELD when "keys" is missing or not an array. A set with zero
 * usable keys is a success with n == 0 (the caller decides). On error set is
 * left empty.
 */
int jwks_parse(struct jwks *set, const char *body, size_t len) WARN_UNUSED;

/* Frees every key; set is empty and reusable afterwards. NULL-safe. */
void jwks_free(struct jwks *set);

/* The key whose kid equals kid exactly (borrowed from set), or NULL. */
const struct jwks_key *jwks_find(const struct jwks *set, const char *kid);

/*
 * Reads "jwks_uri" from an OpenID metadata document. On success *jwks_uri is
 * owned (xfree) and starts with http:// or https://. DG_ERR_TOO_LARGE,
 * DG_ERR_BAD_JSON as jwks_parse; DG_ERR_FIELD when the member is missing,
 * not a string, or not an http(s) URL.
 */
int jwks_openid_uri(const char *body, size_t len, char **jwks_uri) WARN_UNUSED;
