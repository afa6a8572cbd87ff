/* test_hash.c: FNV-1a against the published test vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/hash.h"

/* The vectors of the FNV reference (draft-eastlake-fnv, FNV-1a 64 bit). */
static void published_vectors(void **state)
{
    assert_true(hash_fnv1a("") == 0xcbf29ce484222325ull);
    assert_true(hash_fnv1a("a") == 0xaf63dc4c8601ec8cull);
    assert_true(hash_fnv1a("foobar") == 0x85944171f73967e8ull);
}

/* Bytes above 0x7f hash as unsigned: a signed char would give another value. */
static void high_bytes_are_unsigned(void **state)
{
    assert_true(hash_fnv1a("\xff\x80") == 0x0a9a2607b6f6e56aull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(published_vectors),
        cmocka_unit_test(high_bytes_are_unsigned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
