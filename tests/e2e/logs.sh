#!/usr/bin/env bash
# The trainers' run logs: the final test figures reach the TensorBoard
# events (read back with TensorBoard's EventAccumulator) and metrics.csv,
# at the last step; --help ends with a newline.
# Usage: tests/e2e/logs.sh BUILD_DIR. Exit 77 (skip) without MNIST or
# without a Python that has tensorboard (tests/python/pyenv.sh).
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${TINYCNN_SHARED_DIR:-$ROOT/../shared}/data/mnist
fail() { echo "FAIL: $*"; exit 1; }

for t in lenet resnet; do
  "$B/examples/tinycnn-$t" --help > /dev/null
  [ "$("$B/examples/tinycnn-$t" --help | tail -c 1 | od -An -c | tr -d ' ')" = '\n' ] \
    || fail "tinycnn-$t --help does not end with a newline"
done

if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
  echo "SKIP: no MNIST at $DATA"
  exit 77
fi
PY=$("$ROOT/tests/python/pyenv.sh" "$B") || { echo "SKIP: no tensorboard"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# 1200 training images, val split 0.2: 960 train = 7 steps of 128
"$B/examples/tinycnn-lenet" --dataset mnist --data "$DATA" --epochs 1 \
  --train-limit 1200 --test-limit 500 --quiet --logdir "$T/logs" > "$T/out"
cat "$T/out"
line=$(tail -1 "$T/out")
loss=$(sed -E 's/^test: loss=([0-9.]+) accuracy=([0-9.]+)$/\1/' <<< "$line")
acc=$(sed -E 's/^test: loss=([0-9.]+) accuracy=([0-9.]+)$/\2/' <<< "$line")
"$PY" "$ROOT/tests/e2e/read_events.py" "$T/logs" 7 "$loss" "$acc"
echo "ok"
