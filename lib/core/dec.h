/*
 * dec.h: unsigned integers as decimal text, without printf. The hot paths
 * write a handful of numbers per webhook and per job (timestamps into Redis
 * arguments, Content-Length, attempt counts), and glibc's snprintf costs
 * about a thousand instructions for each (bench/RESULTS.md). Pure: the
 * caller owns the buffer, nothing is allocated.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Room for any uint64_t in decimal with its NUL: 20 digits + 1. */
#define DEC_U64_SIZE 21

/*
 * Writes v in decimal (no sign, no leading zeros; "0" for 0) and a NUL into
 * out, which has at least DEC_U64_SIZE bytes. Returns the number of digits.
 */
size_t dec_u64(char *out, uint64_t v);
