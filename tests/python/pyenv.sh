#!/usr/bin/env bash
# Prints the path of a Python that can import the packages the Python-side
# tests use (onnx, onnxruntime, tensorboard, safetensors), or exits 77 (the meson test
# then skips) when none can be made.
#
# Usage: tests/python/pyenv.sh BUILD_DIR
# TINYCNN_PYTHON=/path/to/python: use that interpreter as it is.
# Otherwise a virtual environment BUILD_DIR/pyenv is made once, with
# --system-site-packages so Debian's python3-torch and numpy stay visible,
# and the packages are pip-installed into it. A failed pip (no network) is
# remembered in BUILD_DIR/pyenv.failed so later tests skip at once; delete
# that file to try again. Concurrent tests wait on one lock.
set -uo pipefail
B=$(cd "${1:-build}" && pwd)
PKGS="onnx onnxruntime tensorboard safetensors"
CHECK='import onnx, onnxruntime, tensorboard, safetensors'

if [ -n "${TINYCNN_PYTHON:-}" ]; then
  "$TINYCNN_PYTHON" -c "$CHECK" 2> /dev/null || exit 77
  echo "$TINYCNN_PYTHON"
  exit 0
fi
# Debian's interpreter first: it is the one that sees python3-torch
BASE=/usr/bin/python3
[ -x "$BASE" ] || BASE=$(command -v python3) || exit 77

exec 9> "$B/pyenv.lock"
flock 9
PY=$B/pyenv/bin/python
if [ -x "$PY" ] && "$PY" -c "$CHECK" 2> /dev/null; then
  echo "$PY"
  exit 0
fi
[ -e "$B/pyenv.failed" ] && exit 77
{
  rm -rf "$B/pyenv" &&
    "$BASE" -m venv --system-site-packages "$B/pyenv" &&
    timeout 600 "$PY" -m pip install --quiet --disable-pip-version-check \
      $PKGS &&
    "$PY" -c "$CHECK"
} >&2 || {
  echo "pyenv.sh: could not make a venv with $PKGS; skipping" >&2
  touch "$B/pyenv.failed"
  exit 77
}
echo "$PY"
