#!/usr/bin/env bash
# Installs what is missing, checks the banned calls and the formatting
# (scripts/format.sh --check), builds, and runs every test: unit (cmocka),
# integration (real redis-server + digestd over loopback), card validation
# (npm adaptivecards), the operators' page in headless Chromium (npm
# playwright-core driving Debian's chromium), the deployment manifests (npm
# kubernetes-models, promtool) and a short libFuzzer pass over every parser.
#
#   scripts/test.sh                 regular build, all tests
#   scripts/test.sh --asan          the same under AddressSanitizer + UBSan (CI)
#   scripts/test.sh --valgrind      unit and integration tests under valgrind (slow)
#   scripts/test.sh --no-fuzz       skip the fuzz pass
#   FUZZ_SECONDS=30 scripts/test.sh fuzz time per target (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."

asan=OFF
valgrind=0
fuzz=1
for a in "$@"; do
  case "$a" in
    --asan) asan=ON ;;
    --valgrind) valgrind=1 ;;
    --no-fuzz) fuzz=0 ;;
    *) echo "usage: scripts/test.sh [--asan|--valgrind] [--no-fuzz]" >&2; exit 2 ;;
  esac
done
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
jobs=$(nproc 2>/dev/null || echo 2)

scripts/deps.sh
scripts/checkbanned.sh
scripts/format.sh --check

for dir in tests/cards tests/browser tests/deploy; do
  if [ -f "$dir/package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

builddir=build
prefix=""
[ "$asan" = ON ] && builddir=build-asan
if [ "$valgrind" = 1 ]; then
  command -v valgrind >/dev/null || { echo "apt-get install valgrind" >&2; exit 1; }
  builddir=build-valgrind
  asan=OFF
  prefix="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-origins=yes --quiet"
fi
cmake -S . -B "$builddir" -DASAN="$asan" -DTEST_PREFIX="$prefix" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$builddir" -j"$jobs"

if [ "$asan" = ON ]; then
  # Leaks fail the run; halt on the first UBSan report with a stack.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
ctest --test-dir "$builddir" --output-on-failure -j"$jobs"

if [ "$fuzz" = 1 ] && command -v clang >/dev/null 2>&1; then
  CC=clang cmake -S . -B build-fuzz -DFUZZ=ON -DFUZZ_SECONDS="$FUZZ_SECONDS" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-fuzz -j"$jobs"
  ctest --test-dir build-fuzz --output-on-failure -L fuzz -j"$jobs"
fi
