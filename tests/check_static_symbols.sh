#!/usr/bin/env bash
# The static libraries define no global symbol outside tinycnn's prefixes:
# tc_ (public), tc__ (internal, shared between files) and TC_. Visibility
# does not apply to an archive, so an internal helper named e.g.
# cpu_relu_fwd would clash with, or be silently replaced by, a user's
# function of that name (docs/abi.md).
#   tests/check_static_symbols.sh [BUILD_DIR]
set -euo pipefail
B=${1:-build}
status=0
for a in "$B/lib/libtinycnn.a" "$B/mpi/libtinycnn-mpi.a"; do
  if [ ! -f "$a" ]; then
    [ "$a" = "$B/lib/libtinycnn.a" ] && { echo "no $a"; exit 1; }
    continue
  fi
  syms=$(nm --defined-only --extern-only "$a" | awk 'NF == 3 {print $3}' \
         | LC_ALL=C sort -u)
  bad=$(echo "$syms" | grep -Ev '^(tc_|TC_)' || true)
  if [ -n "$bad" ]; then
    echo "$a: global symbols without the tc_/tc__/TC_ prefix:"
    echo "$bad" | sed 's/^/  /'
    status=1
  else
    echo "$(basename "$a"): $(echo "$syms" | grep -c .) global symbols, all tc_/tc__/TC_"
  fi
done
if [ $status -ne 0 ]; then
  echo "rename internal helpers tc__name, or make them static (docs/abi.md)"
fi
exit $status
