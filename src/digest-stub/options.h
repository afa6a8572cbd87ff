/*
 * options.h: the command line of digest-stub. One table lists every
 * option with its environment variable, default and help, and drives both
 * the parser and --help (SPEC §1: a bad value exits 2 with one line naming
 * the option or variable). Strings point into argv, the environment or the
 * struct itself, all of which outlive the process's work: nothing to free.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "content.h"
#include "teams/activity_build.h"

enum stub_cmd {
    STUB_CMD_SERVE = 0,
    STUB_CMD_SAY,
    STUB_CMD_TOKEN,
};

/* Default address: the port of SPEC §2's default DIGEST_UPSTREAM_URL. */
#define STUB_DEFAULT_LISTEN "127.0.0.1:8000"
/* The bot id of research fixture (a): recipient 28:<this>. */
#define STUB_DEFAULT_APP_ID "c9e8c047-2a74-40a2-b28a-b162d5f5327c"

/* --alg of `token`: HS256 is keyed with the public key's PEM, the classic confusion attack. */
enum stub_tok_alg {
    STUB_ALG_RS256 = 0,
    STUB_ALG_RS384,
    STUB_ALG_RS512,
    STUB_ALG_HS256,
    STUB_ALG_NONE,
};

#define STUB_MAX_ENDORSEMENTS 16

struct stub_opts {
    enum stub_cmd cmd;
    /* serve */
    char listen_host[64];
    int listen_port;
    uint64_t delay_min_ms, delay_max_ms;
    double failure_rate;
    unsigned items;
    uint64_t seed;
    uint64_t token_ttl_ms;
    bool connector_auth;
    unsigned outbox_max;
    /* every command */
    const char *key_dir;
    const char *app_id;
    /* say and token */
    const char *text;
    const char *to;
    const char *stub_url;
    const char *service_url; /* NULL: stub_url + "/" */
    enum conv_kind conversation;
    const char *conversation_id;
    const char *activity_id;
    uint64_t timeout_ms;
    uint64_t ttl_ms;
    /* serve: the JWKS key's "endorsements"; n_endorsements 0 with
     * has_endorsements publishes [], has_endorsements false leaves the
     * property out (a key without it endorses every channel) */
    const char *endorsements[STUB_MAX_ENDORSEMENTS];
    size_t n_endorsements;
    bool has_endorsements;
    /* token: forged shapes for auth tests; the defaults make a good token */
    const char *tok_aud;       /* NULL: app_id */
    const char *tok_iss;       /* default https://api.botframework.com */
    const char *tok_kid;       /* NULL: the key's thumbprint */
    enum stub_tok_alg tok_alg; /* how the token is signed and what its header says */
    int64_t exp_offset_s;      /* exp = now + this when has_exp_offset, else now + ttl */
    bool has_exp_offset;
    int64_t nbf_offset_s; /* nbf = iat = now + this (default -5) */
    bool no_serviceurl;   /* leave the serviceurl claim out */
    bool bad_signature;   /* change one signature character after signing */
    /* storage behind some of the pointers above */
    char endorsements_buf[256];
    char key_dir_buf[128];
    char service_url_buf[1024];
};

/*
 * Fills o from defaults, then the environment, then argv (argv[1] may name
 * the command: serve, say or token; serve when absent). Exits 0 after
 * --help or --version, and 2 with one line on stderr for anything invalid.
 */
void stub_opts_parse(int argc, char **argv, struct stub_opts *o);
