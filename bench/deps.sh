#!/usr/bin/env bash
# Installs what bench/run.sh needs beyond scripts/deps.sh (not CI's: no CI
# test uses these): the Debian packages of the FastAPI peer and of the
# latency plot, wrk and nginx-light for bench/webhook_full.sh, and the pinned npm packages of the Node.js peers
# (bench/peers/node/package-lock.json, `npm ci`).
set -euo pipefail
cd "$(dirname "$0")/.."

DEPS_BENCH="python3-fastapi python3-uvicorn python3-uvloop python3-httptools python3-redis
python3-jwt python3-httpx gnuplot-nox wrk nginx-light"

scripts/deps.sh
missing=()
for p in $DEPS_BENCH; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Any node and npm on PATH will do (as in scripts/deps.sh); Debian's otherwise.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
(cd bench/peers/node && npm ci --no-audit --no-fund --loglevel=error)
