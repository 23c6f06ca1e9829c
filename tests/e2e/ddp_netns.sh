#!/usr/bin/env bash
# Two "hosts" on one machine: network namespaces joined by a veth pair, and
# Open MPI over TCP between them (no shared memory), to run the data-
# parallel trainer across a real network stack: a deterministic LeNet-BN
# run on the 2 ranks gives the same bits as one process.
# Needs root, iproute2 and Open MPI; exit 77 (skip) otherwise or without
# MNIST. Usage: tests/e2e/ddp_netns.sh BUILD_DIR
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=${TINYCNN_SHARED_DIR:-$ROOT/../shared}/data/mnist
skip() { echo "SKIP: $*"; exit 77; }
[ -f "$DATA/train-images-idx3-ubyte.gz" ] || skip "no MNIST at $DATA"
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
command -v ip > /dev/null || skip "no iproute2"
MPIRUN=$(command -v mpirun) || skip "no mpirun"
"$MPIRUN" --version 2>&1 | grep -q "Open MPI" || skip "not Open MPI"

T=$(mktemp -d)
A=tcnn$$a
Z=tcnn$$b
NET=10.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))
cleanup() {
  ip netns del "$A" 2> /dev/null || true
  ip netns del "$Z" 2> /dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$A" && ip netns add "$Z" || skip "cannot create network namespaces"
ip link add "${A}v" type veth peer name "${Z}v" || skip "cannot create veth"
ip link set "${A}v" netns "$A"
ip link set "${Z}v" netns "$Z"
ip -n "$A" addr add "$NET.1/24" dev "${A}v"
ip -n "$Z" addr add "$NET.2/24" dev "${Z}v"
for ns in "$A" "$Z"; do
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "${ns}v" up
done

# Open MPI starts its daemon on each "host" through an rsh agent: this one
# enters the host's namespace instead of logging in
cat > "$T/agent" << AGENT
#!/bin/sh
while [ \$# -gt 0 ]; do case "\$1" in -*) shift ;; *) break ;; esac; done
host=\$1; shift
case "\$host" in $NET.1) ns=$A ;; $NET.2) ns=$Z ;; *) exit 1 ;; esac
exec ip netns exec \$ns sh -c "\$*"
AGENT
chmod +x "$T/agent"
printf '%s slots=1\n%s slots=1\n' "$NET.1" "$NET.2" > "$T/hosts"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
RUN=("$B/examples/tinycnn-lenet" --dataset mnist --data "$DATA" --bn
  --train-limit 3200 --test-limit 512 --epochs 1 --quiet --seed 5
  --deterministic --chunks 4)
"${RUN[@]}" --save "$T/one.st" > "$T/one.out"
timeout 300 ip netns exec "$A" "$MPIRUN" --hostfile "$T/hosts" -np 2 \
  --mca plm_rsh_agent "$T/agent" --mca btl self,tcp \
  --mca btl_tcp_if_include "$NET.0/24" --mca oob_tcp_if_include "$NET.0/24" \
  -x LD_LIBRARY_PATH -x TINYCNN_SHARED_DIR \
  "${RUN[@]}" --threads 1 --save "$T/two.st" > "$T/two.out"
cat "$T/two.out"
cmp "$T/one.st" "$T/two.st" || { echo "FAIL: bits differ over TCP"; exit 1; }
echo "PASS: 2 ranks in 2 network namespaces over TCP give one process's bits"
