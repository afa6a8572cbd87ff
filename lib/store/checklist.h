/*
 * checklist.h: the pre-rollout checklist of SPEC §7 (digestctl check),
 * judged from two inspect.h answers: the queue snapshot and the check's
 * facts. One line per item with its verdict and the evidence, so a deploy
 * script can gate on the whole and a person can see which item failed and
 * why. Pure: JSON in, JSON out.
 *
 * The items: a live worker; the group exists and is being read; nothing
 * stuck; recent audit records; a job delivered end to end recently; no
 * dead jobs in the last hour; a Redis version that supports what digestd
 * uses (7.0: consumer group lag, XAUTOCLAIM naming deleted entries; KEDA's
 * redis-streams scaler in lag mode needs 7.0 too).
 * scale_to_zero accepts no live worker while nothing is unread or pending
 * (workers that KEDA scales to zero).
 */
#pragma once

#include <stdbool.h>

struct json_object;

#define CHECKLIST_ITEMS 7

/*
 * {"ok","passed","total","redis_version","items":[{"item","ok","evidence"}]}
 * (owned; redis_version is INFO server's, "" when unknown);
 * stats and facts are borrowed.
 */
struct json_object *checklist_evaluate(struct json_object *stats, struct json_object *facts,
                                       bool scale_to_zero);

/* "7.0.15" and later: true; "6.2.14", "", "x": false. */
bool checklist_redis_version_ok(const char *version);
