#!/usr/bin/env bash
# The README's test command: configure, build and run every test suite.
# Usage: bash tests/run_tests.sh [builddir]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
if [ -d /usr/local/cuda/bin ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
if [ ! -f "$B/build.ninja" ]; then
  meson setup "$B"
else
  meson setup --reconfigure "$B" >/dev/null
fi
ninja -C "$B"
meson test -C "$B" --print-errorlogs
