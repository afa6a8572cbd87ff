#!/usr/bin/env bash
# Benchmarks the webhook: a private redis-server, digest-stub (where the
# acknowledgment cards go) and a Release digestd on loopback, wrk posting
# unique activities spread over 20,000 conversations (Teams' pacing allows
# about 2 sends a second per conversation, so fewer would measure pacing).
# Prints wrk's summary, the RSS of digestd, the jobs that reached the stream
# and the ack cards the stub received.
#
#   bench/webhook.sh [connections] [duration] [wrk-threads]
#
# Environment: BUILD_DIR (default build-release; configured and built here as
# Release), PORT, REDIS_PORT, STUB_PORT, CPU_PROFILE=1 (bench/cpu.sh samples 5 s apart),
# PERF=1 (perf record of digestd), SHOW_METRICS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-50}
DURATION=${2:-20s}
THREADS=${3:-1}
PORT=${PORT:-39780}
REDIS_PORT=${REDIS_PORT:-39790}
STUB_PORT=${STUB_PORT:-39800}
BUILD_DIR=${BUILD_DIR:-build-release}

command -v wrk >/dev/null || { echo "apt-get install wrk" >&2; exit 1; }
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DWERROR=ON >/dev/null
cmake --build "$BUILD_DIR" -j2 --target digestd digest-stub >/dev/null

tmp=$(mktemp -d)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
  --logfile "$tmp/redis.log" &
redis_pid=$!
digestd_pid="" stub_pid=""
trap 'kill $digestd_pid $stub_pid $redis_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

ulimit -n 65536 2>/dev/null || true
"$BUILD_DIR/digest-stub" serve --listen "127.0.0.1:$STUB_PORT" --key-dir "$tmp/keys" \
  >/dev/null 2>"$tmp/stub.log" &
stub_pid=$!
stub="http://127.0.0.1:$STUB_PORT"
for _ in $(seq 50); do curl -fs "$stub/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
DIGEST_LISTEN=127.0.0.1:$PORT REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 BOT_AUTH=off \
  SERVICE_URL_ALLOW=127.0.0.1 BOT_TOKEN_URL="$stub/{tenant}/oauth2/v2.0/token" \
  MICROSOFT_APP_ID=c9e8c047-2a74-40a2-b28a-b162d5f5327c MICROSOFT_APP_PASSWORD=bench \
  LOG_LEVEL=warn MAX_CONNECTIONS=20000 "$BUILD_DIR/digestd" 2>"$tmp/digestd.log" &
digestd_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 $digestd_pid 2>/dev/null || { cat "$tmp/digestd.log"; exit 1; }

echo "== wrk -t$THREADS -c$CONNS -d$DURATION (digestd pid $digestd_pid)"
SERVICE_URL="$stub/" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/webhook.lua \
  "http://127.0.0.1:$PORT/api/messages" &
wrk_pid=$!
sleep 5
[ -n "${CPU_PROFILE:-}" ] && { bench/cpu.sh $digestd_pid $redis_pid $stub_pid $wrk_pid; sleep 5; bench/cpu.sh $digestd_pid $redis_pid $stub_pid $wrk_pid; }
[ -n "${PERF:-}" ] && perf record -F 2000 -g -o /tmp/perf.data -p $digestd_pid -- sleep 5 >/dev/null 2>&1
echo "digestd RSS under load: $(awk '/VmRSS/{print $2" "$3}' /proc/$digestd_pid/status)"
wait $wrk_pid
[ -n "${SHOW_METRICS:-}" ] && curl -s "http://127.0.0.1:$PORT/metrics" | grep -E "_sum|_count"
echo "digestd RSS after: $(awk '/VmRSS/{print $2" "$3}' /proc/$digestd_pid/status)"
echo "jobs in stream: $(redis-cli -p "$REDIS_PORT" XLEN '{digest}:requests')"
sleep 2
echo "stub: $(curl -s "$stub/stub/stats")"
[ -n "${SHOW_METRICS:-}" ] && redis-cli -p "$REDIS_PORT" INFO commandstats | grep -E "calls="
