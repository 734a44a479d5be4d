// StagingTransport: device tensors over a transport that cannot reach device memory.
//
// Debian's UCX is built without CUDA, so UCX can only read and write host memory. This
// decorator sits in front of such a transport (device_memory_direct() false) and moves every
// buffer its caller says is device memory (MemoryType::kDevice, transport.h) through host
// bounce buffers, with copies the caller supplies (the compute backend's to_host /
// from_host); the inner transport is only ever given host memory:
//
// - isend copies the bytes to host memory first (to_host is synchronous, so the send also
//   waits for whatever the compute stream still writes into them), then sends the copy.
// - irecv receives into host memory; the copy into the caller's buffer (from_host) runs when
//   test / wait / wait_all first sees the receive complete, so on their return the bytes are
//   where the caller asked for them.
// - register_memory of device memory registers a host mirror of the same size with the inner
//   transport; a device message inside the region uses the mirror at the same offset
//   (nothing is allocated per message). Device memory outside any region uses bounce buffers
//   from a free list, reused by size.
//
// Everything else (host buffers, zero-byte messages, which go as host memory, the
// collectives, failures) goes to the inner transport untouched, so a rank whose tensors live
// in host memory sees no difference.
//
// Contract: Transport's (transport.h), plus: a staged receive's bytes reach the caller's
// buffer only through this transport's test / wait / wait_all (a receive whose handle is
// dropped before it is waited for never copies), and cancel() leaves the buffer unchanged.
// A staged request that fails (its wait or test throws and it is done) gives its bounce buffer
// back at once, copying nothing; one that is merely late keeps it. A staged request still in
// flight when the transport is destroyed (a failed job) keeps its
// bounce buffer: the inner transport may leave UCX running until the process exits.
//
// Thread safety: as Transport. The bookkeeping has its own lock, never held while waiting or
// copying; the copy functions must be callable from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "transport/transport.h"

namespace conveyor::transport {

struct StagingOptions {
  // Synchronous copies between device memory and host memory.
  std::function<void(void* host, const void* staged, size_t bytes)> to_host;
  std::function<void(void* staged, const void* host, size_t bytes)> from_host;
  // Bounce buffers and mirrors (pinned memory for CUDA: copies at DMA speed). When unset,
  // plain host memory (64-byte aligned).
  std::function<void*(size_t bytes)> alloc_host;
  std::function<void(void* p)> free_host;
};

class StagingTransport final : public Transport {
 public:
  // REQUIRES: inner non-null; to_host and from_host set.
  StagingTransport(std::unique_ptr<Transport> inner, StagingOptions options);
  ~StagingTransport() override;

  // What went through host memory so far (tests, the start-up log).
  struct Stats {
    uint64_t staged_sends = 0, staged_receives = 0;
    uint64_t bytes_to_host = 0, bytes_from_host = 0;
    uint64_t mirrors = 0;  // registered regions with a host mirror
  };
  Stats stats() const;

  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  MemoryRegion register_memory(void* p, size_t bytes, MemoryType type) override;
  void set_tag_describer(TagDescriber describer) override { inner_->set_tag_describer(describer); }
  Request isend(int peer, Tag tag, const void* p, size_t bytes, const MemoryRegion* mr,
                MemoryType type) override;
  Request irecv(int peer, Tag tag, void* p, size_t bytes, const MemoryRegion* mr,
                MemoryType type) override;
  bool test(Request& r) override;
  void wait(Request& r, Deadline deadline) override;
  void wait_all(std::span<Request> rs, Deadline deadline) override;
  void cancel(Request& r) override;
  std::vector<double> all_reduce_sum(std::span<const double> values, Deadline deadline) override {
    return inner_->all_reduce_sum(values, deadline);
  }
  void barrier(Deadline deadline) override { inner_->barrier(deadline); }
  void broadcast(std::vector<uint8_t>& bytes, int root, Deadline deadline) override {
    inner_->broadcast(bytes, root, deadline);
  }
  void abort(const std::string& reason) override { inner_->abort(reason); }
  void shutdown(Deadline deadline) override { inner_->shutdown(deadline); }

 private:
  class Mirror;
  // Where a staged message's bytes sit on the host, and the inner region holding them.
  struct HostSide {
    void* bytes = nullptr;
    const MemoryRegion* region = nullptr;  // the mirror's inner registration, or none
    bool pooled = false;                   // a bounce buffer from the free list
  };
  // A staged request that needs work when it completes: a receive's copy back, a pooled
  // buffer's return.
  struct Pending {
    Request request;  // keeps the state (the map's key) alive
    void* user = nullptr;
    HostSide host;
    size_t bytes = 0;
    bool receive = false;
  };

  HostSide host_side(const void* p, size_t bytes, const MemoryRegion* mr);
  void* take_bounce(size_t bytes);
  void give_back_bounce(void* p, size_t bytes);
  void track(const Request& r, Pending pending);
  void complete(Request& r);  // a completed request: copy back, return the buffer
  void forget(Request& r);    // a cancelled or failed one: return the buffer, copy nothing
  void forget_region(const Mirror* m) noexcept;

  StagingOptions options_;
  std::unique_ptr<Transport> inner_;

  mutable std::mutex mu_;
  std::map<uintptr_t, const Mirror*> mirrors_;                  // by device base address
  std::unordered_map<const Request::State*, Pending> pending_;  // staged, not yet completed
  std::multimap<size_t, void*> free_bounce_;                    // by size
  std::atomic<size_t> pending_count_{0};
  Stats stats_;
};

}  // namespace conveyor::transport
