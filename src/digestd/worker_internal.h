/*
 * worker_internal.h: what worker.c (reading, claiming, leases, shutdown)
 * and worker_job.c (one job's state machine) share. Not for others.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/job_store.h"
#include "core/hash_table.h"
#include "core/list.h"
#include "worker.h"

struct http_client_call;
struct connector_call;

enum worker_state {
    WORKER_RUNNING = 0,
    WORKER_DRAINING,  /* no new jobs; the held ones finish or are handed back */
    WORKER_CANCELLED, /* the grace is over: what cannot finish now stays pending */
};

/* Leaving the consumer group at the end of a drain (say_farewell in worker.c). */
enum worker_farewell {
    FAREWELL_NOT_SENT = 0,
    FAREWELL_SENT, /* the DELCONSUMER script is outstanding: the drain waits for it */
    FAREWELL_DONE, /* answered, or it could not be sent */
};

struct worker {
    uv_loop_t *loop;
    const struct config *cfg;
    struct queue *queue;
    struct connector *connector;
    struct http_client *http;
    struct metrics *metrics;
    struct redis_conn *reader;
    char consumer[320];
    char *stream_key;
    struct list_node jobs;   /* struct job, in arrival order */
    struct hash_table index; /* the same jobs by stream id */
    char nonce[17];          /* per process, in attempt tokens */
    uint64_t tries;          /* attempts begun here: never reused, even for a job taken back */
    size_t n_jobs;           /* in the list, plus those whose timer is closing */
    uint64_t rng;            /* backoff jitter */
    enum worker_state state;
    /* reading */
    bool reading;          /* an XREADGROUP is outstanding */
    bool history_done;     /* own pending entries (ID 0 …) read after start */
    char history_from[48]; /* the last own pending id read */
    uv_timer_t read_retry; /* after an error reply (no group yet, say) */
    char reader_id[24];    /* CLIENT ID of the reader, to wake its blocked read at drain */
    /* claiming and leases */
    uv_timer_t claim_timer;
    bool claiming;        /* an XAUTOCLAIM is outstanding (never beside a read) */
    bool claim_due;       /* the timer asked for one; it goes out when no read is */
    bool queue_was_down;  /* a claim tick found Redis away */
    uint64_t claim_after; /* uv_now() before which nothing is claimed (after an outage) */
    uint64_t renew_ms;
    char claim_cursor[48];
    uv_timer_t renew_timer;
    unsigned renewing; /* renew calls outstanding */
    /* Keeps the streams bounded (retention.h). */
    struct retention *retention;
    /* shutdown */
    enum worker_farewell farewell;
    worker_cb drained_cb;
    void *drained_data;
    worker_cb stopped_cb;
    void *stopped_data;
    unsigned open; /* handles and connection not yet closed while stopping */
};

enum job_step {
    JOB_BEGIN = 0,  /* job_store_begin outstanding */
    JOB_FETCH,      /* upstream fetch */
    JOB_FENCE,      /* job_store_fence outstanding: may this attempt post its result? */
    JOB_SEND,       /* result card to the connector */
    JOB_RECORD,     /* delivered / dead step */
    JOB_NOTIFY,     /* error card and acknowledgment update (best effort) */
    JOB_WAIT,       /* timer: backoff before a retry */
    JOB_REDIS_WAIT, /* timer: Redis away, the same Redis step again */
    JOB_RELEASE,    /* handing back at shutdown */
};

/* The conversation reference fields a job needs (owned, "" when absent). */
struct job_ref {
    char *service_url, *conversation_id, *bot_id, *bot_name, *user_id, *user_name;
    bool stale;
};

struct job {
    struct list_node node;
    struct hash_node index_node; /* w->index */
    struct worker *w;
    struct job_fields f; /* strings below own the storage */
    char *strs;          /* one allocation behind every f string */
    char *alt_id;        /* request_id of a malformed entry, made up here */
    uint64_t created_ms;
    enum job_step step;
    uv_timer_t timer;
    struct http_client_call *fetch;
    unsigned attempts; /* the record's count, from the last begin */
    uint64_t try_id;   /* this attempt's number in this process (w->tries) */
    char token[96];    /* this attempt's token: nonce/stream id/try_id */
    char *ack_activity_id;
    struct job_ref ref;
    char *body; /* the rendered result activity, kept across send retries */
    size_t body_len;
    struct connector_call *send; /* the result's call while JOB_SEND */
    uint64_t fence_at;           /* uv_now() when the fence went out: the lease's safe end
                                    is WORKER_CLAIM_IDLE_MS after it */
    bool sent;                   /* the connector accepted the result */
    uint64_t sent_ms;
    uint64_t sent_ns; /* clock_mono_ns() of that answer: the window to the record */
    char *result_id;
    uint64_t fetched_ms;
    bool lost; /* another consumer holds the job now */
    /* how it ends, for the record and the cards */
    enum request_status end_status; /* REQUEST_STATUS_DEAD or _FAILED (end_job) */
    char reason[200];
    bool mark_stale;
    bool error_card;
    void (*redis_retry)(struct job *j); /* what JOB_REDIS_WAIT runs again */
};

/* worker_job.c */
/* Takes a job read from the stream (fields borrowed, copied). */
void worker_job_start(struct worker *w, const struct job_fields *f);
/* Draining: hands back a job that is only waiting; others go on. */
void worker_job_drain(struct job *j);
/* Grace over: a job waiting on a timer lets go now (it stays pending). */
void worker_job_cancel(struct job *j);
/* The lease renewal found the job held by another consumer. */
void worker_job_lost(struct job *j);

/* worker.c */
/* The stream-id index of the jobs held: add on start, remove on finish. */
void worker_index_add(struct worker *w, struct job *j);
void worker_index_remove(struct worker *w, struct job *j);
/* A job ended and its memory is gone: read more, or report the drain. */
void worker_job_finished(struct worker *w);
