/*
 * resp.h: RESP both ways. Reading is hiredis's reader (redisReader) with the
 * one limit hiredis 0.14 lacks: an array header allocates its element table
 * at once, so "*1700000000\r\n" alone asks for 13.6 GB (found by
 * fuzz_redis_reply). Arrays longer than RESP_MAX_ARRAY are refused as a
 * reader error instead. Everything else is hiredis's own reply building, so
 * replies stay plain redisReply objects for freeReplyObject and the store's
 * decoders. Writing is ours: a command as an array of bulk strings appended
 * to a caller's struct buf, byte for byte what redisFormatCommandArgv makes
 * (test_resp), without its malloc and its sprintf per argument, which were
 * 6 % of a worker's job (bench/RESULTS.md).
 *
 * Used by every reader and writer of Redis commands here: redis.c,
 * redis_sync.c, queue.c's batches and the fuzz target. The reader is the
 * caller's (redisReaderFree); the buffers are the callers'.
 */
#pragma once

#include <stddef.h>

#include <hiredis/hiredis.h>

struct buf;

/* A command's cap: Redis's own bulk string limit (proto-max-bulk-len, 512 MB). */
#define RESP_MAX_COMMAND_BYTES (512u * 1024 * 1024)

/* Far above any reply digestd asks for (XREADGROUP COUNT <= 100000 jobs). */
#define RESP_MAX_ARRAY (1 << 24)

redisReader *resp_reader_create(void);

/* The reader's error as one line ("an array over ... elements" for the limit). */
const char *resp_reader_error(const redisReader *r);

/*
 * Append to o: c and then v in decimal and CRLF ("*3\r\n", "$7\r\n"); a
 * bulk string ("$n\r\n" s "\r\n"), each whole or not at all. Nothing is
 * appended once *rc is set, and the first error (DG_ERR_TOO_LARGE) is left
 * in *rc, so a caller writes a whole command and checks once.
 */
void resp_put_count(struct buf *o, char c, size_t v, int *rc);
void resp_put_bulk(struct buf *o, const char *s, size_t n, int *rc);

/*
 * Appends the command argv[0..argc) as RESP; argvlen[i] is each length, or
 * with argvlen NULL each is a C string. Returns 0 or DG_ERR_TOO_LARGE (o
 * then holds part of it: reset it).
 */
int resp_put_command(struct buf *o, int argc, const char *const *argv, const size_t *argvlen);
