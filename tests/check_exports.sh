#!/usr/bin/env bash
# Checks a shared library's contract: its exports are exactly the symbols
# that its version script lists, each in the version node that lists it
# (a symbol exported but not listed, or listed but not exported, fails by
# name); for libtinycnn also SONAME libtinycnn.so.0 and no CUDA or MPI
# library among its dependencies (MPI lives in libtinycnn-mpi, CUDA in the
# tinycnn-cuda module).
#   tests/check_exports.sh [LIB [MAP]]
# MAP defaults to lib/libtinycnn.map for libtinycnn.so and to
# mpi/libtinycnn-mpi.map for libtinycnn-mpi.so.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
LIB=${1:-build/lib/libtinycnn.so}
case "$(basename "$LIB")" in
  libtinycnn-mpi.so*) MAP=${2:-$SRC/mpi/libtinycnn-mpi.map}; SONAME=libtinycnn-mpi.so.0 ;;
  *) MAP=${2:-$SRC/lib/libtinycnn.map}; SONAME=libtinycnn.so.0 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "name@node" for every name listed under a global: section of the map,
# plus the node names themselves (the linker exports them as absolute
# symbols); comments are dropped first
sed -e 's,/\*.*\*/,,g' -e '/\/\*/,/\*\//d' -e 's,#.*,,' "$MAP" | awk '
  /^[ \t]*[A-Za-z_][A-Za-z0-9_.]*[ \t]*\{/ { node = $1; sub(/\{.*/, "", node)
                                             print node "@" node; glob = 0; next }
  /global:/ { glob = 1; sub(/.*global:/, "") }
  /local:/  { glob = 0 }
  /^[ \t]*\}/ { glob = 0; next }
  glob { n = split($0, w, /[ \t;]+/)
         for (i = 1; i <= n; i++) if (w[i] != "") print w[i] "@" node }
' | LC_ALL=C sort -u > "$tmp/map"
if grep -q '[*?[]' "$tmp/map"; then
  echo "$MAP: wildcard in a global: section; list each symbol by name"
  grep '[*?[]' "$tmp/map"; exit 1
fi

# "name@node" for every defined dynamic symbol (nm prints name@@node for the
# default version, name@node for an older one, and a version node's own
# symbol bare or as NODE@@NODE depending on binutils' version)
nm -D --defined-only "$LIB" | awk '{print $3}' | sed 's/@@*/@/' \
  | awk -F@ '{ if ($2 != "") print; else if ($1 ~ /^[A-Z][A-Z0-9_.]*$/) print $1 "@" $1
               else print $1 "@(unversioned)" }' \
  | LC_ALL=C sort -u > "$tmp/lib"

extra=$(LC_ALL=C comm -13 "$tmp/map" "$tmp/lib")
missing=$(LC_ALL=C comm -23 "$tmp/map" "$tmp/lib")
if [ -n "$extra" ] || [ -n "$missing" ]; then
  if [ -n "$extra" ]; then
    echo "exported by $LIB but not listed in $MAP (name@version):"
    echo "$extra" | sed 's/^/  /'
  fi
  if [ -n "$missing" ]; then
    echo "listed in $MAP but not exported by $LIB (name@version):"
    echo "$missing" | sed 's/^/  /'
  fi
  echo "a new public function goes into the map by hand (docs/abi.md)"
  exit 1
fi

# The other way round: a function marked TC_API (default visibility in the
# static library's objects) that the map forgets is silently made local by
# the linker; find those in the static library built beside the shared one.
ARCHIVE=${LIB%%.so*}.a
if [ -f "$ARCHIVE" ]; then
  readelf -sW "$ARCHIVE" \
    | awk '$5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" {print $8}' \
    | LC_ALL=C sort -u > "$tmp/api"
  sed 's/@.*//' "$tmp/map" | LC_ALL=C sort -u > "$tmp/names"
  unlisted=$(LC_ALL=C comm -23 "$tmp/api" "$tmp/names")
  if [ -n "$unlisted" ]; then
    echo "public (default visibility) in $ARCHIVE but not listed in $MAP:"
    echo "$unlisted" | sed 's/^/  /'
    echo "a new public function goes into the map by hand (docs/abi.md)"
    exit 1
  fi
fi

soname=$(readelf -d "$LIB" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "$SONAME" ] || { echo "SONAME is '$soname', expected $SONAME"; exit 1; }
if [ "$SONAME" = libtinycnn.so.0 ]; then
  if readelf -d "$LIB" | grep NEEDED | grep -Ei 'cuda|cublas|nvidia'; then
    echo "libtinycnn.so depends on CUDA"; exit 1
  fi
  if readelf -d "$LIB" | grep NEEDED | grep -Ei 'mpi'; then
    echo "libtinycnn.so depends on MPI"; exit 1
  fi
fi
echo "exports of $(basename "$LIB"): $(grep -vc '^\([A-Z0-9_.]*\)@\1$' "$tmp/lib") functions, exactly as $(basename "$MAP") lists them; SONAME $soname"
