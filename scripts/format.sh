#!/usr/bin/env bash
# Formats every C file of lib/, src/ and tests/ with the repository's
# .clang-format (STYLE.md §4), or with --check reports the files that would
# change and fails, as CI runs it. deps/ is never touched: nothing there is ours.
#
#   scripts/format.sh           rewrite the files in place
#   scripts/format.sh --check   change nothing; exit 1 when a file is not formatted
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: scripts/format.sh [--check]" >&2; exit 2 ;;
esac
command -v clang-format >/dev/null || { echo "format: apt-get install clang-format" >&2; exit 1; }

mapfile -t files < <(git ls-files -- 'lib/*.[ch]' 'src/*.[ch]' 'tests/*.[ch]' 'bench/*.[ch]')
if [ "$check" = 1 ]; then
  bad=()
  for f in "${files[@]}"; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if [ ${#bad[@]} -gt 0 ]; then
    printf 'format: not clang-formatted (run scripts/format.sh):\n' >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  exit 0
fi
clang-format -i "${files[@]}"
