#!/usr/bin/env bash
# The ABI gate: compares the built library with the committed baseline
# abi/libtinycnn.abi (written by abi/update.sh) and fails on ANY difference:
# abidiff's exit status is a bit field (4 = change, 8 = incompatible); an
# added function is a change too, recorded on purpose (docs/abi.md).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
LIB=$(readlink -f "$B/lib/libtinycnn.so")
# a stripped library would pass silently: demand debug info
if ! readelf -S "$LIB" | grep -q '\.debug_info'; then
  echo "abi: $LIB has no .debug_info (build with -g)"; exit 1
fi
set +e
abidiff --headers-dir2 include --drop-private-types \
  abi/libtinycnn.abi "$LIB"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "abi: abidiff exit $rc (1 error, 2 usage, 4 change, 8 incompatible)."
  echo "abi: if the change is intended, run abi/update.sh and record it in"
  echo "abi: CHANGELOG.md in the same commit (docs/abi.md)."
  exit 1
fi
echo "abi: no difference from abi/libtinycnn.abi"
