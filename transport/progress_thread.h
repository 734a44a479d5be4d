// The UCX transport's progress engine: a thread that progresses the worker while no caller
// does, so a message posted before a forward or backward pass moves during the pass (a
// rendezvous answered, a send's next fragments written, a receive's bytes read) instead of
// after it.
//
// Contract
//   - It takes the same lock as every other user of the worker (the worker stays
//     UCS_THREAD_MODE_SERIALIZED) and calls only ucp_worker_progress and ucp_worker_arm under it.
//     Completions reach requests through UCX's callbacks, as they do on a caller's poll; the
//     thread never finalizes, throws, checks peers or looks at deadlines: callers' waits keep
//     every deadline and the dead-peer detection.
//   - Hand-over: it polls only when no thread is inside a point-to-point call and none entered
//     one during the last quiet period (kQuietMs). A waiting caller polls for itself, with the
//     lowest latency, and the thread neither competes with it for the lock nor arms UCX's
//     event notification under it (an armed shared-memory peer signals every message).
//   - Sleeping: between polls it sleeps in poll(2) on the worker's event descriptor
//     (UCP_FEATURE_WAKEUP: ucp_worker_arm, ucp_worker_get_efd) and its own eventfd, so it uses
//     no CPU while nothing moves; it looks again at least every kArmedRecheckMs, since a caller's
//     poll may have consumed the event it armed for. Without an event descriptor it polls every
//     kQuietMs.
//   - stop() wakes it and joins it; it REQUIRES the worker alive until then.
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include "transport/spin_lock.h"

namespace conveyor::transport {

class ProgressThread {
 public:
  // Starts the thread. Every other use of `worker` holds `lock`.
  ProgressThread(ucp_worker_h worker, SpinLock& lock);
  ~ProgressThread();  // stop()
  ProgressThread(const ProgressThread&) = delete;
  ProgressThread& operator=(const ProgressThread&) = delete;

  // Wakes the thread and joins it. Idempotent.
  void stop() noexcept;

  // Held by a caller for the length of a point-to-point call (isend, irecv, test, wait,
  // wait_all, cancel): while one is alive, and for kQuietMs after, the thread leaves the
  // worker to the caller.
  class Caller {
   public:
    explicit Caller(ProgressThread* engine) : engine_(engine) {
      if (engine_) {
        engine_->calls_.fetch_add(1, std::memory_order_relaxed);
        engine_->callers_.fetch_add(1, std::memory_order_acq_rel);
      }
    }
    ~Caller() {
      if (engine_) engine_->callers_.fetch_sub(1, std::memory_order_acq_rel);
    }
    Caller(const Caller&) = delete;
    Caller& operator=(const Caller&) = delete;

   private:
    ProgressThread* engine_;
  };

  // How long callers must have been away before the thread polls, and how often an armed
  // thread looks again without an event.
  static constexpr int kQuietMs = 1;
  static constexpr int kArmedRecheckMs = 2;

 private:
  void run();
  // Sleeps until the eventfd (stop) or, when `worker_events`, the worker's descriptor is
  // readable, or `timeout_ms` passes.
  void sleep(bool worker_events, int timeout_ms);

  ucp_worker_h worker_;
  SpinLock& lock_;
  int worker_fd_ = -1;  // ucp_worker_get_efd; -1 without UCP_FEATURE_WAKEUP support
  int wake_fd_ = -1;    // eventfd written by stop()
  std::atomic<bool> stopping_{false};
  std::atomic<int> callers_{0};
  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> productive_polls_{0};  // turns that moved data (the debug log at stop)
  std::thread thread_;
};

}  // namespace conveyor::transport
