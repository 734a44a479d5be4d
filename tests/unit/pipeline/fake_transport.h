// An in-process Transport for executor tests: the ranks of a job are threads of the test
// process, sharing one FakeFabric.
//
// - isend / irecv match by (source, destination, tag) in posting order and copy the bytes at
//   the match, as UCX's rendezvous protocol reads the sender's buffer when the receive is
//   posted. A receive of the wrong size fails with "size mismatch".
// - hold_sends: a matched send completes only when its sender waits on it (a slow network).
//   Every send's bytes are remembered at isend; if the sender's buffer differs when the
//   bytes are copied or when the send completes, the fabric records a violation (the
//   executor overwrote a buffer the transport could still read).
// - kill(rank) (or die_after_sends): from then on every call on every rank's transport
//   throws Error(kPeerFailed) naming the dead rank, as the real transport's failure model
//   promises (transport.h).
// - wait honours its Deadline: Error(kRuntime, "... did not complete before the deadline").
// - It reaches host memory only (device_memory_direct() false, like Debian's UCX): memory
//   given as device memory (MemoryType::kDevice, transport.h) is a violation, and is not
//   touched.
// Collectives are not used by the executor and throw.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "transport/request_state.h"
#include "transport/transport.h"

namespace conveyor::test {

class FakeFabric {
 public:
  explicit FakeFabric(int world_size)
      : world_size_(world_size), dead_(world_size, false), sends_(world_size, 0) {}

  int world_size() const { return world_size_; }
  void set_hold_sends(bool hold) { hold_sends_ = hold; }
  // The rank dies when it posts its (n+1)-th send.
  void die_after_sends(int rank, int n) { die_after_[rank] = n; }
  void kill(int rank);
  std::vector<std::string> violations();

 private:
  friend class FakeTransport;
  using State = transport::Request::State;
  struct Op {
    std::shared_ptr<State> state;
    int src, dst;
    transport::Tag tag;
  };

  void check_alive(int caller);    // REQUIRES mu_ held; throws kPeerFailed
  void match(Op& send, Op& recv);  // REQUIRES mu_ held
  void complete_send(State& s);    // REQUIRES mu_ held
  void verify_unchanged(const State& s, const char* when);
  // Records a violation and throws for device memory (REQUIRES mu_ held).
  void require_host(transport::MemoryType type, const char* what, const void* p, size_t bytes);

  std::mutex mu_;
  std::condition_variable cv_;
  int world_size_;
  bool hold_sends_ = false;
  std::vector<bool> dead_;
  std::vector<int> sends_;
  std::map<int, int> die_after_;
  std::vector<Op> unmatched_sends_, unmatched_recvs_;
  std::map<const State*, std::vector<uint8_t>> sent_bytes_;  // sends not yet completed
  std::map<const State*, bool> matched_;                     // held sends already matched
  std::vector<std::string> violations_;
};

class FakeTransport final : public transport::Transport {
 public:
  FakeTransport(FakeFabric& fabric, int rank) : fabric_(fabric), rank_(rank) {}

  int rank() const override { return rank_; }
  int world_size() const override { return fabric_.world_size(); }
  transport::MemoryRegion register_memory(void* p, size_t bytes,
                                          transport::MemoryType type) override;
  void set_tag_describer(transport::TagDescriber describer) override { describer_ = describer; }
  transport::Request isend(int peer, transport::Tag tag, const void* p, size_t bytes,
                           const transport::MemoryRegion* mr, transport::MemoryType type) override;
  transport::Request irecv(int peer, transport::Tag tag, void* p, size_t bytes,
                           const transport::MemoryRegion* mr, transport::MemoryType type) override;
  bool test(transport::Request& r) override;
  void wait(transport::Request& r, Deadline deadline) override;
  void wait_all(std::span<transport::Request> rs, Deadline deadline) override;
  void cancel(transport::Request& r) override;
  std::vector<double> all_reduce_sum(std::span<const double>, Deadline) override;
  void barrier(Deadline) override;
  void broadcast(std::vector<uint8_t>&, int, Deadline) override;
  void abort(const std::string&) override { fabric_.kill(rank_); }
  void shutdown(Deadline) override {}

 private:
  void finish(transport::Request::State& s);  // REQUIRES fabric mu_ held; throws on failure

  FakeFabric& fabric_;
  int rank_;
  transport::TagDescriber describer_ = nullptr;
};

}  // namespace conveyor::test
