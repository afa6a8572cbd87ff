/*
 * resp.h: hiredis's RESP reader (redisReader) with the one limit hiredis
 * 0.14 lacks: an array header allocates its element table at once, so
 * "*1700000000\r\n" alone asks for 13.6 GB (found by fuzz_redis_reply).
 * Arrays longer than RESP_MAX_ARRAY are refused as a reader error instead.
 * Everything else is hiredis's own reply building, so replies stay plain
 * redisReply objects for freeReplyObject and the store's decoders.
 *
 * Used by every reader of Redis replies here: redis.c, redis_sync.c and the
 * fuzz target. The reader is the caller's (redisReaderFree).
 */
#pragma once

#include <stddef.h>

#include <hiredis/hiredis.h>

/* Far above any reply digestd asks for (XREADGROUP COUNT <= 100000 jobs). */
#define RESP_MAX_ARRAY (1 << 24)

redisReader *resp_reader_create(void);

/* The reader's error as one line ("an array over ... elements" for the limit). */
const char *resp_reader_error(const redisReader *r);
