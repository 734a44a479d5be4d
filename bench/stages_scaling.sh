#!/usr/bin/env bash
# Real compute, one host: tokens/s of 1 stage vs 2 stages (one process per stage, one kernel
# thread each) on the same model and global batch: L=6, d=256, H=4, T=128, 16 micro-batches of
# one sequence. Also 1 stage with 2 kernel threads, for reference.
# Usage: bench/stages_scaling.sh [path/to/conveyor]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/release/launcher/conveyor}
steps=${STEPS:-8}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=(--layers 6 --dim 256 --heads 4 --seq 128 --microbatches 16 --micro-batch-size 1
       --steps "$steps" --warmup 2 --print-every 0)

median_tps() {  # median tokens/s over the steps after the first two
  tail -n +3 "$1" | /usr/bin/python3 -c '
import json, statistics, sys
print(round(statistics.median(json.loads(l)["tokens_per_s"] for l in sys.stdin), 1))'
}

"$bin" train "${model[@]}" --threads 1 --metrics "$tmp/one_t1.jsonl" >/dev/null 2>&1
"$bin" train "${model[@]}" --threads 2 --metrics "$tmp/one_t2.jsonl" >/dev/null 2>&1
"$bin" launch --nproc 2 -- conveyor train --stages 2 "${model[@]}" --threads 1 \
  --metrics "$tmp/two.jsonl" >/dev/null 2>&1
one1=$(median_tps "$tmp/one_t1.jsonl")
one2=$(median_tps "$tmp/one_t2.jsonl")
two=$(median_tps "$tmp/two.jsonl")
bubble=$(tail -n +3 "$tmp/two.jsonl" | /usr/bin/python3 -c '
import json, statistics, sys
print(round(statistics.median(json.loads(l)["bubble"] for l in sys.stdin), 3))')
/usr/bin/python3 -c "
import json
print(json.dumps({'one_stage_1_thread_tokens_per_s': $one1, 'one_stage_2_threads_tokens_per_s': $one2,
                  'two_stages_tokens_per_s': $two, 'two_stage_bubble': $bubble,
                  'speedup_vs_one_stage_1_thread': round($two / $one1, 2),
                  'speedup_vs_one_stage_2_threads': round($two / $one2, 2)}))"
