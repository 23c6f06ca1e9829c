#!/usr/bin/env bash
# ONNX export end to end: tinycnn writes LeNet, LeNet-BN, ResNet-20 (A, B,
# plain) and a small net of the remaining layer kinds as ONNX; onnx.checker
# accepts them and onnxruntime reproduces tinycnn's evaluation-mode outputs
# on real MNIST images (check_onnx.py); then a trained LeNet exported by the
# trainer (--load --eval-only --export-onnx) gets the trainer's test
# accuracy under onnxruntime.
# Usage: tests/onnx/onnx.sh BUILD_DIR EXPORT_MODELS_EXE. Exit 77 (skip)
# without MNIST or a Python with onnx and onnxruntime (tests/python/pyenv.sh).
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
EXE=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${TINYCNN_SHARED_DIR:-$ROOT/../shared}/data/mnist
fail() { echo "FAIL: $*"; exit 1; }
if [ ! -f "$DATA/t10k-images-idx3-ubyte.gz" ]; then
  echo "SKIP: no MNIST at $DATA"
  exit 77
fi
PY=$("$ROOT/tests/python/pyenv.sh" "$B") || { echo "SKIP: no onnx/onnxruntime"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

"$EXE" "$T" "$DATA"
"$PY" "$ROOT/tests/onnx/check_onnx.py" "$T"

echo "== a trained LeNet through the trainer's --export-onnx"
LENET=$B/examples/tinycnn-lenet
"$LENET" --dataset mnist --data "$DATA" --epochs 1 \
  --quiet --save "$T/lenet.safetensors" > "$T/train.out"
"$LENET" --dataset mnist --data "$DATA" --quiet \
  --load "$T/lenet.safetensors" --eval-only --export-onnx "$T/lenet.onnx" > "$T/eval.out"
cat "$T/eval.out"
acc=$(tail -1 "$T/eval.out" | sed -E 's/^test: loss=[0-9.]+ accuracy=([0-9.]+)$/\1/')
oacc=$("$PY" "$ROOT/tests/onnx/onnx_accuracy.py" "$T/lenet.onnx" "$DATA")
echo "tinycnn accuracy $acc, onnxruntime accuracy $oacc"
[ "$acc" = "$oacc" ] || fail "accuracy differs: tinycnn $acc, onnxruntime $oacc"
echo "ok"
