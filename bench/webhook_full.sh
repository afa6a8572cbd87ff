#!/usr/bin/env bash
# The webhook's full path as issue 13 measured it: wrk posting signed
# activities (one reused token, BOT_AUTH=jwt, keys from digest-stub), the
# job enqueued in one Redis, the acknowledgment card posted to nginx playing
# the connector (a static 200 with an id: the stand-in costs almost nothing),
# and its id recorded. Targets are interleaved round by round, each started
# fresh on a flushed Redis. Per run it prints req/s, p50/p99, the CPU of the
# target, Redis and nginx per request (utime+stime from /proc/PID/stat before
# and after the wrk run), the target's RSS at the end of the run and its peak
# (VmHWM), the jobs in the stream and the cards nginx answered.
#
#   bench/webhook_full.sh [connections] [duration] [rounds]
#
# Environment: TARGETS (default "digestd node-http botbuilder"; the Node.js
# peers need `npm ci` in bench/peers/node, see bench/deps.sh), BUILD_DIR
# (default build-release, built here as Release unless NO_BUILD=1),
# PORT_BASE (default 22000), WRK_THREADS (1), PERF=1 (perf record of digestd,
# 5 s, into /tmp/webhook_full.perf.data), OLD_BUILD_DIR (the target
# "digestd-old": another build, for before/after in one run), STRACE=1
# (strace -c of digestd for 3 s into /tmp/webhook_full.strace: system calls),
# REDIS_CALLGRIND=1 (redis-server under callgrind, zeroed before each run and
# dumped after it: Redis's instructions per request, exact where its CPU time
# is not; /tmp/webhook_full.redis.cg.TARGET).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-50}
DURATION=${2:-10s}
ROUNDS=${3:-2}
TARGETS=${TARGETS:-"digestd node-http botbuilder"}
BUILD_DIR=${BUILD_DIR:-build-release}
PORT_BASE=${PORT_BASE:-22000}
WRK_THREADS=${WRK_THREADS:-1}
REDIS_PORT=$PORT_BASE
STUB_PORT=$((PORT_BASE + 1))
TARGET_PORT=$((PORT_BASE + 2))
NGINX_PORT=$((PORT_BASE + 3))
APP_ID=c9e8c047-2a74-40a2-b28a-b162d5f5327c

for c in wrk nginx redis-server; do
  command -v "$c" >/dev/null || { echo "webhook_full.sh: needs $c (apt-get install wrk nginx-light redis-server)" >&2; exit 1; }
done
if [ -z "${NO_BUILD:-}" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target digestd digest-stub >/dev/null
fi
ulimit -n "$(ulimit -Hn)"

tmp=$(mktemp -d)
redis_pid="" stub_pid="" target_pid="" nginx_pid=""
cleanup() {
  for p in $target_pid $stub_pid $nginx_pid $redis_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_http() { # URL: until it answers, 20 s at most
  for _ in $(seq 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "webhook_full.sh: $1 never answered" >&2
  return 1
}
cpu_of() { # PID...: utime+stime seconds, summed
  local hz sum=0 p
  hz=$(getconf CLK_TCK)
  for p in "$@"; do
    sum=$(awk -v hz="$hz" -v s="$sum" '{ sub(/^.*\) /, ""); split($0, f, " "); printf "%.3f", s + (f[12] + f[13]) / hz }' "/proc/$p/stat")
  done
  echo "$sum"
}

sys_of() { # PID: stime seconds (the kernel's share: sockets, epoll)
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); split($0, f, " "); printf "%.3f", f[13] / hz }' "/proc/$1/stat"
}

RVG=""
if [ -n "${REDIS_CALLGRIND:-}" ]; then
  RVG="valgrind --tool=callgrind --callgrind-out-file=$tmp/rcg.%p --dump-instr=no"
fi
$RVG redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
  --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 200); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

"$BUILD_DIR/digest-stub" serve --listen "127.0.0.1:$STUB_PORT" --key-dir "$tmp/keys" \
  --outbox-max 1 >/dev/null 2>"$tmp/stub.log" &
stub_pid=$!
wait_http "http://127.0.0.1:$STUB_PORT/healthz"

# The connector: every reply POST (and update PUT) answered 200 {"id":…} from memory.
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_buffer_size 64k;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    default_type application/json;
    location ~ ^/v3/conversations/.+/activities { return 200 '{"id":"1481567603816"}'; }
    location = /nginx_status { stub_status; }
    location / { return 404; }
  }
}
EOF
nginx -c "$tmp/nginx.conf" -p "$tmp/nginx" 2>"$tmp/nginx/stderr" &
nginx_pid=$!
wait_http "http://127.0.0.1:$NGINX_PORT/nginx_status"
nginx_workers() { pgrep -P "$nginx_pid" | tr '\n' ' '; }
nginx_requests() { curl -fs "http://127.0.0.1:$NGINX_PORT/nginx_status" | awk 'NR == 3 { print $3 }'; }

connector="http://127.0.0.1:$NGINX_PORT/"
BOT_TOKEN=$("$BUILD_DIR/digest-stub" token --key-dir "$tmp/keys" --app-id "$APP_ID" \
  --service-url "$connector" --ttl 7200s)
export BOT_TOKEN SERVICE_URL=$connector
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 MICROSOFT_APP_ID=$APP_ID \
  MICROSOFT_APP_PASSWORD=bench-secret SERVICE_URL_ALLOW=127.0.0.1 LOG_LEVEL=warn BOT_AUTH=jwt \
  BOT_OPENID_URL=http://127.0.0.1:$STUB_PORT/v1/.well-known/openidconfiguration \
  BOT_TOKEN_URL="http://127.0.0.1:$STUB_PORT/{tenant}/oauth2/v2.0/token" \
  DIGEST_LISTEN=127.0.0.1:$TARGET_PORT

# CALLGRIND=1: digestd under callgrind, zeroed after the warm-up and dumped
# after the run, so target_us is replaced by instructions (Ir) per request,
# repeatable where timings are not (the load is whatever callgrind's pace allows).
VG=""
if [ -n "${CALLGRIND:-}" ]; then
  VG="valgrind --tool=callgrind --callgrind-out-file=$tmp/cg.%p --dump-instr=no"
fi
start_target() {
  case "$1" in
    digestd) MAX_CONNECTIONS=20000 $VG "$BUILD_DIR/digestd" --role api 2>"$tmp/target.log" & ;;
    # Another build (OLD_BUILD_DIR) of digestd, interleaved with this one: before/after.
    digestd-old) MAX_CONNECTIONS=20000 $VG "$OLD_BUILD_DIR/digestd" --role api 2>"$tmp/target.log" & ;;
    node-http) node bench/peers/node/node-http.js >"$tmp/target.log" 2>&1 & ;;
    botbuilder) node bench/peers/node/botbuilder.js >"$tmp/target.log" 2>&1 & ;;
    *) echo "unknown target $1" >&2; exit 2 ;;
  esac
  target_pid=$!
  if [ "${1%-old}" = digestd ]; then
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

printf "%-22s %9s %8s %8s %9s %5s %9s %9s %9s %9s %9s %9s %7s %7s  %s\n" run req/s p50_ms p99_ms \
  target_us sys% redis_us redis_lua nginx_us wrk_us rss_kB hwm_kB jobs% acks% "redis calls"
for round in $(seq "$ROUNDS"); do
  for t in $TARGETS; do
    redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
    start_target "$t"
    # A short warm-up: the connector token, keep-alive connections, JIT for the peers.
    wrk -t1 -c"$CONNS" -d2s -s bench/webhook.lua "http://127.0.0.1:$TARGET_PORT/api/messages" >/dev/null
    sleep 0.5
    w=$(nginx_workers)
    x0=$(redis-cli -p "$REDIS_PORT" XLEN '{digest}:requests')
    n0=$(nginx_requests)
    redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
    [ -z "$VG" ] || callgrind_control -z "$target_pid" >/dev/null
    [ -z "$RVG" ] || callgrind_control -z "$redis_pid" >/dev/null
    t0=$(cpu_of "$target_pid") r0=$(cpu_of "$redis_pid") g0=$(cpu_of $w) k0=$(sys_of "$target_pid")
    if [ -n "${STRACE:-}" ] && [ "$t" = digestd ]; then
      (sleep 2; timeout -s INT 3 strace -c -f -p "$target_pid" -o /tmp/webhook_full.strace \
        >/dev/null 2>&1; n=$(nginx_requests); echo "$n" >/tmp/webhook_full.strace.n) &
    fi
    if [ -n "${PERF:-}" ] && [ "$t" = digestd ]; then
      (sleep 2; perf record -F 1999 -g -o /tmp/webhook_full.perf.data -p "$target_pid" -- sleep 5 \
        >/dev/null 2>&1) &
    fi
    /usr/bin/time -f "%U %S" -o "$tmp/wrk.time" \
      wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency -s bench/webhook.lua \
      "http://127.0.0.1:$TARGET_PORT/api/messages" >"$tmp/wrk.out"
    sleep 0.3 # the last acks
    t1=$(cpu_of "$target_pid") r1=$(cpu_of "$redis_pid") g1=$(cpu_of $w) k1=$(sys_of "$target_pid")
    n1=$(nginx_requests)
    x1=$(redis-cli -p "$REDIS_PORT" XLEN '{digest}:requests')
    # Redis's time in scripts (INFO commandstats usec of EVAL/EVALSHA, which holds the
    # commands they call), and the calls of each command (those from scripts too).
    redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' >"$tmp/cmdstats"
    cmd_us=$(awk -F'[=,]' '/^cmdstat_eval/ { s += $4 } END { print s + 0 }' "$tmp/cmdstats")
    calls=$(awk -F'[:=,]' '/^cmdstat_/ && !/cmdstat_(info|config|xlen)/ { sub(/cmdstat_/, "", $1); printf "%s %s ", $1, $3 }' "$tmp/cmdstats")
    if [ -n "$VG" ]; then
      rm -f "$tmp"/cg.*
      callgrind_control -d "$target_pid" >/dev/null
      ir=$(cat "$tmp"/cg.* | awk '/^summary:/ { print $2 }' | sort -n | tail -1)
      cp "$(ls -S "$tmp"/cg.* | head -1)" "/tmp/webhook_full.cg.$t"
    fi
    if [ -n "$RVG" ]; then
      rm -f "$tmp"/rcg.*
      callgrind_control -d "$redis_pid" >/dev/null
      rir=$(cat "$tmp"/rcg.* | awk '/^summary:/ { print $2 }' | sort -n | tail -1)
      cp "$(ls -S "$tmp"/rcg.* | head -1)" "/tmp/webhook_full.redis.cg.$t"
    fi
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$target_pid/status")
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$target_pid/status")
    stop_target
    reqs=$(awk '/requests in/ { print $1 }' "$tmp/wrk.out")
    [ -z "$VG" ] || echo "callgrind: $t $((ir / reqs)) Ir per request ($reqs requests)"
    [ -z "$RVG" ] || echo "callgrind: redis-server for $t $((rir / reqs)) Ir per request ($reqs requests, $((x1 - x0)) jobs)"
    rps=$(awk '/Requests\/sec/ { print $2 }' "$tmp/wrk.out")
    p50=$(awk '/p50=/ { sub(/p50=/, "", $1); sub(/ms/, "", $1); print $1 }' "$tmp/wrk.out")
    p99=$(awk '/p50=/ { sub(/p99=/, "", $3); sub(/ms/, "", $3); print $3 }' "$tmp/wrk.out")
    bad=$(awk '/Non-2xx/ { print $5 }' "$tmp/wrk.out")
    awk -v l="c$CONNS-$t-r$round" -v n="$reqs" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
      -v t="$t0 $t1" -v r="$r0 $r1" -v g="$g0 $g1" -v rss="$rss" -v hwm="$hwm" \
      -v jobs="$((x1 - x0))" -v acks="$((n1 - n0 - 1))" -v bad="${bad:-0}" -v cmd="$cmd_us" \
      -v calls="$calls" -v wrk="$(cat "$tmp/wrk.time")" -v k="$k0 $k1" 'BEGIN {
        split(k, K, " ");
        split(wrk, W, " ");
        split(t, T, " "); split(r, R, " "); split(g, G, " ");
        printf "%-22s %9.0f %8.2f %8.2f %9.1f %5.0f %9.1f %9.1f %9.1f %9.1f %9d %9d %7.1f %7.1f  %s%s\n",
          l, rps, p50, p99, (T[2] - T[1]) * 1e6 / n, 100 * (K[2] - K[1]) / (T[2] - T[1]),
          (R[2] - R[1]) * 1e6 / n, cmd / n,
          (G[2] - G[1]) * 1e6 / n, (W[1] + W[2]) * 1e6 / n, rss, hwm, 100 * jobs / n,
          100 * acks / n, calls,
          (bad > 0 ? "  non-2xx " bad : "") }'
  done
done
