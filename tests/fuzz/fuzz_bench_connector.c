/*
 * fuzz_bench_connector.c: libFuzzer target for what digest-bench reads from
 * the bot it measures: a connector call (connector_parse: method, path,
 * body) and a webhook answer's body (the requestId that tally_answer reads),
 * then the matching of the call to a request. Input: one byte picking POST
 * or PUT, the path up to the first newline, the rest the body (used both as
 * the call's body and as an answer's). Besides the sanitizers it checks the
 * header's promises, aborting when one is broken: an accepted path names a
 * conversation's activities, the card fields stay NUL-terminated within
 * their size, and the tally's counters stay consistent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connector.h"
#include "core/buf.h"
#include "tally.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* The answer-body half: a tally with two requests, one answered with the bytes. */
static void fuzz_answer(const char *body, size_t len, const struct connector_msg *m, int ok)
{
    static struct tally t; /* three histograms: not on the stack */
    struct client_result res = {.status = 202, .body = body, .body_len = len};
    uint64_t errors = 0;

    tally_init(&t, 1000, TALLY_AWAIT_ACK, true);
    tally_add(&t, 1, true);
    tally_add(&t, 2, true);
    tally_answer(&t, 0, &res);
    if (ok == 0)
        tally_card(&t, m->has_activity, m->activity_id, connector_card_kind(m), m->card.request_id,
                   3);
    check(t.answered == 1 && t.waiting_ack <= 1);
    check(tally_finish(&t) <= 1);
    for (int e = 0; e < TALLY_ERR_COUNT; e++)
        errors += t.errors[e];
    check(errors <= 3);
    tally_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *method = size && (data[0] & 1) ? "PUT" : "POST";
    const uint8_t *nl;
    char *path, *body;
    size_t plen, blen;
    struct connector_msg m;
    int ok;

    if (size == 0)
        return 0;
    data++;
    size--;
    nl = memchr(data, '\n', size);
    plen = nl ? (size_t)(nl - data) : size;
    blen = nl ? size - plen - 1 : 0;
    path = xstrndup((const char *)data, plen);
    body = xmalloc(blen + 1);
    memcpy(body, nl ? nl + 1 : data, blen);
    body[blen] = '\0';
    ok = connector_parse(method, path, body, blen, &m);
    check(ok == 0 || ok == DG_ERR_INVALID);
    if (ok == 0)
        check(strstr(path, "/v3/conversations/") != NULL);
    check(memchr(m.card.kind, '\0', sizeof(m.card.kind)) != NULL);
    check(memchr(m.card.request_id, '\0', sizeof(m.card.request_id)) != NULL);
    fuzz_answer(body, blen, &m, ok);
    xfree(body);
    xfree(path);
    return 0;
}
