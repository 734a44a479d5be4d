#!/usr/bin/env bash
# Installs the dependencies (Debian packages), builds conveyor and runs the whole test suite.
# Usage: scripts/test.sh [preset]    preset: release (default), debug, asan, tsan
#        (tsan runs the transport, pipeline and train tests only)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
scripts/install-deps.sh --with-tests
cmake --preset "$preset"
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -j "$(nproc)" --timeout 600
