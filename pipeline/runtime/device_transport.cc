#include "pipeline/runtime/device_transport.h"

#include "common/log.h"
#include "kernels/device.h"

namespace conveyor::pipeline {

transport::StagingOptions staging_options(kernels::Backend& backend) {
  transport::StagingOptions o;
  o.to_host = [&backend](void* host, const void* device, size_t bytes) {
    backend.to_host(host, device, bytes);
  };
  o.from_host = [&backend](void* device, const void* host, size_t bytes) {
    backend.from_host(device, host, bytes);
  };
  if (kernels::pinned_memory_available()) {
    o.alloc_host = [](size_t bytes) { return kernels::alloc_pinned(bytes); };
    o.free_host = [](void* p) { kernels::free_pinned(p); };
  }
  return o;
}

std::unique_ptr<transport::Transport> transport_for_backend(std::unique_ptr<transport::Transport> t,
                                                            kernels::Backend& backend) {
  if (!t || backend.memory_type() == kernels::MemoryType::kHost) return t;
  if (t->device_memory_direct()) {
    CONVEYOR_LOG_INFO("device tensors: passed to UCX as device memory (UCX has CUDA support)");
    return t;
  }
  CONVEYOR_LOG_INFO(
      "device tensors: staged through pinned host memory (this UCX has no CUDA support)");
  return std::make_unique<transport::StagingTransport>(std::move(t), staging_options(backend));
}

}  // namespace conveyor::pipeline
