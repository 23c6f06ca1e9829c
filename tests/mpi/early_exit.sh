#!/usr/bin/env bash
# A rank that leaves mid-job must end the whole MPI job with a failure, and
# soon, rather than leave its peer waiting in a collective forever.
# Usage: early_exit.sh MPIRUN TEST_EXE MODE [LAUNCHER ARGS...]
# MODE: early-exit (rank 1 calls exit(3) before an all-reduce) or abort
# (rank 1 calls tc_comm_abort()).
set -u
mpirun=$1 exe=$2 mode=$3
shift 3
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
timeout 60 "$mpirun" "$@" -np 2 "$exe" "$mode" >"$log" 2>&1
rc=$?
elapsed=$(($(date +%s) - start))
cat "$log"
echo "mpirun exited with $rc after ${elapsed}s"
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "FAIL: the job hung (killed by timeout)"; exit 1
fi
if [ "$rc" -eq 0 ]; then
  echo "FAIL: the job succeeded although a rank left early"; exit 1
fi
# a launcher that could not start the job also fails: the job must have run
if ! grep -q 'rank 1: leaving' "$log"; then
  echo "FAIL: rank 1 never ran (the launcher failed?)"; exit 1
fi
if [ "$elapsed" -gt 30 ]; then
  echo "FAIL: the job took ${elapsed}s to end"; exit 1
fi
echo "ok: the job failed within ${elapsed}s"
