#!/usr/bin/env bash
# Installs what is missing, builds, and starts the whole thing on loopback: a
# private redis-server, digest-stub (the upstream digest service and
# everything Microsoft provides: token endpoint, connector, signing keys) and
# digestd wired to them. Then it types `digest advisors` the way Teams would
# and shows the acknowledgment card arriving at the stub's connector, then the
# worker's result card a few seconds later and the acknowledgment updated.
# Ctrl-C stops all three. State lives under ./run/.
#
#   scripts/run.sh        PORT=3978 STUB_PORT=8000 REDIS_PORT=6390 by default
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

PORT=${PORT:-3978}
STUB_PORT=${STUB_PORT:-8000}
REDIS_PORT=${REDIS_PORT:-6390}
rundir="$top/run"
mkdir -p "$rundir"

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target digestd digest-stub

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_http() { # URL WHAT
  for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "run.sh: $2 did not come up ($1)" >&2
  exit 1
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$rundir" --logfile "$rundir/redis.log" --daemonize no &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# The stub prints one line per message the "connector" receives.
build/digest-stub serve --listen "127.0.0.1:$STUB_PORT" --key-dir "$rundir/keys" \
  --upstream-delay 2s-4s 2>"$rundir/stub.log" | sed -u 's/^/[teams] /' &
pids+=($!)
wait_http "http://127.0.0.1:$STUB_PORT/healthz" digest-stub

# BOT_AUTH=jwt, as in production: digestd checks every activity's token
# against the stub's signing keys (BOT_OPENID_URL), and `digest-stub say`
# signs with the same key (--key-dir), the way Bot Framework would.
export DIGEST_LISTEN="127.0.0.1:$PORT" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export BOT_AUTH=jwt LOG_FORMAT=text SERVICE_URL_ALLOW=127.0.0.1
export BOT_OPENID_URL="http://127.0.0.1:$STUB_PORT/v1/.well-known/openidconfiguration"
export DIGEST_UPSTREAM_URL="http://127.0.0.1:$STUB_PORT/api/talentwell/digest?audience={audience}"
export BOT_TOKEN_URL="http://127.0.0.1:$STUB_PORT/{tenant}/oauth2/v2.0/token"
export MICROSOFT_APP_ID=c9e8c047-2a74-40a2-b28a-b162d5f5327c MICROSOFT_APP_PASSWORD=dev-secret
build/digestd 2> >(sed -u 's/^/[digestd] /' >&2) &
pids+=($!)
wait_http "http://127.0.0.1:$PORT/readyz" digestd

say="build/digest-stub say 'digest advisors' --to http://127.0.0.1:$PORT/api/messages"
say="$say --stub http://127.0.0.1:$STUB_PORT --key-dir $rundir/keys"
echo
echo "== a user types 'digest advisors' in Teams:"
echo "   $say"
eval "$say"
echo
echo "== acknowledged at once; the worker now fetches the digest (the stub takes 2-4 s)..."
for _ in $(seq 100); do
  # The result card, then the acknowledgment card updated in place (a PUT).
  curl -fs "http://127.0.0.1:$STUB_PORT/stub/outbox" | grep -q '"kind": *"update"' && break
  sleep 0.1
done
echo
echo "== the job's audit record (status delivered, the two card ids, its times):"
rid=$(redis-cli -p "$REDIS_PORT" --raw XRANGE '{digest}:requests' - + | sed -n '/^request_id$/{n;p;q}')
redis-cli -p "$REDIS_PORT" HGETALL "{digest}:req:$rid" | paste - -
echo
echo "Try: $say --conversation channel"
echo "     ... say 'help'   ... say 'status'   (cards show up as [teams] lines)"
echo "     curl -s http://127.0.0.1:$STUB_PORT/stub/outbox    # what the connector received"
echo "     USE_ASYNC_DIGEST=false scripts/run.sh              # the synchronous path"
echo "Ctrl-C stops digestd, digest-stub and Redis."
wait "${pids[-1]}"
