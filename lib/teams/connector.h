/*
 * connector.h: the Bot Framework connector client (research/botframework.md
 * §4, SPEC §6). It owns the bot's access token (client credentials, cached,
 * fetched by one request at a time), the per-conversation pacing state and
 * every call in flight; it borrows the loop, the http_client, the config and
 * the metrics, which must outlive it. Life: connector_create →
 * connector_send… → connector_stop (every pending call finishes once with
 * DG_ERR_CLOSED, timers close) → stopped_cb → connector_free.
 * See docs/connector.md for the design.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/common.h"
#include "digest/digest.h"
#include "http/outcome.h"

struct card_address;
struct card_ack_info;
struct card_error_info;
struct config;
struct connector;
struct connector_call; /* one send, from submission until its callback has run */
struct http_client;
struct json_object;
struct metrics;

/* Teams' limits per bot per conversation (research §4.5, SPEC §6). */
#define CONNECTOR_PACE_1S 7   /* sends in any 1 s window */
#define CONNECTOR_PACE_30S 60 /* sends in any 30 s window */
/* Sends waiting for one conversation's window; past it a send fails at once
 * (DG_ERR_UNAVAILABLE, retryable) instead of queueing for minutes. */
#define CONNECTOR_PACE_MAX_WAITING 120
/* Bounds on what the connector and the token endpoint can make us hold. */
#define CONNECTOR_MAX_RESPONSE_BYTES (64u << 10)
#define CONNECTOR_MAX_TOKEN_BYTES (16u << 10) /* the access_token itself */
#define CONNECTOR_DEFAULT_ATTEMPTS 3          /* when connector_opts.max_attempts is 0 */

enum connector_op {
    CONNECTOR_REPLY = 0, /* POST …/conversations/{conv}/activities/{activity_id} */
    CONNECTOR_UPDATE,    /* PUT  …/conversations/{conv}/activities/{activity_id} */
    CONNECTOR_SEND,      /* POST …/conversations/{conv}/activities (activity_id unused) */
};

/* One message to deliver. Everything is copied by connector_send. */
struct connector_msg {
    enum connector_op op;
    const char *service_url;     /* as received in the activity; must pass SERVICE_URL_ALLOW */
    const char *conversation_id; /* raw; percent-encoded into the path here */
    const char *activity_id;     /* REPLY: the user's activity; UPDATE: the one replaced */
    const char *body;            /* the activity JSON (card_render); not NUL-terminated */
    size_t body_len;
    const char *request_id; /* for log lines only; may be NULL */
};

struct connector_opts {
    /* Attempts in all, 1 = no retry; 0 means CONNECTOR_DEFAULT_ATTEMPTS. */
    unsigned max_attempts;
    /*
     * POST is not idempotent: after a timeout, a transport error, 502 or 504
     * the connector may have delivered the activity anyway, and a retry
     * would post it twice (research §6). Such outcomes are retried only
     * when this is true. Rejections (412, 429, 503, a 401 answered by a new
     * token) and token failures are always retried; PUT retries everything
     * retryable, since repeating it is harmless. Every retry waits for the
     * response's Retry-After when it has one (up to
     * CONNECTOR_RETRY_AFTER_MAX_S), else our own backoff (RETRY_*_MS).
     */
    bool retry_ambiguous;
};

/* What the callback gets. Valid during the callback only. */
struct connector_result {
    int err;                   /* 0; DG_ERR_PROTOCOL when an HTTP status said no (see status);
                                  a transport code (DG_ERR_TIMEOUT, DG_ERR_UNAVAILABLE, …);
                                  DG_ERR_CLOSED after connector_stop */
    long status;               /* last HTTP status, 0 if none arrived */
    bool token_error;          /* the failure came from the token endpoint (status is its) */
    enum http_outcome outcome; /* of the last attempt: OK, RETRYABLE (budget spent or
                                    ambiguous and not retried) or FINAL (a final status, or
                                    throttled: a Retry-After over
                                    CONNECTOR_RETRY_AFTER_MAX_S) */
    int64_t retry_after_s;     /* Retry-After of the last response, -1 if none */
    unsigned attempts;         /* requests made to the connector or token endpoint */
    bool paced_out;            /* refused at once (DG_ERR_UNAVAILABLE, RETRYABLE): its
                                  conversation had CONNECTOR_PACE_MAX_WAITING waiting; the
                                  connector logs these, once per interval with a count */
    bool held;                 /* not sent (again): cancelled (connector_call_cancel) or
                                  its hold-until time came before its next request could
                                  leave (DG_ERR_CLOSED or DG_ERR_TIMEOUT, RETRYABLE; status
                                  and retry_after_s are the last response's, if any). No
                                  request of this call is in flight any more */
    const char *activity_id;   /* ResourceResponse "id" on success ("" if absent) */
};

typedef void (*connector_done_cb)(const struct connector_result *res, void *data);
typedef void (*connector_stopped_cb)(struct connector *c, void *data);

/*
 * Creates a connector. loop, http, cfg and metrics (may be NULL) are
 * borrowed for its whole life. Never fails (OOM aborts).
 */
struct connector *connector_create(uv_loop_t *loop, struct http_client *http,
                                   const struct config *cfg, struct metrics *metrics);

/*
 * Submits msg. Returns 0 and later calls cb exactly once, never from inside
 * this call; or returns an error and never calls cb, having sent nothing:
 * DG_ERR_INVALID (serviceUrl outside SERVICE_URL_ALLOW or malformed, an id
 * missing, no body), DG_ERR_TOO_LARGE (URL over HTTP_MAX_URL_BYTES),
 * DG_ERR_CLOSED (stopping). opts may be NULL (defaults: 3 attempts,
 * rejections only).
 */
int connector_send(struct connector *c, const struct connector_msg *msg,
                   const struct connector_opts *opts, connector_done_cb cb, void *data) WARN_UNUSED;

/*
 * connector_send, with a handle for connector_call_cancel and a deadline:
 * no request of this call leaves at or after hold_until_ms (loop time,
 * uv_now; 0 = none), neither the first nor a retry, and a retry whose wait
 * would end past it is not waited for: the call finishes held. The worker
 * sets it to the end of the job's lease, so nothing is sent for a job that
 * another worker may hold by then. *out (may be NULL) is valid until the
 * callback runs.
 */
int connector_send_call(struct connector *c, const struct connector_msg *msg,
                        const struct connector_opts *opts, uint64_t hold_until_ms,
                        connector_done_cb cb, void *data, struct connector_call **out) WARN_UNUSED;

/*
 * Gives up on a call: one waiting (its first turn, the token, a pacing
 * slot, a backoff or Retry-After) finishes now, held, with DG_ERR_CLOSED,
 * its callback running inside this call; one whose request is in flight is
 * not cut off (the request may have been delivered: its answer says what
 * happened) but is not retried after it. Only before its callback has run.
 */
void connector_call_cancel(struct connector_call *call);

/*
 * card_render(to, card) then connector_send: the path comes from the same
 * address as the body, so they cannot disagree (REPLY uses to->reply_to_id,
 * UPDATE to->activity_id). card is taken, even on error.
 */
int connector_send_card(struct connector *c, enum connector_op op, const char *service_url,
                        const struct card_address *to, struct json_object *card,
                        const char *request_id, const struct connector_opts *opts,
                        connector_done_cb cb, void *data) WARN_UNUSED;

/*
 * card_render_ack(to, ack) then connector_send, as connector_send_card
 * (the acknowledgment, written without a json-c tree).
 */
int connector_send_ack(struct connector *c, enum connector_op op, const char *service_url,
                       const struct card_address *to, const struct card_ack_info *ack,
                       const char *request_id, const struct connector_opts *opts,
                       connector_done_cb cb, void *data) WARN_UNUSED;

/* card_render_error(to, error) then connector_send, as connector_send_ack. */
int connector_send_error(struct connector *c, enum connector_op op, const char *service_url,
                         const struct card_address *to, const struct card_error_info *error,
                         const char *request_id, const struct connector_opts *opts,
                         connector_done_cb cb, void *data) WARN_UNUSED;

/*
 * The id of the connector's ResourceResponse ({"id":…}), malloc'd; NULL
 * when body (len bytes) is not one JSON object or holds no string "id"
 * without an escaped NUL. What on_sent records as the activity id; public
 * for the differential fuzz target.
 */
char *connector_resource_id(const char *body, size_t len);

/*
 * Begins shutdown: every pending call's callback runs once with
 * DG_ERR_CLOSED before this returns (its HTTP request, and a token fetch,
 * are cancelled), new sends fail, timers close; cb (may be NULL) runs from
 * the loop once all have closed. Safe inside a done callback. Idempotent.
 */
void connector_stop(struct connector *c, connector_stopped_cb cb, void *data);

/* Frees a connector whose stopped_cb has run (from inside it is fine), or NULL. */
void connector_free(struct connector *c);

/* Calls whose callback has not run yet. */
size_t connector_pending(const struct connector *c);
