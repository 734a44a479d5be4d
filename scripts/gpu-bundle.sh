#!/usr/bin/env bash
# Packs what a GPU machine without Debian's libraries needs to run scripts/gpu-check.sh: the
# conveyor binary, the test binary that holds the [gpu] kernel cases, every shared library they
# load that is not part of the base system, UCX's transport modules, and wrappers that point
# the binaries at those libraries. By default it first builds conveyor for Hopper GPUs on this
# development machine (nvcc, no GPU needed) in build/gpu and writes gpu-bundle/ (git-ignored),
# which travels with the working tree; docs/GPU.md, "Running the GPU checks".
#
# Usage: scripts/gpu-bundle.sh [--from-build DIR] [--out DIR] [--fast]
#   --from-build DIR  pack the binaries of this existing build folder instead of building
#                     build/gpu (the CI rehearsal packs the build it tests)
#   --out DIR         write the bundle here instead of gpu-bundle/ (replacing the folder)
#   --fast            xz -0 instead of xz -6: quicker, larger (for tests; no size limit then)
#   JOBS=N            the build's parallelism (default: nproc)
#
# The bundle (one archive, conveyor-gpu-bundle.tar.xz, and a copy of its MANIFEST beside it):
#   bin/conveyor, bin/test_unit_kernels   sh wrappers: source libexec/bundle-env.sh, then exec
#   libexec/conveyor, libexec/test_unit_kernels   the real (stripped) binaries
#   libexec/bundle-env.sh   LD_LIBRARY_PATH (lib/ first, then the machine's cuBLAS, then the
#                           caller's), UCX_MODULE_DIR=lib/ucx; only the wrapped binaries see it
#   lib/, lib/ucx/          the libraries and UCX's modules
#   system-libs.regex       the libraries left out (below), for gpu-check.sh's self-check
#   MANIFEST                source revision, build, file sizes
#
# Left out on purpose (system-libs.regex):
# - the C and C++ runtimes (libc, libm, libstdc++, libgcc_s, ...): a second libc cannot be
#   loaded beside the system's, so the GPU machine's must be as new as the MANIFEST's "needs"
#   line says (Debian 12's libstdc++ would itself raise the glibc needed from 2.34 to 2.36);
# - the NVIDIA driver (libcuda) and cuBLAS (libcublas, libcublasLt: 600 MB): the GPU machine has
#   CUDA 13's own, which bundle-env.sh finds. libcudart (0.7 MB) comes along, so the runtime
#   matches the build.
# Everything goes into one xz archive: OpenBLAS alone is 36 MB unpacked, and the bundle must
# stay well under 64 MiB to travel with the working tree.
set -euo pipefail

usage() {
  echo "usage: scripts/gpu-bundle.sh [--from-build DIR] [--out DIR] [--fast] (see the script's header)" >&2
  exit 2
}
from_build=""
out=gpu-bundle
level=-6
while (($#)); do
  case $1 in
    --from-build) (($# >= 2)) || usage; from_build=$2; shift 2 ;;
    --out) (($# >= 2)) || usage; out=$2; shift 2 ;;
    --fast) level=-0; shift ;;
    -h | --help) usage ;;
    *) echo "gpu-bundle: unknown argument '$1'" >&2; usage ;;
  esac
done
# Paths given on the command line are relative to where the script was called from.
if [[ -n $from_build ]]; then
  [[ -d $from_build ]] || { echo "gpu-bundle: --from-build $from_build: no such folder" >&2; exit 2; }
  from_build=$(cd "$from_build" && pwd)
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
targets=(conveyor test_unit_kernels)  # the CLI, and the binary with the [gpu] kernel cases

if [[ -n $from_build ]]; then
  build=$from_build
  cache_arch=$(sed -n 's/^CMAKE_CUDA_ARCHITECTURES:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null ||
    true)
  build_note="$build (existing build; CUDA architectures: ${cache_arch:-the project default, cmake/Cuda.cmake})"
else
  build=build/gpu
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
    -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  # sm_90 machine code for H100/H200 plus compute_90 PTX for newer GPUs; no -march=native,
  # since the GPU machine's CPU is not this one.
  arch="90-real;90-virtual"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVEYOR_CUDA=ON \
    -DCONVEYOR_NATIVE=OFF "-DCMAKE_CUDA_ARCHITECTURES=$arch" "${launcher[@]}"
  ninja -C "$build" -j "${JOBS:-$(nproc)}" "${targets[@]}"
  build_note="$build (Release, CONVEYOR_CUDA=ON, CUDA architectures $arch)"
fi
binaries=("$build/launcher/conveyor" "$build/tests/test_unit_kernels")
for b in "${binaries[@]}"; do
  [[ -x $b ]] || {
    echo "gpu-bundle: $b not found; build the targets ${targets[*]} in $build first" >&2
    exit 2
  }
done

mkdir -p "$stage/bin" "$stage/libexec" "$stage/lib/ucx"
cp "${binaries[@]}" "$stage/libexec/"
ucx_modules=/usr/lib/x86_64-linux-gnu/ucx
cp -L "$ucx_modules"/libuct_*.so.0 "$stage/lib/ucx/" 2>/dev/null || true

# The base system: present on any glibc Linux, and never to be shadowed. The GPU machine's
# driver and cuBLAS count as its system too.
system='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|librt|libpthread|libresolv|libutil|libgcc_s|libstdc\+\+|libcuda|libcublas|libcublasLt)\.so'
echo "$system" >"$stage/system-libs.regex"
# ldd lists dependencies of dependencies too. A library missing here would be missing there.
deps=$(ldd "$stage"/libexec/* "$stage"/lib/ucx/* 2>&1) || {
  echo "gpu-bundle: ldd failed: $deps" >&2
  exit 1
}
if grep -q 'not found' <<<"$deps"; then
  echo "gpu-bundle: libraries not found on this machine:" >&2
  grep 'not found' <<<"$deps" | sort -u >&2
  exit 1
fi
awk '/=> \// {print $1, $3}' <<<"$deps" | sort -u | while read -r name path; do
  [[ $name =~ $system ]] && continue
  [[ -e $stage/lib/$name ]] || cp -L "$path" "$stage/lib/$name"
done
strip --strip-unneeded "$stage"/libexec/* "$stage"/lib/*.so* "$stage"/lib/ucx/*.so* 2>/dev/null || true
needs_cublas=no
[[ $deps == *libcublas* ]] && needs_cublas=yes

# What the wrapped binaries need besides their libraries; sourced with $bundle set to the
# unpacked bundle's root (by the wrappers, and by gpu-check.sh to learn the same settings).
cat >"$stage/libexec/bundle-env.sh" <<EOF
# Sourced (POSIX sh) with \$bundle set to the bundle's root: sets LD_LIBRARY_PATH (the bundle's
# lib/ first, then the machine's cuBLAS, then the caller's own entries) and UCX_MODULE_DIR.
# cuBLAS: \$CUBLAS_DIR when set, else the CUDA toolkit's, else any libcublasLt.so.13 under
# /usr, /opt or python3's site-packages (PyTorch's nvidia-cublas wheel). CONVEYOR_CUBLAS_DIR
# says what was found.
needs_cublas=$needs_cublas
EOF
cat >>"$stage/libexec/bundle-env.sh" <<'EOF'
CONVEYOR_CUBLAS_DIR=${CUBLAS_DIR:-}
if [ "$needs_cublas" = yes ] && [ -z "$CONVEYOR_CUBLAS_DIR" ]; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    /usr/lib/x86_64-linux-gnu; do
    if [ -e "$d/libcublasLt.so.13" ] && [ -e "$d/libcublas.so.13" ]; then
      CONVEYOR_CUBLAS_DIR=$d
      break
    fi
  done
  if [ -z "$CONVEYOR_CUBLAS_DIR" ]; then
    # Also python3's own site-packages, wherever it lives (a virtual environment, say).
    sites=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
    found=$(find /usr /opt $sites -name 'libcublasLt.so.13*' 2>/dev/null | head -n 1)
    [ -n "$found" ] && CONVEYOR_CUBLAS_DIR=${found%/*}
  fi
fi
LD_LIBRARY_PATH="$bundle/lib${CONVEYOR_CUBLAS_DIR:+:$CONVEYOR_CUBLAS_DIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
UCX_MODULE_DIR="$bundle/lib/ucx"
export LD_LIBRARY_PATH UCX_MODULE_DIR CONVEYOR_CUBLAS_DIR
EOF
for b in conveyor test_unit_kernels; do
  cat >"$stage/bin/$b" <<EOF
#!/bin/sh
# $b from this bundle: the bundle's libraries for it alone (libexec/bundle-env.sh), so
# whatever else runs beside it (python3, nvidia-smi) keeps its own. On the PATH, so that
# \`conveyor launch -- conveyor train\` starts the bundled binary too.
bundle=\$(cd "\${0%/*}/.." && pwd)
. "\$bundle/libexec/bundle-env.sh"
exec "\$bundle/libexec/$b" "\$@"
EOF
  chmod +x "$stage/bin/$b"
done

{
  echo "conveyor GPU bundle"
  echo "source: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "build: $build_note"
  echo "nvcc: $({ command -v nvcc >/dev/null && nvcc --version | tail -1; } || echo 'not on PATH')"
  echo "needs cuBLAS from the machine: $needs_cublas"
  # The newest symbol versions any bundled file asks of the machine's C and C++ runtimes.
  symbols=$(objdump -T "$stage"/libexec/conveyor "$stage"/libexec/test_unit_kernels \
    "$stage"/lib/*.so* "$stage"/lib/ucx/*.so* 2>/dev/null || true)
  echo "needs from the machine: $(grep -o 'GLIBC_[0-9.]*' <<<"$symbols" | sort -V | tail -n 1)" \
    "$(grep -o 'GLIBCXX_[0-9.]*' <<<"$symbols" | sort -V | tail -n 1)"
  echo "files:"
  (cd "$stage" && find . -type f ! -name MANIFEST -printf '  %p %s\n' | sort)
} >"$stage/MANIFEST"

rm -f "$out/conveyor-gpu-bundle.tar.xz" "$out/MANIFEST"
tar -C "$stage" -cf - . | xz -T1 "$level" >"$out/conveyor-gpu-bundle.tar.xz"
cp "$stage/MANIFEST" "$out/"
size=$(du -sb "$out" | cut -f1)
unpacked=$(du -sb "$stage" | cut -f1)
echo "gpu-bundle: $out: $((size / 1048576)) MiB packed ($((unpacked / 1048576)) MiB unpacked), $(grep -c '^  \./' "$out/MANIFEST") files"
if [[ $level == -6 ]] && ((size >= 64 * 1048576)); then
  echo "gpu-bundle: over 64 MiB; it would not travel with the working tree" >&2
  exit 1
fi
