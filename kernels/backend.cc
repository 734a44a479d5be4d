#include "kernels/backend.h"

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"

namespace conveyor::kernels {

const char* memory_type_name(MemoryType type) {
  return type == MemoryType::kDevice ? "device" : "host";
}

std::string backend_names() {
  return "cpu";
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  if (options.device == "cpu") return std::make_unique<CpuBackend>(options.threads);
  if (options.device == "cuda") {
    throw Error(ErrorKind::kUsage,
                "--device cuda: this build has no CUDA training backend yet; use --device cpu");
  }
  throw Error(ErrorKind::kUsage, fmt::format("--device {}: unknown device; this build offers: {}",
                                             options.device, backend_names()));
}

}  // namespace conveyor::kernels
