/*
 * devkey.h: the development signing key that digest-stub and digest-bench
 * share. One RSA-2048 private key in DIR/dev-signing-key.pem (PKCS#8 PEM,
 * mode 0600, DIR 0700), created on first use; `digest-stub serve` publishes
 * its public half in the JWKS, and whatever signs activities for digestd
 * (`digest-stub say`/`token`, digest-bench) signs with it, so all must be
 * given the same DIR. Blocking
 * file I/O: call it before the loop runs, never from a callback.
 */
#pragma once

#include <openssl/evp.h>

#include "core/common.h"
#include "teams/jwt_sign.h"

#define STUB_KEY_FILE "dev-signing-key.pem"
#define STUB_KEY_BITS 2048

/*
 * Loads the key from dir, generating and storing it first when the file
 * does not exist (two processes racing to create it end up with the same
 * key). On success *key is owned (EVP_PKEY_free) and kid holds its RFC 7638
 * thumbprint. Errors are logged with the path; DG_ERR_UNAVAILABLE for a
 * file problem, DG_ERR_INVALID for a file that holds no RSA private key.
 */
int stub_key_load(const char *dir, EVP_PKEY **key, char kid[JWT_KID_LEN + 1]) WARN_UNUSED;
