// The UCX backend of Transport (transport.h): one UCP context and one worker per
// process, one endpoint per peer created at start-up from the worker addresses the
// bootstrap exchanged, tagged non-blocking operations (ucp_tag_send_nbx /
// ucp_tag_recv_nbx) on the caller's memory.
//
// Registration: register_memory() maps a buffer once with ucp_mem_map, and every
// operation on memory inside it passes the handle (UCP_OP_ATTR_FIELD_MEMH, present
// since UCX 1.13; in 1.13 it is honoured by the default "proto v1" protocols for
// contiguous buffers) plus a memory-type hint, so UCX skips its registration cache and
// memory-type detection.
//
// Device memory (the caller says which memory is, transport.h): passed to UCX as it is, with
// the CUDA memory type, when ucp_context_query reports CUDA memory support
// (device_memory_direct()); otherwise refused with Error(kRuntime): StagingTransport
// (staging_transport.h) is the one way device memory crosses a UCX without CUDA.
//
// Locking: one lock (p2p_mu_, a SpinLock) around the worker (UCS_THREAD_MODE_SERIALIZED). A wait
// holds it for a short batch of polls while it spins (a lock round trip costs as much as
// a poll) and releases it between batches, so two threads can wait on different requests.
// The progress thread (progress_thread.h) takes the same lock, only while no caller is inside
// a point-to-point call.
#pragma once

#include <ucp/api/ucp.h>

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "transport/bootstrap/bootstrap_client.h"
#include "transport/bootstrap/rendezvous_server.h"
#include "transport/progress_thread.h"
#include "transport/request_state.h"
#include "transport/spin_lock.h"
#include "transport/transport.h"

namespace conveyor::transport {

class UcxTransport final : public Transport {
 public:
  explicit UcxTransport(const Options& options);
  ~UcxTransport() override;

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }

  MemoryRegion register_memory(void* p, size_t bytes, MemoryType type) override;
  bool device_memory_direct() const override { return ucx_cuda_; }
  void set_tag_describer(TagDescriber describer) override { describer_ = describer; }
  Request isend(int peer, Tag tag, const void* p, size_t bytes, const MemoryRegion* mr,
                MemoryType type) override;
  Request irecv(int peer, Tag tag, void* p, size_t bytes, const MemoryRegion* mr,
                MemoryType type) override;
  bool test(Request& r) override;
  void wait(Request& r, Deadline deadline) override;
  void wait_all(std::span<Request> rs, Deadline deadline) override;
  void cancel(Request& r) override;
  std::vector<double> all_reduce_sum(std::span<const double> values, Deadline deadline) override;
  void barrier(Deadline deadline) override;
  void broadcast(std::vector<uint8_t>& bytes, int root, Deadline deadline) override;
  void abort(const std::string& reason) override;
  void shutdown(Deadline deadline) override;

  // Whether UCX here can send CUDA memory directly.
  bool ucx_has_cuda() const { return ucx_cuda_; }

 private:
  class Region;
  friend class Region;

  // These three REQUIRE p2p_mu_ held.
  Request post(bool is_send, int peer, uint64_t ucx_tag, Tag tag, void* p, size_t bytes,
               const MemoryRegion* mr, MemoryType type);
  void check_peers();  // throws (after cancelling receives) when the job failed
  // Closes every endpoint (ucp_ep_close_nbx with `flags`) and progresses until they are
  // closed or the deadline passes; returns whether all closed.
  bool close_endpoints(uint32_t flags, Deadline deadline);
  void cancel_receives();  // cancels every outstanding receive
  // Throws if the request failed. The lock is not needed for a request that was never linked
  // (completed when posted): then only `s` is touched.
  void finalize(Request::State& s);
  // Throws Error(kRuntime) for device memory when this UCX has no CUDA support.
  void require_reachable(MemoryType type, const void* p, size_t bytes, const char* what) const;
  void progress();
  // Both take the number of polls since UCX last made progress. polls_per_lock: how many
  // polls a wait makes per lock acquisition; back_off: what it does between batches
  // (spin, then yield, then sleep).
  static unsigned polls_per_lock(unsigned idle_polls);
  static void back_off(unsigned idle_polls);
  const Region* find_region(const void* p, size_t n, const MemoryRegion* mr) const;
  void deregister(Region* r) noexcept;
  [[noreturn]] void throw_timeout(const Request::State& s, const char* what) const;
  // "receive of 4096 bytes from rank 1 (activation of micro-batch 3, ...)".
  std::string describe_op(const Request::State& s) const;
  void teardown() noexcept;

  // Stops the progress thread (before anything else touches the worker alone). Idempotent.
  void stop_progress_thread() noexcept;

  Options options_;
  std::unique_ptr<RendezvousServer> server_;  // rank 0 only
  std::unique_ptr<BootstrapClient> boot_;     // null for a single-rank job
  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  std::vector<ucp_ep_h> eps_;   // by rank; null for ourselves
  std::vector<int> ep_status_;  // UCS_OK, or the error UCX reported
  bool ucx_cuda_ = false;
  TagDescriber describer_ = nullptr;

  mutable SpinLock p2p_mu_;
  InFlightList in_flight_;
  std::shared_ptr<Request::State> spare_state_;  // the next post()'s state, allocated ahead
  std::map<uintptr_t, Region*> regions_;         // by base address
  std::unique_ptr<ProgressThread> progress_;     // multi-rank jobs, unless switched off
  bool receives_cancelled_ = false;
  bool shut_down_ = false;
  bool aborted_ = false;
};

}  // namespace conveyor::transport
