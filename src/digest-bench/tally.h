/*
 * tally.h: what digest-bench counts. One record per request sent (its
 * intended send time and the request id its answer named), the three
 * latency histograms (webhook answer, acknowledgment card, result card, all
 * from the intended send time), and errors by kind. Cards are matched to
 * requests by the activity id they reply to (which digest-bench chose:
 * base + request number) and checked against the request id of the
 * webhook's answer, whichever of the two arrives first: a card for an
 * activity never sent, or naming another request, is an error. Owns its
 * records; no I/O.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "hist.h"

enum tally_error {
    TALLY_ERR_CONNECT = 0, /* TCP connect to the target failed */
    TALLY_ERR_TIMEOUT,     /* no whole answer within --timeout */
    TALLY_ERR_IO,          /* reset or closed mid-answer, write failed */
    TALLY_ERR_PROTOCOL,    /* the answer was not HTTP */
    TALLY_ERR_STATUS_1XX,  /* status class of a non-2xx answer */
    TALLY_ERR_STATUS_3XX,
    TALLY_ERR_STATUS_4XX,
    TALLY_ERR_STATUS_5XX,
    TALLY_ERR_CARD_UNKNOWN,   /* a card replying to no activity we sent */
    TALLY_ERR_CARD_MISMATCH,  /* a card naming another request than its activity's answer */
    TALLY_ERR_CARD_DUPLICATE, /* a second ack or result card for one request */
    TALLY_ERR_ERROR_CARD,     /* the bot posted an error card */
    TALLY_ERR_JOB_FAILED,     /* the acknowledgment was updated to "failed" */
    TALLY_ERR_CONNECTOR_AUTH, /* a connector call without the token we issued */
    TALLY_ERR_ACK_MISSING,    /* awaited ack card not there by the end of the drain */
    TALLY_ERR_RESULT_MISSING, /* awaited result card not there by the end of the drain */
    TALLY_ERR_COUNT,
};

/* The JSON key of each kind: "connect", "timeout", "status_5xx", "card_unknown", … */
const char *tally_error_name(enum tally_error e);

enum tally_await {
    TALLY_AWAIT_NONE = 0, /* a request is complete when answered 2xx */
    TALLY_AWAIT_ACK,      /* … and its acknowledgment card arrived */
    TALLY_AWAIT_RESULT,   /* … and its result card too */
};

/* What a connector message was (see connector.h). */
enum tally_card {
    TALLY_CARD_ACK,
    TALLY_CARD_RESULT,
    TALLY_CARD_ERROR,
    TALLY_CARD_UPDATE_OK,     /* ack updated: delivered */
    TALLY_CARD_UPDATE_FAILED, /* ack updated: failed */
    TALLY_CARD_OTHER,         /* help, status, text, …: counted, not matched */
};

struct tally_rec {
    uint64_t intended_ns;
    uint64_t rid_hash;      /* FNV-1a of the answer's requestId, when REC_RID */
    uint64_t card_rid_hash; /* of the first card's request id, when REC_CARD_RID */
    uint32_t flags;
};

struct tally {
    struct tally_rec *recs;
    uint64_t n, cap;
    uint64_t activity_base; /* activity id of request 0 */
    enum tally_await await;
    bool match; /* listening as the connector: read requestId, match cards */
    struct hist webhook, ack, result;
    uint64_t errors[TALLY_ERR_COUNT];
    uint64_t sent, measured_sent, answered, updates, other_cards, token_requests;
    uint64_t waiting_ack, waiting_result; /* answered measured requests still awaiting cards */
    uint64_t first_ns, last_answer_ns;    /* measured window: start, last measured answer */
};

void tally_init(struct tally *t, uint64_t activity_base, enum tally_await await, bool match);
void tally_free(struct tally *t);

/* A new request meant to be sent at intended_ns; returns its number. */
uint64_t tally_add(struct tally *t, uint64_t intended_ns, bool measured);

/* The webhook's answer (or failure) for request n. */
void tally_answer(struct tally *t, uint64_t n, const struct client_result *res);

/*
 * A connector message replying to activity_id (has_activity false: it named
 * none we could read) that carries kind and request_id ("" when none),
 * received at now_ns.
 */
void tally_card(struct tally *t, bool has_activity, uint64_t activity_id, enum tally_card kind,
                const char *request_id, uint64_t now_ns);

void tally_error(struct tally *t, enum tally_error e);

/* True when no measured request still awaits a card. */
bool tally_cards_in(const struct tally *t);

/* Ends the run: awaited cards that never came become errors. Returns completed requests. */
uint64_t tally_finish(struct tally *t);
