/* test_hash_table.c: the intrusive hash table, through owners recovered with container_of. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/hash.h"
#include "core/hash_table.h"

struct item {
    char key[16];
    struct hash_node node;
};

/* The owner of key, found the way callers do: walk one hash, compare keys. */
static struct item *lookup(const struct hash_table *t, const char *key, uint64_t hash)
{
    struct hash_node *n;

    for (n = hash_table_find(t, hash); n; n = hash_table_find_next(n)) {
        struct item *it = container_of(n, struct item, node);

        if (strcmp(it->key, key) == 0)
            return it;
    }
    return NULL;
}

static void buckets_round_up_to_a_power_of_two(void **state)
{
    struct hash_table t;

    hash_table_init(&t, 0);
    assert_int_equal(t.n_buckets, 1);
    hash_table_free(&t);
    hash_table_init(&t, 100);
    assert_int_equal(t.n_buckets, 128);
    assert_int_equal(t.count, 0);
    assert_null(hash_table_find(&t, 42));
    hash_table_free(&t);
    assert_null(t.buckets);
}

static void owners_are_found_by_their_keys(void **state)
{
    struct item it[3] = {{.key = "1-0"}, {.key = "2-0"}, {.key = "3-0"}};
    struct hash_table t;
    size_t i;

    hash_table_init(&t, 8);
    for (i = 0; i < ARRAY_SIZE(it); i++)
        hash_table_insert(&t, &it[i].node, hash_fnv1a(it[i].key));
    assert_int_equal(t.count, 3);
    for (i = 0; i < ARRAY_SIZE(it); i++)
        assert_ptr_equal(lookup(&t, it[i].key, hash_fnv1a(it[i].key)), &it[i]);
    assert_null(lookup(&t, "4-0", hash_fnv1a("4-0")));
    hash_table_free(&t);
}

/* Different keys under one hash share a chain; each is still told apart by its key. */
static void colliding_keys_share_a_chain(void **state)
{
    struct item a = {.key = "a"}, b = {.key = "b"}, c = {.key = "c"};
    struct hash_table t;
    struct hash_node *n;
    int under_7 = 0;

    hash_table_init(&t, 4);
    hash_table_insert(&t, &a.node, 7);
    hash_table_insert(&t, &b.node, 7);
    hash_table_insert(&t, &c.node, 7 + 4); /* same bucket, another hash */
    for (n = hash_table_find(&t, 7); n; n = hash_table_find_next(n))
        under_7++;
    assert_int_equal(under_7, 2);
    assert_ptr_equal(lookup(&t, "a", 7), &a);
    assert_ptr_equal(lookup(&t, "b", 7), &b);
    assert_null(lookup(&t, "c", 7));
    assert_ptr_equal(lookup(&t, "c", 11), &c);
    hash_table_remove(&t, &a.node);
    assert_null(lookup(&t, "a", 7));
    assert_ptr_equal(lookup(&t, "b", 7), &b);
    assert_ptr_equal(lookup(&t, "c", 11), &c);
    assert_int_equal(t.count, 2);
    hash_table_free(&t);
}

/* Growing relinks every node: all stay findable, and the buckets keep up with the count. */
static void growth_keeps_every_node(void **state)
{
    enum { N = 1000 };
    static struct item it[N];
    struct hash_table t;
    size_t i;

    hash_table_init(&t, 4);
    for (i = 0; i < N; i++) {
        snprintf(it[i].key, sizeof(it[i].key), "%zu-0", i);
        hash_table_insert(&t, &it[i].node, hash_fnv1a(it[i].key));
        assert_true(t.count <= t.n_buckets);
    }
    assert_int_equal(t.count, N);
    assert_int_equal(t.n_buckets, 1024);
    for (i = 0; i < N; i++)
        assert_ptr_equal(lookup(&t, it[i].key, hash_fnv1a(it[i].key)), &it[i]);
    for (i = 0; i < N; i += 2)
        hash_table_remove(&t, &it[i].node);
    assert_int_equal(t.count, N / 2);
    for (i = 0; i < N; i++)
        assert_ptr_equal(lookup(&t, it[i].key, hash_fnv1a(it[i].key)), i % 2 ? &it[i] : NULL);
    hash_table_free(&t);
}

/* Removing twice, or a node never linked, changes nothing. */
static void removing_an_unlinked_node_is_harmless(void **state)
{
    struct item a = {.key = "a"}, b = {.key = "b"}, stranger = {.key = "a"};
    struct hash_table t;

    hash_table_init(&t, 2);
    hash_table_insert(&t, &a.node, 1);
    hash_table_insert(&t, &b.node, 1);
    stranger.node.hash = 1;
    hash_table_remove(&t, &stranger.node);
    assert_int_equal(t.count, 2);
    hash_table_remove(&t, &b.node);
    hash_table_remove(&t, &b.node);
    assert_int_equal(t.count, 1);
    assert_ptr_equal(lookup(&t, "a", 1), &a);
    hash_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buckets_round_up_to_a_power_of_two),
        cmocka_unit_test(owners_are_found_by_their_keys),
        cmocka_unit_test(colliding_keys_share_a_chain),
        cmocka_unit_test(growth_keeps_every_node),
        cmocka_unit_test(removing_an_unlinked_node_is_harmless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
