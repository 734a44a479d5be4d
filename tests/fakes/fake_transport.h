// An in-process Transport: the ranks of a job are threads of the test process, sharing one
// FakeFabric. It keeps transport.h's contract (tests/integration/transport/contract_*.cc run
// the same cases on it as on UCX), plus what the executor tests need to provoke:
//
// - isend / irecv match by (source, destination, tag) in posting order and copy the bytes at
//   the match, as UCX's rendezvous protocol reads the sender's buffer when the receive is
//   posted. A receive of the wrong size fails with "size mismatch". A tag above kMaxTag is
//   refused (Error kRuntime).
// - hold_sends: a matched send completes only when its sender waits on it (a slow network).
//   Every send's bytes are remembered at isend; if the sender's buffer differs when the
//   bytes are copied or when the send completes, the fabric records a violation (the
//   executor overwrote a buffer the transport could still read).
// - kill(rank) (or die_after_sends, or the rank's abort()): from then on every call on every
//   rank's transport throws Error(kPeerFailed) naming the dead rank with this process's host
//   and pid ("rank 1 (host h, pid p) aborted: <reason>" after abort), as the real
//   transport's failure model promises (transport.h).
// - wait honours its Deadline: Error(kRuntime, "... did not complete before the deadline").
// - cancel withdraws a pending receive; a send is not withdrawn: cancel waits (at most 5 s,
//   like UCX) until a receive has taken it.
// - The collectives meet in the fabric: all_reduce_sum adds in rank order, broadcast hands
//   out the root's bytes, barrier (and shutdown, which is one) waits for every rank.
//
// Unlike UCX, a send never completes before its receive is posted (no eager protocol), and
// destroying a FakeTransport without shutdown() is not a failure (the executor tests end
// their ranks without one).
// - It reaches host memory only (device_memory_direct() false, like Debian's UCX): memory
//   given as device memory (MemoryType::kDevice, transport.h) is a violation, and is not
//   touched.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "transport/request_state.h"
#include "transport/transport.h"

namespace conveyor::test {

class FakeFabric {
 public:
  explicit FakeFabric(int world_size);

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
  enum class CollectiveOp { kAllReduceSum, kBarrier, kBroadcast };
  struct Contribution {
    CollectiveOp op;
    int root;
    std::vector<uint8_t> bytes;
  };

  void die(int rank, const std::string& how);  // REQUIRES mu_ held
  void check_alive(int caller);                // REQUIRES mu_ held; throws kPeerFailed
  void match(Op& send, Op& recv);              // REQUIRES mu_ held
  void complete_send(State& s);                // REQUIRES mu_ held
  void verify_unchanged(const State& s, const char* when);
  // Every rank's contribution to one collective, combined once the last one arrives.
  std::vector<uint8_t> collective(int rank, Contribution mine, Deadline deadline);
  void combine();  // REQUIRES mu_ held and every contribution in
  // Records a violation and throws for device memory (REQUIRES mu_ held).
  void require_host(transport::MemoryType type, const char* what, const void* p, size_t bytes);

  std::mutex mu_;
  std::condition_variable cv_;
  int world_size_;
  bool hold_sends_ = false;
  std::vector<std::string> dead_;  // per rank: how it died, empty while alive
  std::vector<int> sends_;
  std::map<int, int> die_after_;
  std::vector<Op> unmatched_sends_, unmatched_recvs_;
  std::map<const State*, std::vector<uint8_t>> sent_bytes_;  // sends not yet completed
  std::map<const State*, bool> matched_;                     // held sends already matched
  std::vector<std::string> violations_;
  // The collective under way: what each rank brought, and each rank's result of the last
  // one (a rank may start the next collective before the others took their results).
  std::vector<std::optional<Contribution>> contributions_;
  std::vector<std::optional<std::vector<uint8_t>>> results_;
  int contributed_ = 0;
  std::string collective_error_;  // the ranks called different collectives
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
  std::vector<double> all_reduce_sum(std::span<const double> values, Deadline deadline) override;
  void barrier(Deadline deadline) override;
  void broadcast(std::vector<uint8_t>& bytes, int root, Deadline deadline) override;
  void abort(const std::string& reason) override;
  void shutdown(Deadline deadline) override { barrier(deadline); }

 private:
  void finish(transport::Request::State& s);  // REQUIRES fabric mu_ held; throws on failure
  std::string describe(const transport::Request::State& s) const;

  FakeFabric& fabric_;
  int rank_;
  transport::TagDescriber describer_ = nullptr;
};

}  // namespace conveyor::test
