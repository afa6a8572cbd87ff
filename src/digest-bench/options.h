/*
 * options.h: digest-bench's command line (SPEC §1 and §8). Every bad value
 * exits 2 with one line naming the option and what is wrong; --help lists
 * every option and variable with its default; --version. Durations take
 * 500ms, 10s, 5m, 2h, 7d (a bare number is seconds); the target is a full
 * http:// URL.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "tally.h"

#define BENCH_DEFAULT_APP_ID "c9e8c047-2a74-40a2-b28a-b162d5f5327c"
#define BENCH_DEFAULT_SERVICE_URL "https://smba.trafficmanager.net/amer/"

struct bench_opts {
    const char *target;
    char host[256]; /* without brackets */
    int port;
    char path[2048]; /* path and query, "/" at least */
    char host_header[300];
    bool open_loop;
    double rate;
    unsigned connections;
    uint64_t duration_ms, warmup_ms, timeout_ms, drain_ms;
    bool listen;
    char listen_host[256];
    int listen_port;
    const char *service_url; /* NULL: the connector's URL, else the Teams default */
    enum tally_await await;
    const char *key_dir;
    char key_dir_buf[256];
    const char *app_id;
    unsigned conversations;
    unsigned shapes; /* bit per enum conv_kind */
    const char *text;
    bool json;
};

/* Fills o from argv and the environment; exits 0 for --help/--version, 2 on bad usage. */
void bench_opts_parse(int argc, char **argv, struct bench_opts *o);
