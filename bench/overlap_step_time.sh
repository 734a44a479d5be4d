#!/usr/bin/env bash
# Step time of data-parallel training with the gradient all-reduce overlapped with the
# pipeline's cool-down (--overlap on: each chunk's buckets start on a communication thread as
# soon as its last weight gradient is done) against reducing every bucket after the step
# (--overlap off), in the same run.
#
#   bench/overlap_step_time.sh                   (2 replicas x 2 stages, 1f1b)
#   REPLICAS=2 STAGES=1 SCHEDULE=zb-h1 REPEATS=5 bench/overlap_step_time.sh
#
# Paired runs, alternating which goes first; the median step time of each run (first 3
# steps dropped: warm-up), then the median over runs and of the paired ratios.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CONVEYOR=${CONVEYOR:-$here/build/release/launcher/conveyor}
REPLICAS=${REPLICAS:-2}
STAGES=${STAGES:-2}
SCHEDULE=${SCHEDULE:-1f1b}
REPEATS=${REPEATS:-3}
STEPS=${STEPS:-15}
MODEL=${MODEL:-"--layers 8 --dim 256 --heads 4 --seq 64 --microbatches 4 --micro-batch-size 2"}

[ -x "$CONVEYOR" ] || { echo "conveyor binary not found at $CONVEYOR (set CONVEYOR=...)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() {  # OVERLAP FILE
  # shellcheck disable=SC2086
  "$CONVEYOR" launch --nproc $((REPLICAS * STAGES)) -- "$CONVEYOR" train $MODEL \
    --stages "$STAGES" --replicas "$REPLICAS" --schedule "$SCHEDULE" --steps "$STEPS" \
    --print-every 0 --overlap "$1" --bucket-mb "${BUCKET_MB:-1}" ${EXTRA:-} --metrics "$2" \
    > "$2.log" 2>&1
}
for i in $(seq 1 "$REPEATS"); do
  if [ $((i % 2)) = 1 ]; then run on "$tmp/on.$i"; run off "$tmp/off.$i"
  else run off "$tmp/off.$i"; run on "$tmp/on.$i"; fi
done
echo "$REPLICAS replicas x $STAGES stages, $SCHEDULE, $MODEL, buckets of ${BUCKET_MB:-1} MiB; $(nproc) cores"
python3 - "$tmp" "$REPEATS" <<'PY'
import json, statistics, sys
tmp, repeats = sys.argv[1], int(sys.argv[2])
def step_ms(path):
    rows = [json.loads(l) for l in open(path) if '"step_ms"' in l]
    return statistics.median(r["step_ms"] for r in rows[3:])
on = [step_ms(f"{tmp}/on.{i}") for i in range(1, repeats + 1)]
off = [step_ms(f"{tmp}/off.{i}") for i in range(1, repeats + 1)]
print(f"step time, median of {repeats} paired runs: overlap on {statistics.median(on):.1f} ms, "
      f"off {statistics.median(off):.1f} ms; on/off {statistics.median(a / b for a, b in zip(on, off)):.3f}")
PY
