/*
 * script.h: every Lua script of the schema (docs/store.md lists what each
 * one reads, writes and why it must be atomic). Each is defined beside the
 * store function that runs it; this header names them all, so the tests
 * can load each into a real Redis and check the status names it uses, and
 * it holds the vocabulary the scripts share: the status names quoted for
 * Lua, from request_status.h, so C and Lua cannot disagree on a spelling.
 */
#pragma once

#include <stddef.h>

#include "store/request_status.h"

struct store_script {
    const char *name; /* module_what, e.g. "job_store_begin" */
    const char *lua;
    size_t len; /* strlen(lua) */
};

/* The status names as Lua string literals. */
#define LUA_QUEUED "'" REQUEST_STATUS_NAME_QUEUED "'"
#define LUA_PROCESSING "'" REQUEST_STATUS_NAME_PROCESSING "'"
#define LUA_DELIVERED "'" REQUEST_STATUS_NAME_DELIVERED "'"
#define LUA_FAILED "'" REQUEST_STATUS_NAME_FAILED "'"
#define LUA_DEAD "'" REQUEST_STATUS_NAME_DEAD "'"
/* Lua: the status in variable st is an ended one (request_status_ended). */
#define LUA_ST_ENDED "(st == " LUA_DELIVERED " or st == " LUA_FAILED " or st == " LUA_DEAD ")"

/* queue.c: a batch of jobs and references: dedup, reference, record, XADD. */
extern const struct store_script queue_enqueue_script;
/* job_store.c: the worker's steps. */
extern const struct store_script job_store_begin_script;
extern const struct store_script job_store_fence_script;
extern const struct store_script job_store_delivered_script;
extern const struct store_script job_store_dead_script;
extern const struct store_script job_store_renew_script;
extern const struct store_script job_store_return_to_stream_script;
/* requests.c: audit records after the enqueue. */
extern const struct store_script requests_get_script;
extern const struct store_script requests_update_script;
extern const struct store_script requests_fail_and_free_dedup_script;
/* group.c: the consumer group. */
extern const struct store_script group_leave_script;
/* inspect.c: what operators read and repair. */
extern const struct store_script inspect_queue_script;
extern const struct store_script inspect_procs_script;
extern const struct store_script inspect_pending_script;
extern const struct store_script inspect_dead_script;
extern const struct store_script inspect_history_script;
extern const struct store_script inspect_consumers_script;
extern const struct store_script inspect_check_script;
extern const struct store_script inspect_request_script;
extern const struct store_script inspect_requeue_script;
extern const struct store_script inspect_requeue_all_script;
/* history.c: offline counts added to their minutes. */
extern const struct store_script history_add_script;
/* procs.c: heartbeats. */
extern const struct store_script procs_beat_script;
extern const struct store_script procs_remove_script;
/* trim.c: the retention rule, one bounded step. */
extern const struct store_script trim_script;

/* Every script above, NULL-terminated. */
extern const struct store_script *const store_scripts[];
