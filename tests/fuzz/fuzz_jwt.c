/*
 * fuzz_jwt.c: libFuzzer target for jwt_parse and jwt_verify, the first
 * code to read an Authorization header. The first input byte picks a mode:
 *
 *   even: the rest is the header value as received, straight into
 *         jwt_parse, then jwt_verify against a one-key set;
 *   odd:  the rest is "<header JSON>\n<payload JSON>", signed RS256 with
 *         the set's own key, so that inputs get past the signature and
 *         reach the time, audience, endorsement and serviceurl checks
 *         (and the claim readers see every odd number json-c produces).
 *
 * Besides the sanitizers it checks what the header promises, aborting when
 * a promise is broken: a failed parse leaves t empty, a parse that worked
 * left a signing input and signature, a verdict is one of the four and
 * comes with a reason, and nothing passes with a claim missing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "core/buf.h"
#include "teams/jwks.h"
#include "teams/jwt_sign.h"
#include "teams/jwt_verify.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The seeds' kid: corpus files signed in odd mode must name it. */
#define FUZZ_KID "fuzz-key"

static EVP_PKEY *key;
static struct jwks set;
static char msteams[] = "msteams", fuzz_kid[] = FUZZ_KID;
static char *endorsements[] = {msteams};

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* One key for the whole run: RSA generation takes far longer than an input. */
    key = EVP_RSA_gen(2048);
    check(key != NULL);
    set.keys = calloc(1, sizeof(*set.keys));
    check(set.keys != NULL);
    set.keys[0].kid = fuzz_kid;
    set.keys[0].pkey = key;
    set.keys[0].endorsements = endorsements;
    set.keys[0].n_endorsements = 1;
    set.keys[0].has_endorsements = true;
    set.n = 1;
    return 0;
}

/* Parses the header value and verifies it; checks the promises either way. */
static void run(const char *auth, size_t len)
{
    static const struct jwt_expect e = {
        .issuer = "https://api.botframework.com",
        .audience = "app-id",
        .service_url = "https://smba.trafficmanager.net/amer/",
        .channel_id = "msteams",
        .now_s = 1700000000,
        .leeway_s = 300,
    };
    struct jwt t;
    enum jwt_verdict v;
    const char *why = NULL;

    if (jwt_parse(&t, auth, len) != 0) {
        check(!t.alg && !t.kid && !t.iss && !t.aud && !t.serviceurl);
        check(!t.signing_input && !t.sig);
        return;
    }
    check(len <= JWT_MAX_AUTHORIZATION);
    check(t.signing_input && t.sig && t.signing_len < len);
    v = jwt_verify(&t, &set, &e, &why);
    check(why != NULL);
    check(v == JWT_OK || v == JWT_UNAUTHORIZED || v == JWT_FORBIDDEN || v == JWT_UNKNOWN_KID);
    if (v == JWT_OK) {
        check(jwt_issuer_ok(&t, &e) && t.has_exp && !t.bad_exp && !t.bad_nbf);
        check(t.exp > (double)(e.now_s - e.leeway_s));
        check(!t.has_nbf || t.nbf <= (double)(e.now_s + e.leeway_s));
        check(t.aud && strcmp(t.aud, e.audience) == 0);
        check(t.serviceurl && strcmp(t.serviceurl, e.service_url) == 0);
    }
    jwt_free(&t);
    check(!t.alg && !t.sig);
}

/* Odd mode: signs "<header>\n<payload>" with the set's key and runs the token. */
static void run_signed(const char *in, size_t len)
{
    const char *nl = memchr(in, '\n', len);
    char *header;
    struct buf auth;

    if (!nl || memchr(in, '\0', (size_t)(nl - in)))
        return;
    header = xstrndup(in, (size_t)(nl - in));
    buf_init(&auth, 2 * JWT_MAX_AUTHORIZATION);
    if (buf_append_str(&auth, "Bearer ") == 0 &&
        jwt_sign_compact(JWT_SIG_RS256, key, NULL, 0, header, nl + 1, len - (size_t)(nl + 1 - in),
                         &auth) == 0)
        run(auth.data, auth.len);
    buf_free(&auth);
    xfree(header);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        run_signed((const char *)data + 1, size - 1);
    else
        run((const char *)data + 1, size - 1);
    return 0;
}
