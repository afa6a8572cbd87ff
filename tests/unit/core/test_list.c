/* test_list.c: the intrusive list, through owners recovered with container_of. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/list.h"

struct item {
    int id;
    struct list_node node;
};

static int item_id(struct list_node *n)
{
    return container_of(n, struct item, node)->id;
}

/* Walks head both ways and checks it holds exactly want[0..n) in order. */
static void expect_order(struct list_node *head, const int *want, size_t n)
{
    struct list_node *pos;
    size_t i = 0;

    list_for_each (pos, head) {
        assert_true(i < n);
        assert_int_equal(item_id(pos), want[i]);
        i++;
    }
    assert_int_equal(i, n);
    /* The back links must mirror the forward ones. */
    for (pos = head->prev; pos != head; pos = pos->prev) {
        assert_true(i > 0);
        i--;
        assert_int_equal(item_id(pos), want[i]);
    }
    assert_int_equal(i, 0);
}

static void empty_list_has_no_first_or_last(void **state)
{
    struct list_node head;
    struct list_node *pos;
    int visits = 0;

    list_init(&head);
    assert_true(list_empty(&head));
    assert_null(list_first(&head));
    assert_null(list_last(&head));
    list_for_each (pos, &head)
        visits++;
    assert_int_equal(visits, 0);
}

static void tail_inserts_keep_fifo_order(void **state)
{
    struct item it[3] = {{.id = 1}, {.id = 2}, {.id = 3}};
    struct list_node head;
    const int want[] = {1, 2, 3};

    list_init(&head);
    for (size_t i = 0; i < ARRAY_SIZE(it); i++)
        list_insert_tail(&head, &it[i].node);
    assert_false(list_empty(&head));
    assert_ptr_equal(list_first(&head), &it[0].node);
    assert_ptr_equal(list_last(&head), &it[2].node);
    expect_order(&head, want, ARRAY_SIZE(want));
}

static void head_inserts_put_newest_first(void **state)
{
    struct item it[3] = {{.id = 1}, {.id = 2}, {.id = 3}};
    struct list_node head;
    const int want[] = {3, 2, 1};

    list_init(&head);
    for (size_t i = 0; i < ARRAY_SIZE(it); i++)
        list_insert_head(&head, &it[i].node);
    assert_ptr_equal(list_first(&head), &it[2].node);
    assert_ptr_equal(list_last(&head), &it[0].node);
    expect_order(&head, want, ARRAY_SIZE(want));
}

static void insert_after_a_member_goes_between(void **state)
{
    struct item it[3] = {{.id = 1}, {.id = 2}, {.id = 3}};
    struct list_node head;
    const int want[] = {1, 2, 3};

    list_init(&head);
    list_insert_tail(&head, &it[0].node);
    list_insert_tail(&head, &it[2].node);
    list_insert_after(&it[0].node, &it[1].node);
    expect_order(&head, want, ARRAY_SIZE(want));
}

static void remove_first_middle_last(void **state)
{
    struct item it[4] = {{.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
    struct list_node head;
    const int after_middle[] = {1, 3, 4};
    const int after_first[] = {3, 4};
    const int after_last[] = {3};

    list_init(&head);
    for (size_t i = 0; i < ARRAY_SIZE(it); i++)
        list_insert_tail(&head, &it[i].node);
    list_remove(&it[1].node);
    expect_order(&head, after_middle, ARRAY_SIZE(after_middle));
    list_remove(&it[0].node);
    expect_order(&head, after_first, ARRAY_SIZE(after_first));
    list_remove(&it[3].node);
    expect_order(&head, after_last, ARRAY_SIZE(after_last));
    list_remove(&it[2].node);
    assert_true(list_empty(&head));
    assert_null(list_first(&head));
}

/* A removed node points at itself, so removing it again must not touch the list. */
static void double_remove_is_harmless(void **state)
{
    struct item it[2] = {{.id = 1}, {.id = 2}};
    struct list_node head;
    const int want[] = {2};

    list_init(&head);
    list_insert_tail(&head, &it[0].node);
    list_insert_tail(&head, &it[1].node);
    list_remove(&it[0].node);
    assert_ptr_equal(it[0].node.next, &it[0].node);
    assert_ptr_equal(it[0].node.prev, &it[0].node);
    list_remove(&it[0].node);
    expect_order(&head, want, ARRAY_SIZE(want));
}

/* An LRU touch: remove then insert at the head moves a member to the front. */
static void remove_then_insert_head_moves_to_front(void **state)
{
    struct item it[3] = {{.id = 1}, {.id = 2}, {.id = 3}};
    struct list_node head;
    const int want[] = {3, 1, 2};

    list_init(&head);
    for (size_t i = 0; i < ARRAY_SIZE(it); i++)
        list_insert_tail(&head, &it[i].node);
    list_remove(&it[2].node);
    list_insert_head(&head, &it[2].node);
    expect_order(&head, want, ARRAY_SIZE(want));
}

/* Heap items freed inside the loop: ASan would catch a read of the freed node. */
static void safe_iteration_may_free_the_current_node(void **state)
{
    struct list_node head, *pos, *tmp;
    const int want[] = {1, 3, 5};
    int visited = 0;

    list_init(&head);
    for (int i = 0; i < 6; i++) {
        struct item *it = xcalloc(1, sizeof(*it));

        it->id = i;
        list_insert_tail(&head, &it->node);
    }
    list_for_each_safe (pos, tmp, &head) {
        visited++;
        if (item_id(pos) % 2 == 0) {
            list_remove(pos);
            xfree(container_of(pos, struct item, node));
        }
    }
    assert_int_equal(visited, 6);
    expect_order(&head, want, ARRAY_SIZE(want));
    list_for_each_safe (pos, tmp, &head) {
        list_remove(pos);
        xfree(container_of(pos, struct item, node));
    }
    assert_true(list_empty(&head));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_list_has_no_first_or_last),
        cmocka_unit_test(tail_inserts_keep_fifo_order),
        cmocka_unit_test(head_inserts_put_newest_first),
        cmocka_unit_test(insert_after_a_member_goes_between),
        cmocka_unit_test(remove_first_middle_last),
        cmocka_unit_test(double_remove_is_harmless),
        cmocka_unit_test(remove_then_insert_head_moves_to_front),
        cmocka_unit_test(safe_iteration_may_free_the_current_node),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
