/*
 * connector.h: digest-bench as the outside world of the bot it measures.
 * On --connector-listen it serves, on digestd's own HTTP server: the Bot
 * Framework connector (POST/PUT …/v3/conversations/{id}/activities/{id}:
 * cards are described with teams/card_describe.h and handed to the tally),
 * the client-credentials token endpoint (POST …/oauth2/v2.0/token), and
 * the OpenID metadata and key set of the key it signs activities with
 * (GET /v1/.well-known/openidconfiguration, /v1/.well-known/keys), so a
 * bot under test needs nothing else from Microsoft. The key is borrowed;
 * the tally is borrowed and written from the loop.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <openssl/evp.h>

#include "core/common.h"
#include "tally.h"
#include "teams/card_describe.h"

#define CONNECTOR_TOKEN "bench-token-1"

/* What one connector call says, read from its path and body (untrusted bytes). */
struct connector_msg {
    bool update;          /* PUT: an activity updated in place */
    bool has_activity;    /* the path names an activity id we can read */
    uint64_t activity_id; /* its leading decimal digits */
    struct card_summary card;
};

/*
 * Reads a connector call: method "POST" or "PUT", path
 * [prefix]/v3/conversations/{conv}/activities[/{id}], body the activity.
 * DG_ERR_INVALID for a path that is no connector call; a body that is not
 * a JSON object reads as card kind "none". Pure.
 */
int connector_parse(const char *method, const char *path, const char *body, size_t len,
                    struct connector_msg *out) WARN_UNUSED;

/* The tally's view of a card kind (ack, result, error, updates, the rest). */
enum tally_card connector_card_kind(const struct connector_msg *m);

struct connector;

/* Listens on host:port. On error logs and returns NULL. */
struct connector *connector_start(uv_loop_t *loop, const char *host, int port, EVP_PKEY *key,
                                  const char *kid, struct tally *tally);
/* http://host:port, a reachable address even when listening on any (borrowed). */
const char *connector_url(const struct connector *c);
/* Stops listening; cb runs once every connection has closed, then connector_free(). */
void connector_stop(struct connector *c, void (*cb)(void *data), void *data);
void connector_free(struct connector *c);
