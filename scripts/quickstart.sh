#!/usr/bin/env bash
# Installs the dependencies (Debian packages), builds conveyor and runs the main job: a
# 4-stage 1F1B training run on the fortunes corpus, on the CPU over loopback (one process
# per stage), showing loss, tokens/s and bubble per step and a text sample at the end.
# Extra arguments are passed on to `conveyor train` (e.g. --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)"
exec build/release/launcher/conveyor launch --nproc 4 -- \
  conveyor train --stages 4 --schedule 1f1b --microbatches 8 --micro-batch-size 4 \
  --sample 400 "$@"
