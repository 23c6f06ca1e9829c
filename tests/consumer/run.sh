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
LD_LIBRARY_PATH=$(dirname "$(find "$ROOT_P" -name 'libtinycnn.so.0' | head -1)") \
  "$PREFIX/consumer"
unset PKG_CONFIG_SYSROOT_DIR
export PKG_CONFIG_PATH=$PWD/$B/meson-uninstalled
cc -std=c11 -Wall -Wextra -Werror tests/consumer/consumer.c \
  $(pkg-config --cflags --libs tinycnn) -o "$PREFIX/consumer-uninstalled"
LD_LIBRARY_PATH=$PWD/$B/lib "$PREFIX/consumer-uninstalled"
