/*
 * report.h: the end of a run on stdout, as a table or as the one JSON
 * object of SPEC §8: {"target","duration_s","requests","throughput_rps",
 * "errors":{kind:count…},"webhook":{"p50_ms","p90_ms","p99_ms","p999_ms",
 * "max_ms"},"ack":{…},"result":{…}} (ack and result only when listening as
 * the connector; errors lists the kinds that happened, so {} is a clean
 * run). Besides: mode, connections, rate_rps, sent, warmup_requests, cpu_s
 * (digest-bench's own), and per latency count, mean_ms and curve
 * ([[percentile, ms]…], for bench/plot.sh). Borrows everything.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "options.h"
#include "tally.h"

struct report {
    const struct bench_opts *opts;
    const struct tally *tally;
    uint64_t completed; /* tally_finish() */
    double duration_s;  /* measured: start of the measured part to its last answer */
};

void report_print(const struct report *r);
