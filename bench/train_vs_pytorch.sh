#!/usr/bin/env bash
# Training throughput of conveyor (CPU, one stage) next to Debian's python3-torch on the same
# GPT-2 model, and next to the raw OpenBLAS sgemm rate, all measured in this run.
#   L=6, d=256, H=4, T=128, 16 sequences per step, byte vocabulary.
# Usage: bench/train_vs_pytorch.sh [path/to/conveyor]   (needs python3-torch:
#        scripts/install-deps.sh --with-bench)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/release/launcher/conveyor}
steps=${STEPS:-10}
L=6 D=256 H=4 T=128 BATCH=16 V=256
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

sgemm=$("$bin" bench sgemm --m $((BATCH * T)) --n $((4 * D)) --k $D)
sgemm_gflops=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["gflops"])' "$sgemm")

"$bin" train --layers $L --dim $D --heads $H --seq $T --vocab $V --microbatches 1 \
  --micro-batch-size $BATCH --steps "$steps" --warmup 2 --print-every 0 \
  --metrics "$tmp/conveyor.jsonl" >/dev/null
conveyor_tps=$(tail -n +3 "$tmp/conveyor.jsonl" |
  python3 -c 'import json,sys; [print(json.loads(l)["tokens_per_s"]) for l in sys.stdin]' | median)

torch_json=$(/usr/bin/python3 "$here/pytorch_gpt.py" --layers $L --dim $D --heads $H --seq $T \
  --vocab $V --batch $BATCH --steps "$steps")
torch_tps=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tokens_per_s"])' "$torch_json")

python3 - "$conveyor_tps" "$torch_tps" "$sgemm_gflops" $L $D $T $V <<'PY'
import json, sys
tps, torch_tps, sgemm, L, d, T, V = map(float, sys.argv[1:])
# Model FLOPs per token (forward + backward): 6 * matmul parameters (blocks + tied head)
# plus the attention score and value products, 12 * L * T * d (PaLM's accounting).
params = L * 12 * d * d + V * d
flops_per_token = 6 * params + 12 * L * T * d
achieved = tps * flops_per_token / 1e9
print(json.dumps({
    "conveyor_tokens_per_s": round(tps, 1),
    "pytorch_tokens_per_s": round(torch_tps, 1),
    "speedup_vs_pytorch": round(tps / torch_tps, 2),
    "conveyor_gflops": round(achieved, 2),
    "sgemm_gflops": sgemm,
    "fraction_of_sgemm": round(achieved / sgemm, 3),
}))
PY
