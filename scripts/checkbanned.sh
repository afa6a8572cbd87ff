#!/usr/bin/env bash
# Fails when src/ calls what this codebase bans (STYLE rule 6): unbounded
# string functions, and raw malloc/free outside buf.c (use the x-alloc family).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
if grep -nE '\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)\s*\(' src/*.c src/*.h; then
  echo "checkbanned: use snprintf/struct buf/strtol instead of the calls above" >&2
  status=1
fi
if grep -nE '(^|[^x_a-z])(malloc|calloc|realloc|free|strdup|strndup)\s*\(' src/*.c \
    | grep -v '^src/buf.c:'; then
  echo "checkbanned: use xmalloc/xcalloc/xrealloc/xfree/xstrdup (src/buf.h)" >&2
  status=1
fi
exit $status
