/*
 * card_describe.h: the inverse of card.h, for the programs that receive
 * digestd's cards (digest-stub's connector, digest-bench's): which card an
 * activity carries and which request it names. Pure; the activity is
 * borrowed.
 */
#pragma once

struct json_object;

/* What a connector message carries. */
struct card_summary {
    char kind[16];       /* ack, ack-delivered, ack-failed, result, error, help,
                            status, card (unrecognised card), text, none */
    char request_id[64]; /* the card's "Request" fact, or "" */
};

/*
 * Names the first attachment of a bot activity (may be NULL) by its heading,
 * as teams/card.c writes them.
 */
void card_describe(struct json_object *activity, struct card_summary *out);
