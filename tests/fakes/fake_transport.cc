#include "tests/fakes/fake_transport.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "common/error.h"
#include "common/net.h"

namespace conveyor::test {

using transport::Request;
using transport::Tag;

namespace {

// How long cancel() waits for a receive to take a send, as UcxTransport::cancel does.
constexpr double kCancelSendSeconds = 5.0;
// The status of a receive withdrawn by cancel() (a size mismatch is -1).
constexpr int kCancelled = -2;

std::string deadline_error(int rank, const std::string& what) {
  return fmt::format("rank {}: {} did not complete before the deadline", rank, what);
}

}  // namespace

FakeFabric::FakeFabric(int world_size)
    : world_size_(world_size),
      dead_(world_size),
      sends_(world_size, 0),
      contributions_(world_size),
      results_(world_size) {}

void FakeFabric::die(int rank, const std::string& how) {
  // The ranks are threads of this process: its host and pid are theirs.
  if (dead_[rank].empty())
    dead_[rank] = fmt::format("rank {} (host {}, pid {}) {}", rank, host_name(), ::getpid(), how);
  cv_.notify_all();
}

void FakeFabric::kill(int rank) {
  std::lock_guard lock(mu_);
  die(rank, "died");
}

std::vector<std::string> FakeFabric::violations() {
  std::lock_guard lock(mu_);
  return violations_;
}

void FakeFabric::check_alive(int caller) {
  for (int r = 0; r < world_size_; ++r) {
    if (!dead_[r].empty()) {
      throw Error(ErrorKind::kPeerFailed,
                  fmt::format("{}; rank {} cannot go on", dead_[r], caller));
    }
  }
}

void FakeFabric::verify_unchanged(const State& s, const char* when) {
  const auto& sent = sent_bytes_.at(&s);
  if (!sent.empty() && std::memcmp(sent.data(), s.user_ptr, sent.size()) != 0) {
    violations_.push_back(
        fmt::format("send to rank {} (tag {:#x}): its buffer was "
                    "overwritten before the send {}",
                    s.peer, s.tag, when));
  }
}

void FakeFabric::match(Op& send, Op& recv) {
  State& s = *send.state;
  State& r = *recv.state;
  verify_unchanged(s, "was read");
  if (s.bytes != r.bytes) {
    r.status = -1;  // size mismatch
    r.received = s.bytes;
  } else {
    if (s.bytes > 0) std::memcpy(r.user_ptr, s.user_ptr, s.bytes);
    r.received = s.bytes;
  }
  mark_done(r);
  if (hold_sends_) {
    matched_[&s] = true;  // completes when its sender waits on it
  } else {
    complete_send(s);
  }
  cv_.notify_all();
}

void FakeFabric::complete_send(State& s) {
  verify_unchanged(s, "completed");
  sent_bytes_.erase(&s);
  matched_.erase(&s);
  mark_done(s);
}

std::vector<uint8_t> FakeFabric::collective(int rank, Contribution mine, Deadline deadline) {
  std::unique_lock lock(mu_);
  check_alive(rank);
  CONVEYOR_CHECK(!contributions_[rank] && !results_[rank],
                 "rank {}: two collectives at once (two threads must not issue collectives "
                 "concurrently)",
                 rank);
  contributions_[rank] = std::move(mine);
  if (++contributed_ == world_size_) combine();
  while (!results_[rank]) {
    check_alive(rank);
    if (cv_.wait_until(lock, deadline.at()) == std::cv_status::timeout && !results_[rank]) {
      check_alive(rank);
      contributions_[rank].reset();  // withdrawn: the others keep waiting for it
      --contributed_;
      throw Error(ErrorKind::kRuntime, deadline_error(rank, "a collective"));
    }
  }
  std::vector<uint8_t> result = std::move(*results_[rank]);
  results_[rank].reset();
  if (!collective_error_.empty()) throw Error(ErrorKind::kRuntime, collective_error_);
  return result;
}

void FakeFabric::combine() {
  const Contribution& first = *contributions_[0];
  std::vector<uint8_t> result;
  collective_error_.clear();
  for (int r = 1; r < world_size_; ++r) {
    const Contribution& c = *contributions_[r];
    if (c.op != first.op || c.root != first.root ||
        (c.op == CollectiveOp::kAllReduceSum && c.bytes.size() != first.bytes.size()))
      collective_error_ = fmt::format(
          "rank {} called another collective than rank 0 (every rank must call the same "
          "collectives in the same order)",
          r);
  }
  if (collective_error_.empty() && first.op == CollectiveOp::kAllReduceSum) {
    // In rank order: (((v0 + v1) + v2) ...), the same bits for every rank.
    std::vector<double> sum(first.bytes.size() / sizeof(double));
    if (!sum.empty()) std::memcpy(sum.data(), first.bytes.data(), first.bytes.size());
    for (int r = 1; r < world_size_; ++r) {
      for (size_t i = 0; i < sum.size(); ++i) {
        double v;
        std::memcpy(&v, contributions_[r]->bytes.data() + i * sizeof(double), sizeof v);
        sum[i] = sum[i] + v;
      }
    }
    result.resize(first.bytes.size());
    if (!sum.empty()) std::memcpy(result.data(), sum.data(), result.size());
  } else if (collective_error_.empty() && first.op == CollectiveOp::kBroadcast) {
    result = contributions_[first.root]->bytes;
  }
  for (int r = 0; r < world_size_; ++r) {
    results_[r] = result;
    contributions_[r].reset();
  }
  contributed_ = 0;
  cv_.notify_all();
}

void FakeFabric::require_host(transport::MemoryType type, const char* what, const void* p,
                              size_t bytes) {
  if (type == transport::MemoryType::kHost) return;
  violations_.push_back(fmt::format(
      "{}: {} bytes of device memory at {} given to a host-only transport", what, bytes, p));
  throw Error(ErrorKind::kRuntime, violations_.back());
}

transport::MemoryRegion FakeTransport::register_memory(void* p, size_t bytes,
                                                       transport::MemoryType type) {
  {
    std::lock_guard lock(fabric_.mu_);
    fabric_.require_host(type, "register_memory", p, bytes);
  }
  auto impl = std::make_unique<transport::MemoryRegion::Impl>();
  impl->backend = this;
  impl->base = p;
  impl->bytes = bytes;
  impl->type = type;
  return transport::MemoryRegion(std::move(impl));
}

Request FakeTransport::isend(int peer, Tag tag, const void* p, size_t bytes,
                             const transport::MemoryRegion*, transport::MemoryType type) {
  CONVEYOR_CHECK(tag <= transport::kMaxTag, "isend: tag {:#x} is wider than {} bits", tag,
                 transport::kTagBits);
  std::lock_guard lock(fabric_.mu_);
  fabric_.require_host(type, "isend", p, bytes);
  fabric_.check_alive(rank_);
  auto limit = fabric_.die_after_.find(rank_);
  if (limit != fabric_.die_after_.end() && fabric_.sends_[rank_]++ >= limit->second) {
    fabric_.die(rank_, "died");
    fabric_.check_alive(rank_);  // throws: this rank is gone
  }
  auto s = std::make_shared<Request::State>();
  s->is_send = true;
  s->peer = peer;
  s->tag = tag;
  s->bytes = bytes;
  s->user_ptr = const_cast<void*>(p);
  const auto* bp = static_cast<const uint8_t*>(p);
  fabric_.sent_bytes_[s.get()] = std::vector<uint8_t>(bp, bp + bytes);
  FakeFabric::Op send{s, rank_, peer, tag};
  auto& recvs = fabric_.unmatched_recvs_;
  auto it = std::find_if(recvs.begin(), recvs.end(), [&](const FakeFabric::Op& r) {
    return r.src == rank_ && r.dst == peer && r.tag == tag;
  });
  if (it != recvs.end()) {
    FakeFabric::Op recv = *it;
    recvs.erase(it);
    fabric_.match(send, recv);
  } else {
    fabric_.unmatched_sends_.push_back(send);
  }
  return Request(s);
}

Request FakeTransport::irecv(int peer, Tag tag, void* p, size_t bytes,
                             const transport::MemoryRegion*, transport::MemoryType type) {
  CONVEYOR_CHECK(tag <= transport::kMaxTag, "irecv: tag {:#x} is wider than {} bits", tag,
                 transport::kTagBits);
  std::lock_guard lock(fabric_.mu_);
  fabric_.require_host(type, "irecv", p, bytes);
  fabric_.check_alive(rank_);
  auto s = std::make_shared<Request::State>();
  s->peer = peer;
  s->tag = tag;
  s->bytes = bytes;
  s->user_ptr = p;
  FakeFabric::Op recv{s, peer, rank_, tag};
  auto& sends = fabric_.unmatched_sends_;
  auto it = std::find_if(sends.begin(), sends.end(), [&](const FakeFabric::Op& o) {
    return o.src == peer && o.dst == rank_ && o.tag == tag;
  });
  if (it != sends.end()) {
    FakeFabric::Op send = *it;
    sends.erase(it);
    fabric_.match(send, recv);
  } else {
    fabric_.unmatched_recvs_.push_back(recv);
  }
  return Request(s);
}

std::string FakeTransport::describe(const Request::State& s) const {
  return fmt::format("{} of {} bytes {} rank {} ({})", s.is_send ? "send" : "receive", s.bytes,
                     s.is_send ? "to" : "from", s.peer,
                     describer_ ? describer_(s.tag) : fmt::format("tag {:#x}", s.tag));
}

void FakeTransport::finish(Request::State& s) {
  if (s.status == kCancelled) throw Error(ErrorKind::kRuntime, describe(s) + " was cancelled");
  if (s.status != 0) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("size mismatch: {}: rank {} sent {}", describe(s), s.peer, s.received));
  }
}

bool FakeTransport::test(Request& r) {
  std::lock_guard lock(fabric_.mu_);
  fabric_.check_alive(rank_);
  auto& s = *r.state();
  if (s.is_send && fabric_.matched_.contains(&s)) fabric_.complete_send(s);
  if (!s.done.load()) return false;
  finish(s);
  return true;
}

void FakeTransport::wait(Request& r, Deadline deadline) {
  std::unique_lock lock(fabric_.mu_);
  auto& s = *r.state();
  while (true) {
    fabric_.check_alive(rank_);
    if (s.is_send && fabric_.matched_.contains(&s)) fabric_.complete_send(s);
    if (s.done.load()) break;
    if (fabric_.cv_.wait_until(lock, deadline.at()) == std::cv_status::timeout && !s.done.load()) {
      fabric_.check_alive(rank_);
      throw Error(ErrorKind::kRuntime, deadline_error(rank_, describe(s)));
    }
  }
  finish(s);
}

void FakeTransport::wait_all(std::span<Request> rs, Deadline deadline) {
  for (auto& r : rs) wait(r, deadline);
}

void FakeTransport::cancel(Request& r) {
  if (!r.valid()) return;
  std::unique_lock lock(fabric_.mu_);
  auto& s = *r.state();
  if (!s.is_send) {
    if (s.done.load()) return;  // its message came first
    std::erase_if(fabric_.unmatched_recvs_,
                  [&](const FakeFabric::Op& o) { return o.state.get() == &s; });
    s.status = kCancelled;
    mark_done(s);
    return;
  }
  // A send is not withdrawn: the fabric reads its buffer until a receive takes it.
  const auto deadline = Deadline::after_seconds(kCancelSendSeconds);
  while (!s.done.load()) {
    if (fabric_.matched_.contains(&s)) {
      fabric_.complete_send(s);
      break;
    }
    if (fabric_.cv_.wait_until(lock, deadline.at()) == std::cv_status::timeout && !s.done.load())
      throw Error(ErrorKind::kRuntime,
                  fmt::format("cancel: {} is still in flight after {} s; its buffer stays in use "
                              "until the transport is destroyed",
                              describe(s), kCancelSendSeconds));
  }
}

std::vector<double> FakeTransport::all_reduce_sum(std::span<const double> values,
                                                  Deadline deadline) {
  std::vector<uint8_t> bytes(values.size() * sizeof(double));
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  auto result = fabric_.collective(
      rank_, {FakeFabric::CollectiveOp::kAllReduceSum, 0, std::move(bytes)}, deadline);
  std::vector<double> out(values.size());
  if (!out.empty()) std::memcpy(out.data(), result.data(), result.size());
  return out;
}

void FakeTransport::barrier(Deadline deadline) {
  fabric_.collective(rank_, {FakeFabric::CollectiveOp::kBarrier, 0, {}}, deadline);
}

void FakeTransport::broadcast(std::vector<uint8_t>& bytes, int root, Deadline deadline) {
  CONVEYOR_REQUIRE(root >= 0 && root < world_size(), "broadcast: root {} is outside 0..{}", root,
                   world_size() - 1);
  auto mine = rank_ == root ? bytes : std::vector<uint8_t>{};
  bytes = fabric_.collective(rank_, {FakeFabric::CollectiveOp::kBroadcast, root, std::move(mine)},
                             deadline);
}

void FakeTransport::abort(const std::string& reason) {
  std::lock_guard lock(fabric_.mu_);
  fabric_.die(rank_, "aborted: " + reason);
}

}  // namespace conveyor::test
