/* rollout.c: see rollout.h. */
#include "rollout.h"

#include <string.h>

#include "config.h"
#include "core/common.h"
#include "core/hash.h"

#define ROLLOUT_BUCKETS 100 /* SPEC §2: hash mod 100 < N */

const char *rollout_user_id(const char *aad_id, const char *from_id)
{
    return aad_id && *aad_id ? aad_id : from_id;
}

unsigned rollout_bucket(const char *user_id)
{
    return (unsigned)(hash_fnv1a(user_id) % ROLLOUT_BUCKETS);
}

/* Exact, case-sensitive: Teams ids are. The list is short (a team), so a scan does. */
static bool allowed(const struct config_list *allow, const char *id)
{
    if (!id || !*id)
        return false;
    for (size_t i = 0; i < allow->len; i++) {
        if (strcmp(allow->items[i], id) == 0)
            return true;
    }
    return false;
}

static bool decide(enum rollout_why *why, enum rollout_why what)
{
    if (why)
        *why = what;
    return what == ROLLOUT_ALLOWED || what == ROLLOUT_IN_SHARE;
}

bool rollout_async(const struct config *cfg, const char *aad_id, const char *from_id,
                   const char *conv_key, enum rollout_why *why)
{
    if (!cfg->use_async_digest)
        return decide(why, ROLLOUT_OFF);
    if (allowed(&cfg->async_allow, aad_id) || allowed(&cfg->async_allow, from_id) ||
        allowed(&cfg->async_allow, conv_key))
        return decide(why, ROLLOUT_ALLOWED);
    if (rollout_bucket(rollout_user_id(aad_id, from_id)) < cfg->async_percent)
        return decide(why, ROLLOUT_IN_SHARE);
    return decide(why, ROLLOUT_OUTSIDE);
}

const char *rollout_why_name(enum rollout_why why)
{
    static const char *const names[] = {"off", "allowed", "in_share", "outside"};

    return (size_t)why < ARRAY_SIZE(names) ? names[why] : "unknown";
}
