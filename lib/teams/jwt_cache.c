/*
 * jwt_cache.c: see jwt_cache.h. A fixed array of slots filled round-robin
 * (the oldest stored is the one replaced), and a bucket array of slot
 * chains, twice as many buckets as slots, so chains stay short. The hash is
 * only a finder: a hit needs the same length and the same bytes. Only
 * tokens with a good signature get in, so nobody can choose what fills a
 * chain without Microsoft's key.
 */
#include "teams/jwt_cache.h"

#include <string.h>

#include "core/buf.h"

#define NO_SLOT UINT32_MAX

struct slot {
    char *auth; /* owned Authorization value; NULL: the slot is free */
    size_t len;
    uint64_t hash;
    uint32_t next;     /* the next slot of its bucket, NO_SLOT at the end */
    struct jwt claims; /* owned strings; no signing input, no signature */
    unsigned char fp[JWKS_FINGERPRINT_LEN];
};

struct jwt_cache {
    struct slot *slots;
    size_t n_slots;
    uint32_t *buckets; /* head slot of each chain */
    size_t mask;       /* buckets - 1 */
    size_t victim;     /* the slot the next put fills */
    struct jwt_cache_stats st;
};

/* Eight bytes at a time, each word mixed in by a multiply and a shift. */
static uint64_t token_hash(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, s + i, len - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

struct jwt_cache *jwt_cache_new(size_t max_entries)
{
    struct jwt_cache *c = xcalloc(1, sizeof(*c));
    size_t nb = 1;

    if (max_entries == 0)
        max_entries = 1;
    while (nb < 2 * max_entries)
        nb <<= 1;
    c->slots = xcalloc(max_entries, sizeof(*c->slots));
    c->n_slots = max_entries;
    c->buckets = xmalloc(nb * sizeof(*c->buckets));
    memset(c->buckets, 0xff, nb * sizeof(*c->buckets));
    c->mask = nb - 1;
    return c;
}

static void claims_free(struct jwt *t)
{
    xfree(t->alg);
    xfree(t->kid);
    xfree(t->iss);
    xfree(t->aud);
    xfree(t->serviceurl);
    memset(t, 0, sizeof(*t));
}

/* Unlinks slot i from its chain and frees what it holds. */
static void slot_drop(struct jwt_cache *c, uint32_t i)
{
    struct slot *s = &c->slots[i];
    uint32_t *link = &c->buckets[s->hash & c->mask];

    while (*link != i)
        link = &c->slots[*link].next;
    *link = s->next;
    xfree(s->auth);
    claims_free(&s->claims);
    memset(s, 0, sizeof(*s));
    c->st.entries--;
}

void jwt_cache_clear(struct jwt_cache *c)
{
    for (size_t i = 0; i < c->n_slots; i++) {
        if (c->slots[i].auth)
            slot_drop(c, (uint32_t)i);
    }
}

void jwt_cache_free(struct jwt_cache *c)
{
    if (!c)
        return;
    jwt_cache_clear(c);
    xfree(c->slots);
    xfree(c->buckets);
    xfree(c);
}

static uint32_t find(const struct jwt_cache *c, const char *auth, size_t len, uint64_t h)
{
    uint32_t i;

    for (i = c->buckets[h & c->mask]; i != NO_SLOT; i = c->slots[i].next) {
        const struct slot *s = &c->slots[i];

        if (s->hash == h && s->len == len && memcmp(s->auth, auth, len) == 0)
            return i;
    }
    return NO_SLOT;
}

bool jwt_cache_check(struct jwt_cache *c, const char *authorization, size_t len,
                     const struct jwks *keys, const struct jwt_expect *e, enum jwt_verdict *v,
                     const char **why)
{
    uint32_t i = find(c, authorization, len, token_hash(authorization, len));
    const struct slot *s;
    bool stale = false;

    if (i == NO_SLOT) {
        c->st.misses++;
        return false;
    }
    s = &c->slots[i];
    /* Its lifetime is over: jwt_verify answers "expired" from here on, and so
     * would the entry; dropping it frees the slot for a token still in use. */
    if (s->claims.exp <= (double)(e->now_s - e->leeway_s)) {
        slot_drop(c, i);
        c->st.dropped++;
        c->st.misses++;
        return false;
    }
    *v = jwt_reverify(&s->claims, s->fp, keys, e, &stale, why);
    /* The kid is gone or names other numbers: what that key verified is void. */
    if (stale || *v == JWT_UNKNOWN_KID) {
        slot_drop(c, i);
        c->st.dropped++;
        c->st.misses++;
        return false;
    }
    c->st.hits++;
    return true;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void jwt_cache_put(struct jwt_cache *c, const char *authorization, size_t len, const struct jwt *t,
                   const struct jwks *keys)
{
    const unsigned char *fp = jwt_key_fingerprint(t, keys);
    uint64_t h = token_hash(authorization, len);
    uint32_t i;
    struct slot *s;

    if (!fp || len == 0 || find(c, authorization, len, h) != NO_SLOT)
        return;
    i = (uint32_t)c->victim;
    c->victim = (c->victim + 1) % c->n_slots;
    if (c->slots[i].auth)
        slot_drop(c, i);
    s = &c->slots[i];
    s->auth = xmalloc(len);
    memcpy(s->auth, authorization, len);
    s->len = len;
    s->hash = h;
    s->claims.alg = dup_or_null(t->alg);
    s->claims.kid = dup_or_null(t->kid);
    s->claims.iss = dup_or_null(t->iss);
    s->claims.aud = dup_or_null(t->aud);
    s->claims.serviceurl = dup_or_null(t->serviceurl);
    s->claims.exp = t->exp;
    s->claims.nbf = t->nbf;
    s->claims.has_exp = t->has_exp;
    s->claims.has_nbf = t->has_nbf;
    s->claims.bad_exp = t->bad_exp;
    s->claims.bad_nbf = t->bad_nbf;
    memcpy(s->fp, fp, JWKS_FINGERPRINT_LEN);
    s->next = c->buckets[h & c->mask];
    c->buckets[h & c->mask] = i;
    c->st.entries++;
    c->st.stored++;
}

void jwt_cache_get_stats(const struct jwt_cache *c, struct jwt_cache_stats *out)
{
    *out = c->st;
}
