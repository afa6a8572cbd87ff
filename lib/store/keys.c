/*
 * keys.c: key names (see keys.h). Every name is "{P}:<kind>" followed by
 * zero, one or two ":"-separated parts; the kinds are spelled here and
 * nowhere else in C.
 */
#include "store/keys.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/dec.h"

#define KIND_STREAM "requests"
#define KIND_DEAD "dead"
#define KIND_REQUEST "req"
#define KIND_CONV "conv"
#define KIND_DEDUP "dedup"
#define KIND_PROCS "procs"
#define KIND_PROC "proc"
#define KIND_MINUTE "minute"
#define KIND_SCHEMA "schema"

/* "{P}:kind", then ":a" and ":b" for each part that is not NULL. */
static int append(struct buf *b, const char *prefix, const char *kind, const char *a,
                  const char *bb)
{
    int rc = buf_append(b, "{", 1);

    rc |= buf_append_str(b, prefix);
    rc |= buf_append(b, "}:", 2);
    rc |= buf_append_str(b, kind);
    if (a)
        rc |= buf_append(b, ":", 1) | buf_append_str(b, a);
    if (bb)
        rc |= buf_append(b, ":", 1) | buf_append_str(b, bb);
    /* Each part failed or not as a whole: one code is enough. */
    return rc ? DG_ERR_TOO_LARGE : 0;
}

/* An owned name; the cap is the exact size, so the append cannot fail. */
static char *build(const char *prefix, const char *kind, const char *a, const char *bb)
{
    size_t n = strlen(prefix) + strlen(kind) + 5 + (a ? strlen(a) : 0) + (bb ? strlen(bb) : 0);
    struct buf b;

    buf_init(&b, n);
    if (append(&b, prefix, kind, a, bb) != 0)
        abort();
    return buf_take(&b);
}

char *keys_stream(const char *prefix)
{
    return build(prefix, KIND_STREAM, NULL, NULL);
}

char *keys_schema(const char *prefix)
{
    return build(prefix, KIND_SCHEMA, NULL, NULL);
}

char *keys_dead(const char *prefix)
{
    return build(prefix, KIND_DEAD, NULL, NULL);
}

char *keys_request(const char *prefix, const char *request_id)
{
    return build(prefix, KIND_REQUEST, request_id, NULL);
}

char *keys_request_prefix(const char *prefix)
{
    /* "{P}:req" + ":" + "": exactly what keys_request puts before an id. */
    return build(prefix, KIND_REQUEST, "", NULL);
}

char *keys_conv(const char *prefix, const char *conv_key)
{
    return build(prefix, KIND_CONV, conv_key, NULL);
}

char *keys_dedup(const char *prefix, const char *conv_key, const char *activity_id)
{
    return build(prefix, KIND_DEDUP, conv_key, activity_id);
}

char *keys_procs(const char *prefix)
{
    return build(prefix, KIND_PROCS, NULL, NULL);
}

char *keys_proc(const char *prefix, const char *name)
{
    return build(prefix, KIND_PROC, name, NULL);
}

char *keys_minute(const char *prefix, uint64_t minute)
{
    char m[DEC_U64_SIZE];

    dec_u64(m, minute);
    return build(prefix, KIND_MINUTE, m, NULL);
}

int keys_append_minute(struct buf *b, const char *prefix, uint64_t minute)
{
    char m[DEC_U64_SIZE];

    dec_u64(m, minute);
    return append(b, prefix, KIND_MINUTE, m, NULL);
}

char *keys_proc_prefix(const char *prefix)
{
    return build(prefix, KIND_PROC, "", NULL);
}

char *keys_minute_prefix(const char *prefix)
{
    return build(prefix, KIND_MINUTE, "", NULL);
}

int keys_append_stream(struct buf *b, const char *prefix)
{
    return append(b, prefix, KIND_STREAM, NULL, NULL);
}

int keys_append_request(struct buf *b, const char *prefix, const char *request_id)
{
    return append(b, prefix, KIND_REQUEST, request_id, NULL);
}

int keys_append_conv(struct buf *b, const char *prefix, const char *conv_key)
{
    return append(b, prefix, KIND_CONV, conv_key, NULL);
}

int keys_append_dedup(struct buf *b, const char *prefix, const char *conv_key,
                      const char *activity_id)
{
    return append(b, prefix, KIND_DEDUP, conv_key, activity_id);
}
