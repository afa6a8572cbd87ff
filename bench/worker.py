#!/usr/bin/env python3
"""The worker (digestd --role worker): throughput, end-to-end overhead, memory.

usage: bench/worker.py throughput [-n 20000] [--delay 0] [--concurrency 256]
       bench/worker.py overhead   [--rate 500] [--duration 30] [--warmup 3] [--delay 0]
                                  [--concurrency 1000]
       bench/worker.py memory     [-n 10000] [--delay 30s] [--concurrency 10000]
       (BUILD_DIR=build-wbench by default; configured and built as Release here;
        NO_BUILD=1 BUILD_DIR=/some/dir runs the digestd and digest-stub found there;
        KEEP_LOGS=/some/dir keeps worker.log and api.log there)

Every mode starts a private redis-server, `digest-stub serve` (upstream with
--upstream-delay, token endpoint, connector) and two Release digestd
processes on loopback: `--role api` takes the webhooks (each a `digest
advisors` activity with a unique activity id and its own conversation, so
Teams pacing never delays a card), `--role worker` delivers the jobs. Both
run with BOT_AUTH=off: this measures the worker, not token checks. All
processes are started and stopped by pid (tests/integration/harness.py).

throughput  posts N activities to the api first (the stream holds N jobs,
            the api's N ack cards are at the stub), then starts the worker
            and waits until the group has nothing pending and nothing left to
            read (the audit record says `delivered` in the same script that
            XACKs, so that is "every record delivered"); then checks every
            audit record. Rate = N / (last delivered_ms - first started_ms),
            both from the audit records (wall clock, ms). Also the wall time
            from the worker's start, and CPU per job (utime+stime from /proc,
            until the last acknowledgment update reached the stub).
overhead    worker running, open loop at --rate for warmup + duration
            seconds (request i sent at t0 + i/rate on its own connection,
            opened 30 ms before). Per job: stub received_ms of the result
            card - client time.time() at send - upstream delay. received_ms
            is CLOCK_REALTIME truncated to ms, so a value x means [x, x+1):
            both x and x+1 are printed, the table in bench/RESULTS.md gives
            x+1 (upper bound). Also the worker's own view from the audit
            record (delivered_ms - created_ms - delay, both ms wall clock).
            The outbox is read every 0.2 s (?since=&brief=1) by a separate
            process: a 16 MB answer holds only about 11,000 full cards, and
            serialising them stalled the stub (and so every delivery) for
            tens of ms a second, which was most of the measured p99.
memory      the worker starts on an empty stream (baseline RSS), then N jobs
            are posted; with a --delay longer than the posting all N are in
            flight at once (the stub's pending count says so). VmRSS at that
            point and VmHWM at the end, from /proc/<pid>/status.
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, HERE)
import ack_latency as al  # noqa: E402  (build, activities, open loop, CPU, percentiles)
import slow_upstream as su  # noqa: E402  (/proc readings)

harness = al.harness
FILL_CONNECTIONS = 32


def parse_delay_ms(s):
    """digest-stub's --upstream-delay for one fixed value: 0, 250ms, 5s."""
    if s.endswith("ms"):
        return int(s[:-2])
    if s.endswith("s"):
        return int(float(s[:-1]) * 1000)
    return int(s)


# --- Redis, pipelined ---------------------------------------------------------

def redis_pipeline(port, commands, chunk=2000):
    """Replies to many commands over one connection (the harness opens one per command)."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")
        for i in range(0, len(commands), chunk):
            part = commands[i:i + chunk]
            s.sendall(b"".join(harness._encode(c) for c in part))
            out.extend(harness._read_reply(f) for _ in part)
    return out


def group_state(port):
    """(entries read, pending, lag) of the workers group."""
    groups = harness.redis_cmd(port, "XINFO", "GROUPS", "{digest}:requests")
    for g in groups:
        d = dict(zip(g[0::2], g[1::2]))
        if d.get("name") == "workers":
            return d.get("entries-read") or 0, d["pending"], d.get("lag")
    return 0, 0, None


def audit_records(port, request_ids):
    fields = ["status", "attempts", "created_ms", "started_ms", "fetched_ms", "delivered_ms"]
    replies = redis_pipeline(port, [["HMGET", "{digest}:req:" + r] + fields for r in request_ids])
    return [dict(zip(fields, v)) for v in replies]


# --- the world ----------------------------------------------------------------

class World:
    """redis-server, digest-stub, a --role api and (on demand) a --role worker digestd."""

    def __init__(self, delay, outbox_max, worker_env):
        self.redis = harness.RedisServer().start()
        self.stub = harness.Stub("--upstream-delay", delay, "--outbox-max", str(outbox_max)).start()
        env = self.stub.env()
        env.update({"BOT_AUTH": "off", "LOG_LEVEL": "info", "MAX_CONNECTIONS": "20000"})
        self.env = env
        self.api = harness.Digestd(self.redis.url, dict(env), args=["--role", "api"],
                                   auth="off").start()
        wenv = dict(env)
        wenv.update(worker_env)
        self.worker = harness.Digestd(self.redis.url, wenv, args=["--role", "worker"], auth="off")

    def pids(self):
        p = {"api": self.api.proc.pid, "stub": self.stub.proc.pid, "redis": self.redis.proc.pid,
             "client": os.getpid()}
        if self.worker.proc:
            p["worker"] = self.worker.proc.pid
        return p

    def stop(self):
        if os.environ.get("KEEP_LOGS"):
            # digestd logs, for reading why (the harness removes its directories)
            for name, d in (("worker", self.worker), ("api", self.api)):
                with open(os.path.join(os.environ["KEEP_LOGS"], name + ".log"), "w") as f:
                    f.write(d.log())
        for name, stop in (("worker", self.worker.cleanup), ("api", self.api.cleanup),
                           ("stub", self.stub.stop), ("redis", self.redis.stop)):
            try:
                if name == "worker" and self.worker.proc and self.worker.proc.poll() is None:
                    rc = self.worker.stop()
                    if rc != 0:
                        print("worker exited %s" % rc, file=sys.stderr)
                stop()
            except Exception as e:  # keep stopping the others
                print("stop %s: %s" % (name, e), file=sys.stderr)

    def log_tail(self, d, n=15):
        return "\n".join(d.log().splitlines()[-n:])


def cpu_all(pids):
    return {k: al.cpu_seconds(p) for k, p in pids.items()}


def print_cpu(cpu0, cpu1, busy0, busy1, jobs, label):
    parts = ["%s %.0f" % (k, (cpu1[k] - cpu0[k]) * 1e6 / jobs) for k in cpu1 if k in cpu0]
    print("%s CPU µs per job: %s; machine busy %.1f CPU-s" % (label, ", ".join(parts),
                                                              busy1 - busy0))


# --- posting ------------------------------------------------------------------

async def post_keepalive(port, payloads, conns):
    """Posts every payload over conns keep-alive connections; returns the request ids."""
    ids = [None] * len(payloads)
    nxt = iter(range(len(payloads)))

    async def one_conn():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in nxt:
                writer.write(payloads[i])
                status, body = await al.read_response(reader)
                if status != 202:
                    raise SystemExit("webhook answered %d: %s" % (status, body[:200]))
                ids[i] = json.loads(body)["requestId"]
        finally:
            writer.close()
    await asyncio.gather(*(one_conn() for _ in range(conns)))
    return ids


def fill(world, n, tag):
    """Posts n activities to the api digestd; returns their request ids."""
    template = al.activity_template(world.stub.service_url)
    payloads = [al.request_bytes(template, i, tag).replace(b"Connection: close",
                                                           b"Connection: keep-alive")
                for i in range(n)]
    t = time.monotonic()
    ids = asyncio.run(post_keepalive(world.api.port, payloads, FILL_CONNECTIONS))
    print("posted %d activities in %.1f s (%.0f/s)" % (n, time.monotonic() - t,
                                                        n / (time.monotonic() - t)))
    return ids


def wait_connector(world, want, timeout):
    """Until the stub's connector has answered want requests (ack, result, update)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = world.stub.stats()
        if st["connector_requests"] >= want:
            return st
        time.sleep(0.1)
    return world.stub.stats()


# --- throughput ---------------------------------------------------------------

def throughput(args):
    delay_ms = parse_delay_ms(args.delay)
    world = World(args.delay, 1000, {"WORKER_CONCURRENCY": str(args.concurrency),
                                     "UPSTREAM_TIMEOUT_MS": str(max(30000, 4 * delay_ms))})
    try:
        ids = fill(world, args.n, "t%x" % os.getpid())
        xlen = harness.redis_cmd(world.redis.port, "XLEN", "{digest}:requests")
        wait_connector(world, args.n, 60)  # the api's ack cards, out of the way
        print("stream: %d entries; worker WORKER_CONCURRENCY=%d, upstream delay %d ms"
              % (xlen, args.concurrency, delay_ms))
        t_spawn = time.monotonic()
        world.worker.start()
        pids = world.pids()
        cpu0 = cpu_all(pids)
        cpu0["worker"] = 0.0  # all of it, from exec (jobs may start before /readyz answers)
        busy0, _ = al.machine_busy()
        hwm = 0
        while True:
            read, pending, lag = group_state(world.redis.port)
            hwm = max(hwm, su.status_of(pids["worker"])["VmRSS"])
            if read >= args.n and pending == 0:
                break
            if world.worker.proc.poll() is not None or time.monotonic() - t_spawn > args.timeout:
                raise SystemExit("not done: read %s pending %s lag %s\n%s"
                                 % (read, pending, lag, world.log_tail(world.worker)))
            time.sleep(0.05)
        t_done = time.monotonic()
        st = wait_connector(world, 3 * args.n, 60)  # ack + result + ack update per job
        cpu1 = cpu_all(pids)
        busy1, _ = al.machine_busy()
        recs = audit_records(world.redis.port, ids)
        report_throughput(args, recs, t_done - t_spawn, st, delay_ms)
        print("worker VmRSS peak sampled %.1f MB, VmHWM %.1f MB"
              % (hwm / 1024, su.status_of(pids["worker"])["VmHWM"] / 1024))
        print_cpu(cpu0, cpu1, busy0, busy1, args.n, "worker phase")
    finally:
        world.stop()


def report_throughput(args, recs, wall, st, delay_ms):
    status = {}
    for r in recs:
        status[r["status"]] = status.get(r["status"], 0) + 1
    attempts = {}
    for r in recs:
        attempts[r["attempts"]] = attempts.get(r["attempts"], 0) + 1
    done = [r for r in recs if r["status"] == "delivered"]
    first = min(int(r["started_ms"]) for r in done)
    last = max(int(r["delivered_ms"]) for r in done)
    print("audit: status %s, attempts %s" % (status, attempts))
    print("connector: %d requests (want %d = ack + result + ack update per job)"
          % (st["connector_requests"], 3 * args.n))
    print("THROUGHPUT: %d jobs, first started_ms -> last delivered_ms %.3f s = %.0f jobs/s; "
          "worker start -> all acked %.2f s = %.0f jobs/s"
          % (len(done), (last - first) / 1e3, len(done) * 1e3 / max(1, last - first), wall,
             len(done) / wall))
    # Steady state: deliveries per second over the middle 60 % of the span,
    # without the first wave's start and the last wave's tail.
    ends = sorted(int(r["delivered_ms"]) for r in done)
    t0, t1 = first + 0.2 * (last - first), first + 0.8 * (last - first)
    mid = sum(1 for t in ends if t0 <= t < t1)
    print("STEADY: %d deliveries in the middle 60 %% of the span (%.3f s) = %.0f jobs/s"
          % (mid, (t1 - t0) / 1e3, mid * 1e3 / max(1, t1 - t0)))
    per = [int(r["delivered_ms"]) - int(r["fetched_ms"]) for r in done]
    fetch = [int(r["fetched_ms"]) - int(r["started_ms"]) - delay_ms for r in done]
    print("per job (ms): started -> fetched - delay: %s" % al.summary(fetch))
    print("per job (ms): fetched -> delivered:       %s" % al.summary(per))


# --- overhead -----------------------------------------------------------------

def outbox_poller(stub_port, stop, conn):
    """Every 0.2 s: new outbox records (brief: no bodies, so the stub serialises
    little and stalls no delivery); keeps request_id -> received_ms per card kind."""
    stub = harness.Stub()
    stub.port = stub_port
    since, cards = 0, {"result": {}, "ack": {}}
    t_cpu = time.process_time()
    while True:
        last = stop.is_set()
        status, recs = stub.call("GET", "/stub/outbox?since=%d&brief=1" % since)
        if status != 200:
            cards["error"] = "GET /stub/outbox answered %d" % status
            break
        for m in recs:
            since = max(since, m["seq"])
            kind = m.get("card")
            if kind in cards and m.get("status") == 200 and m.get("request_id"):
                cards[kind].setdefault(m["request_id"], m["received_ms"])
        if last:
            break
        stop.wait(0.2)  # small batches: each poll holds the stub's loop
    cards["cpu_s"] = time.process_time() - t_cpu
    conn.send(cards)
    conn.close()


def overhead(args):
    delay_ms = parse_delay_ms(args.delay)
    world = World(args.delay, 20000, {"WORKER_CONCURRENCY": str(args.concurrency),
                                      "UPSTREAM_TIMEOUT_MS": str(max(30000, 4 * delay_ms))})
    try:
        world.worker.start()
        n_warm = int(args.warmup * args.rate)
        n = n_warm + int(args.duration * args.rate)
        stop = multiprocessing.Event()
        parent, child = multiprocessing.Pipe()
        poller = multiprocessing.Process(target=outbox_poller,
                                         args=(world.stub.port, stop, child))
        poller.start()
        template = al.activity_template(world.stub.service_url)
        pids = world.pids()
        print("api pid %d, worker pid %d (WORKER_CONCURRENCY=%d), upstream delay %d ms; "
              "%d requests at %.0f/s (%d warm-up)" % (pids["api"], pids["worker"],
                                                      args.concurrency, delay_ms, n, args.rate,
                                                      n_warm))
        cpu0 = cpu_all(pids)
        busy0, _ = al.machine_busy()
        recs = asyncio.run(al.open_loop(world.api.port, template, args.rate, n, 0.2,
                                        "o%x" % os.getpid()))
        ok = [r for r in recs if r.get("request_id")]
        # every job ends with its ack update: 3 connector messages each
        wait_connector(world, 3 * len(ok), 30 + delay_ms / 1000)
        cpu1 = cpu_all(pids)
        busy1, _ = al.machine_busy()
        stop.set()
        cards = parent.recv()
        poller.join()
        if "error" in cards:
            raise SystemExit(cards["error"])
        measured = recs[n_warm:]
        audit = audit_records(world.redis.port, [r["request_id"] for r in measured
                                                 if r.get("request_id")])
        report_overhead(args, measured, cards, audit, delay_ms)
        print("outbox poller CPU %.1f s" % cards["cpu_s"])
        print_cpu(cpu0, cpu1, busy0, busy1, n, "whole run")
        print("worker VmHWM %.1f MB" % (su.status_of(pids["worker"])["VmHWM"] / 1024))
        if args.json:
            with open(args.json, "w") as f:
                json.dump([dict(r, result_ms=cards["result"].get(r.get("request_id")))
                           for r in measured], f)
    finally:
        world.stop()


def report_overhead(args, recs, cards, audit, delay_ms):
    sent = sorted(r["sent"] for r in recs if "sent" in r)
    errors = [r for r in recs if "error" in r]
    span = sent[-1] - sent[0]
    print("sent %d in %.2f s: %.1f/s achieved; send lateness ms: %s"
          % (len(sent), span, (len(sent) - 1) / span,
             al.summary([r["late_ms"] for r in recs if "late_ms" in r])))
    print("errors: %d%s" % (len(errors), " e.g. %s" % errors[0]["error"] if errors else ""))
    lo, ack = [], []
    missing = 0
    for r in recs:
        rid = r.get("request_id")
        if not rid:
            continue
        if rid not in cards["result"]:
            missing += 1
            continue
        lo.append(cards["result"][rid] - r["sent"] * 1e3 - delay_ms)
        if rid in cards["ack"]:
            ack.append(cards["ack"][rid] - r["sent"] * 1e3)
    print("result cards matched: %d of %d (missing %d)" % (len(lo), len(recs) - len(errors),
                                                           missing))
    print("response (ms):                 %s" % al.summary(
        [(r["answered"] - r["sent"]) * 1e3 for r in recs if "answered" in r]))
    print("ack at stub, x+1 (ms):         %s" % al.summary([v + 1 for v in ack]))
    print("OVERHEAD result - send - delay, x (ms):   %s" % al.summary(lo))
    print("OVERHEAD result - send - delay, x+1 (ms): %s" % al.summary([v + 1 for v in lo]))
    st = [a["status"] for a in audit]
    dl = [int(a["delivered_ms"]) - int(a["created_ms"]) - delay_ms for a in audit
          if a["status"] == "delivered"]
    qs = [int(a["started_ms"]) - int(a["created_ms"]) for a in audit if a["status"] == "delivered"]
    print("audit: %d delivered of %d" % (st.count("delivered"), len(st)))
    print("audit delivered_ms - created_ms - delay (ms): %s" % al.summary(dl))
    print("audit started_ms - created_ms (queue wait, ms): %s" % al.summary(qs))


# --- memory -------------------------------------------------------------------

def memory(args):
    delay_ms = parse_delay_ms(args.delay)
    world = World(args.delay, 1000, {"WORKER_CONCURRENCY": str(args.concurrency),
                                     "UPSTREAM_TIMEOUT_MS": str(max(30000, 4 * delay_ms))})
    try:
        world.worker.start()
        pid = world.worker.proc.pid
        time.sleep(1.0)
        base = su.status_of(pid)
        print("worker pid %d idle: VmRSS %.1f MB, %d fds" % (pid, base["VmRSS"] / 1024,
                                                              su.fd_count(pid)))
        cpu0 = al.cpu_seconds(pid)
        t0 = time.monotonic()
        fill(world, args.n, "m%x" % os.getpid())
        peak = None
        while time.monotonic() - t0 < delay_ms / 1000 + 60:
            pend = world.stub.stats()["pending"]
            if pend >= args.n:
                time.sleep(0.5)  # let the loop settle, then sample
                peak = dict(su.status_of(pid), pending=world.stub.stats()["pending"],
                            fds=su.fd_count(pid),
                            t=time.monotonic() - t0)
                break
            time.sleep(0.1)
        if peak is None:
            raise SystemExit("never %d upstream requests held at once (pending %d)\n%s"
                             % (args.n, pend, world.log_tail(world.worker)))
        print("IN FLIGHT %d (stub pending) at %.1f s: VmRSS %.1f MB, VmHWM %.1f MB, %d fds; "
              "(VmRSS - idle) / jobs = %.1f kB"
              % (peak["pending"], peak["t"], peak["VmRSS"] / 1024, peak["VmHWM"] / 1024,
                 peak["fds"], (peak["VmRSS"] - base["VmRSS"]) / args.n))
        while True:
            read, pending, lag = group_state(world.redis.port)
            if read >= args.n and pending == 0:
                break
            if time.monotonic() - t0 > delay_ms / 1000 + 120:
                raise SystemExit("not done: read %s pending %s\n%s"
                                 % (read, pending, world.log_tail(world.worker)))
            time.sleep(0.1)
        wait_connector(world, 3 * args.n, 60)
        end = su.status_of(pid)
        cpu = al.cpu_seconds(pid) - cpu0
        print("all acked at %.1f s; after: VmRSS %.1f MB, VmHWM %.1f MB; worker CPU %.2f s "
              "= %.0f µs per job" % (time.monotonic() - t0, end["VmRSS"] / 1024,
                                     end["VmHWM"] / 1024, cpu, cpu * 1e6 / args.n))
    finally:
        world.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("-n", type=int, default=20000)
    t.add_argument("--delay", default="0")
    t.add_argument("--concurrency", type=int, default=256)
    t.add_argument("--timeout", type=float, default=300)
    o = sub.add_parser("overhead")
    o.add_argument("--rate", type=float, default=500)
    o.add_argument("--duration", type=float, default=30)
    o.add_argument("--warmup", type=float, default=3)
    o.add_argument("--delay", default="0")
    o.add_argument("--concurrency", type=int, default=1000)
    o.add_argument("--json", help="write every measured request to this file")
    m = sub.add_parser("memory")
    m.add_argument("-n", type=int, default=10000)
    m.add_argument("--delay", default="30s")
    m.add_argument("--concurrency", type=int, default=10000)
    args = ap.parse_args()

    build_dir = os.environ.get("BUILD_DIR", "build-wbench")
    if os.environ.get("NO_BUILD"):
        # A copy of the binaries: others' edits must not rebuild them between runs.
        harness.DIGESTD_BIN = os.path.join(build_dir, "digestd")
        harness.STUB_BIN = os.path.join(build_dir, "digest-stub")
    else:
        al.build(build_dir)
    print("RLIMIT_NOFILE %d" % al.raise_fd_limit(20000))
    {"throughput": throughput, "overhead": overhead, "memory": memory}[args.mode](args)


if __name__ == "__main__":
    main()
