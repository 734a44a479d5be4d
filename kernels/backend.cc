#include "kernels/backend.h"

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"
#ifdef CONVEYOR_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace conveyor::kernels {

std::string backend_names() {
#ifdef CONVEYOR_WITH_CUDA
  return "cpu, cuda";
#else
  return "cpu";
#endif
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  if (options.device == DeviceKind::kCpu) return std::make_unique<CpuBackend>(options.threads);
#ifdef CONVEYOR_WITH_CUDA
  return make_cuda_backend(options.gpu);
#else
  // Throws Error(kUsage): this build has no CUDA backend (the device seam's one message).
  choose_rank_gpu(options.gpu, 0);
  throw Error(ErrorKind::kRuntime, "a build without CUDA found a GPU to run on");
#endif
}

}  // namespace conveyor::kernels
