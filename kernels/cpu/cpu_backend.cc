#include "kernels/cpu/cpu_backend.h"

#include <cblas.h>

#include <cstring>

#include "common/host_buffer.h"
#include "kernels/cpu/ops.h"

namespace conveyor::kernels {

std::string CpuBackend::describe() const {
  // The kernels OpenBLAS chose for this CPU (or OPENBLAS_CORETYPE): bit-identical results
  // across hosts need the same on every host.
  return std::string("cpu (OpenBLAS ") + openblas_get_corename() + " kernels)";
}

CpuBackend::CpuBackend(int threads) {
  if (threads > 0) cpu::set_num_threads(threads);
}

void* CpuBackend::allocate_bytes(size_t bytes) const {
  return allocate_host_bytes(bytes);
}

void CpuBackend::free_bytes(void* p) const noexcept {
  free_host_bytes(p);
}

void CpuBackend::zero(void* p, size_t bytes) {
  std::memset(p, 0, bytes);
}

void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}

void CpuBackend::to_host(void* host_dst, const void* src, size_t bytes) {
  std::memcpy(host_dst, src, bytes);
}

void CpuBackend::from_host(void* dst, const void* host_src, size_t bytes) {
  std::memcpy(dst, host_src, bytes);
}

void CpuBackend::synchronize() {}  // every op has finished when it returns

// The ops: each forwards to the CPU reference kernel of the same name (kernels/cpu/ops.h).
#define CONVEYOR_KERNEL_OP(ret, name, params, args) \
  ret CpuBackend::name params {                     \
    return cpu::name args;                          \
  }
#include "kernels/ops.def"

}  // namespace conveyor::kernels
