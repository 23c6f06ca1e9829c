#!/usr/bin/env bash
# bench/trainer_vs_bench.sh - does the bundled LeNet trainer keep the
# kernels' speed end to end? Trains tinycnn-lenet on MNIST for EPOCHS
# epochs (loading, transforms, progress and the per-epoch evaluation
# included in the run, the epoch's images/s as metrics.csv records it:
# training images over the training loop's wall time), then runs
# tinycnn-bench's LeNet training figure (synthetic batches, kernels only)
# with the same threads and batch, and prints both and their ratio.
# Usage: bash bench/trainer_vs_bench.sh [builddir]   (default: build)
# Settings: DATA (MNIST folder, default ../shared/data/mnist), EPOCHS (3),
# THREADS (0: every online core), BN (1: --bn / lenet_bn). A machine with
# nothing else running gives the meaningful figure (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
DATA=${DATA:-../shared/data/mnist}
EPOCHS=${EPOCHS:-3}
THREADS=${THREADS:-0}
BN=${BN:-0}
[ "$THREADS" = 0 ] && THREADS=$(nproc)
model=lenet
bnflag=
if [ "$BN" = 1 ]; then model=lenet_bn; bnflag=--bn; fi
for p in "$B/examples/tinycnn-lenet" "$B/bench/tinycnn-bench"; do
  [ -x "$p" ] || { echo "trainer_vs_bench: $p not built" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$B/examples/tinycnn-lenet" --dataset mnist --data "$DATA" $bnflag \
  --epochs "$EPOCHS" --threads "$THREADS" --quiet --logdir "$tmp/log" \
  > "$tmp/out.txt"
# metrics.csv: epoch,step,split,loss,accuracy,lr,seconds,images_per_sec;
# the first epoch warms caches and the allocator up: the later ones count
trainer=$(awk -F, 'NR > 1 && $3 == "train" && $1 > 1 { s += $8; n++ }
  END { if (n) printf "%.0f", s / n; else print 0 }' "$tmp/log/metrics.csv")
bench=$("$B/bench/tinycnn-bench" --model "$model" --train --threads "$THREADS" \
  --iters 200 --warmup 20 | sed -n 's/.*images_per_sec=\([0-9.]*\).*/\1/p' |
  tail -n 1)
awk -v t="$trainer" -v b="$bench" -v m="$model" -v th="$THREADS" \
  -v isa="${TINYCNN_CPU_ISA:-native}" 'BEGIN {
  printf "%s threads=%s isa=%s: trainer %.0f img/s (epochs 2+), bench %.0f img/s, trainer/bench %.3f\n",
    m, th, isa, t, b, (b > 0 ? t / b : 0) }'
