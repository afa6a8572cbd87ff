/*
 * list.h: an intrusive, circular doubly linked list with a sentinel head.
 * A struct list_node is embedded in its owner, recovered with container_of;
 * the list never allocates or frees: nodes are owned by their containers.
 * An empty head and an unlinked node point at themselves, so unlinking
 * needs no branches and a second list_remove does nothing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct list_node {
    struct list_node *prev, *next;
};

/* Makes head an empty list, or node a detached one that is safe to remove. */
static inline void list_init(struct list_node *head)
{
    head->prev = head;
    head->next = head;
}

static inline bool list_empty(const struct list_node *head)
{
    return head->next == head;
}

/* Links node right after pos (pos may be the head or any member). */
static inline void list_insert_after(struct list_node *pos, struct list_node *node)
{
    node->prev = pos;
    node->next = pos->next;
    pos->next->prev = node;
    pos->next = node;
}

static inline void list_insert_head(struct list_node *head, struct list_node *node)
{
    list_insert_after(head, node);
}

static inline void list_insert_tail(struct list_node *head, struct list_node *node)
{
    list_insert_after(head->prev, node);
}

/*
 * Unlinks node from whatever list holds it and re-inits it, so removing it
 * again is harmless. The node must have been list_init'ed or inserted once:
 * a zeroed node has NULL links.
 */
static inline void list_remove(struct list_node *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    list_init(node);
}

/* The first / last member, NULL when the list is empty. */
static inline struct list_node *list_first(const struct list_node *head)
{
    return list_empty(head) ? NULL : head->next;
}

static inline struct list_node *list_last(const struct list_node *head)
{
    return list_empty(head) ? NULL : head->prev;
}

/* Visits every member, first to last; the body must not remove pos. */
#define list_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/*
 * Like list_for_each, but the member after pos is saved in tmp before the
 * body runs, so the body may remove (and free) pos, though not that member.
 */
#define list_for_each_safe(pos, tmp, head)                                                         \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)
