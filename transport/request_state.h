// Internals behind Request and MemoryRegion (transport.h); backends fill these in.
// Not part of the pipeline's interface.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "transport/transport.h"

namespace conveyor::transport {

struct Request::State {
  bool is_send = false;
  int peer = -1;
  Tag tag;
  size_t bytes = 0;
  void* user_ptr = nullptr;  // the caller's buffer
  void* ucx = nullptr;       // the UCX request while in flight (owned by the backend)
  std::atomic<bool> done{false};
  int status = 0;          // ucs_status_t at completion
  size_t received = 0;     // receives: length of the matched message
  bool finalized = false;  // completion handled (errors thrown, staging copied back)
  // CUDA staging (device buffer without UCX CUDA support): the host bytes actually sent
  // or received, and whether they were allocated for this request alone.
  void* staging = nullptr;
  bool staging_owned = false;
};

// A registration; the backend derives from it.
class MemoryRegion::Impl {
 public:
  virtual ~Impl() = default;
  void* base = nullptr;
  size_t bytes = 0;
  bool device = false;
  // For device memory that UCX cannot reach: a pinned host mirror of the same size,
  // registered instead; data is staged through it at the same offset.
  void* staging = nullptr;
  bool contains(const void* p, size_t n) const {
    auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base);
    return a >= b && a - b <= bytes && n <= bytes - (a - b);
  }
};

}  // namespace conveyor::transport
