// LayerNorm over the last dimension (eps 1e-5), forward and split backward.
// Row statistics use detail::lane_sum, a fixed-order vectorisable sum.
#include <cmath>
#include <cstddef>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace conveyor::cpu {

namespace {
constexpr float kEps = 1e-5f;
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C) {
  detail::parallel_rows(N, 64, [&](size_t r0, size_t r1) {
    for (size_t n = r0; n < r1; ++n) {
      const float* x = inp + static_cast<size_t>(n) * C;
      float* o = out + static_cast<size_t>(n) * C;
      const float m = detail::lane_sum(x, C) / C;
      // Centre into the output row first, then the variance is a plain sum of squares.
      for (int i = 0; i < C; ++i) o[i] = x[i] - m;
      const float var = detail::lane_dot(o, o, C) / C;
      const float s = 1.0f / std::sqrt(var + kEps);
      for (int i = 0; i < C; ++i) o[i] = o[i] * s * weight[i] + bias[i];
      mean[n] = m;
      rstd[n] = s;
    }
  });
}

void layernorm_backward_input(float* dinp, const float* dout, const float* inp, const float* weight,
                              const float* mean, const float* rstd, int N, int C) {
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = weight * dout.
  detail::parallel_rows(N, 64, [&](size_t r0, size_t r1) {
    for (size_t n = r0; n < r1; ++n) {
      const float* x = inp + static_cast<size_t>(n) * C;
      const float* d = dout + static_cast<size_t>(n) * C;
      float* dx = dinp + static_cast<size_t>(n) * C;
      const float m = mean[n];
      const float s = rstd[n];
      float gsum[16] = {};
      float gxsum[16] = {};
      int i = 0;
      for (; i + 16 <= C; i += 16) {
        for (int l = 0; l < 16; ++l) {
          const float xhat = (x[i + l] - m) * s;
          const float g = weight[i + l] * d[i + l];
          gsum[l] += g;
          gxsum[l] += g * xhat;
        }
      }
      for (int l = 0; i < C; ++i, ++l) {
        const float xhat = (x[i] - m) * s;
        const float g = weight[i] * d[i];
        gsum[l] += g;
        gxsum[l] += g * xhat;
      }
      for (int w = 8; w >= 1; w /= 2) {
        for (int l = 0; l < w; ++l) {
          gsum[l] += gsum[l + w];
          gxsum[l] += gxsum[l + w];
        }
      }
      const float gmean = gsum[0] / C;
      const float gxmean = gxsum[0] / C;
      for (int j = 0; j < C; ++j) {
        const float xhat = (x[j] - m) * s;
        dx[j] += (weight[j] * d[j] - gmean - xhat * gxmean) * s;
      }
    }
  });
}

void layernorm_backward_weight(float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* mean, const float* rstd, int N, int C) {
  // Rows in ascending order; the inner loop over channels vectorises.
  for (int n = 0; n < N; ++n) {
    const float* x = inp + static_cast<size_t>(n) * C;
    const float* d = dout + static_cast<size_t>(n) * C;
    const float m = mean[n];
    const float s = rstd[n];
    for (int i = 0; i < C; ++i) {
      dbias[i] += d[i];
      dweight[i] += (x[i] - m) * s * d[i];
    }
  }
}

}  // namespace conveyor::cpu
