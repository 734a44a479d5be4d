// AdamW, the chunked double sums behind sum() and sum_of_squares(), and scale/add.
//
// The sums: one thread per kSumChunk elements adds them in index order in double (a fixed
// split: chunk c covers [c*kSumChunk, (c+1)*kSumChunk)); the backend adds the partials in
// chunk order on the host. One thread per chunk walks its own contiguous range, so the loads
// are served from cache lines that thread alone uses; at 4096 elements a chunk the walk is a
// few microseconds, and a model's gradient norm runs once per step.
#include <cstddef>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/scalar_math.h"

namespace conveyor::cuda_kernels {

namespace {

__global__ void adamw_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                             size_t n, kernels::scalar::AdamWScalars hp) {
  CONVEYOR_FOR_EACH_ELEMENT(i, n) {
    float m = exp_avg[i], v = exp_avg_sq[i];
    param[i] = kernels::scalar::adamw_element(param[i], grad[i], m, v, hp);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

__global__ void chunk_sums_kernel(double* partials, const float* x, size_t n, size_t chunks,
                                  bool squares) {
  const size_t c = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= chunks) return;
  const size_t begin = c * kSumChunk;
  const size_t end = begin + kSumChunk < n ? begin + kSumChunk : n;
  double acc = 0.0;
  if (squares) {
    for (size_t i = begin; i < end; ++i) {
      const double v = x[i];
      acc += v * v;
    }
  } else {
    for (size_t i = begin; i < end; ++i) acc += x[i];
  }
  partials[c] = acc;
}

__global__ void scale_kernel(float* x, size_t n, float factor) {
  CONVEYOR_FOR_EACH_ELEMENT(i, n) x[i] *= factor;
}

__global__ void add_kernel(float* x, const float* y, size_t n) {
  CONVEYOR_FOR_EACH_ELEMENT(i, n) x[i] += y[i];
}

}  // namespace

void adamw_update(cudaStream_t s, float* param, const float* grad, float* exp_avg,
                  float* exp_avg_sq, size_t n, const kernels::scalar::AdamWScalars& hp) {
  if (n == 0) return;
  adamw_kernel<<<element_blocks(n), kElementThreads, 0, s>>>(param, grad, exp_avg, exp_avg_sq, n,
                                                             hp);
  check_launch("adamw update");
}

void chunk_sums(cudaStream_t s, double* partials, const float* x, size_t n, bool squares) {
  const size_t chunks = sum_chunks(n);
  if (chunks == 0) return;
  constexpr int kThreads = 64;
  chunk_sums_kernel<<<static_cast<unsigned>((chunks + kThreads - 1) / kThreads), kThreads, 0, s>>>(
      partials, x, n, chunks, squares);
  check_launch(squares ? "sum of squares" : "sum");
}

void scale_inplace(cudaStream_t s, float* x, size_t n, float factor) {
  if (n == 0) return;
  scale_kernel<<<element_blocks(n), kElementThreads, 0, s>>>(x, n, factor);
  check_launch("scale in place");
}

void add_inplace(cudaStream_t s, float* x, const float* y, size_t n) {
  if (n == 0) return;
  add_kernel<<<element_blocks(n), kElementThreads, 0, s>>>(x, y, n);
  check_launch("add in place");
}

}  // namespace conveyor::cuda_kernels
