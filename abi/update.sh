#!/usr/bin/env bash
# Rewrites the ABI baseline from a build. Only for intended changes: commit
# it together with a CHANGELOG.md entry that says what changed (docs/abi.md).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
LIB=$(readlink -f "$B/lib/libtinycnn.so")
abidw --headers-dir include --drop-private-types --no-corpus-path \
  --out-file abi/libtinycnn.abi "$LIB"
echo "abi: baseline written from $LIB"
