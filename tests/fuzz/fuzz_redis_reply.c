/*
 * fuzz_redis_reply.c: libFuzzer target for the reply path: the bytes a
 * Redis connection delivers, cut into reads at fuzzer-chosen points and fed
 * to a redisReader as redis.c and redis_sync.c do (feed, then take replies
 * until none is whole), and every reply handed to each decoder of lib/store
 * (inspect, trim, group, redis_reply_status) whatever its shape: a Redis
 * that answers something unexpected must get an error, never a crash.
 *
 * Input: byte 0 seeds the read sizes (1..64 bytes each), the rest is the
 * stream. Besides the sanitizers it checks that cutting the stream changes
 * nothing: the replies (count, and the reader's verdict) are those of one
 * read of the whole stream, so no reply depends on where a read ended.
 * The reader is resp_reader_create's (hiredis's, with the array cap this
 * target showed was missing: "*1700000000" asked for 13.6 GB).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "core/common.h"
#include "store/group.h"
#include "store/inspect.h"
#include "store/redis.h"
#include "store/resp.h"
#include "store/trim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

typedef int (*decode_fn)(const struct redisReply *, struct json_object **);

static void decode_all(const redisReply *r)
{
    static const decode_fn decoders[] = {
        inspect_queue_decode,     inspect_procs_decode,       inspect_pending_decode,
        inspect_dead_decode,      inspect_history_decode,     inspect_request_decode,
        inspect_consumers_decode, inspect_check_facts_decode,
    };
    struct inspect_requeue_all all;
    struct trim_step step;
    const char *s = NULL;

    for (size_t i = 0; i < ARRAY_SIZE(decoders); i++) {
        struct json_object *o = NULL;
        int rc = decoders[i](r, &o);

        check(rc == 0 || o == NULL);
        json_object_put(o);
    }
    (void)inspect_requeue_decode(r, &s);
    inspect_requeue_all_init(&all, 3);
    (void)inspect_requeue_all_decode(r, &all);
    memset(&step, 0, sizeof(step));
    (void)trim_decode(r, &step);
    (void)group_create_result(r, &s);
    (void)redis_reply_status(0, r);
}

/* Feeds stream in reads of the given sizes; the number of whole replies, -1 on a reader error. */
static int run(const char *p, size_t n, uint8_t seed, int decode)
{
    redisReader *reader = resp_reader_create();
    size_t off = 0;
    int replies = 0;
    uint32_t x = seed * 2654435761u + 1;

    while (off < n) {
        size_t take = seed == 0 ? n - off : 1 + (x >> 24) % 64;
        void *reply = NULL;

        x = x * 1103515245u + 12345u;
        if (take > n - off)
            take = n - off;
        if (redisReaderFeed(reader, p + off, take) != REDIS_OK) {
            replies = -1;
            break;
        }
        off += take;
        for (;;) {
            if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
                replies = -1;
                break;
            }
            if (!reply)
                break;
            replies++;
            if (decode)
                decode_all(reply);
            freeReplyObject(reply);
        }
        if (replies < 0)
            break;
    }
    redisReaderFree(reader);
    return replies;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p;
    size_t n;
    int cut, whole;

    if (size < 1 || size > 64 * 1024)
        return 0;
    p = (const char *)data + 1;
    n = size - 1;
    cut = run(p, n, data[0] == 0 ? 1 : data[0], 1);
    whole = run(p, n, 0, 0);
    /* The same bytes: the same replies, or the same refusal, wherever the reads ended. */
    check(cut == whole);
    return 0;
}
