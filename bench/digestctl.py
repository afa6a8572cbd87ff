#!/usr/bin/env python3
"""digestctl against a big queue (issue 11's speed goals).

A private redis-server holds 1,000,000 entries in {digest}:requests (990,000
read and acknowledged by a consumer that went away, the newest 10,000 pending
under a live one), 10,000 dead jobs, two live heartbeats and an hour of
per-minute counts. Each read-only command runs RUNS times: its wall time (the
whole process: start, connect, one script, print) is reported as median and
max. Redis's SLOWLOG, set to log every command, gives the longest single
command each sent: the goal is that none holds Redis for more than 5 ms.
Then the two stepped repairs run on the whole queue, a trim of the 990,000
acknowledged entries and a requeue of the 10,000 dead jobs, with
`redis-cli --latency` measuring from another client meanwhile.

    bench/digestctl.py [--runs N] [--build DIR] [--port P]

Builds nothing: point --build at a Release build (cmake -S . -B build-release
-DCMAKE_BUILD_TYPE=Release && cmake --build build-release --target digestctl).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import redis_cmd, wait_until  # noqa: E402  (the tests' RESP client)

STREAM, DEAD, PROCS = "{digest}:requests", "{digest}:dead", "{digest}:procs"
N_ENTRIES, N_PENDING, N_DEAD, CHUNK = 1_000_000, 10_000, 10_000, 10_000

# One chunk of jobs with the six fields of SPEC §5, ids from Redis's clock.
ADD_LUA = """
for i = 1, tonumber(ARGV[2]) do
  local n = tonumber(ARGV[1]) + i
  redis.call('XADD', KEYS[1], '*', 'request_id', 'r-' .. n, 'activity_id', 'a-' .. n,
    'audience', 'advisors', 'test_email', '', 'conv', 'msteams:19:bench', 'created_ms', n)
end
"""
# Read a chunk as `consumer`, and acknowledge it unless ARGV[3] says keep it pending.
READ_LUA = """
local r = redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[1], 'COUNT', ARGV[2],
  'STREAMS', KEYS[1], '>')
if ARGV[3] == 'ack' then
  local ids = {}
  for _, e in ipairs(r[1][2]) do
    ids[#ids + 1] = e[1]
    if #ids == 1000 then redis.call('XACK', KEYS[1], 'workers', unpack(ids)); ids = {} end
  end
  if #ids > 0 then redis.call('XACK', KEYS[1], 'workers', unpack(ids)) end
end
"""
DEAD_LUA = """
for i = 1, tonumber(ARGV[2]) do
  local n = tonumber(ARGV[1]) + i
  redis.call('XADD', KEYS[1], '*', 'request_id', 'd-' .. n, 'activity_id', 'a', 'audience',
    'advisors', 'test_email', '', 'conv', 'msteams:19:bench', 'created_ms', '1',
    'stream_id', '1-1', 'reason', 'the digest service answered with an error (HTTP 400)',
    'attempts', '1', 'failed_ms', '1')
end
"""


def populate(port):
    t0 = time.monotonic()
    for first in range(0, N_ENTRIES, CHUNK):
        redis_cmd(port, "EVAL", ADD_LUA, 1, STREAM, first, CHUNK, timeout=60)
    redis_cmd(port, "XGROUP", "CREATE", STREAM, "workers", "0")
    for _ in range(0, N_ENTRIES - N_PENDING, CHUNK):
        redis_cmd(port, "EVAL", READ_LUA, 1, STREAM, "gone:1", CHUNK, "ack", timeout=60)
    redis_cmd(port, "EVAL", READ_LUA, 1, STREAM, "bench:2", N_PENDING, "keep", timeout=60)
    for first in range(0, N_DEAD, CHUNK):
        redis_cmd(port, "EVAL", DEAD_LUA, 1, DEAD, first, CHUNK, timeout=60)
    now = int(redis_cmd(port, "TIME")[0]) * 1000
    for name, role in (("bench:1", "api"), ("bench:2", "worker")):
        redis_cmd(port, "HSET", "{digest}:proc:" + name, "role", role, "version", "0.1.0",
                  "host", "bench", "pid", "1", "listen", "127.0.0.1:1", "started_ms", now,
                  "beat_ms", now, "in_flight", 0, "concurrency", 256, "rss_bytes", 1 << 24,
                  "jobs_done", 0, "jobs_failed", 0, "async_mode", "true")
        redis_cmd(port, "PEXPIRE", "{digest}:proc:" + name, 3_600_000)  # lives through the run
        redis_cmd(port, "ZADD", PROCS, 4_102_444_800_000, name)
    for m in range(now // 60000 - 60, now // 60000 + 1):
        redis_cmd(port, "HSET", "{digest}:minute:%d" % m, "enqueued", 100, "delivered", 100,
                  "lag", 0)
    # The request `show` reads: pending, with its record naming its entry.
    pend = redis_cmd(port, "XPENDING", STREAM, "workers", "-", "+", 1)[0]
    rid = dict(zip(*[iter(redis_cmd(port, "XRANGE", STREAM, pend[0], pend[0])[0][1])] * 2))
    rid = rid["request_id"]
    redis_cmd(port, "HSET", "{digest}:req:" + rid, "status", "processing", "mode", "async",
              "audience", "advisors", "conv", "msteams:19:bench", "created_ms", now - 5000,
              "started_ms", now - 4000, "attempts", 1, "stream_id", pend[0])
    redis_cmd(port, "HSET", "{digest}:conv:msteams:19:bench", "service_url", "https://x/",
              "stale", "0", "updated_ms", now)
    print("populated in %.1f s: XLEN %d, pending %d, dead %d, used_memory %s" % (
        time.monotonic() - t0, redis_cmd(port, "XLEN", STREAM),
        redis_cmd(port, "XPENDING", STREAM, "workers")[0], redis_cmd(port, "XLEN", DEAD),
        [line for line in redis_cmd(port, "INFO", "memory").splitlines()
         if line.startswith("used_memory_human")][0].split(":")[1]))
    return rid


def slowest(port):
    """Since the last reset, of digestctl's commands: the longest (µs, its first two
    arguments), the median and the 99th percentile (µs). A script's commands count in its
    EVAL."""
    # digestctl's own commands: not the bench's SLOWLOG, not those a script ran (client ?:0).
    log = [e for e in redis_cmd(port, "SLOWLOG", "GET", 1_000_000)
           if e[3][0].upper() != "SLOWLOG" and e[4] != "?:0"]
    if not log:
        return 0, "", 0, 0
    e = max(log, key=lambda e: e[2])
    times = sorted(x[2] for x in log)
    return (e[2], " ".join(a[:14].replace("\n", " ") for a in e[3][:2]),
            statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))])


def run_ctl(ctl, port, args):
    env = dict(os.environ, REDIS_URL="redis://127.0.0.1:%d/0" % port)
    t0 = time.perf_counter()
    r = subprocess.run([ctl] + args, env=env, capture_output=True, input=b"")
    ms = (time.perf_counter() - t0) * 1000
    if r.returncode not in (0, 1):
        raise SystemExit("digestctl %s: exit %d: %s" % (args, r.returncode, r.stderr.decode()))
    return ms


def measure(ctl, port, args, runs):
    redis_cmd(port, "SLOWLOG", "RESET")
    times = [run_ctl(ctl, port, args) for _ in range(runs)]
    us, what, med, p99 = slowest(port)
    print("| `digestctl %s` | %.1f | %.1f | %.2f / %.2f / %.2f | %s |" % (
        " ".join(args), statistics.median(times), max(times), med / 1000, p99 / 1000, us / 1000,
        what))


def with_latency(port, fn):
    """Runs fn while `redis-cli --latency --raw` pings from another client (it samples for
    about a second, then prints min, max, avg and samples in ms); (fn's result, that line)."""
    lat = subprocess.Popen(["redis-cli", "-p", str(port), "--latency", "--raw"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(0.1)
    result = fn()
    out = lat.communicate(timeout=10)[0].decode().split()
    return result, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--build", default="build-release")
    ap.add_argument("--port", type=int, default=39795)
    o = ap.parse_args()
    ctl = os.path.join(o.build, "digestctl")
    if not os.access(ctl, os.X_OK):
        raise SystemExit("no %s: build it first (see the docstring)" % ctl)
    tmp = tempfile.mkdtemp(prefix="bench-ctl-")
    redis = subprocess.Popen(["redis-server", "--port", str(o.port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", tmp,
                              "--slowlog-log-slower-than", "0", "--slowlog-max-len", "1000000"],
                             stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: redis_cmd(o.port, "PING") == "PONG", 10, "redis-server")
        rid = populate(o.port)
        print("\n| command | wall ms, median | wall ms, max | Redis ms per command: median / "
              "p99 / max | the longest |")
        print("|---|---|---|---|---|")
        for args in (["stats"], ["stats", "--json"], ["show", rid], ["show", rid, "--json"],
                     ["procs"], ["pending"], ["dead"], ["consumers"], ["check"]):
            measure(ctl, o.port, args, o.runs)
        # The repairs on everything: one run each, stepped.
        time.sleep(1.1)
        for args in (["trim", "--older-than", "1s"], ["requeue", "--all-dead", "--yes"]):
            redis_cmd(o.port, "SLOWLOG", "RESET")
            ms, raw = with_latency(o.port, lambda: run_ctl(ctl, o.port, args))
            us, what, med, p99 = slowest(o.port)
            print("| `digestctl %s` | %.0f (one run) | | %.2f / %.2f / %.2f | %s |" % (
                " ".join(args), ms, med / 1000, p99 / 1000, us / 1000, what))
            print("| &nbsp; redis-cli --latency meanwhile | min/max/avg %s ms, %s samples | | | |"
                  % ("/".join(raw[:3]), raw[3] if len(raw) > 3 else "?"))
        print("\nafter: XLEN %d, pending %d, dead %d" % (
            redis_cmd(o.port, "XLEN", STREAM), redis_cmd(o.port, "XPENDING", STREAM,
                                                         "workers")[0],
            redis_cmd(o.port, "XLEN", DEAD)))
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
