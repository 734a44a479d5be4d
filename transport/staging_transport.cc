#include "transport/staging_transport.h"

#include <cstdlib>
#include <new>
#include <utility>

#include "common/error.h"
#include "transport/request_state.h"

namespace conveyor::transport {

namespace {

void* aligned_host(size_t bytes) {
  // 64-byte alignment, like the inner transport's own buffers; at least one byte.
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

// A region passed with a message holds memory of the message's type (transport.h).
void check_region_type(const MemoryRegion* mr, MemoryType type, const void* p, size_t bytes,
                       const char* what) {
  CONVEYOR_CHECK(mr == nullptr || !mr->valid() || mr->memory_type() == type,
                 "{}: {} bytes at {} given as {} memory with a region registered as {} memory",
                 what, bytes, p, kernels::memory_type_name(type),
                 kernels::memory_type_name(mr->memory_type()));
}

}  // namespace

// A registered region of device memory: its host mirror, registered with the inner transport.
class StagingTransport::Mirror final : public MemoryRegion::Impl {
 public:
  Mirror(StagingTransport* owner, void* device, size_t n, void* host_bytes,
         MemoryRegion inner_region)
      : owner_(owner), host(host_bytes), inner(std::move(inner_region)) {
    backend = owner;
    base = device;
    bytes = n;
    type = MemoryType::kDevice;
  }
  ~Mirror() override {
    owner_->forget_region(this);
    inner = MemoryRegion();  // deregistered before the memory goes
    owner_->options_.free_host(host);
  }

  StagingTransport* owner_;
  void* host;          // the mirror: bytes of the same size, at the same offsets
  MemoryRegion inner;  // the mirror's registration with the inner transport
};

StagingTransport::StagingTransport(std::unique_ptr<Transport> inner, StagingOptions options)
    : options_(std::move(options)), inner_(std::move(inner)) {
  CONVEYOR_CHECK(inner_ != nullptr, "StagingTransport needs a transport to wrap");
  CONVEYOR_CHECK(options_.to_host && options_.from_host,
                 "StagingTransport needs to_host and from_host");
  if (!options_.alloc_host) options_.alloc_host = aligned_host;
  if (!options_.free_host) options_.free_host = [](void* p) { std::free(p); };
}

StagingTransport::~StagingTransport() {
  // The inner transport goes first: after a failure it may leave receives posted, which is
  // why the buffers of requests still in flight are not freed below.
  std::unordered_map<const Request::State*, Pending> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(pending_);
  }
  std::vector<void*> done;
  for (auto& [state, p] : pending)
    if (p.host.pooled && p.request.done()) done.push_back(p.host.bytes);
  pending.clear();
  inner_.reset();
  for (void* p : done) options_.free_host(p);
  for (auto& [size, p] : free_bounce_) options_.free_host(p);
}

StagingTransport::Stats StagingTransport::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

MemoryRegion StagingTransport::register_memory(void* p, size_t bytes, MemoryType type) {
  if (type == MemoryType::kHost) return inner_->register_memory(p, bytes, type);
  CONVEYOR_REQUIRE(p != nullptr && bytes > 0, "register_memory: empty buffer ({} bytes at {})",
                   bytes, p);
  const auto b = reinterpret_cast<uintptr_t>(p);
  {
    std::lock_guard lock(mu_);
    auto next = mirrors_.lower_bound(b);
    const bool overlaps =
        (next != mirrors_.end() && next->first < b + bytes) ||
        (next != mirrors_.begin() && std::prev(next)->first + std::prev(next)->second->bytes > b);
    if (overlaps)
      throw Error(ErrorKind::kUsage, fmt::format("register_memory: [{}, +{}) overlaps a "
                                                 "registered region",
                                                 p, bytes));
  }
  void* host = options_.alloc_host(bytes);
  MemoryRegion inner_region;
  try {
    inner_region = inner_->register_memory(host, bytes, MemoryType::kHost);
  } catch (...) {
    options_.free_host(host);
    throw;
  }
  auto mirror = std::make_unique<Mirror>(this, p, bytes, host, std::move(inner_region));
  std::lock_guard lock(mu_);
  mirrors_[b] = mirror.get();
  ++stats_.mirrors;
  return MemoryRegion(std::move(mirror));
}

void StagingTransport::forget_region(const Mirror* m) noexcept {
  std::lock_guard lock(mu_);
  auto it = mirrors_.find(reinterpret_cast<uintptr_t>(m->base));
  if (it != mirrors_.end() && it->second == m) mirrors_.erase(it);
}

StagingTransport::HostSide StagingTransport::host_side(const void* p, size_t bytes,
                                                       const MemoryRegion* mr) {
  const Mirror* mirror = nullptr;
  if (mr != nullptr && mr->impl() != nullptr && mr->impl()->backend == this) {
    mirror = static_cast<const Mirror*>(mr->impl());
    CONVEYOR_REQUIRE(mirror->contains(p, bytes),
                     "the memory region passed with {} bytes at {} does not contain them", bytes,
                     p);
  } else {
    std::lock_guard lock(mu_);
    auto it = mirrors_.upper_bound(reinterpret_cast<uintptr_t>(p));
    if (it != mirrors_.begin() && std::prev(it)->second->contains(p, bytes))
      mirror = std::prev(it)->second;
  }
  if (mirror != nullptr) {
    const auto offset = static_cast<const char*>(p) - static_cast<const char*>(mirror->base);
    return {static_cast<char*>(mirror->host) + offset, &mirror->inner, false};
  }
  return {take_bounce(bytes), nullptr, true};
}

void* StagingTransport::take_bounce(size_t bytes) {
  {
    std::lock_guard lock(mu_);
    auto it = free_bounce_.find(bytes);
    if (it != free_bounce_.end()) {
      void* p = it->second;
      free_bounce_.erase(it);
      return p;
    }
  }
  return options_.alloc_host(bytes);
}

void StagingTransport::give_back_bounce(void* p, size_t bytes) {
  std::lock_guard lock(mu_);
  free_bounce_.emplace(bytes, p);
}

void StagingTransport::track(const Request& r, Pending pending) {
  std::lock_guard lock(mu_);
  pending_.emplace(r.state(), std::move(pending));
  pending_count_.store(pending_.size(), std::memory_order_relaxed);
}

Request StagingTransport::isend(int peer, Tag tag, const void* p, size_t bytes,
                                const MemoryRegion* mr, MemoryType type) {
  check_region_type(mr, type, p, bytes, "isend");
  if (type == MemoryType::kHost) return inner_->isend(peer, tag, p, bytes, mr, type);
  if (bytes == 0) return inner_->isend(peer, tag, p, 0, nullptr, MemoryType::kHost);  // no bytes
  HostSide host = host_side(p, bytes, mr);
  Request r;
  try {
    options_.to_host(host.bytes, p, bytes);
    r = inner_->isend(peer, tag, host.bytes, bytes, host.region, MemoryType::kHost);
  } catch (...) {
    if (host.pooled) give_back_bounce(host.bytes, bytes);  // the inner transport never had it
    throw;
  }
  {
    std::lock_guard lock(mu_);
    ++stats_.staged_sends;
    stats_.bytes_to_host += bytes;
  }
  // A send from a mirror needs nothing when it completes; a pooled buffer goes back then.
  if (host.pooled) track(r, {r, nullptr, host, bytes, false});
  return r;
}

Request StagingTransport::irecv(int peer, Tag tag, void* p, size_t bytes, const MemoryRegion* mr,
                                MemoryType type) {
  check_region_type(mr, type, p, bytes, "irecv");
  if (type == MemoryType::kHost) return inner_->irecv(peer, tag, p, bytes, mr, type);
  if (bytes == 0) return inner_->irecv(peer, tag, p, 0, nullptr, MemoryType::kHost);  // no bytes
  HostSide host = host_side(p, bytes, mr);
  Request r;
  try {
    r = inner_->irecv(peer, tag, host.bytes, bytes, host.region, MemoryType::kHost);
  } catch (...) {
    if (host.pooled) give_back_bounce(host.bytes, bytes);
    throw;
  }
  track(r, {r, p, host, bytes, true});
  return r;
}

void StagingTransport::complete(Request& r) {
  if (!r.valid() || pending_count_.load(std::memory_order_relaxed) == 0) return;
  Pending p;
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(r.state());
    if (it == pending_.end()) return;  // not staged, or already completed
    p = std::move(it->second);
    pending_.erase(it);
    pending_count_.store(pending_.size(), std::memory_order_relaxed);
  }
  struct GiveBack {  // the bounce buffer returns to the list even if the copy throws
    StagingTransport* t;
    const Pending& p;
    ~GiveBack() {
      if (p.host.pooled) t->give_back_bounce(p.host.bytes, p.bytes);
    }
  } give_back{this, p};
  if (p.receive) {
    options_.from_host(p.user, p.host.bytes, p.bytes);
    std::lock_guard lock(mu_);
    ++stats_.staged_receives;
    stats_.bytes_from_host += p.bytes;
  }
}

bool StagingTransport::test(Request& r) {
  bool done;
  try {
    done = inner_->test(r);
  } catch (...) {
    if (r.done()) forget(r);  // it failed: no copy, and the bounce buffer is free again
    throw;
  }
  if (!done) return false;
  complete(r);
  return true;
}

void StagingTransport::wait(Request& r, Deadline deadline) {
  try {
    inner_->wait(r, deadline);
  } catch (...) {
    if (r.done()) forget(r);  // failed (not merely late): nothing holds its host buffer
    throw;
  }
  complete(r);
}

void StagingTransport::wait_all(std::span<Request> rs, Deadline deadline) {
  try {
    inner_->wait_all(rs, deadline);
  } catch (...) {
    // Those that completed are copied as usual; a failed one's buffer is given back. The
    // ones still in flight keep theirs.
    for (Request& r : rs) {
      if (!r.done()) continue;
      try {
        inner_->test(r);
        complete(r);
      } catch (...) {
        forget(r);
      }
    }
    throw;
  }
  for (Request& r : rs) complete(r);
}

void StagingTransport::cancel(Request& r) {
  inner_->cancel(r);  // returns once the inner transport has let go of the host buffer
  forget(r);
}

void StagingTransport::forget(Request& r) {
  Pending p;
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(r.state());
    if (it == pending_.end()) return;
    p = std::move(it->second);
    pending_.erase(it);
    pending_count_.store(pending_.size(), std::memory_order_relaxed);
  }
  if (p.host.pooled) give_back_bounce(p.host.bytes, p.bytes);
}

}  // namespace conveyor::transport
