#!/usr/bin/env bash
# Build check of the CUDA module's fat binary (backends/cuda/meson.build):
# SASS for sm_80 (A100) and sm_90 (H100/H200), PTX for the newest
# architecture the compiler knows, and nothing the compiler does not list.
# Needs no GPU. Usage: check_cuda_archs.sh tinycnn-cuda.so [nvcc]
set -euo pipefail
MOD=$1
NVCC=${2:-nvcc}
bindir=$(dirname "$(command -v "$NVCC")")
OBJDUMP=$bindir/cuobjdump
CCJSON=${3:-}
known=$("$NVCC" --list-gpu-arch | sed -n 's/^compute_\([0-9]*\)$/\1/p')
if [ -x "$OBJDUMP" ]; then
  sass=$("$OBJDUMP" --list-elf "$MOD" | sed -n 's/.*\.sm_\([0-9]*\)\..*/\1/p' | sort -un)
  ptx=$("$OBJDUMP" --list-ptx "$MOD" | sed -n 's/.*\.sm_\([0-9]*\)\..*/\1/p' | sort -un)
elif [ -n "$CCJSON" ] && [ -f "$CCJSON" ]; then
  # no cuobjdump (a minimal toolkit): the flags the module was compiled with
  flags=$(grep -o 'gencode=arch=compute_[0-9]*,code=[a-z]*_[0-9]*' "$CCJSON" | sort -u)
  [ -n "$flags" ] || { echo "no -gencode flags in $CCJSON"; exit 1; }
  sass=$(echo "$flags" | sed -n 's/.*code=sm_\([0-9]*\)$/\1/p' | sort -un)
  ptx=$(echo "$flags" | sed -n 's/.*code=compute_\([0-9]*\)$/\1/p' | sort -un)
else
  echo "no cuobjdump beside $NVCC and no compile_commands.json: skipped"
  exit 77
fi
newest=$(echo "$known" | sort -n | tail -1)
echo "SASS: $(echo $sass); PTX: $(echo $ptx); nvcc knows: $(echo $known)"
for a in 80 90; do
  echo "$sass" | grep -qx "$a" || { echo "no SASS for sm_$a"; exit 1; }
done
for a in $sass $ptx; do
  echo "$known" | grep -qx "$a" || { echo "sm_$a is not listed by nvcc"; exit 1; }
done
[ "$(echo "$ptx" | tail -1)" = "$newest" ] ||
  { echo "PTX is not for the newest architecture (compute_$newest)"; exit 1; }
echo "ok"
