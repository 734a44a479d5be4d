#!/usr/bin/env bash
# Builds conveyor for Hopper GPUs on a development machine (nvcc, no GPU needed) and packs what
# a GPU machine without Debian's libraries needs to run the GPU checks into gpu-bundle/
# (git-ignored): the conveyor binary, the test binaries that hold [gpu] cases, every shared
# library they load that is not part of the base system, and UCX's transport modules. Run
# scripts/gpu-check.sh on the GPU machine afterwards (docs/GPU.md).
#
# Usage: scripts/gpu-bundle.sh            JOBS=N sets the build's parallelism (default: nproc)
#
# Left out on purpose:
# - the C and C++ runtimes (libc, libm, libstdc++, libgcc_s, ...): the GPU machine's are the
#   same or newer, and a second libc cannot be loaded beside the system's;
# - cuBLAS (libcublas, libcublasLt: 600 MB): the GPU machine has CUDA 13's own, which
#   gpu-check.sh finds. libcudart (0.7 MB) comes along, so the runtime matches the build.
# Everything goes into one xz archive: OpenBLAS alone is 36 MB unpacked, and the bundle must
# stay well under 64 MiB to travel with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build/gpu
out=gpu-bundle
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
targets=(conveyor test_unit_kernels)  # the binaries with [gpu] cases, and the CLI
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
  -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)

# sm_90 machine code for H100/H200 plus compute_90 PTX for newer GPUs; no -march=native,
# since the GPU machine's CPU is not this one.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVEYOR_CUDA=ON \
  -DCONVEYOR_NATIVE=OFF "-DCMAKE_CUDA_ARCHITECTURES=90-real;90-virtual" "${launcher[@]}"
ninja -C "$build" -j "${JOBS:-$(nproc)}" "${targets[@]}"

mkdir -p "$stage/bin" "$stage/lib/ucx"
cp "$build/launcher/conveyor" "$build/tests/test_unit_kernels" "$stage/bin/"
ucx_modules=/usr/lib/x86_64-linux-gnu/ucx
cp -L "$ucx_modules"/libuct_*.so.0 "$stage/lib/ucx/" 2>/dev/null || true

# The base system: present on any glibc Linux, and never to be shadowed.
system='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|librt|libpthread|libresolv|libutil|libgcc_s|libstdc\+\+|libcuda|libcublas|libcublasLt)\.so'
copy_deps() {  # copy_deps FILE...: the non-system libraries FILE loads, into lib/
  ldd "$@" 2>/dev/null | awk '/=> \// {print $1, $3}' | sort -u | while read -r name path; do
    [[ $name =~ $system ]] && continue
    [[ -e $stage/lib/$name ]] || cp -L "$path" "$stage/lib/$name"
  done
}
copy_deps "$stage"/bin/* "$stage"/lib/ucx/*  # ldd lists dependencies of dependencies too
strip --strip-unneeded "$stage"/bin/* "$stage"/lib/*.so* "$stage"/lib/ucx/*.so* 2>/dev/null || true

{
  echo "conveyor GPU bundle"
  echo "source: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "nvcc: $(nvcc --version | tail -1)"
  echo "CUDA architectures: 90-real;90-virtual"
  echo "files:"
  (cd "$stage" && find . -type f ! -name MANIFEST -printf '  %p %s\n' | sort)
} >"$stage/MANIFEST"

rm -rf "$out"
mkdir -p "$out"
tar -C "$stage" -cf - . | xz -T1 -6 >"$out/conveyor-gpu-bundle.tar.xz"
cp "$stage/MANIFEST" "$out/"
size=$(du -sb "$out" | cut -f1)
unpacked=$(du -sb "$stage" | cut -f1)
echo "gpu-bundle: $((size / 1048576)) MiB packed ($((unpacked / 1048576)) MiB unpacked), $(grep -c '^  \./' "$out/MANIFEST") files"
if ((size >= 64 * 1048576)); then
  echo "gpu-bundle: over 64 MiB; it would not travel with the working tree" >&2
  exit 1
fi
