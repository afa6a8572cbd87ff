/*
 * keys.h: the names of every Redis key digestd uses (SPEC §5,
 * docs/store.md), built in this one place. P is DIGEST_PREFIX; the braces
 * are literal, so every key of a deployment shares the hash tag "{P}" and
 * a Redis Cluster keeps them on one slot (the scripts touch several at
 * once). Pure: no I/O.
 *
 * The char * builders return owned strings (xfree); the keys_append_*
 * forms append to a caller's buffer (no NUL added) for callers that pack
 * many keys into one argument block (queue.c).
 */
#pragma once

#include <stdint.h>

#include "core/common.h"

struct buf;

/* The one consumer group on {P}:requests; its consumers are named host:pid. */
#define KEYS_GROUP "workers"

/* {P}:requests, the job stream. */
char *keys_stream(const char *prefix);
/* {P}:schema, the version of the record fields and scripts in use (job_store.h). */
char *keys_schema(const char *prefix);
/* {P}:dead, the dead-letter stream. */
char *keys_dead(const char *prefix);
/* {P}:req:<request_id>, the audit record. */
char *keys_request(const char *prefix, const char *request_id);
/*
 * {P}:req: alone: what keys_request puts before the id, for a script that
 * finds an id in Redis and must name its record itself.
 */
char *keys_request_prefix(const char *prefix);
/* {P}:conv:<conv_key>, the conversation reference (conv_key "<channelId>:<conversation.id>"). */
char *keys_conv(const char *prefix, const char *conv_key);
/* {P}:dedup:<conv_key>:<activity_id>, the activity's first request id. */
char *keys_dedup(const char *prefix, const char *conv_key, const char *activity_id);
/* {P}:procs, the sorted set of process names by their last heartbeat. */
char *keys_procs(const char *prefix);
/* {P}:proc:<name>, one process's heartbeat (name "host:pid"). */
char *keys_proc(const char *prefix, const char *name);
/* {P}:minute:<epoch minute>, the counts of one minute across all processes. */
char *keys_minute(const char *prefix, uint64_t minute);
/*
 * What keys_proc and keys_minute put before the name or the minute, for a
 * script that learns those in Redis (a consumer's name, Redis's clock).
 */
char *keys_proc_prefix(const char *prefix);
char *keys_minute_prefix(const char *prefix);

/* The same names appended to b; DG_ERR_TOO_LARGE past b's cap (b may then hold part). */
int keys_append_stream(struct buf *b, const char *prefix) WARN_UNUSED;
int keys_append_request(struct buf *b, const char *prefix, const char *request_id) WARN_UNUSED;
int keys_append_conv(struct buf *b, const char *prefix, const char *conv_key) WARN_UNUSED;
int keys_append_dedup(struct buf *b, const char *prefix, const char *conv_key,
                      const char *activity_id) WARN_UNUSED;
int keys_append_minute(struct buf *b, const char *prefix, uint64_t minute) WARN_UNUSED;
