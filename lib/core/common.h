/*
 * common.h: what every module of digestd shares. The error enum (our own
 * negative codes, disjoint from libuv's UV_E* which pass through unchanged),
 * container_of, ARRAY_SIZE and the compiler attributes we rely on. Nothing
 * here owns memory or handles.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* A numeric macro's value as a string literal: DG_STRINGIFY(FOO_MS) is "2000". */
#define DG_STRINGIFY(x) DG_STRINGIFY_(x)
#define DG_STRINGIFY_(x) #x

#define WARN_UNUSED __attribute__((warn_unused_result))
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/*
 * Our own error codes. libuv's UV_E* values are negated errno values (small
 * magnitudes), so ours start far below them and the two never collide.
 * dg_strerror() names both kinds.
 */
enum dg_error {
    DG_OK = 0,
    DG_ERR_TOO_LARGE = -30001,   /* a capped buffer or field would overflow */
    DG_ERR_BAD_JSON = -30002,    /* not a JSON object, trailing bytes, too deep */
    DG_ERR_FIELD = -30003,       /* a required field is missing or of the wrong type */
    DG_ERR_CONFIG = -30004,      /* a configuration value is invalid */
    DG_ERR_UNAVAILABLE = -30005, /* a dependency (Redis, upstream) cannot be reached */
    DG_ERR_TIMEOUT = -30006,     /* our own timer fired before the answer came */
    DG_ERR_PROTOCOL = -30007,    /* a peer answered something we did not expect */
    DG_ERR_CLOSED = -30008,      /* the object is shutting down; the op was cancelled */
    DG_ERR_INVALID = -30009,     /* an argument is out of range or malformed */
};

/* Text for any error this codebase returns: ours, or a UV_E* code. */
const char *dg_strerror(int err);
