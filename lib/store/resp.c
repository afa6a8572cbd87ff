/* resp.c: see resp.h. */
#include "store/resp.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* hiredis's default functions, found through a reader it built (they are static there). */
static redisReplyObjectFunctions base;
static redisReplyObjectFunctions capped;
static bool ready;

static void *create_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > RESP_MAX_ARRAY)
        return NULL; /* the reader reports it as an error and stops */
    return base.createArray(task, elements);
}

/* Single-threaded programs: the first call fills the tables, later ones only read them. */
static void setup(void)
{
    redisReader *r;

    if (ready)
        return;
    r = redisReaderCreate();
    if (!r)
        return;
    base = *r->fn;
    redisReaderFree(r);
    capped = base;
    capped.createArray = create_array;
    ready = true;
}

redisReader *resp_reader_create(void)
{
    redisReader *r;

    setup();
    r = ready ? redisReaderCreateWithFunctions(&capped) : NULL;
    if (!r)
        abort(); /* out of memory: we are an application (STYLE rule 6) */
    return r;
}

const char *resp_reader_error(const redisReader *r)
{
    _Static_assert(RESP_MAX_ARRAY == 16777216, "the message below names the limit");
    if (r->err == REDIS_ERR_OOM)
        return "an array over 16777216 elements, or out of memory";
    return r->errstr;
}

/* Writes "<c><v>\r\n" ending at end; returns where it starts. */
static char *count_text(char *end, char c, size_t v)
{
    char *p = end;

    *--p = '\n';
    *--p = '\r';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    *--p = c;
    return p;
}

void resp_put_count(struct buf *o, char c, size_t v, int *rc)
{
    char s[24];
    char *p = count_text(s + sizeof(s), c, v);

    if (*rc == 0)
        *rc = buf_append(o, p, (size_t)(s + sizeof(s) - p));
}

/*
 * One extend and three copies: a batch carries ~45 arguments a job, and
 * with three buf_append calls each this was 10.4k of the webhook's 193k
 * instructions a request (6.0k now; bench/RESULTS.md). All or nothing: past
 * the cap o is left as it was.
 */
void resp_put_bulk(struct buf *o, const char *s, size_t n, int *rc)
{
    char head[24];
    char *p = count_text(head + sizeof(head), '$', n), *w;
    size_t h = (size_t)(head + sizeof(head) - p);

    if (*rc == 0)
        *rc = buf_extend(o, h + n + 2, &w);
    if (*rc != 0)
        return;
    memcpy(w, p, h);
    memcpy(w + h, s, n);
    memcpy(w + h + n, "\r\n", 2);
}

int resp_put_command(struct buf *o, int argc, const char *const *argv, const size_t *argvlen)
{
    int rc = 0;

    resp_put_count(o, '*', (size_t)argc, &rc);
    for (int i = 0; i < argc && rc == 0; i++)
        resp_put_bulk(o, argv[i], argvlen ? argvlen[i] : strlen(argv[i]), &rc);
    return rc;
}
