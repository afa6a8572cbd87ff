/* hash_table.c: see hash_table.h. */
#include "core/hash_table.h"

#include "core/buf.h"

static struct hash_node **bucket(const struct hash_table *t, uint64_t hash)
{
    return &t->buckets[hash & (t->n_buckets - 1)];
}

void hash_table_init(struct hash_table *t, size_t min_buckets)
{
    size_t n = 1;

    while (n < min_buckets)
        n *= 2;
    t->buckets = xcalloc(n, sizeof(*t->buckets));
    t->n_buckets = n;
    t->count = 0;
}

void hash_table_free(struct hash_table *t)
{
    xfree(t->buckets);
    t->buckets = NULL;
    t->n_buckets = 0;
    t->count = 0;
}

/* Doubles the buckets, relinking every node under its kept hash. */
static void grow(struct hash_table *t)
{
    struct hash_table bigger = {xcalloc(t->n_buckets * 2, sizeof(*t->buckets)), t->n_buckets * 2,
                                t->count};
    size_t i;

    for (i = 0; i < t->n_buckets; i++) {
        struct hash_node *n = t->buckets[i], *next;

        for (; n; n = next) {
            struct hash_node **b = bucket(&bigger, n->hash);

            next = n->next;
            n->next = *b;
            *b = n;
        }
    }
    xfree(t->buckets);
    *t = bigger;
}

void hash_table_insert(struct hash_table *t, struct hash_node *node, uint64_t hash)
{
    struct hash_node **b;

    if (t->count >= t->n_buckets)
        grow(t);
    b = bucket(t, hash);
    node->hash = hash;
    node->next = *b;
    *b = node;
    t->count++;
}

void hash_table_remove(struct hash_table *t, struct hash_node *node)
{
    struct hash_node **p = bucket(t, node->hash);

    while (*p && *p != node)
        p = &(*p)->next;
    if (!*p)
        return;
    *p = node->next;
    node->next = NULL;
    t->count--;
}

struct hash_node *hash_table_find(const struct hash_table *t, uint64_t hash)
{
    struct hash_node *n = *bucket(t, hash);

    while (n && n->hash != hash)
        n = n->next;
    return n;
}

struct hash_node *hash_table_find_next(const struct hash_node *node)
{
    struct hash_node *n = node->next;

    while (n && n->hash != node->hash)
        n = n->next;
    return n;
}
