/*
 * outbox.h: what digest-stub's connector received, pure. A record is
 * one POST/PUT under /v3/conversations/; the outbox keeps the newest `cap`
 * of them in a ring (GET /stub/outbox) and owns their strings once added.
 * Also the path parsing and the one-line summary printed per message.
 */
#pragma once

#include <stdbool.h>

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/common.h"
#include "content.h"
#include "teams/card_describe.h"

struct json_object;

struct stub_record {
    uint64_t seq;         /* set by stub_outbox_add: 1, 2, … never reused */
    uint64_t received_ms; /* wall clock */
    const char *method;   /* static: "POST" or "PUT" */
    const char *kind;     /* static: reply, send, update, other */
    char *path;           /* raw, still percent-encoded */
    char *conv;           /* decoded conversation id; NULL when malformed */
    char *activity_id;    /* decoded, from the path; NULL when none */
    char *auth;           /* Authorization header; NULL when absent */
    char *body;           /* as received */
    char *response_id;    /* the id answered; NULL when not 200 */
    int status;           /* the status answered; 0 = hung */
    struct card_summary card;
};

struct stub_outbox {
    struct stub_record *ring;
    size_t cap, head, len;
    uint64_t seq;
};

/*
 * Fills method, kind, conv and activity_id from a path holding
 * "/v3/conversations/" ([/prefix]/v3/conversations/{id}[/activities[/{aid}]]):
 * POST …/activities is send, POST …/activities/{aid} reply, PUT … update.
 */
void stub_record_parse_path(struct stub_record *rec, const char *method, const char *path);

/*
 * Appends the stdout line (no newline), e.g. "connector: POST reply
 * conv=a:17I0kl9EkpE1O9PH5TWrzr… activity=1485983408511 card=ack
 * requestId=… status=200"; the conversation id is cut at 24 bytes.
 */
int stub_record_line(const struct stub_record *rec, struct buf *out) WARN_UNUSED;

/* Frees the record's strings. */
void stub_record_free(struct stub_record *rec);

void stub_outbox_init(struct stub_outbox *ob, size_t cap);
/* Takes rec's strings and numbers it; the oldest record goes when full. */
void stub_outbox_add(struct stub_outbox *ob, struct stub_record *rec);
/*
 * A new JSON array of the records with seq > since (owned: json_object_put);
 * brief: only seq, received_ms, kind, status, card and request_id.
 */
struct json_object *stub_outbox_json(const struct stub_outbox *ob, uint64_t since, bool brief);
/* Drops every record; returns how many there were. seq keeps counting. */
size_t stub_outbox_clear(struct stub_outbox *ob);
void stub_outbox_free(struct stub_outbox *ob);
