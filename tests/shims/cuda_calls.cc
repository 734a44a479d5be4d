// TEST SHIM (LD_PRELOAD): records every call into the CUDA runtime that can start it or open a
// context (device queries and selection, allocations, streams, pointer queries, cuBLAS set-up):
// one line with the function's name, appended to the file named by CONVEYOR_CUDA_CALLS_LOG,
// then the real function runs. Built only with CUDA. Used by
// tests/integration/pipeline/cuda_free_cpu_test.cc: a rank on --device cpu must make none.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace {

void record(const char* name) {
  const char* path = std::getenv("CONVEYOR_CUDA_CALLS_LOG");
  if (path == nullptr) return;
  const int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  char line[128];
  const size_t n = std::strlen(name);
  std::memcpy(line, name, n < 120 ? n : 120);
  line[n < 120 ? n : 120] = '\n';
  (void)!write(fd, line, (n < 120 ? n : 120) + 1);  // one write: lines from processes never mix
  close(fd);
}

template <typename F>
F real(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

// Each forwards to the next definition after recording its name.
#define CONVEYOR_FORWARD(ret, name, params, args)        \
  extern "C" ret name params {                           \
    record(#name);                                       \
    static const auto next = real<ret(*) params>(#name); \
    return next args;                                    \
  }

CONVEYOR_FORWARD(cudaError_t, cudaGetDeviceCount, (int* count), (count))
CONVEYOR_FORWARD(cudaError_t, cudaSetDevice, (int device), (device))
CONVEYOR_FORWARD(cudaError_t, cudaGetDevice, (int* device), (device))
CONVEYOR_FORWARD(cudaError_t, cudaGetDeviceProperties, (cudaDeviceProp * prop, int device),
                 (prop, device))
CONVEYOR_FORWARD(cudaError_t, cudaMemGetInfo, (size_t * free, size_t* total), (free, total))
CONVEYOR_FORWARD(cudaError_t, cudaMalloc, (void** p, size_t bytes), (p, bytes))
CONVEYOR_FORWARD(cudaError_t, cudaMallocHost, (void** p, size_t bytes), (p, bytes))
CONVEYOR_FORWARD(cudaError_t, cudaHostAlloc, (void** p, size_t bytes, unsigned flags),
                 (p, bytes, flags))
CONVEYOR_FORWARD(cudaError_t, cudaHostRegister, (void* p, size_t bytes, unsigned flags),
                 (p, bytes, flags))
CONVEYOR_FORWARD(cudaError_t, cudaPointerGetAttributes,
                 (cudaPointerAttributes * attributes, const void* p), (attributes, p))
CONVEYOR_FORWARD(cudaError_t, cudaStreamCreate, (cudaStream_t * stream), (stream))
CONVEYOR_FORWARD(cudaError_t, cudaDeviceGetPCIBusId, (char* bus, int len, int device),
                 (bus, len, device))
CONVEYOR_FORWARD(cublasStatus_t, cublasCreate_v2, (cublasHandle_t * handle), (handle))
