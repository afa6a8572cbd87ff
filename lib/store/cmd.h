/*
 * cmd.h: one Redis command built by the store, ready for either sender:
 * redis_conn_command (digestd, async on the loop) or redis_sync_command
 * (digestctl, blocking; the tests also use hiredis's redisCommandArgv). The command builders of
 * group.h and inspect.h fill one; the caller sends it and frees it with store_cmd_free. The argv
 * strings are the store's (script texts, constants) or owned by the command (key names), or
 * borrowed from the caller's arguments, which must outlive the send only (every sender copies argv
 * when it sends).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define STORE_CMD_MAX_ARGS 48
#define STORE_CMD_MAX_OWNED 8
#define STORE_CMD_MAX_NUMS 8

/* Filled in place (argv may point into nums): never copy one. */
struct store_cmd {
    int argc;
    const char *argv[STORE_CMD_MAX_ARGS];
    size_t argvlen[STORE_CMD_MAX_ARGS];
    char *owned[STORE_CMD_MAX_OWNED]; /* key names built for this command */
    int n_owned;
    char nums[STORE_CMD_MAX_NUMS][24]; /* numbers written as arguments */
    int n_nums;
};

/* Starts an empty command. */
void store_cmd_init(struct store_cmd *c);
/* Appends a borrowed argument (a C string). Aborts past STORE_CMD_MAX_ARGS: a bug of ours. */
void store_cmd_arg(struct store_cmd *c, const char *s);
/* Appends len bytes of s (a script text, binary-safe). */
void store_cmd_arg_len(struct store_cmd *c, const char *s, size_t len);
/* Appends s and takes it (freed by store_cmd_free): a key built for the command. */
void store_cmd_take(struct store_cmd *c, char *s);
/* Appends v as decimal text, kept in the command. Aborts past STORE_CMD_MAX_NUMS. */
void store_cmd_arg_u64(struct store_cmd *c, uint64_t v);
/* Frees what the command owns; it is empty again. */
void store_cmd_free(struct store_cmd *c);
