#!/usr/bin/env bash
# The GPU checks, in one command on a machine with an NVIDIA GPU, from the repository root,
# using the bundle scripts/gpu-bundle.sh made (gpu-bundle/). Needs no build tools and none of
# Debian's libraries there: only the NVIDIA driver, CUDA 13's cuBLAS (found below) and, for the
# last step, python3 with PyTorch. Ends within 8 minutes whatever happens (every step has its
# own time limit and all of them share one budget) with a PASS/FAIL summary.
#
# Usage: scripts/gpu-check.sh    logs go to $GPU_CHECK_LOG_DIR (default /tmp/conveyor-gpu-check)
#
# Steps (docs/GPU.md, "Running the GPU checks"):
#   what the GPU is; `conveyor doctor` (which backend --device cuda gets); every kernel test
#   case tagged [gpu]; then training on the GPU: the same run twice gives the same bits; 1, 2
#   and 4 stages on the one GPU with every schedule give the 1-stage losses bit for bit; GPU
#   against CPU over 50 steps within 1e-4 relative; a checkpoint of 4 GPU stages resumed on 2
#   CPU stages, and one of 2 CPU stages resumed on the GPU, continue like an uninterrupted
#   run within 1e-4; tokens/s of one GPU stage at GPT-2 small shape against PyTorch eager on
#   the same GPU (bench.json in the log folder). Exit status 0 only if every step passed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

# Rehearsal on a machine without a GPU (checks this script, not the GPU):
#   GPU_CHECK_BIN_DIR=build/release/launcher GPU_CHECK_DEVICE=cpu scripts/gpu-check.sh
# takes conveyor from that folder instead of the bundle, skips the GPU-only steps (the GPU,
# doctor, kernel tests, the PyTorch benchmark) and trains every "GPU" run on that device.
device=${GPU_CHECK_DEVICE:-cuda}
rehearsal=${GPU_CHECK_BIN_DIR:-}
archive=gpu-bundle/conveyor-gpu-bundle.tar.xz
if [[ -z $rehearsal && ! -f $archive ]]; then
  echo "gpu-check: $archive not found; run scripts/gpu-bundle.sh on a development machine" >&2
  exit 2
fi
logs=${GPU_CHECK_LOG_DIR:-/tmp/conveyor-gpu-check}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$logs"
if [[ -n $rehearsal ]]; then
  mkdir -p "$root/bin"
  ln -s "$(cd "$rehearsal" && pwd)/conveyor" "$root/bin/conveyor"
# tar needs the xz program for .xz; Python's tarfile has its own decompressor.
tar -C "$root" -xJf "$archive" 2>/dev/null ||
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
    "$archive" "$root" || {
  echo "gpu-check: cannot unpack $archive (neither xz nor python3 available)" >&2
  exit 2
}
fi

# cuBLAS from the machine: the CUDA toolkit's, else the one PyTorch's wheels carry.
cublas_dir=""
for d in ${CUBLAS_DIR:-} /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
  /usr/lib/x86_64-linux-gnu; do
  if [[ -e $d/libcublasLt.so.13 ]]; then
    cublas_dir=$d
    break
  fi
done
if [[ -z $cublas_dir ]]; then
  found=$(find /usr /opt -name 'libcublasLt.so.13*' -print -quit 2>/dev/null)
  [[ -n $found ]] && cublas_dir=$(dirname "$found")
fi
export LD_LIBRARY_PATH="$root/lib${cublas_dir:+:$cublas_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export UCX_MODULE_DIR="$root/lib/ucx"
export NVIDIA_TF32_OVERRIDE=0  # TF32 stays off even if a library defaulted to it

summary=()
failed=0
budget=470  # seconds for all steps together: the script ends in under 8 minutes
step() {  # step NAME SECONDS COMMAND...: runs it under a time limit, logs, records the outcome
  local name=$1 limit=$2
  shift 2
  local log="$logs/${name// /_}.log" start=$SECONDS status
  local left=$((budget - SECONDS))
  echo "== $name"
  if ((left < 10)); then
    summary+=("FAIL  0s  $name (not run: the script's 8-minute budget is spent)")
    failed=1
    return
  fi
  ((limit > left)) && limit=$left
  timeout "$limit" "$@" >"$log" 2>&1
  status=$?
  local took=$((SECONDS - start))
  tail -n 25 "$log"
  if ((status == 0)); then
    summary+=("PASS  ${took}s  $name")
  else
    summary+=("FAIL  ${took}s  $name (exit $status$( ((status == 124)) && echo ', time limit'); log $log)")
    failed=1
  fi
}

if [[ -n $rehearsal ]]; then
  echo "rehearsal: conveyor from $rehearsal, training runs on --device $device"
else
echo "bundle: $(sed -n 2p gpu-bundle/MANIFEST)"
echo "cuBLAS: ${cublas_dir:-not found (the CUDA backend will not load)}"
step "GPU" 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
step "conveyor doctor" 60 "$root/bin/conveyor" doctor
# The same selection as `ctest -L gpu` in a build tree: the cases tagged [gpu].
step "gpu kernel tests" 150 "$root/bin/test_unit_kernels" "[gpu]" --warn NoTests \
  --durations yes

# A machine without a usable GPU reports the cuda cases skipped, which is no pass here.
if grep -q "SKIPPED:" "$logs/gpu_kernel_tests.log" 2>/dev/null; then
  summary[${#summary[@]} - 1]="FAIL  gpu kernel tests: skipped, the cuda backend did not start"
  failed=1
fi
fi

# ---- Training on the GPU ------------------------------------------------------------------
# A small model (dim a multiple of 64, so every tensor sits at a 256-byte multiple in every
# partition: cuBLAS then sees the same alignment on every stage) on text from this repository.
export PATH="$root/bin:$PATH"  # `conveyor launch -- conveyor train` starts the bundled binary
work=$(mktemp -d)
trap 'rm -rf "$root" "$work"' EXIT
cat docs/*.md README.md >"$work/corpus.txt"
export GPU_CHECK_WORK=$work
export GPU_CHECK_SMALL="--data $work/corpus.txt --layers 8 --dim 128 --heads 4 --seq 64 --vocab 256
  --microbatches 4 --micro-batch-size 4 --seed 7 --print-every 0"
train() {  # train NAME NPROC ARGS...: metrics in $work/NAME.jsonl (launched when NPROC > 1)
  local name=$1 n=$2
  shift 2
  # shellcheck disable=SC2086  # GPU_CHECK_SMALL is a list of words
  local args=(train $GPU_CHECK_SMALL --metrics "$GPU_CHECK_WORK/$name.jsonl" "$@")
  echo "+ conveyor ${args[*]} (ranks: $n)"
  if ((n == 1)); then
    conveyor "${args[@]}"
  else
    conveyor launch --nproc "$n" -- conveyor "${args[@]}"
  fi
}
compare() {  # compare same|close REFERENCE RUN: the steps RUN has, against REFERENCE's
  python3 - "$@" <<'PY'
import json, os, sys
mode, ref, run = sys.argv[1:]
def steps(name):
    out = {}
    for line in open(os.path.join(os.environ["GPU_CHECK_WORK"], name + ".jsonl")):
        m = json.loads(line)
        if "loss" in m and "grad_norm" in m:
            out[m["step"]] = (m["loss"], m["grad_norm"])
    return out
a, b = steps(ref), steps(run)
if not b or any(s not in a for s in b):
    sys.exit(f"{run}: steps {sorted(b)} not all in {ref}'s {sorted(a)}")
worst = 0.0
for s in sorted(b):
    (la, ga), (lb, gb) = a[s], b[s]
    if mode == "same":
        if (la, ga) != (lb, gb):
            sys.exit(f"{run} step {s}: loss {lb!r} grad norm {gb!r}; {ref}: {la!r} {ga!r}")
    else:
        rel = abs(la - lb) / abs(la)
        worst = max(worst, rel)
        if rel > 1e-4:
            sys.exit(f"{run} step {s}: loss {lb!r} is {rel:.2e} relative from {ref}'s {la!r}")
print(f"{run}: {len(b)} steps {'bit-identical to' if mode == 'same' else 'within 1e-4 of'} "
      f"{ref}" + (f" (worst {worst:.2e} relative)" if mode == "close" else ""))
PY
}
export -f train compare

gpu_same_bits() {
  train gpu1 1 --device "$GPU_CHECK_DEVICE" --steps 20 && train gpu1_again 1 --device "$GPU_CHECK_DEVICE" --steps 20 &&
    compare same gpu1 gpu1_again
}
gpu_stages() {  # every schedule on 1, 2 and 4 stages of one GPU against the 1-stage 1f1b run
  local s p
  for s in gpipe zb-h1; do
    train "gpu_${s}_1" 1 --device "$GPU_CHECK_DEVICE" --steps 20 --schedule "$s" && compare same gpu1 "gpu_${s}_1" ||
      return 1
  done
  for s in gpipe 1f1b zb-h1; do
    for p in 2 4; do
      train "gpu_${s}_$p" "$p" --device "$GPU_CHECK_DEVICE" --steps 20 --stages "$p" --schedule "$s" &&
        compare same gpu1 "gpu_${s}_$p" || return 1
    done
  done
  for p in 2 4; do
    train "gpu_interleaved_$p" "$p" --device "$GPU_CHECK_DEVICE" --steps 20 --stages "$p" \
      --schedule interleaved --virtual-stages 2 && compare same gpu1 "gpu_interleaved_$p" ||
      return 1
  done
}
gpu_vs_cpu() {
  train cpu50 1 --device cpu --steps 50 && train gpu50 1 --device "$GPU_CHECK_DEVICE" --steps 50 &&
    compare close cpu50 gpu50
}
checkpoints() {  # steps 11-20 after a resume on the other device, against an uninterrupted run
  local w=$GPU_CHECK_WORK
  train ck_gpu4 4 --device "$GPU_CHECK_DEVICE" --stages 4 --steps 20 --exit-at-step 10 --ckpt-dir "$w/ck_a" &&
    train ck_cpu2_resumed 2 --device cpu --stages 2 --steps 20 --ckpt-dir "$w/ck_a" \
      2>&1 | tee "$w/ck_cpu2_resumed.log" &&
    grep -q "resumed from" "$w/ck_cpu2_resumed.log" &&
    compare close gpu_1f1b_4 ck_cpu2_resumed || return 1
  train cpu20 1 --device cpu --steps 20 &&
    train ck_cpu2 2 --device cpu --stages 2 --steps 20 --exit-at-step 10 --ckpt-dir "$w/ck_b" &&
    train ck_gpu1_resumed 1 --device "$GPU_CHECK_DEVICE" --steps 20 --ckpt-dir "$w/ck_b" \
      2>&1 | tee "$w/ck_gpu1_resumed.log" &&
    grep -q "resumed from" "$w/ck_gpu1_resumed.log" &&
    compare close cpu20 ck_gpu1_resumed
}
bench_gpt2_small() {  # tokens/s of one GPU stage, GPT-2 small shape, against PyTorch eager
  local w=$GPU_CHECK_WORK
  local shape=(--layers 12 --dim 768 --heads 12 --seq 1024 --vocab 50257)
  conveyor train --data "$w/corpus.txt" "${shape[@]}" --microbatches 1 --micro-batch-size 8 \
    --steps 8 --warmup 2 --print-every 1 --device cuda --metrics "$w/gpt2.jsonl" || return 1
  python3 bench/pytorch_gpt.py --device cuda --layers 12 --dim 768 --heads 12 --seq 1024 \
    --vocab 50257 --batch 8 --steps 8 --warmup-steps 3 >"$w/torch.json" || return 1
  python3 - "$w/gpt2.jsonl" "$w/torch.json" "$GPU_CHECK_LOG_DIR_ABS/bench.json" <<'PY'
import json, statistics, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
ours = statistics.median(m["tokens_per_s"] for m in steps[3:])  # after 3 warm-up steps
torch = json.load(open(sys.argv[2]))
out = {"shape": "GPT-2 small: 12 layers, d 768, 12 heads, T 1024, V 50257, 8 sequences/step",
       "conveyor_tokens_per_s": round(ours, 1), "pytorch_eager_tokens_per_s":
       round(torch["tokens_per_s"], 1), "torch": torch["torch"],
       "conveyor_over_pytorch": round(ours / torch["tokens_per_s"], 3)}
json.dump(out, open(sys.argv[3], "w"), indent=1)
print(json.dumps(out))
PY
}
export GPU_CHECK_DEVICE=$device
export -f gpu_same_bits gpu_stages gpu_vs_cpu checkpoints bench_gpt2_small
GPU_CHECK_LOG_DIR_ABS=$(cd "$logs" && pwd)
export GPU_CHECK_LOG_DIR_ABS

step "gpu run twice same bits" 60 bash -c gpu_same_bits
step "gpu 1 2 4 stages every schedule same bits" 120 bash -c gpu_stages
step "gpu vs cpu 50 steps within 1e-4" 60 bash -c gpu_vs_cpu
step "checkpoint gpu 4 stages to cpu 2 and cpu to gpu" 75 bash -c checkpoints
[[ -z $rehearsal ]] && step "bench gpt2-small tokens per s vs pytorch" 90 bash -c bench_gpt2_small

echo
echo "== gpu-check summary (logs in $logs)"
printf '%s\n' "${summary[@]}"
grep -h -E "^(All tests passed|test cases:)" "$logs"/*.log 2>/dev/null | sed 's/^/  /'
[[ -f $logs/bench.json ]] && sed 's/^/  /' "$logs/bench.json"
exit $failed
