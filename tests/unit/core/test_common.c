/* test_common.c: the macros every module relies on (common.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/common.h"

#define SOME_MS 2000

/* The macro's value, not its name: an argv that says "BLOCK", DG_STRINGIFY(X) sends the number. */
static void stringify_expands_its_argument(void **state)
{
    assert_string_equal(DG_STRINGIFY(SOME_MS), "2000");
    assert_string_equal(DG_STRINGIFY(SOME_MS + 1), "2000 + 1");
}

struct owner {
    int before;
    int member;
};

static void container_of_and_array_size(void **state)
{
    struct owner o;
    int list[7];

    assert_ptr_equal(container_of(&o.member, struct owner, member), &o);
    assert_int_equal(ARRAY_SIZE(list), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stringify_expands_its_argument),
        cmocka_unit_test(container_of_and_array_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
