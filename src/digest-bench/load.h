/*
 * load.h: the two ways digest-bench sends. Closed loop: `connections`
 * connections, each sending its next request as soon as the last one is
 * answered (what wrk does). Open loop: request i is due at t0 + i/rate
 * whatever happened to the others (wrk2's point: a stalled server cannot
 * hide its stall by slowing the client down), sent on an idle connection,
 * on a new one while fewer than `connections` are open, or queued until
 * one frees up; its latency counts from the due time either way. Due times
 * come from a timerfd (ns resolution; libuv timers have ms) polled by the
 * loop. Requests due before the warm-up ends are sent but not measured.
 * Owns its connections and request buffers; borrows payload and tally.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/common.h"
#include "payload.h"
#include "tally.h"

struct load_opts {
    bool open_loop;
    double rate;          /* open loop: requests a second */
    unsigned connections; /* closed loop: how many; open loop: the most at once */
    uint64_t warmup_ns, duration_ns;
    uint64_t timeout_ms; /* per request */
    struct sockaddr_storage addr;
};

struct load;
typedef void (*load_done_cb)(struct load *l, void *data);

/*
 * Starts sending now. done runs once, from the loop, when the schedule is
 * over and every request sent has been answered or failed.
 */
int load_start(uv_loop_t *loop, const struct load_opts *o, const struct payload *payload,
               struct tally *tally, load_done_cb done, void *data, struct load **out) WARN_UNUSED;

/* Stops sending at once (SIGINT): what is in flight still finishes. */
void load_cut_short(struct load *l);

/* When the measured part began (monotonic ns). */
uint64_t load_measure_start_ns(const struct load *l);

/* Closes everything; the load frees itself once libuv is done with it. */
void load_close(struct load *l);
