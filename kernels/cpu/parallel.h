// Deterministic parallel loops for the CPU kernels.
//
// Kernels cut their work into tasks whose boundaries depend only on the problem shape,
// never on the thread count, and every task writes its own outputs. Which thread runs a
// task therefore cannot change any bit of the result.
//
// OpenBLAS is always called single-threaded from inside tasks (see blas_single_thread()):
// its own threading moves tile edges with the thread count and, with them, the rounding
// of the results (measured on OpenBLAS 0.3.21: thousands of elements differ between 1 and
// 2 threads).
#pragma once

#include <cstddef>
#include <functional>

namespace conveyor::cpu::detail {

// Runs fn(i) once for every i in [0, n) and returns when all have finished. fn must not
// throw. Blocking. Thread-safe: when another call is already using the pool (another
// thread, or a nested call from inside fn), this call runs its tasks inline, in order.
void parallel_for(size_t n, const std::function<void(size_t)>& fn);

// Tasks for `rows` rows of work, at least `min_rows` per task, at most ~16 tasks; a
// function of the shape only.
size_t rows_per_task(size_t rows, size_t min_rows);

// Runs fn(begin, end) over [0, rows) in chunks of rows_per_task(rows, min_rows).
void parallel_rows(size_t rows, size_t min_rows, const std::function<void(size_t, size_t)>& fn);

// Sets OpenBLAS to one thread if it is not already (cheap; called before each sgemm batch).
void blas_single_thread();

}  // namespace conveyor::cpu::detail
