// A lock for critical sections of a fraction of a microsecond (the UCX worker's calls).
//
// Why not std::mutex: an uncontended lock + unlock pair of a pthread mutex is two atomic
// read-modify-writes; this lock's unlock is a plain release store, and the 8-byte message
// latency is made of a handful of such pairs. Waiters spin briefly, then yield the core, so a
// holder that was preempted (more threads than cores) is not starved.
// Meets the Lockable requirements (std::lock_guard, std::unique_lock).
#pragma once

#include <atomic>
#include <thread>

namespace conveyor::transport {

class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < kSpinsBeforeYield) {
          pause();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  static constexpr unsigned kSpinsBeforeYield = 256;
  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }
  std::atomic<bool> locked_{false};
};

}  // namespace conveyor::transport
