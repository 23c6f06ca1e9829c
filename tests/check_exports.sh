#!/usr/bin/env bash
# Checks the shared library's contract: only tc_* symbols exported, SONAME
# libtinycnn.so.0, no CUDA or MPI library among its dependencies (MPI lives
# in libtinycnn-mpi, CUDA in the tinycnn-cuda module).
set -euo pipefail
LIB=${1:-build/lib/libtinycnn.so}
bad=$(nm -D --defined-only "$LIB" | awk '{print $3}' | sed 's/@.*//' \
      | grep -v '^tc_[a-z]' | grep -v '^TINYCNN_0$' || true)
if [ -n "$bad" ]; then
  echo "non-tc_ symbols exported:"; echo "$bad"; exit 1
fi
soname=$(readelf -d "$LIB" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libtinycnn.so.0" ] || { echo "SONAME is '$soname'"; exit 1; }
if readelf -d "$LIB" | grep NEEDED | grep -Ei 'cuda|cublas|nvidia'; then
  echo "libtinycnn.so depends on CUDA"; exit 1
fi
if readelf -d "$LIB" | grep NEEDED | grep -Ei 'mpi'; then
  echo "libtinycnn.so depends on MPI"; exit 1
fi
echo "exports: $(nm -D --defined-only "$LIB" | grep -c ' T tc_') tc_ functions, SONAME $soname, no CUDA or MPI dependency"
