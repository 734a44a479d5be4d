// The CPU backend: the reference. Host memory (huge pages for large buffers, see
// common/host_buffer.h) and the kernels of kernels/cpu/ops.h, one call each.
#pragma once

#include "kernels/backend.h"

namespace conveyor::kernels {

class CpuBackend final : public Backend {
 public:
  // threads > 0 sets the kernels' thread count (process-wide, see cpu::set_num_threads).
  explicit CpuBackend(int threads = 0);

  const char* name() const override { return "cpu"; }
  std::string describe() const override;
  MemoryType memory_type() const override { return MemoryType::kHost; }

  void zero(void* p, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void to_host(void* host_dst, const void* src, size_t bytes) override;
  void from_host(void* dst, const void* host_src, size_t bytes) override;
  void synchronize() override;
  // Every op of kernels/ops.def, each a call of the cpu:: kernel of the same name.
#define CONVEYOR_KERNEL_OP(ret, name, params, args) ret name params override;
#include "kernels/ops.def"

 protected:
  void* allocate_bytes(size_t bytes) const override;
  void free_bytes(void* p) const noexcept override;
};

}  // namespace conveyor::kernels
