/*
 * hash_table.h: an intrusive chained hash table. A struct hash_node is
 * embedded in its owner and recovered with container_of, as with list.h;
 * the table allocates only its bucket array and never a node, so the
 * owners decide where their memory lives and when it goes. The table knows
 * hashes, not keys: a lookup walks the nodes under one hash and the caller
 * compares its own keys. The buckets double when the nodes outnumber them,
 * so a chain stays about one node long.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct hash_node {
    struct hash_node *next; /* the bucket's chain */
    uint64_t hash;          /* the owner's key hash, kept to regrow and to compare fast */
};

struct hash_table {
    struct hash_node **buckets;
    size_t n_buckets; /* a power of two */
    size_t count;     /* nodes linked */
};

/* An empty table of at least min_buckets buckets (rounded up to a power of two, at least 1). */
void hash_table_init(struct hash_table *t, size_t min_buckets);
/* Frees the bucket array. Nodes still linked are their owners' and are not touched. */
void hash_table_free(struct hash_table *t);

/*
 * Links node under hash (node must not be linked already). Keys are not
 * checked for uniqueness: look the key up first when it must be unique.
 */
void hash_table_insert(struct hash_table *t, struct hash_node *node, uint64_t hash);
/* Unlinks node; a node that is not in t is left as it is. */
void hash_table_remove(struct hash_table *t, struct hash_node *node);

/*
 * The first node linked under hash, or NULL; then hash_table_find_next()
 * gives the next node under the same hash, NULL after the last:
 *
 *   for (n = hash_table_find(t, h); n; n = hash_table_find_next(n))
 *       if (strcmp(container_of(n, struct owner, node)->key, key) == 0) …
 *
 * The loop body must not remove n.
 */
struct hash_node *hash_table_find(const struct hash_table *t, uint64_t hash);
struct hash_node *hash_table_find_next(const struct hash_node *node);
