// The device seam's parts that need no CUDA (kernels/device.h): device names, the GPU choice,
// the NUMA node from sysfs; and, in builds without CUDA, what the CUDA half
// (kernels/cuda/cuda_device.cc) would otherwise answer.
#include "kernels/device.h"

#include <algorithm>
#include <cctype>
#include <fstream>

#include "common/error.h"

namespace conveyor::kernels {

const char* memory_type_name(MemoryType type) {
  return type == MemoryType::kDevice ? "device" : "host";
}

DeviceKind parse_device_kind(std::string_view name) {
  if (name == device_kind_name(DeviceKind::kCpu)) return DeviceKind::kCpu;
  if (name == device_kind_name(DeviceKind::kCuda)) return DeviceKind::kCuda;
  throw Error(ErrorKind::kUsage,
              fmt::format("--device '{}' is not known; use {} or {}", name,
                          device_kind_name(DeviceKind::kCpu), device_kind_name(DeviceKind::kCuda)));
}

const char* device_kind_name(DeviceKind kind) {
  return kind == DeviceKind::kCuda ? "cuda" : "cpu";
}

int choose_gpu(int requested, int local_rank, int device_count) {
  CONVEYOR_CHECK(device_count > 0 && local_rank >= 0,
                 "choose_gpu: {} GPU(s), local rank {}: nothing to choose from", device_count,
                 local_rank);
  if (requested < 0) return local_rank % device_count;
  if (requested >= device_count)
    throw Error(ErrorKind::kUsage,
                fmt::format("--gpu {}: this machine has {} GPU(s), numbered 0 to {}", requested,
                            device_count, device_count - 1),
                "leave --gpu out: each rank then takes its local rank's GPU");
  return requested;
}

Gpu choose_rank_gpu(int requested, int local_rank) {
  if (!cuda_compiled())
    throw Error(ErrorKind::kUsage,
                "--device cuda: this build has no CUDA backend (configured with "
                "-DCONVEYOR_CUDA=OFF or without nvcc); use --device cpu");
  GpuList list = list_gpus();
  if (list.gpus.empty())
    throw Error(ErrorKind::kUsage,
                fmt::format("--device cuda: no GPU was found ({})", list.why_none),
                "run on a machine with an NVIDIA GPU and its driver, or use --device cpu");
  const int chosen = choose_gpu(requested, local_rank, static_cast<int>(list.gpus.size()));
  return std::move(list.gpus[static_cast<size_t>(chosen)]);
}

int pci_numa_node(std::string_view pci_bus_id, const std::string& sysfs_devices) {
  // CUDA writes the domain with 4 hex digits and NVML with 8 ("00000000:3B:00.0"); sysfs
  // names the device with 4, in lower case ("0000:3b:00.0").
  std::string id(pci_bus_id);
  const size_t colon = id.find(':');
  if (colon == std::string::npos) return -1;
  if (colon > 4) {
    if (id.find_first_not_of('0') < colon - 4) return -1;  // a domain wider than 16 bits
    id.erase(0, colon - 4);
  }
  const bool plain = std::all_of(id.begin(), id.end(), [](unsigned char c) {
    return std::isxdigit(c) || c == ':' || c == '.';
  });
  if (id.empty() || !plain) return -1;  // never a path outside sysfs_devices
  std::transform(id.begin(), id.end(), id.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::ifstream file(sysfs_devices + "/" + id + "/numa_node");
  int node = -1;
  if (!(file >> node) || node < 0) return -1;
  return node;
}

#ifndef CONVEYOR_WITH_CUDA

namespace {
constexpr const char* kNoCuda =
    "this build has no CUDA backend (configured with -DCONVEYOR_CUDA=OFF or without nvcc)";
}  // namespace

bool cuda_compiled() {
  return false;
}
GpuList list_gpus() {
  return {{}, kNoCuda};
}
GpuMemory gpu_memory(int) {
  throw Error(ErrorKind::kRuntime, fmt::format("GPU memory: {}", kNoCuda));
}
bool pinned_memory_available() {
  return false;
}
void* alloc_pinned(size_t) {
  throw Error(ErrorKind::kRuntime, fmt::format("pinned host memory: {}", kNoCuda));
}
void free_pinned(void*) noexcept {}
bool is_device_pointer(const void*) {
  return false;
}

#endif

}  // namespace conveyor::kernels
