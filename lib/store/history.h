/*
 * history.h: the per-minute counts of SPEC §5, {P}:minute:<epoch minute>:
 * enqueued, delivered, failed, dead, sync, fallback, and the group's lag as
 * a worker last saw it in that minute, summed over every process and kept
 * 48 h. They are written inside the scripts that already run for each
 * request or job (LUA_MINUTE_ADD is prepended to them), so counting costs
 * no round trip. A request served while Redis is unreachable (a fallback)
 * cannot be counted that way: the process keeps it in a ledger and adds it
 * to the minute it happened in once Redis is back (history_flush).
 *
 * Minutes are epoch minutes of the writer's clock (wall ms / 60000).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

struct redis_conn;
struct store_cmd;

#define HISTORY_TTL_S 172800       /* 48 h, refreshed by every write to the minute */
#define HISTORY_MAX_MINUTES 2880   /* what a reader may ask for: the whole 48 h */
#define HISTORY_LEDGER_MINUTES 120 /* offline minutes a process keeps; older ones are dropped */

/* The fields of a minute's hash. */
#define HISTORY_F_ENQUEUED "enqueued"
#define HISTORY_F_DELIVERED "delivered"
#define HISTORY_F_FAILED "failed" /* a final failure */
#define HISTORY_F_DEAD "dead"     /* attempts exhausted */
#define HISTORY_F_SYNC "sync"
#define HISTORY_F_FALLBACK "fallback"
#define HISTORY_F_LAG "lag"

/*
 * Lua: minute_add(key, field, n) adds n to one count of a minute and keeps
 * the minute for 48 h after its last write. Prepended to each script that
 * counts, which then calls it once.
 */
/* clang-format off */
#define LUA_MINUTE_ADD                                                                           \
    "local function minute_add(key, field, n)\n"                                                 \
    "  redis.call('HINCRBY', key, field, n)\n"                                                   \
    "  redis.call('EXPIRE', key, " DG_STRINGIFY(HISTORY_TTL_S) ")\n"                             \
    "end\n"
/* clang-format on */

/* What a process counts while Redis is away. */
enum history_offline {
    HISTORY_OFFLINE_SYNC = 0, /* USE_ASYNC_DIGEST=false, served unrecorded */
    HISTORY_OFFLINE_FALLBACK, /* the async path was chosen, Redis was not there */
    HISTORY_OFFLINE_COUNT_,
};

struct history_slot {
    uint64_t minute;
    uint64_t n[HISTORY_OFFLINE_COUNT_];
};

/* Offline counts by minute, oldest first. A plain value: embed it, zero it to start. */
struct history_ledger {
    struct history_slot slot[HISTORY_LEDGER_MINUTES];
    size_t len;
    uint64_t dropped; /* counts of minutes pushed out by newer ones */
};

typedef void (*history_flush_cb)(int err, void *data);

/* The epoch minute of a wall-clock time in ms. */
uint64_t history_minute(uint64_t wall_ms);

/* Counts n of kind in minute (kept in minute order; the oldest goes when full). */
void history_ledger_add(struct history_ledger *l, uint64_t minute, enum history_offline kind,
                        uint64_t n);

/*
 * Adds everything in l to Redis in one script and empties l at once; when
 * the script fails, its counts go back into l for the next try. l is
 * borrowed until cb, which runs exactly once (redis.h rules); nothing is
 * sent (and 0 returned, no callback) when l is empty.
 */
int history_flush(struct redis_conn *conn, const char *prefix, struct history_ledger *l,
                  history_flush_cb cb, void *data) WARN_UNUSED;
