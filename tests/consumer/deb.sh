#!/usr/bin/env bash
# Builds the Debian packages from this tree (a copy in a temporary dir, so
# nothing is written beside the checkout), runs lintian on them (errors
# fail, warnings are printed), installs libtinycnn0 + libtinycnn-dev and
# builds tests/consumer/consumer.c against the installed package with
# pkg-config, as a user of the package would. Needs root (or sudo) and the
# build dependencies of debian/control.
# The package build passes -Dgpu_cuda=disabled (debian/rules does unless
# the build profile pkg.tinycnn.cuda is given) and skips the test suites
# (nocheck): CI runs both elsewhere, and this keeps the step short.
#   tests/consumer/deb.sh [OUT_DIR]   (.deb files are left in OUT_DIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OUT=${1:-$WORK/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# the tree as git sees it (committed or not, minus ignored build dirs)
SRC=$WORK/tinycnn-0.1.0
mkdir -p "$SRC"
git ls-files -z --cached --others --exclude-standard \
  | tar --null -T - -cf - | tar -xf - -C "$SRC"

(cd "$SRC" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
  dpkg-buildpackage -us -uc -b > "$WORK/build.log" 2>&1) || {
  tail -n 60 "$WORK/build.log"; echo "dpkg-buildpackage failed"; exit 1; }
grep -E '^dpkg-gensymbols: warning' -A20 "$WORK/build.log" || true
mv "$WORK"/*.deb "$WORK"/*.changes "$WORK"/*.buildinfo "$OUT"/
ls -1 "$OUT"

# lintian: errors fail the step, warnings are listed
lintian --fail-on error --tag-display-limit 0 "$OUT"/*.changes \
  | tee "$WORK/lintian.txt" || { echo "lintian reports errors"; exit 1; }
echo "lintian: $(grep -c '^E:' "$WORK/lintian.txt" || true) errors," \
  "$(grep -c '^W:' "$WORK/lintian.txt" || true) warnings"

$SUDO apt-get install -y --no-install-recommends \
  "$OUT"/libtinycnn0_*.deb "$OUT"/libtinycnn-dev_*.deb > /dev/null
cc -std=c11 -Wall -Wextra -Werror tests/consumer/consumer.c \
  $(pkg-config --cflags --libs tinycnn) -o "$WORK/consumer"
"$WORK/consumer"
ldd "$WORK/consumer" > "$WORK/ldd.txt"   # (grep -q in a pipe: SIGPIPE)
grep -Eq 'libtinycnn\.so\.0 => /(usr/)?lib/' "$WORK/ldd.txt" \
  || { echo "consumer did not load the packaged libtinycnn.so.0"; exit 1; }
echo "consumer built with pkg-config against the installed packages and ran"
