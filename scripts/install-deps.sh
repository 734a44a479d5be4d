#!/usr/bin/env bash
# Installs what conveyor needs to build and run, from Debian packages only.
# Idempotent: safe to run again. Needs root (or sudo) on Debian 12.
# Usage: scripts/install-deps.sh [--with-tests] [--with-bench] [--with-fuzz]
#   --with-tests adds the daemons the multi-host tests start themselves (sshd in network
#   namespaces, a Slurm cluster); they are not needed to train, and a plain install should
#   not put an SSH server on the machine. --with-bench adds python3-torch for bench/;
#   --with-fuzz adds clang 16 and its libFuzzer runtime for fuzz/ (Debian 12's default
#   clang, 14, lacks std::source_location).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libucx-dev ucx-utils libibverbs-dev librdmacm-dev ibverbs-utils
  libhdf5-dev hdf5-tools
  catch2 libopenblas-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev
  libfmt-dev libspdlog-dev libxxhash-dev libsentencepiece-dev
  fortunes python3 python3-h5py python3-numpy
  openssh-client iproute2 util-linux xz-utils
)
for arg in "$@"; do
  case "$arg" in
    --with-tests) packages+=(openssh-server slurm-wlm munge) ;;  # tests/integration/{launch,slurm}
    --with-bench) packages+=(python3-torch) ;;
    --with-fuzz) packages+=(clang-16 libclang-rt-16-dev llvm-16) ;;  # llvm-16: symbolizer
    *) echo "install-deps: unknown option $arg (use --with-tests, --with-bench or --with-fuzz)" >&2; exit 2 ;;
  esac
done

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
