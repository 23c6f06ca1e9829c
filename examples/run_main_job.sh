#!/usr/bin/env bash
# The README's main job: build tinycnn and train LeNet-5 on Fashion-MNIST
# (Debian's dataset-fashion-mnist package) with the reference recipe's defaults, then
# print the test line. Extra arguments go to tinycnn-lenet, e.g. --bn.
# Usage: examples/run_main_job.sh [tinycnn-lenet options]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${TINYCNN_BUILD:-build}
if [ ! -f "$B/build.ninja" ]; then
  meson setup "$B" -Dgpu_cuda=disabled --buildtype=release
fi
ninja -C "$B" examples/tinycnn-lenet
# a new log folder per run: the trainer keeps runs apart and refuses to
# start a fresh run in a folder that holds another one
LOGDIR="$B/runs/lenet-fashion-$(date +%Y%m%d-%H%M%S)"
echo "logs: $LOGDIR"
exec "$B/examples/tinycnn-lenet" --dataset fashion-mnist \
  --data /usr/share/datasets/fashion-mnist --logdir "$LOGDIR" "$@"
