/*
 * webhook_internal.h: what webhook.c (ingress, async path, simple commands)
 * and webhook_sync.c (the synchronous digest path) share. Not for others.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "teams/activity.h"
#include "teams/command.h"
#include "store/queue.h"
#include "core/uuid.h"
#include "webhook.h"

struct card_address;
struct http_request;
struct json_object;

struct webhook {
    const struct config *cfg;
    struct queue *queue;
    struct connector *connector;
    struct http_client *http;
    struct metrics *metrics;
    struct auth *auth;      /* BOT_AUTH=jwt: the token checks (borrowed) */
    unsigned in_flight;     /* live struct webhook_req */
    unsigned redis_waiting; /* of those, waiting for their Redis step */
    unsigned acks_pending;  /* of those, with their acknowledgment card under way */
    webhook_drained_cb drained_cb;
    void *drained_data;
};

/* One activity, from its handler until its answer is sent and its card posted. */
struct webhook_req {
    struct webhook *wh;
    struct http_request *req; /* NULL once answered */
    struct activity act;
    struct command cmd;
    char request_id[UUID_STR_LEN + 1];
    char *conv_key;
    char *ack_activity_id; /* the acknowledgment card's id, once posted */
    bool recorded;         /* sync mode: an audit record exists for request_id */
    bool ack_pending;      /* counted in wh->acks_pending until w ends */
    bool async;            /* a digest: the rollout chose the async path (rollout.h) */
    uint64_t started_ms;
    uint64_t fetched_ms;
    int sync_status;      /* sync mode: the status to answer once the card is out */
    char last_error[160]; /* sync mode: why it failed, for the answer and the record */
};

/*
 * The one atomic Redis step for a digest request: reference + dedup + audit
 * record, and for mode "async" the job on the stream (queue_enqueue).
 */
int webhook_record(struct webhook_req *w, const char *mode, queue_enqueue_cb cb) WARN_UNUSED;
/* The answer for a Redis step refused at submission: 413, 400 or 503. */
void webhook_answer_dispatch_error(struct webhook_req *w, int err);
/* 200 {"requestId":first_id,"duplicate":true}: the activity was seen before. */
void webhook_answer_duplicate(struct webhook_req *w, const char *first_id);

/* Sends the answer once; later calls are ignored. */
void webhook_answer_json(struct webhook_req *w, int status, const char *body);
void webhook_answer_error(struct webhook_req *w, int status, const char *code, const char *msg);
/* Ends the context: frees it, and reports a drain when it was the last. */
void webhook_req_done(struct webhook_req *w);
/* The reply address of w's activity: from the bot to the user, replying to it. */
void webhook_card_address(const struct webhook_req *w, struct card_address *to);

/* The synchronous digest path (webhook_sync.c); answers and ends w itself. */
void webhook_sync_start(struct webhook_req *w);
