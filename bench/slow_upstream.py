#!/usr/bin/env python3
"""How many slow upstream fetches one digestd process holds at once.

usage: bench/slow_upstream.py [-n 10000] [--delay 5s] [--ramp 2] [--timeout 120]
       (BUILD_DIR=build-bench3 by default; built as Release here if missing)

Sync mode (USE_ASYNC_DIGEST=false): every webhook request fetches the digest
inside the request, posts the result card to the connector, and only then is
answered 200. With digest-stub answering the upstream after --delay, n
requests sent within --ramp seconds (n connections, one request each, distinct
activity and conversation ids) are all waiting on the upstream at the same
time. Printed: the answers by status, the result cards the stub's connector
accepted for those requestIds, the wall time, the peak number of upstream
requests the stub held at once, digestd's VmHWM and open descriptors, and
/healthz latency measured every 100 ms meanwhile by a separate process.

Descriptors: digestd needs one per client connection plus one per upstream
connection (about 2n + 20). The script raises RLIMIT_NOFILE as far as it is
allowed (the hard limit; as root with CAP_SYS_RESOURCE, to 65536).
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, HERE)
import ack_latency as al  # noqa: E402  (shared setup: build, start, activities)


def status_of(pid):
    """VmRSS and VmHWM of pid in kB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def healthz_ms(port):
    """One GET /healthz on a new connection: (ms, status) or (ms, error text)."""
    t = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        status = int(data.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError) as e:
        return (time.monotonic() - t) * 1e3, str(e)
    return (time.monotonic() - t) * 1e3, status


def monitor(port, pid, stub, stop, conn):
    """Every 100 ms: /healthz latency, digestd memory and fds, stub pending."""
    samples = []
    while not stop.is_set():
        t = time.monotonic()
        ms, st = healthz_ms(port)
        s = {"t": time.time(), "healthz_ms": ms, "healthz": st, "fds": fd_count(pid)}
        s.update(status_of(pid))
        try:
            s["pending"] = stub.stats()["pending"]
        except (OSError, ValueError, KeyError) as e:
            s["pending"] = "error: %s" % e
        samples.append(s)
        time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
    conn.send(samples)
    conn.close()


async def one_request(port, payload, t_send, timeout, rec):
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, t_send - loop.time()))
    rec["sent"] = time.time()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        rec["error"] = "connect: %s" % e
        return
    try:
        writer.write(payload)
        status, body = await asyncio.wait_for(al.read_response(reader), timeout)
        rec["answered"] = time.time()
        rec["status"] = status
        rec["body"] = body[:300].decode(errors="replace")
        if status == 200:
            rec["request_id"] = json.loads(body)["requestId"]
    except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError,
            asyncio.TimeoutError) as e:
        rec["error"] = "read: %r" % e
    finally:
        writer.close()


async def ramp(port, template, n, ramp_s, timeout):
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    recs = [{} for _ in range(n)]
    tag = "s%x" % os.getpid()
    await asyncio.gather(*(one_request(port, al.request_bytes(template, i, tag),
                                       t0 + i * ramp_s / n, timeout, recs[i])
                           for i in range(n)))
    return recs


def result_cards(stub):
    """Stops the stub (its stdout is then complete); requestId -> card kind."""
    stub.proc.send_signal(signal.SIGTERM)
    stub.proc.wait(30)
    cards = {}
    with open(stub.out_path) as f:
        for line in f:
            if not line.startswith("connector:"):
                continue
            kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
            if kv.get("status") == "200" and kv.get("requestId"):
                cards.setdefault(kv["requestId"], kv.get("card"))
    return cards


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=10000, help="concurrent webhook requests")
    ap.add_argument("--delay", default="5s", help="digest-stub --upstream-delay")
    ap.add_argument("--ramp", type=float, default=2.0, help="seconds over which to send")
    ap.add_argument("--timeout", type=float, default=120.0, help="client wait per request")
    args = ap.parse_args()

    al.build(os.environ.get("BUILD_DIR", "build-bench3"))
    limit = al.raise_fd_limit(65536)
    redis, stub, d = al.start_world(
        ["--upstream-delay", args.delay, "--outbox-max", str(args.n + 1000)],
        {"USE_ASYNC_DIGEST": "false", "MAX_CONNECTIONS": str(args.n + 1000),
         "UPSTREAM_TIMEOUT_MS": "60000"})
    try:
        run(args, limit, redis, stub, d)
    finally:
        al.stop_world(redis, stub, d)


def run(args, limit, redis, stub, d):
    pid = d.proc.pid
    print("digestd pid %d, RLIMIT_NOFILE %d; %d sync requests over %.1f s, upstream delay %s"
          % (pid, limit, args.n, args.ramp, args.delay))
    base = status_of(pid)
    base_fds = fd_count(pid)
    cpu0 = {"digestd": al.cpu_seconds(pid), "digest-stub": al.cpu_seconds(stub.proc.pid),
            "redis": al.cpu_seconds(redis.proc.pid)}
    stop = multiprocessing.Event()
    parent, child = multiprocessing.Pipe()
    mon = multiprocessing.Process(target=monitor, args=(d.port, pid, stub, stop, child))
    mon.start()
    time.sleep(0.5)
    recs = asyncio.run(ramp(d.port, al.activity_template(stub.service_url), args.n, args.ramp,
                            args.timeout))
    time.sleep(0.5)
    stop.set()
    samples = parent.recv()
    mon.join()
    cpu = {"digestd": al.cpu_seconds(pid) - cpu0["digestd"],
           "digest-stub": al.cpu_seconds(stub.proc.pid) - cpu0["digest-stub"],
           "redis": al.cpu_seconds(redis.proc.pid) - cpu0["redis"]}
    end = status_of(pid)
    stats = stub.stats()
    cards = result_cards(stub)
    report(args, recs, samples, cards, stats, base, base_fds, end, cpu)


def report(args, recs, samples, cards, stats, base, base_fds, end, cpu):
    by_status = {}
    for r in recs:
        k = r.get("status", r.get("error", "?").split(":")[0])
        by_status[k] = by_status.get(k, 0) + 1
    sent = [r["sent"] for r in recs if "sent" in r]
    done = [r["answered"] for r in recs if "answered" in r]
    print("answers: %s" % json.dumps(by_status, sort_keys=True))
    for r in recs:
        if r.get("status") != 200:
            print("first failure: %s" % {k: r[k] for k in ("status", "error", "body") if k in r})
            break
    print("sends over %.2f s; wall time first send -> last answer %.2f s" % (
        max(sent) - min(sent), max(done) - min(sent) if done else float("nan")))
    print("latency send -> answer (s): %s" % al.summary(
        [r["answered"] - r["sent"] for r in recs if "answered" in r]))
    ok_ids = [r["request_id"] for r in recs if r.get("request_id")]
    matched = sum(1 for i in ok_ids if cards.get(i) == "result")
    print("result cards accepted by the connector for the 200s: %d of %d; stub stats %s"
          % (matched, len(ok_ids), json.dumps(stats)))
    pend = [s["pending"] for s in samples if isinstance(s.get("pending"), int)]
    print("stub upstream requests held at once: peak %d (sampled every 100 ms)"
          % max(pend or [0]))
    peak_fds = max(s["fds"] for s in samples)
    hwm = max([s.get("VmHWM", 0) for s in samples] + [end["VmHWM"]])
    held = max(pend or [1])
    print("digestd fds: %d before, peak %d; RSS %d kB before, VmHWM %d kB, RSS after %d kB; "
          "(VmHWM - RSS before) / peak held = %.1f kB per request"
          % (base_fds, peak_fds, base["VmRSS"], hwm, end["VmRSS"],
             (hwm - base["VmRSS"]) / held))
    hz = [s["healthz_ms"] for s in samples if s["healthz"] == 200]
    bad = [s for s in samples if s["healthz"] != 200]
    print("/healthz during the run: %d probes, %d not 200%s; ms %s" % (
        len(samples), len(bad), " (e.g. %s)" % bad[0]["healthz"] if bad else "",
        al.summary(hz)))
    print("CPU during the run: %s" % ", ".join("%s %.2f s" % kv for kv in cpu.items()))


if __name__ == "__main__":
    main()
