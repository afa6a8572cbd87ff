/*
 * content.h: the pure parts of digest-stub (SPEC §9): the upstream's
 * digest reply and small form/URL decoding (the Teams activity `say` sends
 * and the naming of cards live in lib/teams). No I/O and no
 * clock (times are passed in), so each is deterministic. Outputs go into a
 * caller's struct buf; inputs are borrowed.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/common.h"

struct json_object;

#define STUB_ITEMS_MAX 100

/*
 * Parses exactly len bytes as one strict JSON value (depth 64); a new
 * object (json_object_put), or NULL when the text is not JSON.
 */
struct json_object *stub_json_parse(const char *text, size_t len);

/* splitmix64: well-mixed deterministic numbers from a 64-bit state. */
uint64_t stub_rand_next(uint64_t *state);

/*
 * Appends {"audience","generated_at","items":[{"name","title","company",
 * "location","summary","url"}…]} with n_items candidates (at most
 * STUB_ITEMS_MAX). The same audience and seed always give the same items;
 * generated_at is copied verbatim.
 */
int stub_digest_json(const char *audience, uint64_t seed, unsigned n_items,
                     const char *generated_at, struct buf *out) WARN_UNUSED;

/*
 * Percent-decodes len bytes of s into out ('+' is kept: this is for paths).
 * DG_ERR_INVALID for a malformed escape or an encoded NUL.
 */
int stub_percent_decode(const char *s, size_t len, struct buf *out) WARN_UNUSED;

/*
 * Finds key in an application/x-www-form-urlencoded string (or a query
 * string) and appends its decoded value ('+' is a space) to out. Returns 0,
 * DG_ERR_FIELD when absent, or DG_ERR_INVALID for a malformed escape.
 */
int stub_form_get(const char *form, size_t len, const char *key, struct buf *out) WARN_UNUSED;
