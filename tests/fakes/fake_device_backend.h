// A compute backend for testing the pipeline's device-memory paths on a machine without a
// GPU: the CPU backend's kernels (so the same bits as `--device cpu`), memory_type() kDevice,
// and memory the host cannot touch outside the backend's own calls. Every allocation is its
// own mapping, kept PROT_NONE except while one of this backend's ops or copies runs, so a
// host access to "device" memory anywhere else (a loader writing tokens into a slot, a
// transport reading a tensor, a host loop adding gradients) is a segmentation fault that
// fails the test run.
//
// It also keeps the books a GPU would make observable:
// - host_waits(): the calls at which the CUDA backend makes the host wait for its stream
//   (kernels/cuda/cuda_backend.h: synchronize, to_host, from_host, sum, sum_of_squares,
//   sums_of_squares), so a test can count the synchronisations of a training step;
// - queued_work_touches(p, n): whether an op or copy issued since the last such wait was
//   given a pointer into [p, p + n), i.e. whether a GPU might still be running a kernel on
//   that memory (a device-direct receive must not land there yet);
// - unbound_calls(): ops and copies from threads that neither made the backend nor called
//   bind_thread(), which on a GPU would run CUDA calls against another device.
//
// Limits: while one thread is inside an op every mapping is open, so another thread's stray
// access at that moment goes unnoticed (a miss, never a false alarm).
// Thread safety: as Backend (ops from several threads; alloc and the copies thread-safe).
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

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
  size_t host_waits() const;        // see the top of the file
  bool queued_work_touches(const void* p, size_t bytes) const;
  size_t unbound_calls() const;
  std::string first_unbound_call() const;  // the op's name, or empty
  // Copies made by another engine than the stream (a CUDA-aware NIC's DMA): outside the books,
  // so a test can move bytes the way a device-direct transport would.
  void dma_read(void* host_dst, const void* src, size_t bytes);
  void dma_write(void* dst, const void* host_src, size_t bytes);

  void zero(void* p, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void to_host(void* host_dst, const void* src, size_t bytes) override;
  void from_host(void* dst, const void* host_src, size_t bytes) override;
  void synchronize() override;
  void bind_thread() override;
  // Every op of kernels/ops.def: the CPU backend's, with the memory open while it runs.
#define CONVEYOR_KERNEL_OP(ret, name, params, args) ret name params override;
#include "kernels/ops.def"

 protected:
  void* allocate_bytes(size_t bytes) const override;
  void free_bytes(void* p) const noexcept override;

 private:
  class Open;                        // the memory is accessible while one lives
  void set_access(bool open) const;  // REQUIRES mu_ held
  // The books above, for a call named `op` given `pointers` (each argument that is one);
  // `waits`: the CUDA backend waits for its stream in this call (after queueing it).
  template <typename... Args>
  void account(const char* op, bool waits, const Args&... args) {
    std::vector<const void*> pointers;
    (
        [&] {
          if constexpr (std::is_pointer_v<Args>) pointers.push_back(args);
        }(),
        ...);
    account_pointers(op, waits, pointers);
  }
  void account_pointers(const char* op, bool waits, const std::vector<const void*>& pointers);

  kernels::CpuBackend cpu_;
  mutable std::mutex mu_;
  mutable std::map<const char*, size_t> mappings_;  // base -> mapped bytes
  mutable int open_ = 0;
  mutable size_t from_host_calls_ = 0;
  size_t host_waits_ = 0;
  std::vector<const void*> queued_;  // pointers given to calls since the last wait
  std::set<std::thread::id> bound_;
  size_t unbound_calls_ = 0;
  std::string first_unbound_;
};

}  // namespace conveyor::test
