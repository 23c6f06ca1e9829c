#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds a user's program
# against it with pkg-config, as a user would; then the same against the
# uninstalled tree (meson-uninstalled/tinycnn-uninstalled.pc).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}
PREFIX=$(mktemp -d)
trap 'rm -rf "$PREFIX"' EXIT
meson install -C "$B" --destdir "$PREFIX" --quiet
inst=$(meson introspect "$B" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
ROOT_P="$PREFIX$inst"
PCDIR=$(dirname "$(find "$ROOT_P" -name tinycnn.pc | head -1)")
# the .pc file names the configured prefix: point pkg-config at the copy
export PKG_CONFIG_SYSROOT_DIR=$PREFIX
export PKG_CONFIG_PATH=$PCDIR
cc -std=c11 -Wall -Wextra -Werror tests/consumer/consumer.c \
  $(pkg-config --cflags --libs tinycnn) -o "$PREFIX/consumer"
LIBDIR=$(dirname "$(find "$ROOT_P" -name 'libtinycnn.so.0' | head -1)")
LD_LIBRARY_PATH=$LIBDIR "$PREFIX/consumer"
# a bundled trainer built outside meson, exactly as a user's program
cc -std=c11 -Wall -Wextra -Werror -O2 examples/lenet/main.c examples/common/*.c \
  $(pkg-config --cflags --libs tinycnn) -o "$PREFIX/tinycnn-lenet"
LD_LIBRARY_PATH=$LIBDIR "$PREFIX/tinycnn-lenet" --help > /dev/null
DATA=${TINYCNN_SHARED_DIR:-$PWD/../shared}/data/mnist
if [ -f "$DATA/train-images-idx3-ubyte.gz" ]; then
  LD_LIBRARY_PATH=$LIBDIR "$PREFIX/tinycnn-lenet" --dataset mnist --data "$DATA" \
    --epochs 1 --train-limit 2000 --test-limit 500 --quiet | tail -1 \
    | grep -E '^test: loss=[0-9.]+ accuracy=[0-9.]+$'
fi
unset PKG_CONFIG_SYSROOT_DIR
export PKG_CONFIG_PATH=$PWD/$B/meson-uninstalled
cc -std=c11 -Wall -Wextra -Werror tests/consumer/consumer.c \
  $(pkg-config --cflags --libs tinycnn) -o "$PREFIX/consumer-uninstalled"
LD_LIBRARY_PATH=$PWD/$B/lib "$PREFIX/consumer-uninstalled"

# as a meson subproject: dependency('tinycnn') resolves to the override
SUB=$PREFIX/subproject-user
mkdir -p "$SUB/subprojects"
ln -s "$PWD" "$SUB/subprojects/tinycnn"
cp tests/consumer/consumer.c "$SUB/"
cat > "$SUB/meson.build" <<'MESON'
project('tinycnn-user', 'c', default_options : ['c_std=c11'])
tinycnn = dependency('tinycnn', fallback : ['tinycnn', 'tinycnn_dep'],
  default_options : ['tests=false', 'examples=false', 'benchmarks=false',
                     'gpu_cuda=disabled'])
executable('consumer', 'consumer.c', dependencies : tinycnn)
MESON
(cd "$SUB" && meson setup --wrap-mode=forcefallback b > /dev/null && ninja -C b > /dev/null && ./b/consumer)
