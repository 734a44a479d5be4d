// Softmax fused with cross-entropy, with the target check on the device.
//
// Forward: one row per 16 threads (lanes.cuh), the CPU's steps in the CPU's order
// (kernels/cpu/crossentropy.cc): max, exponentials and their 16-lane sum, then the
// probabilities; so the probabilities have the CPU's bits. The loss uses CUDA's logf, which
// may differ from glibc's by an ulp.
// Backward: element-wise, the CPU's formula.
//
// The target check runs first on the device and records the smallest bad row; both op
// kernels read that record and write nothing when it is set, so an op with a bad target
// leaves every output as it was, without a host round trip: the backend reads the record at
// its next wait for the stream (kernels/cuda/cuda_backend.h).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/lanes.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/scalar_math.h"

namespace conveyor::cuda_kernels {

namespace {

__global__ void check_targets_kernel(int* bad_row, const int32_t* targets, int N, int V) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n < N && (targets[n] < 0 || targets[n] >= V)) atomicMin(bad_row, n);
}

void check_targets(cudaStream_t s, int* bad_row, const int32_t* targets, int N, int V) {
  if (N <= 0) return;
  constexpr int kThreads = 256;
  check_targets_kernel<<<(N + kThreads - 1) / kThreads, kThreads, 0, s>>>(bad_row, targets, N, V);
  check_launch("cross-entropy target check");
}

__global__ void crossentropy_forward_kernel(const int* bad_row, float* losses, float* probs,
                                            const float* logits, const int32_t* targets, int N,
                                            int V) {
  if (*bad_row != kNoBadRow) return;
  const RowLane rl = row_lane();
  const bool active = rl.row < static_cast<size_t>(N);
  const size_t base = active ? rl.row * V : 0;
  const float* x = logits + base;
  float* p = probs + base;
  const float max = row_max(x, V, rl.lane, active);
  float acc = 0.0f;
  if (active)
    for (int j = rl.lane; j < V; j += kLanes) {
      const float e = kernels::scalar::fast_exp(x[j] - max);
      p[j] = e;
      acc += e;
    }
  const float sum = lanes_total(acc);
  if (!active) return;
  // log(sum) - (x_t - max) rather than -log(p_t): stays accurate when p_t underflows.
  if (rl.lane == 0) losses[rl.row] = logf(sum) - (x[targets[rl.row]] - max);
  const float inv = 1.0f / sum;
  for (int j = rl.lane; j < V; j += kLanes) p[j] = p[j] * inv;
}

__global__ void crossentropy_backward_kernel(const int* bad_row, float* dlogits, const float* probs,
                                             const int32_t* targets, float scale, int V,
                                             size_t total) {
  if (*bad_row != kNoBadRow) return;
  CONVEYOR_FOR_EACH_ELEMENT(i, total) {
    const size_t row = i / V;
    const int j = static_cast<int>(i % V);
    const float indicator = j == targets[row] ? 1.0f : 0.0f;
    dlogits[i] += (probs[i] - indicator) * scale;
  }
}

}  // namespace

void crossentropy_forward(cudaStream_t s, int* bad_row, float* losses, float* probs,
                          const float* logits, const int32_t* targets, int N, int V) {
  check_targets(s, bad_row, targets, N, V);
  if (N <= 0 || V <= 0) return;
  crossentropy_forward_kernel<<<row_blocks(N), kRowThreads, 0, s>>>(bad_row, losses, probs, logits,
                                                                    targets, N, V);
  check_launch("cross-entropy forward");
}

void crossentropy_backward(cudaStream_t s, int* bad_row, float* dlogits, const float* probs,
                           const int32_t* targets, float scale, int N, int V) {
  check_targets(s, bad_row, targets, N, V);
  const size_t total = static_cast<size_t>(N > 0 ? N : 0) * (V > 0 ? V : 0);
  if (total == 0) return;
  crossentropy_backward_kernel<<<element_blocks(total), kElementThreads, 0, s>>>(
      bad_row, dlogits, probs, targets, scale, V, total);
  check_launch("cross-entropy backward");
}

}  // namespace conveyor::cuda_kernels
