// A compute backend for testing the pipeline's device-memory paths on a machine without a
// GPU: the CPU backend's kernels (so the same bits as `--device cpu`), memory_type() kDevice,
// and memory the host cannot touch outside the backend's own calls. Every allocation is its
// own mapping, kept PROT_NONE except while one of this backend's ops or copies runs, so a
// host access to "device" memory anywhere else (a loader writing tokens into a slot, a
// transport reading a tensor, a host loop adding gradients) is a segmentation fault that
// fails the test run.
//
// Limits: while one thread is inside an op every mapping is open, so another thread's stray
// access at that moment goes unnoticed (a miss, never a false alarm).
// Thread safety: as Backend (ops from several threads; alloc and the copies thread-safe).
#pragma once

#include <cstddef>
#include <map>
#include <mutex>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"

namespace conveyor::test {

class FakeDeviceBackend final : public kernels::Backend {
 public:
  FakeDeviceBackend();
  ~FakeDeviceBackend() override;

  const char* name() const override { return "fake-device"; }
  kernels::MemoryType memory_type() const override { return kernels::MemoryType::kDevice; }
  size_t copies_from_host() const;  // from_host calls so far

  void zero(void* p, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void to_host(void* host_dst, const void* src, size_t bytes) override;
  void from_host(void* dst, const void* host_src, size_t bytes) override;
  void synchronize() override {}
  // Every op of kernels/ops.def: the CPU backend's, with the memory open while it runs.
#define CONVEYOR_KERNEL_OP(ret, name, params, args) ret name params override;
#include "kernels/ops.def"

 protected:
  void* allocate_bytes(size_t bytes) const override;
  void free_bytes(void* p) const noexcept override;

 private:
  class Open;                        // the memory is accessible while one lives
  void set_access(bool open) const;  // REQUIRES mu_ held

  kernels::CpuBackend cpu_;
  mutable std::mutex mu_;
  mutable std::map<const char*, size_t> mappings_;  // base -> mapped bytes
  mutable int open_ = 0;
  mutable size_t from_host_calls_ = 0;
};

}  // namespace conveyor::test
