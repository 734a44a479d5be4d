#include "tests/unit/pipeline/fake_transport.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "common/error.h"

namespace conveyor::test {

using transport::Request;
using transport::Tag;

void FakeFabric::kill(int rank) {
  std::lock_guard lock(mu_);
  dead_[rank] = true;
  cv_.notify_all();
}

std::vector<std::string> FakeFabric::violations() {
  std::lock_guard lock(mu_);
  return violations_;
}

void FakeFabric::check_alive(int caller) {
  for (int r = 0; r < world_size_; ++r) {
    if (dead_[r]) {
      throw Error(ErrorKind::kPeerFailed,
                  fmt::format("rank {} (host fake) died; rank {} cannot go on", r, caller));
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
  r.done.store(true);
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
  s.done.store(true);
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
  std::lock_guard lock(fabric_.mu_);
  fabric_.require_host(type, "isend", p, bytes);
  fabric_.check_alive(rank_);
  auto limit = fabric_.die_after_.find(rank_);
  if (limit != fabric_.die_after_.end() && fabric_.sends_[rank_]++ >= limit->second) {
    fabric_.dead_[rank_] = true;
    fabric_.cv_.notify_all();
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

void FakeTransport::finish(Request::State& s) {
  if (s.status != 0) {
    const std::string what = describer_ ? describer_(s.tag) : fmt::format("tag {:#x}", s.tag);
    throw Error(ErrorKind::kRuntime,
                fmt::format("size mismatch: receive of {} bytes from rank {} ({}): rank {} sent {}",
                            s.bytes, s.peer, what, s.peer, s.received));
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
      const std::string what = describer_ ? describer_(s.tag) : fmt::format("tag {:#x}", s.tag);
      throw Error(ErrorKind::kRuntime,
                  fmt::format("rank {}: {} of {} bytes {} rank {} ({}) did not complete before "
                              "the deadline",
                              rank_, s.is_send ? "send" : "receive", s.bytes,
                              s.is_send ? "to" : "from", s.peer, what));
    }
  }
  finish(s);
}

void FakeTransport::wait_all(std::span<Request> rs, Deadline deadline) {
  for (auto& r : rs) wait(r, deadline);
}

void FakeTransport::cancel(Request& r) {
  std::lock_guard lock(fabric_.mu_);
  auto& recvs = fabric_.unmatched_recvs_;
  std::erase_if(recvs, [&](const FakeFabric::Op& o) { return o.state.get() == r.state(); });
  r.state()->done.store(true);
}

std::vector<double> FakeTransport::all_reduce_sum(std::span<const double>, Deadline) {
  throw Error(ErrorKind::kRuntime, "the fake transport has no collectives");
}
void FakeTransport::barrier(Deadline) {
  throw Error(ErrorKind::kRuntime, "the fake transport has no collectives");
}
void FakeTransport::broadcast(std::vector<uint8_t>&, int, Deadline) {
  throw Error(ErrorKind::kRuntime, "the fake transport has no collectives");
}

}  // namespace conveyor::test
