// CUDA and cuBLAS status codes turned into conveyor::Error (kRuntime) at the call site.
// Kept free of the project's fmt-based headers so the .cu files compile quickly under nvcc;
// throw_cuda_error is defined in cuda_backend.cc.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

namespace conveyor::cuda_kernels {

[[noreturn]] void throw_cuda_error(const char* what, const char* detail);

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw_cuda_error(what, cudaGetErrorString(status));
}

inline void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_cuda_error(what, cublasGetStatusString(status));
}

// After a kernel launch: a bad configuration shows up here, a fault at the next sync.
inline void check_launch(const char* what) {
  check(cudaGetLastError(), what);
}

}  // namespace conveyor::cuda_kernels
