// The only interface the pipeline sees: point-to-point bytes between ranks, registered
// memory, waits with deadlines, and a few small collectives.
//
// Model
//   One Transport per process (rank). Transport::create() rendezvouses with every other
//   rank through the bootstrap service (rank 0 serves TCP at MASTER_ADDR:MASTER_PORT),
//   exchanges UCX worker addresses and creates every endpoint before it returns.
//
// Memory types
//   Every buffer the transport is given is host memory or (CUDA) device memory, and the
//   caller says which (MemoryType), as NCCL's regMr is told NCCL_PTR_HOST or NCCL_PTR_CUDA:
//   the transport never asks the driver what a pointer is. register_memory takes the
//   region's type; isend / irecv take the type of their bytes (host unless the caller says
//   otherwise), and a region passed with them, or found by address, must have been
//   registered with that same type (else Error(kRuntime)). A transport whose
//   device_memory_direct() is false refuses device memory (Error(kRuntime)); a caller with
//   device tensors puts a StagingTransport (staging_transport.h) in front of it, and
//   pipeline/runtime/device_transport.h picks that for training. The caller is also
//   responsible for device memory being ready: its producer (a compute stream) has finished
//   writing before a send, and nothing reads a receive's buffer before it completes.
//
// Point-to-point (isend / irecv / test / wait / cancel)
//   Tagged, non-blocking, zero-copy for host memory: conveyor hands the caller's pointer
//   to UCX and never copies the payload. A receive must name the exact peer, tag and
//   size of the matching send; a size mismatch completes the receive with an error.
//   Messages between the same pair with the same tag are matched in posting order.
//   Large messages use UCX's rendezvous protocol: a send's bytes move only once the peer
//   has posted the matching receive. So post receives early and wait on {sends, receives}
//   together (wait_all).
//
// Progress model
//   UCX progresses inside this rank's transport calls (test, wait, wait_all, isend, irecv,
//   cancel) and, in a multi-rank job, on the transport's own progress thread while no caller is
//   inside one (transport/progress_thread.h; Options::progress_thread): a message posted before
//   a compute pass moves during it. wait() busy-polls the UCX worker until the request
//   completes, the deadline passes, or a peer is declared dead. Only callers' waits see
//   deadlines and failures; the progress thread never throws.
//
// Failure model
//   The bootstrap service keeps a TCP connection to every rank. When a rank dies (its
//   process exits: at once), goes silent (no heartbeat for heartbeat_timeout_s) or calls
//   abort(), every other rank learns it; from then on every call on this Transport throws
//   Error(kPeerFailed, "rank N (host H, pid P) ...") (exit code 3), and outstanding
//   receives are cancelled. A deadline passing throws Error(kRuntime). After a failure,
//   destruction does not tear UCX down (see the destructor).
//
// Collectives (all_reduce_sum, barrier, broadcast)
//   Run over the bootstrap TCP connections, not UCX: rank 0's service gathers every
//   contribution, combines them in rank order and sends the same bytes to every rank.
//   They are for a few doubles or a few KiB, not for tensors. Every rank must call the
//   same collectives in the same order.
//
// Thread safety
//   Every method may be called from any thread. Point-to-point calls serialize on one
//   internal lock (the UCX worker is single-threaded); collectives use a separate lock and
//   never touch the UCX worker, so a background thread (e.g. checkpointing) may run a
//   barrier while the main thread does point-to-point. Two threads must not issue
//   collectives concurrently (the order would differ between ranks).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/clock.h"
#include "kernels/device.h"
#include "transport/bootstrap/options.h"

namespace conveyor::transport {

// Host or device memory (kernels/device.h, the device seam): see "Memory types" above.
using kernels::MemoryType;

// What a message is, as the caller encodes it: an opaque value below 2^kTagBits, matched
// exactly (the transport adds the source rank; see tag.h). The pipeline's codec is
// pipeline/runtime/message_tag.h; the transport never looks inside.
using Tag = uint64_t;
inline constexpr int kTagBits = 48;
inline constexpr Tag kMaxTag = (Tag{1} << kTagBits) - 1;

// Turns a caller's tag into words for error messages ("activation of micro-batch 3 ...").
using TagDescriber = std::string (*)(Tag tag);

// A buffer registered with the transport (ucp_mem_map). Move-only; deregisters on
// destruction. REQUIRES: no operation using it is still in flight when it is destroyed,
// and it is destroyed before its Transport.
class MemoryRegion {
 public:
  class Impl;
  MemoryRegion();
  explicit MemoryRegion(std::unique_ptr<Impl> impl);
  MemoryRegion(MemoryRegion&&) noexcept;
  MemoryRegion& operator=(MemoryRegion&&) noexcept;
  ~MemoryRegion();
  bool valid() const { return impl_ != nullptr; }
  void* data() const;
  size_t size() const;
  MemoryType memory_type() const;  // as registered
  Impl* impl() const { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

// One in-flight send or receive. A cheap movable handle; the operation keeps running if
// the handle is dropped, so the buffer must stay valid until the operation completes or
// the Transport is destroyed.
class Request {
 public:
  struct State;
  Request() = default;
  explicit Request(std::shared_ptr<State> s) : state_(std::move(s)) {}
  bool valid() const { return state_ != nullptr; }
  bool done() const;  // completed (successfully or not) without progressing UCX
  // When the transport saw the operation complete (steady clock): for a trace of when bytes
  // moved, which may be well before the caller's wait returned. REQUIRES done().
  std::chrono::steady_clock::time_point completed_at() const;
  State* state() const { return state_.get(); }

 private:
  std::shared_ptr<State> state_;
};

class Transport {
 public:
  // Blocks until every rank has joined the rendezvous and every endpoint exists, or
  // options.connect_timeout_s passes (Error kRuntime). A token, fingerprint or world-size
  // mismatch throws Error(kUsage); MASTER_PORT in use on rank 0 throws Error(kUsage); so does,
  // at once, a job_token longer than wire::kMaxJobTokenBytes (wire.h).
  static std::unique_ptr<Transport> create(const Options& options);

  // Without a prior shutdown(), destruction tells the others this rank is failing
  // (like abort(); not when the job has already failed) and does not wait: the UCX
  // context, worker and whatever requests UCX still holds are left for the process exit,
  // because UCX cannot release them while a peer is gone (docs/TRANSPORT.md, "After a
  // failure"; with ucx_peer_error_mode they are force-closed and destroyed).
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // Registers [p, p+bytes), which is `type` memory (see "Memory types"), once. Operations on
  // memory inside a registered region use its handle; passing `mr` skips the lookup.
  // Non-blocking.
  virtual MemoryRegion register_memory(void* p, size_t bytes, MemoryType type) = 0;

  // Whether point-to-point calls and register_memory take CUDA device memory as it is, with
  // no copy through host memory (UCX built with CUDA support: cuda_ipc, GPUDirect RDMA).
  // When false, device memory is refused, and a caller that moves device tensors wraps the
  // transport in a StagingTransport (staging_transport.h), which hands this one host memory
  // only.
  virtual bool device_memory_direct() const { return false; }

  // Error messages about a request name its peer, its size and describer(tag); without a
  // describer, the tag in hex. Set before the first isend/irecv.
  virtual void set_tag_describer(TagDescriber describer) = 0;

  // Non-blocking. `p` must stay valid (and, for a send, unmodified) until the request
  // completes. peer != rank(); tag <= kMaxTag (else Error(kRuntime)). `mr`, if given, must
  // contain [p, p+bytes). `type`: the memory [p, p+bytes) is in; a region must have the same.
  virtual Request isend(int peer, Tag tag, const void* p, size_t bytes,
                        const MemoryRegion* mr = nullptr, MemoryType type = MemoryType::kHost) = 0;
  virtual Request irecv(int peer, Tag tag, void* p, size_t bytes, const MemoryRegion* mr = nullptr,
                        MemoryType type = MemoryType::kHost) = 0;

  // Non-blocking: progresses UCX once and reports whether `r` completed. Throws if the
  // request failed (size mismatch, UCX error) or a peer died.
  virtual bool test(Request& r) = 0;
  // Blocks (busy-polling) until completion. Throws Error(kRuntime) at the deadline,
  // Error(kPeerFailed) when a peer dies.
  virtual void wait(Request& r, Deadline deadline) = 0;
  virtual void wait_all(std::span<Request> rs, Deadline deadline) = 0;
  // Withdraws a pending receive: returns once the transport has let go of its buffer, which
  // then holds either nothing new or, when the message won the race, all of it. A later wait
  // or test on it throws Error(kRuntime, "... was cancelled"), or returns normally when the
  // message had arrived. A send cannot be withdrawn once posted: cancel waits (up to 5 s) until
  // the transport no longer reads its buffer and returns; if the send is still in flight then,
  // it throws Error(kRuntime) and the buffer stays in use until the Transport is destroyed. A
  // completed or empty request is left as it is.
  virtual void cancel(Request& r) = 0;

  // Collectives (blocking, over the bootstrap connection; see top of file).
  // Sums element-wise in rank order (((v0 + v1) + v2) ...); identical bits on every rank.
  virtual std::vector<double> all_reduce_sum(std::span<const double> values, Deadline deadline) = 0;
  virtual void barrier(Deadline deadline) = 0;
  // On return every rank's `bytes` holds root's bytes.
  virtual void broadcast(std::vector<uint8_t>& bytes, int root, Deadline deadline) = 0;

  // Tells the bootstrap service this rank is failing: every other rank then fails with
  // Error(kPeerFailed, "rank <us> (host H, pid P) aborted: <reason>"). Non-blocking, never
  // throws.
  virtual void abort(const std::string& reason) = 0;

  // Clean end of the job: a barrier (no rank still sends to us), endpoints flushed and
  // closed, goodbye to the service. Rank 0 keeps the service up until every rank has
  // said goodbye. Blocks until then or the deadline.
  virtual void shutdown(Deadline deadline) = 0;
};

}  // namespace conveyor::transport
