/*
 * tally.c: records, histograms, errors, and matching cards to requests.
 */
#include "tally.h"

#include <string.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "core/json_strict.h"

enum {
    REC_MEASURED = 1u << 0,
    REC_ANSWERED = 1u << 1, /* 2xx */
    REC_FAILED = 1u << 2,   /* non-2xx or no answer */
    REC_RID = 1u << 3,      /* rid_hash holds the answer's requestId */
    REC_CARD_RID = 1u << 4, /* card_rid_hash holds a card's request id */
    REC_ACK = 1u << 5,
    REC_RESULT = 1u << 6,
    REC_BAD_CARD = 1u << 7, /* a card for it was a mismatch */
};

#define ANSWER_JSON_DEPTH 8

static const char *const error_names[TALLY_ERR_COUNT] = {
    [TALLY_ERR_CONNECT] = "connect",
    [TALLY_ERR_TIMEOUT] = "timeout",
    [TALLY_ERR_IO] = "io",
    [TALLY_ERR_PROTOCOL] = "protocol",
    [TALLY_ERR_STATUS_1XX] = "status_1xx",
    [TALLY_ERR_STATUS_3XX] = "status_3xx",
    [TALLY_ERR_STATUS_4XX] = "status_4xx",
    [TALLY_ERR_STATUS_5XX] = "status_5xx",
    [TALLY_ERR_CARD_UNKNOWN] = "card_unknown",
    [TALLY_ERR_CARD_MISMATCH] = "card_mismatch",
    [TALLY_ERR_CARD_DUPLICATE] = "card_duplicate",
    [TALLY_ERR_ERROR_CARD] = "error_card",
    [TALLY_ERR_JOB_FAILED] = "job_failed",
    [TALLY_ERR_CONNECTOR_AUTH] = "connector_auth",
    [TALLY_ERR_ACK_MISSING] = "ack_missing",
    [TALLY_ERR_RESULT_MISSING] = "result_missing",
};

const char *tally_error_name(enum tally_error e)
{
    return error_names[e];
}

/* FNV-1a, 64 bits: request ids are compared by hash (a collision is ~2^-64). */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

void tally_init(struct tally *t, uint64_t activity_base, enum tally_await await, bool match)
{
    memset(t, 0, sizeof(*t));
    t->activity_base = activity_base;
    t->await = await;
    t->match = match;
    hist_init(&t->webhook);
    hist_init(&t->ack);
    hist_init(&t->result);
}

void tally_free(struct tally *t)
{
    xfree(t->recs);
    t->recs = NULL;
}

/* Records grow by doubling; callers keep request numbers, never pointers into them. */
uint64_t tally_add(struct tally *t, uint64_t intended_ns, bool measured)
{
    struct tally_rec *r;

    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 65536;
        t->recs = xrealloc(t->recs, t->cap * sizeof(*t->recs));
    }
    r = &t->recs[t->n];
    r->intended_ns = intended_ns;
    r->flags = measured ? REC_MEASURED : 0;
    t->sent++;
    if (measured) {
        t->measured_sent++;
        if (!t->first_ns)
            t->first_ns = intended_ns;
    }
    return t->n++;
}

void tally_error(struct tally *t, enum tally_error e)
{
    t->errors[e]++;
}

/* The one place client errors become report kinds. */
static enum tally_error client_error_kind(enum client_error e)
{
    switch (e) {
    case CLIENT_ERR_CONNECT:
        return TALLY_ERR_CONNECT;
    case CLIENT_ERR_TIMEOUT:
        return TALLY_ERR_TIMEOUT;
    case CLIENT_ERR_PROTOCOL:
        return TALLY_ERR_PROTOCOL;
    case CLIENT_ERR_IO:
    case CLIENT_OK:
    default:
        return TALLY_ERR_IO;
    }
}

static enum tally_error status_kind(int status)
{
    if (status < 200)
        return TALLY_ERR_STATUS_1XX;
    if (status < 400)
        return TALLY_ERR_STATUS_3XX;
    return status < 500 ? TALLY_ERR_STATUS_4XX : TALLY_ERR_STATUS_5XX;
}

/* A card that came first named rid; the answer names another: one mismatch. */
static void check_rids(struct tally *t, struct tally_rec *r)
{
    if ((r->flags & REC_RID) && (r->flags & REC_CARD_RID) && !(r->flags & REC_BAD_CARD) &&
        r->rid_hash != r->card_rid_hash) {
        r->flags |= REC_BAD_CARD;
        t->errors[TALLY_ERR_CARD_MISMATCH]++;
    }
}

/* Reads {"requestId":"…"} from a 2xx answer (digestd's 202, the peers' answers). */
static void read_request_id(struct tally_rec *r, const struct client_result *res)
{
    struct json_object *o;
    const char *rid;

    if (res->body_len == 0 ||
        json_strict_object(res->body, res->body_len, ANSWER_JSON_DEPTH, false, &o) != 0)
        return;
    rid = json_strict_string(o, "requestId");
    if (rid && *rid) {
        r->rid_hash = fnv1a(rid);
        r->flags |= REC_RID;
    }
    json_object_put(o);
}

/* Counts an answered measured request as awaiting the cards it lacks. */
static void await_cards(struct tally *t, const struct tally_rec *r)
{
    if (t->await >= TALLY_AWAIT_ACK && !(r->flags & REC_ACK))
        t->waiting_ack++;
    if (t->await >= TALLY_AWAIT_RESULT && !(r->flags & REC_RESULT))
        t->waiting_result++;
}

/* Only 2xx answers count as latency samples; every failure is an error of its kind. */
void tally_answer(struct tally *t, uint64_t n, const struct client_result *res)
{
    struct tally_rec *r = &t->recs[n];
    bool measured = r->flags & REC_MEASURED;

    if (res->error != CLIENT_OK || res->status < 200 || res->status > 299) {
        r->flags |= REC_FAILED;
        if (measured)
            t->errors[res->error != CLIENT_OK ? client_error_kind(res->error)
                                              : status_kind(res->status)]++;
        return;
    }
    r->flags |= REC_ANSWERED;
    if (t->match)
        read_request_id(r, res);
    check_rids(t, r);
    if (!measured)
        return;
    t->answered++;
    t->last_answer_ns = res->done_ns;
    hist_record(&t->webhook, res->done_ns > r->intended_ns ? res->done_ns - r->intended_ns : 0);
    await_cards(t, r);
}

/* The record a card replies to, or NULL (an error counted) when it names none we sent. */
static struct tally_rec *card_record(struct tally *t, bool has_activity, uint64_t activity_id)
{
    if (!has_activity || activity_id < t->activity_base || activity_id - t->activity_base >= t->n) {
        t->errors[TALLY_ERR_CARD_UNKNOWN]++;
        return NULL;
    }
    return &t->recs[activity_id - t->activity_base];
}

/* Records the first card of kind flag; a second one is a duplicate. */
static void arrived(struct tally *t, struct tally_rec *r, uint32_t flag, struct hist *h,
                    uint64_t *waiting, uint64_t now_ns)
{
    bool counted = (r->flags & REC_MEASURED) && (r->flags & REC_ANSWERED);

    if (r->flags & flag) {
        t->errors[TALLY_ERR_CARD_DUPLICATE]++;
        return;
    }
    r->flags |= flag;
    if (!(r->flags & REC_MEASURED))
        return;
    hist_record(h, now_ns > r->intended_ns ? now_ns - r->intended_ns : 0);
    /* Answered already: it was counted as waiting for this card. */
    if (counted && waiting && *waiting)
        (*waiting)--;
}

/*
 * The first card with a request id fixes it for the record; a later card
 * or the answer that disagrees is one mismatch, counted once.
 */
void tally_card(struct tally *t, bool has_activity, uint64_t activity_id, enum tally_card kind,
                const char *request_id, uint64_t now_ns)
{
    struct tally_rec *r;

    if (kind == TALLY_CARD_OTHER) {
        t->other_cards++;
        return;
    }
    r = card_record(t, has_activity, activity_id);
    if (!r)
        return;
    if (request_id && *request_id && !(r->flags & REC_CARD_RID)) {
        r->card_rid_hash = fnv1a(request_id);
        r->flags |= REC_CARD_RID;
    } else if (request_id && *request_id && fnv1a(request_id) != r->card_rid_hash &&
               !(r->flags & REC_BAD_CARD)) {
        r->flags |= REC_BAD_CARD;
        t->errors[TALLY_ERR_CARD_MISMATCH]++;
    }
    check_rids(t, r);
    switch (kind) {
    case TALLY_CARD_ACK:
        arrived(t, r, REC_ACK, &t->ack, t->await >= TALLY_AWAIT_ACK ? &t->waiting_ack : NULL,
                now_ns);
        break;
    case TALLY_CARD_RESULT:
        arrived(t, r, REC_RESULT, &t->result,
                t->await >= TALLY_AWAIT_RESULT ? &t->waiting_result : NULL, now_ns);
        break;
    case TALLY_CARD_ERROR:
        t->errors[TALLY_ERR_ERROR_CARD]++;
        break;
    case TALLY_CARD_UPDATE_FAILED:
        t->errors[TALLY_ERR_JOB_FAILED]++;
        break;
    case TALLY_CARD_UPDATE_OK:
    case TALLY_CARD_OTHER:
    default:
        t->updates++;
        break;
    }
}

bool tally_cards_in(const struct tally *t)
{
    return t->waiting_ack == 0 && t->waiting_result == 0;
}

/* A measured request is complete when answered 2xx, with every awaited card and no bad one. */
static bool complete(const struct tally *t, const struct tally_rec *r)
{
    if ((r->flags & (REC_MEASURED | REC_ANSWERED)) != (REC_MEASURED | REC_ANSWERED) ||
        (r->flags & REC_BAD_CARD))
        return false;
    if (t->await >= TALLY_AWAIT_ACK && !(r->flags & REC_ACK))
        return false;
    return t->await < TALLY_AWAIT_RESULT || (r->flags & REC_RESULT);
}

/* Cards still missing now are errors: the drain is over. */
uint64_t tally_finish(struct tally *t)
{
    uint64_t done = 0;

    for (uint64_t i = 0; i < t->n; i++) {
        const struct tally_rec *r = &t->recs[i];
        if (complete(t, r)) {
            done++;
            continue;
        }
        if ((r->flags & (REC_MEASURED | REC_ANSWERED)) != (REC_MEASURED | REC_ANSWERED))
            continue;
        if (t->await >= TALLY_AWAIT_ACK && !(r->flags & REC_ACK))
            t->errors[TALLY_ERR_ACK_MISSING]++;
        if (t->await >= TALLY_AWAIT_RESULT && !(r->flags & REC_RESULT))
            t->errors[TALLY_ERR_RESULT_MISSING]++;
    }
    return done;
}
