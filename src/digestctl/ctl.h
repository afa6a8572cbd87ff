/*
 * ctl.h: what digestctl's commands share (SPEC §7). One blocking Redis
 * connection (store/redis_sync.h) (a CLI may block; digestd's loop never does), the settings
 * read as digestd reads them (lib/config.c), the options of the command
 * line, and the one way a command asks Redis something: a store/inspect.h
 * builder and decoder, so every answer is the JSON digestd's /admin/
 * routes give. Commands print a table for people or that JSON (--json),
 * and return the exit status: 0 ok, 1 failure, 2 usage.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <hiredis/hiredis.h>

#include "config.h"

struct json_object;
struct redis_sync;
struct store_cmd;

#define CTL_OK 0
#define CTL_FAIL 1
#define CTL_USAGE 2

#define CTL_WIDTH 100        /* human output is cut to this many columns unless --wide */
#define CTL_DEFAULT_LIMIT 20 /* pending and dead without --limit */
#define CTL_TIMEOUT_MS 5000  /* connect and command timeout */

/* The command line, parsed (strings borrowed from argv). */
struct ctl_opts {
    const char *command;
    const char *arg; /* the one positional argument (show, requeue) or NULL */
    const char *config_file;
    const char *redis_url; /* --redis */
    const char *prefix;    /* --prefix */
    bool json;
    bool wide;
    bool all_dead;
    bool yes;
    bool prune;
    bool scale_to_zero;
    bool have_claim_idle, have_older_than, have_idle, have_limit;
    uint64_t claim_idle_ms;
    uint64_t older_than_ms;
    uint64_t idle_ms;
    unsigned limit;
};

struct ctl {
    struct ctl_opts opts;
    struct config cfg;
    struct redis_sync *rc; /* NULL until ctl_connect */
    char where[300];       /* the Redis address for messages: redis://host:port or unix:path */
    FILE *out;             /* stdout; watch renders into a memory stream */
};

/* conn.c: connects (AUTH, SELECT); on failure prints one line naming the address, CTL_FAIL. */
int ctl_connect(struct ctl *ctl);
void ctl_disconnect(struct ctl *ctl);

/*
 * Sends c (freed here) and decodes the reply with decode into *out
 * (owned; NULL when there is no such thing). On a lost connection or a
 * refusal prints one line and returns CTL_FAIL.
 */
int ctl_query(struct ctl *ctl, struct store_cmd *c,
              int (*decode)(const redisReply *, struct json_object **), struct json_object **out);
/* Sends c (freed here); the raw reply (owned: freeReplyObject), or NULL after printing why. */
redisReply *ctl_command(struct ctl *ctl, struct store_cmd *c);

/* Prints o (taken) as one line of compact JSON. */
void ctl_print_json(struct ctl *ctl, struct json_object *o);
/* "digestctl: " and the message on stderr (unless quiet); returns status. */
int ctl_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* While quiet, ctl_error prints nothing (watch shows failures in its frame). */
void ctl_quiet(bool quiet);

/* views.c */
int ctl_stats(struct ctl *ctl);
/* The human stats of one snapshot (borrowed) to ctl->out. */
void ctl_stats_print(struct ctl *ctl, struct json_object *stats);
int ctl_procs(struct ctl *ctl);
int ctl_pending(struct ctl *ctl);
int ctl_dead(struct ctl *ctl);
int ctl_show(struct ctl *ctl);
/* repair.c */
int ctl_requeue(struct ctl *ctl);
int ctl_trim(struct ctl *ctl);
int ctl_consumers(struct ctl *ctl);
/* check.c */
int ctl_check(struct ctl *ctl);
/* watch.c */
int ctl_watch(struct ctl *ctl);
