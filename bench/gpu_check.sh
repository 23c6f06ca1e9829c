#!/usr/bin/env bash
# bench/gpu_check.sh - the one prepared check for a session lent a GPU
# (docs/backends.md, "Checking on a GPU"). Under 8 minutes on an H100/H200.
#
# The GPU machine has nvcc 13, a CUDA 13 driver, PyTorch with CUDA, and
# meson/ninja from pip, but no OpenBLAS (nor cJSON, matio): the core cannot
# be built there. So the build is made HERE and carried:
#   here:   bench/gpu_check.sh --prepare [BUILD]   (default BUILD=build-h6)
#           copies the non-system shared libraries the build needs into
#           BUILD/gpu-libs (ldd), so the carried tree runs there;
#   there:  run with carry ["build-h6"]: bench/gpu_check.sh [BUILD]
# Steps (each reported; the script goes on after a failure, exit 1 at end):
#   1. test_cuda, then every test executable of BUILD with the CUDA
#      module reachable (test_cuda is the one that uses the GPU);
#   2. test_cuda once under compute-sanitizer memcheck and racecheck;
#   3. the trainers with --backend cuda, a few hundred steps, where the
#      datasets exist (they are not on the GPU machine unless carried);
#   4. ResNet-20 training images/s in PyTorch on the same GPU (eager fp32,
#      torch.compile if it works), synthetic data, batch 128;
#   5. deterministic mode: two identical ResNet-20 runs of test_cuda's
#      determinism test (test_deterministic) agree bit for bit.
# Without a GPU it says so and exits 77 (a test harness's "skipped").
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
  B=${2:-build-h6}
  mkdir -p "$B/gpu-libs"
  for f in "$B"/lib/libtinycnn.so "$B"/tests/test_* "$B"/examples/tinycnn-*; do
    [ -x "$f" ] || [ -f "$f" ] || continue
    ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'
  done | sort -u | grep -Ev '/(libc|libm|libdl|libpthread|librt|ld-linux|libcuda|libcudart|libcublas|libcublasLt|libnccl|libstdc\+\+|libgcc_s)[.-]' |
    grep -v "$PWD/$B" | while read -r l; do cp -L "$l" "$B/gpu-libs/"; done
  echo "gpu_check: $(ls "$B/gpu-libs" | wc -l) libraries in $B/gpu-libs ($(du -sh "$B/gpu-libs" | cut -f1))"
  exit 0
fi
B=${1:-build-h6}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no GPU here (nvidia-smi finds none): nothing to check"
  exit 77
fi
[ -d "$B" ] || { echo "gpu_check: no build '$B' (carry it: see the header)"; exit 1; }
export LD_LIBRARY_PATH="$PWD/$B/gpu-libs:$PWD/$B/lib:$PWD/$B/backends/cuda:${LD_LIBRARY_PATH:-}"
export TINYCNN_MODULE_PATH="$PWD/$B/backends/cuda" TINYCNN_SOURCE_ROOT="$PWD"
export CK_FORK=yes OPENBLAS_NUM_THREADS=1
OUTD=${OUT:-/tmp/gpu_check}; mkdir -p "$OUTD"
fails=0
step() { echo "== $*"; }
run() { # name timeout cmd...
  local name=$1 t=$2; shift 2
  local t0=$SECONDS
  if timeout "$t" "$@" >"$OUTD/$name.log" 2>&1; then
    echo "   ok   $name ($((SECONDS - t0)) s)"
  else
    local rc=$?
    [ $rc -eq 77 ] && { echo "   skip $name"; return 0; }
    echo "   FAIL $name (rc $rc, $((SECONDS - t0)) s)"; tail -20 "$OUTD/$name.log"
    fails=$((fails + 1))
  fi
}
nvidia-smi -L
step "1. tests"
run test_cuda 180 "$B/tests/test_cuda"
for t in "$B"/tests/test_*; do
  n=$(basename "$t"); [ "$n" = test_cuda ] && continue
  [ -x "$t" ] && run "$n" 120 "$t"
done
step "2. compute-sanitizer"
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$CS" ]; then
  run memcheck 150 "$CS" --tool memcheck --error-exitcode 9 "$B/tests/test_cuda"
  run racecheck 150 "$CS" --tool racecheck --error-exitcode 9 "$B/tests/test_cuda"
else
  echo "   skip compute-sanitizer (not installed)"
fi
step "3. trainers on the GPU"
for m in resnet lenet; do
  exe="$B/examples/tinycnn-$m"
  [ -x "$exe" ] || { echo "   skip $m (not built)"; continue; }
  extra=(); [ $m = lenet ] && extra=(--bn)
  run "train_$m" 120 "$exe" --backend cuda --steps 300 --epochs 1 "${extra[@]}"
  grep -ho '[0-9.]* images/s' "$OUTD/train_$m.log" | tail -1 | sed "s/^/   $m tinycnn: /"
done
step "4. PyTorch ResNet-20 on the same GPU"
run torch_resnet20 180 python3 - <<'PY'
import time, torch, torch.nn as nn, torch.nn.functional as F
class Block(nn.Module):
    def __init__(s, i, o, st):
        super().__init__()
        s.c1 = nn.Conv2d(i, o, 3, st, 1, bias=False); s.b1 = nn.BatchNorm2d(o)
        s.c2 = nn.Conv2d(o, o, 3, 1, 1, bias=False); s.b2 = nn.BatchNorm2d(o)
        s.pad = o - i; s.st = st
    def forward(s, x):
        y = F.relu(s.b1(s.c1(x))); y = s.b2(s.c2(y))
        sc = x[:, :, ::s.st, ::s.st] if s.st > 1 else x
        if s.pad: sc = F.pad(sc, (0, 0, 0, 0, s.pad // 2, s.pad - s.pad // 2))
        return F.relu(y + sc)
def resnet20():
    L = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    i = 16
    for o, st in ((16, 1), (32, 2), (64, 2)):
        for k in range(3):
            L.append(Block(i, o, st if k == 0 else 1)); i = o
    L += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*L)
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
x = torch.randn(128, 3, 32, 32, device="cuda"); y = torch.randint(0, 10, (128,), device="cuda")
for name in ("eager", "compile"):
    m = resnet20().cuda(); opt = torch.optim.SGD(m.parameters(), 0.01, 0.9, weight_decay=5e-4)
    f = m
    if name == "compile":
        try: f = torch.compile(m)
        except Exception as e: print("torch.compile unavailable:", e); break
    def step():
        opt.zero_grad(set_to_none=True); F.cross_entropy(f(x), y).backward(); opt.step()
    try:
        for _ in range(20): step()
        torch.cuda.synchronize(); t = time.time()
        for _ in range(200): step()
        torch.cuda.synchronize()
        print(f"pytorch {name} resnet20 train: {200 * 128 / (time.time() - t):.0f} images/s")
    except Exception as e:
        print(f"pytorch {name} failed: {e}")
PY
grep -h "images/s\|failed\|unavailable" "$OUTD/torch_resnet20.log" | sed 's/^/   /'
step "5. deterministic: the same bits twice"
run determinism 120 env CK_RUN_CASE=cuda_vs_cpu "$B/tests/test_cuda"
echo "gpu_check: $fails failure(s); logs in $OUTD"
[ $fails -eq 0 ]
