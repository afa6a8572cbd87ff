/* script.c: the list of every script (see script.h); the scripts live beside their callers. */
#include "store/script.h"

const struct store_script *const store_scripts[] = {
    &queue_enqueue_script,
    &job_store_begin_script,
    &job_store_delivered_script,
    &job_store_dead_script,
    &job_store_renew_script,
    &job_store_return_to_stream_script,
    &requests_get_script,
    &requests_record_ack_script,
    &requests_update_script,
    &requests_fail_and_free_dedup_script,
    &group_leave_script,
    &inspect_queue_script,
    &inspect_requeue_script,
    &history_add_script,
    &procs_beat_script,
    &procs_remove_script,
    &trim_script,
    NULL,
};
