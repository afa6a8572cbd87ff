/* group.c: the consumer group's creation and a consumer's exit (see group.h). */
#include "store/group.h"

#include <hiredis/hiredis.h>
#include <string.h>

#include "core/buf.h"
#include "store/cmd.h"
#include "store/keys.h"
#include "store/op.h"
#include "store/script.h"

/* KEYS: stream. ARGV: group, consumer. Answers DELCONSUMER's count (0), or -1: kept. */
static const char leave_lua[] =
    "if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then\n"
    "  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])\n"
    "end\n"
    "return -1\n";

const struct store_script group_leave_script = {"group_leave", leave_lua, sizeof(leave_lua) - 1};

void group_create_cmd(struct store_cmd *c, const char *prefix)
{
    store_cmd_init(c);
    store_cmd_arg(c, "XGROUP");
    store_cmd_arg(c, "CREATE");
    store_cmd_take(c, keys_stream(prefix));
    store_cmd_arg(c, KEYS_GROUP);
    store_cmd_arg(c, "0");
    store_cmd_arg(c, "MKSTREAM");
}

int group_create_result(const redisReply *r, const char **refusal)
{
    *refusal = "";
    if (!r)
        return DG_ERR_UNAVAILABLE;
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    /* BUSYGROUP: the group already exists, which is what we want. */
    if (strncmp(r->str, "BUSYGROUP", 9) == 0)
        return 0;
    *refusal = r->str;
    return DG_ERR_PROTOCOL;
}

static void on_created(int err, redisReply *r, void *data)
{
    struct store_op *op = data;
    const char *refusal = "";

    if (!err)
        err = group_create_result(r, &refusal);
    op->cb.group(err, refusal, op->data);
    xfree(op);
}

int group_create(struct redis_conn *conn, const char *prefix, group_done_cb cb, void *data)
{
    struct store_op *op = store_op_new(data);
    struct store_cmd c;
    int err;

    group_create_cmd(&c, prefix);
    op->cb.group = cb;
    err = store_op_send(conn, on_created, op, c.argc, c.argv, c.argvlen);
    store_cmd_free(&c);
    return err;
}

static void on_left(int err, redisReply *r, void *data)
{
    struct store_op *op = data;

    err = redis_reply_status(err, r);
    if (!err && r->type != REDIS_REPLY_INTEGER)
        err = DG_ERR_PROTOCOL;
    op->cb.leave(err, !err && r->integer >= 0, op->data);
    xfree(op);
}

int group_leave(struct redis_conn *conn, const char *prefix, const char *consumer,
                group_leave_cb cb, void *data)
{
    char *stream = keys_stream(prefix);
    const char *argv[] = {"EVAL", leave_lua, "1", stream, KEYS_GROUP, consumer};
    struct store_op *op = store_op_new(data);
    int err;

    op->cb.leave = cb;
    err = store_op_send(conn, on_left, op, (int)ARRAY_SIZE(argv), argv, NULL);
    xfree(stream);
    return err;
}
