/* op.c: the in-flight record of a store command (see op.h). */
#include "store/op.h"

#include "core/buf.h"

struct store_op *store_op_new(void *data)
{
    struct store_op *op = xcalloc(1, sizeof(*op));

    op->data = data;
    return op;
}

int store_op_send(struct redis_conn *conn, redis_reply_cb fn, struct store_op *op, int argc,
                  const char **argv, const size_t *argvlen)
{
    int err = redis_conn_command(conn, 0, fn, op, argc, argv, argvlen);

    if (err)
        xfree(op);
    return err;
}
