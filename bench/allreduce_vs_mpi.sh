#!/usr/bin/env bash
# Compares conveyor's ring all-reduce (`conveyor bench allreduce`, the gradient all-reduce of
# data-parallel replicas) with Open MPI's MPI_Allreduce (Debian: openmpi-bin,
# libopenmpi-dev) on this host, for 2 and 4 ranks, in the same run, and with the ring's bound
# for the link bandwidth measured in the same run.
#
#   bench/allreduce_vs_mpi.sh                      (sizes 1-256 MiB, ranks 2 and 4)
#   RANKS="2" MAX_BYTES=67108864 REPEATS=3 bench/allreduce_vs_mpi.sh
#
# Both print bus bandwidth in the nccl-tests convention (busbw = bytes / time x 2 (N-1) / N,
# GB = 1e9 bytes): what each rank's link carries, so a ring is bounded by the link's
# bandwidth. The link: `conveyor bench transport` streaming bandwidth between two ranks of
# this host at each size (same UCX_TLS; small sizes stay in the caches, so the bound is
# measured per size). Paired runs: for each rank count the two tools run back
# to back REPEATS times, alternating which goes first; the table shows the median busbw of
# each and the median of the paired ratios (on a shared VM core-to-core speed drifts within
# seconds, so only side-by-side runs compare). More ranks than cores oversubscribe both tools
# alike.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CONVEYOR=${CONVEYOR:-$here/build/release/launcher/conveyor}
RANKS=${RANKS:-"2 4"}
MIN_BYTES=${MIN_BYTES:-1048576}
MAX_BYTES=${MAX_BYTES:-268435456}
FACTOR=${FACTOR:-4}
SECONDS_PER_SIZE=${SECONDS_PER_SIZE:-0.5}
REPEATS=${REPEATS:-3}

command -v mpicc >/dev/null || { echo "mpicc not found (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 2; }
[ -x "$CONVEYOR" ] || { echo "conveyor binary not found at $CONVEYOR (set CONVEYOR=...)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mpicc -O2 -o "$tmp/mpi_allreduce" "$here/bench/mpi_allreduce.c"

# The link at each size (one direction, GB/s), from the same transport.
"$CONVEYOR" bench transport --min-bytes "$MIN_BYTES" --max-bytes "$MAX_BYTES" --factor "$FACTOR" \
  --seconds-per-size 0.5 > "$tmp/link"
echo "UCX_TLS=${UCX_TLS:-(unset: UCX chooses)}; $(nproc) cores; MPI: $(mpirun --version | head -1)"

run_conveyor() {
  "$CONVEYOR" launch --nproc "$1" -- "$CONVEYOR" bench allreduce --min-bytes "$MIN_BYTES" \
    --max-bytes "$MAX_BYTES" --factor "$FACTOR" --seconds-per-size "$SECONDS_PER_SIZE" |
    sed -n 's/^\[rank 0\] //p'
}
run_mpi() {
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$1" "$tmp/mpi_allreduce" \
    "$MIN_BYTES" "$MAX_BYTES" "$FACTOR" "$SECONDS_PER_SIZE"
}

for n in $RANKS; do
  for i in $(seq 1 "$REPEATS"); do
    if [ $((i % 2)) = 1 ]; then
      run_conveyor "$n" > "$tmp/conveyor.$n.$i"; run_mpi "$n" > "$tmp/mpi.$n.$i"
    else
      run_mpi "$n" > "$tmp/mpi.$n.$i"; run_conveyor "$n" > "$tmp/conveyor.$n.$i"
    fi
  done
  python3 - "$tmp" "$n" "$REPEATS" <<'PY'
import json, statistics, sys
tmp, n, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
link = {r["bytes"]: r["bandwidth_MBps"] * 1048576 / 1e9 for r in map(json.loads, open(f"{tmp}/link"))}
def load(tool, i):
    return {r["bytes"]: r["busbw_GBps"] for r in map(json.loads, open(f"{tmp}/{tool}.{n}.{i}"))}
runs = [(load("conveyor", i), load("mpi", i)) for i in range(1, repeats + 1)]
print(f"\n{n} ranks: busbw GB/s, median of {repeats} paired runs; bound: the link at that size")
print(f"{'bytes':>10} {'conveyor':>9} {'MPI':>9} {'ratio':>7} {'link':>7} {'of link':>8}")
for size in sorted(runs[0][0]):
    c = statistics.median(r[0][size] for r in runs)
    m = statistics.median(r[1][size] for r in runs)
    ratio = statistics.median(r[0][size] / r[1][size] for r in runs)
    print(f"{size:>10} {c:>9.2f} {m:>9.2f} {ratio:>6.2f}x {link[size]:>7.2f} {c / link[size]:>7.0%}")
PY
done
