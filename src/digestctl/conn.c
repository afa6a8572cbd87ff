/*
 * conn.c: the one place digestctl connects to Redis, and sends a command.
 *
 * Until lib/store has a blocking connect helper of its own (the TLS work,
 * branch tls, brings one that also speaks rediss:// and Redis 6 ACL users),
 * this function is it: redisConnectWithTimeout or its unix-socket twin,
 * then AUTH and SELECT from the REDIS_URL config.c parsed. Swap its body
 * for the shared helper when that lands; nothing else here needs to change.
 */
#include "ctl.h"

#include <stdarg.h>
#include <string.h>

#include <json-c/json.h>

#include "core/json_write.h"
#include "store/cmd.h"

/* A command's reply that means no: printed, and NULL to the caller. */
static bool refused(struct ctl *ctl, redisReply *r, const char *what)
{
    if (r && r->type != REDIS_REPLY_ERROR)
        return false;
    if (r)
        ctl_error(CTL_FAIL, "Redis at %s refused %s: %s", ctl->where, what, r->str);
    else
        ctl_error(CTL_FAIL, "Redis at %s: %s", ctl->where, ctl->rc->errstr);
    if (r)
        freeReplyObject(r);
    return true;
}

int ctl_connect(struct ctl *ctl)
{
    const struct config *cfg = &ctl->cfg;
    struct timeval tv = {CTL_TIMEOUT_MS / 1000, (CTL_TIMEOUT_MS % 1000) * 1000};
    redisReply *r;

    if (cfg->redis_kind == REDIS_UNIX) {
        snprintf(ctl->where, sizeof(ctl->where), "unix:%s", cfg->redis_path);
        ctl->rc = redisConnectUnixWithTimeout(cfg->redis_path, tv);
    } else {
        snprintf(ctl->where, sizeof(ctl->where), strchr(cfg->redis_host, ':') ? "[%s]:%d" : "%s:%d",
                 cfg->redis_host, cfg->redis_port);
        ctl->rc = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
    }
    if (!ctl->rc || ctl->rc->err) {
        ctl_error(CTL_FAIL, "cannot reach Redis at %s: %s", ctl->where,
                  ctl->rc ? ctl->rc->errstr : "out of memory");
        ctl_disconnect(ctl);
        return CTL_FAIL;
    }
    redisSetTimeout(ctl->rc, tv);
    if (cfg->redis_password) {
        r = redisCommand(ctl->rc, "AUTH %s", cfg->redis_password);
        if (refused(ctl, r, "AUTH"))
            goto fail;
        freeReplyObject(r);
    }
    if (cfg->redis_db != 0) {
        r = redisCommand(ctl->rc, "SELECT %d", cfg->redis_db);
        if (refused(ctl, r, "SELECT"))
            goto fail;
        freeReplyObject(r);
    }
    return CTL_OK;
fail:
    ctl_disconnect(ctl);
    return CTL_FAIL;
}

void ctl_disconnect(struct ctl *ctl)
{
    if (ctl->rc)
        redisFree(ctl->rc);
    ctl->rc = NULL;
}

redisReply *ctl_command(struct ctl *ctl, struct store_cmd *c)
{
    redisReply *r = redisCommandArgv(ctl->rc, c->argc, c->argv, c->argvlen);

    store_cmd_free(c);
    if (refused(ctl, r, "the command"))
        return NULL;
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
