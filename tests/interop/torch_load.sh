#!/usr/bin/env bash
# Runs torch_load_checkpoint.py with the tests' Python (tests/python/pyenv.sh:
# Debian's python3-torch plus safetensors from PyPI). Exit 77 without one.
# Usage: tests/interop/torch_load.sh BUILD_DIR WRITER
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=$("$HERE/../python/pyenv.sh" "$1") || exit 77
exec "$PY" "$HERE/torch_load_checkpoint.py" "$2"
