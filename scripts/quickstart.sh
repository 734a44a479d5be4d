#!/usr/bin/env bash
# Installs the dependencies (Debian packages), builds conveyor and runs the main job: a
# 4-stage 1F1B training run on the fortunes corpus, on the CPU over loopback, ending with a
# text sample. Extra arguments are passed on to `conveyor train`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)"
bin=build/release/launcher/conveyor
exec "$bin" train --sample 400 "$@"
