#!/usr/bin/env bash
# Checkpoint write throughput next to `dd conv=fsync` on the same file system, in the same
# run, and the training stall of --async-save next to synchronous saves; prints the ratios.
#
#   bench/checkpoint_vs_dd.sh [DIR]                 (DIR: where to write; default $TMPDIR)
#   CONVEYOR=path/to/conveyor MIB=512 REPEATS=3 bench/checkpoint_vs_dd.sh /scratch/ckpt
#
# Both measurements come from `conveyor bench checkpoint` (bench/bench_checkpoint.h):
#   save_MBps   begin_step + write_shard + commit_step of one shard of MIB MiB (params and
#               Adam moments, random-looking floats), fsync'd, median of REPEATS
#   write_MBps  the same buffers with write(2) + fsync: the fair baseline (real data)
#   dd_MBps     dd if=/dev/zero bs=4M conv=fsync of the same bytes (zero pages: a ceiling)
#   stall_ratio extra wall time per async save / per sync save, 1-stage training runs
# Targets (docs/BENCHMARKS.md, "Checkpoints"): save within 0.8x of write(2); stall <= 0.10.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CONVEYOR=${CONVEYOR:-$here/build/release/launcher/conveyor}
MIB=${MIB:-256}
REPEATS=${REPEATS:-3}
DIR=${1:-}

[ -x "$CONVEYOR" ] || { echo "conveyor binary not found at $CONVEYOR (set CONVEYOR=...)" >&2; exit 2; }
command -v dd >/dev/null || { echo "dd not found" >&2; exit 2; }

args=(bench checkpoint --mib "$MIB" --repeats "$REPEATS")
[ -n "$DIR" ] && args+=(--dir "$DIR")
echo "# $CONVEYOR ${args[*]}" >&2
out=$("$CONVEYOR" "${args[@]}")
echo "$out"

python3 - "$out" <<'PY'
import json, sys
lines = [json.loads(l) for l in sys.argv[1].splitlines() if l.startswith("{")]
w = next(l for l in lines if l["bench"] == "checkpoint_write")
print(f"write: {w['bytes'] / 2**20:.0f} MiB  save {w['save_MBps']} MB/s  "
      f"write(2) {w['write_MBps']} MB/s  dd {w['dd_MBps']} MB/s")
print(f"  save/dd = {w['ratio']:.2f}   save/write(2) = {w['save_MBps'] / w['write_MBps']:.2f}")
for s in (l for l in lines if l["bench"] == "checkpoint_stall"):
    print(f"stall: step {s['step_ms']} ms; per save: sync {s['sync_save_ms']} ms, "
          f"async {s['async_stall_ms']} ms  ->  stall ratio {s['stall_ratio']:.3f} (target <= 0.10)")
PY
