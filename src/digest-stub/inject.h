/*
 * inject.h: digest-stub's failure injection (POST /stub/inject), pure.
 * A rule says how the next `remaining` requests to one target are answered:
 * another status (with Retry-After), a delay, or never. Rules of a target
 * are used in the order they were added. struct stub_rules owns its rules;
 * stub_rules_clear frees them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stub_target {
    STUB_TARGET_UPSTREAM = 0,
    STUB_TARGET_CONNECTOR,
    STUB_TARGET_TOKEN,
    STUB_TARGET_COUNT,
};

struct stub_rule {
    struct stub_rule *next;
    int status;            /* 0: the normal answer */
    int64_t retry_after_s; /* -1: no Retry-After */
    int64_t delay_ms;      /* -1: the usual delay */
    bool hang;             /* never answer (until shutdown) */
    uint64_t remaining;
};

struct stub_rules {
    struct stub_rule *head[STUB_TARGET_COUNT];
};

/* "upstream", "connector" or "token". */
const char *stub_target_name(enum stub_target t);

/*
 * Reads {"target","status","retry_after","count","delay_ms","hang"} (len
 * bytes of JSON). Returns NULL and fills *t and *r, or a message saying
 * what is wrong.
 */
const char *stub_rule_parse(const char *body, size_t len, enum stub_target *t, struct stub_rule *r);

/* Queues a copy of r behind the target's other rules. */
void stub_rules_add(struct stub_rules *rs, enum stub_target t, const struct stub_rule *r);

/* Uses one request of the target's first rule (copied to *out); false when none. */
bool stub_rules_take(struct stub_rules *rs, enum stub_target t, struct stub_rule *out);

/* Requests still to be answered by rules, over every target. */
uint64_t stub_rules_count(const struct stub_rules *rs);

void stub_rules_clear(struct stub_rules *rs);
