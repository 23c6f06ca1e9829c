#!/usr/bin/env bash
# End-to-end test of the bundled trainers on real MNIST: LeNet
# learns (>= 97% after two epochs), save -> --load --eval-only reproduces the
# test line, a resumed run equals an uninterrupted one, bad arguments fail
# with one line, and a short ResNet-20 run lowers its training loss.
# Usage: tests/e2e/trainers.sh BUILD_DIR. Exit 77 (skip) without the data.
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${TINYCNN_SHARED_DIR:-$ROOT/../shared}/data/mnist
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
  echo "SKIP: no MNIST at $DATA"
  exit 77
fi
LENET=$B/examples/tinycnn-lenet
RESNET=$B/examples/tinycnn-resnet
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
testline() { grep -E '^test: loss=[0-9]+\.[0-9]{4} accuracy=[0-9]\.[0-9]{4}$' "$1" | tail -1; }

echo "== LeNet, 1 epoch on MNIST with a checkpoint"
"$LENET" --dataset mnist --data "$DATA" --epochs 1 --quiet --seed 1 \
  --checkpoint "$T/ck.safetensors" --logdir "$T/logs" > "$T/a.out"
cat "$T/a.out"
line=$(testline "$T/a.out") || fail "no test line"
[ "$(tail -1 "$T/a.out")" = "$line" ] || fail "test line is not the last line"
head -1 "$T/logs/metrics.csv" | grep -qx 'epoch,step,split,loss,accuracy,lr,seconds,images_per_sec' \
  || fail "metrics.csv header"
ls "$T/logs"/events.out.tfevents.* > /dev/null || fail "no TensorBoard file"

echo "== resumed for a 2nd epoch: >= 97%, and equal to 2 epochs straight"
"$LENET" --dataset mnist --data "$DATA" --epochs 2 --quiet --seed 1 \
  --resume "$T/ck.safetensors" --save "$T/resumed.safetensors" \
  --logdir "$T/logs" > "$T/c.out"
cat "$T/c.out"
# the checkpoint's epoch stays in the log: rows up to its step are kept
epochs=$(awk -F, '$3 == "train" { printf "%s ", $1 }' "$T/logs/metrics.csv")
[ "$epochs" = "1 2 " ] || fail "metrics.csv after resume has epochs '$epochs'"
line=$(testline "$T/c.out") || fail "no test line after resume"
acc=${line##*accuracy=}
awk -v a="$acc" 'BEGIN { exit !(a >= 0.97) }' || fail "accuracy $acc < 0.97"
"$LENET" --dataset mnist --data "$DATA" --epochs 2 --quiet --seed 1 \
  --save "$T/straight.safetensors" > "$T/d.out"
cmp "$T/resumed.safetensors" "$T/straight.safetensors" \
  || fail "resumed weights differ from an uninterrupted run"
[ "$(testline "$T/d.out")" = "$line" ] || fail "resume test line"

echo "== --load + --eval-only reproduces the test line"
"$LENET" --dataset mnist --data "$DATA" --load "$T/straight.safetensors" \
  --eval-only --quiet > "$T/b.out"
[ "$(testline "$T/b.out")" = "$line" ] || fail "eval-only: $(cat "$T/b.out") != $line"

echo "== bad arguments: one line, non-zero exit"
for args in "--epochs 0" "--dataset cifar" "--lr" "--data /nonexistent --dataset mnist" \
            "--eval-only"; do
  set +e
  # shellcheck disable=SC2086
  "$LENET" $args > "$T/e.out" 2> "$T/e.err"
  rc=$?
  set -e
  [ $rc -ne 0 ] || fail "'$args' exited 0"
  [ "$(wc -l < "$T/e.err")" -eq 1 ] || fail "'$args': $(cat "$T/e.err")"
done

# expect RC REGEX PROGRAM ARGS...: exits RC with one stderr line matching REGEX
expect() {
  local want=$1 re=$2 rc
  shift 2
  set +e
  "$@" > "$T/x.out" 2> "$T/x.err"
  rc=$?
  set -e
  [ $rc -eq "$want" ] || fail "'$*' exited $rc, not $want: $(cat "$T/x.err")"
  [ "$(wc -l < "$T/x.err")" -eq 1 ] || fail "'$*': $(cat "$T/x.err")"
  grep -qE -- "$re" "$T/x.err" || fail "'$*': message '$(cat "$T/x.err")'"
}

echo "== accepted arguments do what they say, or exit 2 naming the problem"
M=(--dataset mnist --data "$DATA" --quiet)
expect 2 'steps 1099511627776 takes' "$RESNET" "${M[@]}" --train-limit 300 \
  --steps 1099511627776
expect 2 'steps 4294967297 takes' "$RESNET" "${M[@]}" --train-limit 300 \
  --steps 4294967297
expect 2 'lr: too small' "$LENET" "${M[@]}" --lr 1e-50
expect 2 'batch 200: the training split holds only 128' "$LENET" "${M[@]}" \
  --train-limit 160 --batch 200
expect 2 'depth: expected 6n\+2 from 8 to 1202' "$RESNET" --depth 1208
expect 2 'data: needed' "$LENET" --dataset mnist --epochs 1
expect 2 'save: needs a file or folder name, not an option' "$LENET" \
  "${M[@]}" --save --quiet
expect 2 'checkpoint .*folder .* does not exist' "$LENET" "${M[@]}" \
  --checkpoint "$T/no-such-dir/ck.st"
expect 2 "logdir '$T/logs' holds a previous run's logs" "$LENET" "${M[@]}" \
  --epochs 1 --logdir "$T/logs"

echo "== --val-split 0: no validation, said in the epoch line"
"$LENET" --dataset mnist --data "$DATA" --train-limit 256 --test-limit 100 \
  --epochs 1 --batch 64 --val-split 0 --logdir "$T/nv" > "$T/nv.out"
grep -q 'val: none (--val-split 0)' "$T/nv.out" || fail "$(cat "$T/nv.out")"
testline "$T/nv.out" > /dev/null || fail "--val-split 0: no test line"
awk -F, 'NR > 1 { n[$3]++ } END { exit !(n["train"] == 1 && !n["val"]) }' \
  "$T/nv/metrics.csv" || fail "--val-split 0 rows: $(cat "$T/nv/metrics.csv")"

echo "== ResNet-20, a few steps on an MNIST subset: loss falls"
"$RESNET" --dataset mnist --data "$DATA" --train-limit 1500 --test-limit 500 \
  --epochs 3 --batch 64 --lr 0.05 --quiet --logdir "$T/rlogs" \
  --checkpoint "$T/r.ck" > "$T/r.out"
cat "$T/r.out"
testline "$T/r.out" > /dev/null || fail "resnet: no test line"
awk -F, '$3 == "train" { l[++n] = $4 } END { exit !(n == 3 && l[3] < l[1]) }' \
  "$T/rlogs/metrics.csv" || fail "resnet training loss did not fall: $(cat "$T/rlogs/metrics.csv")"
echo "== resuming with other optimizer settings is refused, naming them"
expect 1 'group 0: lr 0.00999999978 in the checkpoint, 0.0199999996 here' \
  "$LENET" "${M[@]}" --epochs 2 --seed 1 --lr 0.02 --resume "$T/ck.safetensors"
expect 1 'loader batch size 128 in the checkpoint, 64 here' \
  "$LENET" "${M[@]}" --epochs 2 --seed 1 --batch 64 --resume "$T/ck.safetensors"

echo "== a checkpoint of another model is named as such"
expect 2 'written by tinycnn-resnet, not tinycnn-lenet' "$LENET" "${M[@]}" \
  --epochs 4 --resume "$T/r.ck"
expect 2 'holds model resnet-20-A, these options build resnet-32-A' \
  "$RESNET" "${M[@]}" --depth 32 --epochs 4 --resume "$T/r.ck"
echo "e2e trainers: OK"
