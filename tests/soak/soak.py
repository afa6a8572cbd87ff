#!/usr/bin/env python3
"""Soak of "at most once" (issue 10; not in CI). One api digestd and three
workers (WORKER_CLAIM_IDLE_MS=2000, WORKER_CLAIM_INTERVAL_MS=500) on a Redis
with appendonly + appendfsync always, digest-stub as Teams and the upstream.
Digests are posted at --rate a second; meanwhile a worker is kill -9ed every
--kill-every seconds (a replacement started at once), one worker gets a
SIGTERM, one is SIGSTOPped for 5 s, and Redis is kill -9ed and restarted
from its AOF after 3 s; about 2 % of connector requests answer 429
(Retry-After 1) and 1 % 503 (no ambiguous outcome: both are rejections).

It then counts, per request id, the result cards digest-stub's connector
accepted (its outbox) and the audit records in Redis, and prints lost,
doubled, and doubled within the crash window (a double whose first card
was accepted less than --window-ms before a kill -9 or SIGSTOP), plus the
time from the connector's answer to the record ("recorded … us after")
from the workers' logs.

  python3 tests/soak/soak.py --digests 600        (from the repository root,
                                                   after building into build/)
"""
import argparse
import json
import os
import random
import re
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
os.chdir(os.path.join(HERE, "..", "integration"))  # harness paths are relative to it

from harness import Digestd, Stub, hgetall, redis_cmd, wait_until  # noqa: E402
from test_worker import AofRedis, activity  # noqa: E402

WORKER_ENV = {"WORKER_CLAIM_IDLE_MS": "2000", "WORKER_CLAIM_INTERVAL_MS": "500",
              "RETRY_BASE_MS": "100", "RETRY_MAX_MS": "1000", "SHUTDOWN_GRACE_MS": "3000"}


def pct(xs, p):
    if not xs:
        return 0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digests", type=int, default=600)
    ap.add_argument("--rate", type=float, default=20.0, help="digests a second")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--kill-every", type=float, default=6.0)
    ap.add_argument("--window-ms", type=float, default=50.0)
    ap.add_argument("--p429", type=float, default=0.02)
    ap.add_argument("--p503", type=float, default=0.01)
    ap.add_argument("--upstream-delay", default="200ms")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    rng = random.Random(a.seed)

    redis = AofRedis().start()
    stub = Stub("--outbox-max", str(max(20000, a.digests * 6)),
                "--upstream-delay", a.upstream_delay).start()
    env = stub.env()
    api_env = dict(env)
    api_env.update(WORKER_ENV)  # one configuration for every process, as deployed
    api = Digestd(redis.url, api_env, args=["--role", "api"]).start()
    workers, retired, events = [], [], []  # events: (monotonic-free wall ms, what)
    t_start = time.time()

    def now_ms():
        return time.time() * 1000.0

    def new_worker():
        e = dict(env)
        e.update(WORKER_ENV)
        w = Digestd(redis.url, e, args=["--role", "worker"])
        w.start(wait_ready=False)
        workers.append(w)
        return w

    for _ in range(a.workers):
        new_worker()

    posted, errors = {}, []  # request id -> post time (ms)
    lock = threading.Lock()
    stop_inject = threading.Event()

    def post_all():
        acts = [activity(stub) for _ in range(a.digests)]
        t0 = time.time()
        sem = threading.Semaphore(16)

        def one(act):
            try:
                status, _, body = api.post_json(act)
                if status in (200, 202):
                    rid = json.loads(body).get("requestId")
                    with lock:
                        posted[rid] = now_ms()
                else:
                    errors.append(status)
            except Exception as ex:  # a post lost to the Redis restart: counted, not fatal
                errors.append(str(ex))
            finally:
                sem.release()

        threads = []
        for i, act in enumerate(acts):
            delay = t0 + i / a.rate - time.time()
            if delay > 0:
                time.sleep(delay)
            sem.acquire()
            th = threading.Thread(target=one, args=(act,))
            th.start()
            threads.append(th)
        for th in threads:
            th.join()

    def inject():
        # Rules queue in the stub: one rule now and then makes a share of
        # all connector requests (acks, results, updates) fail.
        per_s = a.rate * 3
        while not stop_inject.is_set():
            r = rng.random()
            try:
                if r < a.p429 / (a.p429 + a.p503):
                    stub.inject(target="connector", status=429, retry_after=1, count=1)
                else:
                    stub.inject(target="connector", status=503, count=1)
            except Exception:
                pass
            stop_inject.wait(1.0 / (per_s * (a.p429 + a.p503)))

    poster = threading.Thread(target=post_all)
    injector = threading.Thread(target=inject)
    poster.start()
    injector.start()
    duration = a.digests / a.rate
    plan = []  # (seconds after start, action)
    t = a.kill_every
    while t < duration:
        plan.append((t, "kill9"))
        t += a.kill_every
    plan += [(duration * 0.25, "sigterm"), (duration * 0.45, "redis"), (duration * 0.65, "sigstop")]
    plan.sort()
    for at, what in plan:
        delay = t_start + at - time.time()
        if delay > 0:
            time.sleep(delay)
        live = [w for w in workers if w.proc.poll() is None]
        if what == "kill9" and live:
            w = rng.choice(live)
            events.append((now_ms(), "kill9"))
            w.proc.kill()
            w.proc.wait()
            workers.remove(w)
            retired.append(w)
            new_worker()
        elif what == "sigterm" and live:
            w = rng.choice(live)
            w.proc.send_signal(signal.SIGTERM)
            workers.remove(w)
            retired.append(w)
            new_worker()
        elif what == "sigstop" and live:
            w = rng.choice(live)
            events.append((now_ms(), "sigstop"))
            w.proc.send_signal(signal.SIGSTOP)
            time.sleep(5)
            w.proc.send_signal(signal.SIGCONT)
        elif what == "redis":
            events.append((now_ms(), "redis"))
            redis.proc.kill()
            redis.proc.wait()
            time.sleep(3)
            redis.start()
    poster.join()
    stop_inject.set()
    injector.join()

    # Drain: every accepted request ends (or the deadline passes).
    def ended():
        script = ("local n = 0 for i, k in ipairs(KEYS) do local s = redis.call('HGET', k, "
                  "'status') if s == 'delivered' or s == 'failed' or s == 'dead' then n = n + 1 "
                  "end end return n")
        # A request served while Redis was away (the webhook's own
        # fallback) has no record: it is counted apart, below.
        keys = ["{digest}:req:%s" % r for r in posted if r not in no_record]
        done = 0
        for i in range(0, len(keys), 500):
            done += redis_cmd(redis.port, "EVAL", script, str(len(keys[i:i + 500])),
                              *keys[i:i + 500])
        return done == len(keys)

    no_record = {r for r in posted if not hgetall(redis.port, "{digest}:req:%s" % r)}
    try:
        wait_until(ended, 180, "every job to end", interval=1)
    except AssertionError as ex:
        print("warning:", ex)
    time.sleep(3)  # acknowledgment updates, late results
    stub.call("DELETE", "/stub/inject")

    box = stub.call("GET", "/stub/outbox?brief=1")[1]
    results, updates = {}, {}
    for m in box:
        if m["card"] == "result" and m["kind"] == "reply" and m["status"] == 200:
            results.setdefault(m["request_id"], []).append(m["received_ms"])
        if m["kind"] == "update" and m["status"] == 200:
            updates[m["request_id"]] = updates.get(m["request_id"], 0) + 1
    statuses, late, unknown = {}, 0, 0
    for rid in posted:
        rec = hgetall(redis.port, "{digest}:req:%s" % rid)
        statuses[rec.get("status", "none")] = statuses.get(rec.get("status", "none"), 0) + 1
        late += "late_result_activity_id" in rec
    ended_without = [r for r in posted if r not in results and
                     hgetall(redis.port, "{digest}:req:%s" % r).get("status") in ("failed", "dead")]
    lost = [r for r in posted if r not in results and r not in ended_without]
    doubled = {r: ts for r, ts in results.items() if len(ts) > 1}
    fault_times = [t for t, what in events if what in ("kill9", "sigstop")]
    in_window = [r for r, ts in doubled.items()
                 if any(0 <= f - min(ts) < a.window_ms for f in fault_times)]
    logs = "".join(w.log() for w in workers + retired)
    windows = [int(x) / 1000.0 for x in re.findall(r"recorded (\d+) us after", logs)]
    unknown = logs.count("its outcome is unknown")
    out = {
        "digests": a.digests, "accepted": len(posted), "post_errors": len(errors),
        "kill9": sum(1 for _, w in events if w == "kill9"), "sigstop": 1, "sigterm": 1,
        "redis_restarts": 1, "results": sum(len(v) for v in results.values()),
        "lost": len(lost), "doubled": len(doubled), "doubled_in_window": len(in_window),
        "ended_without_result": len(ended_without), "statuses": statuses,
        "served_without_redis": len(no_record),
        "ack_updates_twice": sum(1 for v in updates.values() if v > 1),
        "late_results_kept": late, "resent_unknown": unknown,
        "window_ms": {"n": len(windows), "p50": pct(windows, 50), "p90": pct(windows, 90),
                      "p99": pct(windows, 99), "p99.9": pct(windows, 99.9),
                      "over_50": sum(1 for x in windows if x >= 50),
                      "max": max(windows) if windows else 0},
        "seconds": round(time.time() - t_start, 1),
    }
    print(json.dumps(out, indent=2))

    if lost:
        print("lost:", lost[:20])
    for r in list(doubled)[:20]:
        print("doubled:", r, doubled[r], "in window" if r in in_window else "")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)

    for w in workers + retired:
        try:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGCONT)
                w.stop()
        except Exception:
            pass
        w.cleanup()
    api.stop()
    api.cleanup()
    stub.stop()
    redis.stop()
    return 1 if lost or len(doubled) > len(in_window) else 0


if __name__ == "__main__":
    sys.exit(main())
