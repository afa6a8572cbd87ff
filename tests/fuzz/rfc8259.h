/*
 * rfc8259.h: a small RFC 8259 checker for the differential fuzz targets
 * (fuzz_activity_diff.c, fuzz_digest_diff.c, fuzz_reply_diff.c): the verdict on a body that
 * must be one JSON object, and when it is not, the first byte no JSON text
 * could have there and what kind of violation that is, so that a target can
 * tell the refusals its scanner documents from any other. Pure; test code
 * only, linked into those targets.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the first violation is. */
enum rfc_class {
    RFC_OK,
    RFC_SYNTAX,  /* anything else: json-c refuses these too */
    RFC_DEPTH,   /* SPEC §3's nesting bound */
    RFC_SQUOTE,  /* a member name in single quotes */
    RFC_NUMBER,  /* a number outside RFC 8259 §6, NaN and Infinity included */
    RFC_CONTROL, /* a raw byte below 0x20 in a string */
    RFC_UTF8,    /* not UTF-8 by RFC 3629 */
};

struct rfc_verdict {
    size_t at; /* offset of the first violation (RFC_OK: unused) */
    enum rfc_class cls;
};

/*
 * data[0..size) as one object with white space around it. utf8: strings
 * must be UTF-8 by RFC 3629 (else bytes from 0x80 up pass unchecked).
 * max_depth: containers nest at most this deep (0: unchecked).
 */
struct rfc_verdict rfc8259_check(const uint8_t *data, size_t size, bool utf8, int max_depth);
