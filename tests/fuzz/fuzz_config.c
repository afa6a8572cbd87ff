/*
 * fuzz_config.c: libFuzzer target for config_load's parsers, the
 * environment way: the input is split at '\n' into "KEY=VALUE" entries
 * (values are taken verbatim, as from a real environment). Every row's
 * parser is reachable; the rollout's USE_ASYNC_DIGEST and
 * ASYNC_DIGEST_ALLOW are the newest.
 *
 * Besides the sanitizers it checks what config.h promises, aborting when a
 * promise is broken: an error is one line that starts with a variable name
 * and ": "; a loaded config has a share of 0..100 that is 0 for false and 100
 * for true, a heartbeat word that says the same, and allow entries that are
 * non-empty and free of commas and white space.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"

#define MAX_ENTRIES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_loaded(const struct config *c)
{
    char want[8];

    check(c->async_percent <= 100);
    if (!c->use_async_digest) {
        check(c->async_percent == 0 && strcmp(c->async_mode, "false") == 0);
    } else if (strcmp(c->async_mode, "true") == 0) {
        check(c->async_percent == 100);
    } else {
        snprintf(want, sizeof(want), "%u%%", c->async_percent);
        check(strcmp(c->async_mode, want) == 0);
    }
    for (size_t i = 0; i < c->async_allow.len; i++) {
        const char *e = c->async_allow.items[i];
        check(*e && !strpbrk(e, ", \t"));
    }
}

/* "NAME: ..." with NAME made of the characters variables are named with. */
static void check_error(const char *err)
{
    size_t n = strspn(err, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");

    check(n > 0 && err[n] == ':' && err[n + 1] == ' ');
    check(!strchr(err, '\n'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    char *text = xmalloc(size + 1), *env[MAX_ENTRIES + 1], *line, *next;
    char err[512];
    struct config c;
    size_t n = 0;

    if (!quiet) { /* a user name in REDIS_URL warns on every run otherwise */
        log_setup(LOG_LEVEL_ERROR, true);
        quiet = 1;
    }
    memcpy(text, data, size);
    text[size] = '\0'; /* an embedded NUL simply ends that entry early */
    for (line = text; line && n < MAX_ENTRIES; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        env[n++] = line;
    }
    env[n] = NULL;
    if (config_load(&c, NULL, env, err, sizeof(err)) == 0)
        check_loaded(&c);
    else
        check_error(err);
    config_free(&c);
    xfree(text);
    return 0;
}
