#!/usr/bin/env python3
"""Turns one bench/run.sh run (the digest-bench --json reports in DIR) into
the tables of bench/RESULTS.md and the README's Performance section.

usage: bench/report.py DIR [--results bench/RESULTS.md] [--readme README.md]

Each file's section lies between '<!-- bench/run.sh: begin -->' and
'<!-- bench/run.sh: end -->' and is replaced whole (appended when the markers
are not there yet); nothing else in the file is touched. Without --results
and --readme the RESULTS section is printed. The headline is ratios of runs
made side by side in one round (digestd's throughput over a peer's, a peer's
p99 over digestd's); absolute figures stand beside them only."""
import argparse
import glob
import json
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN, END = "<!-- bench/run.sh: begin -->", "<!-- bench/run.sh: end -->"
PEERS = ["botbuilder", "node-http", "fastapi"]
NAMES = {"digestd": "digestd", "botbuilder": "Bot Framework SDK (botbuilder 4.23 CloudAdapter)",
         "node-http": "node:http + ioredis + jose", "fastapi": "FastAPI + uvicorn + redis.asyncio"}
DEBIAN = ["redis-server", "libuv1", "libjson-c5", "libhiredis0.14", "libcurl4", "libssl3",
          "nodejs", "python3-fastapi", "python3-uvicorn", "python3-uvloop", "python3-httptools",
          "python3-starlette", "python3-redis", "python3-jwt", "python3-httpx", "gnuplot-nox", "gcc"]
NPM = ["botbuilder", "botframework-connector", "@azure/msal-node", "express", "ioredis", "jose"]
TARGET_MS = {"open_webhook_p999": 10.0, "open_ack_p99": 20.0, "e2e_overhead_p99": 10.0}


def load(d):
    runs = {}
    for f in sorted(glob.glob(os.path.join(d, "*.json"))):
        r = json.load(open(f))
        if "run" in r:
            runs[r["run"]["label"]] = r
    return runs


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def machine(runs):
    cpu = re.search(r"Model name:\s*(.*)", sh("lscpu"))
    mem = re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read())
    return [("CPUs", "%s × %s" % (os.cpu_count(), cpu.group(1).strip() if cpu else "?")),
            ("memory", "%.0f GB" % (int(mem.group(1)) / 1e6) if mem else "?"),
            ("kernel", platform.release()),
            ("OS", sh("sh", "-c", ". /etc/os-release; echo $PRETTY_NAME")),
            ("built from", ", ".join(sorted({r["run"].get("commit", "?") for r in runs.values()})) +
             " (Release: gcc -O3)")]


def versions():
    out = []
    for p in DEBIAN:
        v = sh("dpkg-query", "-W", "-f=${Version}", p)
        if v:
            out.append((p, v))
    lock = os.path.join(HERE, "peers", "node", "package-lock.json")
    pkgs = json.load(open(lock)).get("packages", {}) if os.path.exists(lock) else {}
    for p in NPM:
        v = pkgs.get("node_modules/" + p, {}).get("version")
        if v:
            out.append(("npm " + p, v))
    out.append(("node", sh("node", "--version")))
    return out


def rounds_of(runs, prefix):
    return sorted({int(k.rsplit("-r", 1)[1]) for k in runs if k.startswith(prefix)})


def loads_of(runs):
    return sorted({int(k.split("-")[1][1:]) for k in runs if k.startswith("webhook-")})


def fmt_ratio(xs):
    return " / ".join("%.1f×" % x for x in xs) if xs else "–"


def cpu_per_request(r):
    """The target's CPU seconds per request sent (warm-up included)."""
    n = r["sent"] + r["warmup_requests"]
    return r["run"]["cpu_s"]["target"] / n if n else 0.0


def ratio_rows(runs):
    """Per load and peer: throughput, p99 and CPU-per-request ratios, one per round."""
    rows = []
    for c in loads_of(runs):
        for peer in PEERS:
            thr, p99, cpu, lower = [], [], [], True
            for r in rounds_of(runs, "webhook-c%d-digestd" % c):
                d = runs.get("webhook-c%d-digestd-r%d" % (c, r))
                p = runs.get("webhook-c%d-%s-r%d" % (c, peer, r))
                if not d or not p or not p["throughput_rps"]:
                    continue
                thr.append(d["throughput_rps"] / p["throughput_rps"])
                p99.append(p["webhook"]["p99_ms"] / d["webhook"]["p99_ms"])
                if cpu_per_request(d):
                    cpu.append(cpu_per_request(p) / cpu_per_request(d))
                lower &= d["webhook"]["p99_ms"] < p["webhook"]["p99_ms"]
            if thr:
                rows.append((c, peer, thr, p99, cpu, lower))
    return rows


def ratio_table(runs):
    lines = ["| connections | digestd vs | throughput ratio (each round) | p99 ratio (peer ÷ digestd) "
             "| digestd's p99 lower every round | CPU per request ratio (peer ÷ digestd) |",
             "|---|---|---|---|---|---|"]
    for c, peer, thr, p99, cpu, lower in ratio_rows(runs):
        lines.append("| %d | %s | **%s** | %s | %s | %s |" % (
            c, NAMES[peer], fmt_ratio(thr), fmt_ratio(p99), "yes" if lower else "**no**",
            fmt_ratio(cpu)))
    return lines


def absolute_table(runs):
    lines = ["| run | req/s | webhook p50 / p99 / p99.9 / max (ms) | ack p50 / p99 (ms) | errors "
             "| stream / sent | CPU µs per request: target / redis / bench | others' CPU s |",
             "|---|---|---|---|---|---|---|---|"]
    for label, r in sorted(runs.items(), key=lambda kv: sort_key(kv[0])):
        w, a, cpu = r["webhook"], r["ack"], r["run"]["cpu_s"]
        n = r["sent"] + r["warmup_requests"]
        per = lambda s: "%.0f" % (1e6 * s / n) if n else "–"  # noqa: E731
        lines.append("| %s | %.0f | %.2f / %.2f / %.2f / %.2f | %.2f / %.2f | %s | %d / %d%s | "
                     "%s / %s / %s | %.1f |" % (
                         label, r["throughput_rps"], w["p50_ms"], w["p99_ms"], w["p999_ms"],
                         w["max_ms"], a["p50_ms"], a["p99_ms"], errors(r), r["run"]["xlen"], n,
                         "" if r["run"]["verified"] else " **check failed**",
                         per(cpu["target"]), per(cpu["redis"]), per(cpu["bench"]), cpu["others"]))
    return lines


def sort_key(label):
    parts = label.split("-")
    order = {"webhook": 0, "open": 1, "e2e": 2}
    rnd = int(label.rsplit("-r", 1)[1]) if re.search(r"-r\d+$", label) else 0
    conns = int(re.sub(r"\D", "", parts[1]) or 0)
    if parts[0] != "webhook":
        conns = -conns
    tgt = next((i for i, t in enumerate(["digestd"] + PEERS) if "-%s" % t in label), 9)
    return (order.get(parts[0], 9), conns, rnd, tgt)


def errors(r):
    return ", ".join("%s %d" % kv for kv in sorted(r["errors"].items())) or "0"


def verdict(ok, value, target):
    if ok:
        return "**met** (%.2f ms < %g ms)" % (value, target)
    return "**missed** by %.2f ms (%.2f ms against %g ms)" % (value - target, value, target)


def open_lines(runs):
    opens = sorted((r for k, r in runs.items() if k.startswith("open-")),
                   key=lambda r: sort_key(r["run"]["label"]))
    if not opens:
        return []
    lines = ["", "### Open loop: digestd at a share of its closed-loop capacity", "",
             "| run | rate | achieved | webhook p50 / p99 / p99.9 / max (ms) | ack p50 / p99 / p99.9 "
             "(ms) | errors | verified |", "|---|---|---|---|---|---|---|"]
    for r in opens:
        w, a = r["webhook"], r["ack"]
        lines.append("| %s | %.0f/s | %.0f/s | %.2f / %.2f / %.2f / %.2f | %.2f / %.2f / %.2f | %s | %s |"
                     % (r["run"]["label"], r["rate_rps"], r["throughput_rps"], w["p50_ms"],
                        w["p99_ms"], w["p999_ms"], w["max_ms"], a["p50_ms"], a["p99_ms"],
                        a["p999_ms"], errors(r), "yes" if r["run"]["verified"] else "**no**"))
    at70 = [r for r in opens if r["run"]["label"].startswith("open-p70-")] or opens
    worst_w = max(r["webhook"]["p999_ms"] for r in at70)
    worst_a = max(r["ack"]["p99_ms"] for r in at70)
    lines += ["", "At 70 %%, target webhook p99.9 < 10 ms: %s (worst run)." %
              verdict(worst_w < TARGET_MS["open_webhook_p999"], worst_w, 10),
              "At 70 %%, target ack p99 < 20 ms: %s (worst run)." %
              verdict(worst_a < TARGET_MS["open_ack_p99"], worst_a, 20)]
    return lines


def e2e_lines(runs, delay_ms=5000.0):
    e2e = sorted((r for k, r in runs.items() if k.startswith("e2e-")),
                 key=lambda r: -r["rate_rps"])
    if not e2e:
        return []
    lines = ["", "### End to end: digestd --role all, 5 s upstream", "",
             "| run | rate | requests | errors | verified | ack p50 / p99 (ms) | result − 5 s: "
             "p50 / p90 / p99 / p99.9 / max (ms) |", "|---|---|---|---|---|---|---|"]
    for r in e2e:
        res = r["result"]
        o = [res[k] - delay_ms if res["count"] else float("nan")
             for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")]
        lines.append("| %s | %.0f/s | %d | %s | %s | %.2f / %.2f | %.2f / %.2f / %.2f / %.2f / %.2f |"
                     % ((r["run"]["label"], r["rate_rps"], r["requests"], errors(r),
                         "yes" if r["run"]["verified"] else "**no**", r["ack"]["p50_ms"],
                         r["ack"]["p99_ms"]) + tuple(o)))
    top = e2e[0]
    over = top["result"]["p99_ms"] - delay_ms
    lines += ["", "At %.0f jobs a second, target result-card overhead p99 < 10 ms with no errors: "
              "%s%s." % (top["rate_rps"], verdict(over < TARGET_MS["e2e_overhead_p99"] and
                                                  not top["errors"], over, 10),
                         "" if not top["errors"] else "; errors: " + errors(top))]
    return lines


def commands(runs):
    seen, out = set(), []
    for label, r in sorted(runs.items(), key=lambda kv: sort_key(kv[0])):
        cmd = re.sub(r"/tmp/tmp\.\w+/keys", "$KEYS", r["run"]["command"])
        cmd = re.sub(r"^digest-bench", "build-release/digest-bench", cmd)
        if cmd not in seen:
            seen.add(cmd)
            out.append("%-28s %s" % (label, cmd))
    return out


def results_section(d, runs):
    date = os.path.basename(os.path.normpath(d))
    lines = [BEGIN, "## digestd against its peers (issue 12, bench/run.sh, %s)" % date, "",
             "Written by `bench/report.py %s` from the digest-bench reports in `%s/` "
             "(one JSON file a run, with the run's checks and CPU under `run`)." % (d, d), "",
             "| | |", "|---|---|"]
    lines += ["| %s | %s |" % kv for kv in machine(runs)]
    lines += ["", "Versions: " + ", ".join("%s %s" % kv for kv in versions()) + ".", "",
              "### Ratios (the headline: runs side by side in one round)", ""]
    lines += ratio_table(runs)
    lines += ["", "### Every run", "",
              "CPU per request counts the warm-up requests too; \"others' CPU\" is what the "
              "machine spent outside this run's processes while it ran (other engineers' builds "
              "and tests), out of 2 cores × the run's length.", ""]
    lines += absolute_table(runs)
    lines += open_lines(runs) + e2e_lines(runs)
    lines += ["", "### Commands", "", "```sh", "bench/run.sh   # all of the above; then, per run:"]
    lines += commands(runs) + ["```", END]
    return "\n".join(lines)


def readme_section(d, runs):
    lines = [BEGIN, "Side by side in one run on a 2-core machine (Redis local, the same "
             "JWT-signed Teams activities, the acknowledgment card posted to the connector), "
             "digestd against the bot written with the official Bot Framework SDK, a "
             "hand-written Node.js bot and a FastAPI bot (`bench/peers/`), measured by "
             "`digest-bench`:", ""]
    lines += ratio_table(runs)
    lines += ["", "![Webhook latency by percentile, closed loop at 50 and 500 connections, the run's last round](docs/latency.png)", "",
              "Reproduce: `bench/run.sh` (installs what it needs, builds, runs everything and "
              "rewrites these tables; about 20 minutes with the default two rounds). The numbers, the machine, every "
              "command and what is missed: `bench/RESULTS.md`; how digest-bench measures: "
              "`docs/bench.md`.", END]
    return "\n".join(lines)


def replace_section(path, text, heading=None):
    body = open(path).read() if os.path.exists(path) else ""
    if BEGIN in body and END in body:
        body = body[:body.index(BEGIN)] + text + body[body.index(END) + len(END):]
    else:
        body = body.rstrip("\n") + "\n\n" + (heading + "\n\n" if heading else "") + text + "\n"
    with open(path, "w") as f:
        f.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--results")
    ap.add_argument("--readme")
    a = ap.parse_args()
    runs = load(a.dir)
    if not runs:
        sys.exit("report.py: no run reports in %s" % a.dir)
    if a.results:
        replace_section(a.results, results_section(a.dir, runs))
    else:
        print(results_section(a.dir, runs))
    if a.readme:
        replace_section(a.readme, readme_section(a.dir, runs), "## Performance")


if __name__ == "__main__":
    main()
