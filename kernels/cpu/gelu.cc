// GELU, GPT-2's tanh approximation, and the residual add.
//
// 0.5 * (1 + tanh(u)) == sigmoid(2u), so gelu(x) = x * sigmoid(2u) with
// u = sqrt(2/pi) * (x + 0.044715 x^3). The sigmoid uses detail::fast_exp, which keeps the
// loops vectorised and bit-reproducible.
#include <cstddef>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace conveyor::cpu {

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;
}  // namespace

namespace {
constexpr size_t kChunk = 16384;  // elements per task
}

void gelu_forward(float* out, const float* inp, size_t n) {
  detail::parallel_rows(n, kChunk, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      const float x = inp[i];
      const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
      const float sig = 1.0f / (1.0f + detail::fast_exp(-2.0f * u));
      out[i] = x * sig;
    }
  });
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  // d/dx [x * s(2u)] = s + x * 2 s (1 - s) * du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
  detail::parallel_rows(n, kChunk, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      const float x = inp[i];
      const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
      const float sig = 1.0f / (1.0f + detail::fast_exp(-2.0f * u));
      const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
      const float grad = sig + x * 2.0f * sig * (1.0f - sig) * du;
      dinp[i] += grad * dout[i];
    }
  });
}

void residual_forward(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace conveyor::cpu
