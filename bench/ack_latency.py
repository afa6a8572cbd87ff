#!/usr/bin/env python3
"""Time from webhook sent to acknowledgment card accepted by the connector.

usage: bench/ack_latency.py [--rate 200] [--duration 30] [--warmup 3] [--json FILE]
       (BUILD_DIR=build-bench3 by default; built as Release here if missing)

The stub's /stub/outbox is read once, at the end, and digestd's HTTP server
(which the stub shares) caps a response at 16 MB: about 11,000 ack cards.
So rate x (duration + warmup) must stay under that (45 s at 200/s is fine).

Starts a private redis-server, digest-stub and a Release digestd on loopback
(tests/integration/harness.py starts them, by pid), then posts `digest
advisors` activities open loop: request i is sent at t0 + i/rate whatever
happened to the earlier ones, each on its own connection (opened 30 ms
before its send time, so the TCP handshake is not in the number), each with
a unique activity id and its own conversation id (Teams pacing allows 7
sends per second per conversation; one conversation per request keeps our
own pacing out of the measurement).

Measured for every request:
  response  client send -> the whole 202 read back (time.time(), ns clock)
  ack       client send -> the stub's received_ms of the ack card whose
            request_id is the 202's requestId. received_ms is CLOCK_REALTIME
            truncated to the millisecond, the client's clock is CLOCK_REALTIME
            too (same machine), so an ack value x means a true latency in
            [x, x + 1) ms; the percentiles printed are x + 1, an upper bound.
Warm-up requests (the first token fetch, the first connections) are sent at
the same rate and left out. Also printed: the achieved send rate, how late
sends were against the schedule, and the CPU each process used per request.
"""
import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402  (needs sys.path above)

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "teams-personal-chat.json")
PRECONNECT_S = 0.030
OUTBOX_READ_MAX = 11000  # ack records in one 16 MB /stub/outbox response


# --- setup shared with bench/slow_upstream.py -----------------------------

def build(build_dir):
    """Configures and builds digestd and digest-stub as Release in build_dir."""
    if not os.path.isabs(build_dir):
        build_dir = os.path.join(ROOT, build_dir)
    subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "-j2", "--target", "digestd", "digest-stub"],
                   check=True, stdout=subprocess.DEVNULL)
    harness.DIGESTD_BIN = os.path.join(build_dir, "digestd")
    harness.STUB_BIN = os.path.join(build_dir, "digest-stub")


def raise_fd_limit(want):
    """Soft (and, as root, hard) RLIMIT_NOFILE to want; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def activity_template(service_url):
    """The personal-chat fixture as a format string with {id} and {conv}."""
    with open(FIXTURE) as f:
        act = json.load(f)
    act["serviceUrl"] = service_url
    act["id"] = "@@ID@@"
    act["conversation"]["id"] = "@@CONV@@"
    text = json.dumps(act).replace("{", "{{").replace("}", "}}")
    return text.replace("@@ID@@", "{id}").replace("@@CONV@@", "{conv}")


def request_bytes(template, i, run_tag):
    """A POST of a unique activity in its own conversation."""
    body = template.format(id="17%011d" % i,
                           conv="a:1bench%s-%07dSfOpzbfcAg2IaydGElSo10tVr4C7Fc6GtieTJX663Wu"
                                % (run_tag, i)).encode()
    head = ("POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % len(body))
    return head.encode() + body


async def read_response(reader):
    """(status, body bytes) of one Content-Length framed response."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed before a response")
    status = int(line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode().partition(":")
        if k.strip().lower() == "content-length":
            length = int(v)
    return status, await reader.readexactly(length)


def cpu_seconds(pid):
    """utime + stime of pid so far (bench/cpu.sh in Python)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy():
    """(busy, steal) seconds of all CPUs so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / hz, v[7] / hz


def pct(values, p):
    """Nearest-rank percentile of a sorted list."""
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, int(-(-p * len(values) // 100)) - 1))
    return values[k]


def summary(values):
    v = sorted(values)
    return "p50 %.2f  p90 %.2f  p99 %.2f  max %.2f" % (
        pct(v, 50), pct(v, 90), pct(v, 99), v[-1] if v else float("nan"))


def start_world(stub_args, digestd_env):
    """redis-server, digest-stub and digestd, wired together; returns all three."""
    redis = harness.RedisServer().start()
    stub = harness.Stub(*stub_args).start()
    env = stub.env()
    env.update({"BOT_AUTH": "off", "LOG_LEVEL": "info"})
    env.update(digestd_env)
    d = harness.Digestd(redis.url, env).start()
    return redis, stub, d


def stop_world(redis, stub, d):
    for stop in (d.cleanup, stub.stop, redis.stop):
        try:
            stop()
        except Exception as e:  # keep stopping the others
            print("stop: %s" % e, file=sys.stderr)


# --- the open-loop client ---------------------------------------------------

async def one_request(port, payload, t_send, rec):
    """Connects just before t_send (monotonic), sends at t_send, reads the answer."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, t_send - PRECONNECT_S - loop.time()))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        rec["error"] = "connect: %s" % e
        return
    await asyncio.sleep(max(0.0, t_send - loop.time()))
    rec["late_ms"] = (loop.time() - t_send) * 1e3
    rec["sent"] = time.time()
    writer.write(payload)
    try:
        status, body = await read_response(reader)
        rec["answered"] = time.time()
        rec["status"] = status
        if status == 202:
            rec["request_id"] = json.loads(body)["requestId"]
        else:
            rec["error"] = "%d %s" % (status, body[:200])
    except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError) as e:
        rec["error"] = "read: %s" % e
    finally:
        writer.close()


async def open_loop(port, template, rate, n, t0_delay, run_tag):
    """Sends n requests at rate per second; returns one record per request."""
    loop = asyncio.get_running_loop()
    t0 = loop.time() + t0_delay
    recs = [{"i": i} for i in range(n)]
    tasks = [asyncio.ensure_future(one_request(port, request_bytes(template, i, run_tag),
                                               t0 + i / rate, recs[i]))
             for i in range(n)]
    await asyncio.gather(*tasks)
    return recs


def fetch_acks(stub, n_expected, timeout):
    """request_id -> received_ms of ack cards, once n_expected have arrived."""
    deadline = time.monotonic() + timeout
    while True:
        acks = {}
        status, outbox = stub.call("GET", "/stub/outbox")
        if status != 200:
            raise SystemExit("GET /stub/outbox answered %d (over 16 MB? see usage)" % status)
        for m in outbox:
            if m.get("card") == "ack" and m.get("status") == 200 and m.get("request_id"):
                acks.setdefault(m["request_id"], m["received_ms"])
        if len(acks) >= n_expected or time.monotonic() > deadline:
            return acks
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second")
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds sent first, left out")
    ap.add_argument("--json", help="write every measured request to this file")
    args = ap.parse_args()

    build(os.environ.get("BUILD_DIR", "build-bench3"))
    raise_fd_limit(65536)
    n_warm = int(args.warmup * args.rate)
    n = n_warm + int(args.duration * args.rate)
    if n > OUTBOX_READ_MAX:
        raise SystemExit("%d requests: /stub/outbox cannot return more than about %d ack "
                         "cards at once; shorten --duration" % (n, OUTBOX_READ_MAX))
    redis, stub, d = start_world(["--outbox-max", str(n + 1000)], {})
    try:
        template = activity_template(stub.service_url)
        pids = {"digestd": d.proc.pid, "digest-stub": stub.proc.pid, "redis": redis.proc.pid,
                "client": os.getpid()}
        print("digestd pid %d on :%d, stub %s, redis :%d; %d requests at %.0f/s "
              "(%d warm-up)" % (d.proc.pid, d.port, stub.url, redis.port, n, args.rate, n_warm))
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        busy0, steal0 = machine_busy()
        wall0 = time.monotonic()
        recs = asyncio.run(open_loop(d.port, template, args.rate, n, 0.2, "%x" % os.getpid()))
        wall = time.monotonic() - wall0
        ok = [r for r in recs if r.get("request_id")]
        acks = fetch_acks(stub, len(ok), 30)
        cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
        busy1, steal1 = machine_busy()
        report(args, recs[n_warm:], acks, wall, n, cpu, busy1 - busy0, steal1 - steal0)
        if args.json:
            with open(args.json, "w") as f:
                json.dump([dict(r, ack_ms=acks.get(r.get("request_id"))) for r in recs], f)
    finally:
        stop_world(redis, stub, d)


def report(args, recs, acks, wall, n_all, cpu, busy, steal):
    sent = sorted(r["sent"] for r in recs if "sent" in r)
    errors = [r for r in recs if "error" in r]
    span = sent[-1] - sent[0] if len(sent) > 1 else float("nan")
    per_s = {}
    for t in sent:
        per_s[int(t - sent[0])] = per_s.get(int(t - sent[0]), 0) + 1
    full = [per_s[k] for k in sorted(per_s)][:-1] or [0]
    print("sent %d in %.3f s: %.1f/s achieved (target %.0f); per whole second min %d max %d"
          % (len(sent), span, (len(sent) - 1) / span, args.rate, min(full), max(full)))
    print("send lateness vs schedule (ms): %s" % summary([r["late_ms"] for r in recs
                                                         if "late_ms" in r]))
    print("errors: %d%s" % (len(errors), "" if not errors else " e.g. %s" % errors[0]["error"]))
    resp = [(r["answered"] - r["sent"]) * 1e3 for r in recs if "answered" in r]
    print("webhook response, send -> 202 read (ms): %s" % summary(resp))
    lat, missing = [], 0
    for r in recs:
        rid = r.get("request_id")
        if rid is None:
            continue
        if rid not in acks:
            missing += 1
            continue
        lat.append(acks[rid] + 1 - r["sent"] * 1e3)  # +1: received_ms is truncated
    print("ack card, send -> stub received_ms (ms, upper bound, 1 ms resolution): %s" %
          summary(lat))
    print("ack cards matched %d of %d accepted requests (%d missing)" % (len(lat), len(resp),
                                                                         missing))
    print("CPU over the whole run (%.1f s, %d requests incl. warm-up): %s; machine busy %.1f of "
          "%.1f CPU-s, steal %.2f" % (wall, n_all, ", ".join(
              "%s %.2f s = %.0f us/req" % (k, v, v * 1e6 / n_all) for k, v in cpu.items()),
              busy, wall * os.cpu_count(), steal))


if __name__ == "__main__":
    main()
