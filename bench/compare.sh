#!/usr/bin/env bash
# bench/compare.sh - tinycnn against PyTorch on this machine, side by side
# (docs/benchmarks.md). Builds tinycnn-bench (release) when needed, runs
# tinycnn-bench and bench/pytorch_reference.py for every model and mode
# RUNS times, alternating the two, each run in a process of its own, and
# prints the medians as a table with the ratio tinycnn / PyTorch.
#
# Settings (environment):
#   BUILD_DIR   build directory (default build-bench; set up as release)
#   RUNS        runs per model, mode and program (default 3)
#   MODELS      default "lenet lenet_bn resnet20 resnet56"
#   MODES       default "train infer"
#   THREADS     threads for both (default 0: every online core)
#   ITERS       timed iterations for every model; WARMUP: untimed ones
#               first. Without them: LENET_ITERS (300) / LENET_WARMUP (20)
#               for the LeNets, RESNET_ITERS (10) / RESNET_WARMUP (3) for
#               the ResNets
#   PYTHON      default /usr/bin/python3 (Debian's python3-torch)
#   RAW         file to keep every raw result line in (default: a temp file)
#   ISA         avx2: both sides on their AVX2 code even on an AVX-512 CPU
#               (TINYCNN_CPU_ISA=avx2 for tinycnn; ATEN_CPU_CAPABILITY=avx2
#               and ONEDNN_MAX_CPU_ISA=AVX2 for PyTorch); the table's header
#               shows what each side reported it ran (kernels=, PyTorch's
#               "CPU capability usage", oneDNN's isa and convolution lines)
# Both programs run with the same environment; OPENBLAS_NUM_THREADS=1 is
# set for both (PyTorch's recommended setting; tinycnn sets OpenBLAS to
# one thread itself). Anything else, e.g. GLIBC_TUNABLES, is passed to both
# as you set it.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build-bench}
RUNS=${RUNS:-3}
MODELS=${MODELS:-"lenet lenet_bn resnet20 resnet56"}
MODES=${MODES:-"train infer"}
THREADS=${THREADS:-0}
PYTHON=${PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=1
ISA=${ISA:-}
case $ISA in
  "") ;;
  avx2)
    export TINYCNN_CPU_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
    ;;
  *)
    echo "compare.sh: ISA=$ISA: only avx2 (or unset) is known" >&2
    exit 2
    ;;
esac

# ---- build ------------------------------------------------------------------
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  meson setup "$BUILD_DIR" --buildtype=release -Dgpu_cuda=disabled \
    -Dtests=false -Dexamples=false >/dev/null
fi
ninja -C "$BUILD_DIR" bench/tinycnn-bench >/dev/null
TC_BENCH=$BUILD_DIR/bench/tinycnn-bench
buildtype=$(meson introspect "$BUILD_DIR" --buildoptions 2>/dev/null |
  "$PYTHON" -c 'import json,sys
print(next((o["value"] for o in json.load(sys.stdin) if o["name"] == "buildtype"), "?"))' \
  2>/dev/null || echo "?")

iters_for() { # model -> "iters warmup"
  case $1 in
    lenet*) echo "${ITERS:-${LENET_ITERS:-300}} ${WARMUP:-${LENET_WARMUP:-20}}" ;;
    *) echo "${ITERS:-${RESNET_ITERS:-10}} ${WARMUP:-${RESNET_WARMUP:-3}}" ;;
  esac
}

RAW=${RAW:-$(mktemp /tmp/tinycnn-compare.XXXXXX)}
: >"$RAW"

# ---- header -----------------------------------------------------------------
header=$("$TC_BENCH" --model lenet --infer --iters 1 --warmup 0 \
  --threads "$THREADS")
cpu_line=$(grep '^cpu=' <<<"$header")
isa_line=$(grep '^isa ' <<<"$header")
tc_line=$(grep '^tinycnn=' <<<"$header")
torch_line=$("$PYTHON" -c 'import torch; print("torch=%s mkldnn=%d" % (torch.__version__, torch.backends.mkldnn.is_available()))')
# what PyTorch runs: ATen's kernels, and oneDNN's isa and the convolution
# implementation of a LeNet conv2 forward (ONEDNN_VERBOSE=1)
torch_isa=$(ONEDNN_VERBOSE=1 "$PYTHON" -c '
import torch
print("\n".join(l.strip() for l in torch.__config__.show().splitlines()
                if "CPU capability" in l))
torch.set_num_threads(1)
with torch.no_grad():
    torch.nn.Conv2d(6, 16, 5)(torch.randn(2, 6, 14, 14))
' 2>&1 | grep -E 'CPU capability|isa:|convolution,' | cut -d, -f1-6 | head -3)

# ---- runs -------------------------------------------------------------------
start=$(date +%s)
for run in $(seq 1 "$RUNS"); do
  for model in $MODELS; do
    read -r iters warmup < <(iters_for "$model")
    for mode in $MODES; do
      common=(--child --model "$model" "--$mode" --iters "$iters"
        --warmup "$warmup" --threads "$THREADS")
      "$TC_BENCH" "${common[@]}" | grep '^model=' |
        sed "s/^/impl=tinycnn run=$run /" >>"$RAW"
      "$PYTHON" bench/pytorch_reference.py "${common[@]}" | grep '^model=' |
        sed "s/^/impl=pytorch run=$run /" >>"$RAW"
      echo "run $run/$RUNS: $model $mode done" >&2
    done
  done
done
elapsed=$(( $(date +%s) - start ))

# ---- table ------------------------------------------------------------------
echo "$cpu_line"
echo "$isa_line"
echo "$tc_line (buildtype=$buildtype)"
echo "$torch_line"
echo "$torch_isa" | sed 's/^/torch: /'
[ -z "$ISA" ] || echo "ISA=$ISA: TINYCNN_CPU_ISA=$TINYCNN_CPU_ISA" \
  "ATEN_CPU_CAPABILITY=$ATEN_CPU_CAPABILITY ONEDNN_MAX_CPU_ISA=$ONEDNN_MAX_CPU_ISA"
echo "both with --threads $THREADS (0 = all $(nproc) cores); medians of $RUNS runs;" \
  "img/s = images per second; ratio = tinycnn / PyTorch of the medians;" \
  "paired = median of the ratios of runs taken one after the other;" \
  "RSS = peak resident set (MB)"
"$PYTHON" - "$RAW" "$MODELS" "$MODES" <<'EOF'
import statistics, sys
raw, models, modes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
res = {}
for line in open(raw):
    kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
    key = (kv["impl"], kv["model"], kv["mode"])
    res.setdefault(key, []).append(
        (float(kv["images_per_sec"]), float(kv["peak_rss_mb"]),
         int(kv["run"])))
def med(impl, model, mode, i):
    v = [r[i] for r in res.get((impl, model, mode), [])]
    return statistics.median(v) if v else float("nan")
# the two programs' runs of one model and mode follow each other, so the
# ratio within a run pair sees one state of a shared machine
def paired(model, mode):
    t = {r[2]: r[0] for r in res.get(("tinycnn", model, mode), [])}
    p = {r[2]: r[0] for r in res.get(("pytorch", model, mode), [])}
    v = [t[k] / p[k] for k in t if k in p and p[k] > 0]
    return "%.2f" % statistics.median(v) if v else "nan"
hdr = ("model", "mode", "tinycnn img/s", "PyTorch img/s", "ratio", "paired",
       "tinycnn RSS MB", "PyTorch RSS MB")
rows = []
for m in models:
    for mode in modes:
        t, p = med("tinycnn", m, mode, 0), med("pytorch", m, mode, 0)
        rows.append((m, mode, "%.0f" % t, "%.0f" % p,
                     "%.2f" % (t / p) if p == p and p > 0 else "nan",
                     paired(m, mode),
                     "%.0f" % med("tinycnn", m, mode, 1),
                     "%.0f" % med("pytorch", m, mode, 1)))
w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
fmt = lambda r: "| " + " | ".join(
    str(c).ljust(w[i]) if i < 2 else str(c).rjust(w[i])
    for i, c in enumerate(r)) + " |"
print(fmt(hdr))
print("|" + "|".join("-" * (x + 2) for x in w) + "|")
for r in rows:
    print(fmt(r))
EOF
echo "raw results: $RAW (${elapsed}s)"
