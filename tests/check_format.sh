#!/usr/bin/env bash
# Fails when a tracked C source or header differs from .clang-format (the
# house style; clang-format 14 is what Debian 12 ships). Generated and
# third-party files are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLANG_FORMAT:-clang-format}
command -v "$CF" > /dev/null || { echo "format: no $CF"; exit 1; }
bad=$(git ls-files '*.c' '*.h' | grep -v '^third_party/' | while read -r f; do
  "$CF" --dry-run -Werror "$f" > /dev/null 2>&1 || echo "$f"
done)
if [ -n "$bad" ]; then
  echo "format: these files differ from .clang-format (run clang-format -i):"
  echo "$bad"
  exit 1
fi
echo "format: $(git ls-files '*.c' '*.h' | grep -vc '^third_party/') files as .clang-format says"
