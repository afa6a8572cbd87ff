/*
 * op.h: one command in flight for a store function (job_store, requests,
 * group, inspect): the caller's callback and data, carried through
 * redis_conn_command as its privdata. Private to lib/store/.
 *
 * store_op_send either fails (the op is freed, no callback: redis.h rules)
 * or the reply callback runs once and frees the op with xfree.
 */
#pragma once

#include <stddef.h>

#include "store/group.h"
#include "store/inspect.h"
#include "store/job_store.h"
#include "store/redis.h"
#include "store/requests.h"

struct store_op {
    union {
        job_store_begin_cb begin;
        job_store_delivered_cb delivered;
        job_store_fence_cb fence;
        job_store_dead_cb dead;
        job_store_renew_cb renew;
        job_store_release_cb release;
        requests_get_cb get;
        requests_done_cb done;
        group_done_cb group;
        group_leave_cb leave;
        inspect_json_cb json;
        inspect_requeue_cb requeue;
    } cb;
    void *data;
};

/* An op for data; set one cb member before sending. Owned until sent. */
struct store_op *store_op_new(void *data);

/*
 * Sends argv (argvlen NULL: C strings) with op as privdata, or frees op
 * and returns the submission error.
 */
int store_op_send(struct redis_conn *conn, redis_reply_cb fn, struct store_op *op, int argc,
                  const char **argv, const size_t *argvlen) WARN_UNUSED;
