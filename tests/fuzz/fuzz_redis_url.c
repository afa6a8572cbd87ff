/*
 * fuzz_redis_url.c: libFuzzer target for REDIS_URL parsing (lib/config.c,
 * SPEC §2: redis://[[user][:password]@]host:port/db, rediss://, unix://),
 * through config_load as digestd and digestctl call it.
 *
 * Besides the sanitizers it checks what config.h promises: an accepted URL
 * leaves a complete target (a host and a port in 1..65535 for TCP, a path
 * for unix, TLS only for rediss://), and a refused one says so in one line
 * that starts with the variable's name and never echoes the password part
 * (everything between "://" and the last '@').
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *env[2], err[512];
    struct config cfg;
    char *v;
    int rc;

    if (size > 4096 || memchr(data, '\0', size))
        return 0;
    env[0] = xmalloc(size + 11);
    memcpy(env[0], "REDIS_URL=", 10);
    memcpy(env[0] + 10, data, size);
    env[0][size + 10] = '\0';
    env[1] = NULL;
    v = env[0] + 10;
    rc = config_load(&cfg, NULL, env, err, sizeof(err));
    if (rc == 0) {
        check(strcmp(cfg.redis_url, v) == 0);
        if (cfg.redis_kind == REDIS_TCP) {
            check(cfg.redis_host != NULL && cfg.redis_path == NULL);
            check(cfg.redis_port >= 1 && cfg.redis_port <= 65535);
            check(cfg.redis_tls == (strncmp(v, "rediss://", 9) == 0));
        } else {
            check(cfg.redis_path != NULL && cfg.redis_path[0] == '/' && !cfg.redis_tls);
        }
        check(cfg.redis_db >= 0);
        check(cfg.redis_password == NULL || cfg.redis_password[0] != '\0');
    } else {
        bool tcp = strncmp(v, "redis://", 8) == 0 || strncmp(v, "rediss://", 9) == 0;
        const char *scheme = tcp ? strstr(v, "://") : NULL, *at = strrchr(v, '@');

        check(strncmp(err, "REDIS_URL: ", 11) == 0 && !strchr(err, '\n'));
        /* A secret of four bytes or more never shows up in the message. */
        if (scheme && at && at > scheme + 3 + 4) {
            char secret[4096];
            size_t len = (size_t)(at - scheme - 3);

            memcpy(secret, scheme + 3, len);
            secret[len] = '\0';
            /* Unless the same text is also in the host part, which errors may quote. */
            if (!strstr(at + 1, secret))
                check(strstr(err + 11, secret) == NULL);
        }
    }
    config_free(&cfg);
    xfree(env[0]);
    return 0;
}
