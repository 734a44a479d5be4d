// The CUDA half of the device seam (kernels/device.h): the GPU list, memory, pinned host
// memory and the pointer check, through the CUDA runtime. Compiled only with
// CONVEYOR_WITH_CUDA (kernels/device.cc answers without it).
#include <cuda_runtime_api.h>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/device.h"

namespace conveyor::kernels {

namespace ck = conveyor::cuda_kernels;

bool cuda_compiled() {
  return true;
}

GpuList list_gpus() {
  GpuList out;
  int n = 0;
  const cudaError_t status = cudaGetDeviceCount(&n);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    out.why_none = fmt::format("cudaGetDeviceCount: {}", cudaGetErrorString(status));
    return out;
  }
  if (n == 0) {
    out.why_none = "cudaGetDeviceCount reports 0 devices";
    return out;
  }
  // One entry per ordinal, so gpus[i].index == i even when a device cannot be queried.
  for (int i = 0; i < n; ++i) {
    Gpu gpu;
    gpu.index = i;
    cudaDeviceProp prop{};
    const cudaError_t e = cudaGetDeviceProperties(&prop, i);
    if (e == cudaSuccess) {
      gpu.name = prop.name;
      gpu.memory_bytes = prop.totalGlobalMem;
    } else {
      cudaGetLastError();
      gpu.name = fmt::format("(cudaGetDeviceProperties: {})", cudaGetErrorString(e));
    }
    char bus[32] = {};
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, i) == cudaSuccess) {
      gpu.pci_bus_id = bus;
      gpu.numa_node = pci_numa_node(gpu.pci_bus_id);
    } else {
      cudaGetLastError();
    }
    out.gpus.push_back(std::move(gpu));
  }
  return out;
}

GpuMemory gpu_memory(int gpu) {
  // cudaMemGetInfo answers for the calling thread's current device; restore it after.
  int previous = 0;
  ck::check(cudaGetDevice(&previous), "cudaGetDevice");
  ck::check(cudaSetDevice(gpu), "cudaSetDevice");
  GpuMemory m;
  const cudaError_t e = cudaMemGetInfo(&m.free_bytes, &m.total_bytes);
  cudaSetDevice(previous);
  ck::check(e, "cudaMemGetInfo");
  return m;
}

bool pinned_memory_available() {
  static const bool yes = [] {
    int n = 0;
    const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    if (!ok) cudaGetLastError();  // clear the sticky "no device" error
    return ok;
  }();
  return yes;
}

void* alloc_pinned(size_t bytes) {
  void* p = nullptr;
  ck::check(cudaMallocHost(&p, bytes == 0 ? 1 : bytes), "cudaMallocHost (pinned host memory)");
  return p;
}

void free_pinned(void* p) noexcept {
  if (p) cudaFreeHost(p);
}

bool is_device_pointer(const void* p) {
  if (p == nullptr || !pinned_memory_available()) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

}  // namespace conveyor::kernels
