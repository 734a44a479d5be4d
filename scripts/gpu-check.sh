#!/usr/bin/env bash
# The GPU checks, in one command on a machine with an NVIDIA GPU, from the repository root,
# using the bundle scripts/gpu-bundle.sh made (gpu-bundle/). Needs no build tools and none of
# Debian's libraries there: only the NVIDIA driver and CUDA 13's cuBLAS (found below).
# Finishes in well under 8 minutes (each step has its own time limit) and ends with a summary.
#
# Usage: scripts/gpu-check.sh    logs go to $GPU_CHECK_LOG_DIR (default /tmp/conveyor-gpu-check)
#
# Steps: what the GPU is; `conveyor doctor` (which backend --device cuda gets); every kernel
# test case tagged [gpu] (ctest's label gpu: each op against the CPU reference with the
# tolerances of docs/GPU.md, run-to-run bits, batch-position independence, and every
# BACKEND_TEST_CASE on cuda). Exit status 0 only if every step passed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

archive=gpu-bundle/conveyor-gpu-bundle.tar.xz
if [[ ! -f $archive ]]; then
  echo "gpu-check: $archive not found; run scripts/gpu-bundle.sh on a development machine" >&2
  exit 2
fi
logs=${GPU_CHECK_LOG_DIR:-/tmp/conveyor-gpu-check}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$logs"
# tar needs the xz program for .xz; Python's tarfile has its own decompressor.
tar -C "$root" -xJf "$archive" 2>/dev/null ||
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
    "$archive" "$root" || {
  echo "gpu-check: cannot unpack $archive (neither xz nor python3 available)" >&2
  exit 2
}

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
step() {  # step NAME SECONDS COMMAND...: runs it under a time limit, logs, records the outcome
  local name=$1 limit=$2
  shift 2
  local log="$logs/${name// /_}.log" start=$SECONDS status
  echo "== $name"
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

echo "bundle: $(sed -n 2p gpu-bundle/MANIFEST)"
echo "cuBLAS: ${cublas_dir:-not found (the CUDA backend will not load)}"
step "GPU" 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
step "conveyor doctor" 60 "$root/bin/conveyor" doctor
# The same selection as `ctest -L gpu` in a build tree: the cases tagged [gpu].
step "gpu kernel tests" 360 "$root/bin/test_unit_kernels" "[gpu]" --warn NoTests \
  --durations yes

# A machine without a usable GPU reports the cuda cases skipped, which is no pass here.
if grep -q "SKIPPED:" "$logs/gpu_kernel_tests.log" 2>/dev/null; then
  summary[${#summary[@]} - 1]="FAIL  gpu kernel tests: skipped, the cuda backend did not start"
  failed=1
fi

echo
echo "== gpu-check summary (logs in $logs)"
printf '%s\n' "${summary[@]}"
grep -h -E "^(All tests passed|test cases:)" "$logs"/*.log 2>/dev/null | sed 's/^/  /'
exit $failed
