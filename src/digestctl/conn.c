/*
 * conn.c: the one place digestctl connects to Redis, and sends a command:
 * store/redis_sync.h, which speaks every REDIS_URL form digestd does
 * (redis://, rediss:// with REDIS_TLS_*, unix://, ACL users) and sends
 * AUTH and SELECT on connect. Failures are one line naming the address.
 */
#include "ctl.h"

#include <stdarg.h>
#include <string.h>

#include <json-c/json.h>

#include "core/json_write.h"
#include "store/cmd.h"
#include "store/redis.h"
#include "store/redis_sync.h"

int ctl_connect(struct ctl *ctl)
{
    char err[300];

    redis_where(&ctl->cfg, ctl->where, sizeof(ctl->where));
    ctl->rc = redis_sync_connect(&ctl->cfg, CTL_TIMEOUT_MS, err, sizeof(err));
    if (!ctl->rc)
        return ctl_error(CTL_FAIL, "cannot reach Redis at %s: %s", ctl->where, err);
    return CTL_OK;
}

void ctl_disconnect(struct ctl *ctl)
{
    redis_sync_free(ctl->rc);
    ctl->rc = NULL;
}

redisReply *ctl_command(struct ctl *ctl, struct store_cmd *c)
{
    char err[300];
    redisReply *r = redis_sync_command(ctl->rc, c->argc, c->argv, c->argvlen, err, sizeof(err));

    store_cmd_free(c);
    if (!r) {
        ctl_error(CTL_FAIL, "Redis at %s: %s", ctl->where, err);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        ctl_error(CTL_FAIL, "Redis at %s refused the command: %s", ctl->where, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

int ctl_query(struct ctl *ctl, struct store_cmd *c,
              int (*decode)(const redisReply *, struct json_object **), struct json_object **out)
{
    redisReply *r = ctl_command(ctl, c);
    int err;

    *out = NULL;
    if (!r)
        return CTL_FAIL;
    err = decode(r, out);
    freeReplyObject(r);
    if (err)
        return ctl_error(CTL_FAIL, "Redis at %s answered something unexpected", ctl->where);
    return CTL_OK;
}

void ctl_print_json(struct ctl *ctl, struct json_object *o)
{
    fprintf(ctl->out, "%s\n", json_write_compact(o, NULL));
    json_object_put(o);
}

static bool quiet;

void ctl_quiet(bool q)
{
    quiet = q;
}

int ctl_error(int status, const char *fmt, ...)
{
    va_list ap;

    if (quiet)
        return status;
    fputs("digestctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}
