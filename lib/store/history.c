/*
 * history.c: the offline ledger and its flush (see history.h). The counts
 * that scripts write as they run live in those scripts, beside their
 * callers; this file only holds what a process adds later.
 */
#include "store/history.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "store/keys.h"
#include "store/redis.h"
#include "store/script.h"

/* KEYS: minutes; ARGV: per minute its sync and fallback counts. */
static const char add_lua[] = LUA_MINUTE_ADD
    "for i = 1, #KEYS do\n"
    "  if ARGV[2 * i - 1] ~= '0' then minute_add(KEYS[i], '" HISTORY_F_SYNC
    "', ARGV[2 * i - 1]) end\n"
    "  if ARGV[2 * i] ~= '0' then minute_add(KEYS[i], '" HISTORY_F_FALLBACK "', ARGV[2 * i]) end\n"
    "end\n"
    "return #KEYS\n";

const struct store_script history_add_script = {"history_add", add_lua, sizeof(add_lua) - 1};

uint64_t history_minute(uint64_t wall_ms)
{
    return wall_ms / 60000;
}

/* The slot of minute, made (in order) when missing; NULL when older than all of a full ledger. */
static struct history_slot *slot_for(struct history_ledger *l, uint64_t minute)
{
    size_t i = l->len;

    while (i > 0 && l->slot[i - 1].minute > minute)
        i--;
    if (i > 0 && l->slot[i - 1].minute == minute)
        return &l->slot[i - 1];
    if (l->len == HISTORY_LEDGER_MINUTES) {
        if (i == 0)
            return NULL;
        /* Full: the oldest minute makes room. */
        for (size_t k = 0; k < HISTORY_OFFLINE_COUNT_; k++)
            l->dropped += l->slot[0].n[k];
        memmove(&l->slot[0], &l->slot[1], (l->len - 1) * sizeof(l->slot[0]));
        l->len--;
        i--;
    }
    memmove(&l->slot[i + 1], &l->slot[i], (l->len - i) * sizeof(l->slot[0]));
    memset(&l->slot[i], 0, sizeof(l->slot[i]));
    l->slot[i].minute = minute;
    l->len++;
    return &l->slot[i];
}

void history_ledger_add(struct history_ledger *l, uint64_t minute, enum history_offline kind,
                        uint64_t n)
{
    struct history_slot *s = slot_for(l, minute);

    if (s)
        s->n[kind] += n;
    else
        l->dropped += n;
}

/* The counts in flight, put back into the ledger if Redis did not take them. */
struct flush_op {
    struct history_ledger *ledger;
    history_flush_cb cb;
    void *data;
    size_t len;
    struct history_slot slot[HISTORY_LEDGER_MINUTES];
};

static void on_flushed(int err, redisReply *r, void *data)
{
    struct flush_op *op = data;

    err = redis_reply_status(err, r);
    for (size_t i = 0; err && i < op->len; i++)
        for (int k = 0; k < HISTORY_OFFLINE_COUNT_; k++)
            history_ledger_add(op->ledger, op->slot[i].minute, k, op->slot[i].n[k]);
    op->cb(err, op->data);
    xfree(op);
}

int history_flush(struct redis_conn *conn, const char *prefix, struct history_ledger *l,
                  history_flush_cb cb, void *data)
{
    const char *argv[3 + 3 * HISTORY_LEDGER_MINUTES];
    char *keys[HISTORY_LEDGER_MINUTES];
    char counts[2 * HISTORY_LEDGER_MINUTES][24], numkeys[16];
    struct flush_op *op;
    size_t i;
    int err;

    if (l->len == 0)
        return 0;
    op = xcalloc(1, sizeof(*op));
    op->ledger = l;
    op->cb = cb;
    op->data = data;
    op->len = l->len;
    memcpy(op->slot, l->slot, l->len * sizeof(l->slot[0]));
    snprintf(numkeys, sizeof(numkeys), "%zu", op->len);
    argv[0] = "EVAL";
    argv[1] = add_lua;
    argv[2] = numkeys;
    for (i = 0; i < op->len; i++) {
        keys[i] = keys_minute(prefix, op->slot[i].minute);
        argv[3 + i] = keys[i];
        snprintf(counts[2 * i], sizeof(counts[0]), "%" PRIu64, op->slot[i].n[HISTORY_OFFLINE_SYNC]);
        snprintf(counts[2 * i + 1], sizeof(counts[0]), "%" PRIu64,
                 op->slot[i].n[HISTORY_OFFLINE_FALLBACK]);
        argv[3 + op->len + 2 * i] = counts[2 * i];
        argv[4 + op->len + 2 * i] = counts[2 * i + 1];
    }
    err = redis_conn_command(conn, 0, on_flushed, op, (int)(3 + 3 * op->len), argv, NULL);
    for (i = 0; i < op->len; i++)
        xfree(keys[i]);
    if (err)
        xfree(op); /* nothing sent: the ledger still holds it all */
    else
        l->len = 0;
    return err;
}
