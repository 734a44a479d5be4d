#!/usr/bin/env bash
# The GPU checks, in one command on a machine with an NVIDIA GPU, from the repository root,
# using the bundle scripts/gpu-bundle.sh made. Needs no build tools and none of Debian's
# libraries there: only the NVIDIA driver, CUDA 13's cuBLAS (the bundle's wrappers find it),
# python3 for the loss comparisons and, for the benchmark, PyTorch. Ends within 8 minutes
# whatever happens (every step has its own time limit and all of them share one budget).
#
# Usage: scripts/gpu-check.sh --out DIR [--quick] [--rehearsal] [--bundle ARCHIVE]
#   --out DIR      where the results go (created; at most 6 files, docs/GPU.md): summary.txt,
#                  comparisons.txt, logs.tar.gz, losses.tar.gz, bench.json, MANIFEST
#   --quick        only the kernel tests and one training run against the CPU (a second try)
#   --rehearsal    on a machine without a GPU, checks this script and the bundle, not the GPU:
#                  every "GPU" run trains on the CPU; no nvidia-smi, no CUDA check in doctor,
#                  the CPU kernel cases instead of the [gpu] ones, no PyTorch benchmark
#   --bundle FILE  the archive (default gpu-bundle/conveyor-gpu-bundle.tar.xz)
# Exit status: 0 if every step passed, 1 if one failed, 2 on bad usage.
#
# Steps (docs/GPU.md, "What scripts/gpu-check.sh runs"): unpack the bundle into a temporary
# folder; check that every library its binaries load resolves into the bundle or the base
# system; what the GPU is; `conveyor doctor` (which backend --device cuda gets); the kernel
# tests tagged [gpu]; then training: the same run twice gives the same bits; 1, 2 and 4 stages
# on the one GPU with every schedule give the 1-stage losses bit for bit; GPU against CPU
# (steps 1-10 within 1e-5 relative, every step's difference printed); a checkpoint of 4 GPU
# stages resumed on 2 CPU stages, and one of 2 CPU stages resumed on the GPU, continue like the
# uninterrupted run within 1e-4; tokens/s of one GPU stage at GPT-2 small shape against
# PyTorch eager on the same GPU.

# The step functions run through `bash -c` and the EXIT trap, which shellcheck cannot follow
# (SC2317); bundle-env.sh comes with the bundle (SC1091).
# shellcheck disable=SC2317,SC1091
set -uo pipefail

usage() {
  echo "usage: scripts/gpu-check.sh --out DIR [--quick] [--rehearsal] [--bundle ARCHIVE]" >&2
  exit 2
}
out="" archive="" quick=0 rehearsal=0
while (($#)); do
  case $1 in
    --out) (($# >= 2)) || usage; out=$2; shift 2 ;;
    --bundle) (($# >= 2)) || usage; archive=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --rehearsal) rehearsal=1; shift ;;
    -h | --help) sed -n '8,17p' "$0" | cut -c3-; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ -n $out ]] || { echo "gpu-check: --out DIR is required (where the results go)" >&2; usage; }
repo=$(cd "$(dirname "$0")/.." && pwd)
archive=${archive:-$repo/gpu-bundle/conveyor-gpu-bundle.tar.xz}
if [[ ! -f $archive ]]; then
  echo "gpu-check: $archive not found; run scripts/gpu-bundle.sh on a development machine" \
    "(docs/GPU.md)" >&2
  exit 2
fi
archive=$(cd "$(dirname "$archive")" && pwd)/$(basename "$archive")
mkdir -p "$out" || { echo "gpu-check: cannot create --out $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
cd "$repo" || exit 2

# Everything a step writes is under $work (temporary); the end packs it into $out, also when
# a step failed or ran out of time, and only then removes it.
work=$(mktemp -d "${TMPDIR:-/tmp}/conveyor-gpu-check.XXXXXX") || exit 2
export GPU_CHECK_REPO=$repo GPU_CHECK_ARCHIVE=$archive GPU_CHECK_WORK=$work
export GPU_CHECK_ROOT=$work/bundle GPU_CHECK_RUNS=$work/runs
logs=$work/logs
mkdir -p "$logs" "$GPU_CHECK_RUNS"
export NVIDIA_TF32_OVERRIDE=0  # TF32 stays off even if a library defaulted to it
if ((rehearsal)); then
  export GPU_CHECK_DEVICE=cpu
  mode="REHEARSAL on the CPU (checks the script and the bundle, not a GPU)"
else
  export GPU_CHECK_DEVICE=cuda
  mode="on the GPU"
fi
((quick)) && mode+=", --quick"

# ---- Recording and packing the results ---------------------------------------------------
budget=470  # seconds for all steps together: with unpacking and packing, under 8 minutes
summary=()
failed=0
finished=0
write_summary() {  # summary.txt: rewritten after every step, so a killed run still has one
  local result=RUNNING
  ((finished)) && result=$( ((failed)) && echo FAIL || echo PASS)
  {
    echo "conveyor gpu-check $mode"
    echo "result: $result ($SECONDS s)"
    echo "bundle: $(sed -n 2p "$GPU_CHECK_ROOT/MANIFEST" 2>/dev/null || echo "not unpacked")"
    echo "conveyor: $(command -v conveyor || echo 'not on PATH')"
    echo "cuBLAS: ${CUBLAS_DIR:-not found}"
    echo "python3: $(command -v python3 || echo 'not found: the loss comparisons fail; the' \
      'curves in losses.tar.gz can be compared elsewhere with scripts/gpu-check-compare.py')"
    echo "this machine: $(uname -n), $(getconf GNU_LIBC_VERSION 2>/dev/null || echo 'glibc ?');" \
      "the bundle $(grep '^needs from the machine' "$GPU_CHECK_ROOT/MANIFEST" 2>/dev/null || echo '?')"
    echo
    printf '%s\n' "${summary[@]}"
    if ((finished)); then
      echo
      # The lines worth reading first, from the steps' logs.
      grep -h -E "^(name, driver|NVIDIA|  --device cuda: |All tests passed|test cases:|ok: |FAIL)" \
        "$logs"/*.log 2>/dev/null | head -n 40
      [[ -f $out/bench.json ]] && cat "$out/bench.json"
    fi
  } >"$out/summary.txt"
}
pack() {  # pack ARCHIVE DIR NAME...: a .tar.gz of DIR's NAMEs (Python's tarfile without tar)
  local archive=$1 dir=$2
  shift 2
  (($# > 0)) || return 0
  tar -C "$dir" -czf "$archive" "$@" 2>/dev/null ||
    python3 - "$archive" "$dir" "$@" <<'PY'
import os, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    for name in sys.argv[3:]:
        t.add(os.path.join(sys.argv[2], name), arcname=name)
PY
}
finish() {
  trap - EXIT
  finished=1
  shopt -s nullglob
  local run_logs=("$GPU_CHECK_RUNS"/*.log) curves=("$GPU_CHECK_RUNS"/*.jsonl)
  pack "$out/logs.tar.gz" "$work" logs "${run_logs[@]#"$work"/}"
  pack "$out/losses.tar.gz" "$GPU_CHECK_RUNS" "${curves[@]##*/}"
  [[ -f $work/comparisons.txt ]] && cp "$work/comparisons.txt" "$out/"
  [[ -f $GPU_CHECK_ROOT/MANIFEST ]] && cp "$GPU_CHECK_ROOT/MANIFEST" "$out/"
  write_summary
  echo
  echo "== gpu-check summary (also in $out/summary.txt; every log in $out/logs.tar.gz)"
  cat "$out/summary.txt"
  rm -rf "$work"
  exit "$failed"
}
trap finish EXIT
# Interrupted: the results are still packed (finish, on EXIT), and the run counts as failed.
trap 'summary+=("FAIL  stopped by a signal"); failed=1; exit 1' INT TERM

steps_run=0
step() {  # step NAME LIMIT FUNCTION: runs FUNCTION (below) under a time limit, logs, records
  local name=$1 limit=$2 fn=$3 status took start=$SECONDS left=$((budget - SECONDS)) log
  steps_run=$((steps_run + 1))
  log=$logs/$(printf %02d $steps_run)-${name//[^A-Za-z0-9]/_}.log
  echo "== $name"
  if ((left < 10)); then
    summary+=("FAIL  0s  $name (not run: the ${budget}s budget is spent)")
    failed=1
    write_summary
    return 1
  fi
  ((limit > left)) && limit=$left
  # -k 10: conveyor train takes SIGTERM as "finish the step", so a hung run gets SIGKILL.
  # pipefail: `train ... | tee` fails when the run does.
  timeout -k 10 "$limit" bash -c "set -eo pipefail; $fn" >"$log" 2>&1
  status=$?
  took=$((SECONDS - start))
  if ((status == 0)); then
    tail -n 5 "$log"
    summary+=("PASS  ${took}s  $name")
  else
    tail -n 25 "$log"
    local why="exit $status"
    ((status == 124 || status == 137)) && why="time limit of ${limit}s"
    summary+=("FAIL  ${took}s  $name ($why; log ${log#"$work"/} in logs.tar.gz)")
    failed=1
  fi
  write_summary
  return $status
}

# ---- The steps, each run by `step` in its own bash with set -eo pipefail ------------------
unpack() {  # the bundle into $GPU_CHECK_ROOT; tar needs xz, Python's tarfile has its own
  mkdir -p "$GPU_CHECK_ROOT"
  echo "unpacking $GPU_CHECK_ARCHIVE"
  tar -C "$GPU_CHECK_ROOT" -xf "$GPU_CHECK_ARCHIVE" ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$GPU_CHECK_ARCHIVE" "$GPU_CHECK_ROOT"
  for f in bin/conveyor bin/test_unit_kernels libexec/bundle-env.sh system-libs.regex; do
    [[ -f $GPU_CHECK_ROOT/$f ]] || {
      echo "gpu-check: the bundle has no $f: make it again with scripts/gpu-bundle.sh"
      return 1
    }
  done
  sed -n '/^files:/q;p' "$GPU_CHECK_ROOT/MANIFEST"
}
self_check() {  # every library the bundle's binaries load: from the bundle or the base system
  local ldpath system f name arrow path listing bad=0 from_bundle=0 from_system=0
  local -A seen=()
  # The LD_LIBRARY_PATH the wrappers set, learnt from the same file they source.
  # shellcheck disable=SC2034  # bundle is read by bundle-env.sh
  ldpath=$(bundle=$GPU_CHECK_ROOT && . "$GPU_CHECK_ROOT/libexec/bundle-env.sh" &&
    printf %s "$LD_LIBRARY_PATH")
  system=$(<"$GPU_CHECK_ROOT/system-libs.regex")
  echo "the wrappers' LD_LIBRARY_PATH: $ldpath"
  echo "the base system (left out of the bundle): $system"
  for f in "$GPU_CHECK_ROOT"/libexec/conveyor "$GPU_CHECK_ROOT"/libexec/test_unit_kernels \
    "$GPU_CHECK_ROOT"/lib/*.so* "$GPU_CHECK_ROOT"/lib/ucx/*.so*; do
    # What ldd does, without needing ldd: the loader lists what it would load, and "not found".
    listing=$(LD_TRACE_LOADED_OBJECTS=1 LD_LIBRARY_PATH=$ldpath /lib64/ld-linux-x86-64.so.2 "$f" 2>&1) || {
      echo "FAIL: ${f#"$GPU_CHECK_ROOT"/}: the loader cannot list its libraries: $listing"
      bad=1
      continue
    }
    # "FILE: LIB: version `GLIBC_2.34' not found (required by FILE)": the machine's is older.
    if grep -q "version .* not found" <<<"$listing"; then
      grep "version .* not found" <<<"$listing" | sed 's/^/FAIL: /'
      bad=1
    fi
    while read -r name arrow path _; do
      [[ $arrow == "=>" && -z ${seen[$name]:-} ]] || continue
      seen[$name]=1
      if [[ $path == not ]]; then
        echo "FAIL: $name (needed by ${f#"$GPU_CHECK_ROOT"/}) not found"
        bad=1
      elif [[ $path == "$GPU_CHECK_ROOT"/* ]]; then
        from_bundle=$((from_bundle + 1))
      elif [[ $name =~ $system ]]; then
        from_system=$((from_system + 1))
        echo "base system: $name => $path"
      else
        echo "FAIL: $name (needed by ${f#"$GPU_CHECK_ROOT"/}) resolves to $path, outside the" \
          "bundle and not part of the base system: the bundle lacks it (scripts/gpu-bundle.sh)"
        bad=1
      fi
    done <<<"$listing"
  done
  echo "$((from_bundle + from_system)) libraries: $from_bundle from the bundle, $from_system from the base system"
  ((bad == 0)) || return 1
  # The wrappers themselves start the binaries.
  conveyor --version
  [[ $(command -v conveyor) == "$GPU_CHECK_ROOT/bin/conveyor" ]] || {
    echo "FAIL: conveyor on the PATH is $(command -v conveyor), not the bundle's wrapper"
    return 1
  }
}
gpu() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  # What a failing multi-rank run might come down to: UCX's shared memory lives in /dev/shm.
  echo "CPUs: $(nproc); /dev/shm: $(df -h /dev/shm 2>/dev/null | tail -n 1)" || true
}
doctor() {
  local report
  report=$(conveyor doctor)
  echo "$report"
  [[ $GPU_CHECK_DEVICE == cpu ]] && return 0
  # doctor exits 0 whatever it finds: the line below is what says the CUDA backend started.
  grep -q -- "--device cuda: cuda (GPU " <<<"$report" || {
    echo "gpu-check: conveyor doctor has no '--device cuda: cuda (GPU ...' line: the CUDA backend did not start"
    return 1
  }
}
kernel_tests() {
  local report
  if [[ $GPU_CHECK_DEVICE == cpu ]]; then  # rehearsal: the bundled binary's CPU cases
    test_unit_kernels "~[gpu]" --warn NoTests --durations yes
    return
  fi
  # The same selection as `ctest -L gpu` in a build tree: the cases tagged [gpu].
  report=$(test_unit_kernels "[gpu]" --warn NoTests --durations yes 2>&1) || {
    echo "$report"
    return 1
  }
  echo "$report"
  # A machine without a usable GPU reports the cuda cases skipped, which is no pass here.
  if grep -q "SKIPPED:" <<<"$report"; then
    echo "gpu-check: the [gpu] cases were skipped: the CUDA backend did not start"
    return 1
  fi
}

# Training: a small model (dim a multiple of 64, so every tensor sits at a 256-byte multiple in
# every partition: cuBLAS then sees the same alignment on every stage) on this repository's
# docs as text. Metrics in runs/NAME.jsonl, output in runs/NAME.log.
export GPU_CHECK_SMALL="--data $work/corpus.txt --layers 8 --dim 128 --heads 4 --seq 64
  --vocab 256 --microbatches 4 --micro-batch-size 4 --seed 7 --print-every 0"
# GPU against CPU at a learning rate where fp32 rounding drifts little between the two.
export GPU_CHECK_LOW_LR="--lr 1e-4"
cat docs/*.md README.md >"$work/corpus.txt"
train() {  # train NAME NPROC ARGS...: launched when NPROC > 1
  local name=$1 n=$2
  shift 2
  # shellcheck disable=SC2206  # GPU_CHECK_SMALL is a list of words
  local args=(train $GPU_CHECK_SMALL --metrics "$GPU_CHECK_RUNS/$name.jsonl" "$@")
  echo "+ conveyor ${args[*]} (ranks: $n)"
  if ((n == 1)); then
    conveyor "${args[@]}"
  else
    conveyor launch --nproc "$n" -- conveyor "${args[@]}"
  fi 2>&1 | tee "$GPU_CHECK_RUNS/$name.log"
}
compare() {  # compare same|close REF RUN [OPTIONS]: scripts/gpu-check-compare.py on two runs
  command -v python3 >/dev/null || {
    echo "gpu-check: python3 not found on PATH; the loss comparisons need it"
    return 1
  }
  local mode=$1 ref=$2 run=$3
  shift 3
  python3 "$GPU_CHECK_REPO/scripts/gpu-check-compare.py" "$mode" "$GPU_CHECK_RUNS/$ref.jsonl" \
    "$GPU_CHECK_RUNS/$run.jsonl" "$@" | tee -a "$GPU_CHECK_WORK/comparisons.txt"
}
same_bits() {
  train gpu1 1 --device "$GPU_CHECK_DEVICE" --steps 20
  train gpu1_again 1 --device "$GPU_CHECK_DEVICE" --steps 20
  compare same gpu1 gpu1_again
}
stages() {  # every schedule on 1, 2 and 4 stages of one GPU against the 1-stage 1f1b run
  local s p d=$GPU_CHECK_DEVICE
  for s in gpipe zb-h1; do
    train "gpu_${s}_1" 1 --device "$d" --steps 20 --schedule "$s"
    compare same gpu1 "gpu_${s}_1"
  done
  for s in gpipe 1f1b zb-h1; do
    for p in 2 4; do
      train "gpu_${s}_$p" "$p" --device "$d" --steps 20 --stages "$p" --schedule "$s"
      compare same gpu1 "gpu_${s}_$p"
    done
  done
  for p in 2 4; do
    train "gpu_interleaved_$p" "$p" --device "$d" --steps 20 --stages "$p" \
      --schedule interleaved --virtual-stages 2
    compare same gpu1 "gpu_interleaved_$p"
  done
}
vs_cpu() {  # steps 1-10 within 1e-5; every step's difference printed; 1e-3 catches a divergence
  # shellcheck disable=SC2086  # GPU_CHECK_LOW_LR is a list of words
  train cpu50 1 --device cpu --steps 50 $GPU_CHECK_LOW_LR
  # shellcheck disable=SC2086
  train gpu50 1 --device "$GPU_CHECK_DEVICE" --steps 50 $GPU_CHECK_LOW_LR
  compare close cpu50 gpu50 --tol 1e-5 --tol-steps 10 --bound 1e-3
}
checkpoints() {  # resumed on the other device at step 10, against the uninterrupted run
  local ck=$GPU_CHECK_WORK/ckpt d=$GPU_CHECK_DEVICE
  # shellcheck disable=SC2086  # GPU_CHECK_LOW_LR is a list of words
  train ck_gpu4 4 --device "$d" --stages 4 --steps 20 $GPU_CHECK_LOW_LR --save-every 10 \
    --ckpt-dir "$ck/gpu4"
  # shellcheck disable=SC2086
  train ck_gpu4_on_cpu2 2 --device cpu --stages 2 --steps 20 $GPU_CHECK_LOW_LR \
    --resume "$ck/gpu4/step_000000010"
  compare close ck_gpu4 ck_gpu4_on_cpu2 --tol 1e-4 --first-step 11
  # shellcheck disable=SC2086
  train ck_cpu2 2 --device cpu --stages 2 --steps 20 $GPU_CHECK_LOW_LR --save-every 10 \
    --ckpt-dir "$ck/cpu2"
  # shellcheck disable=SC2086
  train ck_cpu2_on_gpu1 1 --device "$d" --steps 20 $GPU_CHECK_LOW_LR \
    --resume "$ck/cpu2/step_000000010"
  compare close ck_cpu2 ck_cpu2_on_gpu1 --tol 1e-4 --first-step 11
}
bench() {  # tokens/s of one GPU stage, GPT-2 small shape, against PyTorch eager (bench.json)
  local w=$GPU_CHECK_RUNS
  local shape=(--layers 12 --dim 768 --heads 12 --seq 1024 --vocab 50257)
  conveyor train --data "$GPU_CHECK_WORK/corpus.txt" "${shape[@]}" --microbatches 1 \
    --micro-batch-size 8 --steps 8 --warmup 2 --print-every 1 --device cuda \
    --metrics "$w/gpt2.jsonl" 2>&1 | tee "$w/gpt2.log"
  # python3 with the environment untouched: PyTorch loads its own CUDA libraries.
  python3 bench/pytorch_gpt.py --device cuda --layers 12 --dim 768 --heads 12 --seq 1024 \
    --vocab 50257 --batch 8 --steps 8 --warmup-steps 3 >"$GPU_CHECK_WORK/torch.json"
  python3 - "$w/gpt2.jsonl" "$GPU_CHECK_WORK/torch.json" "$GPU_CHECK_WORK/bench.json" <<'PY'
import json, statistics, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
ours = statistics.median(m["tokens_per_s"] for m in steps[3:])  # after 3 warm-up steps
torch = json.load(open(sys.argv[2]))
out = {"shape": "GPT-2 small: 12 layers, d 768, 12 heads, T 1024, V 50257, 8 sequences/step",
       "conveyor_tokens_per_s": round(ours, 1), "pytorch_eager_tokens_per_s":
       round(torch["tokens_per_s"], 1), "torch": torch["torch"],
       "conveyor_over_pytorch": round(ours / torch["tokens_per_s"], 3)}
# MFU against the GPU's dense fp32 peak (kernels/device_peaks.h), when conveyor knows it.
mfu = [m["mfu"] for m in steps[3:] if m.get("mfu") is not None]
if mfu:
    out["conveyor_mfu_fp32"] = round(statistics.median(mfu), 4)
json.dump(out, open(sys.argv[3], "w"), indent=1)
print(json.dumps(out))
PY
}
export -f unpack self_check gpu doctor kernel_tests train compare same_bits stages vs_cpu \
  checkpoints bench

# ---- The run ------------------------------------------------------------------------------
echo "gpu-check $mode; results in $out"
write_summary
step "unpack the bundle" 60 unpack || exit  # nothing else can run without it
# The cuBLAS the wrappers would search for, found once here and handed to them.
# shellcheck disable=SC2034  # bundle is read by bundle-env.sh
CUBLAS_DIR=$(bundle=$GPU_CHECK_ROOT && . "$GPU_CHECK_ROOT/libexec/bundle-env.sh" &&
  printf %s "$CONVEYOR_CUBLAS_DIR")
export CUBLAS_DIR
export PATH="$GPU_CHECK_ROOT/bin:$PATH"  # the wrappers; `conveyor launch` finds them too
step "bundle libraries resolve into the bundle or the base system" 30 self_check
if ((!rehearsal)); then
  step "GPU" 30 gpu
  step "conveyor doctor: --device cuda starts" 60 doctor
  step "kernel tests [gpu]" 150 kernel_tests
else
  step "conveyor doctor" 60 doctor
  step "kernel tests [cpu] (rehearsal)" 60 kernel_tests
fi
if ((quick)); then
  step "gpu vs cpu: steps 1-10 within 1e-5" 60 vs_cpu
  exit
fi
step "gpu run twice same bits" 60 same_bits
step "gpu 1 2 4 stages every schedule same bits" 120 stages
step "gpu vs cpu: steps 1-10 within 1e-5" 60 vs_cpu
step "checkpoint gpu 4 stages to cpu 2 and cpu 2 to gpu within 1e-4" 75 checkpoints
if ((!rehearsal)); then
  step "bench gpt2-small tokens per s vs pytorch" 90 bench &&
    cp "$work/bench.json" "$out/bench.json"
fi
exit
