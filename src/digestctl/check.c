/*
 * check.c: the pre-rollout checklist (SPEC §7): the queue snapshot and the
 * check's facts, judged by store/checklist.h, one line per item with its
 * mark and evidence. Exit 0 only when every item holds, so a deploy script
 * can gate USE_ASYNC_DIGEST on it.
 */
#include "ctl.h"

#include <json-c/json.h>

#include "field.h"
#include "store/checklist.h"
#include "store/cmd.h"
#include "store/inspect.h"
#include "table.h"

#define CHECK_LINE_MAX 512

static void check_print(struct ctl *ctl, struct json_object *result)
{
    struct json_object *items = field(result, "items");
    size_t n = field_len(items);

    for (size_t i = 0; i < n; i++) {
        struct json_object *it = field_at(items, i);
        char line[CHECK_LINE_MAX], shown[CHECK_LINE_MAX];

        snprintf(line, sizeof(line), "%-4s %s: %s", field_bool(it, "ok") ? "ok" : "FAIL",
                 field_str(it, "item"), field_str(it, "evidence"));
        fprintf(ctl->out, "%s\n",
                ctl->opts.wide ? line : fmt_cut(line, CTL_WIDTH, shown, sizeof(shown)));
    }
    if (field_bool(result, "ok"))
        fprintf(ctl->out, "check: all %zu items hold\n", n);
    else
        fprintf(ctl->out, "check: %lld of %zu items fail\n",
                (long long)(n - (size_t)field_int(result, "passed", 0)), n);
}

int ctl_check(struct ctl *ctl)
{
    struct json_object *stats = NULL, *facts = NULL, *result;
    struct store_cmd c;
    bool ok;
    int rc;

    inspect_queue_cmd(&c, ctl->cfg.prefix, ctl->cfg.worker_claim_idle_ms);
    rc = ctl_query(ctl, &c, inspect_queue_decode, &stats);
    if (rc == CTL_OK) {
        inspect_check_facts_cmd(&c, ctl->cfg.prefix);
        rc = ctl_query(ctl, &c, inspect_check_facts_decode, &facts);
    }
    if (rc != CTL_OK) {
        json_object_put(stats);
        return rc;
    }
    result = checklist_evaluate(stats, facts, ctl->opts.scale_to_zero);
    json_object_put(stats);
    json_object_put(facts);
    ok = field_bool(result, "ok");
    if (ctl->opts.json) {
        ctl_print_json(ctl, result);
    } else {
        check_print(ctl, result);
        json_object_put(result);
    }
    return ok ? CTL_OK : CTL_FAIL;
}
