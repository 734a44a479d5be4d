#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ (clang 16, ASan + UBSan) and runs each on its seed
# corpus for a bounded time. Exits non-zero on any crash, sanitizer report or failed check;
# the input that caused it is kept under build/fuzz/findings/ (docs/FUZZING.md).
# Usage: scripts/fuzz.sh [target...]    FUZZ_SECONDS=30 per target by default
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
targets=("$@")
if ((${#targets[@]} == 0)); then targets=(token_file config wire manifest hostlist hf_model); fi

scripts/install-deps.sh --with-fuzz
cmake --preset fuzz
cmake --build --preset fuzz -j "$(nproc)"

findings=build/fuzz/findings
mkdir -p "$findings"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-16/bin/llvm-symbolizer  # reports name file and line
for target in "${targets[@]}"; do
  seeds=fuzz/corpus/$target
  [[ -d "$seeds" ]] || { echo "fuzz: no target '$target' (see fuzz/corpus/)" >&2; exit 2; }
  # New inputs go to a scratch corpus, so the repository's seeds stay as committed.
  grown=build/fuzz/corpus/$target
  mkdir -p "$grown"
  echo "fuzz: $target for ${seconds}s (seeds: $(ls "$seeds" | wc -l))"
  log=build/fuzz/$target.log
  set +e
  build/fuzz/fuzz/fuzz_"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$findings/$target-" "$grown" "$seeds" >"$log" 2>&1
  status=$?
  set -e
  grep -v -E "^#[0-9]+" "$log" | tail -n 40 || true
  if ((status != 0)); then
    echo "fuzz: $target FAILED (exit $status); the input is in $findings/" >&2
    exit 1
  fi
done
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s each with no finding"
