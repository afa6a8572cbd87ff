#!/usr/bin/env bash
# Installs what digestd needs to build and test, from Debian 12 packages.
# Does nothing when everything is already there. Sourced or run by
# scripts/test.sh and scripts/run.sh; the Dockerfile's build stage installs exactly
# DEPS_BUILD (tests/deploy/test_image.py checks it).
#
#   scripts/deps.sh                  install what is missing
#   scripts/deps.sh --list build     print one list, a package a line (build, test or node)
set -euo pipefail

DEPS_BUILD="build-essential cmake pkg-config libuv1-dev libcurl4-openssl-dev libjson-c-dev
libhiredis-dev libssl-dev libcmocka-dev node-llhttp"
# chromium: the operators' page's browser test (tests/browser drives it with playwright-core,
# which never downloads a browser of its own).
DEPS_TEST="redis-server python3 clang libclang-rt-14-dev clang-format curl valgrind prometheus
chromium"
DEPS_NODE="nodejs npm"

if [ "${1:-}" = --list ]; then
  case "${2:-}" in
    build) printf '%s\n' $DEPS_BUILD ;;
    test) printf '%s\n' $DEPS_TEST ;;
    node) printf '%s\n' $DEPS_NODE ;;
    *) echo "usage: scripts/deps.sh [--list build|test|node]" >&2; exit 2 ;;
  esac
  exit 0
fi

missing=()
for p in $DEPS_BUILD $DEPS_TEST; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node is only needed for the Adaptive Card validator and the browser test; any node on PATH
# will do (playwright-core wants 20 or later).
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=($DEPS_NODE)

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
