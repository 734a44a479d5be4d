#include "transport/cuda_support.h"

#include "common/error.h"

#ifdef CONVEYOR_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace conveyor::transport::cuda {

#ifdef CONVEYOR_WITH_CUDA

namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(ErrorKind::kRuntime,
                fmt::format("CUDA {} failed: {}", what, cudaGetErrorString(e)));
}
}  // namespace

bool compiled() {
  return true;
}

bool available() {
  static const bool yes = [] {
    int n = 0;
    bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    if (!ok) cudaGetLastError();  // clear the sticky "no device" error
    return ok;
  }();
  return yes;
}

bool is_device_pointer(const void* p) {
  if (p == nullptr || !available()) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

void copy_to_host(void* host, const void* device, size_t n) {
  check(cudaMemcpy(host, device, n, cudaMemcpyDeviceToHost), "copy to host (staging)");
}
void copy_to_device(void* device, const void* host, size_t n) {
  check(cudaMemcpy(device, host, n, cudaMemcpyHostToDevice), "copy to device (staging)");
}
void* alloc_pinned(size_t n) {
  void* p = nullptr;
  check(cudaMallocHost(&p, n == 0 ? 1 : n), "pinned host allocation");
  return p;
}
void free_pinned(void* p) noexcept {
  if (p) cudaFreeHost(p);
}

std::vector<DeviceInfo> devices(std::string* why_none) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why_none) *why_none = cudaGetErrorString(e);
    cudaGetLastError();
    return {};
  }
  std::vector<DeviceInfo> out;
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    char bus[32] = {};
    cudaDeviceGetPCIBusId(bus, sizeof bus, i);
    out.push_back({i, prop.name, bus, prop.totalGlobalMem});
  }
  if (out.empty() && why_none) *why_none = "no CUDA device";
  return out;
}

#else  // built without CUDA

bool compiled() {
  return false;
}
bool available() {
  return false;
}
bool is_device_pointer(const void*) {
  return false;
}
void copy_to_host(void*, const void*, size_t) {
  throw Error(ErrorKind::kRuntime, "conveyor was built without CUDA");
}
void copy_to_device(void*, const void*, size_t) {
  throw Error(ErrorKind::kRuntime, "conveyor was built without CUDA");
}
void* alloc_pinned(size_t) {
  throw Error(ErrorKind::kRuntime, "conveyor was built without CUDA");
}
void free_pinned(void*) noexcept {}
std::vector<DeviceInfo> devices(std::string* why_none) {
  if (why_none) *why_none = "conveyor was built without CUDA";
  return {};
}

#endif

}  // namespace conveyor::transport::cuda
