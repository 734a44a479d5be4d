// A small fixed pool of worker threads; the calling thread works too.
#include "kernels/cpu/parallel.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/cpu/ops.h"

namespace conveyor::cpu {

namespace {

int default_threads() {
  if (const char* env = std::getenv("CONVEYOR_CPU_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(std::min(hw, 64u));
}

class Pool {
 public:
  void set_threads(int n) {
    std::lock_guard<std::mutex> run(run_mu_);  // never resize under a running job
    wanted_ = std::max(1, n);
  }
  int threads() {
    std::lock_guard<std::mutex> run(run_mu_);
    return wanted_;
  }

  void run(size_t n, const std::function<void(size_t)>& fn) {
    std::unique_lock<std::mutex> run(run_mu_, std::try_to_lock);
    if (!run.owns_lock() || wanted_ <= 1 || n <= 1) {
      for (size_t i = 0; i < n; ++i) fn(i);
      return;
    }
    grow(wanted_ - 1);
    const int helpers = std::min<int>(wanted_ - 1, static_cast<int>(n - 1));
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      active_ = helpers;
      pending_helpers_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return active_ == 0; });
    fn_ = nullptr;
  }

 private:
  void grow(int workers) {
    while (static_cast<int>(workers_.size()) < workers) {
      workers_.emplace_back([this] { loop(); });
      workers_.back().detach();  // the pool lives until the process ends
    }
  }

  void work() {
    for (size_t i = next_.fetch_add(1); i < n_; i = next_.fetch_add(1)) (*fn_)(i);
  }

  void loop() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen && pending_helpers_ > 0; });
      seen = generation_;
      --pending_helpers_;
      lock.unlock();
      work();
      lock.lock();
      if (--active_ == 0) done_.notify_one();
    }
  }

  std::mutex run_mu_;  // one job at a time
  int wanted_ = default_threads();
  std::vector<std::thread> workers_;

  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_ = 0;
  std::atomic<size_t> next_{0};
  int active_ = 0;           // helpers still working on the current job
  int pending_helpers_ = 0;  // helpers still to pick up the current job
  uint64_t generation_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: workers may outlive static destructors
  return *p;
}

}  // namespace

void set_num_threads(int n) {
  pool().set_threads(n);
}
int num_threads() {
  return pool().threads();
}

namespace detail {

void parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  pool().run(n, fn);
}

size_t rows_per_task(size_t rows, size_t min_rows) {
  const size_t per = (rows + 15) / 16;
  return std::max<size_t>({min_rows, (per + 15) / 16 * 16, 1});
}

void parallel_rows(size_t rows, size_t min_rows, const std::function<void(size_t, size_t)>& fn) {
  const size_t chunk = rows_per_task(rows, min_rows);
  const size_t tasks = (rows + chunk - 1) / chunk;
  parallel_for(tasks, [&](size_t t) { fn(t * chunk, std::min(rows, (t + 1) * chunk)); });
}

void blas_single_thread() {
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

}  // namespace detail
}  // namespace conveyor::cpu
