#include "transport/progress_thread.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "common/error.h"
#include "common/log.h"

namespace conveyor::transport {

namespace {

// Polls per lock hold: a batch moves a few fragments, then the lock is free again for a
// caller's isend or irecv.
constexpr int kPollsPerLock = 32;
// ucp_worker_arm answering "busy" this many times in a row with no work done: something
// keeps reporting events that progress does not consume; sleep a quiet period instead of
// spinning on it.
constexpr int kBusyArmsBeforeNap = 8;

}  // namespace

ProgressThread::ProgressThread(ucp_worker_h worker, SpinLock& lock) : worker_(worker), lock_(lock) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0)
    throw Error(ErrorKind::kRuntime, fmt::format("cannot create the progress thread's eventfd: {}",
                                                 std::strerror(errno)));
  {
    std::lock_guard guard(lock_);
    if (ucp_worker_get_efd(worker_, &worker_fd_) != UCS_OK) worker_fd_ = -1;
  }
  if (worker_fd_ < 0)
    CONVEYOR_LOG_DEBUG(
        "transport: UCX gives no event descriptor; the progress thread polls "
        "every {} ms",
        kQuietMs);
  thread_ = std::thread([this] { run(); });
}

ProgressThread::~ProgressThread() {
  stop();
}

void ProgressThread::stop() noexcept {
  if (thread_.joinable()) {
    stopping_.store(true, std::memory_order_release);
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    thread_.join();
    CONVEYOR_LOG_DEBUG("transport: the progress thread moved data in {} of its turns",
                       productive_polls_.load());
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
}

void ProgressThread::sleep(bool worker_events, int timeout_ms) {
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {worker_fd_, POLLIN, 0}};
  const nfds_t n = worker_events && worker_fd_ >= 0 ? 2 : 1;
  if (::poll(fds, n, timeout_ms) > 0 && (fds[0].revents & POLLIN)) {
    uint64_t count;
    [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof count);
  }
}

void ProgressThread::run() {
  pthread_setname_np(pthread_self(), "ucx-progress");
  uint64_t calls_seen = calls_.load(std::memory_order_acquire);
  int busy_arms = 0;
  while (!stopping_.load(std::memory_order_acquire)) {
    // A caller is in, or was within the last quiet period: it polls; look again later.
    const uint64_t calls = calls_.load(std::memory_order_acquire);
    if (callers_.load(std::memory_order_acquire) > 0 || calls != calls_seen) {
      calls_seen = calls;
      sleep(false, kQuietMs);
      continue;
    }
    bool worked = false, armed = false, busy = false;
    {
      std::lock_guard guard(lock_);
      // A caller may have taken the worker between the check and the lock: leave it be.
      if (callers_.load(std::memory_order_acquire) > 0) continue;
      for (int k = 0; k < kPollsPerLock && ucp_worker_progress(worker_) != 0; ++k) worked = true;
      if (!worked && worker_fd_ >= 0) {
        const ucs_status_t st = ucp_worker_arm(worker_);
        armed = st == UCS_OK;
        busy = st == UCS_ERR_BUSY;
      }
    }
    if (worked) {
      productive_polls_.fetch_add(1, std::memory_order_relaxed);
      busy_arms = 0;  // poll again at once: data is moving
    } else if (armed) {
      busy_arms = 0;
      sleep(true, kArmedRecheckMs);
    } else if (!busy || ++busy_arms >= kBusyArmsBeforeNap) {
      busy_arms = 0;
      sleep(false, kQuietMs);
    }
  }
}

}  // namespace conveyor::transport
