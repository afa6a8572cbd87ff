/*
 * test_rollout.c: the staged rollout's decision (rollout.c) against SPEC §2:
 * false always wins, the allow list by user id and by conversation key, the
 * share by a fixed hash (known vectors, so a changed hash fails here before
 * it moves users between paths in production), its spread over many ids of
 * the shapes Teams hands out, and that raising N never moves a user back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "core/common.h"
#include "rollout.h"

#define ERR_MAX 256
#define MANY 100000 /* ids per shape for the spread */
#define FEW 2000    /* as many users as the integration test sends */

static void load(struct config *c, const char *flag, const char *allow)
{
    char e1[128], e2[512], err[ERR_MAX];
    char *env[3] = {e1, allow ? e2 : NULL, NULL};

    snprintf(e1, sizeof(e1), "USE_ASYNC_DIGEST=%s", flag);
    snprintf(e2, sizeof(e2), "ASYNC_DIGEST_ALLOW=%s", allow ? allow : "");
    if (config_load(c, NULL, env, err, sizeof(err)) != 0)
        fail_msg("config: %s", err);
}

/* splitmix64: a fixed stream of ids, the same on every run. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The i-th id of a shape: an AAD object id (GUID), a Teams 29: id, a name with a counter. */
static void make_id(int shape, unsigned i, uint64_t *seed, char *out, size_t n)
{
    uint64_t a = next_u64(seed), b = next_u64(seed);

    if (shape == 0)
        snprintf(out, n, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
                 (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
                 0x8000 | ((unsigned)(b >> 48) & 0x3fff),
                 (unsigned long long)(b & 0xffffffffffffull));
    else if (shape == 1)
        snprintf(out, n, "29:1%016llx%08x", (unsigned long long)a, (unsigned)(b >> 32));
    else
        snprintf(out, n, "user-%u", i);
}

/* The hash is part of the contract: these are FNV-1a 64 mod 100, computed outside C. */
static void test_known_buckets(void **state)
{
    assert_int_equal(rollout_bucket(""), 37);
    assert_int_equal(rollout_bucket("a"), 96);
    assert_int_equal(rollout_bucket("29:1AbC"), 91);
    assert_int_equal(rollout_bucket("8f3c5e1a-0b7d-4c2e-9a61-3d2f0c9e7b44"), 14);
    assert_int_equal(rollout_bucket("user-0001"), 70);
    assert_int_equal(rollout_bucket("7faf8ab2-3d56-4244-b585-20c8a42ed2b8"), 1);
}

static void test_user_id_prefers_aad(void **state)
{
    assert_string_equal(rollout_user_id("aad-1", "29:1x"), "aad-1");
    assert_string_equal(rollout_user_id("", "29:1x"), "29:1x");
    assert_string_equal(rollout_user_id(NULL, "29:1x"), "29:1x");
}

/* Bucket 1 (the aad id above): async exactly when 1 < N. The aad id decides, not from.id. */
static void test_share_boundary(void **state)
{
    static const char aad[] = "7faf8ab2-3d56-4244-b585-20c8a42ed2b8";
    static const char from[] = "user-0001"; /* bucket 70: would be async at 2 % if it counted */
    struct config c;
    enum rollout_why why;

    load(&c, "1%", NULL);
    assert_false(rollout_async(&c, aad, "29:1x", "msteams:a:1", &why));
    assert_int_equal(why, ROLLOUT_OUTSIDE);
    config_free(&c);
    load(&c, "2%", NULL);
    assert_true(rollout_async(&c, aad, from, "msteams:a:1", &why));
    assert_int_equal(why, ROLLOUT_IN_SHARE);
    /* Without an aad id, from.id is the user: bucket 70. */
    assert_false(rollout_async(&c, "", from, "msteams:a:1", &why));
    config_free(&c);
    load(&c, "71%", NULL);
    assert_true(rollout_async(&c, NULL, from, NULL, NULL));
    config_free(&c);
}

static void test_true_false_and_ends(void **state)
{
    char id[64];
    uint64_t seed = 1;
    struct config t, f, zero, hundred;
    enum rollout_why why;

    load(&t, "true", NULL);
    load(&f, "false", NULL);
    load(&zero, "0%", NULL);
    load(&hundred, "100%", NULL);
    for (unsigned i = 0; i < FEW; i++) {
        make_id((int)(i % 3), i, &seed, id, sizeof(id));
        assert_true(rollout_async(&t, id, id, NULL, NULL));
        assert_true(rollout_async(&hundred, id, id, NULL, NULL));
        assert_false(rollout_async(&zero, id, id, NULL, NULL));
        assert_false(rollout_async(&f, id, id, NULL, &why));
        assert_int_equal(why, ROLLOUT_OFF);
    }
    config_free(&t);
    config_free(&f);
    config_free(&zero);
    config_free(&hundred);
}

/* Users by aad id or by from.id, conversations by key; exact and case-sensitive. */
static void test_allow_list(void **state)
{
    struct config c;
    enum rollout_why why;

    load(&c, "0%", "aad-team-1, 29:1Team2 ,msteams:19:abc@thread.tacv2");
    assert_true(rollout_async(&c, "aad-team-1", "29:1zzz", "msteams:a:9", &why));
    assert_int_equal(why, ROLLOUT_ALLOWED);
    assert_true(rollout_async(&c, "aad-other", "29:1Team2", "msteams:a:9", &why)); /* from.id */
    assert_int_equal(why, ROLLOUT_ALLOWED);
    assert_true(rollout_async(&c, "", "29:1nobody", "msteams:19:abc@thread.tacv2", &why));
    assert_int_equal(why, ROLLOUT_ALLOWED);
    assert_false(rollout_async(&c, "AAD-TEAM-1", "29:1team2", "msteams:19:ABC@thread.tacv2", &why));
    assert_int_equal(why, ROLLOUT_OUTSIDE);
    assert_false(
        rollout_async(&c, "aad-team", "29:1Team", "msteams:19:abc", NULL)); /* no prefixes */
    config_free(&c);
    /* false beats the list: the instant rollback. */
    load(&c, "false", "aad-team-1,msteams:19:abc@thread.tacv2");
    assert_false(rollout_async(&c, "aad-team-1", "29:1x", "msteams:19:abc@thread.tacv2", &why));
    assert_int_equal(why, ROLLOUT_OFF);
    config_free(&c);
    /* true: everyone async anyway; the list changes nothing. */
    load(&c, "true", "aad-team-1");
    assert_true(rollout_async(&c, "someone", "29:1x", NULL, NULL));
    config_free(&c);
}

/*
 * The share of many ids of each shape lands within half a point of N for
 * every N, every bucket holds close to 1 %, and 2,000 users (the integration
 * test's count) at 30 % land well inside 25-35 %.
 */
static void test_spread(void **state)
{
    static const unsigned shares[] = {1, 5, 10, 25, 30, 50, 75, 90, 99};
    char id[64];

    for (int shape = 0; shape < 3; shape++) {
        unsigned buckets[100] = {0}, below = 0;
        uint64_t seed = 42 + (uint64_t)shape;

        for (unsigned i = 0; i < MANY; i++) {
            make_id(shape, i, &seed, id, sizeof(id));
            buckets[rollout_bucket(id)]++;
            if (i == FEW - 1) {
                for (unsigned b = 0; b < 30; b++)
                    below += buckets[b];
                if (below < FEW * 27 / 100 || below > FEW * 33 / 100)
                    fail_msg("shape %d: %u of %u first users below 30", shape, below, FEW);
            }
        }
        for (unsigned b = 0; b < 100; b++) {
            if (buckets[b] < MANY / 100 * 85 / 100 || buckets[b] > MANY / 100 * 115 / 100)
                fail_msg("shape %d: bucket %u holds %u of %u", shape, b, buckets[b], MANY);
        }
        for (size_t k = 0; k < ARRAY_SIZE(shares); k++) {
            unsigned n = 0;
            for (unsigned b = 0; b < shares[k]; b++)
                n += buckets[b];
            if (n * 1000ull < (shares[k] * 10ull - 5) * (uint64_t)MANY)
                fail_msg("shape %d: %u%% gave %u of %u", shape, shares[k], n, MANY);
            if (n * 1000ull > (shares[k] * 10ull + 5) * (uint64_t)MANY)
                fail_msg("shape %d: %u%% gave %u of %u", shape, shares[k], n, MANY);
        }
    }
}

/* Raising N moves users from sync to async only, never back (SPEC §2). */
static void test_raising_never_moves_back(void **state)
{
    struct config lo, hi;
    char id[64];
    uint64_t seed = 7;

    for (unsigned n = 0; n < 100; n += 9) {
        char a[8], b[8];
        snprintf(a, sizeof(a), "%u%%", n);
        snprintf(b, sizeof(b), "%u%%", n + 9 > 100 ? 100 : n + 9);
        load(&lo, a, NULL);
        load(&hi, b, NULL);
        for (unsigned i = 0; i < FEW; i++) {
            make_id((int)(i % 3), i, &seed, id, sizeof(id));
            if (rollout_async(&lo, id, id, NULL, NULL))
                assert_true(rollout_async(&hi, id, id, NULL, NULL));
            /* and the same user the same way every time */
            assert_int_equal(rollout_async(&lo, id, id, NULL, NULL),
                             rollout_async(&lo, id, id, NULL, NULL));
        }
        config_free(&lo);
        config_free(&hi);
    }
}

static void test_why_names(void **state)
{
    assert_string_equal(rollout_why_name(ROLLOUT_OFF), "off");
    assert_string_equal(rollout_why_name(ROLLOUT_ALLOWED), "allowed");
    assert_string_equal(rollout_why_name(ROLLOUT_IN_SHARE), "in_share");
    assert_string_equal(rollout_why_name(ROLLOUT_OUTSIDE), "outside");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_buckets),
        cmocka_unit_test(test_user_id_prefers_aad),
        cmocka_unit_test(test_share_boundary),
        cmocka_unit_test(test_true_false_and_ends),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_raising_never_moves_back),
        cmocka_unit_test(test_why_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
