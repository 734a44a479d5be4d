#!/usr/bin/env bash
# Installs everything conveyor needs to build and test, from Debian packages only.
# Idempotent: safe to run again. Needs root (or sudo) on Debian 12.
# Usage: scripts/install-deps.sh [--with-bench]   (--with-bench adds python3-torch for bench/)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libucx-dev ucx-utils libibverbs-dev librdmacm-dev ibverbs-utils
  libhdf5-dev hdf5-tools
  catch2 libopenblas-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev
  libfmt-dev libspdlog-dev libxxhash-dev
  fortunes python3 python3-h5py python3-numpy
)
if [[ "${1:-}" == "--with-bench" ]]; then
  packages+=(python3-torch)
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
