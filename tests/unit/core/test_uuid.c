/* test_uuid.c: request ids are well-formed v4 UUIDs and do not repeat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/uuid.h"

static int cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void format_is_rfc4122_v4(void **state)
{
    char id[UUID_STR_LEN + 1];
    int i;
    for (i = 0; i < 1000; i++) {
        uuid_v4(id);
        assert_int_equal(strlen(id), 36);
        assert_int_equal(id[8], '-');
        assert_int_equal(id[13], '-');
        assert_int_equal(id[14], '4');
        assert_non_null(strchr("89ab", id[19]));
        assert_int_equal(strspn(id, "0123456789abcdef-"), 36);
    }
}

static void no_repeats_in_a_large_sample(void **state)
{
    enum { N = 100000 };
    char(*ids)[UUID_STR_LEN + 1] = calloc(N, sizeof(*ids));
    int i;
    assert_non_null(ids);
    for (i = 0; i < N; i++)
        uuid_v4(ids[i]);
    qsort(ids, N, sizeof(*ids), cmp);
    for (i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

/* Without a reseed the child would produce the parent's next id. */
static void forked_child_reseeds(void **state)
{
    char parent[UUID_STR_LEN + 1], child[UUID_STR_LEN + 1] = {0};
    int fds[2];
    pid_t pid;

    uuid_v4(parent); /* seeded */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uuid_v4(child);
        _exit(write(fds[1], child, UUID_STR_LEN) == UUID_STR_LEN ? 0 : 1);
    }
    uuid_v4(parent);
    assert_int_equal(read(fds[0], child, UUID_STR_LEN), UUID_STR_LEN);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    assert_string_not_equal(parent, child);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_is_rfc4122_v4),
        cmocka_unit_test(no_repeats_in_a_large_sample),
        cmocka_unit_test(forked_child_reseeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
