#!/usr/bin/env bash
# digestd against the bots its users would deploy instead (bench/peers/),
# measured by digest-bench, on this machine, in one run:
#
#   webhook  closed loop at 50 and 500 connections, JWT on, the acknowledgment
#            card posted to digest-bench's connector; targets interleaved
#            (digestd botbuilder node-http fastapi, then again) so the
#            machine's drift and other people's CPU hit them all alike
#   open     digestd open loop at 70 % of its measured 50-connection capacity
#            (and at 40 %, to show where the open-loop targets hold)
#   e2e      digestd --role all, a 5 s upstream, 1,000 jobs a second for 60 s
#            (and 300 a second): time to the result card minus the upstream's 5 s
#
# Every run gets a fresh Redis (FLUSHALL) and a freshly started target, and
# is checked afterwards: the stream's entries and the cards the connector
# received against what digest-bench sent. Writes every report (digest-bench
# --json) and its check into $OUT, the tables into bench/RESULTS.md
# (bench/report.py) and the latency picture (bench/plot.sh).
#
#   bench/run.sh [--rounds N] [--duration D] [--parts webhook,open,e2e] [--no-write]
#
# Environment: WARMUP, LOADS, TARGETS, OPEN_DURATION, OPEN_SHARES, E2E_RATES, E2E_DURATION,
# E2E_DELAY (the defaults above), BUILD_DIR (default build-release, built here as Release unless
# NO_BUILD=1), OUT (default bench/data/<date>), PORT_BASE (default 21000:
# below Linux's ephemeral ports, so no client socket ever takes ours),
# NO_DEPS=1 (skip bench/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=2
DURATION=15s
WARMUP=${WARMUP:-3s}
LOADS=${LOADS:-"50 500"}
TARGETS=${TARGETS:-"digestd botbuilder node-http fastapi"}
PARTS=webhook,open,e2e
WRITE=1
OPEN_DURATION=${OPEN_DURATION:-30s}
OPEN_SHARES=${OPEN_SHARES:-"70 40"}
E2E_RATES=${E2E_RATES:-"1000 300"}
E2E_DURATION=${E2E_DURATION:-60s}
E2E_DELAY=${E2E_DELAY:-5s}
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --parts) PARTS=$2; shift 2 ;;
    --no-write) WRITE=0; shift ;;
    *) echo "usage: bench/run.sh [--rounds N] [--duration D] [--parts webhook,open,e2e] [--no-write]" >&2
       exit 2 ;;
  esac
done
BUILD_DIR=${BUILD_DIR:-build-release}
OUT=${OUT:-bench/data/$(date -u +%Y-%m-%d)}
PORT_BASE=${PORT_BASE:-21000}
REDIS_PORT=$PORT_BASE
STUB_PORT=$((PORT_BASE + 1))
TARGET_PORT=$((PORT_BASE + 2))
CONNECTOR_PORT=$((PORT_BASE + 3))
APP_ID=c9e8c047-2a74-40a2-b28a-b162d5f5327c

[ -n "${NO_DEPS:-}" ] || bench/deps.sh
if [ -z "${NO_BUILD:-}" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target digestd digest-stub digest-bench >/dev/null
fi
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"

tmp=$(mktemp -d)
redis_pid="" stub_pid="" target_pid=""
cleanup() {
  for p in $target_pid $stub_pid $redis_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_http() { # URL: until it answers, 20 s at most
  for _ in $(seq 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "run.sh: $1 never answered" >&2
  return 1
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
  --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

start_stub() { # upstream delay
  [ -z "$stub_pid" ] || { kill "$stub_pid"; wait "$stub_pid" 2>/dev/null || true; }
  "$BUILD_DIR/digest-stub" serve --listen "127.0.0.1:$STUB_PORT" --key-dir "$tmp/keys" \
    --upstream-delay "$1" --outbox-max 1 >/dev/null 2>"$tmp/stub.log" &
  stub_pid=$!
  wait_http "http://127.0.0.1:$STUB_PORT/healthz"
}
start_stub 0

# What every target is given: digestd's variable names, keys from digest-stub
# (started first: the bots load them at start), the token endpoint and the
# connector at digest-bench (which answers once it runs; bots fetch lazily).
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 MICROSOFT_APP_ID=$APP_ID \
  MICROSOFT_APP_PASSWORD=bench-secret SERVICE_URL_ALLOW=127.0.0.1 LOG_LEVEL=warn \
  BOT_OPENID_URL=http://127.0.0.1:$STUB_PORT/v1/.well-known/openidconfiguration \
  BOT_TOKEN_URL="http://127.0.0.1:$CONNECTOR_PORT/{tenant}/oauth2/v2.0/token" \
  DIGEST_UPSTREAM_URL="http://127.0.0.1:$STUB_PORT/api/talentwell/digest?audience={audience}" \
  DIGEST_LISTEN=127.0.0.1:$TARGET_PORT

start_target() { # name [digestd role]
  case "$1" in
    digestd) MAX_CONNECTIONS=20000 WORKER_CONCURRENCY=10000 \
               "$BUILD_DIR/digestd" --role "${2:-api}" 2>"$tmp/target.log" & ;;
    botbuilder) node bench/peers/node/botbuilder.js >"$tmp/target.log" 2>&1 & ;;
    node-http) node bench/peers/node/node-http.js >"$tmp/target.log" 2>&1 & ;;
    fastapi) /usr/bin/python3 -m uvicorn app:app --app-dir bench/peers/fastapi \
               --host 127.0.0.1 --port "$TARGET_PORT" --no-access-log --log-level warning \
               >"$tmp/target.log" 2>&1 & ;;
  esac
  target_pid=$!
  if [ "$1" = digestd ]; then
    wait_http "http://127.0.0.1:$TARGET_PORT/readyz"
  else
    wait_http "http://127.0.0.1:$TARGET_PORT/healthz"
  fi
}

stop_target() {
  kill "$target_pid" 2>/dev/null || true
  wait "$target_pid" 2>/dev/null || true
  target_pid=""
}

cpu_of() { # PID: utime+stime seconds
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); split($0, f, " "); printf "%.2f", (f[12] + f[13]) / hz }' "/proc/$1/stat"
}
machine_busy() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat
}

# One run: fresh Redis, fresh target, digest-bench, then the checks.
#   bench_run LABEL TARGET ROLE DIGEST-BENCH-ARGS...
bench_run() {
  local label=$1 target=$2 role=$3
  shift 3
  redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
  start_target "$target" "$role"
  local args=(--target "http://127.0.0.1:$TARGET_PORT/api/messages"
    --connector-listen "127.0.0.1:$CONNECTOR_PORT" --key-dir "$tmp/keys" --app-id "$APP_ID" "$@" --json)
  local t0 r0 s0 m0
  t0=$(cpu_of "$target_pid") r0=$(cpu_of "$redis_pid") s0=$(cpu_of "$stub_pid") m0=$(machine_busy)
  local load0
  load0=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%U %S" -o "$tmp/bench.time" "$BUILD_DIR/digest-bench" "${args[@]}" \
    >"$OUT/$label.json" 2>"$tmp/bench.log" || { cat "$tmp/bench.log" >&2; return 1; }
  local t1 r1 s1 m1
  t1=$(cpu_of "$target_pid") r1=$(cpu_of "$redis_pid") s1=$(cpu_of "$stub_pid") m1=$(machine_busy)
  local xlen
  xlen=$(redis-cli -p "$REDIS_PORT" XLEN '{digest}:requests')
  stop_target
  python3 - "$OUT/$label.json" "$label" "$target" "$xlen" "$t0 $t1" "$r0 $r1" "$s0 $s1" "$m0 $m1" \
    "$(cat "$tmp/bench.time")" "$load0" "digest-bench ${args[*]}" \
    "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- lib src || echo +dirty)" <<'EOF'
import json, sys
path, label, target, xlen = sys.argv[1:5]
(t0, t1), (r0, r1), (s0, s1), (m0, m1) = [map(float, a.split()) for a in sys.argv[5:9]]
bu, bs = map(float, sys.argv[9].split())
r = json.load(open(path))
bench_cpu = bu + bs
ours = (t1 - t0) + (r1 - r0) + (s1 - s0) + bench_cpu
r["run"] = {"label": label, "target_name": target, "xlen": int(xlen),
            "cpu_s": {"target": round(t1 - t0, 2), "redis": round(r1 - r0, 2),
                      "stub": round(s1 - s0, 2), "bench": round(bench_cpu, 2),
                      "machine": round(m1 - m0, 2), "others": round((m1 - m0) - ours, 2)},
            "loadavg_before": float(sys.argv[10]), "command": sys.argv[11],
            "commit": sys.argv[12]}
# The checks: every job on the stream, every awaited card at the connector.
sent = r["sent"] + r["warmup_requests"]
ok = not r["errors"] and int(xlen) == sent and r["ack"]["count"] == r["requests"]
r["run"]["verified"] = ok
json.dump(r, open(path, "w"))
print("%-28s %8.0f/s  webhook p99 %8.2f ms  ack p99 %8.2f ms  result p99 %8.2f ms  "
      "xlen %d of %d sent  errors %s  others' CPU %.1f s%s" % (
          label, r["throughput_rps"], r["webhook"]["p99_ms"], r["ack"]["p99_ms"],
          r["result"]["p99_ms"], int(xlen), sent, r["errors"] or "none",
          r["run"]["cpu_s"]["others"], "" if ok else "  CHECK FAILED"))
EOF
}

echo "run.sh: writing to $OUT (rounds $ROUNDS, webhook runs $DURATION after $WARMUP)"
if [[ $PARTS == *webhook* ]]; then
  for round in $(seq "$ROUNDS"); do
    for conns in $LOADS; do
      for t in $TARGETS; do
        bench_run "webhook-c$conns-$t-r$round" "$t" api --connections "$conns" \
          --duration "$DURATION" --warmup "$WARMUP" --await ack
      done
    done
  done
fi

if [[ $PARTS == *open* ]]; then
  # Shares of digestd's 50-connection throughput, the median of this run's rounds.
  CAPACITY=$(python3 -c '
import glob, json, statistics, sys
v = [json.load(open(f))["throughput_rps"] for f in glob.glob(sys.argv[1] + "/webhook-c50-digestd-r*.json")]
print(round(statistics.median(v)) if v else 4000)' "$OUT")
  for round in $(seq "$ROUNDS"); do
    for share in $OPEN_SHARES; do
      bench_run "open-p$share-digestd-r$round" digestd api --rate $((CAPACITY * share / 100)) \
        --duration "$OPEN_DURATION" --warmup "$WARMUP" --await ack
    done
  done
fi

if [[ $PARTS == *e2e* ]]; then
  start_stub "$E2E_DELAY"
  for rate in $E2E_RATES; do
    bench_run "e2e-$rate-digestd" digestd all --rate "$rate" --duration "$E2E_DURATION" \
      --warmup "$WARMUP" --await result --drain 30s --timeout 30s
  done
fi

if [ "$WRITE" = 1 ]; then
  python3 bench/report.py "$OUT" --results bench/RESULTS.md --readme README.md
  bench/plot.sh "$OUT" docs/latency.png
fi
