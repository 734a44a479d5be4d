// Softmax fused with cross-entropy.
#include <cmath>
#include <cstddef>

#include "common/error.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace conveyor::cpu {

namespace {
// Before any parallel work: an exception must not leave a worker thread.
void check_targets(const int32_t* targets, int N, int V) {
  for (int n = 0; n < N; ++n) {
    CONVEYOR_CHECK(targets[n] >= 0 && targets[n] < V,
                   "cross-entropy: target {} of row {} is outside the vocabulary [0, {})",
                   targets[n], n, V);
  }
}
}  // namespace

void crossentropy_forward(float* losses, float* probs, const float* logits, const int32_t* targets,
                          int N, int V) {
  check_targets(targets, N, V);
  detail::parallel_rows(N, 32, [&](size_t r0, size_t r1) {
    for (size_t n = r0; n < r1; ++n) {
      const float* x = logits + static_cast<size_t>(n) * V;
      float* p = probs + static_cast<size_t>(n) * V;
      const int32_t t = targets[n];
      const float max = detail::lane_max(x, V);
      for (int j = 0; j < V; ++j) p[j] = x[j];
      const float sum = detail::exp_shift_sum(p, V, max);
      // log(sum) - (x_t - max) rather than -log(p_t): stays accurate when p_t underflows.
      losses[n] = std::log(sum) - (x[t] - max);
      const float inv = 1.0f / sum;
      for (int j = 0; j < V; ++j) p[j] *= inv;
    }
  });
}

void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, float scale,
                           int N, int V) {
  check_targets(targets, N, V);
  detail::parallel_rows(N, 32, [&](size_t r0, size_t r1) {
    for (size_t n = r0; n < r1; ++n) {
      const float* p = probs + static_cast<size_t>(n) * V;
      float* d = dlogits + static_cast<size_t>(n) * V;
      const int32_t t = targets[n];
      for (int j = 0; j < V; ++j) {
        const float indicator = j == t ? 1.0f : 0.0f;
        d[j] += (p[j] - indicator) * scale;
      }
    }
  });
}

}  // namespace conveyor::cpu
