#include "kernels/backend.h"

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"
#ifdef CONVEYOR_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace conveyor::kernels {

const char* memory_type_name(MemoryType type) {
  return type == MemoryType::kDevice ? "device" : "host";
}

std::string backend_names() {
#ifdef CONVEYOR_WITH_CUDA
  return "cpu, cuda";
#else
  return "cpu";
#endif
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  if (options.device == "cpu") return std::make_unique<CpuBackend>(options.threads);
  if (options.device == "cuda") {
#ifdef CONVEYOR_WITH_CUDA
    return make_cuda_backend(options.gpu);
#else
    throw Error(ErrorKind::kUsage,
                "--device cuda: this build has no CUDA backend (configured with "
                "-DCONVEYOR_CUDA=OFF or without nvcc); use --device cpu");
#endif
  }
  throw Error(ErrorKind::kUsage, fmt::format("--device {}: unknown device; this build offers: {}",
                                             options.device, backend_names()));
}

}  // namespace conveyor::kernels
