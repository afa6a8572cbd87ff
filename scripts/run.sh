#!/usr/bin/env bash
# Installs what is missing, builds, starts a private redis-server and digestd
# (in the foreground, Ctrl-C stops both), and shows a digest request flowing
# into the Redis stream. Everything lives under ./run/ and on loopback.
#
#   scripts/run.sh            PORT=3978 REDIS_PORT=6390 by default
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

PORT=${PORT:-3978}
REDIS_PORT=${REDIS_PORT:-6390}
rundir="$top/run"
mkdir -p "$rundir"

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target digestd

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$rundir" --logfile "$rundir/redis.log" --daemonize no &
redis_pid=$!
digestd_pid=""
cleanup() {
  [ -n "$digestd_pid" ] && kill "$digestd_pid" 2>/dev/null && wait "$digestd_pid" 2>/dev/null
  kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  true
}
trap cleanup EXIT INT TERM
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# BOT_AUTH=off: local development only; digestd warns about it at start.
export DIGEST_LISTEN="127.0.0.1:$PORT" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export BOT_AUTH=off LOG_FORMAT=text
build/digestd &
digestd_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

fixture="$top/tests/fixtures/teams-personal-chat.json"
post="curl -s -H 'Content-Type: application/json' --data @$fixture http://127.0.0.1:$PORT/api/messages"
echo
echo "== posting a Teams activity ('digest advisors'):"
echo "   $post"
eval "$post"; echo
echo "== the job on the Redis stream:"
redis-cli -p "$REDIS_PORT" XRANGE '{digest}:requests' - +
echo
echo "Post it again to see deduplication, or edit the id in the JSON to queue another."
echo "Metrics: curl http://127.0.0.1:$PORT/metrics   Ctrl-C stops digestd and Redis."
wait "$digestd_pid"
