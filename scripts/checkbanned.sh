#!/usr/bin/env bash
# Fails when lib/ or src/ calls what this codebase bans (STYLE rule 6):
# unbounded string functions, and raw malloc/free outside lib/core/buf.c (use
# the x-alloc family).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
if grep -rnE --include='*.c' --include='*.h' \
    '\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)\s*\(' lib src; then
  echo "checkbanned: use snprintf/struct buf/strtol instead of the calls above" >&2
  status=1
fi
if grep -rnE --include='*.c' '(^|[^x_a-z])(malloc|calloc|realloc|free|strdup|strndup)\s*\(' lib src \
    | grep -v '^lib/core/buf.c:'; then
  echo "checkbanned: use xmalloc/xcalloc/xrealloc/xfree/xstrdup (lib/core/buf.h)" >&2
  status=1
fi
exit $status
