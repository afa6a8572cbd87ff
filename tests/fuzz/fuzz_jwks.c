/*
 * fuzz_jwks.c: libFuzzer target for jwks_parse and jwks_openid_uri, which
 * read what the key endpoints answer. Each input goes through both. Besides
 * the sanitizers it checks the header's promises, aborting when one is
 * broken: a failed parse leaves the set empty, every kept key is an RSA key
 * within the size bounds with a findable kid, the caps hold, and an
 * endorsement list is there exactly when the key says it is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "teams/jwks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_key(const struct jwks *set, const struct jwks_key *k)
{
    size_t i;

    check(k->kid && k->kid[0] && strlen(k->kid) <= JWKS_MAX_KID);
    check(k->pkey && EVP_PKEY_is_a(k->pkey, "RSA"));
    check(EVP_PKEY_get_bits(k->pkey) >= JWKS_MIN_BITS);
    check(EVP_PKEY_get_bits(k->pkey) <= JWKS_MAX_BITS);
    /* Duplicates resolve to the first key with that kid. */
    check(jwks_find(set, k->kid) && strcmp(jwks_find(set, k->kid)->kid, k->kid) == 0);
    check(k->has_endorsements || (!k->endorsements && k->n_endorsements == 0));
    check(k->n_endorsements <= JWKS_MAX_ENDORSEMENTS);
    for (i = 0; i < k->n_endorsements; i++)
        check(k->endorsements[i] && strlen(k->endorsements[i]) <= JWKS_MAX_ENDORSEMENT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jwks set;
    char *uri = NULL;
    size_t i;

    if (jwks_parse(&set, (const char *)data, size) == 0) {
        check(set.n <= JWKS_MAX_KEYS);
        for (i = 0; i < set.n; i++)
            check_key(&set, &set.keys[i]);
        check(!jwks_find(&set, "\x01not-a-kid"));
    } else {
        check(set.n == 0 && set.keys == NULL);
    }
    jwks_free(&set);
    check(set.n == 0 && set.keys == NULL);

    if (jwks_openid_uri((const char *)data, size, &uri) == 0) {
        check(uri && strncasecmp(uri, "http", 4) == 0);
        xfree(uri);
    } else {
        check(uri == NULL);
    }
    return 0;
}
