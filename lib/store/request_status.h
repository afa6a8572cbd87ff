/*
 * request_status.h: the status of an audit record (SPEC §5: queued,
 * processing, delivered, failed, dead) as C knows it, and the names Redis
 * stores. C code parses and formats through this pair and never compares
 * the strings itself; the Lua scripts spell the names through the
 * REQUEST_STATUS_NAME_* macros (store/script.h quotes them for Lua), so a
 * status cannot be misspelt on either side. Pure.
 */
#pragma once

#include <stdbool.h>

#include "core/common.h"

#define REQUEST_STATUS_NAME_QUEUED "queued"
#define REQUEST_STATUS_NAME_PROCESSING "processing"
#define REQUEST_STATUS_NAME_DELIVERED "delivered"
#define REQUEST_STATUS_NAME_FAILED "failed"
#define REQUEST_STATUS_NAME_DEAD "dead"

enum request_status {
    REQUEST_STATUS_QUEUED = 0, /* on the stream, not taken yet (or handed back) */
    REQUEST_STATUS_PROCESSING, /* a worker (or the sync path) is on it */
    REQUEST_STATUS_DELIVERED,  /* the result card was accepted: ended */
    REQUEST_STATUS_FAILED,     /* a final error: ended */
    REQUEST_STATUS_DEAD,       /* the attempts ran out: ended */
};

#define REQUEST_STATUS_COUNT 5

/* The name Redis stores (a static string); "" for a value outside the enum. */
const char *request_status_name(enum request_status s);
/* 0 and *out for one of the five names (exact, case-sensitive); else DG_ERR_INVALID. */
int request_status_parse(const char *name, enum request_status *out) WARN_UNUSED;
/* delivered, failed or dead: nothing more will happen to the job unless it is requeued. */
bool request_status_ended(enum request_status s);
