// The little CUDA the transport needs: telling device pointers apart, copies for
// staging, pinned host buffers, and device listing for `conveyor doctor`.
// Compiled with CUDA only when CONVEYOR_WITH_CUDA is defined; otherwise every function
// reports "no CUDA" (available() is false, is_device_pointer() is false).
// Thread safety: all functions may be called from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace conveyor::transport::cuda {

bool compiled();   // built with CUDA
bool available();  // built with CUDA and at least one device is usable (cached)
bool is_device_pointer(const void* p);

// Synchronous copies (staging path). Throw Error(kRuntime) on a CUDA error.
void copy_to_host(void* host, const void* device, size_t n);
void copy_to_device(void* device, const void* host, size_t n);
void* alloc_pinned(size_t n);
void free_pinned(void* p) noexcept;

struct DeviceInfo {
  int index = 0;
  std::string name;
  std::string pci_bus_id;
  size_t memory_bytes = 0;
};
// Devices, or empty with `why_none` saying why (not compiled, no driver, no device).
std::vector<DeviceInfo> devices(std::string* why_none);

}  // namespace conveyor::transport::cuda
