#!/usr/bin/env bash
# Data-parallel speed on this machine: for each model, one process of T
# threads against N ranks of T/N threads each (the same cores), in the
# default and the deterministic mode (and with synchronised batch norm for
# the BatchNorm models), RUNS alternating runs each; prints a table of the
# median images/s, the ratio to one process, peak RSS and the time of one
# all-reduce of the model's gradients.
# Usage: [RUNS=3] [ITERS=...] bash bench/ddp_compare.sh [BUILD_DIR]
# Environment: MODELS ("lenet_bn resnet20"), NP (2), THREADS (2).
set -euo pipefail
B=${1:-build}
BENCH=$B/bench/tinycnn-ddp-bench
RUNS=${RUNS:-3}
NP=${NP:-2}
THREADS=${THREADS:-2}
MODELS=${MODELS:-lenet_bn resnet20}
PER=$((THREADS / NP))
[ $PER -ge 1 ] || PER=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184}
MPIRUN=$(command -v mpirun || command -v mpiexec)
grep -m1 'model name' /proc/cpuinfo || true
echo "cores=$(nproc) np=$NP threads_per_rank=$PER runs=$RUNS"

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '| %-9s | %-22s | %9s | %9s | %6s | %7s | %12s |\n' model mode \
  "1 proc" "$NP ranks" ratio "RSS MB" "allreduce ms"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ----------- ------------------------ \
  ----------- ----------- -------- --------- --------------
for model in $MODELS; do
  iters=${ITERS:-$([ "${model#lenet}" != "$model" ] && echo 300 || echo 20)}
  modes=("default:" "deterministic:--deterministic --chunks 8")
  [ "$model" != lenet ] && modes+=("sync-bn:--sync-bn")
  for m in "${modes[@]}"; do
    name=${m%%:*}
    flags=${m#*:}
    one=()
    many=()
    for _ in $(seq 1 "$RUNS"); do
      # shellcheck disable=SC2086
      o=$("$BENCH" --model "$model" --threads "$THREADS" --iters "$iters" $flags)
      one+=("$(echo "$o" | field images_per_sec)")
      # shellcheck disable=SC2086
      o=$("$MPIRUN" -np "$NP" "$BENCH" --model "$model" --threads "$PER" \
        --iters "$iters" $flags)
      many+=("$(echo "$o" | field images_per_sec)")
      rss=$(echo "$o" | field peak_rss_mb)
      ar=$(echo "$o" | field allreduce_ms)
    done
    a=$(printf '%s\n' "${one[@]}" | median)
    b=$(printf '%s\n' "${many[@]}" | median)
    printf '| %-9s | %-22s | %9.0f | %9.0f | %6.2f | %7s | %12s |\n' \
      "$model" "$name" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{print b/a}')" \
      "$rss" "$ar"
  done
done
