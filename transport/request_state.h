// Internals behind Request and MemoryRegion (transport.h); backends fill these in.
// Not part of the pipeline's interface.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

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
  // When the transport saw it complete: written before `done` (mark_done), read after it.
  std::chrono::steady_clock::time_point completed_at{};
  int status = 0;          // ucs_status_t at completion
  size_t received = 0;     // receives: length of the matched message
  bool finalized = false;  // completion handled (errors thrown)
  // While UCX holds the request: the backend's in-flight list keeps the state alive
  // through `keep_alive` (the caller may drop its handle) and links it. `linked` says the
  // same to the handle's owner without the backend's lock: it is set before the request is
  // returned and cleared only by the owner's own finalize (or with no handle left).
  bool linked = false;
  std::shared_ptr<State> keep_alive;
  State* prev = nullptr;
  State* next = nullptr;
};

// Completes `s` (its status and length already set): stamps the time, then publishes.
inline void mark_done(Request::State& s) {
  s.completed_at = std::chrono::steady_clock::now();
  s.done.store(true, std::memory_order_release);
}

// The requests UCX still holds, as an intrusive list: linking and unlinking allocate
// nothing (they run once per message on the latency-critical path).
class InFlightList {
 public:
  InFlightList() = default;
  InFlightList(const InFlightList&) = delete;
  InFlightList& operator=(const InFlightList&) = delete;
  ~InFlightList() { clear(); }

  size_t size() const { return size_; }
  bool contains(const Request::State& s) const { return s.linked; }

  // REQUIRES: !contains(*s).
  void insert(std::shared_ptr<Request::State> s) {
    auto* p = s.get();
    p->linked = true;
    p->keep_alive = std::move(s);
    p->prev = nullptr;
    p->next = head_;
    if (head_) head_->prev = p;
    head_ = p;
    ++size_;
  }
  // Unlinks `s` (no-op when not linked). Drops the list's reference: when the caller's
  // handle is already gone this destroys `s`.
  void remove(Request::State& s) noexcept {
    if (!contains(s)) return;
    (s.prev ? s.prev->next : head_) = s.next;
    if (s.next) s.next->prev = s.prev;
    s.prev = s.next = nullptr;
    s.linked = false;
    --size_;
    auto last = std::move(s.keep_alive);  // may free `s` on scope exit
  }
  // Calls f(state) for every linked request; f may remove the one it is given.
  template <class F>
  void for_each(F&& f) {
    for (auto* p = head_; p != nullptr;) {
      auto* next = p->next;
      f(*p);
      p = next;
    }
  }
  void clear() noexcept {
    while (head_) remove(*head_);
  }

 private:
  Request::State* head_ = nullptr;
  size_t size_ = 0;
};

// A registration; the backend derives from it.
class MemoryRegion::Impl {
 public:
  virtual ~Impl() = default;
  const void* backend = nullptr;  // the transport that made it (checked before a downcast)
  void* base = nullptr;
  size_t bytes = 0;
  MemoryType type = MemoryType::kHost;  // as the caller registered it
  bool contains(const void* p, size_t n) const {
    auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base);
    return a >= b && a - b <= bytes && n <= bytes - (a - b);
  }
};

}  // namespace conveyor::transport
